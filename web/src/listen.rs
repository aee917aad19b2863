//! Event listeners that belong to their owner: dropping a [`Listener`] removes it.

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{Event, EventTarget};

/// One registered event listener.
pub struct Listener {
    target: EventTarget,
    event: &'static str,
    closure: Closure<dyn FnMut(Event)>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("event", &self.event)
            .finish()
    }
}

impl Listener {
    /// Adds `f` as a listener for `event` on `target`.
    pub fn new(
        target: &EventTarget,
        event: &'static str,
        f: impl FnMut(Event) + 'static,
    ) -> Result<Self, JsValue> {
        let closure = Closure::<dyn FnMut(Event)>::new(f);
        target.add_event_listener_with_callback(event, closure.as_ref().unchecked_ref())?;
        Ok(Self {
            target: target.clone(),
            event,
            closure,
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self
            .target
            .remove_event_listener_with_callback(self.event, self.closure.as_ref().unchecked_ref());
    }
}

/// A `setInterval` or `setTimeout` that is cleared when dropped.
pub struct Timer {
    id: i32,
    repeat: bool,
    _closure: Closure<dyn FnMut()>,
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timer").field("id", &self.id).finish()
    }
}

impl Timer {
    /// Calls `f` every `ms` milliseconds (`repeat`) or once after `ms`.
    pub fn new(ms: i32, repeat: bool, f: impl FnMut() + 'static) -> Result<Self, JsValue> {
        Self::boxed(ms, repeat, Box::new(f))
    }

    /// [`Timer::new`] for a boxed `f`: one copy of this code in the bundle,
    /// whatever the callers' closures.
    #[inline(never)]
    fn boxed(ms: i32, repeat: bool, f: Box<dyn FnMut()>) -> Result<Self, JsValue> {
        let window = web_sys::window().ok_or_else(|| JsValue::from_str("no window"))?;
        let closure = Closure::<dyn FnMut()>::wrap(f);
        let cb = closure.as_ref().unchecked_ref();
        let id = if repeat {
            window.set_interval_with_callback_and_timeout_and_arguments_0(cb, ms)?
        } else {
            window.set_timeout_with_callback_and_timeout_and_arguments_0(cb, ms)?
        };
        Ok(Self {
            id,
            repeat,
            _closure: closure,
        })
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        if let Some(w) = web_sys::window() {
            if self.repeat {
                w.clear_interval_with_handle(self.id);
            } else {
                w.clear_timeout_with_handle(self.id);
            }
        }
    }
}
