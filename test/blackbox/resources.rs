//! Resources (docs/PROTOCOL.md §4, §6) over the wire: plans with Stripe payments through the local
//! stand-in, scoped API tokens, domains with quote and confirm, the spending cap, operator
//! backends, and every refusal.

use std::time::{Duration, Instant};

use app_client::{Call, Reply, Signing};
use app_tests::stand_in::Fault;
use app_tests::OPERATOR_SECRET;
use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::common::*;

pub fn trials() -> Vec<Trial> {
    vec![
        case("resources::api_token_full_life", api_token_full_life),
        case("resources::plans_and_payments", plans_and_payments),
        case(
            "resources::a_token_whose_max_amount_is_too_small",
            a_token_whose_max_amount_is_too_small,
        ),
        case(
            "resources::domain_quote_confirm_purchase",
            domain_quote_confirm_purchase,
        ),
        case("resources::expired_quote", expired_quote),
        case("resources::upstream_registrar", upstream_registrar),
        case(
            "resources::spending_cap_with_concurrent_purchases",
            spending_cap_with_concurrent_purchases,
        ),
        case(
            "resources::stripe_failing_then_recovering_charges_once",
            stripe_failing_then_recovering_charges_once,
        ),
        case(
            "resources::operator_backend_pending_then_complete",
            operator_backend_pending_then_complete,
        ),
        case(
            "resources::another_accounts_bearer_sees_nothing",
            another_accounts_bearer_sees_nothing,
        ),
        case(
            "resources::bad_requests_change_nothing",
            bad_requests_change_nothing,
        ),
        case("resources::read_only_tokens", read_only_tokens),
        case(
            "resources::a_removed_resource_is_not_found",
            a_removed_resource_is_not_found,
        ),
    ]
}

/// Calls a resource endpoint signed by the orchestrator with `token` as bearer.
pub fn call(token: &str, call: Call) -> Reply {
    provider().send(call.bearer(token)).unwrap()
}

pub fn create(token: &str, body: Value) -> Reply {
    call(token, Call::post_json("/provisioning/resources", &body))
}

pub fn get(token: &str, id: &str) -> Reply {
    call(token, Call::get(&format!("/provisioning/resources/{id}")))
}

pub fn post(token: &str, id: &str, action: &str, body: Value) -> Reply {
    call(
        token,
        Call::post_json(&format!("/provisioning/resources/{id}/{action}"), &body),
    )
}

#[track_caller]
pub fn ok(reply: &Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

/// A payment token from the stand-in: usd, `max` cents, valid for an hour.
pub fn spt(max: u64) -> String {
    with_worker(|w| {
        w.stand_in
            .create_granted_token("usd", max, app_client::unix_now() + 3600, None)
    })
}

pub fn pay(token: &str) -> Value {
    json!({"type": "stripe_payment_token", "stripe_payment_token": token})
}

/// A new account with the free plan; returns its tokens.
pub fn account_with_free_plan() -> Tokens {
    let t = new_account(&email());
    let plan = ok(&create(
        &t.access,
        json!({"service_id": "free", "project_id": "proj_1"}),
    ));
    assert_eq!(plan["status"], "complete");
    t
}

/// Polls GET until the resource is no longer pending (or 20 s pass).
pub fn settle(token: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = ok(&get(token, id));
        if v["status"] != "pending" || Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn introspect(token: &str) -> Value {
    provider()
        .send(
            Call::post_form("/oauth/introspect", &[("token", token)])
                .api_version(None)
                .signing(Signing::Unsigned)
                .bearer(OPERATOR_SECRET),
        )
        .unwrap()
        .json()
}

fn payment_intents_for(resource: &str) -> Vec<Value> {
    with_worker(|w| w.stand_in.payment_intents())
        .into_iter()
        .filter(|pi| pi["metadata"]["resource_id"] == resource)
        .collect()
}

fn api_token_full_life() {
    let t = new_account(&email());
    // A deployable needs a plan first.
    assert_error(
        &create(
            &t.access,
            json!({"service_id": "api_token", "project_id": "p"}),
        ),
        409,
        "plan_required",
    );
    ok(&create(
        &t.access,
        json!({"service_id": "free", "project_id": "p"}),
    ));
    let body = json!({"service_id": "api_token", "project_id": "p", "configuration": {"scopes": ["deploy:write"], "label": "ci"}});
    let r = ok(&create(&t.access, body.clone()));
    assert_eq!(r["status"], "complete");
    assert_eq!(r["service_id"], "api_token");
    let id = r["id"].as_str().unwrap().to_string();
    let ac = &r["complete"]["access_configuration"];
    let token = ac["API_TOKEN"].as_str().unwrap().to_string();
    assert!(
        token.starts_with(&format!("pvak_{}_", t.account)),
        "{token}"
    );
    assert_eq!(ac["ACCOUNT_ID"], t.account.as_str());
    assert_eq!(ac["API_TOKEN_SCOPES"], "deploy:write");
    // The operator's API verifies it through introspection.
    let info = introspect(&token);
    assert_eq!(
        (info["active"].clone(), info["scope"].clone()),
        (json!(true), json!("deploy:write"))
    );
    // A retried create is the same resource with the same token; GET shows it too.
    assert_eq!(ok(&create(&t.access, body)), r);
    assert_eq!(ok(&get(&t.access, &id)), r);
    // Rotate: a new value, the old one dead at once.
    let rotated = ok(&post(&t.access, &id, "rotate_credentials", json!({})));
    let new_token = rotated["complete"]["access_configuration"]["API_TOKEN"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_token, token);
    assert_eq!(introspect(&token)["active"], false);
    assert_eq!(introspect(&new_token)["active"], true);
    // Update is refused (no allowed_updates); rotate on a plan is refused.
    assert_error(
        &post(
            &t.access,
            &id,
            "update_service",
            json!({"service_id": "domain"}),
        ),
        400,
        "update_not_allowed",
    );
    // Remove, twice.
    assert_eq!(
        ok(&post(&t.access, &id, "remove", json!({}))),
        json!({"status": "removed", "id": id})
    );
    assert_eq!(
        ok(&post(&t.access, &id, "remove", json!({}))),
        json!({"status": "removed", "id": id})
    );
    assert_eq!(introspect(&new_token)["active"], false);
    assert_error(&get(&t.access, &id), 404, "resource_not_found");
    let rows = audit_rows(&t.account, 10);
    let actions: Vec<&str> = rows.iter().map(|r| r["action"].as_str().unwrap()).collect();
    for a in ["resource.created", "resource.rotated", "resource.removed"] {
        assert!(actions.contains(&a), "{a} missing in {actions:?}");
    }
    assert_eq!(domain::audit::verify_chain(&as_records(&rows)), Ok(()));
    let dump = serde_json::to_string(&rows).unwrap();
    assert!(
        !dump.contains(&token) && !dump.contains(&new_token),
        "no secret in the audit trail"
    );
}

fn plans_and_payments() {
    let t = new_account(&email());
    // Paid without payment credentials.
    assert_error(
        &create(&t.access, json!({"service_id": "paid", "project_id": "p"})),
        400,
        "requires_payment_credentials",
    );
    let token = spt(5000);
    let r = ok(&create(
        &t.access,
        json!({"service_id": "paid", "project_id": "p", "payment_credentials": pay(&token)}),
    ));
    assert_eq!(r["status"], "complete", "{r}");
    assert_eq!(r["complete"]["access_configuration"]["PLAN"], "paid");
    let id = r["id"].as_str().unwrap().to_string();
    // At Stripe: one customer, one first-period charge with the token, one subscription.
    let pis = payment_intents_for(&id);
    assert_eq!(pis.len(), 1, "{pis:?}");
    assert_eq!(pis[0]["amount"], 2000);
    assert_eq!(pis[0]["status"], "succeeded");
    let subs: Vec<Value> = with_worker(|w| w.stand_in.subscriptions())
        .into_iter()
        .filter(|s| s["metadata"]["resource_id"] == id.as_str())
        .collect();
    assert_eq!(subs.len(), 1);
    assert_eq!(
        subs[0]["items"]["data"][0]["price"]["id"],
        "price_pro_monthly"
    );
    assert_eq!(
        subs[0]["status"], "trialing",
        "the first period was paid up front"
    );
    // Every POST carried an idempotency key.
    let requests = with_worker(|w| w.stand_in.requests());
    assert!(requests
        .iter()
        .filter(|r| r["method"] == "POST")
        .all(|r| r["idempotency_key"].is_string()));
    // At most one plan: another one is refused, the same one is the same resource.
    assert_error(
        &create(&t.access, json!({"service_id": "free", "project_id": "p"})),
        409,
        "plan_already_active",
    );
    assert_eq!(
        ok(&create(
            &t.access,
            json!({"service_id": "paid", "project_id": "x", "payment_credentials": pay(&token)})
        ))["id"],
        id.as_str()
    );
    // Plans have no credentials to rotate; unknown targets are refused.
    assert_error(
        &post(&t.access, &id, "rotate_credentials", json!({})),
        400,
        "rotation_not_supported",
    );
    assert_error(
        &post(
            &t.access,
            &id,
            "update_service",
            json!({"service_id": "gold"}),
        ),
        400,
        "unknown_service",
    );
    assert_error(
        &post(
            &t.access,
            &id,
            "update_service",
            json!({"service_id": "api_token"}),
        ),
        400,
        "update_not_allowed",
    );
    // paid -> free cancels the subscription at Stripe.
    let r = ok(&post(
        &t.access,
        &id,
        "update_service",
        json!({"service_id": "free"}),
    ));
    assert_eq!(
        (r["status"].clone(), r["service_id"].clone()),
        (json!("complete"), json!("free")),
        "{r}"
    );
    let sub = with_worker(|w| w.stand_in.subscriptions())
        .into_iter()
        .find(|s| s["metadata"]["resource_id"] == id.as_str())
        .unwrap();
    assert_eq!(sub["status"], "canceled");
    // free -> paid needs payment credentials, and charges again.
    assert_error(
        &post(
            &t.access,
            &id,
            "update_service",
            json!({"service_id": "paid"}),
        ),
        400,
        "requires_payment_credentials",
    );
    let r = ok(&post(
        &t.access,
        &id,
        "update_service",
        json!({"service_id": "paid", "payment_credentials": pay(&spt(5000))}),
    ));
    assert_eq!(r["service_id"], "paid", "{r}");
    assert_eq!(payment_intents_for(&id).len(), 2);
    let rows = audit_rows(&t.account, 20);
    let actions: Vec<&str> = rows.iter().map(|r| r["action"].as_str().unwrap()).collect();
    for a in [
        "spend.reserved",
        "charge.succeeded",
        "billing.customer_created",
        "subscription.canceled",
        "resource.updated",
    ] {
        assert!(actions.contains(&a), "{a} missing in {actions:?}");
    }
}

fn a_token_whose_max_amount_is_too_small() {
    let t = new_account(&email());
    let small = spt(1500);
    let reply = create(
        &t.access,
        json!({"service_id": "paid", "project_id": "p", "payment_credentials": pay(&small)}),
    );
    assert_error(&reply, 402, "payment_token_insufficient");
    assert_eq!(reply.json()["status"], "error");
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("$15.00"),
        "{}",
        reply.text()
    );
    // Nothing was charged, nothing was kept: the next attempt with a bigger token works.
    // The token was read, and no charge was even attempted with it.
    let requests = with_worker(|w| w.stand_in.requests());
    assert!(requests
        .iter()
        .any(|r| r["path"] == format!("/v1/shared_payment/granted_tokens/{small}")));
    let attempted: Vec<&Value> = requests
        .iter()
        .filter(|r| {
            r["path"] == "/v1/payment_intents"
                && r["params"]["payment_method_data"]["shared_payment_granted_token"]
                    == small.as_str()
        })
        .collect();
    assert!(attempted.is_empty(), "{attempted:?}");
    let r = ok(&create(
        &t.access,
        json!({"service_id": "paid", "project_id": "p", "payment_credentials": pay(&spt(2000))}),
    ));
    assert_eq!(r["status"], "complete");
    // Declined cards are precise too.
    let t2 = new_account(&email());
    let declining = with_worker(|w| {
        w.stand_in.create_granted_token(
            "usd",
            5000,
            app_client::unix_now() + 3600,
            Some("insufficient_funds"),
        )
    });
    let reply = create(
        &t2.access,
        json!({"service_id": "paid", "project_id": "p", "payment_credentials": pay(&declining)}),
    );
    assert_error(&reply, 402, "payment_declined");
    assert!(reply.text().contains("insufficient_funds"));
}

fn quote(t: &Tokens, service: &str, query: &str) -> Value {
    let r = ok(&create(
        &t.access,
        json!({"service_id": service, "project_id": unique("proj_"), "configuration": {"domain_query": query},
               "payment_credentials": pay(&spt(10_000))}),
    ));
    assert_eq!(r["status"], "needs_information", "{r}");
    r
}

fn domain_quote_confirm_purchase() {
    let t = account_with_free_plan();
    let label = unique("acme");
    let r = quote(&t, "domain", &label);
    let id = r["id"].as_str().unwrap().to_string();
    let ni = &r["needs_information"];
    let names = ni["schema"]["properties"]["domain"]["enum"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(names[0], format!("{label}.apps.example.test"));
    assert_eq!(ni["quote"]["candidates"][0]["amount"], 1200);
    assert!(ni["message"].as_str().unwrap().contains("$12.00"));
    assert!(
        payment_intents_for(&id).is_empty(),
        "a quote charges nothing"
    );
    let name = names[0].as_str().unwrap().to_string();
    // The wrong amount is refused: the agent must acknowledge the exact price.
    assert_error(
        &post(
            &t.access,
            &id,
            "confirm",
            json!({"domain": name, "amount": 1000}),
        ),
        409,
        "price_changed",
    );
    assert_error(
        &post(
            &t.access,
            &id,
            "confirm",
            json!({"domain": "evil.example.com", "amount": 1200}),
        ),
        400,
        "invalid_request",
    );
    let done = ok(&post(
        &t.access,
        &id,
        "confirm",
        json!({"domain": name, "amount": 1200}),
    ));
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(
        done["complete"]["access_configuration"]["DOMAIN"],
        name.as_str()
    );
    let pis = payment_intents_for(&id);
    assert_eq!(pis.len(), 1);
    assert_eq!(pis[0]["amount"], 1200);
    // Confirming again buys nothing.
    assert_error(
        &post(
            &t.access,
            &id,
            "confirm",
            json!({"domain": name, "amount": 1200}),
        ),
        409,
        "not_awaiting_confirmation",
    );
    assert_eq!(payment_intents_for(&id).len(), 1);
    // Someone else now sees the name as taken.
    let other = account_with_free_plan();
    let r2 = quote(&other, "domain", &label);
    let c0 = &r2["needs_information"]["quote"]["candidates"][0];
    assert_eq!(
        (c0["domain"].as_str(), c0["available"].as_bool()),
        (Some(name.as_str()), Some(false))
    );
    // Removing releases the name.
    assert_eq!(
        ok(&post(&t.access, &id, "remove", json!({}))),
        json!({"status": "removed", "id": id})
    );
    let r3 = quote(&other, "domain", &label);
    assert_eq!(
        r3["needs_information"]["quote"]["candidates"][0]["available"],
        true
    );
    let rows = audit_rows(&t.account, 12);
    let actions: Vec<&str> = rows.iter().map(|r| r["action"].as_str().unwrap()).collect();
    for a in [
        "domain.confirmed",
        "charge.succeeded",
        "domain.registered",
        "domain.released",
    ] {
        assert!(actions.contains(&a), "{a} missing in {actions:?}");
    }
}

fn expired_quote() {
    let t = account_with_free_plan();
    let r = quote(&t, "domain_short", &unique("short"));
    let id = r["id"].as_str().unwrap().to_string();
    let name = r["needs_information"]["schema"]["properties"]["domain"]["enum"][0]
        .as_str()
        .unwrap()
        .to_string();
    std::thread::sleep(Duration::from_secs(6));
    assert_error(
        &post(
            &t.access,
            &id,
            "confirm",
            json!({"domain": name, "amount": 1200}),
        ),
        409,
        "quote_expired",
    );
    assert!(payment_intents_for(&id).is_empty());
    // The resource carries a fresh quote: confirming it now works.
    let fresh = ok(&get(&t.access, &id));
    assert_eq!(fresh["status"], "needs_information");
    let done = ok(&post(
        &t.access,
        &id,
        "confirm",
        json!({"domain": name, "amount": 1200}),
    ));
    assert_eq!(done["status"], "complete", "{done}");
}

fn upstream_registrar() {
    let t = account_with_free_plan();
    let label = unique("up");
    let r = quote(&t, "domain_upstream", &label);
    let id = r["id"].as_str().unwrap().to_string();
    let candidates = r["needs_information"]["quote"]["candidates"]
        .as_array()
        .unwrap()
        .clone();
    let dev = candidates
        .iter()
        .find(|c| c["domain"] == format!("{label}.dev"))
        .expect("the registrar's .dev candidate");
    let amount = dev["amount"].as_u64().unwrap();
    let done = ok(&post(
        &t.access,
        &id,
        "confirm",
        json!({"domain": format!("{label}.dev"), "amount": amount}),
    ));
    assert_eq!(done["status"], "complete", "{done}");
    let regs: Vec<Value> = with_worker(|w| w.stand_in.registrations())
        .into_iter()
        .filter(|r| r["domain"] == format!("{label}.dev"))
        .collect();
    assert_eq!(regs.len(), 1, "{regs:?}");
    assert_eq!(payment_intents_for(&id)[0]["amount"], amount);
}

fn spending_cap_with_concurrent_purchases() {
    let t = account_with_free_plan();
    // The owner lowers the cap to $30 on the dashboard.
    set_cap_via_dashboard(&t, 30);
    let quotes: Vec<(String, String)> = (0..3)
        .map(|_| {
            let r = quote(&t, "domain", &unique("cap"));
            (
                r["id"].as_str().unwrap().to_string(),
                r["needs_information"]["schema"]["properties"]["domain"]["enum"][0]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    let handles: Vec<_> = quotes
        .iter()
        .cloned()
        .map(|(id, name)| {
            let token = t.access.clone();
            std::thread::spawn(move || {
                post(
                    &token,
                    &id,
                    "confirm",
                    json!({"domain": name, "amount": 1200}),
                )
            })
        })
        .collect();
    let replies: Vec<Reply> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let completed = replies
        .iter()
        .filter(|r| r.status == 200 && r.json()["status"] == "complete")
        .count();
    let refused: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.error_code().as_deref() == Some("spending_cap_exceeded"))
        .collect();
    assert_eq!(
        (completed, refused.len()),
        (2, 1),
        "{:?}",
        replies.iter().map(Reply::text).collect::<Vec<_>>()
    );
    assert_eq!(refused[0].status, 402);
    let charged: usize = quotes
        .iter()
        .map(|(id, _)| payment_intents_for(id).len())
        .sum();
    assert_eq!(
        charged, 2,
        "exactly the purchases within the cap were charged"
    );
    let rows = audit_rows(&t.account, 10);
    let alerts: Vec<&Value> = rows
        .iter()
        .filter(|r| r["action"] == "spend.alert")
        .collect();
    assert!(alerts.len() >= 2, "50 % and 80 % alerts: {alerts:?}");
    assert!(rows
        .iter()
        .any(|r| r["action"] == "spend.cap_changed" && r["actor"] == "owner"));
}

/// Opens a dashboard link and submits the cap form over plain HTTP.
pub fn set_cap_via_dashboard(t: &Tokens, dollars: u64) {
    let link = ok(&call(
        &t.access,
        Call::post_json("/provisioning/deep_links", &json!({"purpose": "dashboard"})),
    ));
    let url = link["url"].as_str().unwrap();
    let path = url.strip_prefix(provider().base()).unwrap().to_string();
    let page = provider()
        .send(
            Call::get(&path)
                .signing(Signing::Unsigned)
                .api_version(None),
        )
        .unwrap();
    assert_eq!(page.status, 200, "{}", page.text());
    let session = input_value(&page.text(), "session").expect("session");
    let reply = provider()
        .send(
            Call::new("POST", "/dashboard")
                .raw_body(
                    app_client::form_encode(&[
                        ("session", &session),
                        ("action", "set_cap"),
                        ("cap_dollars", &dollars.to_string()),
                    ])
                    .into_bytes(),
                    "application/x-www-form-urlencoded",
                )
                .signing(Signing::Unsigned)
                .api_version(None),
        )
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        reply.text().contains(&format!("${dollars}.00")),
        "{}",
        reply.text()
    );
}

fn stripe_failing_then_recovering_charges_once() {
    let t = new_account(&email());
    let token_of = |spt: &str| {
        Some((
            "/payment_method_data/shared_payment_granted_token".to_string(),
            spt.to_string(),
        ))
    };
    // Stripe is down twice for this token: the resource stays pending and the alarm retries.
    let token = spt(5000);
    with_worker(|w| {
        w.stand_in
            .fail_next(Fault::new("/v1/payment_intents", 2, 503).param(token_of(&token)))
    });
    let r = ok(&create(
        &t.access,
        json!({"service_id": "paid", "project_id": "p", "payment_credentials": pay(&token)}),
    ));
    let id = r["id"].as_str().unwrap().to_string();
    assert_eq!(r["status"], "pending", "{r}");
    assert!(
        r["pending"]["message"]
            .as_str()
            .unwrap()
            .contains("retrying"),
        "{r}"
    );
    let done = settle(&t.access, &id);
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(payment_intents_for(&id).len(), 1, "one charge");
    let attempts: Vec<Value> = with_worker(|w| w.stand_in.requests())
        .into_iter()
        .filter(|r| {
            r["path"] == "/v1/payment_intents"
                && r["params"]["metadata"]["resource_id"] == id.as_str()
        })
        .collect();
    assert_eq!(
        attempts.len(),
        3,
        "two failures, then success: {attempts:?}"
    );
    let keys: std::collections::HashSet<String> = attempts
        .iter()
        .map(|r| r["idempotency_key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        keys.len(),
        1,
        "every retry carried the same idempotency key"
    );
    let rows = audit_rows(&t.account, 10);
    assert!(rows.iter().any(|r| r["action"] == "job.retry_scheduled"));

    // Stripe charges but the answer is lost: the retry (same key) or Stripe's webhook settles
    // it; either way there is exactly one charge.
    let t = new_account(&email());
    let token = spt(5000);
    with_worker(|w| {
        w.stand_in.fail_next(
            Fault::new("/v1/payment_intents", 1, 500)
                .after()
                .param(token_of(&token)),
        )
    });
    let r = ok(&create(
        &t.access,
        json!({"service_id": "paid", "project_id": "p", "payment_credentials": pay(&token)}),
    ));
    let id = r["id"].as_str().unwrap().to_string();
    let done = settle(&t.access, &id);
    assert_eq!(done["status"], "complete", "{done}");
    let charges: Vec<Value> = payment_intents_for(&id)
        .into_iter()
        .filter(|pi| pi["status"] == "succeeded")
        .collect();
    assert_eq!(charges.len(), 1, "{charges:?}");
}

fn operator_backend_pending_then_complete() {
    let t = account_with_free_plan();
    with_worker(|w| w.stand_in.set_operator_pending_calls(2));
    let r = ok(&create(
        &t.access,
        json!({"service_id": "database", "project_id": "p"}),
    ));
    assert_eq!(r["status"], "pending", "{r}");
    assert!(r["pending"]["message"].is_string());
    let id = r["id"].as_str().unwrap().to_string();
    let done = settle(&t.access, &id);
    assert_eq!(done["status"], "complete", "{done}");
    let url = done["complete"]["access_configuration"]["DATABASE_URL"]
        .as_str()
        .unwrap();
    assert!(url.starts_with("postgres://") && url.contains(&id), "{url}");
    let calls: Vec<Value> = with_worker(|w| w.stand_in.operator_calls())
        .into_iter()
        .filter(|c| c["body"]["resource_id"] == id.as_str() || c["resource_id"] == id.as_str())
        .collect();
    assert!(calls.len() >= 3, "pending, pending, complete: {calls:?}");
    // An error from the backend leaves the resource errored with the reason.
    let failing = ok(&create(
        &t.access,
        json!({"service_id": "database", "project_id": "q", "configuration": {"fail": "quota_exceeded"}}),
    ));
    let failing = settle(&t.access, failing["id"].as_str().unwrap());
    assert_eq!(failing["status"], "errored", "{failing}");
    assert!(failing["error"]["message"]
        .as_str()
        .unwrap()
        .contains("quota_exceeded"));
}

fn another_accounts_bearer_sees_nothing() {
    let a = account_with_free_plan();
    let b = account_with_free_plan();
    let r = ok(&create(
        &a.access,
        json!({"service_id": "api_token", "project_id": "p"}),
    ));
    let id = r["id"].as_str().unwrap();
    for reply in [
        get(&b.access, id),
        post(&b.access, id, "remove", json!({})),
        post(&b.access, id, "rotate_credentials", json!({})),
    ] {
        assert_error(&reply, 404, "resource_not_found");
        assert!(!reply.text().contains("pvak_"), "nothing leaked");
        assert_eq!(reply.json()["status"], "error");
        assert_eq!(reply.json()["id"], id);
    }
    assert_eq!(ok(&get(&a.access, id))["status"], "complete");
}

fn bad_requests_change_nothing() {
    let t = account_with_free_plan();
    let p = provider();
    // Authentication: signature AND bearer, each required.
    assert_error(
        &p.send(Call::post_json("/provisioning/resources", &json!({})))
            .unwrap(),
        401,
        "invalid_token",
    );
    assert_error(
        &p.send(Call::post_json("/provisioning/resources", &json!({})).bearer("garbage"))
            .unwrap(),
        401,
        "invalid_token",
    );
    assert_error(
        &p.send(Call::post_json("/provisioning/resources", &json!({})).bearer(&t.refresh))
            .unwrap(),
        401,
        "invalid_token",
    );
    assert_error(
        &p.send(
            Call::post_json(
                "/provisioning/resources",
                &json!({"service_id": "free", "project_id": "p"}),
            )
            .bearer(&t.access)
            .signing(Signing::Unsigned),
        )
        .unwrap(),
        401,
        "invalid_signature",
    );
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"project_id": "p"}), 400, "invalid_request"),
        (
            json!({"service_id": "gold", "project_id": "p"}),
            400,
            "unknown_service",
        ),
        (json!({"service_id": "api_token"}), 400, "invalid_request"),
        (
            json!({"service_id": "api_token", "project_id": "has space"}),
            400,
            "invalid_request",
        ),
        (
            json!({"service_id": "api_token", "project_id": "p", "configuration": {"scopes": ["root"]}}),
            400,
            "invalid_configuration",
        ),
        (
            json!({"service_id": "api_token", "project_id": "p", "configuration": {"bogus": 1}}),
            400,
            "invalid_configuration",
        ),
        (
            json!({"service_id": "domain", "project_id": "p", "configuration": {}}),
            400,
            "invalid_configuration",
        ),
        (
            json!({"service_id": "domain", "project_id": "p", "configuration": {"domain_query": "bad!name"}}),
            400,
            "invalid_configuration",
        ),
        (
            json!({"service_id": "api_token", "project_id": "p", "configuration": "x"}),
            400,
            "invalid_request",
        ),
        (
            json!({"service_id": "paid", "project_id": "p", "payment_credentials": {"type": "stripe_payment_token", "stripe_payment_token": 5}}),
            400,
            "invalid_request",
        ),
        (json!([1]), 400, "invalid_request"),
        // An integer no double keeps exactly: refused, not stored rounded (RFC 7493).
        (
            json!({"service_id": "api_token", "project_id": "p", "configuration": {"label": 9_007_199_254_740_993_u64}}),
            400,
            "invalid_request",
        ),
    ];
    for (body, status, code) in cases {
        let reply = create(&t.access, body.clone());
        assert_error(&reply, status, code);
        assert_eq!(reply.json()["status"], "error", "{body}");
    }
    let reply = create(
        &t.access,
        json!({"service_id": "api_token", "project_id": "p", "configuration": {"scopes": ["root"]}}),
    );
    assert!(
        reply.text().contains("configuration/scopes/0"),
        "names the field: {}",
        reply.text()
    );
    let reply = call(
        &t.access,
        Call::new("POST", "/provisioning/resources")
            .raw_body(b"{nope".to_vec(), "application/json"),
    );
    assert_error(&reply, 400, "invalid_request");
    let reply = call(
        &t.access,
        Call::new("POST", "/provisioning/resources").raw_body(
            b"service_id=free".to_vec(),
            "application/x-www-form-urlencoded",
        ),
    );
    assert_error(&reply, 415, "unsupported_media_type");
    assert_error(
        &get(&t.access, "res_doesnotexist"),
        404,
        "resource_not_found",
    );
    assert_error(
        &call(
            &t.access,
            Call::post_json("/provisioning/deep_links", &json!({"purpose": "support"})),
        ),
        400,
        "unsupported_purpose",
    );
    for path in ["//evil.example", "/../billing", "/settings"] {
        assert_error(
            &call(
                &t.access,
                Call::post_json("/provisioning/deep_links", &json!({"path": path})),
            ),
            400,
            "invalid_request",
        );
    }
    // Only the free plan exists: nothing else was created by any of the refused calls.
    let rows = audit_rows(&t.account, 5);
    let created = rows
        .iter()
        .filter(|r| r["action"] == "resource.created")
        .count();
    assert_eq!(created, 1, "{rows:?}");
}

fn read_only_tokens() {
    let p = provider();
    let mut body = account_request(&unique("acctreq_"), &email());
    body["scopes"] = json!(["resources:read"]);
    let code = p.account_request(&body).unwrap().json()["oauth"]["code"]
        .as_str()
        .unwrap()
        .to_string();
    let t = tokens_of(&p.exchange_code(&code, None, true).unwrap());
    assert_error(
        &create(&t.access, json!({"service_id": "free", "project_id": "p"})),
        403,
        "insufficient_scope",
    );
    assert_error(&get(&t.access, "res_unknown"), 404, "resource_not_found");
}

/// Once removal is complete a GET answers `404 resource_not_found` in the resource error
/// envelope (as other providers do); removing again still answers `removed`.
fn a_removed_resource_is_not_found() {
    let t = account_with_free_plan();
    let r = ok(&create(
        &t.access,
        json!({"service_id": "api_token", "project_id": "p"}),
    ));
    let id = r["id"].as_str().unwrap();
    let removed = json!({"status": "removed", "id": id});
    assert_eq!(ok(&post(&t.access, id, "remove", json!({}))), removed);
    let reply = get(&t.access, id);
    assert_error(&reply, 404, "resource_not_found");
    assert_eq!(reply.json()["status"], "error");
    assert_eq!(reply.json()["id"], id);
    assert_eq!(ok(&post(&t.access, id, "remove", json!({}))), removed);
    assert_error(&get(&t.access, id), 404, "resource_not_found");
}
