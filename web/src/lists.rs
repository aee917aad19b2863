//! The lists the page fetches from the relay's API and draws: the call history
//! and the recordings.

use std::rc::Rc;

use crate::codec;
use crate::dom::spawn as spawn_local;
use crate::net;
use crate::page::{HistoryItem, RecordingItem, Shared};

/// Fetches the list of recordings and draws it (on sign-in and when one ends).
pub(crate) fn load_recordings(app: &Shared) {
    let weak = Rc::downgrade(app);
    spawn_local(async move {
        let Ok(r) = net::request("GET", "/api/recordings", None).await else {
            return;
        };
        if !r.ok() {
            return;
        }
        let items = codec::items(&codec::get(&r.body, "recordings"))
            .iter()
            .map(|c| RecordingItem {
                id: codec::string(c, "id"),
                owner: codec::string(c, "owner"),
                peer: codec::string(c, "peer"),
                duration_ms: codec::get(c, "duration_ms")
                    .as_f64()
                    .map_or(0, |d| d.max(0.0) as u64),
                transcript: codec::string(c, "transcript"),
                captions: codec::boolean(c, "captions"),
            })
            .collect();
        let Some(a) = weak.upgrade() else { return };
        let mut app = a.borrow_mut();
        if app.session.me.is_none() {
            return;
        }
        app.recordings = items;
        crate::render::render_recordings(&app);
    });
}

/// Fetches the call history and draws it (on sign-in and after each call).
pub(crate) fn load_history(app: &Shared) {
    let weak = Rc::downgrade(app);
    spawn_local(async move {
        let Ok(r) = net::request("GET", "/api/history", None).await else {
            return; // the list stays as it was; the next call's end tries again
        };
        if !r.ok() {
            return;
        }
        let items = codec::items(&codec::get(&r.body, "calls"))
            .iter()
            .map(|c| HistoryItem {
                peer: codec::string(c, "peer"),
                direction: codec::string(c, "direction"),
                outcome: codec::string(c, "outcome"),
                at: codec::get(c, "at").as_f64().unwrap_or(0.0),
                duration_secs: codec::get(c, "duration_secs")
                    .as_f64()
                    .map_or(0, |d| d.max(0.0) as u64),
            })
            .collect();
        let Some(a) = weak.upgrade() else { return };
        let mut app = a.borrow_mut();
        if app.session.me.is_none() {
            return; // signed out meanwhile
        }
        app.history = items;
        crate::render::render_history(&app);
    });
}
