//! `shieldcall-admin`: the admin policy page, `/admin`, as its own WebAssembly
//! bundle, so that the call client everyone loads does not carry it.
//!
//! `www/boot.js` loads this bundle beside the call client on `/admin` only. The call
//! client signs the person in and draws the page's frame; once an admin is signed
//! in it marks the admin section ([`shieldcall_web::ADMIN_SECTION`]) with
//! [`shieldcall_web::ADMIN_OPEN`] and fires [`shieldcall_web::ADMIN_EVENT`] on the
//! document. This bundle listens for that event (and looks for the mark, in case
//! it started last) and then draws the page into the section (`page` wires it,
//! `views` draws it). The relay's admin
//! API checks the session on every request; the hand-off only says when to draw.

#[cfg(target_arch = "wasm32")]
mod page;
#[cfg(target_arch = "wasm32")]
mod views;

#[cfg(target_arch = "wasm32")]
mod start {
    use std::cell::RefCell;

    use shieldcall_web::listen::Listener;
    use shieldcall_web::{ADMIN_EVENT, ADMIN_OPEN, ADMIN_SECTION, dom};
    use wasm_bindgen::prelude::*;

    thread_local! {
        /// The document's hand-off listener, then the page's two listeners once
        /// the section is wired: they live as long as the page.
        static KEPT: RefCell<Vec<Listener>> = const { RefCell::new(Vec::new()) };
    }

    /// Entry point, run by the generated glue when the module loads.
    #[wasm_bindgen(start)]
    pub fn start() -> Result<(), JsValue> {
        let doc = dom::document()?;
        let l = Listener::new(&doc, ADMIN_EVENT, |_| open())?;
        KEPT.with(|k| k.borrow_mut().push(l));
        open();
        Ok(())
    }

    /// Draws the page if the call client has opened the section; wires the
    /// section's listeners the first time.
    fn open() {
        let Some(root) = dom::document()
            .ok()
            .and_then(|d| d.query_selector(ADMIN_SECTION).ok().flatten())
        else {
            return;
        };
        if !root.has_attribute(ADMIN_OPEN) {
            return;
        }
        let first = KEPT.with(|k| k.borrow().len() == 1);
        if first {
            match super::page::wire(&root) {
                Ok(ls) => KEPT.with(|k| k.borrow_mut().extend(ls)),
                Err(e) => {
                    let why = e
                        .as_string()
                        .unwrap_or_else(|| "a browser call failed".into());
                    root.set_text_content(Some(&format!("The admin page could not start: {why}")));
                    return;
                }
            }
        }
        super::page::load(&root);
    }
}
