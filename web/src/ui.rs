//! The page's elements, built once at start. Views are shown and hidden and their
//! texts updated; only the contact list and admin tables are rebuilt. Every element
//! a test or tester needs carries a `data-testid` (listed in `docs/architecture.md`,
//! "Hooks for tests and testers").

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{Element, HtmlMediaElement};

/// Declares [`Ui`] from one list: each field, its doc, and the `data-testid`
/// of its element, so the struct, the lookups and the construction cannot drift.
macro_rules! elements {
    ($($(#[$doc:meta])* $field:ident = $id:literal,)*) => {
        /// Handles on the elements the app updates.
        #[derive(Debug)]
        pub struct Ui {
            /// `#app`.
            pub root: Element,
            /// Remote video.
            pub remote_video: HtmlMediaElement,
            /// Local video.
            pub local_video: HtmlMediaElement,
            $($(#[$doc])* pub $field: Element,)*
        }

        /// The `data-testid` of each plain element of [`Ui`], in field order.
        const IDS: &[&str] = &[$($id),*];

        impl Ui {
            /// Builds the page inside `#app`.
            pub fn build(root: Element) -> Result<Self, JsValue> {
                root.set_inner_html(TEMPLATE);
                // Every element is looked up first, then the struct is built
                // without an early return inside it: a `?` per field made the
                // compiler write the drops of every field before it, quadratic
                // in the fields (27 KB of the bundle).
                let mut found = Vec::with_capacity(IDS.len());
                for id in IDS {
                    found.push(find(&root, id)?);
                }
                let [$($field),*] = <[Element; IDS.len()]>::try_from(found)
                    .map_err(|_| JsValue::from_str("ui: element count"))?;
                let remote_video: HtmlMediaElement = find(&root, "remote-video")?.dyn_into()?;
                let local_video: HtmlMediaElement = find(&root, "local-video")?.dyn_into()?;
                local_video.set_muted(true);
                Ok(Self {
                    root,
                    remote_video,
                    local_video,
                    $($field,)*
                })
            }
        }
    };
}

elements! {
    /// Header: who is signed in.
    me = "me",
    /// Header: the admin link (admins only).
    admin_link = "admin-link",
    /// Header: settings and sign-out buttons.
    settings_button = "open-settings",
    /// Sign out.
    signout = "signout",
    /// "Signalling is reconnecting…".
    relay_banner = "relay-status",
    /// Messages: refusals, failures, warnings.
    notice = "notice",
    /// Text of the notice.
    notice_text = "notice-text",
    /// Sign-in view.
    login = "login",
    /// Sign-in form.
    login_form = "login-form",
    /// User name input.
    login_user = "login-user",
    /// Password input.
    login_password = "login-password",
    /// Sign-in error.
    login_error = "login-error",
    /// Contacts view.
    home = "home",
    /// Contact list (`ul`).
    contacts = "contacts",
    /// The call history's heading (with the number missed).
    history_heading = "history-heading",
    /// The call history (`ul`).
    history = "history",
    /// Settings view.
    settings = "settings",
    /// The E2EE switch (checkbox).
    e2ee_toggle = "settings-e2ee-toggle",
    /// Which policy decides.
    policy_line = "settings-policy",
    /// Asks for permission to notify of incoming calls.
    notify_button = "settings-notify",
    /// What the browser says of notifications.
    notify_state = "settings-notify-state",
    /// Incoming call dialog.
    incoming = "incoming",
    /// Who is calling.
    incoming_text = "incoming-text",
    /// Call view.
    call = "call",
    /// The shield (a button that opens the panel).
    indicator = "e2ee-indicator",
    /// The shield's words.
    indicator_label = "e2ee-label",
    /// Verification panel.
    panel = "e2ee-panel",
    /// Panel heading ("End-to-end encrypted", ...).
    panel_title = "e2ee-panel-title",
    /// The 20-digit code.
    code = "security-code",
    /// DTLS version, cipher, SRTP profile, and how the certificates were checked.
    dtls_line = "dtls-details",
    /// A standard call that this user's setting wanted end-to-end encrypted.
    downgrade = "downgrade-warning",
    /// "Verified" note.
    verified = "verified",
    /// "Codes match" / "Codes differ".
    codes_match = "codes-match",
    /// "Codes differ".
    codes_differ = "codes-differ",
    /// Peer name in the call view.
    call_peer = "call-peer",
    /// `call-state`.
    call_state = "call-state",
    /// Duration.
    duration = "call-duration",
    /// Both videos (hidden once the call is over).
    videos = "videos",
    /// Mute.
    mute = "mute",
    /// Camera off.
    camera = "camera",
    /// Hang up.
    hangup = "hangup",
    /// Close the ended call view.
    call_close = "call-close",
    /// Features E2EE turns off, shown greyed with the reason.
    features = "call-features",
    /// "On hold", and who put the call on hold.
    hold_status = "hold-status",
    /// The bar for a call this user has on another device.
    elsewhere = "elsewhere",
    /// Its sentence.
    elsewhere_text = "elsewhere-text",
    /// "Move here".
    move_here = "move-here",
    /// Why "Move here" is off (an E2EE call).
    move_here_why = "move-here-why",
    /// "Pick up a parked call".
    pickup_form = "pickup-form",
    /// Its code field.
    pickup_code = "pickup-code",
    /// "Transfer to", opened by the transfer feature.
    transfer_form = "transfer-form",
    /// Its user field.
    transfer_to = "transfer-to",
    /// The bar for a call held during a consultation.
    held = "held-call",
    /// Its sentence.
    held_text = "held-text",
    /// "Transfer A to B": completes the consult transfer.
    complete_transfer = "complete-transfer",
    /// "Merge": the held call and the consultation become one group call.
    merge = "merge-calls",
    /// Each pair's code in a group call.
    group_codes = "group-codes",
    /// "Recording — ...", while the call is recorded.
    recording_banner = "recording-banner",
    /// Its sentence.
    recording_text = "recording-text",
    /// "Allow" (this person agrees to be recorded).
    recording_allow = "recording-allow",
    /// "Decline", or once agreed "Stop recording": the recording stops.
    recording_stop = "recording-stop",
    /// "Live captions — ...", while the call is captioned.
    captions_banner = "captions-banner",
    /// Its sentence.
    captions_text = "captions-text",
    /// "Allow" (this person agrees to be captioned).
    captions_allow = "captions-allow",
    /// "Decline", or once agreed "Stop captions": the captions stop.
    captions_stop = "captions-stop",
    /// What was said, as captions.
    captions = "captions",
    /// The recordings this person is in.
    recordings = "recordings",
    /// "Leave a voicemail", after a call that did not connect.
    voicemail_leave = "voicemail-leave",
    /// Admin view.
    admin = "admin",
}

/// The page's static markup. It holds no data: every text that comes from a user,
/// a peer or the relay is set later through `set_text_content` or `set_attribute`.
/// Markup as a constant is a fraction of the Wasm that building each element in
/// code costs.
const TEMPLATE: &str = r#"<header class="bar"><strong class="brand">Shieldcall</strong><span data-testid="me"></span><button type="button" data-testid="open-settings">Settings</button><a href="/admin" data-testid="admin-link">Admin</a><button type="button" data-testid="signout">Sign out</button></header>
<div class="banner" role="status" data-testid="relay-status" hidden>Signalling is reconnecting…</div>
<div class="notice" role="alert" data-testid="notice" hidden><p data-testid="notice-text"></p><button type="button" data-testid="notice-dismiss">Dismiss</button></div>
<section aria-labelledby="login-h" data-testid="login"><h1 id="login-h">Sign in to Shieldcall</h1><form data-testid="login-form"><label for="login-user">User name (name@domain)</label><input id="login-user" data-testid="login-user" autocomplete="username" required><label for="login-password">Password</label><input id="login-password" type="password" data-testid="login-password" autocomplete="current-password" required><button type="submit" data-testid="login-submit">Sign in</button><p class="error" role="alert" data-testid="login-error"></p></form></section>
<div class="incoming" role="alertdialog" aria-labelledby="incoming-text" data-testid="incoming" hidden><p id="incoming-text" data-testid="incoming-text"></p><button type="button" data-testid="incoming-accept" class="accept">Accept</button><button type="button" data-testid="incoming-decline" class="decline">Decline</button></div>
<section class="call" aria-label="Call" data-testid="call" hidden><div class="call-top"><button type="button" class="indicator" data-testid="e2ee-indicator" data-state="connecting" aria-expanded="false" aria-controls="e2ee-panel"><svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true"><path class="shield" d="M12 2 4 5v6c0 5 3.4 9.4 8 11 4.6-1.6 8-6 8-11V5z"/><g class="lock"><rect x="8.5" y="11" width="7" height="5.5" rx="1"/><path d="M10 11V9.5a2 2 0 0 1 4 0V11" fill="none" stroke-width="1.6"/></g><g class="warn"><path d="M12 7v6" stroke-width="2"/><circle cx="12" cy="16.5" r="1.2"/></g></svg><span data-testid="e2ee-label"></span></button><strong data-testid="call-peer"></strong><span data-testid="call-state" role="status"></span><span data-testid="call-duration" class="muted"></span></div>
<div id="e2ee-panel" class="panel" data-testid="e2ee-panel" hidden><h3 data-testid="e2ee-panel-title"></h3><p class="code" data-testid="security-code"></p><ul class="codes" data-testid="group-codes" hidden></ul><p class="muted" data-testid="dtls-details"></p><p class="warn" data-testid="downgrade-warning" hidden></p><p data-testid="verified">Verified: you both read the same code.</p><button type="button" data-testid="codes-match">Codes match</button><button type="button" data-testid="codes-differ">Codes differ</button></div>
<p class="hold" role="status" data-testid="hold-status" hidden></p>
<div class="held recording" role="alert" data-testid="recording-banner" hidden><p data-testid="recording-text"></p><button type="button" data-testid="recording-allow">Allow</button><button type="button" data-testid="recording-stop">Stop recording</button></div>
<div class="held recording" role="alert" data-testid="captions-banner" hidden><p data-testid="captions-text"></p><button type="button" data-testid="captions-allow">Allow</button><button type="button" data-testid="captions-stop">Stop captions</button></div>
<div class="held" role="status" data-testid="held-call" hidden><p data-testid="held-text"></p><button type="button" data-testid="complete-transfer">Transfer</button><button type="button" data-testid="merge-calls">Merge</button></div>
<div class="videos" data-testid="videos"><video autoplay playsinline data-testid="remote-video" class="remote"></video><video autoplay playsinline muted data-testid="local-video" class="local"></video></div>
<div class="captions" aria-live="polite" data-testid="captions" hidden></div>
<div class="controls"><button type="button" data-testid="mute" aria-pressed="false"><svg class="icon" viewBox="0 0 24 24" aria-hidden="true"><rect x="9" y="3" width="6" height="11" rx="3"/><path d="M6 11a6 6 0 0 0 12 0M12 17v4M9 21h6" fill="none" stroke="currentColor" stroke-width="2"/></svg><span>Mute</span></button><button type="button" data-testid="camera" aria-pressed="false"><svg class="icon" viewBox="0 0 24 24" aria-hidden="true"><rect x="3" y="7" width="12" height="10" rx="2"/><path d="M15 11l6-3v8l-6-3z"/></svg><span>Camera off</span></button><button type="button" data-testid="hangup" class="decline"><svg class="icon" viewBox="0 0 24 24" aria-hidden="true"><path d="M2 14.5C7 9.2 17 9.2 22 14.5l-2.6 2.6-3.9-1.9v-2.6a13 13 0 0 0-7 0v2.6l-3.9 1.9z"/></svg><span>Hang up</span></button><button type="button" data-testid="call-close">Close</button><button type="button" data-testid="voicemail-leave" hidden>Leave a voicemail</button></div>
<details class="more" data-testid="call-more"><summary>More call features</summary><ul class="features" data-testid="call-features"></ul><form class="transfer" data-testid="transfer-form" hidden><label for="transfer-to">Transfer to</label><input id="transfer-to" data-testid="transfer-to" autocomplete="off" placeholder="name@domain" required><button type="submit" data-testid="transfer-submit">Transfer</button><button type="button" data-testid="transfer-consult">Consult first</button><button type="button" data-testid="transfer-add">Add to call</button></form></details></section>
<div class="elsewhere" role="status" data-testid="elsewhere" hidden><p data-testid="elsewhere-text"></p><button type="button" data-testid="move-here">Move here</button><p class="muted" data-testid="move-here-why" hidden>Off in end-to-end encrypted calls: such a call stays on the device that answered it. Turn E2EE off in Settings → Privacy to move calls.</p></div>
<section aria-labelledby="contacts-h" data-testid="home" hidden><h2 id="contacts-h">Contacts</h2><ul class="contacts" data-testid="contacts"></ul><h2 id="history-h" data-testid="history-heading">Recent calls</h2><ul class="history" aria-labelledby="history-h" data-testid="history"></ul><h2>Recordings</h2><ul class="history" data-testid="recordings"></ul><form class="pickup" data-testid="pickup-form"><label for="pickup-code">Pick up a parked call: code</label><input id="pickup-code" data-testid="pickup-code" inputmode="numeric" maxlength="2" size="3" autocomplete="off" required><button type="submit" data-testid="pickup-submit">Pick up</button></form></section>
<section aria-labelledby="privacy-h" data-testid="settings" hidden><h2 id="privacy-h">Settings → Privacy</h2><label class="switch"><input type="checkbox" role="switch" data-testid="settings-e2ee-toggle"><span>End-to-end encrypted calls</span></label><p class="muted" data-testid="settings-policy"></p><p><button type="button" data-testid="settings-notify">Notify me of calls while this tab is in the background</button> <span class="muted" data-testid="settings-notify-state"></span></p><p class="muted">When both people have this on, calls are end-to-end encrypted and show a 20-digit code to compare. Hold, recording, captions, transfer, park, merge, moving to another device, adding people and voicemail are off in such calls.</p></section>
<section class="admin" data-testid="admin" hidden></section>"#;

/// The element of `root` with `data-testid` `testid`. Not inlined: `Ui::build`
/// calls it for every field, and inlined it made that one function 27 KB of
/// the bundle.
#[inline(never)]
fn find(root: &Element, testid: &str) -> Result<Element, JsValue> {
    let mut selector = String::with_capacity(testid.len() + 16);
    selector.push_str("[data-testid=\"");
    selector.push_str(testid);
    selector.push_str("\"]");
    root.query_selector(&selector)?
        .ok_or_else(|| JsValue::from_str(testid))
}
