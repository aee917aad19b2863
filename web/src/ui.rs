//! The page. Builds the DOM with `web-sys`; every text goes in through
//! `set_text_content`, never as HTML, so nothing a user or peer sends is rendered as
//! markup.

use wasm_bindgen::prelude::*;
use web_sys::{Document, Element};

fn document() -> Result<Document, JsValue> {
    web_sys::window()
        .and_then(|w| w.document())
        .ok_or_else(|| JsValue::from_str("no document"))
}

fn element(doc: &Document, tag: &str, text: &str) -> Result<Element, JsValue> {
    let el = doc.create_element(tag)?;
    el.set_text_content(Some(text));
    Ok(el)
}

/// Replaces the loading notice with the client.
pub fn mount() -> Result<(), JsValue> {
    let doc = document()?;
    let app = doc
        .get_element_by_id("app")
        .ok_or_else(|| JsValue::from_str("index.html has no #app"))?;
    app.set_text_content(None);
    app.set_attribute("data-state", "ready")?;
    let heading = element(&doc, "h1", "Shieldcall")?;
    let lead = element(
        &doc,
        "p",
        "Calls that are end-to-end encrypted, and that you can check yourselves: read the 20-digit code aloud.",
    )?;
    app.append_child(&heading)?;
    app.append_child(&lead)?;
    Ok(())
}
