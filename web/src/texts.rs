//! Every sentence the client shows about calls, settings and failures, as pure
//! functions so they are tested natively and kept in plain words.

use shieldcall_proto::{
    CallMode, E2eePolicyType, E2eeSetting, ErrorCode, PolicySource, RefuseReason,
};

use crate::call::{CertCheck, Ending, HoldState, Phase, Warning, Wish};

/// The man-in-the-middle warning, shared by every verification failure.
pub const MITM_WARNING: &str = "Warning: this call was ended because it could not be verified as private. \
Someone may be intercepting it (a \"man in the middle\"). Do not continue the conversation on this connection; \
call again and compare the security code out loud.";

/// Why a call could not be placed or went unanswered.
pub fn refusal(reason: RefuseReason, peer: &str, required_by: Option<&str>, me: &str) -> String {
    match reason {
        RefuseReason::E2eeRequired => match required_by {
            Some(who) if who == me => format!(
                "Your organisation requires end-to-end encrypted calls, and {peer} cannot take one right now \
                 (their encryption setting is off or not allowed). Ask them to turn on \"End-to-end encrypted calls\" \
                 in Settings → Privacy, or ask your admin."
            ),
            Some(who) => format!(
                "{who} may only take end-to-end encrypted calls, and yours are turned off. Turn on \
                 \"End-to-end encrypted calls\" in Settings → Privacy, or ask your admin if it is locked."
            ),
            None => {
                "This call must be end-to-end encrypted, and one side cannot do that right now."
                    .to_string()
            }
        },
        RefuseReason::NotAllowed => {
            format!("Your organisation's settings do not allow calls with {peer}.")
        }
        RefuseReason::Offline => format!("{peer} is offline."),
        RefuseReason::Busy => format!("{peer} is busy in another call."),
        RefuseReason::UnknownUser => format!("There is no user called {peer}."),
        RefuseReason::SelfCall => "You cannot call yourself.".to_string(),
        RefuseReason::NoAnswer => format!("{peer} did not answer."),
        RefuseReason::Declined => format!("{peer} declined the call."),
    }
}

/// What the verification failure means.
pub fn warning_detail(w: Warning) -> &'static str {
    match w {
        Warning::CommitmentMismatch => {
            "The certificate in the answer is not the one the other side committed to."
        }
        Warning::FingerprintMismatch => {
            "The connection used a certificate other than the one announced."
        }
        Warning::FingerprintChanged => "The other side's certificate changed during the call.",
        Warning::CodesDiffer => "You said the security codes differ.",
        Warning::ReportedByPeer => "The other side found that the call could not be verified.",
        Warning::Unverifiable => {
            "The connection details do not carry exactly one sha-256 certificate fingerprint; \
             an extra or unsupported one could let someone in between."
        }
    }
}

/// One line about how the call ended.
pub fn ending(e: &Ending, peer: &str, me: &str) -> String {
    match e {
        Ending::HungUp { by_me: true } => "You ended the call.".to_string(),
        Ending::HungUp { by_me: false } => format!("{peer} ended the call."),
        Ending::Declined => "Call declined.".to_string(),
        Ending::Cancelled => "Call cancelled.".to_string(),
        Ending::Refused { reason, required_by } => refusal(*reason, peer, required_by.as_deref(), me),
        Ending::AnsweredElsewhere => "Answered on another of your devices.".to_string(),
        Ending::Moved => "The call moved to another of your devices.".to_string(),
        Ending::NotMoved => "The call could not move to this device; it goes on where it was.".to_string(),
        Ending::Parked { code } => format!(
            "You parked the call with {peer}. Pick it up on any device with code {code}."
        ),
        Ending::NotPickedUp => "Nobody picked up the parked call.".to_string(),
        Ending::PickupFailed => "The parked call could not be picked up.".to_string(),
        Ending::Transferred => format!("You transferred {peer}."),
        Ending::Referred { to } => format!("{peer} transferred you to {to}: calling {to}…"),
        Ending::Replaced { peer: to } => {
            format!("{peer} transferred you to {to}: connecting to {to}…")
        }
        Ending::NotJoined => "The transferred call could not be joined.".to_string(),
        Ending::NotPlaced => format!("The call to {peer} was not placed."),
        Ending::ConnectionFailed => {
            "The connection failed: the two browsers could not reach each other. Check your network and try again."
                .to_string()
        }
        Ending::Mitm(w) => format!("{} {MITM_WARNING}", warning_detail(*w)),
    }
}

/// The warning for a call that arrived `standard` against this user's setting.
pub fn downgrade_warning(w: Wish) -> &'static str {
    match w {
        Wish::None => "",
        Wish::Switch => {
            "Your setting asks for end-to-end encryption, but the server set this call up as standard \
             (the other person's setting or policy may not allow it). Compare the security code to be \
             sure nobody is in between."
        }
        Wish::Required => {
            "Your organisation requires end-to-end encryption, yet the server set this call up as \
             standard. Compare the security code out loud before you say anything private, and tell \
             your admin."
        }
    }
}

/// What was and was not checked of the certificates DTLS used.
pub fn cert_check_line(c: CertCheck) -> &'static str {
    match c {
        CertCheck::Both => {
            "Both certificates DTLS used were read from the browser and match the code."
        }
        CertCheck::RemoteOnly => {
            "The other side's certificate was read from the DTLS connection and matches the code; \
             yours is the one this tab made for the call."
        }
        CertCheck::BrowserOnly => {
            "This browser does not show which certificates DTLS used. Checked: the connection details \
             carry exactly one sha-256 fingerprint, the one the code is computed from, and the browser \
             itself accepts only a certificate with that fingerprint. Not checked here: the certificate \
             itself."
        }
    }
}

/// The `call-state` text (stable, for people and tests).
pub fn phase_name(p: &Phase) -> &'static str {
    match p {
        Phase::Inviting => "calling",
        Phase::Ringing => "ringing",
        Phase::Incoming => "incoming",
        Phase::Connecting => "connecting",
        Phase::Connected => "connected",
        Phase::Parked => "parked",
        Phase::Ended(_) => "ended",
    }
}

/// The mode in words.
pub fn mode_name(m: CallMode) -> &'static str {
    match m {
        CallMode::E2ee => "end-to-end encrypted",
        CallMode::Standard => "standard encryption",
    }
}

/// The line under the privacy switch saying which policy decides.
pub fn policy_line(s: &E2eeSetting) -> String {
    let from = match &s.source {
        PolicySource::Direct => "assigned to you".to_string(),
        PolicySource::Group {
            group,
            rank: Some(r),
        } => format!("assigned to your group {group} (rank {r})"),
        PolicySource::Group { group, rank: None } => format!("assigned to your group {group}"),
        PolicySource::Global => "your organisation's default".to_string(),
    };
    let what = match s.policy {
        E2eePolicyType::Disabled => "turns end-to-end encryption off; you cannot turn it on",
        E2eePolicyType::DisabledUserOverride => "lets you turn it on (off by default)",
        E2eePolicyType::EnabledUserOverride => "lets you turn it off (on by default)",
        E2eePolicyType::Required => "requires it; you cannot turn it off",
    };
    format!(
        "Decided by the policy {} ({from}), which {what}.",
        s.policy_identity
    )
}

/// A relay error in plain words (the relay's own sentence is shown beside it).
pub fn error_prefix(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::UnavailableInE2ee => "Not available in end-to-end encrypted calls.",
        ErrorCode::PolicyLocked => "Your organisation's policy decides this setting.",
        ErrorCode::RateLimited => "Too many requests; slow down.",
        ErrorCode::SessionExpired => "Your session ended; please sign in again.",
        ErrorCode::TooManyDevices => {
            "Too many of your devices are connected; close one and reload."
        }
        _ => "The server refused a request.",
    }
}

/// `m:ss` or `h:mm:ss`.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// The line under the call's header while the other side has parked the call.
pub fn park_line(peer: &str, code: u8) -> String {
    format!(
        "On park: {peer} parked the call under code {code}. Wait here for someone to pick it up, or hang up."
    )
}

/// The hold line under the call's header: empty when nobody holds the call.
pub const fn hold_line(hold: HoldState) -> &'static str {
    match (hold.by_me, hold.by_peer) {
        (false, false) => "",
        (true, false) => "On hold: you put the call on hold. Media is paused both ways.",
        (false, true) => {
            "On hold: the other person put the call on hold. Media is paused both ways."
        }
        (true, true) => "On hold by both of you. Media is paused both ways.",
    }
}

/// One entry of the call history (`GET /api/history`): what happened, with whom,
/// and for how long (answered calls).
pub fn history_line(direction: &str, outcome: &str, peer: &str, duration_secs: u64) -> String {
    let long = duration(duration_secs.saturating_mul(1000));
    match (direction, outcome) {
        ("incoming", "missed") => format!("Missed call from {peer}"),
        ("incoming", "declined") => format!("Declined call from {peer}"),
        ("incoming", "answered") => format!("Call from {peer}, {long}"),
        ("outgoing", "answered") => format!("Call to {peer}, {long}"),
        ("outgoing", "declined") => format!("Call to {peer}: declined"),
        ("outgoing", "not-answered") => format!("Call to {peer}: not answered"),
        ("outgoing", "refused") => format!("Call to {peer}: not allowed by the policies"),
        ("incoming", _) => format!("Call from {peer}"),
        _ => format!("Call to {peer}"),
    }
}

/// The call history's heading: how many of the listed calls were missed.
pub fn history_heading(missed: usize) -> String {
    match missed {
        0 => "Recent calls".to_string(),
        1 => "Recent calls (1 missed)".to_string(),
        n => format!("Recent calls ({n} missed)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_lines_say_what_happened() {
        assert_eq!(
            history_line("incoming", "missed", "bob@x", 0),
            "Missed call from bob@x"
        );
        assert_eq!(
            history_line("outgoing", "answered", "bob@x", 65),
            "Call to bob@x, 1:05"
        );
        assert_eq!(
            history_line("incoming", "answered", "ann@x", 3726),
            "Call from ann@x, 1:02:06"
        );
        assert!(history_line("outgoing", "refused", "c@y", 0).contains("policies"));
        // A newer relay's outcome still says who.
        assert_eq!(history_line("incoming", "later", "d@z", 0), "Call from d@z");
        assert_eq!(history_heading(0), "Recent calls");
        assert_eq!(history_heading(2), "Recent calls (2 missed)");
    }

    #[test]
    fn e2ee_required_names_who_and_what_to_do() {
        let mine = refusal(
            RefuseReason::E2eeRequired,
            "bob@x",
            Some("alice@x"),
            "alice@x",
        );
        assert!(
            mine.contains("bob@x") && mine.contains("Settings → Privacy"),
            "{mine}"
        );
        let theirs = refusal(
            RefuseReason::E2eeRequired,
            "alice@x",
            Some("alice@x"),
            "bob@x",
        );
        assert!(theirs.starts_with("alice@x may only take"), "{theirs}");
    }

    #[test]
    fn mitm_endings_carry_the_warning() {
        for w in [
            Warning::CommitmentMismatch,
            Warning::FingerprintMismatch,
            Warning::CodesDiffer,
        ] {
            assert!(ending(&Ending::Mitm(w), "p", "me").contains("man in the middle"));
        }
    }

    #[test]
    fn durations() {
        assert_eq!(duration(0), "0:00");
        assert_eq!(duration(65_500), "1:05");
        assert_eq!(duration(3_726_000), "1:02:06");
    }

    #[test]
    fn policy_line_names_the_source() {
        let s = E2eeSetting {
            enabled: true,
            can_change: false,
            policy: E2eePolicyType::Required,
            policy_identity: "Tag:Finance".into(),
            source: PolicySource::Group {
                group: "finance".into(),
                rank: Some(1),
            },
        };
        assert_eq!(
            policy_line(&s),
            "Decided by the policy Tag:Finance (assigned to your group finance (rank 1)), which requires it; you cannot turn it off."
        );
    }

    #[test]
    fn hold_line_names_who_holds() {
        let h = |by_me, by_peer| hold_line(HoldState { by_me, by_peer });
        assert_eq!(h(false, false), "");
        assert!(h(true, false).contains("you put"));
        assert!(h(false, true).contains("the other person"));
        assert!(h(true, true).contains("both"));
    }
}
