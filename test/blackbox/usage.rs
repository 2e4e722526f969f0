//! Usage-based services over the wire (issue 16): a metered subscription with nothing charged;
//! usage reports counted once whatever the order, duplication or concurrency, billed as meter
//! events; the hard cap pausing the service exactly at the cap (the backend's `suspend`),
//! raising it in the dashboard (headless Chromium) resuming it; close releasing all of it.

use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::common::*;
use crate::operator::{op, wait_for};
use crate::resources::{account_with_free_plan, call, create, get, ok, pay, settle, spt};

pub fn trials() -> Vec<Trial> {
    vec![
        case(
            "usage::reports_are_counted_once_billed_and_pause_exactly_at_the_cap",
            reports_are_counted_once_billed_and_pause_exactly_at_the_cap,
        ),
        case(
            "usage::bad_reports_are_refused_and_change_nothing",
            bad_reports_are_refused_and_change_nothing,
        ),
        case(
            "usage::raising_the_cap_in_chromium_resumes",
            raising_the_cap_in_chromium_resumes,
        ),
        case(
            "usage::credits_pay_usage_before_the_card",
            credits_pay_usage_before_the_card,
        ),
        case(
            "usage::credits_pay_a_one_time_price_before_the_card",
            credits_pay_a_one_time_price_before_the_card,
        ),
        case(
            "usage::an_unpaid_operator_service_is_suspended_until_paid",
            an_unpaid_operator_service_is_suspended_until_paid,
        ),
    ]
}

/// A complete `metered_database` of the account; checks nothing was charged for it.
fn metered(t: &Tokens) -> String {
    let r = ok(&create(
        &t.access,
        json!({"service_id": "metered_database", "project_id": "p",
               "payment_credentials": pay(&spt(100))}),
    ));
    let id = r["id"].as_str().unwrap().to_string();
    let done = settle(&t.access, &id);
    assert_eq!(done["status"], "complete", "{done}");
    id
}

fn report_body(account: &str, id: &str, key: &str, amount: u64, ago: i64) -> Value {
    json!({"account_id": account, "resource_id": id, "quantity": amount * 3, "amount": amount,
           "currency": "usd", "idempotency_key": key,
           "occurred_at": domain::time::format_rfc3339(app_client::unix_now() - ago)})
}

fn report(body: Value) -> app_client::Reply {
    op("POST", "/v1/usage", Some(body))
}

/// The account's spend this month and its usage summary, as the operator API shows them.
fn spend(account: &str) -> Value {
    ok(&op("GET", &format!("/v1/accounts/{account}"), None))["spend"].clone()
}

fn customer_of(account: &str) -> String {
    with_worker(|w| w.stand_in.customers())
        .into_iter()
        .find(|c| c["metadata"]["account_id"] == account)
        .and_then(|c| c["id"].as_str().map(str::to_string))
        .expect("the account is a Stripe customer")
}

fn meter_events_of(customer: &str) -> Vec<Value> {
    with_worker(|w| w.stand_in.meter_events())
        .into_iter()
        .filter(|e| e["payload"]["stripe_customer_id"] == customer)
        .collect()
}

fn backend_calls(id: &str, action: &str) -> usize {
    with_worker(|w| w.stand_in.operator_calls())
        .iter()
        .filter(|c| c["resource_id"] == id && c["action"] == action && c["status"] == 200)
        .count()
}

fn reports_are_counted_once_billed_and_pause_exactly_at_the_cap() {
    let t = account_with_free_plan();
    let id = metered(&t);
    let customer = customer_of(&t.account);
    // Subscribed to the metered price with a saved payment method; nothing charged.
    let subs: Vec<Value> = with_worker(|w| w.stand_in.subscriptions())
        .into_iter()
        .filter(|s| s["metadata"]["account_id"] == t.account.as_str())
        .collect();
    assert_eq!(subs.len(), 1, "{subs:?}");
    assert_eq!(subs[0]["items"]["data"][0]["price"]["id"], "price_db_usage");
    assert_eq!(subs[0]["trial_end"], Value::Null);
    assert!(with_worker(|w| w.stand_in.setup_intents())
        .iter()
        .any(|s| s["customer"] == customer.as_str() && s["status"] == "succeeded"));
    assert!(with_worker(|w| w.stand_in.payment_intents())
        .iter()
        .all(|p| p["customer"] != customer.as_str()));
    assert_eq!(spend(&t.account)["spent"], 0);

    // 12 reports of $5: six in order, then six concurrently, each sent twice, dated out of
    // order. Each is counted once.
    for i in 0..6 {
        let r = report(report_body(
            &t.account,
            &id,
            &format!("k{i}"),
            500,
            600 - i * 10,
        ));
        assert_eq!(r.status, 201, "{}", r.text());
        assert_eq!(r.json()["replayed"], false);
    }
    let handles: Vec<_> = (6..12)
        .flat_map(|i| {
            let body = report_body(&t.account, &id, &format!("k{i}"), 500, 30 + (i % 3) * 200);
            [body.clone(), body]
        })
        .map(|body| std::thread::spawn(move || report(body)))
        .collect();
    let mut statuses: Vec<u16> = handles
        .into_iter()
        .map(|h| h.join().unwrap().status)
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [[200; 6], [201; 6]].concat(),
        "one record per key"
    );
    let s = spend(&t.account);
    assert_eq!(
        (s["spent"].as_u64(), s["usage"]["reported"].as_u64()),
        (Some(6000), Some(6000))
    );
    // The same key with another report: refused, nothing counted.
    let clash = report(report_body(&t.account, &id, "k3", 9999, 5));
    assert_plain_error(&clash, 409, "idempotency_conflict");
    assert_eq!(spend(&t.account)["spent"], 6000);
    assert!(get(&t.access, &id).json()["paused"].is_null());

    // $40 more reaches the $100 cap exactly: paused, and the backend is asked to suspend it.
    let edge = report(report_body(&t.account, &id, "edge", 4000, 1));
    assert_eq!(edge.status, 201, "{}", edge.text());
    assert_eq!(edge.json()["over_cap"], false);
    assert_eq!(edge.json()["paused"], true);
    wait_for("the suspend", || {
        with_worker(|w| w.stand_in.operator_suspended(&id))
    });
    let r = ok(&get(&t.access, &id));
    assert_eq!(r["status"], "complete", "{r}");
    assert_eq!(r["paused"]["reason"], "spending_cap_reached");
    assert_eq!(r["paused"]["raise_cap"]["purpose"], "billing");
    assert!(
        r["complete"]["message"]
            .as_str()
            .unwrap()
            .contains("$100.00"),
        "{r}"
    );
    // Usage while paused happened: recorded and billed, marked over the cap.
    let late = report(report_body(&t.account, &id, "late", 300, 1));
    assert_eq!(late.status, 201);
    assert_eq!(late.json()["over_cap"], true);
    let s = spend(&t.account);
    assert_eq!(
        (s["spent"].as_u64(), s["usage"]["over_cap"].as_u64()),
        (Some(10_300), Some(300))
    );

    // Billed: one meter event per record, for the whole amount, each identifier once.
    wait_for("the meter events", || {
        meter_events_of(&customer).len() >= 14
    });
    let events = meter_events_of(&customer);
    assert_eq!(events.len(), 14, "{events:?}");
    let total: u64 = events
        .iter()
        .map(|e| {
            e["payload"]["value"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(total, 10_300);
    assert!(events.iter().all(|e| e["event_name"] == "db_usage_cents"));
    let mut ids: Vec<&str> = events
        .iter()
        .map(|e| e["identifier"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 14);
    wait_for("every record billed", || {
        spend(&t.account)["usage"]["unbilled"] == 0
    });

    // Everything is in the audit chain.
    let rows = audit_rows(&t.account, 1);
    let count = |a: &str| rows.iter().filter(|r| r["action"] == a).count();
    assert_eq!(count("usage.recorded"), 14);
    assert_eq!(count("resource.paused"), 1);
    assert_eq!(count("resource.suspended"), 1);
    wait_for("usage.billed records", || {
        audit_rows(&t.account, 1)
            .iter()
            .filter(|r| r["action"] == "usage.billed")
            .count()
            == 14
    });
    let verified = ok(&op(
        "GET",
        &format!("/v1/accounts/{}/audit/verify", t.account),
        None,
    ));
    assert_eq!(verified["ok"], true, "{verified}");

    // Close releases it: the backend removes it, the metered subscription is cancelled.
    ok(&op(
        "POST",
        &format!("/v1/accounts/{}/close", t.account),
        Some(json!({"reason": "test"})),
    ));
    wait_for("the close", || {
        with_worker(|w| w.stand_in.subscriptions())
            .iter()
            .filter(|s| s["metadata"]["account_id"] == t.account.as_str())
            .all(|s| s["status"] == "canceled")
            && backend_calls(&id, "remove") >= 1
    });
    assert_plain_error(
        &report(report_body(&t.account, &id, "after-close", 10, 1)),
        409,
        "account_closed",
    );
}

fn bad_reports_are_refused_and_change_nothing() {
    let a = account_with_free_plan();
    let id = metered(&a);
    let b = account_with_free_plan();
    let plain = ok(&create(
        &b.access,
        json!({"service_id": "database", "project_id": "p"}),
    ));
    let free_id = plain["id"].as_str().unwrap().to_string();
    let good = report_body(&a.account, &id, "ok-1", 100, 5);
    assert_eq!(report(good.clone()).status, 201);
    // Its meter event is sent by the alarm: let it go before taking the picture.
    wait_for("the meter event", || {
        spend(&a.account)["usage"]["unbilled"] == 0
    });
    let before = spend(&a.account);
    let with = |field: &str, v: Value| {
        let mut body = good.clone();
        body[field] = v;
        body["idempotency_key"] = json!(unique("bad"));
        body
    };
    for (body, status, code) in [
        (with("quantity", json!(-5)), 400, "invalid_usage"),
        (with("quantity", json!(2.5)), 400, "invalid_usage"),
        (
            with("amount", json!(1_000_000_000u64)),
            400,
            "invalid_usage",
        ),
        (with("amount", json!("100")), 400, "invalid_usage"),
        (with("currency", json!("eur")), 400, "invalid_usage"),
        (
            with("occurred_at", json!("2020-01-01T00:00:00Z")),
            400,
            "invalid_usage",
        ),
        (with("occurred_at", json!("tomorrow")), 400, "invalid_usage"),
        (with("surprise", json!(true)), 400, "invalid_usage"),
        (
            with("resource_id", json!("res_doesnotexist")),
            404,
            "resource_not_found",
        ),
        (
            with("account_id", json!("acct_aaaaaaaaaaaaaaaa")),
            404,
            "account_not_found",
        ),
        // Another account's resource, reported under that other account.
        (
            with("account_id", json!(b.account)),
            404,
            "resource_not_found",
        ),
        // A resource that is not usage-based.
        (
            {
                let mut x = with("account_id", json!(b.account));
                x["resource_id"] = json!(free_id);
                x
            },
            400,
            "not_usage_based",
        ),
        // The key of a recorded report with another amount.
        (
            {
                let mut x = good.clone();
                x["amount"] = json!(101);
                x
            },
            409,
            "idempotency_conflict",
        ),
    ] {
        assert_plain_error(&report(body.clone()), status, code);
    }
    let not_json = provider()
        .send(
            app_client::Call::new("POST", "/v1/usage")
                .signing(app_client::Signing::Unsigned)
                .api_version(None)
                .bearer(app_tests::OPERATOR_SECRET)
                .raw_body(b"{nope".to_vec(), "application/json"),
        )
        .unwrap();
    assert_plain_error(&not_json, 400, "invalid_request");
    // Without the operator's secret: 401.
    let anonymous = call(
        "not-the-secret",
        app_client::Call::post_json("/v1/usage", &good)
            .signing(app_client::Signing::Unsigned)
            .api_version(None),
    );
    assert_plain_error(&anonymous, 401, "unauthorized");
    assert_eq!(spend(&a.account), before, "nothing changed");
    assert_eq!(spend(&b.account)["usage"]["reported"], 0);
}

fn raising_the_cap_in_chromium_resumes() {
    let owner = email();
    let t = new_account(&owner);
    ok(&create(
        &t.access,
        json!({"service_id": "free", "project_id": "p"}),
    ));
    let id = metered(&t);
    let r = report(report_body(&t.account, &id, "all", 10_000, 1));
    assert_eq!(r.status, 201, "{}", r.text());
    wait_for("the suspend", || {
        with_worker(|w| w.stand_in.operator_suspended(&id))
    });
    let link = ok(&call(
        &t.access,
        app_client::Call::post_json("/provisioning/deep_links", &json!({"purpose": "billing"})),
    ));
    let page = crate::browser::run_script(
        "raise_cap.mjs",
        &json!({"url": link["url"], "email": owner, "raise_dollars": 500}),
    );
    assert_eq!(page["status"], 200, "{page}");
    assert_eq!(page["landing"], "billing", "{page}");
    assert!(
        page["paused_before"]
            .as_str()
            .unwrap_or_default()
            .contains(&id),
        "{page}"
    );
    assert!(page["resources_before"]
        .as_str()
        .unwrap()
        .contains("paused by the spending cap"));
    assert_eq!(page["spend_before"], "$100.00 of $100.00 cap");
    assert_eq!(page["raise_status"], 200, "{page}");
    assert_eq!(page["raise_notice"], "The monthly cap is now $500.00.");
    assert_eq!(page["paused_after"], 0, "{page}");
    assert_eq!(page["spend_after"], "$100.00 of $500.00 cap");
    // Resumed at the backend; the resource no longer says paused.
    wait_for("the resume", || {
        !with_worker(|w| w.stand_in.operator_suspended(&id))
    });
    assert_eq!(backend_calls(&id, "resume"), 1);
    let r = ok(&get(&t.access, &id));
    assert!(r["paused"].is_null(), "{r}");
    let rows = audit_rows(&t.account, 1);
    for a in [
        "resource.paused",
        "resource.suspended",
        "spend.cap_changed",
        "resource.unpaused",
        "resource.resumed",
    ] {
        assert!(rows.iter().any(|r| r["action"] == a), "{a}");
    }
}

fn grant(account: &str, body: Value) -> app_client::Reply {
    op(
        "POST",
        &format!("/v1/accounts/{account}/credits"),
        Some(body),
    )
}

fn credits_pay_usage_before_the_card() {
    let owner = email();
    let t = new_account(&owner);
    ok(&create(
        &t.access,
        json!({"service_id": "free", "project_id": "p"}),
    ));
    // Granted before the account is a Stripe customer.
    let expires = domain::time::format_rfc3339(app_client::unix_now() + 90 * 86_400);
    let body = json!({"amount": 2000, "currency": "usd", "expires_at": expires,
                      "reason": "startup program", "idempotency_key": "startup-1"});
    let first = grant(&t.account, body.clone());
    assert_eq!(first.status, 201, "{}", first.text());
    let again = grant(&t.account, body.clone());
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["id"], first.json()["id"]);
    assert_eq!(again.json()["replayed"], true);
    let mut other = body.clone();
    other["amount"] = json!(5000);
    assert_plain_error(&grant(&t.account, other), 409, "idempotency_conflict");
    let mut bad = body.clone();
    bad["idempotency_key"] = json!("startup-2");
    bad["amount"] = json!(0);
    assert_plain_error(&grant(&t.account, bad.clone()), 400, "invalid_credit");
    bad["amount"] = json!(100);
    bad["expires_at"] = json!("2020-01-01T00:00:00Z");
    assert_plain_error(&grant(&t.account, bad), 400, "invalid_credit");
    assert_plain_error(
        &grant("acct_aaaaaaaaaaaaaaaa", body.clone()),
        404,
        "account_not_found",
    );

    // Once the account is a customer, Stripe gets the same credits for metered prices.
    let id = metered(&t);
    let customer = customer_of(&t.account);
    wait_for("the Stripe credit grant", || {
        with_worker(|w| w.stand_in.credit_grants())
            .iter()
            .any(|g| g["customer"] == customer.as_str())
    });
    let grants: Vec<Value> = with_worker(|w| w.stand_in.credit_grants())
        .into_iter()
        .filter(|g| g["customer"] == customer.as_str())
        .collect();
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(grants[0]["amount"]["monetary"]["value"], 2000);
    assert_eq!(
        grants[0]["applicability_config"]["scope"]["price_type"],
        "metered"
    );
    assert_eq!(grants[0]["category"], "promotional");

    // $15 of usage: all credits. $10 more: $5 credits, then $5 the card's.
    let a = report(report_body(&t.account, &id, "u1", 1500, 5));
    assert_eq!(a.status, 201, "{}", a.text());
    assert_eq!(a.json()["credited"], 1500);
    assert_eq!(
        spend(&t.account)["spent"],
        0,
        "credits are not the owner's money"
    );
    let b = report(report_body(&t.account, &id, "u2", 1000, 1));
    assert_eq!(b.json()["credited"], 500);
    let s = spend(&t.account);
    assert_eq!(s["spent"], 500);
    assert_eq!(s["credit_left"], 0);
    assert_eq!(s["usage"]["credited"], 2000);
    let view = ok(&op("GET", &format!("/v1/accounts/{}", t.account), None));
    assert_eq!(view["credits"][0]["used"], 2000);
    assert!(
        view["credits"][0]["stripe_credit_grant"].as_str().is_some(),
        "{view}"
    );
    // Meter events carry the whole usage: Stripe takes the grant off the invoice.
    wait_for("the meter events", || meter_events_of(&customer).len() == 2);
    let billed: u64 = meter_events_of(&customer)
        .iter()
        .map(|e| {
            e["payload"]["value"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(billed, 2500);

    // The owner sees the credits and their use on the dashboard.
    let link = ok(&call(
        &t.access,
        app_client::Call::post_json("/provisioning/deep_links", &json!({"purpose": "billing"})),
    ));
    let html = crate::dashboard::open_url(link["url"].as_str().unwrap()).text();
    assert!(
        html.contains("Credits: $0.00 left of $20.00 (startup program)"),
        "{html}"
    );
    assert!(html.contains("$5.00 of $100.00 cap"), "{html}");
    // And the audit trail has all of it.
    let rows = audit_rows(&t.account, 1);
    for a in ["credit.granted", "credit.synced"] {
        assert!(rows.iter().any(|r| r["action"] == a), "{a}");
    }
    let credited: Vec<i64> = rows
        .iter()
        .filter(|r| r["action"] == "usage.recorded")
        .filter_map(|r| {
            let after: Value = serde_json::from_str(r["after"].as_str()?).ok()?;
            after["credited"].as_i64()
        })
        .collect();
    assert_eq!(credited, [1500, 500]);
}

/// A paid operator service's renewal fails and stays unpaid past the grace period (2 s in the
/// test worker): its backend is asked to suspend it, and to resume it once the invoice is paid.
fn an_unpaid_operator_service_is_suspended_until_paid() {
    use crate::webhooks::{deliver, event};
    let t = account_with_free_plan();
    let r = ok(&create(
        &t.access,
        json!({"service_id": "paid_database", "project_id": "p",
               "payment_credentials": pay(&spt(5000))}),
    ));
    let id = r["id"].as_str().unwrap().to_string();
    assert_eq!(settle(&t.access, &id)["status"], "complete");
    let sub = with_worker(|w| w.stand_in.subscriptions())
        .into_iter()
        .find(|s| s["metadata"]["account_id"] == t.account.as_str())
        .and_then(|s| s["id"].as_str().map(str::to_string))
        .expect("its subscription");
    let failed = with_worker(|w| w.stand_in.invoice_object(&sub, false, 1500));
    let body = event("invoice.payment_failed", app_client::unix_now(), failed).to_string();
    assert_eq!(ok(&deliver(&body, None))["outcome"], "applied");
    wait_for("the suspend", || {
        with_worker(|w| w.stand_in.operator_suspended(&id))
    });
    let held = ok(&get(&t.access, &id));
    assert_eq!(held["status"], "complete", "{held}");
    assert_eq!(held["paused"]["reason"], "invoice_unpaid", "{held}");
    let paid = with_worker(|w| w.stand_in.invoice_object(&sub, true, 1500));
    let body = event("invoice.paid", app_client::unix_now() + 1, paid).to_string();
    assert_eq!(ok(&deliver(&body, None))["outcome"], "applied");
    wait_for("the resume", || {
        !with_worker(|w| w.stand_in.operator_suspended(&id))
    });
    assert!(ok(&get(&t.access, &id))["paused"].is_null());
    let rows = audit_rows(&t.account, 1);
    for a in [
        "resource.past_due",
        "resource.paused",
        "resource.suspended",
        "resource.paid",
        "resource.resumed",
    ] {
        assert!(rows.iter().any(|r| r["action"] == a), "{a}");
    }
}

/// Credits pay fixed prices too: a $49 one-time price with $60 of credits charges the card
/// nothing; the next one, with $11 left, charges the card $38.
fn credits_pay_a_one_time_price_before_the_card() {
    let t = account_with_free_plan();
    let expires = domain::time::format_rfc3339(app_client::unix_now() + 30 * 86_400);
    let granted = grant(
        &t.account,
        json!({"amount": 6000, "currency": "usd", "expires_at": expires,
               "reason": "startup program", "idempotency_key": "startup"}),
    );
    assert_eq!(granted.status, 201, "{}", granted.text());
    let buy = |key: &str| -> String {
        let body = |info: Value| {
            json!({"service_id": "setup_database", "project_id": "p",
                   "payment_credentials": pay(&spt(10_000)), "submitted_information": info})
        };
        let quoted = ok(&provider()
            .create_resource_keyed(&t.access, key, &body(Value::Null))
            .unwrap());
        let id = quoted["id"].as_str().unwrap().to_string();
        ok(&provider()
            .create_resource_keyed(&t.access, key, &body(json!({"amount": 4900})))
            .unwrap());
        let done = settle(&t.access, &id);
        assert_eq!(done["status"], "complete", "{done}");
        id
    };
    buy(&unique("once"));
    let card = |account: &str| -> Vec<u64> {
        with_worker(|w| w.stand_in.payment_intents())
            .iter()
            .filter(|p| p["metadata"]["account_id"] == account)
            .filter_map(|p| p["amount"].as_u64())
            .collect()
    };
    assert!(card(&t.account).is_empty(), "credits paid it all");
    let s = spend(&t.account);
    assert_eq!(
        (s["spent"].as_u64(), s["credit_left"].as_u64()),
        (Some(0), Some(1100))
    );
    buy(&unique("twice"));
    assert_eq!(
        card(&t.account),
        [3800],
        "the card pays what credits did not"
    );
    let s = spend(&t.account);
    assert_eq!(
        (s["spent"].as_u64(), s["credit_left"].as_u64()),
        (Some(3800), Some(0))
    );
}
