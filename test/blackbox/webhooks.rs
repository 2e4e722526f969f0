//! Stripe webhooks (docs/PROTOCOL.md §1.1, §6.3): verified before parsing, recorded once, applied
//! exactly once in any order, fast under a burst; and the stand-in delivering them like Stripe.

use std::time::Duration;

use app_client::{unix_now, Call, Reply, Signing};
use app_tests::{stripe_js, WEBHOOK_SECRET, WEBHOOK_SECRET_OLD};
use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::common::*;
use crate::resources::{create, get, ok, pay, spt};

pub fn trials() -> Vec<Trial> {
    vec![
        case(
            "webhooks::official_library_signatures_are_accepted",
            official_library_signatures_are_accepted,
        ),
        case(
            "webhooks::bad_deliveries_are_refused_and_store_nothing",
            bad_deliveries_are_refused_and_store_nothing,
        ),
        case(
            "webhooks::both_endpoint_secrets_work_during_a_rotation",
            both_endpoint_secrets_work_during_a_rotation,
        ),
        case(
            "webhooks::a_duplicate_delivered_five_times_is_applied_once",
            a_duplicate_delivered_five_times_is_applied_once,
        ),
        case(
            "webhooks::failure_and_recovery_out_of_order",
            failure_and_recovery_out_of_order,
        ),
        case(
            "webhooks::unpaid_past_grace_suspends_until_paid",
            unpaid_past_grace_suspends_until_paid,
        ),
        case(
            "webhooks::a_burst_for_twenty_accounts_is_applied_exactly_once",
            a_burst_for_twenty_accounts_is_applied_exactly_once,
        ),
        case(
            "webhooks::the_stand_in_delivers_the_whole_loop",
            the_stand_in_delivers_the_whole_loop,
        ),
    ]
}

pub fn event(kind: &str, created: i64, object: Value) -> Value {
    json!({"id": unique("evt_"), "object": "event", "api_version": "2026-04-22.preview", "created": created,
           "livemode": false, "type": kind, "data": {"object": object}})
}

/// Delivers `body` signed with the webhook secret (or `signing` when given).
pub fn deliver(body: &str, signing: Option<Signing>) -> Reply {
    let signing = signing.unwrap_or_else(|| {
        Signing::Raw(domain::signature::sign_header(
            WEBHOOK_SECRET.as_bytes(),
            unix_now(),
            body.as_bytes(),
        ))
    });
    provider()
        .send(
            Call::new("POST", "/webhooks/stripe")
                .raw_body(body.as_bytes().to_vec(), "application/json")
                .signing(signing)
                .api_version(None),
        )
        .unwrap()
}

fn rows_for(ids: &[&str]) -> Vec<Value> {
    let list = ids
        .iter()
        .map(|i| format!("'{i}'"))
        .collect::<Vec<_>>()
        .join(",");
    with_worker(|w| {
        w.d1(&format!(
            "SELECT * FROM webhook_events WHERE id IN ({list}) ORDER BY id"
        ))
    })
}

/// Polls D1 until `n` webhook rows exist for `ids` (the outbox flush is asynchronous to us).
fn wait_rows(ids: &[&str], n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let rows = rows_for(ids);
        if rows.len() >= n || std::time::Instant::now() > deadline {
            return rows;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// An account on the paid plan; returns its tokens, plan resource id and subscription id.
fn paid_account() -> (Tokens, String, String) {
    let t = new_account(&email());
    let r = ok(&create(
        &t.access,
        json!({"service_id": "paid", "project_id": "p", "payment_credentials": pay(&spt(5000))}),
    ));
    assert_eq!(r["status"], "complete", "{r}");
    let id = r["id"].as_str().unwrap().to_string();
    let sub = with_worker(|w| w.stand_in.subscriptions())
        .into_iter()
        .find(|s| s["metadata"]["resource_id"] == id.as_str())
        .and_then(|s| s["id"].as_str().map(str::to_string))
        .expect("a subscription at the stand-in");
    (t, id, sub)
}

fn official_library_signatures_are_accepted() {
    let body = event(
        "customer.created",
        unix_now(),
        json!({"id": "cus_nobody", "object": "customer"}),
    )
    .to_string();
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let header = stripe_js(
        "sign",
        &json!({"payload": body, "secret": WEBHOOK_SECRET, "timestamp": unix_now()}),
    )
    .unwrap();
    let reply = deliver(&body, Some(Signing::Raw(header)));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({"received": true, "outcome": "unknown_account"})
    );
    let rows = wait_rows(&[&id], 1);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["outcome"], "unknown_account");
    assert_eq!(rows[0]["type"], "customer.created");
    assert!(rows[0]["account_id"].is_null());
}

fn bad_deliveries_are_refused_and_store_nothing() {
    let now = unix_now();
    let mut ids = Vec::new();
    let mut body_of = |kind: &str| {
        let e = event(kind, now, json!({"id": "cus_x", "object": "customer"}));
        ids.push(e["id"].as_str().unwrap().to_string());
        e.to_string()
    };
    let b = body_of("customer.created");
    let tampered = deliver(
        &b.replace("cus_x", "cus_y"),
        Some(Signing::Raw(domain::signature::sign_header(
            WEBHOOK_SECRET.as_bytes(),
            now,
            b.as_bytes(),
        ))),
    );
    let b = body_of("customer.created");
    let stale = deliver(
        &b,
        Some(Signing::Raw(domain::signature::sign_header(
            WEBHOOK_SECRET.as_bytes(),
            now - 400,
            b.as_bytes(),
        ))),
    );
    let b = body_of("customer.created");
    let wrong = deliver(
        &b,
        Some(Signing::Raw(domain::signature::sign_header(
            b"whsec_wrong",
            now,
            b.as_bytes(),
        ))),
    );
    let b = body_of("customer.created");
    let unsigned = deliver(&b, Some(Signing::Unsigned));
    for (name, reply) in [
        ("tampered", tampered),
        ("stale", stale),
        ("wrong secret", wrong),
        ("unsigned", unsigned),
    ] {
        assert_eq!(reply.status, 400, "{name}: {}", reply.text());
        assert_eq!(
            reply.error_code().as_deref(),
            Some("invalid_signature"),
            "{name}"
        );
    }
    // Signed but not an event.
    let garbage = deliver("{\"hello\":1}", None);
    assert_eq!(
        (garbage.status, garbage.error_code().as_deref()),
        (400, Some("invalid_request"))
    );
    // Too large.
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(300 * 1024));
    assert_eq!(deliver(&big, None).status, 413);
    std::thread::sleep(Duration::from_millis(500));
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert!(rows_for(&id_refs).is_empty(), "nothing stored");
}

/// The worker runs with two endpoint secrets (`STRIPE_WEBHOOK_SECRETS=new,old`), as while an
/// endpoint secret is rolled: an event signed with either is accepted and recorded, and so is a
/// header carrying one `v1` per secret, as Stripe sends during a roll.
fn both_endpoint_secrets_work_during_a_rotation() {
    let now = unix_now();
    let e = |kind: &str| event(kind, now, json!({"id": "cus_rot", "object": "customer"}));
    let (old, both) = (e("customer.created"), e("customer.updated"));
    let old_body = old.to_string();
    let signed_old = deliver(
        &old_body,
        Some(Signing::Raw(domain::signature::sign_header(
            WEBHOOK_SECRET_OLD.as_bytes(),
            now,
            old_body.as_bytes(),
        ))),
    );
    let both_body = both.to_string();
    let v1 = |secret: &str| {
        domain::signature::sign_header(secret.as_bytes(), now, both_body.as_bytes())
            .split_once(",v1=")
            .map(|(_, sig)| sig.to_string())
            .unwrap()
    };
    let header = format!(
        "t={now},v1={},v1={}",
        v1("whsec_some_other_endpoint"),
        v1(WEBHOOK_SECRET)
    );
    let signed_both = deliver(&both_body, Some(Signing::Raw(header)));
    for (name, reply) in [("old secret", &signed_old), ("two v1", &signed_both)] {
        assert_eq!(reply.status, 200, "{name}: {}", reply.text());
    }
    let ids = [old["id"].as_str().unwrap(), both["id"].as_str().unwrap()];
    assert_eq!(wait_rows(&ids, 2).len(), 2, "both events recorded");
}

fn a_duplicate_delivered_five_times_is_applied_once() {
    let (t, _plan, sub) = paid_account();
    let object = with_worker(|w| w.stand_in.subscription_object(&sub)).expect("subscription");
    let body = event("customer.subscription.updated", unix_now(), object).to_string();
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let outcomes: Vec<String> = (0..5)
        .map(|_| {
            ok(&deliver(&body, None))["outcome"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            "applied",
            "duplicate",
            "duplicate",
            "duplicate",
            "duplicate"
        ]
    );
    let rows = wait_rows(&[&id], 1);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["account_id"], t.account.as_str());
    assert_eq!(rows[0]["outcome"], "applied");
    let audit = audit_rows(&t.account, 1);
    let for_event: Vec<&Value> = audit
        .iter()
        .filter(|r| r["actor_id"] == id.as_str())
        .collect();
    assert_eq!(
        for_event
            .iter()
            .filter(|r| r["action"] == "stripe.event")
            .count(),
        1,
        "{for_event:?}"
    );
    assert!(for_event.iter().all(|r| r["actor"] == "stripe"));
}

fn failure_and_recovery_out_of_order() {
    let (t, plan, sub) = paid_account();
    let base = unix_now();
    let failed = with_worker(|w| w.stand_in.invoice_object(&sub, false, 2000));
    let paid = with_worker(|w| w.stand_in.invoice_object(&sub, true, 2000));
    let past_due = with_worker(|w| w.stand_in.set_subscription_status(&sub, "past_due")).unwrap();
    let active = with_worker(|w| w.stand_in.set_subscription_status(&sub, "active")).unwrap();
    let story = [
        event("invoice.payment_failed", base + 10, failed),
        event("customer.subscription.updated", base + 10, past_due),
        event("invoice.paid", base + 20, paid.clone()),
        event("customer.subscription.updated", base + 20, active),
    ];
    // Delivered newest first: the recovery, then the failure it recovered from.
    let outcomes: Vec<String> = story
        .iter()
        .rev()
        .map(|e| {
            ok(&deliver(&e.to_string(), None))["outcome"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(outcomes, ["applied", "applied", "stale", "stale"]);
    let r = ok(&get(&t.access, &plan));
    assert_eq!(r["status"], "complete", "{r}");
    assert!(
        r["complete"]["message"].is_null(),
        "no past-due notice: {r}"
    );
    // The renewal is in the ledger once.
    let rows = audit_rows(&t.account, 10);
    let renewals = rows
        .iter()
        .filter(|r| {
            r["action"] == "charge.succeeded"
                && r["after"]
                    .as_str()
                    .unwrap()
                    .contains(paid["id"].as_str().unwrap())
        })
        .count();
    assert_eq!(renewals, 1);
}

fn unpaid_past_grace_suspends_until_paid() {
    let (t, plan, sub) = paid_account();
    let failed = with_worker(|w| w.stand_in.invoice_object(&sub, false, 2000));
    assert_eq!(
        ok(&deliver(
            &event("invoice.payment_failed", unix_now(), failed).to_string(),
            None
        ))["outcome"],
        "applied"
    );
    let r = ok(&get(&t.access, &plan));
    assert_eq!(r["status"], "complete");
    assert!(
        r["complete"]["message"]
            .as_str()
            .unwrap()
            .contains("unpaid"),
        "{r}"
    );
    // The test worker's grace period is 2 s; the account's alarm suspends the plan.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let suspended = loop {
        let r = ok(&get(&t.access, &plan));
        if r["status"] == "errored" || std::time::Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(suspended["error"]["code"], "plan_suspended", "{suspended}");
    let paid = with_worker(|w| w.stand_in.invoice_object(&sub, true, 2000));
    assert_eq!(
        ok(&deliver(
            &event("invoice.paid", unix_now() + 1, paid).to_string(),
            None
        ))["outcome"],
        "applied"
    );
    assert_eq!(ok(&get(&t.access, &plan))["status"], "complete");
    let rows = audit_rows(&t.account, 10);
    let actions: Vec<&str> = rows.iter().map(|r| r["action"].as_str().unwrap()).collect();
    for a in ["plan.past_due", "plan.suspended", "plan.resumed"] {
        assert!(actions.contains(&a), "{a} missing in {actions:?}");
    }
}

fn a_burst_for_twenty_accounts_is_applied_exactly_once() {
    let accounts: Vec<String> = (0..20).map(|_| new_account(&email()).account).collect();
    let now = unix_now();
    let events: Vec<Value> = accounts
        .iter()
        .flat_map(|a| {
            (0..10).map(move |i| {
                event("invoice.upcoming", now - i, json!({"id": format!("in_up_{i}"), "object": "invoice", "metadata": {"account_id": a}}))
            })
        })
        .collect();
    let bodies: Vec<String> = events.iter().map(Value::to_string).collect();
    let handles: Vec<_> = bodies
        .chunks(25)
        .map(|chunk| {
            let chunk = chunk.to_vec();
            std::thread::spawn(move || {
                chunk
                    .iter()
                    .map(|b| deliver(b, None))
                    .collect::<Vec<Reply>>()
            })
        })
        .collect();
    let replies: Vec<Reply> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert_eq!(replies.len(), 200);
    assert!(
        replies
            .iter()
            .all(|r| r.status == 200 && r.json()["outcome"] == "ignored"),
        "no 5xx, every event recorded"
    );
    let ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let rows = wait_rows(&ids, 200);
    assert_eq!(rows.len(), 200, "one row per event");
    let list = accounts
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(",");
    let audit = with_worker(|w| {
        w.d1(&format!("SELECT account_id, count(*) AS n FROM audit_events WHERE action = 'stripe.event' AND account_id IN ({list}) GROUP BY account_id"))
    });
    assert_eq!(audit.len(), 20);
    assert!(audit.iter().all(|r| r["n"] == 10), "{audit:?}");
}

fn the_stand_in_delivers_the_whole_loop() {
    // Held, then released shuffled with 2 duplicates each: the worker applies each once.
    with_worker(|w| w.stand_in.hold_webhooks(true));
    let (t, _plan, _sub) = paid_account();
    let events: Vec<Value> = with_worker(|w| w.stand_in.events())
        .into_iter()
        .filter(|e| e["data"]["object"]["metadata"]["account_id"] == t.account.as_str())
        .collect();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(
        kinds.contains(&"payment_intent.succeeded")
            && kinds.contains(&"customer.subscription.created"),
        "{kinds:?}"
    );
    with_worker(|w| {
        // Releasing also ends the hold.
        w.stand_in.release_webhooks(true, 2);
        assert!(w.stand_in.wait_for_deliveries(Duration::from_secs(30)));
    });
    let ids: Vec<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
    let rows = wait_rows(&ids, ids.len());
    assert_eq!(rows.len(), ids.len(), "{rows:?}");
    assert!(rows.iter().all(|r| r["account_id"] == t.account.as_str()));
    let audit = audit_rows(&t.account, 1);
    let applied = audit
        .iter()
        .filter(|r| r["action"] == "stripe.event")
        .count();
    assert_eq!(
        applied,
        ids.len(),
        "each event applied once, however often delivered"
    );
    let deliveries = with_worker(|w| w.stand_in.deliveries());
    for id in &ids {
        let n = deliveries
            .iter()
            .filter(|d| d["event_id"] == *id && d["status"] == 200)
            .count();
        assert!(n >= 3, "{id} delivered {n} times");
    }
}
