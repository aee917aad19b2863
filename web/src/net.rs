//! The relay, seen from the browser: JSON over `fetch` for sign-in and the admin
//! API, and the signalling WebSocket (the app reconnects it after
//! [`crate::session::backoff_ms`]).

use js_sys::Promise;

use crate::codec;
use shieldcall_proto::{ClientMsg, RelayMsg};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    CloseEvent, Event, MessageEvent, Request, RequestCredentials, RequestInit, Response, WebSocket,
};

/// An HTTP answer: status and parsed JSON body (`null` when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body, parsed by the browser.
    pub body: JsValue,
}

impl Answer {
    /// True for 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The relay's error sentence, or a generic one.
    pub fn error_text(&self) -> String {
        [
            codec::string(&self.body, "message"),
            codec::string(&self.body, "error"),
        ]
        .into_iter()
        .find(|m| !m.is_empty())
        .unwrap_or_else(|| format!("The server answered {}.", self.status))
    }
}

/// Sends a same-origin JSON request.
pub async fn request(method: &str, url: &str, body: Option<&JsValue>) -> Result<Answer, JsValue> {
    let init = RequestInit::new();
    init.set_method(method);
    init.set_credentials(RequestCredentials::SameOrigin);
    if let Some(b) = body {
        init.set_body(&js_sys::JSON::stringify(b)?.into());
    }
    let req = Request::new_with_str_and_init(url, &init)?;
    if body.is_some() {
        req.headers().set("Content-Type", "application/json")?;
    }
    let window = web_sys::window().ok_or_else(|| JsValue::from_str("no window"))?;
    let resp: Response = JsFuture::from(window.fetch_with_request(&req))
        .await?
        .dyn_into()?;
    let status = resp.status();
    let text: Promise = resp.text()?;
    let text = JsFuture::from(text).await?.as_string().unwrap_or_default();
    let body = js_sys::JSON::parse(&text).unwrap_or(JsValue::NULL);
    Ok(Answer { status, body })
}

/// What the socket reports to its owner.
#[derive(Debug)]
pub enum SocketEvent {
    /// Connected; `hello` has been sent.
    Open,
    /// A decoded relay message.
    Message(RelayMsg),
    /// A frame the client could not decode (a relay newer than this client).
    Garbled,
    /// The connection closed or could not be made.
    Closed,
}

/// One WebSocket to `/ws`. Owns its callbacks: dropping the socket closes it and
/// drops them.
pub struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut(Event)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("ready_state", &self.ws.ready_state())
            .finish()
    }
}

impl Socket {
    /// Opens the socket; `on_event` receives everything that happens on it.
    pub fn open(on_event: impl Fn(SocketEvent) + Clone + 'static) -> Result<Self, JsValue> {
        let location = web_sys::window()
            .ok_or_else(|| JsValue::from_str("no window"))?
            .location();
        let scheme = if location.protocol()? == "https:" {
            "wss"
        } else {
            "ws"
        };
        let ws = WebSocket::new(&format!("{scheme}://{}/ws", location.host()?))?;
        let cb = on_event.clone();
        let ws2 = ws.clone();
        let on_open = Closure::<dyn FnMut(Event)>::new(move |_| {
            let hello = ClientMsg::Hello {
                version: shieldcall_proto::PROTOCOL_VERSION,
            };
            if let Ok(text) = codec::encode_client(&hello) {
                let _ = ws2.send_with_str(&text);
            }
            cb(SocketEvent::Open);
        });
        let cb = on_event.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            match e.data().as_string().map(|t| codec::decode_relay(&t)) {
                Some(Ok(msg)) => cb(SocketEvent::Message(msg)),
                _ => cb(SocketEvent::Garbled),
            }
        });
        let cb = on_event;
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |_| cb(SocketEvent::Closed));
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Ok(Self {
            ws,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
        })
    }

    /// Whether messages can be sent now.
    pub fn is_open(&self) -> bool {
        self.ws.ready_state() == WebSocket::OPEN
    }

    /// Sends one message; false if the socket is not open.
    pub fn send(&self, msg: &ClientMsg) -> bool {
        self.is_open()
            && codec::encode_client(msg).is_ok_and(|text| self.ws.send_with_str(&text).is_ok())
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        let _ = self.ws.close();
    }
}
