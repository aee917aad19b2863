//! The page itself: policies and their settings; new, edit, delete; assignment to
//! a user, a group with a rank, or tenant-wide; the effective policy of any user
//! and where it comes from; the audit log. It speaks the relay's `/api/admin` JSON
//! API with Teams' parameter names.

use shieldcall_proto::E2eePolicyType;
use shieldcall_web::codec::{self, object};
use shieldcall_web::dom::{add, append, el, text};
use shieldcall_web::listen::Listener;
use shieldcall_web::net;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use web_sys::{Element, HtmlSelectElement};

/// A parsed JSON value from the relay (the browser's JSON.parse).
type Value = JsValue;

fn select(
    name: &str,
    testid: &str,
    options: &[(&str, &str)],
    selected: &str,
) -> Result<Element, JsValue> {
    let s = el(
        "select",
        &[
            ("name", name),
            ("data-testid", testid),
            ("aria-label", name),
        ],
        "",
    )?;
    for (value, label) in options {
        let o = el("option", &[("value", value)], label)?;
        if *value == selected {
            o.set_attribute("selected", "")?;
        }
        s.append_child(&o)?;
    }
    Ok(s)
}

fn policy_types() -> Vec<(&'static str, &'static str)> {
    E2eePolicyType::ALL
        .iter()
        .map(|p| (p.as_str(), p.as_str()))
        .collect()
}

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

/// The calling policy's settings (Teams' names, also the JSON keys) and
/// what each lets the tenant's people do.
const CALLING: [(&str, &str); 3] = [
    (
        "AllowCloudRecordingForCalls",
        "Record calls (each person still agrees on screen)",
    ),
    (
        "AllowTranscriptionForCalling",
        "Live captions, and transcripts of voicemail",
    ),
    ("AllowVoicemail", "Leave and receive voicemail"),
];

/// Whether the checkbox `name` of `form` is ticked.
fn checked(form: &Element, name: &str) -> bool {
    form.query_selector(&format!("[name=\"{name}\"]"))
        .ok()
        .flatten()
        .and_then(|e| e.dyn_into::<web_sys::HtmlInputElement>().ok())
        .is_some_and(|i| i.checked())
}

fn str_of(v: &Value, k: &str) -> String {
    codec::string(v, k)
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
            object(&[
                (
                    "Identity",
                    format!("Tag:{}", field(form, "name").trim()).into(),
                ),
                ("Description", field(form, "description").into()),
                (
                    "CallingEndtoEndEncryptionEnabledType",
                    field(form, "type").into(),
                ),
            ]),
        ),
        "set-policy" => {
            let identity = form.get_attribute("data-identity").unwrap_or_default();
            (
                "PUT",
                format!("/api/admin/policies/{}", encode(&identity)),
                object(&[
                    ("Description", field(form, "description").into()),
                    (
                        "CallingEndtoEndEncryptionEnabledType",
                        field(form, "type").into(),
                    ),
                ]),
            )
        }
        "grant" => {
            let policy = field(form, "policy");
            let target = field(form, "target");
            let who = field(form, "who").trim().to_string();
            let rank = field(form, "rank").trim().parse::<u32>().ok();
            let body = match target.as_str() {
                "user" => object(&[("PolicyName", policy.into()), ("User", who.into())]),
                "group" => object(&[
                    ("PolicyName", policy.into()),
                    ("Group", who.into()),
                    ("Rank", rank.map_or(JsValue::NULL, JsValue::from)),
                ]),
                _ => object(&[("PolicyName", policy.into()), ("Global", JsValue::TRUE)]),
            };
            ("POST", "/api/admin/grant".to_string(), body)
        }
        "set-name" => (
            "PUT",
            format!(
                "/api/admin/users/{}/name",
                encode(field(form, "user").trim())
            ),
            object(&[("name", field(form, "name").into())]),
        ),
        "calling-policy" => (
            "PUT",
            "/api/admin/calling-policy".to_string(),
            object(&CALLING.map(|(key, _)| (key, JsValue::from_bool(checked(form, key))))),
        ),
        "new-group" => (
            "POST",
            "/api/admin/groups".to_string(),
            object(&[("name", field(form, "name").trim().into())]),
        ),
        "add-member" => (
            "POST",
            format!(
                "/api/admin/groups/{}/members",
                encode(field(form, "group").trim())
            ),
            object(&[("user", field(form, "user").trim().into())]),
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
                    Ok(r) if r.ok() => describe_effective(&user, &r.body),
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

fn describe_effective(user: &str, v: &Value) -> String {
    let source = codec::get(v, "source");
    let from = match str_of(&source, "kind").as_str() {
        "direct" => "assigned directly".to_string(),
        "group" => {
            let g = str_of(&source, "group");
            match codec::get(&source, "rank").as_f64().map(|r| r as u32) {
                Some(r) => format!("from group {g}, rank {r}"),
                None => format!("from group {g}, unranked"),
            }
        }
        _ => "the tenant's global policy".to_string(),
    };
    let enabled = if codec::boolean(v, "enabled") {
        "on"
    } else {
        "off"
    };
    format!(
        "{user}: {} ({}), {from}; end-to-end encryption is {enabled}.",
        &str_of(v, "policy_identity"),
        &str_of(v, "policy")
    )
}

fn change(root: &Element, method: &'static str, url: String, body: Option<Value>) {
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

async fn get(url: &str) -> Value {
    match net::request("GET", url, None).await {
        Ok(r) if r.ok() => r.body,
        _ => JsValue::NULL,
    }
}

async fn load_then(root: &Element, message: String) {
    let policies = get("/api/admin/policies").await;
    let assignments = get("/api/admin/assignments").await;
    let users = get("/api/admin/users").await;
    let groups = get("/api/admin/groups").await;
    let audit = get("/api/admin/audit?limit=50").await;
    let calling = get("/api/admin/calling-policy").await;
    if let Err(e) = draw(
        root,
        &message,
        &policies,
        &assignments,
        &users,
        &groups,
        &audit,
        &calling,
    ) {
        let why = e
            .as_string()
            .unwrap_or_else(|| "a browser call failed".into());
        root.set_text_content(Some(&format!("The admin page could not be drawn: {why}")));
    }
}

fn arr(v: &Value) -> Vec<Value> {
    codec::items(v)
}

fn table(headers: &[&str], testid: &str) -> Result<(Element, Element), JsValue> {
    let t = el("table", &[("data-testid", testid)], "")?;
    let head = el("tr", &[], "")?;
    for h in headers {
        add(&head, el("th", &[("scope", "col")], h))?;
    }
    let thead = el("thead", &[], "")?;
    thead.append_child(&head)?;
    let body = el("tbody", &[], "")?;
    append(&t, &[&thead, &body])?;
    Ok((t, body))
}

fn row(body: &Element, attrs: &[(&str, &str)], cells: &[&str]) -> Result<Element, JsValue> {
    let tr = el("tr", attrs, "")?;
    for c in cells {
        add(&tr, el("td", &[], c))?;
    }
    body.append_child(&tr)?;
    Ok(tr)
}

fn target_text(t: &Value) -> String {
    match str_of(t, "kind").as_str() {
        "user" => format!("user {}", &str_of(t, "user")),
        "group" => match codec::get(t, "rank").as_f64().map(|r| r as u32) {
            Some(r) => format!("group {} (rank {r})", &str_of(t, "group")),
            None => format!("group {} (unranked)", &str_of(t, "group")),
        },
        _ => "everyone (tenant-wide)".to_string(),
    }
}

#[allow(clippy::too_many_arguments)]
fn draw(
    root: &Element,
    message: &str,
    policies: &Value,
    assignments: &Value,
    users: &Value,
    groups: &Value,
    audit: &Value,
    calling: &Value,
) -> Result<(), JsValue> {
    root.set_text_content(None);
    add(root, el("h1", &[], "Encryption policies"))?;
    add(
        root,
        el(
            "p",
            &[
                ("role", "status"),
                ("class", "error"),
                ("data-testid", "admin-message"),
            ],
            message,
        ),
    )?;

    // Policies, each row an edit form.
    let (t, body) = table(
        &[
            "Identity",
            "Description",
            "CallingEndtoEndEncryptionEnabledType",
            "Assigned to",
            "",
        ],
        "policies",
    )?;
    for p in &arr(policies) {
        let identity = str_of(p, "Identity");
        let assigned: Vec<String> = arr(assignments)
            .iter()
            .filter(|a| str_of(a, "policy") == identity)
            .map(|a| target_text(&codec::get(a, "target")))
            .collect();
        let tr = el(
            "tr",
            &[("data-testid", &format!("policy-row-{identity}"))],
            "",
        )?;
        let form_id = format!("edit-{identity}");
        let form = el(
            "form",
            &[
                ("id", &form_id),
                ("data-form", "set-policy"),
                ("data-identity", &identity),
            ],
            "",
        )?;
        let id_cell = el("td", &[], &identity)?;
        id_cell.append_child(&form)?;
        let desc = el(
            "input",
            &[
                ("name", "description"),
                ("form", &form_id),
                ("aria-label", &format!("Description of {identity}")),
                ("value", &str_of(p, "Description")),
            ],
            "",
        )?;
        let ty = select(
            "type",
            &format!("policy-type-{identity}"),
            &policy_types(),
            &str_of(p, "CallingEndtoEndEncryptionEnabledType"),
        )?;
        ty.set_attribute("form", &form_id)?;
        let save = el(
            "button",
            &[
                ("type", "submit"),
                ("form", &form_id),
                ("data-testid", &format!("policy-save-{identity}")),
            ],
            "Save",
        )?;
        let c2 = el("td", &[], "")?;
        c2.append_child(&desc)?;
        let c3 = el("td", &[], "")?;
        c3.append_child(&ty)?;
        let c4 = el(
            "td",
            &[],
            &if assigned.is_empty() {
                "—".to_string()
            } else {
                assigned.join(", ")
            },
        )?;
        let c5 = el("td", &[], "")?;
        c5.append_child(&save)?;
        if identity != "Global" {
            let del = el(
                "button",
                &[
                    ("type", "button"),
                    ("data-delete-policy", &identity),
                    ("data-testid", &format!("policy-delete-{identity}")),
                ],
                "Delete",
            )?;
            c5.append_child(&del)?;
        }
        append(&tr, &[&id_cell, &c2, &c3, &c4, &c5])?;
        body.append_child(&tr)?;
    }
    root.append_child(&t)?;

    // New policy.
    let form = el(
        "form",
        &[
            ("data-form", "new-policy"),
            ("class", "inline"),
            ("data-testid", "new-policy"),
        ],
        "",
    )?;
    append(
        &form,
        &[
            &el("h2", &[], "New policy")?,
            &el("label", &[], "Name (becomes Tag:<name>)")?,
            &el(
                "input",
                &[
                    ("name", "name"),
                    ("required", ""),
                    ("data-testid", "new-policy-name"),
                    ("aria-label", "Name"),
                ],
                "",
            )?,
            &el(
                "input",
                &[
                    ("name", "description"),
                    ("placeholder", "Description"),
                    ("aria-label", "Description"),
                ],
                "",
            )?,
            &select(
                "type",
                "new-policy-type",
                &policy_types(),
                "EnabledUserOverride",
            )?,
            &el(
                "button",
                &[("type", "submit"), ("data-testid", "new-policy-submit")],
                "Create",
            )?,
        ],
    )?;
    root.append_child(&form)?;

    // Grant.
    let mut options: Vec<(String, String)> = vec![(String::new(), "(none: unassign)".into())];
    options.extend(
        arr(policies)
            .iter()
            .map(|p| (str_of(p, "Identity"), str_of(p, "Identity"))),
    );
    let opts: Vec<(&str, &str)> = options
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let grant = el(
        "form",
        &[
            ("data-form", "grant"),
            ("class", "inline"),
            ("data-testid", "grant"),
        ],
        "",
    )?;
    append(
        &grant,
        &[
            &el("h2", &[], "Assign a policy")?,
            &select("policy", "grant-policy", &opts, "")?,
            &select(
                "target",
                "grant-target",
                &[
                    ("user", "to a user"),
                    ("group", "to a group"),
                    ("global", "tenant-wide"),
                ],
                "user",
            )?,
            &el(
                "input",
                &[
                    ("name", "who"),
                    ("placeholder", "user@domain or group"),
                    ("aria-label", "User or group"),
                    ("data-testid", "grant-who"),
                ],
                "",
            )?,
            &el(
                "input",
                &[
                    ("name", "rank"),
                    ("type", "number"),
                    ("min", "1"),
                    ("placeholder", "rank (groups)"),
                    ("aria-label", "Rank"),
                    ("data-testid", "grant-rank"),
                ],
                "",
            )?,
            &el(
                "button",
                &[("type", "submit"), ("data-testid", "grant-submit")],
                "Assign",
            )?,
        ],
    )?;
    root.append_child(&grant)?;

    // Effective policy.
    let eff = el(
        "form",
        &[("data-form", "effective"), ("class", "inline")],
        "",
    )?;
    append(
        &eff,
        &[
            &el("h2", &[], "Effective policy of a user")?,
            &el(
                "input",
                &[
                    ("name", "user"),
                    ("placeholder", "user@domain"),
                    ("aria-label", "User"),
                    ("data-testid", "effective-user"),
                ],
                "",
            )?,
            &el(
                "button",
                &[("type", "submit"), ("data-testid", "effective-submit")],
                "Look up",
            )?,
            &el(
                "p",
                &[("data-testid", "effective-result"), ("role", "status")],
                "",
            )?,
        ],
    )?;
    root.append_child(&eff)?;

    // Users.
    add(root, el("h2", &[], "Users"))?;
    let (t, body) = table(
        &[
            "User",
            "Display name",
            "Admin",
            "Switch",
            "Effective policy",
            "E2EE",
        ],
        "users",
    )?;
    for u in &arr(users) {
        let e = &codec::get(u, "effective");
        let switch = match codec::get(u, "e2ee_switch").as_bool() {
            Some(true) => "on",
            Some(false) => "off",
            None => "default",
        };
        row(
            &body,
            &[("data-testid", &format!("user-row-{}", &str_of(u, "user")))],
            &[
                &str_of(u, "user"),
                &str_of(u, "name"),
                if codec::boolean(u, "admin") {
                    "yes"
                } else {
                    ""
                },
                switch,
                &describe_effective(&str_of(u, "user"), e),
                if codec::boolean(e, "enabled") {
                    "on"
                } else {
                    "off"
                },
            ],
        )?;
    }
    root.append_child(&t)?;
    let sn = el(
        "form",
        &[
            ("data-form", "set-name"),
            ("class", "inline"),
            ("data-testid", "set-name"),
        ],
        "",
    )?;
    append(
        &sn,
        &[
            &el(
                "input",
                &[
                    ("name", "user"),
                    ("placeholder", "user@domain"),
                    ("aria-label", "User"),
                    ("required", ""),
                    ("data-testid", "set-name-user"),
                ],
                "",
            )?,
            &el(
                "input",
                &[
                    ("name", "name"),
                    ("data-testid", "set-name-name"),
                    ("placeholder", "display name (empty: none)"),
                    ("aria-label", "Display name"),
                    ("maxlength", "64"),
                ],
                "",
            )?,
            &el(
                "button",
                &[("type", "submit"), ("data-testid", "set-name-submit")],
                "Set display name",
            )?,
        ],
    )?;
    root.append_child(&sn)?;

    // Groups.
    add(root, el("h2", &[], "Groups"))?;
    let (t, body) = table(&["Group", "Members"], "groups")?;
    for g in &arr(groups) {
        let members: Vec<String> = arr(&codec::get(g, "members"))
            .iter()
            .filter_map(JsValue::as_string)
            .collect();
        row(
            &body,
            &[("data-testid", &format!("group-row-{}", &str_of(g, "name")))],
            &[&str_of(g, "name"), &members.join(", ")],
        )?;
    }
    root.append_child(&t)?;
    let ng = el(
        "form",
        &[("data-form", "new-group"), ("class", "inline")],
        "",
    )?;
    append(
        &ng,
        &[
            &el(
                "input",
                &[
                    ("name", "name"),
                    ("placeholder", "new group"),
                    ("aria-label", "New group"),
                    ("required", ""),
                ],
                "",
            )?,
            &el("button", &[("type", "submit")], "Add group")?,
        ],
    )?;
    let am = el(
        "form",
        &[("data-form", "add-member"), ("class", "inline")],
        "",
    )?;
    append(
        &am,
        &[
            &el(
                "input",
                &[
                    ("name", "group"),
                    ("placeholder", "group"),
                    ("aria-label", "Group"),
                    ("required", ""),
                ],
                "",
            )?,
            &el(
                "input",
                &[
                    ("name", "user"),
                    ("placeholder", "user@domain"),
                    ("aria-label", "Member"),
                    ("required", ""),
                ],
                "",
            )?,
            &el("button", &[("type", "submit")], "Add member")?,
        ],
    )?;
    append(root, &[&ng, &am])?;

    // Calling policy: what the server may receive in this tenant's calls.
    add(root, el("h2", &[], "Calling policy"))?;
    add(
        root,
        el(
            "p",
            &[("class", "muted")],
            "What people of this organisation may have the Shieldcall server do in their standard calls (both people's organisations must allow it).",
        ),
    )?;
    let cp = el(
        "form",
        &[
            ("data-form", "calling-policy"),
            ("data-testid", "calling-policy"),
        ],
        "",
    )?;
    for (key, label) in CALLING {
        let l = el("label", &[("class", "switch")], "")?;
        let mut attrs = vec![("type", "checkbox"), ("name", key), ("data-testid", key)];
        if codec::boolean(calling, key) {
            attrs.push(("checked", ""));
        }
        let input = el("input", &attrs, "")?;
        append(
            &l,
            &[&input, &el("span", &[], &format!("{label} ({key})"))?],
        )?;
        cp.append_child(&l)?;
    }
    let save = el(
        "button",
        &[("type", "submit"), ("data-testid", "calling-save")],
        "Save calling policy",
    )?;
    cp.append_child(&save)?;
    root.append_child(&cp)?;

    // Audit log.
    add(root, el("h2", &[], "Audit log"))?;
    let (t, body) = table(&["When (UTC)", "Who", "What", "Target", "Change"], "audit")?;
    for e in &arr(audit) {
        let when = codec::get(e, "at").as_f64().map(|s| {
            js_sys::Date::new(&JsValue::from_f64(s * 1000.0))
                .to_iso_string()
                .as_string()
                .unwrap_or_default()
        });
        let change = format!(
            "{} → {}",
            codec::get(e, "old")
                .as_string()
                .unwrap_or_else(|| "—".into()),
            codec::get(e, "new")
                .as_string()
                .unwrap_or_else(|| "—".into())
        );
        row(
            &body,
            &[],
            &[
                &when.unwrap_or_default(),
                &str_of(e, "actor"),
                &str_of(e, "action"),
                &str_of(e, "target"),
                &change,
            ],
        )?;
    }
    root.append_child(&t)?;
    Ok(())
}
