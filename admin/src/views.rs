//! The page's views, one function a section: the policies (each row an edit
//! form), a new policy, assigning one, a user's effective policy, the users,
//! the groups, the calling policy and the audit log. They draw what the relay
//! answered ([`Data`]); what their forms send is `page`'s.

use shieldcall_proto::admin::{
    Assignment, AuditEntry, CallingPolicy, Group, Policy, Target, UserRow,
};
use shieldcall_proto::{CallFeature, E2eePolicyType, E2eeSetting, PolicySource};
use shieldcall_web::dom::{add, append, el};
use wasm_bindgen::prelude::*;
use web_sys::Element;

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

/// What a calling-policy setting lets the tenant's people do.
fn calling_label(feature: CallFeature) -> &'static str {
    match feature {
        CallFeature::Recording => "Record calls (each person still agrees on screen)",
        CallFeature::Transcription => "Live captions, and transcripts of voicemail",
        _ => "Leave and receive voicemail",
    }
}

pub(crate) fn describe_effective(user: &str, e: &E2eeSetting) -> String {
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

/// What the page shows, as the relay answered.
#[derive(Debug, Default)]
pub(crate) struct Data {
    /// The tenant's policies.
    pub(crate) policies: Vec<Policy>,
    /// Who holds which policy.
    pub(crate) assignments: Vec<Assignment>,
    /// The tenant's users.
    pub(crate) users: Vec<UserRow>,
    /// The tenant's groups.
    pub(crate) groups: Vec<Group>,
    /// The newest audit entries.
    pub(crate) audit: Vec<AuditEntry>,
    /// The calling policy (`None`: it could not be loaded, and no switch is on).
    pub(crate) calling: Option<CallingPolicy>,
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

/// Draws the whole page into `root`, with `message` (an error, or "") on top.
pub(crate) fn draw(root: &Element, message: &str, data: &Data) -> Result<(), JsValue> {
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
    policies(root, data)?;
    new_policy(root)?;
    grant(root, data)?;
    effective(root)?;
    users(root, data)?;
    groups(root, data)?;
    calling(root, data)?;
    audit(root, data)?;
    Ok(())
}

/// The policies, each row an edit form (description, type, save, delete) with whom it is assigned to.
fn policies(root: &Element, data: &Data) -> Result<(), JsValue> {
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
    Ok(())
}

/// The form for a new policy.
fn new_policy(root: &Element) -> Result<(), JsValue> {
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
    Ok(())
}

/// The form that assigns a policy to a user, a group with a rank, or the tenant.
fn grant(root: &Element, data: &Data) -> Result<(), JsValue> {
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
    Ok(())
}

/// The form that looks up a user's effective policy and where it comes from.
fn effective(root: &Element) -> Result<(), JsValue> {
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
    Ok(())
}

/// The users, their switches and effective settings, and the display-name form.
fn users(root: &Element, data: &Data) -> Result<(), JsValue> {
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
    Ok(())
}

/// The groups and their members, and the forms that add either.
fn groups(root: &Element, data: &Data) -> Result<(), JsValue> {
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
    Ok(())
}

/// The calling policy: what the server may receive in this tenant's calls.
fn calling(root: &Element, data: &Data) -> Result<(), JsValue> {
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
    Ok(())
}

/// The audit log, newest first.
fn audit(root: &Element, data: &Data) -> Result<(), JsValue> {
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
