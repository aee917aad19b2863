//! The page's elements, built once at start. Views are shown and hidden and their
//! texts updated; only the contact list and admin tables are rebuilt. Every element
//! a test or tester needs carries the `data-testid` DESIGN.md lists.

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{Element, HtmlMediaElement};

use crate::dom::{append, el, show};

/// Handles on the elements the app updates.
#[derive(Debug)]
pub struct Ui {
    /// `#app`.
    pub root: Element,
    /// Header: who is signed in.
    pub me: Element,
    /// Header: the admin link (admins only).
    pub admin_link: Element,
    /// Header: settings and sign-out buttons.
    pub settings_button: Element,
    /// Sign out.
    pub signout: Element,
    /// "Signalling is reconnecting…".
    pub relay_banner: Element,
    /// Messages: refusals, failures, warnings.
    pub notice: Element,
    /// Text of the notice.
    pub notice_text: Element,
    /// Sign-in view.
    pub login: Element,
    /// Sign-in form.
    pub login_form: Element,
    /// User name input.
    pub login_user: Element,
    /// Password input.
    pub login_password: Element,
    /// Sign-in error.
    pub login_error: Element,
    /// Contacts view.
    pub home: Element,
    /// Contact list (`ul`).
    pub contacts: Element,
    /// Settings view.
    pub settings: Element,
    /// The E2EE switch (checkbox).
    pub e2ee_toggle: Element,
    /// Which policy decides.
    pub policy_line: Element,
    /// Incoming call dialog.
    pub incoming: Element,
    /// Who is calling.
    pub incoming_text: Element,
    /// Call view.
    pub call: Element,
    /// The shield (a button that opens the panel).
    pub indicator: Element,
    /// Verification panel.
    pub panel: Element,
    /// Panel heading ("End-to-end encrypted", ...).
    pub panel_title: Element,
    /// The 20-digit code.
    pub code: Element,
    /// DTLS version, cipher, SRTP profile.
    pub dtls_line: Element,
    /// "Verified" note.
    pub verified: Element,
    /// "Codes match" / "Codes differ".
    pub codes_match: Element,
    /// "Codes differ".
    pub codes_differ: Element,
    /// Peer name in the call view.
    pub call_peer: Element,
    /// `call-state`.
    pub call_state: Element,
    /// Duration.
    pub duration: Element,
    /// Remote video.
    pub remote_video: HtmlMediaElement,
    /// Local video.
    pub local_video: HtmlMediaElement,
    /// Mute.
    pub mute: Element,
    /// Camera off.
    pub camera: Element,
    /// Hang up.
    pub hangup: Element,
    /// Close the ended call view.
    pub call_close: Element,
    /// Features E2EE turns off, shown greyed with the reason.
    pub features: Element,
    /// Admin view.
    pub admin: Element,
}

fn button(label: &str, testid: &str) -> Result<Element, JsValue> {
    el(
        "button",
        &[("type", "button"), ("data-testid", testid)],
        label,
    )
}

impl Ui {
    /// Builds the page inside `#app`.
    pub fn build(root: Element) -> Result<Self, JsValue> {
        root.set_text_content(None);

        let header = el("header", &[("class", "bar")], "")?;
        let brand = el("strong", &[("class", "brand")], "Shieldcall")?;
        let me = el("span", &[("data-testid", "me")], "")?;
        let settings_button = button("Settings", "open-settings")?;
        let admin_link = el(
            "a",
            &[("href", "/admin"), ("data-testid", "admin-link")],
            "Admin",
        )?;
        let signout = button("Sign out", "signout")?;
        append(
            &header,
            &[&brand, &me, &settings_button, &admin_link, &signout],
        )?;

        let relay_banner = el(
            "div",
            &[
                ("class", "banner"),
                ("role", "status"),
                ("data-testid", "relay-status"),
            ],
            "Signalling is reconnecting…",
        )?;
        let notice = el(
            "div",
            &[
                ("class", "notice"),
                ("role", "alert"),
                ("data-testid", "notice"),
            ],
            "",
        )?;
        let notice_text = el("p", &[], "")?;
        let notice_close = button("Dismiss", "notice-dismiss")?;
        append(&notice, &[&notice_text, &notice_close])?;

        // Sign-in.
        let login = el("section", &[("aria-labelledby", "login-h")], "")?;
        let login_h = el("h1", &[("id", "login-h")], "Sign in to Shieldcall")?;
        let login_form = el("form", &[("data-testid", "login-form")], "")?;
        let user_label = el("label", &[("for", "login-user")], "User name (name@domain)")?;
        let login_user = el(
            "input",
            &[
                ("id", "login-user"),
                ("data-testid", "login-user"),
                ("autocomplete", "username"),
                ("required", ""),
            ],
            "",
        )?;
        let pw_label = el("label", &[("for", "login-password")], "Password")?;
        let login_password = el(
            "input",
            &[
                ("id", "login-password"),
                ("type", "password"),
                ("data-testid", "login-password"),
                ("autocomplete", "current-password"),
                ("required", ""),
            ],
            "",
        )?;
        let login_submit = el(
            "button",
            &[("type", "submit"), ("data-testid", "login-submit")],
            "Sign in",
        )?;
        let login_error = el(
            "p",
            &[
                ("class", "error"),
                ("role", "alert"),
                ("data-testid", "login-error"),
            ],
            "",
        )?;
        append(
            &login_form,
            &[
                &user_label,
                &login_user,
                &pw_label,
                &login_password,
                &login_submit,
                &login_error,
            ],
        )?;
        append(&login, &[&login_h, &login_form])?;

        // Contacts.
        let home = el("section", &[("aria-labelledby", "contacts-h")], "")?;
        let contacts_h = el("h2", &[("id", "contacts-h")], "Contacts")?;
        let contacts = el(
            "ul",
            &[("class", "contacts"), ("data-testid", "contacts")],
            "",
        )?;
        append(&home, &[&contacts_h, &contacts])?;

        // Settings → Privacy.
        let settings = el(
            "section",
            &[
                ("aria-labelledby", "privacy-h"),
                ("data-testid", "settings"),
            ],
            "",
        )?;
        let privacy_h = el("h2", &[("id", "privacy-h")], "Settings → Privacy")?;
        let toggle_label = el("label", &[("class", "switch")], "")?;
        let e2ee_toggle = el(
            "input",
            &[
                ("type", "checkbox"),
                ("role", "switch"),
                ("data-testid", "settings-e2ee-toggle"),
            ],
            "",
        )?;
        let toggle_text = el("span", &[], "End-to-end encrypted calls")?;
        append(&toggle_label, &[&e2ee_toggle, &toggle_text])?;
        let policy_line = el(
            "p",
            &[("class", "muted"), ("data-testid", "settings-policy")],
            "",
        )?;
        let explain = el(
            "p",
            &[("class", "muted")],
            "When both people have this on, calls are end-to-end encrypted and show a 20-digit code to compare. \
             Recording, captions, transfer, park, merge, moving to another device, adding people and voicemail are off in such calls.",
        )?;
        append(
            &settings,
            &[&privacy_h, &toggle_label, &policy_line, &explain],
        )?;

        // Incoming call.
        let incoming = el(
            "div",
            &[
                ("class", "incoming"),
                ("role", "alertdialog"),
                ("aria-labelledby", "incoming-text"),
            ],
            "",
        )?;
        let incoming_text = el(
            "p",
            &[("id", "incoming-text"), ("data-testid", "incoming-text")],
            "",
        )?;
        let accept = el(
            "button",
            &[
                ("type", "button"),
                ("data-testid", "incoming-accept"),
                ("class", "accept"),
            ],
            "Accept",
        )?;
        let decline = el(
            "button",
            &[
                ("type", "button"),
                ("data-testid", "incoming-decline"),
                ("class", "decline"),
            ],
            "Decline",
        )?;
        append(&incoming, &[&incoming_text, &accept, &decline])?;

        // In call.
        let call = el(
            "section",
            &[
                ("class", "call"),
                ("aria-label", "Call"),
                ("data-testid", "call"),
            ],
            "",
        )?;
        let top = el("div", &[("class", "call-top")], "")?;
        let indicator = el(
            "button",
            &[
                ("type", "button"),
                ("class", "indicator"),
                ("data-testid", "e2ee-indicator"),
                ("data-state", "connecting"),
                ("aria-expanded", "false"),
                ("aria-controls", "e2ee-panel"),
            ],
            "",
        )?;
        let call_peer = el("strong", &[("data-testid", "call-peer")], "")?;
        let call_state = el(
            "span",
            &[("data-testid", "call-state"), ("role", "status")],
            "",
        )?;
        let duration = el(
            "span",
            &[("data-testid", "call-duration"), ("class", "muted")],
            "",
        )?;
        append(&top, &[&indicator, &call_peer, &call_state, &duration])?;

        let panel = el(
            "div",
            &[
                ("id", "e2ee-panel"),
                ("class", "panel"),
                ("data-testid", "e2ee-panel"),
            ],
            "",
        )?;
        let panel_title = el("h3", &[], "")?;
        let code = el(
            "p",
            &[("class", "code"), ("data-testid", "security-code")],
            "",
        )?;
        let dtls_line = el(
            "p",
            &[("class", "muted"), ("data-testid", "dtls-details")],
            "",
        )?;
        let verified = el(
            "p",
            &[("data-testid", "verified")],
            "Verified: you both read the same code.",
        )?;
        let codes_match = button("Codes match", "codes-match")?;
        let codes_differ = button("Codes differ", "codes-differ")?;
        append(
            &panel,
            &[
                &panel_title,
                &code,
                &dtls_line,
                &verified,
                &codes_match,
                &codes_differ,
            ],
        )?;

        let videos = el("div", &[("class", "videos")], "")?;
        let remote_video: HtmlMediaElement = el(
            "video",
            &[
                ("autoplay", ""),
                ("playsinline", ""),
                ("data-testid", "remote-video"),
                ("class", "remote"),
            ],
            "",
        )?
        .dyn_into()?;
        let local_video: HtmlMediaElement = el(
            "video",
            &[
                ("autoplay", ""),
                ("playsinline", ""),
                ("data-testid", "local-video"),
                ("class", "local"),
            ],
            "",
        )?
        .dyn_into()?;
        local_video.set_muted(true);
        append(&videos, &[&remote_video, &local_video])?;

        let controls = el("div", &[("class", "controls")], "")?;
        let mute = button("Mute", "mute")?;
        let camera = button("Camera off", "camera")?;
        let hangup = el(
            "button",
            &[
                ("type", "button"),
                ("data-testid", "hangup"),
                ("class", "decline"),
            ],
            "Hang up",
        )?;
        let call_close = button("Close", "call-close")?;
        append(&controls, &[&mute, &camera, &hangup, &call_close])?;
        let features = el(
            "ul",
            &[("class", "features"), ("data-testid", "call-features")],
            "",
        )?;
        append(&call, &[&top, &panel, &videos, &controls, &features])?;

        let admin = el(
            "section",
            &[("class", "admin"), ("data-testid", "admin")],
            "",
        )?;

        append(
            &root,
            &[
                &header,
                &relay_banner,
                &notice,
                &login,
                &incoming,
                &call,
                &home,
                &settings,
                &admin,
            ],
        )?;
        let ui = Self {
            root,
            me,
            admin_link,
            settings_button,
            signout,
            relay_banner,
            notice,
            notice_text,
            login,
            login_form,
            login_user,
            login_password,
            login_error,
            home,
            contacts,
            settings,
            e2ee_toggle,
            policy_line,
            incoming,
            incoming_text,
            call,
            indicator,
            panel,
            panel_title,
            code,
            dtls_line,
            verified,
            codes_match,
            codes_differ,
            call_peer,
            call_state,
            duration,
            remote_video,
            local_video,
            mute,
            camera,
            hangup,
            call_close,
            features,
            admin,
        };
        for e in [
            &ui.relay_banner,
            &ui.notice,
            &ui.incoming,
            &ui.call,
            &ui.panel,
            &ui.settings,
            &ui.admin,
            &ui.home,
        ] {
            show(e, false);
        }
        Ok(ui)
    }
}
