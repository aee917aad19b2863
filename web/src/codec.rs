//! The wire protocol in the browser, with the browser's own `JSON.parse` and
//! `JSON.stringify`, so that `serde_json` stays out of the bundle.
//!
//! Relay messages are read by hand from the parsed object into `shieldcall-proto`'s
//! types, and client messages written by hand into an object for
//! `JSON.stringify` (`{"type": ..., fields}`, as `proto::msg` puts them on the
//! wire): a serialiser or deserialiser derived for every message costs the
//! bundle more than all of the UI. The browser tests check both against
//! `proto`'s own encoder and decoder on every example in `docs/protocol.md`.

use js_sys::{JSON, Object, Reflect};
use shieldcall_proto::{
    CallId, CallMode, ClientMsg, E2eeSetting, ErrorCode, HangupReason, IceCandidate, IceServer,
    MAX_MESSAGE_BYTES, PolicySource, Presence, RefuseReason, RelayMsg, Status,
};
use wasm_bindgen::prelude::*;

/// Decodes one relay frame; the error is a sentence for the console.
///
/// Written by hand over the parsed object rather than with serde: a derived
/// deserializer for every message costs the bundle more than all of the UI. It
/// accepts exactly what `proto`'s decoder accepts for every documented message
/// (the browser tests compare the two), and ignores fields it does not know.
pub fn decode_relay(text: &str) -> Result<RelayMsg, String> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(format!("frame of {} bytes is over the limit", text.len()));
    }
    let v = JSON::parse(text).map_err(|_| "not JSON".to_string())?;
    if !v.is_object() || js_sys::Array::is_array(&v) {
        return Err("a message is a JSON object".into());
    }
    let ty = req_str(&v, "type")?;
    let call_id = || req_str(&v, "call_id").map(CallId);
    Ok(match ty.as_str() {
        "welcome" => RelayMsg::Welcome {
            version: req_u32(&v, "version")?,
            user: req_str(&v, "user")?,
            device: req_str(&v, "device")?,
            admin: req_bool(&v, "admin")?,
            e2ee: setting(&get(&v, "e2ee"))?,
            ice_servers: list(&v, "ice_servers", ice_server)?,
        },
        "pong" => RelayMsg::Pong {
            id: req_u64(&v, "id")?,
        },
        "presence" => RelayMsg::Presence {
            contacts: list(&v, "contacts", presence)?,
        },
        "settings" => RelayMsg::Settings {
            e2ee: setting(&get(&v, "e2ee"))?,
        },
        "calling" => RelayMsg::Calling {
            call_id: call_id()?,
            to: req_str(&v, "to")?,
            mode: mode(&v)?,
        },
        "incoming" => RelayMsg::Incoming {
            call_id: call_id()?,
            from: req_str(&v, "from")?,
            mode: mode(&v)?,
            referred_by: opt_str(&v, "referred_by")?,
            group: opt_strings(&v, "group")?,
        },
        "ringing" => RelayMsg::Ringing {
            call_id: call_id()?,
        },
        "accepted" => RelayMsg::Accepted {
            call_id: call_id()?,
            commit: match opt_str(&v, "commit")? {
                Some(c) => Some(c.parse().map_err(|_| "malformed commit".to_string())?),
                None => None,
            },
        },
        "answered-elsewhere" => RelayMsg::AnsweredElsewhere {
            call_id: call_id()?,
        },
        "cancelled" => RelayMsg::Cancelled {
            call_id: call_id()?,
        },
        "call-refused" => RelayMsg::CallRefused {
            call_id: call_id()?,
            peer: req_str(&v, "peer")?,
            reason: pick(&req_str(&v, "reason")?, REFUSE_REASONS)?,
            required_by: opt_str(&v, "required_by")?,
        },
        "offer" => RelayMsg::Offer {
            call_id: call_id()?,
            sdp: req_str(&v, "sdp")?,
        },
        "answer" => RelayMsg::Answer {
            call_id: call_id()?,
            sdp: req_str(&v, "sdp")?,
        },
        "ice" => RelayMsg::Ice {
            call_id: call_id()?,
            candidate: candidate(&get(&v, "candidate"))?,
        },
        "hangup" => RelayMsg::Hangup {
            call_id: call_id()?,
            reason: pick(&req_str(&v, "reason")?, HANGUP_REASONS)?,
        },
        "elsewhere-call" => RelayMsg::ElsewhereCall {
            call_id: call_id()?,
            peer: req_str(&v, "peer")?,
            mode: mode(&v)?,
        },
        "elsewhere-ended" => RelayMsg::ElsewhereEnded {
            call_id: call_id()?,
        },
        "new-leg" => RelayMsg::NewLeg {
            call_id: call_id()?,
            peer: req_str(&v, "peer")?,
            commit: req_str(&v, "commit")?
                .parse()
                .map_err(|_| "malformed commit".to_string())?,
        },
        "refer" => RelayMsg::Refer {
            call_id: call_id()?,
            to: req_str(&v, "to")?,
            by: req_str(&v, "by")?,
            token: req_str(&v, "token")?,
        },
        "replaced" => RelayMsg::Replaced {
            call_id: call_id()?,
            join: CallId(req_str(&v, "join")?),
            peer: req_str(&v, "peer")?,
            by: req_str(&v, "by")?,
            mode: mode(&v)?,
        },
        "leg" => RelayMsg::Leg {
            call_id: call_id()?,
            peer: req_str(&v, "peer")?,
            mode: mode(&v)?,
        },
        "group" => RelayMsg::Group {
            members: match get(&v, "members") {
                m if m.is_undefined() => return Err(missing("members")),
                _ => opt_strings(&v, "members")?,
            },
        },
        "recording" => RelayMsg::Recording {
            call_id: call_id()?,
            on: req_bool(&v, "on")?,
            by: opt_str(&v, "by")?,
        },
        "captions" => RelayMsg::Captions {
            call_id: call_id()?,
            on: req_bool(&v, "on")?,
            by: opt_str(&v, "by")?,
        },
        "caption" => RelayMsg::Caption {
            call_id: call_id()?,
            from: req_str(&v, "from")?,
            text: req_str(&v, "text")?,
            done: req_bool(&v, "final")?,
        },
        "voicemail" => RelayMsg::Voicemail {
            call_id: call_id()?,
            to: req_str(&v, "to")?,
        },
        "voicemail-left" => RelayMsg::VoicemailLeft {
            from: req_str(&v, "from")?,
        },
        "recording-ready" => RelayMsg::RecordingReady {
            id: req_str(&v, "id")?,
        },
        "media-answer" => RelayMsg::MediaAnswer {
            call_id: call_id()?,
            sdp: req_str(&v, "sdp")?,
            captions: get(&v, "captions").is_truthy(),
        },
        "parked" => RelayMsg::Parked {
            call_id: call_id()?,
            code: park_code(&v)?,
        },
        "on-park" => RelayMsg::OnPark {
            call_id: call_id()?,
            code: park_code(&v)?,
        },
        "picked-up" => RelayMsg::PickedUp {
            call_id: call_id()?,
            code: park_code(&v)?,
            peer: req_str(&v, "peer")?,
            mode: mode(&v)?,
        },
        "hold" => RelayMsg::Hold {
            call_id: call_id()?,
            by_me: req_bool(&v, "by_me")?,
            by_peer: req_bool(&v, "by_peer")?,
        },
        "error" => RelayMsg::Error {
            code: pick(&req_str(&v, "code")?, ERROR_CODES)?,
            message: req_str(&v, "message")?,
            call_id: opt_str(&v, "call_id")?.map(CallId),
        },
        other => return Err(format!("unknown message type \"{other}\"")),
    })
}

/// Wire names of the closed enums, as serde writes them (kebab-case). The
/// browser tests check every entry against `proto`'s serde names.
pub const REFUSE_REASONS: &[(&str, RefuseReason)] = &[
    ("e2ee-required", RefuseReason::E2eeRequired),
    ("not-allowed", RefuseReason::NotAllowed),
    ("offline", RefuseReason::Offline),
    ("busy", RefuseReason::Busy),
    ("unknown-user", RefuseReason::UnknownUser),
    ("self-call", RefuseReason::SelfCall),
    ("no-answer", RefuseReason::NoAnswer),
    ("declined", RefuseReason::Declined),
];

/// See [`REFUSE_REASONS`].
pub const HANGUP_REASONS: &[(&str, HangupReason)] = &[
    ("normal", HangupReason::Normal),
    ("connection-failed", HangupReason::ConnectionFailed),
    ("mitm", HangupReason::Mitm),
    ("unverifiable", HangupReason::Unverifiable),
    ("peer-gone", HangupReason::PeerGone),
    ("moved", HangupReason::Moved),
    ("not-picked-up", HangupReason::NotPickedUp),
    ("transferred", HangupReason::Transferred),
];

/// See [`REFUSE_REASONS`].
pub const ERROR_CODES: &[(&str, ErrorCode)] = &[
    ("bad-message", ErrorCode::BadMessage),
    ("too-large", ErrorCode::TooLarge),
    ("unsupported-version", ErrorCode::UnsupportedVersion),
    ("hello-first", ErrorCode::HelloFirst),
    ("rate-limited", ErrorCode::RateLimited),
    ("not-your-call", ErrorCode::NotYourCall),
    ("wrong-state", ErrorCode::WrongState),
    ("bad-commitment", ErrorCode::BadCommitment),
    ("unavailable-in-e2ee", ErrorCode::UnavailableInE2ee),
    ("not-deployed", ErrorCode::NotDeployed),
    ("policy-locked", ErrorCode::PolicyLocked),
    ("not-allowed", ErrorCode::NotAllowed),
    ("session-expired", ErrorCode::SessionExpired),
    ("too-many-devices", ErrorCode::TooManyDevices),
    ("internal", ErrorCode::Internal),
];

/// See [`REFUSE_REASONS`].
pub const STATUSES: &[(&str, Status)] = &[
    ("online", Status::Online),
    ("busy", Status::Busy),
    ("offline", Status::Offline),
    ("removed", Status::Removed),
];

/// See [`REFUSE_REASONS`].
pub const MODES: &[(&str, CallMode)] =
    &[("e2ee", CallMode::E2ee), ("standard", CallMode::Standard)];

fn pick<T: Copy>(name: &str, table: &[(&str, T)]) -> Result<T, String> {
    table
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .ok_or_else(|| format!("unknown value \"{name}\""))
}

fn missing(key: &str) -> String {
    format!("missing or mistyped field `{key}`")
}

fn req_str(v: &JsValue, key: &str) -> Result<String, String> {
    get(v, key).as_string().ok_or_else(|| missing(key))
}

fn opt_str(v: &JsValue, key: &str) -> Result<Option<String>, String> {
    let f = get(v, key);
    if f.is_undefined() || f.is_null() {
        Ok(None)
    } else {
        f.as_string().map(Some).ok_or_else(|| missing(key))
    }
}

/// A list of strings; absent is empty (serde's `default`).
fn opt_strings(v: &JsValue, key: &str) -> Result<Vec<String>, String> {
    let f = get(v, key);
    if f.is_undefined() {
        return Ok(Vec::new());
    }
    if !js_sys::Array::is_array(&f) {
        return Err(missing(key));
    }
    js_sys::Array::from(&f)
        .iter()
        .map(|s| s.as_string().ok_or_else(|| missing(key)))
        .collect()
}

/// A pickup code: an integer that fits `u8`, as serde reads it.
fn park_code(v: &JsValue) -> Result<u8, String> {
    u8::try_from(req_u32(v, "code")?).map_err(|_| "code out of range".to_string())
}

fn req_bool(v: &JsValue, key: &str) -> Result<bool, String> {
    get(v, key).as_bool().ok_or_else(|| missing(key))
}

/// A non-negative integer that a JS number holds exactly.
fn req_u64(v: &JsValue, key: &str) -> Result<u64, String> {
    match get(v, key).as_f64() {
        Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= 9_007_199_254_740_991.0 => Ok(n as u64),
        _ => Err(missing(key)),
    }
}

fn req_u32(v: &JsValue, key: &str) -> Result<u32, String> {
    u32::try_from(req_u64(v, key)?).map_err(|_| missing(key))
}

fn opt_u64(v: &JsValue, key: &str) -> Result<Option<u64>, String> {
    let f = get(v, key);
    if f.is_undefined() || f.is_null() {
        Ok(None)
    } else {
        req_u64(v, key).map(Some)
    }
}

fn list<T>(
    v: &JsValue,
    key: &str,
    item: fn(&JsValue) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let f = get(v, key);
    if !js_sys::Array::is_array(&f) {
        return Err(missing(key));
    }
    items(&f).iter().map(item).collect()
}

fn mode(v: &JsValue) -> Result<CallMode, String> {
    pick(&req_str(v, "mode")?, MODES)
}

fn presence(v: &JsValue) -> Result<Presence, String> {
    Ok(Presence {
        user: req_str(v, "user")?,
        status: pick(&req_str(v, "status")?, STATUSES)?,
        name: opt_str(v, "name")?,
    })
}

fn ice_server(v: &JsValue) -> Result<IceServer, String> {
    let urls = list(v, "urls", |u| u.as_string().ok_or_else(|| missing("urls")))?;
    Ok(IceServer {
        urls,
        username: opt_str(v, "username")?,
        credential: opt_str(v, "credential")?,
    })
}

fn candidate(v: &JsValue) -> Result<IceCandidate, String> {
    Ok(IceCandidate {
        candidate: req_str(v, "candidate")?,
        sdp_mid: opt_str(v, "sdp_mid")?,
        sdp_m_line_index: opt_u64(v, "sdp_m_line_index")?
            .map(|n| u16::try_from(n).map_err(|_| missing("sdp_m_line_index")))
            .transpose()?,
        username_fragment: opt_str(v, "username_fragment")?,
    })
}

fn setting(v: &JsValue) -> Result<E2eeSetting, String> {
    let source = get(v, "source");
    let source = match req_str(&source, "kind")?.as_str() {
        "direct" => PolicySource::Direct,
        "global" => PolicySource::Global,
        "group" => PolicySource::Group {
            group: req_str(&source, "group")?,
            rank: opt_u64(&source, "rank")?
                .map(|r| u32::try_from(r).map_err(|_| missing("rank")))
                .transpose()?,
        },
        other => return Err(format!("unknown policy source \"{other}\"")),
    };
    Ok(E2eeSetting {
        enabled: req_bool(v, "enabled")?,
        can_change: req_bool(v, "can_change")?,
        policy: req_str(v, "policy")?
            .parse()
            .map_err(|_| missing("policy"))?,
        policy_identity: req_str(v, "policy_identity")?,
        source,
    })
}

/// Encodes one client message as a frame.
pub fn encode_client(msg: &ClientMsg) -> Result<String, JsValue> {
    // Written by hand like `decode_relay` (serde's serialiser for every message
    // cost the bundle more than this); the browser tests compare it with
    // `proto`'s encoder on every documented example.
    let o = Object::new();
    let set = |k: &str, v: JsValue| Reflect::set(&o, &JsValue::from_str(k), &v).map(|_| ());
    let id = |c: &CallId| JsValue::from_str(&c.0);
    let commit = |c: &Option<shieldcall_proto::Commitment>| -> Result<(), JsValue> {
        match c {
            Some(c) => set("commit", JsValue::from_str(&c.to_string())),
            None => Ok(()),
        }
    };
    let name = |table: &[(&'static str, HangupReason)], r: HangupReason| {
        table.iter().find(|(_, x)| *x == r).map_or("", |(n, _)| *n)
    };
    let mode = |m: CallMode| MODES.iter().find(|(_, x)| *x == m).map_or("", |(n, _)| *n);
    let ty = match msg {
        ClientMsg::Hello { version } => {
            set("version", JsValue::from(*version))?;
            "hello"
        }
        ClientMsg::Ping { id } => {
            set("id", JsValue::from(*id as f64))?;
            "ping"
        }
        ClientMsg::SetE2ee { enabled } => {
            set("enabled", JsValue::from_bool(*enabled))?;
            "set-e2ee"
        }
        ClientMsg::Voicemail { to } => {
            set("to", JsValue::from_str(to))?;
            "voicemail"
        }
        ClientMsg::Invite { to, transfer } => {
            set("to", JsValue::from_str(to))?;
            if let Some(t) = transfer {
                set("transfer", JsValue::from_str(t))?;
            }
            "invite"
        }
        ClientMsg::Pickup { code, commit: c } => {
            set("code", JsValue::from(*code))?;
            commit(c)?;
            "pickup"
        }
        ClientMsg::Ringing { call_id }
        | ClientMsg::Decline { call_id }
        | ClientMsg::Cancel { call_id }
        | ClientMsg::Park { call_id } => {
            set("call_id", id(call_id))?;
            match msg {
                ClientMsg::Ringing { .. } => "ringing",
                ClientMsg::Decline { .. } => "decline",
                ClientMsg::Cancel { .. } => "cancel",
                _ => "park",
            }
        }
        ClientMsg::Accept { call_id, commit: c }
        | ClientMsg::MoveHere { call_id, commit: c }
        | ClientMsg::Join { call_id, commit: c } => {
            set("call_id", id(call_id))?;
            commit(c)?;
            match msg {
                ClientMsg::Accept { .. } => "accept",
                ClientMsg::MoveHere { .. } => "move-here",
                _ => "join",
            }
        }
        ClientMsg::Offer { call_id, sdp }
        | ClientMsg::Answer { call_id, sdp }
        | ClientMsg::MediaOffer { call_id, sdp, .. } => {
            set("call_id", id(call_id))?;
            set("sdp", JsValue::from_str(sdp))?;
            match msg {
                ClientMsg::Offer { .. } => "offer",
                ClientMsg::Answer { .. } => "answer",
                ClientMsg::MediaOffer { captions, .. } => {
                    if *captions {
                        set("captions", JsValue::TRUE)?;
                    }
                    "media-offer"
                }
                _ => "",
            }
        }
        ClientMsg::Transfer { call_id, to }
        | ClientMsg::Consult { call_id, to }
        | ClientMsg::Add { call_id, to } => {
            set("call_id", id(call_id))?;
            set("to", JsValue::from_str(to))?;
            match msg {
                ClientMsg::Transfer { .. } => "transfer",
                ClientMsg::Consult { .. } => "consult",
                _ => "add",
            }
        }
        ClientMsg::ConsultTransfer { call_id, consult } | ClientMsg::Merge { call_id, consult } => {
            set("call_id", id(call_id))?;
            set("consult", id(consult))?;
            match msg {
                ClientMsg::ConsultTransfer { .. } => "consult-transfer",
                _ => "merge",
            }
        }
        ClientMsg::Hold { call_id, on }
        | ClientMsg::Record { call_id, on }
        | ClientMsg::Captions { call_id, on } => {
            set("call_id", id(call_id))?;
            set("on", JsValue::from_bool(*on))?;
            match msg {
                ClientMsg::Hold { .. } => "hold",
                ClientMsg::Captions { .. } => "captions",
                _ => "record",
            }
        }
        ClientMsg::Ice { call_id, candidate } => {
            set("call_id", id(call_id))?;
            let c = Object::new();
            let put = |k: &str, v: JsValue| Reflect::set(&c, &JsValue::from_str(k), &v).map(|_| ());
            put("candidate", JsValue::from_str(&candidate.candidate))?;
            if let Some(m) = &candidate.sdp_mid {
                put("sdp_mid", JsValue::from_str(m))?;
            }
            if let Some(i) = candidate.sdp_m_line_index {
                put("sdp_m_line_index", JsValue::from(i))?;
            }
            if let Some(u) = &candidate.username_fragment {
                put("username_fragment", JsValue::from_str(u))?;
            }
            set("candidate", c.into())?;
            "ice"
        }
        ClientMsg::Hangup { call_id, reason } => {
            set("call_id", id(call_id))?;
            set("reason", JsValue::from_str(name(HANGUP_REASONS, *reason)))?;
            "hangup"
        }
        ClientMsg::Resume {
            call_id,
            peer,
            mode: m,
        } => {
            set("call_id", id(call_id))?;
            set("peer", JsValue::from_str(peer))?;
            set("mode", JsValue::from_str(mode(*m)))?;
            "resume"
        }
        ClientMsg::Feature { call_id, feature } => {
            set("call_id", id(call_id))?;
            set("feature", JsValue::from_str(feature.as_str()))?;
            "feature"
        }
    };
    set("type", JsValue::from_str(ty))?;
    JSON::stringify(&o)?
        .as_string()
        .ok_or_else(|| JsValue::from_str("JSON.stringify"))
}

/// Reads `key` of a JS object.
pub fn get(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// Reads a string field ("" when absent).
pub fn string(v: &JsValue, key: &str) -> String {
    get(v, key).as_string().unwrap_or_default()
}

/// Reads a boolean field (false when absent).
pub fn boolean(v: &JsValue, key: &str) -> bool {
    get(v, key).as_bool().unwrap_or(false)
}

/// The elements of a JS array (none when not an array).
pub fn items(v: &JsValue) -> Vec<JsValue> {
    if js_sys::Array::is_array(v) {
        js_sys::Array::from(v).iter().collect()
    } else {
        Vec::new()
    }
}

/// A plain object from key/value pairs, for request bodies.
pub fn object(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        let _ = Reflect::set(&o, &JsValue::from_str(k), v);
    }
    o.into()
}
