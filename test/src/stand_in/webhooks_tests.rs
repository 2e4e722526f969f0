//! Events and webhook deliveries, over real HTTP to a small local receiver.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::clock::now;
use super::tests::{customer_with_pm, delete, pay, post, send, start, KEY};
use super::webhooks::{retry_delay, FIRST_RETRY, MAX_RETRY};
use super::{Config, Fault, StandIn};

const SECRET: &str = "whsec_unit_test_secret";
const RECEIVER_THREADS: usize = 4;
const WAIT: Duration = Duration::from_secs(20);

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    body: String,
    signature: Option<String>,
    content_type: Option<String>,
    user_agent: Option<String>,
    at: Instant,
}

impl Hit {
    fn event(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn event_id(&self) -> String {
        self.event()["id"].as_str().unwrap_or("").to_string()
    }

    fn verifies(&self, secret: &str) -> bool {
        domain::signature::verify(
            self.signature.as_deref(),
            self.body.as_bytes(),
            &[secret.as_bytes()],
            now(),
            domain::signature::DEFAULT_TOLERANCE_SECS,
        )
        .is_ok()
    }
}

/// A webhook endpoint on 127.0.0.1 recording what it receives; it answers 500 to the first
/// `fail_first` requests, 200 afterwards, each after `delay`.
struct Receiver {
    url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    server: Arc<tiny_http::Server>,
}

impl Receiver {
    fn start(fail_first: usize, delay: Duration) -> Receiver {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind receiver"));
        let port = server.server_addr().to_ip().expect("ip address").port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        for _ in 0..RECEIVER_THREADS {
            let server = Arc::clone(&server);
            let hits = Arc::clone(&hits);
            std::thread::spawn(move || loop {
                let Ok(mut request) = server.recv() else {
                    return;
                };
                let at = Instant::now();
                let mut body = String::new();
                let _ = request.as_reader().read_to_string(&mut body);
                let header = |name: &str| {
                    request
                        .headers()
                        .iter()
                        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
                        .map(|h| h.value.to_string())
                };
                let hit = Hit {
                    path: request.url().to_string(),
                    signature: header("stripe-signature"),
                    content_type: header("content-type"),
                    user_agent: header("user-agent"),
                    body,
                    at,
                };
                let status = {
                    let mut hits = hits.lock().expect("hits");
                    let status = if hits.len() < fail_first { 500 } else { 200 };
                    hits.push(hit);
                    status
                };
                std::thread::sleep(delay);
                let _ = request.respond(
                    tiny_http::Response::from_string("{\"received\":true}")
                        .with_status_code(status),
                );
            });
        }
        Receiver {
            url: format!("http://127.0.0.1:{port}/webhooks/stripe"),
            hits,
            server,
        }
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("hits").clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        for _ in 0..RECEIVER_THREADS {
            self.server.unblock();
        }
    }
}

fn start_with(url: Option<String>) -> StandIn {
    StandIn::start(Config {
        api_key: KEY.into(),
        webhook_url: url,
        webhook_secret: SECRET.into(),
        ..Config::default()
    })
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("").to_string())
        .collect()
}

fn control(si: &StandIn, method: &str, path: &str, body: Option<Value>) -> super::tests::Resp {
    send(
        &si.base_url,
        method,
        path,
        &[],
        body.map(|b| ("application/json", b.to_string().into_bytes())),
    )
}

#[test]
fn defaults() {
    let c = Config::default();
    assert_eq!(c.webhook_url, None);
    assert_eq!(c.webhook_secret, "whsec_dev_stand_in_webhooks");
    let delays: Vec<u128> = (1..8)
        .map(|n| retry_delay(FIRST_RETRY, MAX_RETRY, n).as_millis())
        .collect();
    assert_eq!(delays, [200, 400, 800, 1600, 3200, 5000, 5000]);
}

#[test]
fn a_payment_is_delivered_signed_once() {
    let receiver = Receiver::start(0, Duration::ZERO);
    let si = start_with(Some(receiver.url.clone()));
    let spt = si.create_granted_token("usd", 5000, now() + 3600, None);
    let paid = pay(&si, "pay-1", &spt, "1200", &[("metadata[order]", "o_1")]);
    assert_eq!(paid.status, 200, "{}", paid.text);
    assert!(si.wait_for_deliveries(WAIT));

    let hits = receiver.hits();
    assert_eq!(hits.len(), 1);
    let hit = &hits[0];
    assert_eq!(hit.path, "/webhooks/stripe");
    assert!(hit.verifies(SECRET), "{:?}", hit.signature);
    assert!(!hit.verifies("whsec_other"));
    assert_eq!(
        hit.content_type.as_deref(),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        hit.user_agent.as_deref(),
        Some("Stripe/1.0 (+https://stripe.com/docs/webhooks)")
    );
    let signature = hit.signature.as_deref().unwrap_or("");
    assert!(signature.starts_with("t=") && signature.contains(",v1="));

    let event = hit.event();
    assert_eq!(si.events(), vec![event.clone()]);
    assert_eq!(hit.body, event.to_string(), "compact JSON");
    let id = event["id"].as_str().unwrap_or("");
    assert!(id.starts_with("evt_") && id.len() == 28, "{id}");
    assert!(id[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(event["object"], "event");
    assert_eq!(event["api_version"], "2026-04-22.preview");
    assert_eq!(event["livemode"], false);
    assert_eq!(event["pending_webhooks"], 1);
    assert_eq!(
        event["request"],
        json!({"id": null, "idempotency_key": "pay-1"})
    );
    assert_eq!(event["type"], "payment_intent.succeeded");
    assert!((event["created"].as_i64().unwrap_or(0) - now()).abs() <= 2);
    assert_eq!(event["data"]["object"], paid.body);
    assert_eq!(event["data"]["object"]["metadata"]["order"], "o_1");

    let deliveries = si.deliveries();
    assert_eq!(deliveries.len(), 1);
    let d = &deliveries[0];
    assert_eq!(d["event_id"], id);
    assert_eq!(d["type"], "payment_intent.succeeded");
    assert_eq!(d["attempt"], 1);
    assert_eq!(d["status"], 200);
    assert_eq!(d["error"], Value::Null);
    assert!(d["at"].as_u64().unwrap_or(0) > 1_600_000_000_000);

    // An idempotent replay performs nothing, so it emits nothing.
    let replay = pay(&si, "pay-1", &spt, "1200", &[("metadata[order]", "o_1")]);
    assert!(replay.replayed());
    // A response lost in transit: the operation happened (one event), its retry replays.
    si.fail_next(Fault::new("/v1/payment_intents", 1, 503).after());
    assert_eq!(pay(&si, "pay-2", &spt, "100", &[]).status, 503);
    assert!(pay(&si, "pay-2", &spt, "100", &[]).replayed());
    assert!(si.wait_for_deliveries(WAIT));
    assert_eq!(si.events().len(), 2);
    assert_eq!(receiver.hits().len(), 2);
}

#[test]
fn operations_emit_their_events() {
    let si = start();
    // A decline.
    let declining = si.create_granted_token("usd", 5000, now() + 3600, Some("insufficient_funds"));
    let declined = pay(&si, "d1", &declining, "100", &[]);
    assert_eq!(declined.status, 402);
    let events = si.events();
    assert_eq!(types(&events), ["payment_intent.payment_failed"]);
    assert_eq!(
        events[0]["data"]["object"],
        declined.body["error"]["payment_intent"]
    );
    assert_eq!(
        events[0]["data"]["object"]["status"],
        "requires_payment_method"
    );
    assert_eq!(events[0]["request"]["idempotency_key"], "d1");

    // A subscription created then canceled (once: canceling again emits nothing).
    let (cus, pm) = customer_with_pm(&si);
    let sub = post(
        &si,
        "/v1/subscriptions",
        "s1",
        &[
            ("customer", &cus),
            ("items[0][price]", "price_pro"),
            ("default_payment_method", &pm),
            ("metadata[account_id]", "acct_1"),
        ],
    );
    assert_eq!(sub.status, 200, "{}", sub.text);
    let sub_id = sub.body["id"].as_str().unwrap_or("").to_string();
    let canceled = delete(&si, &format!("/v1/subscriptions/{sub_id}"), "c1");
    assert_eq!(canceled.status, 200);
    // Cancelling it again is refused (no such subscription): no second event.
    assert_eq!(
        delete(&si, &format!("/v1/subscriptions/{sub_id}"), "c2").status,
        404
    );
    let events = si.events();
    assert_eq!(
        types(&events[1..]),
        [
            "payment_intent.succeeded",
            "customer.subscription.created",
            "customer.subscription.deleted"
        ]
    );
    assert_eq!(events[2]["data"]["object"], sub.body);
    assert_eq!(events[3]["data"]["object"], canceled.body);
    assert_eq!(events[3]["data"]["object"]["status"], "canceled");
    assert_eq!(
        events[3]["data"]["object"]["metadata"]["account_id"],
        "acct_1"
    );

    // Refunds: partial, then the rest.
    let spt = si.create_granted_token("usd", 5000, now() + 3600, None);
    let paid = pay(&si, "p1", &spt, "2000", &[("metadata[order]", "o_9")]);
    let pi = paid.body["id"].as_str().unwrap_or("").to_string();
    let r1 = post(
        &si,
        "/v1/refunds",
        "r1",
        &[("payment_intent", &pi), ("amount", "500")],
    );
    assert_eq!(r1.status, 200, "{}", r1.text);
    let r2 = post(&si, "/v1/refunds", "r2", &[("payment_intent", &pi)]);
    assert_eq!(r2.status, 200, "{}", r2.text);
    let events = si.events();
    assert_eq!(
        types(&events[4..]),
        [
            "payment_intent.succeeded",
            "charge.refunded",
            "charge.refunded"
        ]
    );
    let partial = &events[5]["data"]["object"];
    assert_eq!(partial["object"], "charge");
    assert_eq!(partial["id"], paid.body["latest_charge"]);
    assert_eq!(partial["amount"], 2000);
    assert_eq!(partial["amount_refunded"], 500);
    assert_eq!(partial["refunded"], false);
    assert_eq!(partial["payment_intent"], pi.as_str());
    assert_eq!(partial["metadata"], json!({"order": "o_9"}));
    let full = &events[6]["data"]["object"];
    assert_eq!(full["amount_refunded"], 2000);
    assert_eq!(full["refunded"], true);
    assert_eq!(full["metadata"]["order"], "o_9");
    assert_eq!(events[6]["request"]["idempotency_key"], "r2");

    // Revocations, by the Rust API and the test-helper route; a second one emits nothing.
    let spt2 = si.create_granted_token("usd", 100, now() + 3600, None);
    si.revoke_granted_token(&spt);
    si.revoke_granted_token(&spt);
    let helper = post(
        &si,
        &format!("/v1/test_helpers/shared_payment/granted_tokens/{spt2}/revoke"),
        "rv1",
        &[],
    );
    assert_eq!(helper.status, 200);
    let events = si.events();
    assert_eq!(
        types(&events[7..]),
        [
            "shared_payment.granted_token.deactivated",
            "shared_payment.granted_token.deactivated"
        ]
    );
    assert_eq!(events[7]["data"]["object"]["id"], spt.as_str());
    assert_eq!(events[7]["data"]["object"]["deactivated_reason"], "revoked");
    assert_eq!(events[7]["request"]["idempotency_key"], Value::Null);
    assert_eq!(events[8]["data"]["object"], helper.body);

    // Rejected and replayed requests emit nothing.
    assert_eq!(pay(&si, "bad", &spt, "-1", &[]).status, 400);
    assert!(post(&si, "/v1/refunds", "r2", &[("payment_intent", &pi)]).replayed());
    assert_eq!(si.events().len(), 9);
    let ids: std::collections::HashSet<_> = si.events().iter().map(|e| e["id"].clone()).collect();
    assert_eq!(ids.len(), 9);

    // No URL: recorded, never delivered.
    assert!(si.wait_for_deliveries(Duration::from_millis(100)));
    assert!(si.deliveries().is_empty());
}

#[test]
fn events_on_demand_and_renewal_objects() {
    let receiver = Receiver::start(0, Duration::ZERO);
    let si = start_with(None);
    let (cus, pm) = customer_with_pm(&si);
    let sub = post(
        &si,
        "/v1/subscriptions",
        "s1",
        &[
            ("customer", &cus),
            ("items[0][price]", "price_pro"),
            ("default_payment_method", &pm),
            ("metadata[account_id]", "acct_7"),
        ],
    );
    let sub_id = sub.body["id"].as_str().unwrap_or("").to_string();
    assert_eq!(si.subscription_object(&sub_id), Some(sub.body.clone()));
    assert_eq!(si.subscription_object("sub_nope"), None);

    // Events created before a URL is set are never delivered.
    assert_eq!(si.events().len(), 2);
    si.set_webhook_url(Some(receiver.url.clone()));

    let invoice = si.invoice_object(&sub_id, true, 2900);
    assert!(invoice["id"].as_str().unwrap_or("").starts_with("in_"));
    assert_eq!(invoice["object"], "invoice");
    assert_eq!(invoice["customer"], cus.as_str());
    assert_eq!(invoice["subscription"], sub_id.as_str());
    assert_eq!(invoice["amount_due"], 2900);
    assert_eq!(invoice["amount_paid"], 2900);
    assert_eq!(invoice["currency"], "usd");
    assert_eq!(invoice["status"], "paid");
    assert_eq!(invoice["attempt_count"], 1);
    assert_eq!(
        invoice["subscription_details"]["metadata"],
        json!({"account_id": "acct_7"})
    );
    assert_eq!(
        invoice["parent"]["subscription_details"]["subscription"],
        sub_id.as_str()
    );
    assert_eq!(invoice["lines"]["data"][0]["amount"], 2900);
    let unpaid = si.invoice_object(&sub_id, false, 2900);
    assert_eq!(unpaid["status"], "open");
    assert_eq!(unpaid["amount_paid"], 0);
    assert_ne!(unpaid["id"], invoice["id"]);

    let paid_event = si.emit("invoice.paid", invoice.clone(), Some(1_700_000_000));
    assert_eq!(paid_event["type"], "invoice.paid");
    assert_eq!(paid_event["created"], 1_700_000_000);
    assert_eq!(paid_event["data"]["object"], invoice);
    assert_eq!(paid_event["request"]["idempotency_key"], Value::Null);
    assert!(paid_event["id"].as_str().unwrap_or("").starts_with("evt_"));

    let past_due = si.set_subscription_status(&sub_id, "past_due");
    assert_eq!(
        past_due.as_ref().map(|s| &s["status"]),
        Some(&json!("past_due"))
    );
    assert_eq!(si.subscription_object(&sub_id), past_due);
    assert_eq!(si.set_subscription_status("sub_nope", "canceled"), None);
    let over_http = control(
        &si,
        "POST",
        "/_stand_in/events",
        Some(json!({"type": "customer.subscription.updated", "object": past_due})),
    );
    assert_eq!(over_http.status, 200, "{}", over_http.text);
    assert_eq!(over_http.body["type"], "customer.subscription.updated");
    assert_eq!(over_http.body["data"]["object"]["status"], "past_due");

    assert!(si.wait_for_deliveries(WAIT));
    let received: Vec<Value> = receiver.hits().iter().map(Hit::event).collect();
    assert_eq!(received, vec![paid_event, over_http.body.clone()]);
    assert_eq!(
        types(&si.events()),
        [
            "payment_intent.succeeded",
            "customer.subscription.created",
            "invoice.paid",
            "customer.subscription.updated"
        ]
    );
}

#[test]
fn retries_with_growing_delays_until_a_2xx() {
    let receiver = Receiver::start(3, Duration::ZERO);
    let si = start_with(Some(receiver.url.clone()));
    let event = si.emit("invoice.payment_failed", json!({"id": "in_1"}), None);
    assert!(si.wait_for_deliveries(WAIT));
    let hits = receiver.hits();
    assert_eq!(hits.len(), 4);
    for hit in &hits {
        assert_eq!(hit.body, event.to_string());
        assert!(hit.verifies(SECRET));
    }
    let gaps: Vec<Duration> = hits.windows(2).map(|w| w[1].at - w[0].at).collect();
    for (gap, expected) in gaps.iter().zip([200u64, 400, 800]) {
        assert!(
            *gap >= Duration::from_millis(expected - 20),
            "gaps {gaps:?}"
        );
    }
    assert!(gaps[0] < gaps[1] && gaps[1] < gaps[2], "gaps {gaps:?}");
    let deliveries = si.deliveries();
    let summary: Vec<(u64, Value)> = deliveries
        .iter()
        .map(|d| (d["attempt"].as_u64().unwrap_or(0), d["status"].clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (1, json!(500)),
            (2, json!(500)),
            (3, json!(500)),
            (4, json!(200))
        ]
    );
}

#[test]
fn gives_up_after_eight_attempts() {
    let receiver = Receiver::start(usize::MAX, Duration::ZERO);
    let si = start_with(Some(receiver.url.clone()));
    si.hub
        .set_retry_delays(Duration::from_millis(5), Duration::from_millis(20));
    si.emit("ping", json!({}), None);
    assert!(si.wait_for_deliveries(WAIT));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(receiver.hits().len(), 8);
    let attempts: Vec<Value> = si
        .deliveries()
        .iter()
        .map(|d| d["attempt"].clone())
        .collect();
    assert_eq!(attempts, (1..=8).map(|n| json!(n)).collect::<Vec<_>>());

    // Nobody listening: transport errors, retried the same way.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    si.reset();
    si.set_webhook_url(Some(format!("http://127.0.0.1:{port}/webhooks/stripe")));
    si.emit("ping", json!({}), None);
    assert!(si.wait_for_deliveries(WAIT));
    let deliveries = si.deliveries();
    assert_eq!(deliveries.len(), 8);
    for d in &deliveries {
        assert_eq!(d["status"], Value::Null);
        assert!(d["error"].as_str().is_some_and(|e| !e.is_empty()), "{d}");
    }
}

#[test]
fn delivery_never_blocks_the_request() {
    let receiver = Receiver::start(0, Duration::from_millis(1500));
    let si = start_with(Some(receiver.url.clone()));
    let spt = si.create_granted_token("usd", 5000, now() + 3600, None);
    let started = Instant::now();
    for n in 0..3 {
        assert_eq!(pay(&si, &format!("p{n}"), &spt, "100", &[]).status, 200);
    }
    assert!(started.elapsed() < Duration::from_millis(1000));
    assert!(!si.wait_for_deliveries(Duration::from_millis(200)));
    assert!(si.wait_for_deliveries(WAIT));
    // One at a time, in creation order.
    let received: Vec<String> = receiver.hits().iter().map(Hit::event_id).collect();
    let created: Vec<String> = si
        .events()
        .iter()
        .map(|e| e["id"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(received, created);
}

#[test]
fn hold_then_release_in_order_with_duplicates() {
    let receiver = Receiver::start(0, Duration::ZERO);
    let si = start_with(Some(receiver.url.clone()));
    si.hold_webhooks(true);
    let ids: Vec<String> = (0..3)
        .map(|n| {
            si.emit("ping", json!({"n": n}), None)["id"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert!(!si.wait_for_deliveries(Duration::from_millis(300)));
    assert!(receiver.hits().is_empty());
    assert_eq!(si.release_webhooks(false, 2), 9);
    assert!(si.wait_for_deliveries(WAIT));
    let hits = receiver.hits();
    let received: Vec<String> = hits.iter().map(Hit::event_id).collect();
    let expected: Vec<String> = ids.iter().cycle().take(9).cloned().collect();
    assert_eq!(received, expected);
    for hit in &hits {
        assert!(hit.verifies(SECRET));
    }
    // Same body for every copy of an event.
    for id in &ids {
        let bodies: std::collections::HashSet<&str> = hits
            .iter()
            .filter(|h| h.event_id() == *id)
            .map(|h| h.body.as_str())
            .collect();
        assert_eq!(bodies.len(), 1);
    }
    // The release ended the hold.
    si.emit("ping", json!({}), None);
    assert!(si.wait_for_deliveries(WAIT));
    assert_eq!(receiver.hits().len(), 10);
    // Un-holding releases what was held, once each.
    si.hold_webhooks(true);
    si.emit("ping", json!({}), None);
    si.hold_webhooks(false);
    assert!(si.wait_for_deliveries(WAIT));
    assert_eq!(receiver.hits().len(), 11);
}

#[test]
fn hold_then_release_shuffled_and_concurrent() {
    let receiver = Receiver::start(0, Duration::from_millis(50));
    let si = start_with(Some(receiver.url.clone()));
    si.hold_webhooks(true);
    let ids: Vec<String> = (0..20)
        .map(|n| {
            si.emit("ping", json!({"n": n}), None)["id"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    let started = Instant::now();
    assert_eq!(si.release_webhooks(true, 1), 40);
    assert!(si.wait_for_deliveries(WAIT));
    // 40 answers of 50 ms each, one at a time, would take 2 s.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let mut counts: HashMap<String, usize> = HashMap::new();
    for hit in receiver.hits() {
        assert!(hit.verifies(SECRET));
        *counts.entry(hit.event_id()).or_default() += 1;
    }
    assert_eq!(counts.len(), 20);
    for id in &ids {
        assert_eq!(counts.get(id), Some(&2), "{id}");
    }
    assert_eq!(si.deliveries().len(), 40);
}

#[test]
fn no_url_records_without_delivering() {
    let receiver = Receiver::start(0, Duration::ZERO);
    let si = start_with(None);
    si.emit("ping", json!({}), None);
    si.hold_webhooks(true);
    si.emit("ping", json!({}), None);
    assert_eq!(si.release_webhooks(true, 3), 0);
    assert!(si.wait_for_deliveries(Duration::from_millis(100)));
    assert_eq!(si.events().len(), 2);
    assert!(si.deliveries().is_empty());
    // Held events go to the URL set by the time they are released.
    si.hold_webhooks(true);
    let held = si.emit("ping", json!({"held": true}), None);
    si.set_webhook_url(Some(receiver.url.clone()));
    assert_eq!(si.release_webhooks(false, 0), 1);
    assert!(si.wait_for_deliveries(WAIT));
    let hits = receiver.hits();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].event(), held);
    // Removing the URL stops delivery.
    si.set_webhook_url(None);
    si.emit("ping", json!({}), None);
    assert!(si.wait_for_deliveries(Duration::from_millis(100)));
    assert_eq!(receiver.hits().len(), 1);
}

#[test]
fn webhook_control_routes_over_http() {
    let receiver = Receiver::start(0, Duration::ZERO);
    let si = start_with(None);
    let config = control(
        &si,
        "POST",
        "/_stand_in/webhooks/config",
        Some(json!({"url": receiver.url, "hold": true})),
    );
    assert_eq!(config.status, 200, "{}", config.text);
    assert_eq!(config.body, json!({"url": receiver.url, "hold": true}));
    let event = control(
        &si,
        "POST",
        "/_stand_in/events",
        Some(json!({"type": "invoice.paid", "object": {"id": "in_1"}, "created": 1_700_000_001})),
    );
    assert_eq!(event.status, 200, "{}", event.text);
    assert_eq!(event.body["created"], 1_700_000_001);
    let state = control(&si, "GET", "/_stand_in/webhooks", None);
    assert_eq!(state.body["events"], json!([event.body]));
    assert_eq!(state.body["deliveries"], json!([]));
    assert_eq!(state.body["hold"], true);

    let released = control(
        &si,
        "POST",
        "/_stand_in/webhooks/release",
        Some(json!({"shuffle": false, "duplicates": 1})),
    );
    assert_eq!(released.status, 200, "{}", released.text);
    assert_eq!(released.body["queued"], 2);
    assert!(si.wait_for_deliveries(WAIT));
    let state = control(&si, "GET", "/_stand_in/webhooks", None);
    assert_eq!(state.body["deliveries"].as_array().map(Vec::len), Some(2));
    assert_eq!(state.body["hold"], false);
    assert_eq!(receiver.hits().len(), 2);

    // Renewal helpers.
    let (cus, pm) = customer_with_pm(&si);
    let sub = post(
        &si,
        "/v1/subscriptions",
        "s1",
        &[
            ("customer", &cus),
            ("items[0][price]", "price_pro"),
            ("default_payment_method", &pm),
        ],
    );
    let sub_id = sub.body["id"].as_str().unwrap_or("");
    let invoice = control(
        &si,
        "POST",
        "/_stand_in/invoices",
        Some(json!({"subscription": sub_id, "paid": false, "amount": 900})),
    );
    assert_eq!(invoice.status, 200, "{}", invoice.text);
    assert_eq!(invoice.body["status"], "open");
    assert_eq!(invoice.body["customer"], cus.as_str());
    let status = control(
        &si,
        "POST",
        &format!("/_stand_in/subscriptions/{sub_id}/status"),
        Some(json!({"status": "unpaid"})),
    );
    assert_eq!(status.status, 200, "{}", status.text);
    assert_eq!(status.body["status"], "unpaid");

    // Unset the URL over HTTP.
    let unset = control(
        &si,
        "POST",
        "/_stand_in/webhooks/config",
        Some(json!({"url": null})),
    );
    assert_eq!(unset.body, json!({"url": null, "hold": false}));

    // Bad bodies are 400s (404 for unknown objects), never panics.
    let bad: Vec<(&str, Value, u16)> = vec![
        ("/_stand_in/events", json!({"object": {}}), 400),
        ("/_stand_in/events", json!({"type": "", "object": {}}), 400),
        (
            "/_stand_in/events",
            json!({"type": "x", "object": [1]}),
            400,
        ),
        ("/_stand_in/events", json!({"type": "x"}), 400),
        (
            "/_stand_in/events",
            json!({"type": "x", "object": {}, "created": "now"}),
            400,
        ),
        ("/_stand_in/webhooks/config", json!({"url": "ftp://x"}), 400),
        ("/_stand_in/webhooks/config", json!({"url": 5}), 400),
        ("/_stand_in/webhooks/config", json!({"hold": "yes"}), 400),
        (
            "/_stand_in/webhooks/release",
            json!({"duplicates": 1000}),
            400,
        ),
        (
            "/_stand_in/webhooks/release",
            json!({"duplicates": -1}),
            400,
        ),
        ("/_stand_in/webhooks/release", json!({"shuffle": 1}), 400),
        (
            "/_stand_in/invoices",
            json!({"subscription": "sub_nope", "amount": 1}),
            404,
        ),
        ("/_stand_in/invoices", json!({"subscription": sub_id}), 400),
        (
            "/_stand_in/invoices",
            json!({"subscription": sub_id, "amount": 1, "paid": "y"}),
            400,
        ),
        (
            "/_stand_in/subscriptions/sub_nope/status",
            json!({"status": "x"}),
            404,
        ),
        ("/_stand_in/subscriptions/x/status", json!({}), 400),
    ];
    for (path, body, expected) in bad {
        let r = control(&si, "POST", path, Some(body.clone()));
        assert_eq!(r.status, expected, "{path} {body}: {}", r.text);
        assert!(r.body["error"]["message"].is_string(), "{}", r.text);
    }
    for path in [
        "/_stand_in/events",
        "/_stand_in/webhooks/config",
        "/_stand_in/webhooks/release",
    ] {
        let r = send(
            &si.base_url,
            "POST",
            path,
            &[],
            Some(("application/json", b"{not json".to_vec())),
        );
        assert_eq!(r.status, 400, "{path}");
    }
    assert_eq!(
        control(&si, "DELETE", "/_stand_in/webhooks", None).status,
        404
    );

    // Reset forgets events and deliveries.
    assert_eq!(control(&si, "POST", "/_stand_in/reset", None).status, 200);
    let state = control(&si, "GET", "/_stand_in/webhooks", None);
    assert_eq!(state.body["events"], json!([]));
    assert_eq!(state.body["deliveries"], json!([]));
}
