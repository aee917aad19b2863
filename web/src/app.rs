//! The client's controller: owns the UI, the relay socket, the current call's
//! state machine and its peer connection, and moves inputs and outputs between
//! them. Decisions about the call are the machine's (`crate::call`); this module
//! only carries them out.
//!
//! Browser callbacks never change state inside the callback that fired: socket
//! and peer events are re-posted with `spawn_local`, so an owner can drop the
//! object (and its closures) that reported them.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use shieldcall_proto::{
    CallFeature, CallMode, ClientMsg, E2eeSetting, IceServer, Presence, RelayMsg, Status,
};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use web_sys::{Event, HtmlInputElement};

use crate::call::{Call, Ending, Input, Output, PcCommand, Phase, UserAction};
use crate::codec;
use crate::dom::{self, append, el, flag, show, text};
use crate::listen::{Listener, Timer};
use crate::net::{self, Socket, SocketEvent};
use crate::rtc::{self, DtlsInfo, Peer, PeerEvent};
use crate::texts;
use crate::ui::Ui;

thread_local! {
    /// The one app of the page.
    static APP: RefCell<Option<Shared>> = const { RefCell::new(None) };
}

/// The shared app, as callbacks see it.
pub type Shared = Rc<RefCell<App>>;

/// The signed-in user.
#[derive(Debug, Clone)]
pub struct Me {
    /// Full user name.
    pub user: String,
    /// Administers their tenant.
    pub admin: bool,
}

/// Everything the client holds.
#[derive(Debug)]
pub struct App {
    /// The page's elements.
    pub ui: Ui,
    /// Who is signed in.
    pub me: Option<Me>,
    /// The relay connection, while open or opening.
    socket: Option<Socket>,
    /// Messages waiting for the socket to open.
    outbox: VecDeque<ClientMsg>,
    /// Failed connection attempts in a row, for the backoff.
    attempts: u32,
    /// Contacts and presence.
    contacts: Vec<Presence>,
    /// The user's E2EE setting as the relay last pushed it.
    e2ee: Option<E2eeSetting>,
    /// STUN/TURN servers from `welcome`.
    ice_servers: Vec<IceServer>,
    /// The current (or just ended) call.
    call: Option<Call>,
    /// Its peer connection, once created.
    peer: Option<Peer>,
    /// The caller's camera and microphone, opened while the call rings so the
    /// offer need not wait for them after the answer. Stopped if unused.
    preview: Option<web_sys::MediaStream>,
    /// Peer-connection commands not yet carried out, in order.
    pc_queue: VecDeque<PcCommand>,
    /// A command is running.
    pc_busy: bool,
    /// Bumped for each call, so late async results of an old call are dropped.
    generation: u32,
    /// DTLS details for the panel.
    dtls: Option<DtlsInfo>,
    /// The settings view is open.
    settings_open: bool,
    /// Listeners on the static UI, for the page's life.
    listeners: Vec<Listener>,
    /// The one-second ticker.
    ticker: Option<Timer>,
    /// The pending reconnect.
    reconnect: Option<Timer>,
}

impl App {
    fn new(ui: Ui) -> Self {
        Self {
            ui,
            me: None,
            socket: None,
            outbox: VecDeque::new(),
            attempts: 0,
            contacts: Vec::new(),
            e2ee: None,
            ice_servers: Vec::new(),
            call: None,
            peer: None,
            preview: None,
            pc_queue: VecDeque::new(),
            pc_busy: false,
            generation: 0,
            dtls: None,
            settings_open: false,
            listeners: Vec::new(),
            ticker: None,
            reconnect: None,
        }
    }

    fn send(&mut self, msg: ClientMsg) {
        let sent = self.socket.as_ref().is_some_and(|s| s.send(&msg));
        if !sent && self.outbox.len() < 64 {
            self.outbox.push_back(msg);
        }
    }

    fn notice(&self, message: &str) {
        text(&self.ui.notice_text, message);
        show(&self.ui.notice, !message.is_empty());
    }

    /// Keeps a listener for the page's life.
    pub fn keep_listener(&mut self, l: Listener) {
        self.listeners.push(l);
    }

    fn call_active(&self) -> bool {
        self.call.as_ref().is_some_and(|c| !c.is_ended())
    }
}

/// Starts the client in `#app`.
pub fn start() -> Result<(), JsValue> {
    let doc = dom::document()?;
    let root = doc
        .get_element_by_id("app")
        .ok_or_else(|| JsValue::from_str("index.html has no #app"))?;
    let ui = Ui::build(root.clone())?;
    let app: Shared = Rc::new(RefCell::new(App::new(ui)));
    wire(&app)?;
    root.set_attribute("data-state", "ready")?;
    let a = app.clone();
    spawn_local(async move {
        match net::request("GET", "/api/me", None).await {
            Ok(r) if r.ok() => signed_in(&a, &r.body),
            _ => render(&a),
        }
    });
    let a = app.clone();
    let ticker = Timer::new(1000, true, move || feed(&a, Input::Tick))?;
    app.borrow_mut().ticker = Some(ticker);
    // The app lives as long as the page; listeners and timers hold it weakly.
    APP.with(|slot| *slot.borrow_mut() = Some(app));
    Ok(())
}

fn on(
    app: &Shared,
    target: &web_sys::Element,
    event: &'static str,
    f: impl Fn(&Shared, Event) + 'static,
) -> Result<(), JsValue> {
    let weak = Rc::downgrade(app);
    let l = Listener::new(target, event, move |e| {
        if let Some(a) = weak.upgrade() {
            f(&a, e);
        }
    })?;
    app.borrow_mut().listeners.push(l);
    Ok(())
}

fn user_action(app: &Shared, target: &web_sys::Element, action: UserAction) -> Result<(), JsValue> {
    on(app, target, "click", move |a, _| {
        feed(a, Input::User(action))
    })
}

/// Registers the listeners of the static UI.
fn wire(app: &Shared) -> Result<(), JsValue> {
    let ui = {
        let a = app.borrow();
        let u = &a.ui;
        (
            u.login_form.clone(),
            u.contacts.clone(),
            u.e2ee_toggle.clone(),
            u.signout.clone(),
            u.settings_button.clone(),
            u.notice.clone(),
            u.indicator.clone(),
            u.mute.clone(),
            u.camera.clone(),
            u.call_close.clone(),
            u.features.clone(),
            [
                (
                    u.root.query_selector("[data-testid=incoming-accept]")?,
                    UserAction::Accept,
                ),
                (
                    u.root.query_selector("[data-testid=incoming-decline]")?,
                    UserAction::Decline,
                ),
                (Some(u.hangup.clone()), UserAction::Hangup),
                (Some(u.codes_match.clone()), UserAction::CodesMatch),
                (Some(u.codes_differ.clone()), UserAction::CodesDiffer),
            ],
        )
    };
    let (
        login_form,
        contacts,
        toggle,
        signout,
        settings,
        notice,
        indicator,
        mute,
        camera,
        close,
        features,
        actions,
    ) = ui;
    on(app, &login_form, "submit", |a, e| {
        e.prevent_default();
        login(a);
    })?;
    on(app, &contacts, "click", |a, e| {
        if let Some((_, user)) = dom::closest_attr(e.target(), "data-call") {
            place_call(a, &user);
        }
    })?;
    on(app, &toggle, "change", |a, e| {
        let checked = e
            .target()
            .and_then(|t| t.dyn_into::<HtmlInputElement>().ok())
            .is_some_and(|i| i.checked());
        a.borrow_mut().send(ClientMsg::SetE2ee { enabled: checked });
        // Show the stored value until the relay confirms the change.
        render_settings(&a.borrow());
    })?;
    on(app, &signout, "click", |a, _| sign_out(a))?;
    on(app, &settings, "click", |a, _| {
        {
            let mut app = a.borrow_mut();
            app.settings_open = !app.settings_open;
        }
        render(a);
    })?;
    on(app, &notice, "click", |a, e| {
        if dom::closest_attr(e.target(), "data-testid")
            .is_some_and(|(_, id)| id == "notice-dismiss")
        {
            a.borrow().notice("");
        }
    })?;
    // Hovering shows the panel; a click (or Enter) pins it open or closes it.
    on(app, &indicator, "click", |a, _| {
        let app = a.borrow();
        let pin = app.ui.indicator.get_attribute("data-pinned").as_deref() != Some("true");
        dom::attr(
            &app.ui.indicator,
            "data-pinned",
            if pin { "true" } else { "false" },
        );
        set_panel(&app, pin);
    })?;
    on(app, &indicator, "mouseenter", |a, _| {
        set_panel(&a.borrow(), true)
    })?;
    on(app, &indicator, "mouseleave", |a, _| {
        let app = a.borrow();
        if app.ui.indicator.get_attribute("data-pinned").as_deref() != Some("true") {
            set_panel(&app, false);
        }
    })?;
    for (button, audio) in [(mute, true), (camera, false)] {
        on(app, &button.clone(), "click", move |a, _| {
            let app = a.borrow();
            if let Some(peer) = &app.peer {
                let on = peer.toggle(audio);
                let label = match (audio, on) {
                    (true, true) => "Mute",
                    (true, false) => "Unmute",
                    (false, true) => "Camera off",
                    (false, false) => "Camera on",
                };
                text(&button, label);
                let _ = button.set_attribute("aria-pressed", if on { "false" } else { "true" });
            }
        })?;
    }
    on(app, &close, "click", |a, _| {
        {
            let mut app = a.borrow_mut();
            if !app.call_active() {
                app.call = None;
            }
        }
        render(a);
    })?;
    on(app, &features, "click", |a, e| {
        if let Some((_, f)) = dom::closest_attr(e.target(), "data-feature") {
            let feature = CallFeature::ALL.into_iter().find(|x| x.as_str() == f);
            let mut app = a.borrow_mut();
            if let (Some(feature), Some(call_id)) =
                (feature, app.call.as_ref().and_then(|c| c.id().cloned()))
            {
                app.send(ClientMsg::Feature { call_id, feature });
            }
        }
    })?;
    for (el, action) in actions {
        if let Some(el) = el {
            user_action(app, &el, action)?;
        }
    }
    crate::admin::wire(app)?;
    Ok(())
}

fn set_panel(app: &App, open: bool) {
    show(&app.ui.panel, open);
    dom::attr(
        &app.ui.indicator,
        "aria-expanded",
        if open { "true" } else { "false" },
    );
}

fn login(app: &Shared) {
    let (user, password) = {
        let a = app.borrow();
        (
            dom::value(&a.ui.login_user).trim().to_string(),
            dom::value(&a.ui.login_password),
        )
    };
    let a = app.clone();
    spawn_local(async move {
        let body = codec::object(&[
            ("user", user.as_str().into()),
            ("password", password.as_str().into()),
        ]);
        let message = match net::request("POST", "/api/login", Some(&body)).await {
            Ok(r) if r.ok() => {
                dom::clear(&a.borrow().ui.login_password);
                match net::request("GET", "/api/me", None).await {
                    Ok(me) if me.ok() => {
                        signed_in(&a, &me.body);
                        return;
                    }
                    _ => "Signed in, but the session was not kept. Are cookies allowed for this site?".to_string(),
                }
            }
            Ok(r) if r.status == 401 => "The user name or the password is wrong.".to_string(),
            Ok(r) if r.status == 429 => {
                "Too many sign-in attempts. Wait a minute, then try again.".to_string()
            }
            Ok(r) => r.error_text(),
            Err(_) => {
                "The server cannot be reached. Check your connection and try again.".to_string()
            }
        };
        text(&a.borrow().ui.login_error, &message);
    });
}

fn signed_in(app: &Shared, me: &JsValue) {
    let user = codec::string(me, "user");
    let admin = codec::boolean(me, "admin");
    {
        let mut a = app.borrow_mut();
        a.me = Some(Me { user, admin });
        text(&a.ui.login_error, "");
    }
    connect(app);
    render(app);
    if admin && dom::path() == "/admin" {
        crate::admin::load(app);
    }
}

fn sign_out(app: &Shared) {
    {
        let mut a = app.borrow_mut();
        if let Some(call_id) = a
            .call
            .as_ref()
            .filter(|c| !c.is_ended())
            .and_then(|c| c.id().cloned())
        {
            a.send(ClientMsg::Hangup {
                call_id,
                reason: shieldcall_proto::HangupReason::Normal,
            });
        }
    }
    let a = app.clone();
    spawn_local(async move {
        let _ = net::request("POST", "/api/logout", None).await;
        signed_out(&a);
    });
}

fn signed_out(app: &Shared) {
    {
        let mut a = app.borrow_mut();
        a.me = None;
        a.socket = None;
        a.reconnect = None;
        a.outbox.clear();
        a.call = None;
        a.peer = None;
        drop_preview(&mut a);
        a.pc_queue.clear();
        a.generation += 1;
        a.contacts.clear();
        a.e2ee = None;
    }
    render(app);
}

fn connect(app: &Shared) {
    let weak = Rc::downgrade(app);
    let socket = Socket::open(move |ev| {
        let weak = weak.clone();
        // Re-posted: the owner may drop the socket while handling the event.
        spawn_local(async move {
            if let Some(a) = weak.upgrade() {
                on_socket(&a, ev);
            }
        });
    });
    match socket {
        Ok(s) => app.borrow_mut().socket = Some(s),
        Err(_) => schedule_reconnect(app),
    }
}

fn on_socket(app: &Shared, ev: SocketEvent) {
    match ev {
        SocketEvent::Open => {
            let mut a = app.borrow_mut();
            a.attempts = 0;
            show(&a.ui.relay_banner, false);
            while let Some(m) = a.outbox.pop_front() {
                a.send(m);
            }
            drop(a);
            feed(app, Input::RelayUp);
        }
        SocketEvent::Message(msg) => on_relay(app, msg),
        SocketEvent::Garbled => app.borrow().notice("The server sent something this version of Shieldcall does not understand. Reload the page."),
        SocketEvent::Closed => {
            {
                let mut a = app.borrow_mut();
                a.socket = None;
                if a.me.is_none() {
                    return;
                }
                show(&a.ui.relay_banner, true);
            }
            feed(app, Input::RelayDown);
            schedule_reconnect(app);
        }
    }
}

fn schedule_reconnect(app: &Shared) {
    let attempts = {
        let mut a = app.borrow_mut();
        a.attempts += 1;
        a.attempts
    };
    let weak = Rc::downgrade(app);
    let timer = Timer::new(net::backoff_ms(attempts), false, move || {
        let Some(a) = weak.upgrade() else { return };
        spawn_local(async move {
            // A relay that refuses the upgrade may mean the session ended.
            match net::request("GET", "/api/me", None).await {
                Ok(r) if r.status == 401 => {
                    signed_out(&a);
                    a.borrow().notice(texts::error_prefix(
                        shieldcall_proto::ErrorCode::SessionExpired,
                    ));
                }
                _ => connect(&a),
            }
        });
    });
    if let Ok(t) = timer {
        app.borrow_mut().reconnect = Some(t);
    }
}

fn on_relay(app: &Shared, msg: RelayMsg) {
    match msg {
        RelayMsg::Welcome {
            user,
            admin,
            e2ee,
            ice_servers,
            ..
        } => {
            let mut a = app.borrow_mut();
            a.me = Some(Me { user, admin });
            a.e2ee = Some(e2ee);
            a.ice_servers = ice_servers;
        }
        RelayMsg::Presence { contacts } => {
            let mut a = app.borrow_mut();
            for p in contacts {
                match a.contacts.iter_mut().find(|c| c.user == p.user) {
                    Some(c) => c.status = p.status,
                    None => a.contacts.push(p),
                }
            }
            a.contacts.sort_by(|x, y| x.user.cmp(&y.user));
        }
        RelayMsg::Settings { e2ee } => app.borrow_mut().e2ee = Some(e2ee),
        RelayMsg::Pong { .. } => {}
        RelayMsg::Incoming {
            call_id,
            from,
            mode,
        } => {
            let mut a = app.borrow_mut();
            if a.call_active() {
                // The relay marks us busy; a second ring is ignored.
                return;
            }
            let (call, out) = Call::incoming(call_id, &from, mode, dom::now_ms());
            a.call = Some(call);
            a.generation += 1;
            a.dtls = None;
            drop(a);
            carry_out(app, out);
        }
        RelayMsg::Error {
            code,
            message,
            call_id,
        } => {
            let a = app.borrow();
            // Candidates still in flight when a call ends are refused by the relay;
            // an error about a call that is over must not replace how it ended.
            let stale = call_id.is_some()
                && !a
                    .call
                    .as_ref()
                    .is_some_and(|c| !c.is_ended() && c.id() == call_id.as_ref());
            if stale {
                web_sys::console::warn_1(&JsValue::from_str(&format!("after the call: {message}")));
            } else {
                a.notice(&format!("{} {message}", texts::error_prefix(code)));
            }
        }
        other => {
            let concerns = app
                .borrow()
                .call
                .as_ref()
                .is_some_and(|c| c.concerns(&other));
            if concerns {
                feed(app, Input::Relay(other));
                return;
            }
            match other {
                // An invite we gave up on before the relay answered.
                RelayMsg::Calling { call_id, .. } => {
                    app.borrow_mut().send(ClientMsg::Cancel { call_id })
                }
                // A call to us that the relay refused (e2ee-required): say why.
                RelayMsg::CallRefused {
                    peer,
                    reason,
                    required_by,
                    ..
                } => {
                    let a = app.borrow();
                    let me = a.me.as_ref().map(|m| m.user.clone()).unwrap_or_default();
                    let what = texts::refusal(reason, &peer, required_by.as_deref(), &me);
                    a.notice(&format!("{peer} tried to call you. {what}"));
                }
                _ => {}
            }
        }
    }
    render(app);
}

fn place_call(app: &Shared, to: &str) {
    {
        let mut a = app.borrow_mut();
        if a.call_active() {
            return;
        }
        let (call, out) = Call::outgoing(to, dom::now_ms());
        a.call = Some(call);
        a.generation += 1;
        a.dtls = None;
        a.notice("");
        let generation = a.generation;
        drop(a);
        carry_out(app, out);
        open_preview(app, generation);
    }
    render(app);
}

/// Opens the caller's camera and microphone while the call rings (the caller
/// asked for the call; the callee's camera stays off until they accept).
fn open_preview(app: &Shared, generation: u32) {
    let a = app.clone();
    spawn_local(async move {
        let Ok(stream) = rtc::local_media().await else {
            // Asked again, with the error shown, when the peer is created.
            return;
        };
        let mut app = a.borrow_mut();
        let wanted = app.generation == generation && app.call_active() && app.peer.is_none();
        if wanted {
            app.ui.local_video.set_src_object(Some(&stream));
            app.preview = Some(stream);
        } else {
            rtc::stop(&stream);
        }
    });
}

/// Stops a preview that no call took (the call was refused, cancelled, ...).
fn drop_preview(a: &mut App) {
    if let Some(stream) = a.preview.take() {
        rtc::stop(&stream);
        a.ui.local_video.set_src_object(None);
    }
}

/// Feeds the call machine and carries out what it says.
fn feed(app: &Shared, input: Input) {
    let out = {
        let mut a = app.borrow_mut();
        let now = dom::now_ms();
        let Some(call) = a.call.as_mut() else { return };
        let was_ended = call.is_ended();
        let out = call.handle(input, now);
        if !was_ended && call.is_ended() {
            drop_preview(&mut a);
            let me = a.me.as_ref().map(|m| m.user.clone()).unwrap_or_default();
            if let Some(Phase::Ended(e)) = a.call.as_ref().map(|c| &c.view().phase) {
                let peer = a
                    .call
                    .as_ref()
                    .map(|c| c.view().peer.clone())
                    .unwrap_or_default();
                let t = texts::ending(e, &peer, &me);
                a.notice(&t);
            }
        }
        out
    };
    carry_out(app, out);
    render_call(&app.borrow());
}

fn carry_out(app: &Shared, out: Vec<Output>) {
    for o in out {
        match o {
            Output::Send(m) => app.borrow_mut().send(m),
            Output::Pc(cmd) => app.borrow_mut().pc_queue.push_back(cmd),
        }
    }
    run_pc_queue(app);
}

/// Runs queued peer-connection commands one at a time, in order.
fn run_pc_queue(app: &Shared) {
    let (cmd, generation) = {
        let mut a = app.borrow_mut();
        if a.pc_busy {
            return;
        }
        let Some(cmd) = a.pc_queue.pop_front() else {
            return;
        };
        a.pc_busy = true;
        (cmd, a.generation)
    };
    let a = app.clone();
    spawn_local(async move {
        let input = exec(&a, cmd, generation).await;
        let current = {
            let mut app = a.borrow_mut();
            app.pc_busy = false;
            app.generation == generation
        };
        if let (true, Some(input)) = (current, input) {
            feed(&a, input);
        }
        run_pc_queue(&a);
    });
}

async fn exec(app: &Shared, cmd: PcCommand, generation: u32) -> Option<Input> {
    let pc = app.borrow().peer.as_ref().map(Peer::handle);
    let result: Result<Option<Input>, JsValue> = match (cmd, pc) {
        (PcCommand::Create, _) => {
            let (servers, remote) = {
                let a = app.borrow();
                (a.ice_servers.clone(), a.ui.remote_video.clone())
            };
            let weak = Rc::downgrade(app);
            let on_event = move |ev: PeerEvent| {
                let weak = weak.clone();
                spawn_local(async move {
                    if let Some(a) = weak.upgrade() {
                        on_peer(&a, ev, generation);
                    }
                });
            };
            let (peer, fp) = match Peer::create(&servers, &remote, on_event).await {
                Ok(created) => created,
                Err(e) => {
                    app.borrow().notice(&format!(
                        "The connection could not be set up: {}",
                        js_text(&e)
                    ));
                    return Some(Input::PcFailed);
                }
            };
            {
                let mut a = app.borrow_mut();
                if a.generation != generation {
                    return None; // dropped with `peer`
                }
                a.peer = Some(peer);
            }
            // The peer exists: the callee's commitment (or the caller's offer
            // command) goes out now. The queue stays busy until the camera is
            // attached, so no offer or answer is made without it.
            feed(app, Input::PeerReady { local: fp });
            let ready = app.borrow_mut().preview.take();
            let media = match ready {
                Some(stream) => Ok(stream),
                None => rtc::local_media().await,
            };
            match media {
                Ok(stream) => {
                    let mut a = app.borrow_mut();
                    let a = &mut *a;
                    match a.peer.as_mut().filter(|_| a.generation == generation) {
                        Some(peer) => peer.attach(stream, &a.ui.local_video),
                        None => rtc::stop(&stream),
                    }
                    Ok(None)
                }
                Err(e) => {
                    app.borrow().notice(&format!(
                        "Camera or microphone unavailable: {}",
                        js_text(&e)
                    ));
                    Err(e)
                }
            }
        }
        (PcCommand::Close, _) => {
            let mut a = app.borrow_mut();
            a.peer = None;
            show(&a.ui.panel, false);
            Ok(None)
        }
        (_, None) => Ok(None),
        (PcCommand::CreateOffer, Some(pc)) => rtc::create_offer(&pc)
            .await
            .map(|sdp| Some(Input::LocalOffer { sdp })),
        (PcCommand::AcceptOffer { sdp }, Some(pc)) => rtc::accept_offer(&pc, &sdp)
            .await
            .map(|sdp| Some(Input::LocalAnswer { sdp })),
        (PcCommand::SetAnswer { sdp }, Some(pc)) => rtc::set_answer(&pc, &sdp).await.map(|()| None),
        // A candidate the browser refuses is not fatal; others may still work.
        (PcCommand::AddIce(c), Some(pc)) => Ok(rtc::add_ice(&pc, &c).await.ok().and(None)),
    };
    result.unwrap_or(Some(Input::PcFailed))
}

fn js_text(e: &JsValue) -> String {
    e.as_string()
        .or_else(|| {
            js_sys::Reflect::get(e, &"message".into())
                .ok()
                .and_then(|m| m.as_string())
        })
        .unwrap_or_else(|| "unknown error".into())
}

fn on_peer(app: &Shared, ev: PeerEvent, generation: u32) {
    if app.borrow().generation != generation {
        return;
    }
    match ev {
        PeerEvent::Ice(c) => feed(app, Input::LocalIce(c)),
        PeerEvent::Track => {}
        PeerEvent::State(s) if s == "failed" => feed(app, Input::PcFailed),
        PeerEvent::State(s) if s == "connected" => check_dtls(app, generation),
        PeerEvent::State(_) => {}
    }
}

/// Waits for the DTLS transport to report `connected` in `getStats()` and feeds the
/// fingerprints it used. Looks every 25 ms; gives up (connection failed) after 10 s.
fn check_dtls(app: &Shared, generation: u32) {
    let a = app.clone();
    spawn_local(async move {
        for _ in 0..400 {
            let pc = {
                let app = a.borrow();
                if app.generation != generation {
                    return;
                }
                app.peer.as_ref().map(Peer::handle)
            };
            let Some(pc) = pc else { return };
            match rtc::dtls_info(&pc).await {
                Ok(info) if info.state == "connected" => {
                    let input = if info.observed {
                        Input::DtlsConnected {
                            local: info.local,
                            remote: info.remote,
                        }
                    } else {
                        Input::DtlsConnectedUnobserved
                    };
                    a.borrow_mut().dtls = Some(info);
                    feed(&a, input);
                    return;
                }
                Ok(info) if info.state == "failed" => {
                    feed(&a, Input::PcFailed);
                    return;
                }
                _ => sleep(25).await,
            }
        }
        feed(&a, Input::PcFailed);
    });
}

async fn sleep(ms: i32) {
    let p = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(p).await;
}

/// Shows the views that fit the state.
pub fn render(app: &Shared) {
    let a = app.borrow();
    let ui = &a.ui;
    let signed_in = a.me.is_some();
    let on_admin = dom::path() == "/admin";
    show(&ui.login, !signed_in);
    for e in [&ui.me, &ui.signout, &ui.settings_button] {
        show(e, signed_in);
    }
    show(
        &ui.admin_link,
        a.me.as_ref().is_some_and(|m| m.admin) && !on_admin,
    );
    text(
        &ui.me,
        a.me.as_ref().map(|m| m.user.as_str()).unwrap_or_default(),
    );
    show(&ui.home, signed_in && !on_admin);
    show(&ui.settings, signed_in && a.settings_open && !on_admin);
    show(&ui.admin, signed_in && on_admin);
    if !signed_in {
        show(&ui.relay_banner, false);
    }
    render_contacts(&a);
    render_settings(&a);
    render_call(&a);
}

fn render_contacts(a: &App) {
    let ui = &a.ui;
    ui.contacts.set_text_content(None);
    let me = a.me.as_ref().map(|m| m.user.as_str()).unwrap_or_default();
    let busy = a.call_active();
    for c in a.contacts.iter().filter(|c| c.user != me) {
        let status = match c.status {
            Status::Online => "online",
            Status::Busy => "busy",
            Status::Offline => "offline",
        };
        let build = || -> Result<(), JsValue> {
            let li = el(
                "li",
                &[
                    ("data-testid", &format!("contact-{}", c.user)),
                    ("data-status", status),
                ],
                "",
            )?;
            let name = el("span", &[("class", "name")], &c.user)?;
            let badge = el("span", &[("class", &format!("status {status}"))], status)?;
            let call = el(
                "button",
                &[
                    ("type", "button"),
                    ("data-testid", &format!("call-{}", c.user)),
                    ("data-call", &c.user),
                    ("aria-label", &format!("Call {}", c.user)),
                ],
                "Call",
            )?;
            flag(&call, "disabled", busy || c.status == Status::Offline);
            append(&li, &[&name, &badge, &call])?;
            ui.contacts.append_child(&li)?;
            Ok(())
        };
        let _ = build();
    }
}

fn render_settings(a: &App) {
    let ui = &a.ui;
    let Some(s) = &a.e2ee else { return };
    if let Some(i) = ui.e2ee_toggle.dyn_ref::<HtmlInputElement>() {
        i.set_checked(s.enabled);
        i.set_disabled(!s.can_change);
    }
    dom::attr(
        &ui.e2ee_toggle,
        "aria-checked",
        if s.enabled { "true" } else { "false" },
    );
    dom::attr(
        &ui.e2ee_toggle,
        "data-locked",
        if s.can_change { "false" } else { "true" },
    );
    text(&ui.policy_line, &texts::policy_line(s));
}

fn render_call(a: &App) {
    let ui = &a.ui;
    let Some(call) = &a.call else {
        show(&ui.incoming, false);
        show(&ui.call, false);
        return;
    };
    let v = call.view();
    let incoming = v.phase == Phase::Incoming;
    show(&ui.incoming, incoming);
    show(&ui.call, !incoming);
    if incoming {
        let mode = v
            .mode
            .map(texts::mode_name)
            .unwrap_or("standard encryption");
        text(
            &ui.incoming_text,
            &format!("{} is calling ({mode}).", v.peer),
        );
    }
    let ended = matches!(v.phase, Phase::Ended(_));
    let state = match (&v.phase, v.mode, &v.code) {
        (Phase::Ended(Ending::Mitm(_)), _, _) => "mitm",
        (Phase::Connected, Some(CallMode::E2ee), Some(_)) => "e2ee",
        (Phase::Connected, Some(CallMode::Standard), _) => "standard",
        (Phase::Ended(_), Some(CallMode::Standard), _) => "standard",
        _ => "connecting",
    };
    let label = match (state, ended) {
        ("mitm", _) => "Not private",
        (_, true) => "Call ended",
        ("e2ee", _) => "End-to-end encrypted",
        ("standard", _) => "Standard encryption",
        _ => "Connecting…",
    };
    // The icon (shield, shield with lock, warning) follows `data-state` in CSS.
    dom::attr(&ui.indicator, "data-state", state);
    dom::attr(&ui.indicator, "aria-label", label);
    text(&ui.indicator_label, label);
    text(&ui.call_peer, &v.peer);
    dom::attr(&ui.call_state, "data-state", texts::phase_name(&v.phase));
    text(&ui.call_state, texts::phase_name(&v.phase));
    let dur = match (v.connected_at_ms, ended) {
        (Some(t), false) => texts::duration(dom::now_ms().saturating_sub(t)),
        _ => String::new(),
    };
    text(&ui.duration, &dur);
    match &v.code {
        Some(code) => {
            text(&ui.panel_title, "End-to-end encrypted");
            text(&ui.code, &code.to_string());
            show(&ui.code, true);
        }
        None => {
            let t = match state {
                "standard" => {
                    "Standard encryption: the call is encrypted between the browsers, but there is no code to compare because one of you has end-to-end encryption off."
                }
                "mitm" => texts::MITM_WARNING,
                _ => "Not yet verified.",
            };
            text(&ui.panel_title, t);
            text(&ui.code, "");
            show(&ui.code, false);
        }
    }
    let dtls = a.dtls.as_ref().map(|d| {
        if !d.observed {
            return "This browser does not report the certificates DTLS used; the code relies on its \
                    built-in check that they match the connection details."
                .to_string();
        }
        format!(
            "DTLS {} · {} · SRTP {}",
            tls_version_name(&d.tls_version),
            if d.dtls_cipher.is_empty() {
                "cipher unknown"
            } else {
                &d.dtls_cipher
            },
            if d.srtp_cipher.is_empty() {
                "unknown"
            } else {
                &d.srtp_cipher
            }
        )
    });
    text(&ui.dtls_line, dtls.as_deref().unwrap_or_default());
    let has_code = v.code.is_some();
    show(&ui.codes_match, has_code && !v.verified);
    show(&ui.codes_differ, has_code);
    show(&ui.verified, has_code && v.verified);
    show(&ui.hangup, !ended);
    show(&ui.mute, !ended);
    show(&ui.camera, !ended);
    show(&ui.call_close, ended);
    show(&ui.videos, !ended);
    if state == "mitm" {
        show(&ui.panel, true);
    }
    render_features(a, v.mode, ended);
}

fn tls_version_name(v: &str) -> &str {
    match v {
        "FEFD" => "1.2",
        "FEFC" => "1.3",
        "" => "version unknown",
        other => other,
    }
}

fn render_features(a: &App, mode: Option<CallMode>, ended: bool) {
    let ui = &a.ui;
    // Rebuilt only when what it shows changes, not on every signalling message.
    let key = match (mode, ended) {
        (_, true) | (None, _) => "none",
        (Some(CallMode::E2ee), false) => "e2ee",
        (Some(CallMode::Standard), false) => "standard",
    };
    if ui.features.get_attribute("data-for").as_deref() == Some(key) {
        return;
    }
    dom::attr(&ui.features, "data-for", key);
    ui.features.set_text_content(None);
    if ended {
        return;
    }
    let Some(mode) = mode else { return };
    for f in CallFeature::ALL {
        let name = match f {
            CallFeature::Recording => "Record",
            CallFeature::Transcription => "Live captions",
            CallFeature::Transfer => "Transfer",
            CallFeature::Park => "Park",
            CallFeature::Merge => "Merge",
            CallFeature::MoveToDevice => "Move to another device",
            CallFeature::AddParticipant => "Add people",
            CallFeature::Voicemail => "Forward to voicemail",
        };
        let key = f.as_str();
        let build = || -> Result<(), JsValue> {
            let li = el("li", &[], "")?;
            let b = el(
                "button",
                &[
                    ("type", "button"),
                    ("data-feature", key),
                    ("data-testid", &format!("feature-{key}")),
                ],
                name,
            )?;
            li.append_child(&b)?;
            if !f.available_in(mode) {
                flag(&b, "disabled", true);
                let why = el(
                    "span",
                    &[("class", "muted")],
                    " Off in end-to-end encrypted calls. Turn E2EE off in Settings → Privacy to use it.",
                )?;
                li.append_child(&why)?;
            }
            ui.features.append_child(&li)?;
            Ok(())
        };
        let _ = build();
    }
}
