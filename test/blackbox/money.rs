//! Money over the wire (issue 18): every purchase ends with what was paid for in place or
//! with its charge refunded at Stripe, a retried create never charges twice, and a paid ->
//! paid plan change leaves exactly one subscription billing.

use app_tests::stand_in::Fault;
use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::common::*;
use crate::operator::{op, wait_for};
use crate::resources::{account_with_free_plan, create, get, ok, pay, post, settle, spt};

pub fn trials() -> Vec<Trial> {
    vec![
        case(
            "money::a_paid_operator_service_is_charged_once_and_cancelled_on_remove",
            a_paid_operator_service_is_charged_once_and_cancelled_on_remove,
        ),
        case(
            "money::a_one_time_price_is_charged_once_after_it_is_acknowledged",
            a_one_time_price_is_charged_once_after_it_is_acknowledged,
        ),
        case(
            "money::closing_cancels_a_paid_operator_service",
            closing_cancels_a_paid_operator_service,
        ),
        case(
            "money::a_paid_operator_service_the_backend_refuses_is_cancelled_and_refunded",
            a_paid_operator_service_the_backend_refuses_is_cancelled_and_refunded,
        ),
        case(
            "money::a_refused_subscription_is_refunded_and_a_retry_charges_nothing",
            a_refused_subscription_is_refunded_and_a_retry_charges_nothing,
        ),
        case(
            "money::a_refused_free_to_paid_change_is_refunded_and_stays_free",
            a_refused_free_to_paid_change_is_refunded_and_stays_free,
        ),
        case(
            "money::paid_to_paid_leaves_one_subscription_at_the_new_price",
            paid_to_paid_leaves_one_subscription_at_the_new_price,
        ),
        case(
            "money::an_old_subscription_stripe_will_not_cancel_is_retried_by_the_alarm",
            an_old_subscription_stripe_will_not_cancel_is_retried_by_the_alarm,
        ),
        case(
            "money::closing_is_not_closed_while_an_old_subscription_still_bills",
            closing_is_not_closed_while_an_old_subscription_still_bills,
        ),
    ]
}

/// Stripe objects of `account` (by their `metadata[account_id]`).
fn of_account(objects: Vec<Value>, account: &str) -> Vec<Value> {
    objects
        .into_iter()
        .filter(|o| o["metadata"]["account_id"] == account)
        .collect()
}

fn payment_intents(account: &str) -> Vec<Value> {
    of_account(with_worker(|w| w.stand_in.payment_intents()), account)
}

fn subscriptions(account: &str) -> Vec<Value> {
    of_account(with_worker(|w| w.stand_in.subscriptions()), account)
}

fn refunds_of(pi: &Value) -> Vec<Value> {
    with_worker(|w| w.stand_in.refunds())
        .into_iter()
        .filter(|r| r["payment_intent"] == pi["id"])
        .collect()
}

/// The month's spend of the account's ledger, as the operator API shows it.
fn spent(account: &str) -> Value {
    ok(&op("GET", &format!("/v1/accounts/{account}"), None))["spend"]["spent"].clone()
}

/// The worker's idempotency keys start with the account id: faults for this account only.
fn this_account(account: &str) -> String {
    format!("{account}:")
}

fn a_refused_subscription_is_refunded_and_a_retry_charges_nothing() {
    let t = new_account(&email());
    let mine = this_account(&t.account);
    // Stripe refuses the subscription for good (a 4xx) after the first period was charged,
    // and the refund is slow to go through (two 503s): the retry comes while the charge is
    // live.
    with_worker(|w| {
        w.stand_in
            .fail_next(Fault::new("/v1/subscriptions", 1, 400).key_prefix(&mine));
        w.stand_in
            .fail_next(Fault::new("/v1/refunds", 2, 503).key_prefix(&mine));
    });
    let token = spt(5000);
    let body = json!({"service_id": "paid", "project_id": "p", "payment_credentials": pay(&token)});
    let first = create(&t.access, body.clone());
    assert_error(&first, 402, "payment_failed");
    let pis = payment_intents(&t.account);
    assert_eq!(pis.len(), 1, "{pis:?}");
    assert_eq!(
        (pis[0]["amount"].as_u64(), pis[0]["status"].as_str()),
        (Some(2000), Some("succeeded"))
    );
    let id = pis[0]["metadata"]["resource_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(subscriptions(&t.account).is_empty());
    // The same create again: the same resource (refunding), no second charge.
    let again = ok(&create(&t.access, body));
    assert_eq!(again["id"], id.as_str(), "{again}");
    assert_eq!(again["status"], "pending", "{again}");
    assert_eq!(payment_intents(&t.account).len(), 1, "charged once");
    // The alarm retries the refund; the resource ends errored and says the money went back.
    let done = settle(&t.access, &id);
    assert_eq!(done["status"], "errored", "{done}");
    assert_eq!(done["error"]["code"], "payment_failed", "{done}");
    assert!(
        done["error"]["message"]
            .as_str()
            .unwrap()
            .contains("refunded"),
        "{done}"
    );
    let refunds = refunds_of(&pis[0]);
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(
        (refunds[0]["amount"].as_u64(), refunds[0]["status"].as_str()),
        (Some(2000), Some("succeeded"))
    );
    // The ledger counts nothing; the audit trail has the compensation.
    assert_eq!(spent(&t.account), 0);
    let rows = audit_rows(&t.account, 12);
    let actions: Vec<&str> = rows.iter().map(|r| r["action"].as_str().unwrap()).collect();
    for a in [
        "spend.reserved",
        "charge.succeeded",
        "job.failed",
        "job.retry_scheduled",
        "charge.refunded",
        "resource.failed",
    ] {
        assert!(actions.contains(&a), "{a} missing in {actions:?}");
    }
    let refunded = rows
        .iter()
        .find(|r| r["action"] == "charge.refunded")
        .unwrap();
    assert!(
        refunded["after"].as_str().unwrap().contains("2000"),
        "{refunded}"
    );
    // After the refund, creating it again is a new purchase (README: a create after a
    // completed refund is charged anew, under new idempotency keys).
    let r = ok(&create(
        &t.access,
        json!({"service_id": "paid", "project_id": "p", "payment_credentials": pay(&spt(5000))}),
    ));
    assert_eq!(r["status"], "complete", "{r}");
    assert_ne!(r["id"], id.as_str());
    assert_eq!(payment_intents(&t.account).len(), 2);
    assert_eq!(spent(&t.account), 2000);
}

fn a_refused_free_to_paid_change_is_refunded_and_stays_free() {
    let t = new_account(&email());
    let plan = ok(&create(
        &t.access,
        json!({"service_id": "free", "project_id": "p"}),
    ));
    let id = plan["id"].as_str().unwrap().to_string();
    with_worker(|w| {
        w.stand_in.fail_next(
            Fault::new("/v1/subscriptions", 1, 400).key_prefix(&this_account(&t.account)),
        )
    });
    let reply = post(
        &t.access,
        &id,
        "update_service",
        json!({"service_id": "paid", "payment_credentials": pay(&spt(5000))}),
    );
    assert_error(&reply, 402, "payment_failed");
    let r = ok(&get(&t.access, &id));
    assert_eq!(
        (r["status"].as_str(), r["service_id"].as_str()),
        (Some("complete"), Some("free")),
        "{r}"
    );
    assert!(
        r["complete"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("refunded"),
        "{r}"
    );
    let pis = payment_intents(&t.account);
    assert_eq!(pis.len(), 1);
    assert_eq!(refunds_of(&pis[0]).len(), 1, "refunded at Stripe");
    assert_eq!(spent(&t.account), 0);
}

fn paid_to_paid_leaves_one_subscription_at_the_new_price() {
    let t = new_account(&email());
    let r = ok(&create(
        &t.access,
        json!({"service_id": "paid", "project_id": "p", "payment_credentials": pay(&spt(5000))}),
    ));
    assert_eq!(r["status"], "complete", "{r}");
    let id = r["id"].as_str().unwrap().to_string();
    let r = ok(&post(
        &t.access,
        &id,
        "update_service",
        json!({"service_id": "team", "payment_credentials": pay(&spt(5000))}),
    ));
    assert_eq!(
        (r["status"].as_str(), r["service_id"].as_str()),
        (Some("complete"), Some("team")),
        "{r}"
    );
    let subs = subscriptions(&t.account);
    let live: Vec<&Value> = subs.iter().filter(|s| s["status"] != "canceled").collect();
    assert_eq!(subs.len(), 2, "{subs:?}");
    assert_eq!(live.len(), 1, "exactly one bills: {subs:?}");
    assert_eq!(
        live[0]["items"]["data"][0]["price"]["id"],
        "price_team_monthly"
    );
    let amounts: Vec<u64> = payment_intents(&t.account)
        .iter()
        .filter_map(|p| p["amount"].as_u64())
        .collect();
    assert_eq!(amounts, [2000, 5000], "the new plan's whole first period");
    assert_eq!(spent(&t.account), 7000);
    // Removing the plan ends the live subscription.
    assert_eq!(
        ok(&post(&t.access, &id, "remove", json!({}))),
        json!({"status": "removed", "id": id})
    );
    assert!(subscriptions(&t.account)
        .iter()
        .all(|s| s["status"] == "canceled"));

    // Closing the account ends it too.
    let t = new_account(&email());
    let r = ok(&create(
        &t.access,
        json!({"service_id": "paid", "project_id": "p", "payment_credentials": pay(&spt(5000))}),
    ));
    let id = r["id"].as_str().unwrap().to_string();
    ok(&post(
        &t.access,
        &id,
        "update_service",
        json!({"service_id": "team", "payment_credentials": pay(&spt(5000))}),
    ));
    ok(&op(
        "POST",
        &format!("/v1/accounts/{}/close", t.account),
        Some(json!({"reason": "test"})),
    ));
    wait_for("the account to close", || {
        subscriptions(&t.account)
            .iter()
            .all(|s| s["status"] == "canceled")
    });
    assert_eq!(subscriptions(&t.account).len(), 2);
}

/// Stripe refuses to cancel the replaced subscription (a 400, three times): the change still
/// happens, the old subscription is kept on record and said so, and the account's alarm
/// retries until Stripe has cancelled it; nothing but the new plan bills in the end.
fn an_old_subscription_stripe_will_not_cancel_is_retried_by_the_alarm() {
    let t = new_account(&email());
    let r = ok(&create(
        &t.access,
        json!({"service_id": "paid", "project_id": "p", "payment_credentials": pay(&spt(5000))}),
    ));
    assert_eq!(r["status"], "complete", "{r}");
    let id = r["id"].as_str().unwrap().to_string();
    let subs = subscriptions(&t.account);
    assert_eq!(subs.len(), 1, "{subs:?}");
    let old = subs[0]["id"].as_str().unwrap().to_string();
    // The saga's cancel and the first two retries of this subscription are refused.
    let cancel_key = format!("{}:{id}:{old}:cancel", t.account);
    with_worker(|w| {
        w.stand_in
            .fail_next(Fault::new("/v1/subscriptions/", 3, 400).key_prefix(&cancel_key))
    });
    let r = ok(&post(
        &t.access,
        &id,
        "update_service",
        json!({"service_id": "team", "payment_credentials": pay(&spt(5000))}),
    ));
    assert_eq!(
        (r["status"].as_str(), r["service_id"].as_str()),
        (Some("complete"), Some("team")),
        "the change happened: {r}"
    );
    let message = r["complete"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&old) && message.contains("still being cancelled"),
        "{r}"
    );
    let account = ok(&op("GET", &format!("/v1/accounts/{}", t.account), None));
    assert_eq!(
        account["subscriptions_cancelling"][0]["subscription_id"],
        old.as_str(),
        "{account}"
    );
    let live = |t: &str| -> usize {
        subscriptions(t)
            .iter()
            .filter(|s| s["status"] != "canceled")
            .count()
    };
    assert_eq!(live(&t.account), 2, "the old one still bills for now");
    // No request: the alarm retries (after 2 s, then 4 s) and the third retry goes through.
    wait_for("the alarm to cancel the old subscription", || {
        live(&t.account) == 1
    });
    let subs = subscriptions(&t.account);
    let old_now = subs.iter().find(|s| s["id"] == old.as_str()).unwrap();
    assert_eq!(old_now["status"], "canceled", "{subs:?}");
    let account = ok(&op("GET", &format!("/v1/accounts/{}", t.account), None));
    assert_eq!(account["subscriptions_cancelling"], json!([]), "{account}");
    let r = ok(&get(&t.access, &id));
    assert_eq!(r["complete"].get("message"), None, "{r}");
    // The audit trail: the failure, each retry, then the cancellation.
    let mut actions: Vec<String> = Vec::new();
    wait_for("the audit trail to show the cancellation", || {
        actions = audit_rows(&t.account, 1)
            .iter()
            .filter_map(|r| r["action"].as_str().map(str::to_string))
            .collect();
        actions.iter().any(|a| a == "subscription.canceled")
    });
    let at = |a: &str| actions.iter().position(|x| x == a);
    let retries = actions
        .iter()
        .filter(|a| a.as_str() == "subscription.cancel_retry_scheduled")
        .count();
    assert_eq!(retries, 2, "{actions:?}");
    assert!(at("subscription.cancel_failed").is_some(), "{actions:?}");
    assert!(
        at("subscription.cancel_failed") < at("subscription.cancel_retry_scheduled")
            && at("subscription.cancel_retry_scheduled") < at("subscription.canceled"),
        "{actions:?}"
    );
}

/// The same refusal, then the account is closed at once: closing cancels the new plan's
/// subscription and keeps trying the old one; the account is never `closed` while a
/// subscription still bills, and ends `closed` with both canceled.
fn closing_is_not_closed_while_an_old_subscription_still_bills() {
    let t = new_account(&email());
    let r = ok(&create(
        &t.access,
        json!({"service_id": "paid", "project_id": "p", "payment_credentials": pay(&spt(5000))}),
    ));
    let id = r["id"].as_str().unwrap().to_string();
    let old = subscriptions(&t.account)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let cancel_key = format!("{}:{id}:{old}:cancel", t.account);
    // The saga's cancel, the close's immediate try and the next retry are refused.
    with_worker(|w| {
        w.stand_in
            .fail_next(Fault::new("/v1/subscriptions/", 3, 400).key_prefix(&cancel_key))
    });
    let r = ok(&post(
        &t.access,
        &id,
        "update_service",
        json!({"service_id": "team", "payment_credentials": pay(&spt(5000))}),
    ));
    assert_eq!(r["service_id"], "team", "{r}");
    ok(&op(
        "POST",
        &format!("/v1/accounts/{}/close", t.account),
        Some(json!({"reason": "test"})),
    ));
    let live = |a: &str| {
        subscriptions(a)
            .iter()
            .filter(|s| s["status"] != "canceled")
            .count()
    };
    let mut seen_closing_with_live = false;
    wait_for("the account to close", || {
        let status = ok(&op("GET", &format!("/v1/accounts/{}", t.account), None))["status"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let live = live(&t.account);
        if status == "closed" {
            assert_eq!(live, 0, "closed while a subscription still bills");
            return true;
        }
        seen_closing_with_live |= status == "closing" && live > 0;
        false
    });
    assert!(
        seen_closing_with_live,
        "the refused cancel kept the account closing for a while"
    );
    let subs = subscriptions(&t.account);
    assert_eq!(subs.len(), 2, "{subs:?}");
    assert!(subs.iter().all(|s| s["status"] == "canceled"), "{subs:?}");
}

/// A paid operator service (`paid_database`, $15 a month): the first period is charged with the
/// payment token, a subscription bills it after, and then the platform's backend creates it.
/// Retried creates charge nothing more; remove asks the backend, then cancels the subscription.
fn a_paid_operator_service_is_charged_once_and_cancelled_on_remove() {
    let t = account_with_free_plan();
    let body = json!({"service_id": "paid_database", "project_id": "p",
                      "payment_credentials": pay(&spt(5000))});
    // Without payment credentials nothing happens.
    assert_error(
        &create(
            &t.access,
            json!({"service_id": "paid_database", "project_id": "p"}),
        ),
        400,
        "requires_payment_credentials",
    );
    let r = ok(&create(&t.access, body.clone()));
    let id = r["id"].as_str().unwrap().to_string();
    let done = settle(&t.access, &id);
    assert_eq!(done["status"], "complete", "{done}");
    assert!(done["complete"]["access_configuration"]["DATABASE_URL"]
        .as_str()
        .unwrap()
        .starts_with("postgres://"));
    // Retries: the same resource, one charge, one subscription.
    for _ in 0..2 {
        assert_eq!(ok(&create(&t.access, body.clone()))["id"], id.as_str());
    }
    let charges: Vec<u64> = payment_intents(&t.account)
        .iter()
        .filter_map(|p| p["amount"].as_u64())
        .collect();
    assert_eq!(charges, [1500], "one first period");
    let subs = subscriptions(&t.account);
    assert_eq!(subs.len(), 1, "{subs:?}");
    assert_eq!(
        subs[0]["items"]["data"][0]["price"]["id"],
        "price_db_monthly"
    );
    assert_eq!(spent(&t.account), 1500);
    // Remove: the backend removes it, then the subscription is cancelled.
    let removed = post(&t.access, &id, "remove", json!({}));
    assert_eq!(removed.status, 200, "{}", removed.text());
    // Removed once its subscription is cancelled: then GET answers 404.
    wait_for("the removal", || get(&t.access, &id).status == 404);
    assert!(
        subscriptions(&t.account)
            .iter()
            .all(|s| s["status"] == "canceled"),
        "{:?}",
        subscriptions(&t.account)
    );
    let calls: Vec<Value> = with_worker(|w| w.stand_in.operator_calls())
        .into_iter()
        .filter(|c| c["resource_id"] == id.as_str() && c["action"] == "remove")
        .collect();
    assert!(!calls.is_empty(), "the backend was asked to remove it");
}

/// The backend refuses to create a paid service after its first period was charged and its
/// subscription started: the subscription is cancelled and the charge refunded, and the
/// resource ends errored saying so.
fn a_paid_operator_service_the_backend_refuses_is_cancelled_and_refunded() {
    let t = account_with_free_plan();
    let r = ok(&create(
        &t.access,
        json!({"service_id": "paid_database", "project_id": "p", "configuration": {"fail": "no_capacity"},
               "payment_credentials": pay(&spt(5000))}),
    ));
    let id = r["id"].as_str().unwrap().to_string();
    let done = settle(&t.access, &id);
    assert_eq!(done["status"], "errored", "{done}");
    let message = done["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("no_capacity") && message.contains("refunded"),
        "{done}"
    );
    let pis = payment_intents(&t.account);
    assert_eq!(pis.len(), 1, "{pis:?}");
    assert_eq!(refunds_of(&pis[0]).len(), 1, "refunded once");
    assert!(subscriptions(&t.account)
        .iter()
        .all(|s| s["status"] == "canceled"));
    assert_eq!(spent(&t.account), 0, "nothing spent");
}

/// Closing the account removes a paid operator service at its backend and cancels its
/// subscription: closed means nothing bills.
fn closing_cancels_a_paid_operator_service() {
    let t = account_with_free_plan();
    let r = ok(&create(
        &t.access,
        json!({"service_id": "paid_database", "project_id": "p",
               "payment_credentials": pay(&spt(5000))}),
    ));
    let id = r["id"].as_str().unwrap().to_string();
    assert_eq!(settle(&t.access, &id)["status"], "complete");
    assert_eq!(subscriptions(&t.account).len(), 1);
    ok(&op(
        "POST",
        &format!("/v1/accounts/{}/close", t.account),
        Some(json!({"reason": "test"})),
    ));
    wait_for("the account to close", || {
        ok(&op("GET", &format!("/v1/accounts/{}", t.account), None))["status"] == "closed"
    });
    assert!(subscriptions(&t.account)
        .iter()
        .all(|s| s["status"] == "canceled"));
    assert!(with_worker(|w| w.stand_in.operator_calls())
        .iter()
        .any(|c| c["resource_id"] == id.as_str() && c["action"] == "remove"));
}

/// A paid operator service with a one-time price (`setup_database`, $49 once): the create is a
/// quote (`needs_information` asking to acknowledge the amount; nothing charged), the same
/// create again with `submitted_information` `{"amount"}` charges it once, then the backend
/// creates it. No subscription.
fn a_one_time_price_is_charged_once_after_it_is_acknowledged() {
    let t = account_with_free_plan();
    let key = unique("once");
    let body = |info: Value| {
        json!({"service_id": "setup_database", "project_id": "p",
               "payment_credentials": pay(&spt(10_000)), "submitted_information": info})
    };
    let keyed = |b: Value| {
        provider()
            .create_resource_keyed(&t.access, &key, &b)
            .unwrap()
    };
    let quoted = ok(&keyed(body(Value::Null)));
    assert_eq!(quoted["status"], "needs_information", "{quoted}");
    let id = quoted["id"].as_str().unwrap().to_string();
    assert_eq!(
        quoted["needs_information"]["schema"]["properties"]["amount"]["const"],
        4900
    );
    assert!(
        payment_intents(&t.account).is_empty(),
        "a quote charges nothing"
    );
    assert_error(
        &keyed(body(json!({"amount": 490}))),
        400,
        "invalid_information",
    );
    let bought = ok(&keyed(body(json!({"amount": 4900}))));
    assert_eq!(bought["id"], id.as_str());
    let done = settle(&t.access, &id);
    assert_eq!(done["status"], "complete", "{done}");
    // Sent again: the same resource, still one charge.
    ok(&keyed(body(json!({"amount": 4900}))));
    let charges: Vec<u64> = payment_intents(&t.account)
        .iter()
        .filter_map(|p| p["amount"].as_u64())
        .collect();
    assert_eq!(charges, [4900]);
    assert!(subscriptions(&t.account).is_empty());
    assert_eq!(spent(&t.account), 4900);
}
