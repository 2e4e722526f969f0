//! The dashboard's authority over plain HTTP (issue 18): a deep link, which the agent can mint,
//! views and lowers the cap; raising it needs the owner's sign-in (the operator's assertion,
//! single-use, the owner's email only); nothing changes on a suspended account. The browser
//! path (development sign-in form, buying) is in `browser.rs`.

use app_client::{form_encode, Call, Reply};
use app_tests::{OWNER_ASSERTION_SECRET, OWNER_LOGIN_URL};
use libtest_mimic::Trial;
use serde_json::json;

use app_tests::flows::Tokens;

use crate::common::*;
use crate::resources::{call, ok};

pub fn trials() -> Vec<Trial> {
    vec![
        case(
            "dashboard::a_deep_link_cannot_raise_the_cap",
            a_deep_link_cannot_raise_the_cap,
        ),
        case(
            "dashboard::assertion_sign_in_raises_the_cap",
            assertion_sign_in_raises_the_cap,
        ),
        case(
            "dashboard::suspended_account_changes_nothing",
            suspended_account_changes_nothing,
        ),
        case(
            "dashboard::deep_links_land_where_purpose_and_path_say",
            deep_links_land_where_purpose_and_path_say,
        ),
        case(
            "dashboard::deep_link_paths_never_leave_the_dashboard",
            deep_link_paths_never_leave_the_dashboard,
        ),
    ]
}

fn post_form(fields: &[(&str, &str)]) -> Reply {
    post_page_form("/dashboard", fields)
}

/// Mints a deep link as the agent and opens it: the dashboard page.
fn open(t: &Tokens) -> Reply {
    let link = ok(&call(
        &t.access,
        Call::post_json("/provisioning/deep_links", &json!({"purpose": "dashboard"})),
    ));
    let url = link["url"].as_str().unwrap();
    let opened = page(url.strip_prefix(provider().base()).unwrap());
    assert_eq!(opened.status, 200, "{}", opened.text());
    opened
}

/// `POST /provisioning/deep_links` with `body`, as the orchestrator sends it.
fn deep_link(t: &Tokens, body: serde_json::Value) -> Reply {
    call(
        &t.access,
        Call::post_json("/provisioning/deep_links", &body),
    )
}

/// Opens a link's URL as a browser does: the fragment stays in the browser.
pub fn open_url(url: &str) -> Reply {
    let path = url.strip_prefix(provider().base()).unwrap();
    let path = path.split('#').next().unwrap();
    let opened = page(path);
    assert_eq!(opened.status, 200, "{}", opened.text());
    opened
}

/// The section the page says the link landed on (`id="landing" data-anchor="..."`).
fn landed_on(html: &str) -> Option<String> {
    let rest = html.split("id=\"landing\" data-anchor=\"").nth(1)?;
    Some(rest.split('"').next()?.to_string())
}

fn set_cap(session: &str, dollars: u64) -> Reply {
    post_form(&[
        ("session", session),
        ("action", "set_cap"),
        ("cap_dollars", &dollars.to_string()),
    ])
}

/// The account's cap in cents, as the operator sees it.
fn cap_of(account: &str) -> u64 {
    let v = crate::operator::op_on(&provider(), "GET", &format!("/v1/accounts/{account}"), None);
    v.json()["spend"]["cap"].as_u64().unwrap()
}

fn a_deep_link_cannot_raise_the_cap() {
    let t = new_account(&email());
    let html = open(&t).text();
    let session = input_value(&html, "session").unwrap();
    assert!(html.contains("id=\"owner-sign-in\""), "{html}");
    // The reproduction: deep link -> open -> set_cap $10,000.
    let refused = set_cap(&session, 10_000);
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert!(
        refused.text().contains("needs the owner&#39;s sign-in"),
        "{}",
        refused.text()
    );
    assert_eq!(cap_of(&t.account), 10_000, "the cap is still $100");
    // Lowering stays one click.
    let lowered = set_cap(&session, 40);
    assert_eq!(lowered.status, 200, "{}", lowered.text());
    assert_eq!(cap_of(&t.account), 4_000);
    let rows = audit_rows(&t.account, 6);
    let caps: Vec<&serde_json::Value> = rows
        .iter()
        .filter(|r| r["action"] == "spend.cap_changed")
        .collect();
    assert_eq!(caps.len(), 1, "{caps:?}");
    assert_eq!(caps[0]["actor"], "owner");
    assert_eq!(caps[0]["authentication"], "deep_link");
}

fn assertion_sign_in_raises_the_cap() {
    let owner = email();
    let t = new_account(&owner);
    let html = open(&t).text();
    let session = input_value(&html, "session").unwrap();
    let nonce = input_value(&html, "nonce").unwrap();
    // The operator's login comes back to the dashboard of this account.
    let login = html
        .split("id=\"operator-sign-in\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .replace("&amp;", "&");
    assert!(login.starts_with(OWNER_LOGIN_URL), "{login}");
    let return_to = format!("{}/dashboard?account={}", provider().base(), t.account);
    assert!(
        login.contains(&form_encode(&[("return_to", &return_to)])),
        "{login}"
    );
    let assertion = |email: &str, nonce: &str| {
        domain::jwt::sign(
            OWNER_ASSERTION_SECRET.as_bytes(),
            &json!({"email": email, "nonce": nonce, "exp": app_client::unix_now() + 120}),
        )
    };
    let back = |a: &str| {
        page(&format!(
            "/dashboard?{}",
            form_encode(&[("account", &t.account), ("assertion", a)])
        ))
    };
    // Someone else's sign-in is refused and spends the nonce.
    let stranger = back(&assertion("eve@example.com", &nonce));
    assert_eq!(stranger.status, 403, "{}", stranger.text());
    assert!(
        stranger.text().contains("not the owner"),
        "{}",
        stranger.text()
    );
    let spent = back(&assertion(&owner, &nonce));
    assert_eq!(spent.status, 409, "{}", spent.text());
    // A forged assertion never reaches the account.
    let forged = back(&domain::jwt::sign(
        b"not-the-secret",
        &json!({"email": owner, "nonce": "x", "exp": app_client::unix_now() + 60}),
    ));
    assert_eq!(forged.status, 401);

    // A fresh page, a fresh nonce: the owner signs in and gets a new session.
    let html = open(&t).text();
    let link_session = input_value(&html, "session").unwrap();
    let nonce = input_value(&html, "nonce").unwrap();
    let signed = back(&assertion(&owner, &nonce));
    assert_eq!(signed.status, 200, "{}", signed.text());
    assert!(
        signed.text().contains("id=\"signed-in\""),
        "{}",
        signed.text()
    );
    let signed_session = input_value(&signed.text(), "session").unwrap();
    assert_ne!(signed_session, link_session);
    // The link's session (which the agent could hold) gained nothing and is gone.
    assert_eq!(set_cap(&link_session, 10_000).status, 403);
    assert_eq!(set_cap(&session, 10_000).status, 403);
    assert_eq!(cap_of(&t.account), 10_000);
    let raised = set_cap(&signed_session, 10_000);
    assert_eq!(raised.status, 200, "{}", raised.text());
    assert!(raised.text().contains("$10000.00"), "{}", raised.text());
    assert_eq!(cap_of(&t.account), 1_000_000);
    // The assertion worked once.
    assert_eq!(back(&assertion(&owner, &nonce)).status, 409);

    let rows = audit_rows(&t.account, 8);
    let of = |action: &str| -> Vec<String> {
        rows.iter()
            .filter(|r| r["action"] == action)
            .map(|r| r["authentication"].as_str().unwrap_or("null").to_string())
            .collect()
    };
    assert_eq!(of("dashboard.sign_in_refused"), ["deep_link"]);
    assert_eq!(of("dashboard.signed_in"), ["owner_sign_in"]);
    assert_eq!(of("spend.cap_changed"), ["owner_sign_in"]);
    assert_eq!(domain::audit::verify_chain(&as_records(&rows)), Ok(()));
}

fn suspended_account_changes_nothing() {
    let t = new_account(&email());
    let html = open(&t).text();
    let session = input_value(&html, "session").unwrap();
    let suspended = crate::operator::op_on(
        &provider(),
        "POST",
        &format!("/v1/accounts/{}/suspend", t.account),
        Some(json!({"reason": "review"})),
    );
    assert_eq!(suspended.status, 200, "{}", suspended.text());
    let refused = set_cap(&session, 40);
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert!(
        refused.text().contains("This account is not available"),
        "{}",
        refused.text()
    );
    assert!(refused.text().contains("Nothing was changed"));
    assert_eq!(cap_of(&t.account), 10_000);
    // Looking stays possible.
    let viewed = post_form(&[("session", &session), ("action", "view")]);
    assert_eq!(viewed.status, 200, "{}", viewed.text());
}

/// The orchestrator asks for a link to a place: `purpose` (free-form in the protocol; health
/// lists the ones served) and `path` land the owner on that section of the dashboard, the URL's
/// fragment scrolls there, and the audit trail says what was asked.
fn deep_links_land_where_purpose_and_path_say() {
    let p = provider();
    let health = p.health().unwrap().json();
    assert_eq!(
        health["deep_link_purposes"],
        json!(["dashboard", "billing"])
    );
    let owner = email();
    let t = new_account(&owner);
    let plan = ok(&call(
        &t.access,
        Call::post_json(
            "/provisioning/resources",
            &json!({"service_id": "free", "project_id": "p"}),
        ),
    ));
    let plan_id = plan["id"].as_str().unwrap();

    // No purpose (or null): the dashboard, at its top, as before.
    for body in [json!({}), json!({"purpose": null, "path": null})] {
        let link = ok(&deep_link(&t, body));
        assert_eq!(link["purpose"], "dashboard");
        assert!(link.get("path").is_none(), "{link}");
        let url = link["url"].as_str().unwrap();
        assert!(!url.contains('#'), "{url}");
        assert_eq!(landed_on(&open_url(url).text()), None);
    }

    // billing: the spend and the cap.
    let link = ok(&deep_link(&t, json!({"purpose": "billing"})));
    assert_eq!(link["purpose"], "billing");
    let url = link["url"].as_str().unwrap();
    assert!(url.ends_with("#billing"), "{url}");
    let html = open_url(url).text();
    assert_eq!(landed_on(&html).as_deref(), Some("billing"));
    assert!(
        html.contains("<section id=\"billing\" class=\"landing\">"),
        "{html}"
    );

    // A path: echoed, and it wins over the purpose's place.
    let path = format!("/resources/{plan_id}");
    let link = ok(&deep_link(&t, json!({"purpose": "billing", "path": path})));
    assert_eq!(link["path"], path.as_str());
    let url = link["url"].as_str().unwrap();
    assert!(url.ends_with(&format!("#resource-{plan_id}")), "{url}");
    let html = open_url(url).text();
    let anchor = format!("resource-{plan_id}");
    assert_eq!(landed_on(&html).as_deref(), Some(anchor.as_str()));
    assert!(
        html.contains(&format!("<li id=\"{anchor}\" class=\"landing\">")),
        "{html}"
    );
    // The owner signs in from there and comes back to the same place.
    let session = input_value(&html, "session").unwrap();
    let nonce = input_value(&html, "nonce").unwrap();
    let signed = post_form(&[
        ("session", &session),
        ("action", "sign_in"),
        ("email", &owner),
        ("nonce", &nonce),
    ]);
    assert_eq!(signed.status, 200, "{}", signed.text());
    assert!(
        signed.text().contains("id=\"signed-in\""),
        "{}",
        signed.text()
    );
    assert_eq!(landed_on(&signed.text()).as_deref(), Some(anchor.as_str()));

    // A link to a resource that is gone by the time it is opened says so, on the list.
    let token = ok(&call(
        &t.access,
        Call::post_json(
            "/provisioning/resources",
            &json!({"service_id": "api_token", "project_id": "p",
                    "configuration": {"scopes": ["logs:read"]}}),
        ),
    ));
    let token_id = token["id"].as_str().unwrap();
    let link = ok(&deep_link(
        &t,
        json!({"path": format!("/resources/{token_id}")}),
    ));
    ok(&call(
        &t.access,
        Call::post_json(
            &format!("/provisioning/resources/{token_id}/remove"),
            &json!({}),
        ),
    ));
    let html = open_url(link["url"].as_str().unwrap()).text();
    assert_eq!(landed_on(&html).as_deref(), Some("resources"));
    assert!(html.contains("id=\"landing-note\""), "{html}");
    assert!(
        html.contains(&format!("Resource {token_id} is no longer")),
        "{html}"
    );

    // deep_link.created carries what was asked.
    let rows = audit_rows(&t.account, 8);
    let created: Vec<(serde_json::Value, serde_json::Value)> = rows
        .iter()
        .filter(|r| r["action"] == "deep_link.created")
        .map(|r| {
            let after: serde_json::Value =
                serde_json::from_str(r["after"].as_str().unwrap()).unwrap();
            (after["purpose"].clone(), after["path"].clone())
        })
        .collect();
    assert_eq!(
        created,
        [
            (json!("dashboard"), json!(null)),
            (json!("dashboard"), json!(null)),
            (json!("billing"), json!(null)),
            (json!("billing"), json!(path)),
            (json!("dashboard"), json!(format!("/resources/{token_id}"))),
        ]
    );
}

/// A path is only ever a place inside the dashboard: anything a browser could read as
/// another origin, or that the dashboard does not have, is refused with a clear answer, and
/// no link is made.
fn deep_link_paths_never_leave_the_dashboard() {
    let t = new_account(&email());
    let refused = [
        json!({"path": "//evil.example/x"}),
        json!({"path": "https://evil.example"}),
        json!({"path": "/\\evil.example"}),
        json!({"path": "/../../etc"}),
        json!({"path": "/./billing"}),
        json!({"path": "/billing\r\nLocation: x"}),
        json!({"path": "/billing?next=/x"}),
        json!({"path": "/%2e%2e/"}),
        json!({"path": format!("/{}", "a".repeat(300))}),
        json!({"path": ""}),
        json!({"path": 7}),
        json!({"path": "/settings"}),
        json!({"path": "/resources/res_nosuchresource"}),
        json!({"purpose": ""}),
    ];
    for body in &refused {
        let reply = deep_link(&t, body.clone());
        assert_error(&reply, 400, "invalid_request");
        let message = reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_string();
        let field = if body.get("purpose").is_some() {
            "purpose"
        } else {
            "path"
        };
        assert!(message.contains(field), "{body}: {message}");
        assert_eq!(reply.json()["status"], "error");
        assert!(reply.json()["id"].is_null());
    }
    let reply = deep_link(&t, json!({"purpose": "support", "path": "/billing"}));
    assert_error(&reply, 400, "unsupported_purpose");
    let message = reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("dashboard, billing"), "{message}");
    // None of them made a link.
    let rows = audit_rows(&t.account, 2);
    assert!(
        rows.iter().all(|r| r["action"] != "deep_link.created"),
        "{rows:?}"
    );
}
