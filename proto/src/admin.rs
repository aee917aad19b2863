//! The admin API's wire types (`/api/admin/…`): the relay serves and accepts
//! them, and the admin page reads and sends them, so each name (Teams' names
//! for policies and their parameters among them) is spelled here once.
//!
//! Request bodies refuse unknown fields: a misspelt parameter is an error, not
//! a change that silently did nothing.

use serde::{Deserialize, Serialize};

use crate::{CallFeature, E2eePolicyType, E2eeSetting};

/// One enhanced-encryption policy (`CsTeamsEnhancedEncryptionPolicy`), with
/// Teams' field names on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// `Global` or `Tag:<name>`.
    #[serde(rename = "Identity")]
    pub identity: String,
    /// Free text for admins.
    #[serde(rename = "Description", default)]
    pub description: String,
    /// What the policy lets its users do.
    #[serde(rename = "CallingEndtoEndEncryptionEnabledType")]
    pub calling_e2ee: E2eePolicyType,
}

/// Whom an assignment applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Target {
    /// One user, by full name.
    User {
        /// `name@domain`.
        user: String,
    },
    /// The members of a group.
    Group {
        /// The group's name.
        group: String,
        /// 1 is the highest; `None` ranks after every ranked assignment.
        rank: Option<u32>,
    },
    /// Everyone in the tenant (Teams' `-Global`): replaces `Global` as the fallback.
    Global,
}

/// A policy granted to a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// Who.
    pub target: Target,
    /// The policy's identity.
    pub policy: String,
}

/// `New-` and `Set-CsTeamsEnhancedEncryptionPolicy`'s parameters
/// (`POST /api/admin/policies`, `PUT /api/admin/policies/{identity}`). A field
/// left out is left as it is (or at its default, for a new policy).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyForm {
    /// Required for a new policy; on a change, equal to the path's if given.
    #[serde(rename = "Identity", default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Free text for admins.
    #[serde(
        rename = "Description",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub description: Option<String>,
    /// What the policy lets its users do.
    #[serde(
        rename = "CallingEndtoEndEncryptionEnabledType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub calling_e2ee: Option<E2eePolicyType>,
}

/// `Grant-CsTeamsEnhancedEncryptionPolicy`'s parameters
/// (`POST /api/admin/grant`): exactly one of `User`, `Group` (with an optional
/// `Rank`) or `Global: true`; `PolicyName` null or empty unassigns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantForm {
    /// The policy to grant; `None` or empty unassigns.
    #[serde(rename = "PolicyName", default)]
    pub policy_name: Option<String>,
    /// A user, by full name.
    #[serde(rename = "User", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// A group, by name.
    #[serde(rename = "Group", default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The group assignment's rank (1 is the highest).
    #[serde(rename = "Rank", default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<u32>,
    /// Tenant-wide.
    #[serde(rename = "Global", default, skip_serializing_if = "is_false")]
    pub global: bool,
}

fn is_false(b: &bool) -> bool {
    !b
}

impl GrantForm {
    /// A grant of `policy` (empty: unassign) to `target`.
    pub fn to(target: Target, policy: &str) -> Self {
        let policy_name = Some(policy.to_string());
        match target {
            Target::User { user } => Self {
                policy_name,
                user: Some(user),
                ..Self::default()
            },
            Target::Group { group, rank } => Self {
                policy_name,
                group: Some(group),
                rank,
                ..Self::default()
            },
            Target::Global => Self {
                policy_name,
                global: true,
                ..Self::default()
            },
        }
    }

    /// Whom the grant names, or why it names no one (or several).
    pub fn target(&self) -> Result<Target, &'static str> {
        match (&self.user, &self.group, self.global) {
            (Some(user), None, false) if self.rank.is_none() => {
                Ok(Target::User { user: user.clone() })
            }
            (None, Some(group), false) => Ok(Target::Group {
                group: group.clone(),
                rank: self.rank,
            }),
            (None, None, true) if self.rank.is_none() => Ok(Target::Global),
            _ => Err("give exactly one of User, Group (with Rank) or Global"),
        }
    }
}

/// A tenant's calling policy (`CsTeamsCallingPolicy`): which features that send
/// its people's media to the server they may use in standard calls. The Teams
/// names (`AllowCloudRecordingForCalls`, `AllowTranscriptionForCalling`,
/// `AllowVoicemail`) are the JSON keys. Each person still agrees on screen before
/// anything of theirs is sent (Teams' explicit recording consent, which here
/// cannot be turned off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CallingPolicy {
    /// Calls may be recorded.
    pub allow_cloud_recording_for_calls: bool,
    /// Calls may have live captions, and voicemails transcripts.
    pub allow_transcription_for_calling: bool,
    /// Voicemail may be left (by and for the tenant's people).
    pub allow_voicemail: bool,
}

/// The calling policy of a new tenant, and of a domain the relay knows no
/// tenant for: everything allowed (consent is still asked of each person).
/// Teams starts with recording and transcription off; see `docs/policy.md`.
pub const DEFAULT_CALLING_POLICY: CallingPolicy = CallingPolicy {
    allow_cloud_recording_for_calls: true,
    allow_transcription_for_calling: true,
    allow_voicemail: true,
};

impl Default for CallingPolicy {
    fn default() -> Self {
        DEFAULT_CALLING_POLICY
    }
}

impl CallingPolicy {
    /// The settings in order: each one's Teams name (its JSON key) and the
    /// feature it decides.
    pub const SETTINGS: [(&'static str, CallFeature); 3] = [
        ("AllowCloudRecordingForCalls", CallFeature::Recording),
        ("AllowTranscriptionForCalling", CallFeature::Transcription),
        ("AllowVoicemail", CallFeature::Voicemail),
    ];

    /// Whether the tenant's people may use `feature` (features that send
    /// nothing to the server are not the calling policy's to decide).
    pub fn allows(&self, feature: CallFeature) -> bool {
        match feature {
            CallFeature::Recording => self.allow_cloud_recording_for_calls,
            CallFeature::Transcription => self.allow_transcription_for_calling,
            CallFeature::Voicemail => self.allow_voicemail,
            _ => true,
        }
    }

    /// This policy with `feature`'s setting set to `allowed` (a feature the
    /// calling policy does not decide changes nothing).
    pub fn with(mut self, feature: CallFeature, allowed: bool) -> Self {
        match feature {
            CallFeature::Recording => self.allow_cloud_recording_for_calls = allowed,
            CallFeature::Transcription => self.allow_transcription_for_calling = allowed,
            CallFeature::Voicemail => self.allow_voicemail = allowed,
            _ => {}
        }
        self
    }
}

/// A group and its members (`GET /api/admin/groups`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Unique within the tenant.
    pub name: String,
    /// Full user names.
    pub members: Vec<String>,
}

/// A body with a name: a new group (`POST /api/admin/groups`), a display name
/// (`PUT /api/admin/users/{user}/name`, "" for none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameForm {
    /// The name.
    pub name: String,
}

/// A body with a user: a new member (`POST /api/admin/groups/{group}/members`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserForm {
    /// The user's full name.
    pub user: String,
}

/// A user's display name as stored (the answer to setting it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisplayName {
    /// The user's full name.
    pub user: String,
    /// The name as stored after normalising; "" for none.
    pub name: String,
}

/// One user of the tenant, as the admin page lists them
/// (`GET /api/admin/users`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRow {
    /// `name@domain`.
    pub user: String,
    /// The display name; "" for none.
    pub name: String,
    /// Administers the tenant.
    pub admin: bool,
    /// The user's own E2EE switch; `None` until they first set it.
    pub e2ee_switch: Option<bool>,
    /// The setting their policies and switch give them now.
    pub effective: E2eeSetting,
}

/// What an audit entry records about one change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audit {
    /// The tenant the change belongs to.
    pub domain: String,
    /// Who: a user name, or `cli` for the command line.
    pub actor: String,
    /// What, e.g. `policy.set`, `grant`, `user.add`.
    pub action: String,
    /// What it was done to: a policy identity, a user, a group.
    pub target: String,
    /// The value before, if any.
    pub old: Option<String>,
    /// The value after, if any.
    pub new: Option<String>,
}

/// One stored audit entry (`GET /api/admin/audit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Increasing number.
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    /// The change.
    #[serde(flatten)]
    pub audit: Audit,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_round_trips_through_its_target() {
        for target in [
            Target::User {
                user: "ann@a.test".into(),
            },
            Target::Group {
                group: "eng".into(),
                rank: Some(2),
            },
            Target::Group {
                group: "eng".into(),
                rank: None,
            },
            Target::Global,
        ] {
            let form = GrantForm::to(target.clone(), "Tag:X");
            let json = serde_json::to_string(&form).expect("encode");
            let back: GrantForm = serde_json::from_str(&json).expect("decode");
            assert_eq!(back.target(), Ok(target), "{json}");
        }
    }

    #[test]
    fn a_grant_must_name_exactly_one_target() {
        for json in [
            r#"{"PolicyName":"Tag:X"}"#,
            r#"{"PolicyName":"Tag:X","User":"a@a.test","Global":true}"#,
            r#"{"PolicyName":"Tag:X","User":"a@a.test","Rank":1}"#,
            r#"{"PolicyName":"Tag:X","Global":true,"Rank":1}"#,
        ] {
            let form: GrantForm = serde_json::from_str(json).expect("decode");
            assert!(form.target().is_err(), "{json}");
        }
        assert!(serde_json::from_str::<GrantForm>(r#"{"Users":"a@a.test"}"#).is_err());
    }

    #[test]
    fn calling_policy_keys_are_teams_names() {
        let off = DEFAULT_CALLING_POLICY.with(CallFeature::Voicemail, false);
        let json = serde_json::to_value(off).expect("encode");
        for (key, feature) in CallingPolicy::SETTINGS {
            assert_eq!(json[key], off.allows(feature), "{key}");
        }
        assert!(!off.allows(CallFeature::Voicemail) && off.allows(CallFeature::Recording));
        assert!(serde_json::from_str::<CallingPolicy>(r#"{"AllowVoicemail":true}"#).is_err());
    }
}
