//! Small DOM helpers. Text goes in only through `set_text_content` and attribute
//! values through `set_attribute`: nothing is ever parsed as HTML.

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{Document, Element, HtmlElement, HtmlInputElement};

/// The page's document.
pub fn document() -> Result<Document, JsValue> {
    web_sys::window()
        .and_then(|w| w.document())
        .ok_or_else(|| JsValue::from_str("no document"))
}

/// Creates `<tag>` with attributes and text.
pub fn el(tag: &str, attrs: &[(&str, &str)], text: &str) -> Result<Element, JsValue> {
    let e = document()?.create_element(tag)?;
    for (k, v) in attrs {
        e.set_attribute(k, v)?;
    }
    if !text.is_empty() {
        e.set_text_content(Some(text));
    }
    Ok(e)
}

/// Appends children.
pub fn append(parent: &Element, children: &[&Element]) -> Result<(), JsValue> {
    for c in children {
        parent.append_child(c)?;
    }
    Ok(())
}

/// Appends a freshly built child.
pub fn add(parent: &Element, child: Result<Element, JsValue>) -> Result<(), JsValue> {
    let child = child?;
    parent.append_child(&child)?;
    Ok(())
}

/// Shows or hides an element.
///
/// Like [`text`] and [`attr`], it writes to the DOM only when the value changes:
/// the views are re-rendered on every signalling message, and each write would
/// make the browser restyle the page in the middle of call setup.
pub fn show(e: &Element, visible: bool) {
    if let Some(h) = e.dyn_ref::<HtmlElement>().filter(|h| h.hidden() == visible) {
        h.set_hidden(!visible);
    }
}

/// Sets the text (only if it differs).
pub fn text(e: &Element, t: &str) {
    if e.text_content().as_deref() != Some(t) {
        e.set_text_content(Some(t));
    }
}

/// Sets an attribute (only if it differs).
pub fn attr(e: &Element, name: &str, value: &str) {
    if e.get_attribute(name).as_deref() != Some(value) {
        let _ = e.set_attribute(name, value);
    }
}

/// The value of an input.
pub fn value(e: &Element) -> String {
    e.dyn_ref::<HtmlInputElement>()
        .map(HtmlInputElement::value)
        .unwrap_or_default()
}

/// Clears an input.
pub fn clear(e: &Element) {
    if let Some(i) = e.dyn_ref::<HtmlInputElement>() {
        i.set_value("");
    }
}

/// Sets a boolean attribute such as `disabled`.
pub fn flag(e: &Element, name: &str, on: bool) {
    let _ = if on {
        e.set_attribute(name, "")
    } else {
        e.remove_attribute(name)
    };
}

/// The nearest ancestor-or-self with `attr`, and its value.
pub fn closest_attr(target: Option<web_sys::EventTarget>, attr: &str) -> Option<(Element, String)> {
    let start: Element = target?.dyn_into().ok()?;
    let found = start.closest(&format!("[{attr}]")).ok()??;
    let v = found.get_attribute(attr)?;
    Some((found, v))
}

/// The current path, e.g. `/admin`.
pub fn path() -> String {
    web_sys::window()
        .and_then(|w| w.location().pathname().ok())
        .unwrap_or_default()
}

/// Milliseconds since the page loaded, monotonic.
pub fn now_ms() -> u64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map(|p| p.now() as u64)
        .unwrap_or(0)
}

/// Runs `f` on the page's event loop, as `wasm_bindgen_futures::spawn_local`
/// does, through one non-generic entry point: the executor's spawn code is
/// then in the bundle once instead of once per future type (about 200 bytes
/// each, for some twenty call sites). The price is one allocation per task.
pub fn spawn(f: impl std::future::Future<Output = ()> + 'static) {
    spawn_boxed(Box::pin(f));
}

#[inline(never)]
fn spawn_boxed(f: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>) {
    wasm_bindgen_futures::spawn_local(f);
}

/// What a JavaScript error says: its text, or its `message`.
pub fn js_text(e: &JsValue) -> String {
    e.as_string()
        .or_else(|| {
            js_sys::Reflect::get(e, &"message".into())
                .ok()
                .and_then(|m| m.as_string())
        })
        .unwrap_or_else(|| "unknown error".into())
}

/// Completes after `ms` milliseconds (a `setTimeout`).
pub async fn sleep(ms: i32) {
    let p = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(p).await;
}
