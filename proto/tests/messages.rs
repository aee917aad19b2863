//! Every wire message round-trips, and `docs/protocol.md` has an example of each
//! one that decodes to it.

use shieldcall_proto::{ClientMsg, DecodeError, MAX_MESSAGE_BYTES, RelayMsg};

/// The `type` tag of a client message. The exhaustive match makes a new variant
/// fail to compile here until it is listed (and so documented).
fn client_tag(m: &ClientMsg) -> &'static str {
    match m {
        ClientMsg::Hello { .. } => "hello",
        ClientMsg::Ping { .. } => "ping",
        ClientMsg::SetE2ee { .. } => "set-e2ee",
        ClientMsg::Invite { .. } => "invite",
        ClientMsg::Ringing { .. } => "ringing",
        ClientMsg::Accept { .. } => "accept",
        ClientMsg::Decline { .. } => "decline",
        ClientMsg::Cancel { .. } => "cancel",
        ClientMsg::Offer { .. } => "offer",
        ClientMsg::Answer { .. } => "answer",
        ClientMsg::Ice { .. } => "ice",
        ClientMsg::Hangup { .. } => "hangup",
        ClientMsg::Resume { .. } => "resume",
        ClientMsg::Hold { .. } => "hold",
        ClientMsg::MoveHere { .. } => "move-here",
        ClientMsg::Park { .. } => "park",
        ClientMsg::Pickup { .. } => "pickup",
        ClientMsg::Transfer { .. } => "transfer",
        ClientMsg::Consult { .. } => "consult",
        ClientMsg::ConsultTransfer { .. } => "consult-transfer",
        ClientMsg::Join { .. } => "join",
        ClientMsg::Add { .. } => "add",
        ClientMsg::Merge { .. } => "merge",
        ClientMsg::Record { .. } => "record",
        ClientMsg::Captions { .. } => "captions",
        ClientMsg::MediaOffer { .. } => "media-offer",
        ClientMsg::Voicemail { .. } => "voicemail",
        ClientMsg::Feature { .. } => "feature",
    }
}
const CLIENT_TAGS: usize = 28;

fn relay_tag(m: &RelayMsg) -> &'static str {
    match m {
        RelayMsg::Welcome { .. } => "welcome",
        RelayMsg::Pong { .. } => "pong",
        RelayMsg::Presence { .. } => "presence",
        RelayMsg::Settings { .. } => "settings",
        RelayMsg::Calling { .. } => "calling",
        RelayMsg::Incoming { .. } => "incoming",
        RelayMsg::Ringing { .. } => "ringing",
        RelayMsg::Accepted { .. } => "accepted",
        RelayMsg::AnsweredElsewhere { .. } => "answered-elsewhere",
        RelayMsg::Cancelled { .. } => "cancelled",
        RelayMsg::CallRefused { .. } => "call-refused",
        RelayMsg::Offer { .. } => "offer",
        RelayMsg::Answer { .. } => "answer",
        RelayMsg::Ice { .. } => "ice",
        RelayMsg::Hangup { .. } => "hangup",
        RelayMsg::Hold { .. } => "hold",
        RelayMsg::ElsewhereCall { .. } => "elsewhere-call",
        RelayMsg::ElsewhereEnded { .. } => "elsewhere-ended",
        RelayMsg::NewLeg { .. } => "new-leg",
        RelayMsg::Parked { .. } => "parked",
        RelayMsg::OnPark { .. } => "on-park",
        RelayMsg::PickedUp { .. } => "picked-up",
        RelayMsg::Refer { .. } => "refer",
        RelayMsg::Replaced { .. } => "replaced",
        RelayMsg::Leg { .. } => "leg",
        RelayMsg::Group { .. } => "group",
        RelayMsg::Recording { .. } => "recording",
        RelayMsg::Captions { .. } => "captions",
        RelayMsg::Caption { .. } => "caption",
        RelayMsg::MediaAnswer { .. } => "media-answer",
        RelayMsg::Voicemail { .. } => "voicemail",
        RelayMsg::VoicemailLeft { .. } => "voicemail-left",
        RelayMsg::RecordingReady { .. } => "recording-ready",
        RelayMsg::Error { .. } => "error",
    }
}
const RELAY_TAGS: usize = 34;

/// The fenced examples of the protocol doc, by info string.
fn examples(kind: &str) -> Vec<String> {
    let doc = include_str!("../../docs/protocol.md");
    let fence = format!("```json {kind}\n");
    doc.split(&fence)
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap_or_default().to_string())
        .collect()
}

fn same_json(a: &str, b: &str) -> bool {
    let a: serde_json::Value = serde_json::from_str(a).expect("json");
    let b: serde_json::Value = serde_json::from_str(b).expect("json");
    a == b
}

#[test]
fn every_client_message_is_documented_and_round_trips() {
    let mut seen = std::collections::BTreeSet::new();
    for text in examples("client") {
        let msg = ClientMsg::decode(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert!(
            same_json(&msg.encode(), &text),
            "re-encoding changed {text}"
        );
        assert_eq!(ClientMsg::decode(&msg.encode()), Ok(msg.clone()));
        seen.insert(client_tag(&msg));
    }
    assert_eq!(
        seen.len(),
        CLIENT_TAGS,
        "documented client messages: {seen:?}"
    );
}

#[test]
fn every_relay_message_is_documented_and_round_trips() {
    let mut seen = std::collections::BTreeSet::new();
    for text in examples("relay") {
        let msg = RelayMsg::decode(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert!(
            same_json(&msg.encode(), &text),
            "re-encoding changed {text}"
        );
        assert_eq!(RelayMsg::decode(&msg.encode()), Ok(msg.clone()));
        seen.insert(relay_tag(&msg));
    }
    assert_eq!(
        seen.len(),
        RELAY_TAGS,
        "documented relay messages: {seen:?}"
    );
}

#[test]
fn bad_frames_are_errors_not_panics() {
    for bad in [
        "",
        "{",
        "null",
        "[]",
        r#"{"type":"nope"}"#,
        r#"{"type":"invite"}"#,
        r#"{"type":"invite","to":5}"#,
        r#"{"type":"invite","to":"b@x","extra":1}"#,
        r#"{"type":"accept","call_id":"c","commit":"zz"}"#,
        r#"{"type":"accept","call_id":"c","commit":"00"}"#,
        r#"{"type":"hello","version":-1}"#,
        r#"{"type":"hangup","call_id":"c","reason":"bored"}"#,
    ] {
        assert!(
            matches!(ClientMsg::decode(bad), Err(DecodeError::Invalid(_))),
            "{bad}"
        );
    }
    let huge = format!(
        r#"{{"type":"offer","call_id":"c","sdp":"{}"}}"#,
        "a".repeat(MAX_MESSAGE_BYTES)
    );
    assert_eq!(
        ClientMsg::decode(&huge),
        Err(DecodeError::TooLarge(huge.len()))
    );
}
