//! The relay serves the built client, and the Wasm module starts in headless
//! Chromium under the strict Content-Security-Policy.

use shieldcall_e2e::{Relay, dump_dom};

#[test]
fn wasm_client_starts_in_chromium() {
    let relay = Relay::start().expect("relay");
    let dom = dump_dom(&format!("{}/", relay.url), 5000).expect("chromium");
    assert!(
        dom.contains(r#"data-state="ready""#),
        "the client did not mount; DOM was:\n{dom}"
    );
    assert!(dom.contains("<h1>Shieldcall</h1>"), "{dom}");
}

#[test]
fn client_routes_fall_back_to_the_app() {
    let relay = Relay::start().expect("relay");
    let dom = dump_dom(&format!("{}/admin", relay.url), 5000).expect("chromium");
    assert!(dom.contains(r#"data-state="ready""#), "{dom}");
}
