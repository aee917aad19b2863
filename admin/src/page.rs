//! The page's wiring: its two delegated listeners, what each form sends to
//! the relay's `/api/admin` JSON API (Teams' parameter names, through the typed
//! structs of `shieldcall_proto::admin`), and loading what the views draw
//! (`views`).

use serde::Serialize;
use serde::de::DeserializeOwned;
use shieldcall_proto::admin::{
    CallingPolicy, DEFAULT_CALLING_POLICY, GrantForm, NameForm, PolicyForm, Target, UserForm,
};
use shieldcall_proto::{E2eePolicyType, E2eeSetting};
use shieldcall_web::dom::text;
use shieldcall_web::listen::Listener;
use shieldcall_web::net;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use web_sys::{Element, HtmlSelectElement};

use crate::views::{Data, describe_effective, draw};

/// The value of the control `name` of `form`, also when the control sits outside
/// the form and names it with a `form` attribute (the policy table's rows).
fn field(form: &Element, name: &str) -> String {
    let outside = match form.id() {
        id if !id.is_empty() => shieldcall_web::dom::document().ok().and_then(|d| {
            d.query_selector(&format!("[form=\"{id}\"][name=\"{name}\"]"))
                .ok()
                .flatten()
        }),
        _ => None,
    };
    let Some(e) = outside.or_else(|| {
        form.query_selector(&format!("[name=\"{name}\"]"))
            .ok()
            .flatten()
    }) else {
        return String::new();
    };
    if let Some(s) = e.dyn_ref::<HtmlSelectElement>() {
        return s.value();
    }
    shieldcall_web::dom::value(&e)
}

/// Whether the checkbox `name` of `form` is ticked.
fn checked(form: &Element, name: &str) -> bool {
    form.query_selector(&format!("[name=\"{name}\"]"))
        .ok()
        .flatten()
        .and_then(|e| e.dyn_into::<web_sys::HtmlInputElement>().ok())
        .is_some_and(|i| i.checked())
}

/// Registers the page's two delegated listeners (clicks and form submits) on
/// `root`; they live as long as the returned listeners.
pub fn wire(root: &Element) -> Result<[Listener; 2], JsValue> {
    let r = root.clone();
    let submits = Listener::new(root, "submit", move |e| {
        e.prevent_default();
        let Some(form) = e.target().and_then(|t| t.dyn_into::<Element>().ok()) else {
            return;
        };
        submit(&r, &form);
    })?;
    let r = root.clone();
    let clicks = Listener::new(root, "click", move |e| {
        if let Some((_, identity)) =
            shieldcall_web::dom::closest_attr(e.target(), "data-delete-policy")
        {
            let url = format!("/api/admin/policies/{}", encode(&identity));
            change(&r, "DELETE", url, None);
        }
    })?;
    Ok([submits, clicks])
}

fn encode(s: &str) -> String {
    js_sys::encode_uri_component(s)
        .as_string()
        .unwrap_or_default()
}

fn submit(root: &Element, form: &Element) {
    let kind = form.get_attribute("data-form").unwrap_or_default();
    let (method, url, body) = match kind.as_str() {
        "new-policy" => (
            "POST",
            "/api/admin/policies".to_string(),
            json(&PolicyForm {
                identity: Some(format!("Tag:{}", field(form, "name").trim())),
                description: Some(field(form, "description")),
                calling_e2ee: policy_type(form),
            }),
        ),
        "set-policy" => {
            let identity = form.get_attribute("data-identity").unwrap_or_default();
            (
                "PUT",
                format!("/api/admin/policies/{}", encode(&identity)),
                json(&PolicyForm {
                    identity: None,
                    description: Some(field(form, "description")),
                    calling_e2ee: policy_type(form),
                }),
            )
        }
        "grant" => {
            let policy = field(form, "policy");
            let who = field(form, "who").trim().to_string();
            let target = match field(form, "target").as_str() {
                "user" => Target::User { user: who },
                "group" => Target::Group {
                    group: who,
                    rank: field(form, "rank").trim().parse::<u32>().ok(),
                },
                _ => Target::Global,
            };
            (
                "POST",
                "/api/admin/grant".to_string(),
                json(&GrantForm::to(target, &policy)),
            )
        }
        "set-name" => (
            "PUT",
            format!(
                "/api/admin/users/{}/name",
                encode(field(form, "user").trim())
            ),
            json(&NameForm {
                name: field(form, "name"),
            }),
        ),
        "calling-policy" => (
            "PUT",
            "/api/admin/calling-policy".to_string(),
            json(
                &CallingPolicy::SETTINGS
                    .iter()
                    .fold(DEFAULT_CALLING_POLICY, |p, &(key, feature)| {
                        p.with(feature, checked(form, key))
                    }),
            ),
        ),
        "new-group" => (
            "POST",
            "/api/admin/groups".to_string(),
            json(&NameForm {
                name: field(form, "name").trim().to_string(),
            }),
        ),
        "add-member" => (
            "POST",
            format!(
                "/api/admin/groups/{}/members",
                encode(field(form, "group").trim())
            ),
            json(&UserForm {
                user: field(form, "user").trim().to_string(),
            }),
        ),
        "effective" => {
            let user = field(form, "user").trim().to_string();
            let root = root.clone();
            spawn_local(async move {
                let out = match net::request(
                    "GET",
                    &format!("/api/admin/users/{}/effective", encode(&user)),
                    None,
                )
                .await
                {
                    Ok(r) if r.ok() => match decode::<E2eeSetting>(&r.body) {
                        Some(setting) => describe_effective(&user, &setting),
                        None => "The server's answer could not be read.".into(),
                    },
                    Ok(r) => r.error_text(),
                    Err(_) => "The server cannot be reached.".into(),
                };
                if let Ok(Some(e)) = root.query_selector("[data-testid=effective-result]") {
                    text(&e, &out);
                }
            });
            return;
        }
        _ => return,
    };
    change(root, method, url, Some(body));
}

/// A request body: `v` as the JSON object `net::request` sends. (The call
/// client's `net` speaks the browser's parsed JSON to keep serde_json out of
/// its bundle; this page pays for one extra parse of small bodies instead.)
fn json(v: &impl Serialize) -> JsValue {
    // Serialising these plain structs cannot fail, nor parsing what was made.
    serde_json::to_string(v)
        .ok()
        .and_then(|text| js_sys::JSON::parse(&text).ok())
        .unwrap_or(JsValue::NULL)
}

/// An answer's body decoded as a `T` (the browser parsed it; serde reads its
/// text again).
fn decode<T: DeserializeOwned>(body: &JsValue) -> Option<T> {
    let text = js_sys::JSON::stringify(body).ok()?.as_string()?;
    serde_json::from_str(&text).ok()
}

/// The policy type chosen in `form`'s `type` control.
fn policy_type(form: &Element) -> Option<E2eePolicyType> {
    field(form, "type").parse().ok()
}

fn change(root: &Element, method: &'static str, url: String, body: Option<JsValue>) {
    let root = root.clone();
    spawn_local(async move {
        let msg = match net::request(method, &url, body.as_ref()).await {
            Ok(r) if r.ok() => String::new(),
            Ok(r) => r.error_text(),
            Err(_) => "The server cannot be reached.".into(),
        };
        load_then(&root, msg).await;
    });
}

/// Loads everything and draws the page into `root`.
pub fn load(root: &Element) {
    let root = root.clone();
    spawn_local(async move { load_then(&root, String::new()).await });
}

/// `GET url`, decoded; `None` if it failed or the answer was not a `T`.
async fn get<T: DeserializeOwned>(url: &str) -> Option<T> {
    match net::request("GET", url, None).await {
        Ok(r) if r.ok() => decode(&r.body),
        _ => None,
    }
}

async fn load_then(root: &Element, mut message: String) {
    let (policies, assignments, users, groups, audit, calling) = (
        get("/api/admin/policies").await,
        get("/api/admin/assignments").await,
        get("/api/admin/users").await,
        get("/api/admin/groups").await,
        get("/api/admin/audit?limit=50").await,
        get("/api/admin/calling-policy").await,
    );
    let complete = policies.is_some()
        && assignments.is_some()
        && users.is_some()
        && groups.is_some()
        && audit.is_some()
        && calling.is_some();
    if !complete {
        if !message.is_empty() {
            message.push(' ');
        }
        message.push_str("Part of the page could not be loaded; reload to try again.");
    }
    let data = Data {
        policies: policies.unwrap_or_default(),
        assignments: assignments.unwrap_or_default(),
        users: users.unwrap_or_default(),
        groups: groups.unwrap_or_default(),
        audit: audit.unwrap_or_default(),
        calling,
    };
    if let Err(e) = draw(root, &message, &data) {
        let why = e
            .as_string()
            .unwrap_or_else(|| "a browser call failed".into());
        root.set_text_content(Some(&format!("The admin page could not be drawn: {why}")));
    }
}
