//! The consent page over plain HTTP: sign-in (assertion and development form), approve, deny,
//! replays and expiry; the browser path is in `browser.rs`.

use app_client::{form_encode, Reply};
use app_tests::{OWNER_ASSERTION_SECRET, OWNER_LOGIN_URL};
use libtest_mimic::Trial;
use serde_json::json;

use crate::common::*;

pub fn trials() -> Vec<Trial> {
    vec![
        case(
            "consent::page_shows_who_asks_with_strict_headers",
            page_shows_who_asks_with_strict_headers,
        ),
        case(
            "consent::dev_sign_in_then_approve_gives_a_working_code",
            dev_sign_in_then_approve_gives_a_working_code,
        ),
        case(
            "consent::deny_redirects_with_access_denied",
            deny_redirects_with_access_denied,
        ),
        case("consent::assertion_sign_in", assertion_sign_in),
        case(
            "consent::wrong_owner_and_forged_forms_change_nothing",
            wrong_owner_and_forged_forms_change_nothing,
        ),
        case(
            "consent::bad_links_show_a_clear_page",
            bad_links_show_a_clear_page,
        ),
    ]
}

/// An existing account and a consent link for a second orchestrator request.
pub struct Pending {
    pub account: String,
    pub email: String,
    pub url: String,
    pub request_id: String,
    pub consent: String,
}

pub fn pending_consent() -> Pending {
    let mail = email();
    let t = new_account(&mail);
    let id = unique("acctreq_");
    let reply = provider()
        .account_request(&account_request(&id, &mail))
        .unwrap();
    let url = reply.json()["requires_auth"]["url"]
        .as_str()
        .expect("url")
        .to_string();
    let consent = url.split("consent=").nth(1).unwrap().to_string();
    Pending {
        account: t.account,
        email: mail,
        url,
        request_id: id,
        consent,
    }
}

fn post_form(fields: &[(&str, &str)]) -> Reply {
    post_page_form("/oauth/authorize", fields)
}

fn path_of(url: &str) -> String {
    let base = provider().base().to_string();
    url.strip_prefix(&base).unwrap_or(url).to_string()
}

/// Signs in with the development form; returns the approval page.
fn dev_sign_in(p: &Pending, email: &str) -> Reply {
    let view = page(&path_of(&p.url));
    let nonce = input_value(&view.text(), "nonce").expect("nonce on the sign-in page");
    post_form(&[
        ("action", "sign_in"),
        ("consent", &p.consent),
        ("nonce", &nonce),
        ("email", email),
    ])
}

fn decide(p: &Pending, csrf: &str, decision: &str) -> Reply {
    post_form(&[
        ("action", "decide"),
        ("consent", &p.consent),
        ("csrf", csrf),
        ("decision", decision),
    ])
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.replace("%5F", "_"))
    })
}

fn page_shows_who_asks_with_strict_headers() {
    let p = pending_consent();
    let reply = page(&path_of(&p.url));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let html = reply.text();
    assert!(html.contains(&p.email), "shows for whom");
    assert!(html.contains("acct_stripe_test"), "shows who asks");
    assert!(html.contains("resources:write"), "shows what");
    assert!(html.contains("name=\"viewport\""));
    assert!(!html.to_lowercase().contains("<script"));
    assert_eq!(
        reply.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = reply.header("content-security-policy").expect("CSP");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    let callback = callback_url();
    let callback_origin = callback.trim_end_matches("/oauth/callback");
    assert!(
        csp.contains(&format!("form-action 'self' {callback_origin}")),
        "{csp}"
    );
    assert_eq!(reply.header("x-frame-options"), Some("DENY"));
    assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
    // The operator's login link carries where to come back, the nonce and a login hint.
    let login = html
        .split("id=\"operator-sign-in\" href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert!(login.starts_with(OWNER_LOGIN_URL), "{login}");
    assert!(
        login.contains("return_to=") && login.contains("nonce=") && login.contains("login_hint="),
        "{login}"
    );
    // The development form is there because the test worker runs in development.
    assert!(html.contains("id=\"dev-sign-in\""));
}

fn dev_sign_in_then_approve_gives_a_working_code() {
    let p = pending_consent();
    let approve_page = dev_sign_in(&p, &p.email.to_uppercase());
    assert_eq!(approve_page.status, 200, "{}", approve_page.text());
    let csrf = input_value(&approve_page.text(), "csrf").expect("csrf token on the form");
    let reply = decide(&p, &csrf, "approve");
    assert_eq!(reply.status, 303, "{}", reply.text());
    let location = reply.header("location").unwrap().to_string();
    assert!(location.starts_with(&callback_url()), "{location}");
    assert_eq!(
        query_param(&location, "state").as_deref(),
        Some(p.request_id.as_str())
    );
    let code = query_param(&location, "code").expect("code");
    let t = tokens_of(&provider().exchange_code(&code, None, true).unwrap());
    assert_eq!(t.account, p.account);
    // Replaying the decision shows a page and changes nothing.
    let again = decide(&p, &csrf, "deny");
    assert_eq!(again.status, 409);
    assert!(again.text().contains("Already approved"));
    let rows = audit_rows(&p.account, 10);
    let actions: Vec<&str> = rows.iter().map(|r| r["action"].as_str().unwrap()).collect();
    for a in [
        "consent.requested",
        "consent.signed_in",
        "consent.approved",
        "grant.created",
        "code.issued",
        "token.issued",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    let approved = rows
        .iter()
        .find(|r| r["action"] == "consent.approved")
        .unwrap();
    assert_eq!(approved["actor"], "owner");
    assert_eq!(approved["consent"], format!("consent:{}", p.request_id));
    assert_eq!(domain::audit::verify_chain(&as_records(&rows)), Ok(()));
}

fn deny_redirects_with_access_denied() {
    let p = pending_consent();
    let csrf = input_value(&dev_sign_in(&p, &p.email).text(), "csrf").unwrap();
    let reply = decide(&p, &csrf, "deny");
    assert_eq!(reply.status, 303);
    let location = reply.header("location").unwrap();
    assert!(location.starts_with(&callback_url()));
    assert_eq!(
        query_param(location, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(
        query_param(location, "state").as_deref(),
        Some(p.request_id.as_str())
    );
    assert_eq!(query_param(location, "code"), None);
    // The link is spent.
    let view = page(&path_of(&p.url));
    assert_eq!(view.status, 409);
    assert!(view.text().contains("Already denied"));
}

fn assertion_sign_in() {
    let p = pending_consent();
    let view = page(&path_of(&p.url)).text();
    let nonce = input_value(&view, "nonce").unwrap();
    let now = app_client::unix_now();
    let assertion = domain::jwt::sign(
        OWNER_ASSERTION_SECRET.as_bytes(),
        &json!({"email": p.email, "nonce": nonce, "exp": now + 120}),
    );
    let path = format!(
        "{}&{}",
        path_of(&p.url),
        form_encode(&[("assertion", &assertion)])
    );
    let approve = page(&path);
    assert_eq!(approve.status, 200, "{}", approve.text());
    assert!(input_value(&approve.text(), "csrf").is_some());
    // The same assertion cannot be used twice (its nonce is spent).
    let replay = page(&path);
    assert_eq!(replay.status, 403);
    assert!(replay.text().contains("already used"), "{}", replay.text());
    // A forged assertion is refused.
    let forged = domain::jwt::sign(
        b"not-the-secret",
        &json!({"email": p.email, "nonce": "x", "exp": now + 60}),
    );
    let reply = page(&format!(
        "{}&{}",
        path_of(&p.url),
        form_encode(&[("assertion", &forged)])
    ));
    assert_eq!(reply.status, 401);
    assert!(reply.text().contains("Sign-in failed"));
}

fn wrong_owner_and_forged_forms_change_nothing() {
    let p = pending_consent();
    let before = audit_rows(&p.account, 5).len();
    // Deciding without signing in: no CSRF token to present.
    let reply = decide(&p, "forged", "approve");
    assert_eq!(reply.status, 403, "{}", reply.text());
    // Signing in as someone else is refused (and recorded for the owner to see).
    let reply = dev_sign_in(&p, "eve@example.com");
    assert_eq!(reply.status, 403);
    assert!(reply.text().contains("Wrong account"));
    let rows = audit_rows(&p.account, before + 1);
    assert_eq!(rows.last().unwrap()["action"], "consent.sign_in_refused");
    // After a real sign-in, a wrong CSRF token is still refused.
    let csrf = input_value(&dev_sign_in(&p, &p.email).text(), "csrf").unwrap();
    let reply = decide(&p, &format!("{csrf}x"), "approve");
    assert_eq!(reply.status, 403);
    // The right one still works.
    assert_eq!(decide(&p, &csrf, "approve").status, 303);
}

fn bad_links_show_a_clear_page() {
    for path in [
        "/oauth/authorize",
        "/oauth/authorize?consent=nope",
        "/oauth/authorize?consent=pvcs_acct_aaaaaaaaaaaaaaaa_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ] {
        let reply = page(path);
        assert_eq!(reply.status, 404, "{path}");
        assert!(reply.text().contains("not valid"), "{path}");
        assert_eq!(
            reply.header("content-type"),
            Some("text/html; charset=utf-8")
        );
    }
}
