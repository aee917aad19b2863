//! Shared policy vocabulary: the Teams-compatible policy values, call modes and
//! where a user's effective policy comes from.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// `CallingEndtoEndEncryptionEnabledType`: what a policy lets a user do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum E2eePolicyType {
    /// E2EE is not available; the user's switch is shown off and locked.
    Disabled,
    /// The user may turn E2EE on; off by default (Teams' only "enabled" value).
    DisabledUserOverride,
    /// On by default; the user may turn it off.
    EnabledUserOverride,
    /// Always on; calls with someone who cannot do E2EE are refused.
    Required,
}

impl E2eePolicyType {
    /// All values, in order of increasing strictness.
    pub const ALL: [Self; 4] = [
        Self::Disabled,
        Self::DisabledUserOverride,
        Self::EnabledUserOverride,
        Self::Required,
    ];

    /// The exact Teams spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "Disabled",
            Self::DisabledUserOverride => "DisabledUserOverride",
            Self::EnabledUserOverride => "EnabledUserOverride",
            Self::Required => "Required",
        }
    }

    /// The switch position of a user who never touched it.
    pub const fn default_switch(self) -> bool {
        matches!(self, Self::EnabledUserOverride | Self::Required)
    }

    /// Whether the user can move the switch at all.
    pub const fn user_can_change(self) -> bool {
        matches!(self, Self::DisabledUserOverride | Self::EnabledUserOverride)
    }

    /// Whether E2EE is on, given the user's stored switch (`None`: never set).
    pub const fn effective(self, switch: Option<bool>) -> bool {
        match self {
            Self::Disabled => false,
            Self::Required => true,
            Self::DisabledUserOverride | Self::EnabledUserOverride => match switch {
                Some(on) => on,
                None => self.default_switch(),
            },
        }
    }
}

impl fmt::Display for E2eePolicyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown policy value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected one of Disabled, DisabledUserOverride, EnabledUserOverride, Required")]
pub struct UnknownPolicyType;

impl FromStr for E2eePolicyType {
    type Err = UnknownPolicyType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .ok_or(UnknownPolicyType)
    }
}

/// How a call's media is protected and verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallMode {
    /// Fresh certificates, commitment, lock and security code; features that need a
    /// third party are off.
    E2ee,
    /// DTLS-SRTP peer to peer, no code shown; all call features available.
    Standard,
}

/// Where a user's effective policy comes from.
///
/// On the wire: `{"kind":"direct"}`, `{"kind":"group","group":"...","rank":N}`
/// (`rank` absent when unranked) or `{"kind":"global"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PolicySourceWire", into = "PolicySourceWire")]
pub enum PolicySource {
    /// Assigned to the user directly.
    Direct,
    /// Assigned to a group the user belongs to.
    Group {
        /// The group's name.
        group: String,
        /// The assignment's rank (1 is highest); `None` ranks last.
        rank: Option<u32>,
    },
    /// The tenant's `Global` policy.
    Global,
}

/// The flat wire form of [`PolicySource`]. A hand-rolled tag keeps serde's
/// generic `Content` buffering (about 80 KB of Wasm) out of the browser bundle.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicySourceWire {
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rank: Option<u32>,
}

impl From<PolicySource> for PolicySourceWire {
    fn from(s: PolicySource) -> Self {
        match s {
            PolicySource::Direct => Self {
                kind: "direct".into(),
                group: None,
                rank: None,
            },
            PolicySource::Group { group, rank } => Self {
                kind: "group".into(),
                group: Some(group),
                rank,
            },
            PolicySource::Global => Self {
                kind: "global".into(),
                group: None,
                rank: None,
            },
        }
    }
}

impl TryFrom<PolicySourceWire> for PolicySource {
    type Error = String;

    fn try_from(w: PolicySourceWire) -> Result<Self, String> {
        match (w.kind.as_str(), w.group, w.rank) {
            ("direct", None, None) => Ok(Self::Direct),
            ("global", None, None) => Ok(Self::Global),
            ("group", Some(group), rank) => Ok(Self::Group { group, rank }),
            ("group", None, _) => Err("a group source names its group".into()),
            ("direct" | "global", _, _) => Err("only a group source has a group and a rank".into()),
            (other, _, _) => Err(format!("unknown policy source kind {other:?}")),
        }
    }
}

/// A user's E2EE setting as the relay sees it: pushed to every device of the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct E2eeSetting {
    /// Whether the user's calls can be end-to-end encrypted right now.
    pub enabled: bool,
    /// Whether the user may change the switch (`false` under `Disabled` and `Required`).
    pub can_change: bool,
    /// The value of the policy that decides.
    pub policy: E2eePolicyType,
    /// The identity of the policy that decides (`Global` or `Tag:<name>`).
    pub policy_identity: String,
    /// Why that policy applies.
    pub source: PolicySource,
}

/// A call feature that end-to-end encryption turns off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallFeature {
    /// Putting the call on hold (media stops both ways until resumed).
    Hold,
    /// Recording the call.
    Recording,
    /// Live captions and transcription.
    Transcription,
    /// Blind or consult transfer.
    Transfer,
    /// Call park.
    Park,
    /// Merging with another call.
    Merge,
    /// Moving the call to another device of the same user.
    MoveToDevice,
    /// Adding a third participant.
    AddParticipant,
    /// Forwarding to voicemail.
    Voicemail,
}

impl CallFeature {
    /// Every feature, in display order.
    pub const ALL: [Self; 9] = [
        Self::Hold,
        Self::Recording,
        Self::Transcription,
        Self::Transfer,
        Self::Park,
        Self::Merge,
        Self::MoveToDevice,
        Self::AddParticipant,
        Self::Voicemail,
    ];

    /// The wire name, as in `{"type":"feature","feature":"move-to-device"}`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hold => "hold",
            Self::Recording => "recording",
            Self::Transcription => "transcription",
            Self::Transfer => "transfer",
            Self::Park => "park",
            Self::Merge => "merge",
            Self::MoveToDevice => "move-to-device",
            Self::AddParticipant => "add-participant",
            Self::Voicemail => "voicemail",
        }
    }

    /// The feature's name for people, as messages and the client show it.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Hold => "Hold",
            Self::Recording => "Recording",
            Self::Transcription => "Live captions",
            Self::Transfer => "Transfer",
            Self::Park => "Park",
            Self::Merge => "Merge",
            Self::MoveToDevice => "Moving to another device",
            Self::AddParticipant => "Adding people",
            Self::Voicemail => "Voicemail",
        }
    }

    /// Whether the feature is available in a call of this mode.
    pub const fn available_in(self, mode: CallMode) -> bool {
        matches!(mode, CallMode::Standard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_setting_table() {
        use E2eePolicyType::*;
        let table = [
            (Disabled, None, false),
            (Disabled, Some(true), false),
            (DisabledUserOverride, None, false),
            (DisabledUserOverride, Some(true), true),
            (DisabledUserOverride, Some(false), false),
            (EnabledUserOverride, None, true),
            (EnabledUserOverride, Some(false), false),
            (EnabledUserOverride, Some(true), true),
            (Required, None, true),
            (Required, Some(false), true),
        ];
        for (policy, switch, want) in table {
            assert_eq!(policy.effective(switch), want, "{policy} {switch:?}");
        }
    }

    #[test]
    fn policy_source_wire_form() {
        let cases = [
            (PolicySource::Direct, r#"{"kind":"direct"}"#),
            (PolicySource::Global, r#"{"kind":"global"}"#),
            (
                PolicySource::Group {
                    group: "ops".into(),
                    rank: Some(2),
                },
                r#"{"kind":"group","group":"ops","rank":2}"#,
            ),
            (
                PolicySource::Group {
                    group: "ops".into(),
                    rank: None,
                },
                r#"{"kind":"group","group":"ops"}"#,
            ),
        ];
        for (source, json) in cases {
            assert_eq!(serde_json::to_string(&source).ok().as_deref(), Some(json));
            assert_eq!(
                serde_json::from_str::<PolicySource>(json).ok(),
                Some(source)
            );
        }
        for bad in [
            r#"{"kind":"group"}"#,
            r#"{"kind":"direct","rank":1}"#,
            r#"{"kind":"team"}"#,
            r#"{"kind":"global","x":1}"#,
        ] {
            assert!(serde_json::from_str::<PolicySource>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn feature_names_are_the_wire_names() {
        for f in CallFeature::ALL {
            assert_eq!(
                serde_json::to_string(&f).ok(),
                Some(format!("\"{}\"", f.as_str()))
            );
        }
    }

    #[test]
    fn names_round_trip() {
        for p in E2eePolicyType::ALL {
            assert_eq!(p.as_str().parse::<E2eePolicyType>(), Ok(p));
            assert_eq!(serde_json::to_string(&p).ok(), Some(format!("\"{p}\"")));
        }
        assert!("Enabled".parse::<E2eePolicyType>().is_err());
    }
}
