//! Voicemail: after a call was not answered, declined, or found the person
//! busy or offline, the caller may leave them a message of at most
//! [`MAX_VOICEMAIL`]. The message is a media leg without a call: the relay
//! gives it an id (`voicemail`), the caller's browser sends its camera and
//! microphone to the media component under that id, and when the caller stops
//! (`record` with `on: false`), leaves, or the time is up, the message is the
//! recipient's (`voicemail-left` to their devices; the file is in both
//! people's recordings).
//!
//! Voicemail goes to the server, so it is a feature end-to-end encryption turns
//! off: a pair whose calls would be end-to-end encrypted gets
//! `unavailable-in-e2ee`, as a call of theirs would.

use std::time::{Duration, Instant};

use shieldcall_proto::{CallFeature, CallId, CallMode, ErrorCode, RelayMsg};

use super::{Core, DeviceId, Timer, WireError};
use crate::policy::Refusal;

/// The longest message.
pub const MAX_VOICEMAIL: Duration = Duration::from_secs(120);

/// A message being left.
#[derive(Debug)]
pub(super) struct Voicemail {
    /// Who leaves it.
    pub from: String,
    /// Their device.
    pub dev: DeviceId,
    /// Whom it is for.
    pub to: String,
    /// Its time limit.
    pub timer: Option<super::TimerKey>,
}

impl Core {
    /// `voicemail` from device `dev` of `from` for `to`, under the new id
    /// `id`. `decision` is the call decision for the two, made now.
    pub(super) fn voicemail(
        &mut self,
        now: Instant,
        dev: DeviceId,
        from: &str,
        to: &str,
        decision: Result<CallMode, Refusal>,
        id: CallId,
    ) -> Result<(), WireError> {
        self.at(now);
        let error = |code, m: &str| WireError {
            code,
            message: m.into(),
            call_id: None,
        };
        super::standard_pair(
            Some(&decision),
            ("you", to),
            "Voicemail is off in end-to-end encrypted calls: calls between you two are end-to-end encrypted.",
            None,
        )?;
        self.calling_allows([from, to], CallFeature::Voicemail, None)?;
        if self.voicemails.values().any(|v| v.dev == dev) {
            return Err(error(
                ErrorCode::WrongState,
                "You are leaving a message already.",
            ));
        }
        let timer = self.schedule(MAX_VOICEMAIL, Timer::Voicemail(id.clone()));
        self.voicemails.insert(
            id.clone(),
            Voicemail {
                from: from.into(),
                dev,
                to: to.into(),
                timer,
            },
        );
        self.send(
            dev,
            &RelayMsg::Voicemail {
                call_id: id,
                to: to.into(),
            },
        );
        Ok(())
    }
}

impl Core {
    /// The message `id` is left (stopped, time up, or its device gone): the
    /// caller's device hears the recording stopped, the recipient that there
    /// is a message.
    pub(super) fn end_voicemail(&mut self, id: &CallId) {
        let Some(v) = self.voicemails.remove(id) else {
            return;
        };
        self.cancel(v.timer);
        self.send(
            v.dev,
            &RelayMsg::Recording {
                call_id: id.clone(),
                on: false,
                by: None,
            },
        );
        self.send_user(&v.to, &RelayMsg::VoicemailLeft { from: v.from }, None);
        tracing::info!(call = %id, "voicemail left");
    }

    /// The message `id` if device `dev` of `user` leaves it: whom it is for.
    pub(super) fn voicemail_of(&self, id: &CallId, user: &str, dev: DeviceId) -> Option<String> {
        self.voicemails
            .get(id)
            .filter(|v| v.from == user && v.dev == dev)
            .map(|v| v.to.clone())
    }
}

/// The refusal for a voicemail feature asked of a call (it has its own message).
pub(super) fn not_a_call_feature(id: &CallId) -> WireError {
    WireError::new(
        ErrorCode::WrongState,
        &format!(
            "{} is left with voicemail after a call that did not connect.",
            CallFeature::Voicemail.label()
        ),
        id,
    )
}
