//! Account requests and tokens (docs/PROTOCOL.md §3), over the wire, with the audit rows in D1.

use std::collections::HashSet;

use app_client::{Call, Signing};
use app_tests::OPERATOR_SECRET;
use domain::pkce;
use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::common::*;

pub fn trials() -> Vec<Trial> {
    vec![
        case(
            "accounts::long_tokens_and_refresh_by_possession_when_configured",
            long_tokens_and_refresh_by_possession_when_configured,
        ),
        case(
            "accounts::new_account_code_tokens_refresh",
            new_account_code_tokens_refresh,
        ),
        case(
            "accounts::replayed_request_id_is_idempotent",
            replayed_request_id_is_idempotent,
        ),
        case(
            "accounts::request_id_is_idempotent_across_emails",
            request_id_is_idempotent_across_emails,
        ),
        case(
            "accounts::concurrent_requests_for_one_email_make_one_account",
            concurrent_requests_for_one_email_make_one_account,
        ),
        case(
            "accounts::existing_email_requires_auth",
            existing_email_requires_auth,
        ),
        case("accounts::pkce_right_and_wrong", pkce_right_and_wrong),
        case("accounts::expired_request", expired_request),
        case(
            "accounts::reused_code_revokes_what_it_issued",
            reused_code_revokes_what_it_issued,
        ),
        case(
            "accounts::malformed_account_requests_change_nothing",
            malformed_account_requests_change_nothing,
        ),
        case("accounts::token_endpoint_errors", token_endpoint_errors),
        case(
            "accounts::introspection_and_revocation",
            introspection_and_revocation,
        ),
        case(
            "accounts::authorization_server_metadata",
            authorization_server_metadata,
        ),
        case(
            "accounts::null_id_and_expiry_are_unnamed_requests",
            null_id_and_expiry_are_unnamed_requests,
        ),
        case(
            "accounts::unknown_nested_fields_are_ignored",
            unknown_nested_fields_are_ignored,
        ),
        case(
            "accounts::offset_less_times_are_utc",
            offset_less_times_are_utc,
        ),
        case(
            "accounts::terms_accepted_at_is_checked_and_audited",
            terms_accepted_at_is_checked_and_audited,
        ),
    ]
}

fn new_account_code_tokens_refresh() {
    let p = provider();
    let id = unique("acctreq_");
    let mail = email();
    let reply = p.account_request(&account_request(&id, &mail)).unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["type"], "oauth");
    let code = body["oauth"]["code"].as_str().unwrap().to_string();
    assert!(code.starts_with("pvac_acct_"), "{code}");

    let reply = p.exchange_code(&code, None, true).unwrap();
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let body = reply.json();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "resources:read resources:write");
    assert_eq!(body["account"]["payment_credentials"], "orchestrator");
    let first = tokens_of(&reply);
    assert!(first
        .access
        .starts_with(&format!("pvat_{}_", first.account)));
    assert!(first
        .refresh
        .starts_with(&format!("pvrt_{}_", first.account)));

    let second = tokens_of(&p.refresh(&first.refresh, true).unwrap());
    assert_ne!(second.access, first.access);
    assert_ne!(second.refresh, first.refresh);
    assert_eq!(second.account, first.account);
    // The old refresh token is dead at once...
    let old = p.refresh(&first.refresh, true).unwrap();
    assert_error(&old, 400, "invalid_grant");
    // ...and presenting it again is treated as theft: the whole family is revoked.
    assert_error(
        &p.refresh(&second.refresh, true).unwrap(),
        400,
        "invalid_grant",
    );

    // The audit trail in D1: every step, in order, chained by hash.
    let rows = audit_rows(&first.account, 7);
    let actions: Vec<&str> = rows.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "account.created",
            "grant.created",
            "code.issued",
            "token.issued",
            "token.refreshed",
            "token.refresh_reused",
            "token.revoked"
        ],
        "{rows:?}"
    );
    let created = &rows[0];
    assert_eq!(created["actor"], "orchestrator");
    assert_eq!(created["actor_id"], "acct_stripe_test");
    // Token calls name the orchestrator of the grant behind the code or refresh token.
    for row in &rows[3..6] {
        assert_eq!(
            (row["actor"].as_str(), row["actor_id"].as_str()),
            (Some("orchestrator"), Some("acct_stripe_test")),
            "{row:?}"
        );
    }
    assert_eq!(created["on_behalf_of"], mail.as_str());
    assert_eq!(created["consent"], "tos:2026-11-01");
    let after: Value = serde_json::from_str(created["after"].as_str().unwrap()).unwrap();
    assert_eq!(after["tos_version"], "2026-11-01");
    assert_eq!(after["status"], "active");
    assert!(created["request_id"].as_str().unwrap().starts_with("req_"));
    assert_eq!(domain::audit::verify_chain(&as_records(&rows)), Ok(()));
    // No secret reached the audit trail.
    let dump = serde_json::to_string(&rows).unwrap();
    for secret in [&code, &first.access, &first.refresh, &second.access] {
        assert!(!dump.contains(secret.as_str()));
    }
}

fn replayed_request_id_is_idempotent() {
    let p = provider();
    let id = unique("acctreq_");
    let mail = email();
    let body = account_request(&id, &mail);
    let a = p.account_request(&body).unwrap().json();
    let b = p.account_request(&body).unwrap().json();
    assert_eq!(a["type"], "oauth");
    assert_eq!(
        a, b,
        "the same id returns the same outcome and code while unused"
    );
    // The same id with another body is a conflict.
    let mut other = body.clone();
    other["name"] = json!("Someone else");
    let reply = p.account_request(&other).unwrap();
    assert_error(&reply, 409, "idempotency_conflict");
    assert_eq!(reply.json()["id"], id.as_str());
    assert_eq!(reply.json()["type"], "error");
    // Once the code is exchanged, a replay says so instead of handing it out again.
    let code = a["oauth"]["code"].as_str().unwrap();
    let t = tokens_of(&p.exchange_code(code, None, true).unwrap());
    assert_error(&p.account_request(&body).unwrap(), 409, "already_redeemed");
    // Exactly one account was created.
    let rows = audit_rows(&t.account, 4);
    assert_eq!(
        rows.iter()
            .filter(|r| r["action"] == "account.created")
            .count(),
        1
    );
}

/// Accounts (by D1 audit rows) made on behalf of `mail`.
fn accounts_of(mail: &str) -> Vec<Value> {
    with_worker(|w| {
        w.d1(&format!(
            "SELECT DISTINCT account_id FROM audit_events WHERE on_behalf_of = '{mail}'"
        ))
    })
}

/// Issue 18 item 6: the same request id with another email was a second account.
fn request_id_is_idempotent_across_emails() {
    let p = provider();
    let id = unique("acctreq_");
    let (first, second) = (email(), email());
    // One body, sent again as it is: `expires_at` is part of it, so building it anew a second
    // later would be another body (and rightly a conflict).
    let body = account_request(&id, &first);
    let a = p.account_request(&body).unwrap();
    assert_eq!(a.json()["type"], "oauth", "{}", a.text());
    let reply = p.account_request(&account_request(&id, &second)).unwrap();
    assert_error(&reply, 409, "idempotency_conflict");
    assert_eq!(reply.json()["id"], id.as_str());
    // The same id and body still answers as the first time.
    let again = p.account_request(&body).unwrap();
    assert_eq!(again.json(), a.json());
    // Nothing exists for the second email: a fresh id for it makes a new account.
    let fresh = p
        .account_request(&account_request(&unique("acctreq_"), &second))
        .unwrap();
    assert_eq!(fresh.json()["type"], "oauth", "{}", fresh.text());

    // Concurrent requests with one id and two emails: one account, one conflict.
    for _ in 0..3 {
        let id = unique("acctreq_");
        let mails = [email(), email()];
        let handles: Vec<_> = mails
            .iter()
            .map(|mail| {
                let p = p.clone();
                let body = account_request(&id, mail);
                std::thread::spawn(move || p.account_request(&body).unwrap())
            })
            .collect();
        let replies: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let oauth = replies
            .iter()
            .filter(|r| r.status == 200 && r.json()["type"] == "oauth")
            .count();
        let conflicts = replies
            .iter()
            .filter(|r| r.error_code().as_deref() == Some("idempotency_conflict"))
            .count();
        assert_eq!(
            (oauth, conflicts),
            (1, 1),
            "{:?}",
            replies.iter().map(|r| r.text()).collect::<Vec<_>>()
        );
        let made: usize = mails.iter().map(|m| accounts_of(m).len()).sum();
        assert_eq!(made, 1, "exactly one account for the id");
    }
}

fn concurrent_requests_for_one_email_make_one_account() {
    let p = provider();
    let mail = email();
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let p = p.clone();
            let body = account_request(&unique("acctreq_"), &mail);
            std::thread::spawn(move || p.account_request(&body).unwrap())
        })
        .collect();
    let replies: Vec<Value> = handles
        .into_iter()
        .map(|h| h.join().unwrap().json())
        .collect();
    let oauth: Vec<&Value> = replies.iter().filter(|r| r["type"] == "oauth").collect();
    let auth = replies
        .iter()
        .filter(|r| r["type"] == "requires_auth")
        .count();
    assert_eq!((oauth.len(), auth), (1, 19), "{replies:?}");
    let code = oauth[0]["oauth"]["code"].as_str().unwrap();
    let account = tokens_of(&p.exchange_code(code, None, true).unwrap()).account;
    // Every consent link routes to that same account.
    for r in replies.iter().filter(|r| r["type"] == "requires_auth") {
        let url = r["requires_auth"]["url"].as_str().unwrap();
        assert!(url.contains(&format!("pvcs_{account}_")), "{url}");
    }
    let rows = with_worker(|w| {
        w.d1(&format!(
            "SELECT DISTINCT account_id FROM audit_events WHERE on_behalf_of = '{mail}'"
        ))
    });
    assert_eq!(rows.len(), 1, "{rows:?}");
}

fn existing_email_requires_auth() {
    let p = provider();
    let mail = email();
    let t = new_account(&mail);
    // Case and spaces do not make a new person.
    let id = unique("acctreq_");
    let request = account_request(&id, &format!("  {}", mail.to_uppercase()));
    let reply = p.account_request(&request).unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["type"], "requires_auth");
    let url = body["requires_auth"]["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!(
            "{}/oauth/authorize?consent=pvcs_{}_",
            p.base(),
            t.account
        )),
        "{url}"
    );
    // Nothing was linked silently: no code, no grant for the new request yet.
    let rows = audit_rows(&t.account, 5);
    let actions: Vec<&str> = rows.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(actions.last(), Some(&"consent.requested"), "{actions:?}");
    assert_eq!(actions.iter().filter(|a| **a == "grant.created").count(), 1);
    // Replaying returns the same link.
    let again = p.account_request(&request).unwrap();
    assert_eq!(again.json(), body);
}

fn pkce_right_and_wrong() {
    let p = provider();
    let verifier = "M25iVXpKU3puUjFaYWg3T1NDTDQtcW1ROUY5YXlwalNoc0hhakxifmZHag";
    let mut body = account_request(&unique("acctreq_"), &email());
    body["code_challenge"] = json!(pkce::challenge_for(verifier));
    body["code_challenge_method"] = json!("S256");
    let code = p.account_request(&body).unwrap().json()["oauth"]["code"]
        .as_str()
        .unwrap()
        .to_string();
    // Wrong verifier, missing verifier: refused, and the code is not spent.
    let wrong = "x".repeat(50);
    assert_error(
        &p.exchange_code(&code, Some(&wrong), false).unwrap(),
        400,
        "invalid_grant",
    );
    assert_error(
        &p.exchange_code(&code, None, false).unwrap(),
        400,
        "invalid_grant",
    );
    assert_error(
        &p.exchange_code(&code, None, true).unwrap(),
        400,
        "invalid_grant",
    );
    // The right verifier works without the orchestrator's signature (a public client)...
    let t = tokens_of(&p.exchange_code(&code, Some(verifier), false).unwrap());
    // ...and so does refreshing its tokens.
    tokens_of(&p.refresh(&t.refresh, false).unwrap());

    // Without a challenge, an unsigned exchange is not authenticated.
    let code = p
        .account_request(&account_request(&unique("acctreq_"), &email()))
        .unwrap()
        .json()["oauth"]["code"]
        .as_str()
        .unwrap()
        .to_string();
    assert_error(
        &p.exchange_code(&code, None, false).unwrap(),
        401,
        "invalid_client",
    );
    assert_error(
        &p.exchange_code(&code, Some(verifier), true).unwrap(),
        400,
        "invalid_grant",
    );
    // A signed refresh is required for tokens issued to the signed (confidential) client.
    let t = tokens_of(&p.exchange_code(&code, None, true).unwrap());
    let unsigned = p.refresh(&t.refresh, false).unwrap();
    assert_error(&unsigned, 401, "invalid_client");
    // The error says what to do: sign the call (or the operator's switch that allows it).
    let said = unsigned.json()["error_description"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        said.contains("Stripe-Signature") && said.contains("REFRESH_REQUIRES_SIGNATURE"),
        "{said}"
    );
    // The refused refresh did not spend the token: signed, it still works.
    tokens_of(&p.refresh(&t.refresh, true).unwrap());
}

fn expired_request() {
    let p = provider();
    let mut body = account_request(&unique("acctreq_"), &email());
    body["expires_at"] = json!(domain::time::format_rfc3339(app_client::unix_now() - 1));
    let reply = p.account_request(&body).unwrap();
    assert_error(&reply, 400, "expired");
    assert_eq!(reply.json()["id"], body["id"]);
    assert_eq!(reply.json()["type"], "error");
}

fn reused_code_revokes_what_it_issued() {
    let p = provider();
    let reply = p
        .account_request(&account_request(&unique("acctreq_"), &email()))
        .unwrap();
    let code = reply.json()["oauth"]["code"].as_str().unwrap().to_string();
    let t = tokens_of(&p.exchange_code(&code, None, true).unwrap());
    assert_eq!(introspect(&t.access)["active"], true);
    assert_error(
        &p.exchange_code(&code, None, true).unwrap(),
        400,
        "invalid_grant",
    );
    assert_eq!(introspect(&t.access)["active"], false);
    assert_eq!(introspect(&t.refresh)["active"], false);
    assert_error(&p.refresh(&t.refresh, true).unwrap(), 400, "invalid_grant");
}

fn malformed_account_requests_change_nothing() {
    let p = provider();
    let mail = email();
    let base = account_request("acctreq_malformed", &mail);
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = base.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (b"{not json".to_vec(), "invalid_request", "JSON"),
        (b"[1,2]".to_vec(), "invalid_request", "object"),
        // Without an id (absent or null) a request is valid since issue 15: an unnamed
        // request (accounts::null_id_and_expiry_are_unnamed_requests).
        (
            with("id", json!(7)).to_string().into_bytes(),
            "invalid_request",
            "id",
        ),
        (
            without("email").to_string().into_bytes(),
            "invalid_request",
            "email",
        ),
        (
            with("email", json!("nobody")).to_string().into_bytes(),
            "invalid_email",
            "@",
        ),
        (
            with("email", json!(5)).to_string().into_bytes(),
            "invalid_request",
            "email",
        ),
        (
            with("name", json!({"first": "x"})).to_string().into_bytes(),
            "invalid_request",
            "name",
        ),
        (
            with("scopes", json!(["root"])).to_string().into_bytes(),
            "invalid_scope",
            "root",
        ),
        (
            with("scopes", json!("resources:write"))
                .to_string()
                .into_bytes(),
            "invalid_request",
            "scopes",
        ),
        (
            with("expires_at", json!(12345)).to_string().into_bytes(),
            "invalid_request",
            "expires_at",
        ),
        (
            with("expires_at", json!("soon")).to_string().into_bytes(),
            "invalid_request",
            "expires_at",
        ),
        (
            without("orchestrator").to_string().into_bytes(),
            "invalid_request",
            "orchestrator",
        ),
        (
            with("orchestrator", json!({"type": "stripe", "stripe": {}}))
                .to_string()
                .into_bytes(),
            "invalid_request",
            "orchestrator.stripe.account",
        ),
        (
            with("configuration", json!("eu")).to_string().into_bytes(),
            "invalid_request",
            "configuration",
        ),
        (
            with("code_challenge", json!("abc"))
                .to_string()
                .into_bytes(),
            "invalid_code_challenge",
            "code_challenge",
        ),
        (
            with("name", json!("x".repeat(300)))
                .to_string()
                .into_bytes(),
            "invalid_request",
            "name",
        ),
    ];
    for (body, code, mentions) in cases {
        let reply = p
            .send(
                Call::new("POST", "/provisioning/account_requests")
                    .raw_body(body.clone(), "application/json"),
            )
            .unwrap();
        assert_error(&reply, 400, code);
        let json = reply.json();
        assert_eq!(json["type"], "error", "{json}");
        assert!(
            json["error"]["message"]
                .as_str()
                .unwrap()
                .contains(mentions),
            "{} -> {json}",
            String::from_utf8_lossy(&body)
        );
        if serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|b| b["id"].as_str().map(str::to_string))
            .is_some()
        {
            assert_eq!(json["id"], "acctreq_malformed");
        }
    }
    // Wrong content type.
    let reply = p
        .send(
            Call::new("POST", "/provisioning/account_requests")
                .raw_body(base.to_string().into_bytes(), "text/plain"),
        )
        .unwrap();
    assert_error(&reply, 415, "unsupported_media_type");
    // Oversized.
    let mut big = base.clone();
    big["name"] = json!("x".repeat(70_000));
    let reply = p.account_request(&big).unwrap();
    assert_error(&reply, 413, "payload_too_large");
    // Unsigned and wrong version are refused before the body is looked at.
    let reply = p
        .send(Call::post_json("/provisioning/account_requests", &base).signing(Signing::Unsigned))
        .unwrap();
    assert_error(&reply, 401, "invalid_signature");
    let reply = p
        .send(Call::post_json("/provisioning/account_requests", &base).api_version(Some("0.1c")))
        .unwrap();
    assert_error(&reply, 400, "invalid_api_version");
    // Nothing was created for that email: the first valid request makes a new account.
    let reply = p
        .account_request(&account_request(&unique("acctreq_"), &mail))
        .unwrap();
    assert_eq!(reply.json()["type"], "oauth", "{}", reply.text());
}

fn token_call(fields: &[(&str, &str)]) -> app_client::Reply {
    provider()
        .send(Call::post_form("/oauth/token", fields).api_version(None))
        .unwrap()
}

fn token_endpoint_errors() {
    let p = provider();
    assert_error(
        &token_call(&[("grant_type", "password")]),
        400,
        "unsupported_grant_type",
    );
    assert_error(&token_call(&[]), 400, "invalid_request");
    assert_error(
        &token_call(&[("grant_type", "authorization_code")]),
        400,
        "invalid_request",
    );
    assert_error(
        &token_call(&[("grant_type", "refresh_token")]),
        400,
        "invalid_request",
    );
    assert_error(
        &token_call(&[("grant_type", "authorization_code"), ("code", "garbage")]),
        400,
        "invalid_grant",
    );
    // A well-formed code for an account that does not exist.
    let fake = "pvac_acct_aaaaaaaaaaaaaaaa_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    assert_error(
        &token_call(&[("grant_type", "authorization_code"), ("code", fake)]),
        400,
        "invalid_grant",
    );
    // Repeated parameters are refused (RFC 6749 §3.1).
    let reply = p
        .send(
            Call::new("POST", "/oauth/token")
                .raw_body(
                    b"grant_type=refresh_token&grant_type=refresh_token".to_vec(),
                    "application/x-www-form-urlencoded",
                )
                .api_version(None),
        )
        .unwrap();
    assert_error(&reply, 400, "invalid_request");
    // JSON is not accepted at the token endpoint.
    let reply = p
        .send(
            Call::post_json("/oauth/token", &json!({"grant_type": "refresh_token"}))
                .api_version(None),
        )
        .unwrap();
    assert_error(&reply, 400, "invalid_request");
    // A present but bad signature is invalid_client, in the RFC 6749 envelope.
    let reply = p
        .send(
            Call::post_form(
                "/oauth/token",
                &[("grant_type", "refresh_token"), ("refresh_token", "x")],
            )
            .api_version(None)
            .signing(Signing::Secret("whsec_wrong".into())),
        )
        .unwrap();
    assert_error(&reply, 401, "invalid_client");
    let body = reply.json();
    assert!(body["error_description"].is_string(), "{body}");
}

fn introspect(token: &str) -> Value {
    let reply = provider()
        .send(
            Call::post_form("/oauth/introspect", &[("token", token)])
                .api_version(None)
                .signing(Signing::Unsigned)
                .bearer(OPERATOR_SECRET),
        )
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

fn introspection_and_revocation() {
    let p = provider();
    let t = new_account(&email());
    let info = introspect(&t.access);
    assert_eq!(info["active"], true);
    assert_eq!(info["token_type"], "access_token");
    assert_eq!(info["sub"], t.account.as_str());
    assert_eq!(info["scope"], "resources:read resources:write");
    assert_eq!(introspect("not-a-token"), json!({"active": false}));
    // The operator secret is required.
    for bearer in [None, Some("op_wrong")] {
        let mut call = Call::post_form("/oauth/introspect", &[("token", &t.access)])
            .api_version(None)
            .signing(Signing::Unsigned);
        if let Some(b) = bearer {
            call = call.bearer(b);
        }
        assert_error(&p.send(call).unwrap(), 401, "invalid_client");
    }
    // Revocation (RFC 7009): 200 whatever the token, and the pair stops working.
    let revoke = |token: &str| {
        p.send(Call::post_form("/oauth/revoke", &[("token", token)]).api_version(None))
            .unwrap()
    };
    assert_eq!(revoke("unknown").status, 200);
    assert_eq!(revoke(&t.refresh).status, 200);
    assert_eq!(introspect(&t.access)["active"], false);
    assert_error(&p.refresh(&t.refresh, true).unwrap(), 400, "invalid_grant");
    let rows = audit_rows(&t.account, 5);
    assert_eq!(rows.last().unwrap()["action"], "token.revoked");
}

fn authorization_server_metadata() {
    let p = provider();
    let reply = p
        .send(
            Call::get("/.well-known/oauth-authorization-server")
                .signing(Signing::Unsigned)
                .api_version(None),
        )
        .unwrap();
    assert_eq!(reply.status, 200);
    let m = reply.json();
    assert_eq!(m["issuer"], p.base());
    assert_eq!(m["token_endpoint"], format!("{}/oauth/token", p.base()));
    let methods: HashSet<&str> = m["code_challenge_methods_supported"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(methods, HashSet::from(["S256"]));
}

/// Issue 15: the orchestrator may send `null` for `id` and `expires_at`. Such a request claims
/// nothing and is never replayed: the same body twice is two requests. The email is the same,
/// so the second finds the account the first created and asks the owner (`requires_auth`).
fn null_id_and_expiry_are_unnamed_requests() {
    let p = provider();
    let mail = email();
    let mut body = account_request("x", &mail);
    body["id"] = Value::Null;
    body["expires_at"] = Value::Null;
    let first = p.account_request(&body).unwrap();
    assert_eq!(first.status, 200, "{}", first.text());
    let first = first.json();
    assert_eq!(first["id"], Value::Null, "{first}");
    assert_eq!(first["type"], "oauth", "{first}");
    let second = p.account_request(&body).unwrap();
    assert_eq!(second.status, 200, "{}", second.text());
    let second = second.json();
    assert_eq!(second["id"], Value::Null, "{second}");
    assert_eq!(second["type"], "requires_auth", "{second}");
    // The first code still works: the second request did not replay or disturb it.
    let code = first["oauth"]["code"].as_str().unwrap();
    let tokens = tokens_of(&p.exchange_code(code, None, true).unwrap());
    audit_rows(&tokens.account, 1);
    assert_eq!(accounts_of(&mail).len(), 1);
    // An error of an id-less request carries no id.
    let mut bad = body.clone();
    bad["email"] = json!("not-an-email");
    let reply = p.account_request(&bad).unwrap();
    assert_error(&reply, 400, "invalid_email");
    assert_eq!(reply.json()["id"], Value::Null);
    // A third one opens another consent, independent of the second (another link).
    let third = p.account_request(&body).unwrap().json();
    assert_eq!(third["type"], "requires_auth", "{third}");
    assert_ne!(
        third["requires_auth"]["url"],
        second["requires_auth"]["url"]
    );
    assert!(!tokens.access.is_empty());
}

/// Issue 15: unknown fields anywhere in the body (top level, `orchestrator`, `stripe`) are
/// ignored.
fn unknown_nested_fields_are_ignored() {
    let p = provider();
    let mut body = account_request(&unique("acctreq_"), &email());
    body["future_field"] = json!({"nested": [1, {"deep": true}]});
    body["orchestrator"]["future"] = json!("x");
    body["orchestrator"]["stripe"]["future"] = json!({"deep": {"deeper": null}});
    body["orchestrator"]["stripe"]["organisation"] = Value::Null;
    body["code_challenge"] = Value::Null;
    body["code_challenge_method"] = Value::Null;
    body["scopes"] = Value::Null;
    let reply = p.account_request(&body).unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["id"], body["id"]);
    assert_eq!(reply.json()["type"], "oauth");
    // Replaying it is idempotent as usual.
    let again = p.account_request(&body).unwrap().json();
    assert_eq!(again, reply.json());
}

/// Issue 15: ISO 8601 without an offset is UTC, with fractional seconds.
fn offset_less_times_are_utc() {
    let p = provider();
    let offset_less = |t: i64, frac: &str| {
        let z = domain::time::format_rfc3339(t);
        format!("{}{frac}", z.trim_end_matches('Z'))
    };
    let now = app_client::unix_now();
    let mut body = account_request(&unique("acctreq_"), &email());
    body["expires_at"] = json!(offset_less(now - 5, ".123"));
    let reply = p.account_request(&body).unwrap();
    assert_error(&reply, 400, "expired");
    assert_eq!(reply.json()["id"], body["id"]);
    // In the future (read as UTC, whatever the worker's zone) it is accepted.
    body["id"] = json!(unique("acctreq_"));
    body["expires_at"] = json!(offset_less(now + 600, ".5"));
    let reply = p.account_request(&body).unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["type"], "oauth");
}

/// Issue 15: `terms_accepted_at` in the future is refused naming the field; a valid one is
/// recorded in the new account's `account.created` audit record.
fn terms_accepted_at_is_checked_and_audited() {
    let p = provider();
    let now = app_client::unix_now();
    let mut body = account_request(&unique("acctreq_"), &email());
    body["terms_accepted_at"] = json!(domain::time::format_rfc3339(now + 3600));
    let reply = p.account_request(&body).unwrap();
    assert_error(&reply, 400, "invalid_request");
    let message = reply.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(message.contains("terms_accepted_at"), "{message}");

    let accepted = now - 60;
    body["id"] = json!(unique("acctreq_"));
    body["terms_accepted_at"] = json!(domain::time::format_rfc3339(accepted).trim_end_matches('Z'));
    let reply = p.account_request(&body).unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let code = reply.json()["oauth"]["code"].as_str().unwrap().to_string();
    let account = tokens_of(&p.exchange_code(&code, None, true).unwrap()).account;
    audit_rows(&account, 1);
    let page = crate::operator::op("GET", &format!("/v1/accounts/{account}/audit"), None);
    assert_eq!(page.status, 200, "{}", page.text());
    let page = page.json();
    let created = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "account.created")
        .cloned()
        .unwrap_or_else(|| panic!("no account.created in {page}"));
    let after = match &created["after"] {
        Value::String(s) => serde_json::from_str(s).unwrap(),
        v => v.clone(),
    };
    assert_eq!(
        after["terms_accepted_at"],
        domain::time::format_rfc3339(accepted),
        "{created}"
    );
    assert!(after["tos_version"].is_string(), "{created}");
}

/// What an orchestrator that refreshes by possession needs (protocol §8), as configuration: a
/// worker with `ACCESS_TOKEN_TTL_SECONDS` at its 365-day maximum and
/// `REFRESH_REQUIRES_SIGNATURE=false` issues year-long access tokens and takes an unsigned
/// refresh of a signed client's token; the default worker (the suite's) refuses it.
fn long_tokens_and_refresh_by_possession_when_configured() {
    let worker = app_tests::DevWorker::start(
        app_tests::Options::default()
            .set("ACCESS_TOKEN_TTL_SECONDS", "31536000")
            .set("REFRESH_REQUIRES_SIGNATURE", "false"),
    );
    let p = worker.provider();
    let request = app_tests::flows::account_request(&unique("acctreq_long_"), &email());
    let code = p.account_request(&request).unwrap().json()["oauth"]["code"]
        .as_str()
        .unwrap()
        .to_string();
    let issued = p.exchange_code(&code, None, true).unwrap();
    assert_eq!(issued.status, 200, "{}", issued.text());
    assert_eq!(issued.json()["expires_in"], 31_536_000, "{}", issued.text());
    let t = tokens_of(&issued);
    // Unsigned, by possession of the refresh token alone: a new pair, and the old one is spent.
    let refreshed = p.refresh(&t.refresh, false).unwrap();
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    assert_eq!(refreshed.json()["expires_in"], 31_536_000);
    let again = p.refresh(&t.refresh, false).unwrap();
    assert_eq!(again.status, 400, "a spent refresh token: {}", again.text());
    // The suite's worker keeps the strict default.
    let strict = new_account(&email());
    assert_error(
        &provider().refresh(&strict.refresh, false).unwrap(),
        401,
        "invalid_client",
    );
}
