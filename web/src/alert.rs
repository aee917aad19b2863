//! Telling the person a call is ringing: a ring tone, and a browser notification
//! when the tab is in the background. Both start when an incoming call starts to
//! ring and stop (the tone silent, the notification closed) the moment it stops,
//! however it stops; dropping the [`Alert`] does both.
//!
//! Limits. Browsers let a page play sound only after the person interacted with
//! it (signing in counts); a page opened with a kept session that was never
//! clicked rings silently until it is (`data-ring="suspended"`), which is what the
//! notification is for. A notification needs the person's permission, asked for
//! from Settings (a browser asks only on a click), and is shown only while the
//! tab is hidden; no service worker: a closed tab gets no notification.

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{
    AudioContext, AudioContextState, Element, Notification, NotificationOptions,
    NotificationPermission,
};

use crate::dom;

/// The ring's cadence: two 0.4 s tones 0.2 s apart, then 2 s of silence (the
/// British double ring, at 400 + 450 Hz: unlike any other sound on a computer).
const CADENCE_S: f64 = 3.0;
const TONES_HZ: [f32; 2] = [400.0, 450.0];
const BURSTS: [(f64, f64); 2] = [(0.0, 0.4), (0.6, 1.0)];
/// Loud enough to notice, well below clipping.
const VOLUME: f32 = 0.12;
/// Scheduled at once up to the relay's ring timeout (45 s), so the tone needs no
/// timer; it stops early when the alert is dropped.
const RING_S: f64 = 45.0;

/// A ringing call's tone and notification.
pub struct Alert {
    tone: Option<AudioContext>,
    notification: Option<Notification>,
    _on_click: Option<Closure<dyn FnMut()>>,
    /// The element that carries the `data-ring` / `data-notified` test hooks.
    hook: Element,
}

impl std::fmt::Debug for Alert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alert")
            .field("tone", &self.tone.is_some())
            .field("notification", &self.notification.is_some())
            .finish()
    }
}

impl Alert {
    /// Starts ringing for a call from `peer`; `hook` (the incoming dialog)
    /// carries `data-ring` (the tone's audio state) and `data-notified`.
    pub fn start(peer: &str, hook: &Element) -> Self {
        let tone = ring_tone().ok();
        let state = match tone.as_ref().map(AudioContext::state) {
            Some(AudioContextState::Running) => "running",
            Some(_) => "suspended",
            None => "unavailable",
        };
        dom::attr(hook, "data-ring", state);
        let (notification, on_click) = match notify(peer) {
            Some((n, c)) => (Some(n), Some(c)),
            None => (None, None),
        };
        dom::attr(
            hook,
            "data-notified",
            if notification.is_some() {
                "true"
            } else {
                "false"
            },
        );
        Self {
            tone,
            notification,
            _on_click: on_click,
            hook: hook.clone(),
        }
    }
}

impl Drop for Alert {
    fn drop(&mut self) {
        if let Some(ctx) = self.tone.take() {
            let _ = ctx.close();
        }
        if let Some(n) = self.notification.take() {
            n.set_onclick(None);
            n.close();
        }
        let _ = self.hook.remove_attribute("data-ring");
        let _ = self.hook.remove_attribute("data-notified");
    }
}

/// The ring, scheduled on a fresh audio context.
fn ring_tone() -> Result<AudioContext, JsValue> {
    let ctx = AudioContext::new()?;
    let gain = ctx.create_gain()?;
    gain.gain().set_value(0.0);
    gain.connect_with_audio_node(&ctx.destination())?;
    let t0 = ctx.current_time() + 0.05;
    let mut cycle = 0.0;
    while cycle < RING_S {
        for (on, off) in BURSTS {
            gain.gain().set_value_at_time(VOLUME, t0 + cycle + on)?;
            gain.gain().set_value_at_time(0.0, t0 + cycle + off)?;
        }
        cycle += CADENCE_S;
    }
    for hz in TONES_HZ {
        let osc = ctx.create_oscillator()?;
        osc.frequency().set_value(hz);
        osc.connect_with_audio_node(&gain)?;
        osc.start_with_when(t0)?;
        osc.stop_with_when(t0 + RING_S)?;
    }
    Ok(ctx)
}

/// A notification, if the tab is hidden and the person allowed them; a click
/// brings the tab forward.
fn notify(peer: &str) -> Option<(Notification, Closure<dyn FnMut()>)> {
    let hidden = dom::document().map(|d| d.hidden()).unwrap_or(false);
    if !hidden || Notification::permission() != NotificationPermission::Granted {
        return None;
    }
    let opts = NotificationOptions::new();
    opts.set_body(&format!("{peer} is calling. Open Shieldcall to answer."));
    opts.set_tag("shieldcall-incoming");
    opts.set_require_interaction(true);
    let n = Notification::new_with_options("Incoming call", &opts).ok()?;
    let weak = n.clone();
    let on_click = Closure::<dyn FnMut()>::new(move || {
        if let Some(w) = web_sys::window() {
            let _ = w.focus();
        }
        weak.close();
    });
    n.set_onclick(Some(on_click.as_ref().unchecked_ref()));
    Some((n, on_click))
}

/// What the browser says of notifications, for Settings.
pub fn permission() -> NotificationPermission {
    Notification::permission()
}

/// Asks the browser for permission to notify (from a click); resolves when the
/// person answered.
pub async fn ask_permission() -> Result<(), JsValue> {
    wasm_bindgen_futures::JsFuture::from(Notification::request_permission()?).await?;
    Ok(())
}
