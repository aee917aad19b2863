//! The page itself: policies and their settings; new, edit, delete; assignment to
//! a user, a group with a rank, or tenant-wide; the effective policy of any user
//! and where it comes from; the audit log. It speaks the relay's `/api/admin` JSON
//! API with Teams' parameter names.

use serde::Serialize;
use serde::de::DeserializeOwned;
use shieldcall_proto::admin::{
    Assignment, AuditEntry, CallingPolicy, DEFAULT_CALLING_POLICY, GrantForm, Group, NameForm,
    Policy, PolicyForm, Target, UserForm, UserRow,
};
use shieldcall_proto::{CallFeature, E2eePolicyType, E2eeSetting, PolicySource};
use shieldcall_web::dom::{add, append, el, text};
use shieldcall_web::listen::Listener;
use shieldcall_web::net;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use web_sys::{Element, HtmlSelectElement};

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

/// What a calling-policy setting lets the tenant's people do.
fn calling_label(feature: CallFeature) -> &'static str {
    match feature {
        CallFeature::Recording => "Record calls (each person still agrees on screen)",
        CallFeature::Transcription => "Live captions, and transcripts of voicemail",
        _ => "Leave and receive voicemail",
    }
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

fn describe_effective(user: &str, e: &E2eeSetting) -> String {
    let from = match &e.source {
        PolicySource::Direct => "assigned directly".to_string(),
        PolicySource::Group {
            group,
            rank: Some(r),
        } => format!("from group {group}, rank {r}"),
        PolicySource::Group { group, rank: None } => format!("from group {group}, unranked"),
        PolicySource::Global => "the tenant's global policy".to_string(),
    };
    let enabled = if e.enabled { "on" } else { "off" };
    format!(
        "{user}: {} ({}), {from}; end-to-end encryption is {enabled}.",
        e.policy_identity,
        e.policy.as_str()
    )
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

/// What the page shows, as the relay answered.
#[derive(Debug, Default)]
struct Data {
    policies: Vec<Policy>,
    assignments: Vec<Assignment>,
    users: Vec<UserRow>,
    groups: Vec<Group>,
    audit: Vec<AuditEntry>,
    calling: Option<CallingPolicy>,
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

fn target_text(t: &Target) -> String {
    match t {
        Target::User { user } => format!("user {user}"),
        Target::Group {
            group,
            rank: Some(r),
        } => format!("group {group} (rank {r})"),
        Target::Group { group, rank: None } => format!("group {group} (unranked)"),
        Target::Global => "everyone (tenant-wide)".to_string(),
    }
}

fn draw(root: &Element, message: &str, data: &Data) -> Result<(), JsValue> {
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
    for p in &data.policies {
        let identity = &p.identity;
        let assigned: Vec<String> = data
            .assignments
            .iter()
            .filter(|a| &a.policy == identity)
            .map(|a| target_text(&a.target))
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
                ("data-identity", identity),
            ],
            "",
        )?;
        let id_cell = el("td", &[], identity)?;
        id_cell.append_child(&form)?;
        let desc = el(
            "input",
            &[
                ("name", "description"),
                ("form", &form_id),
                ("aria-label", &format!("Description of {identity}")),
                ("value", &p.description),
            ],
            "",
        )?;
        let ty = select(
            "type",
            &format!("policy-type-{identity}"),
            &policy_types(),
            p.calling_e2ee.as_str(),
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
                    ("data-delete-policy", identity),
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
        data.policies
            .iter()
            .map(|p| (p.identity.clone(), p.identity.clone())),
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
    for u in &data.users {
        let switch = match u.e2ee_switch {
            Some(true) => "on",
            Some(false) => "off",
            None => "default",
        };
        row(
            &body,
            &[("data-testid", &format!("user-row-{}", u.user))],
            &[
                &u.user,
                &u.name,
                if u.admin { "yes" } else { "" },
                switch,
                &describe_effective(&u.user, &u.effective),
                if u.effective.enabled { "on" } else { "off" },
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
    for g in &data.groups {
        row(
            &body,
            &[("data-testid", &format!("group-row-{}", g.name))],
            &[&g.name, &g.members.join(", ")],
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
    for (key, feature) in CallingPolicy::SETTINGS {
        let label = calling_label(feature);
        let l = el("label", &[("class", "switch")], "")?;
        let mut attrs = vec![("type", "checkbox"), ("name", key), ("data-testid", key)];
        if data.calling.is_some_and(|c| c.allows(feature)) {
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
    for e in &data.audit {
        let when = js_sys::Date::new(&JsValue::from_f64(e.at as f64 * 1000.0))
            .to_iso_string()
            .as_string()
            .unwrap_or_default();
        let a = &e.audit;
        let change = format!(
            "{} → {}",
            a.old.as_deref().unwrap_or("—"),
            a.new.as_deref().unwrap_or("—")
        );
        row(
            &body,
            &[],
            &[&when, &a.actor, &a.action, &a.target, &change],
        )?;
    }
    root.append_child(&t)?;
    Ok(())
}
