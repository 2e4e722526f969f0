//! Stripe events and their delivery as signed webhooks.
//!
//! Events are created under the state lock, recorded in order and handed to a [`Hub`]; the hub
//! delivers them from its own threads, so an API request never waits for a webhook. Each
//! attempt is a fresh HTTP/1.1 POST signed at the time of the attempt. Failed attempts (not
//! 2xx, a transport error or no answer within [`TIMEOUT`]) are retried after 200 ms, 400 ms,
//! ... up to 5 s, for at most [`MAX_ATTEMPTS`] attempts in total: Stripe's three days,
//! compressed for tests.
//!
//! Two lanes share the delivery threads:
//! - ordered: events as they happen, and released without shuffling. One attempt in flight at
//!   a time, in creation order; an event waiting for its retry does not hold back the next one
//!   (as on Stripe, a retried event can arrive after later ones);
//! - concurrent: a shuffled release, delivered from up to [`DELIVERY_THREADS`] threads at once.
//!
//! Lock order: the stand-in's state, then the hub. The hub never takes the state lock.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use super::{control_error, json_object, nanos, now, optional, Incoming, Reply, State};

/// The `api_version` every event carries.
pub(crate) const API_VERSION: &str = "2026-04-22.preview";
/// Attempts per delivery, the first one included.
pub(crate) const MAX_ATTEMPTS: u32 = 8;
/// Delay before the first retry; it doubles after each failure.
pub(crate) const FIRST_RETRY: Duration = Duration::from_millis(200);
/// Longest delay between two attempts.
pub(crate) const MAX_RETRY: Duration = Duration::from_secs(5);
/// How long one attempt may take, connection to end of response.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);
/// Threads delivering webhooks (the most attempts in flight at once).
pub(crate) const DELIVERY_THREADS: usize = 8;
/// Most copies per event a release over HTTP may ask for.
const MAX_HTTP_DUPLICATES: u64 = 100;
const USER_AGENT: &str = "Stripe/1.0 (+https://stripe.com/docs/webhooks)";
const CONTENT_TYPE: &str = "application/json; charset=utf-8";

// ---------------------------------------------------------------------------------------------
// Events

/// Creates an event around `object`, records it and queues its delivery. The event's
/// `request.idempotency_key` is that of the API request being handled, if any.
pub(crate) fn create_event(
    st: &mut State,
    event_type: &str,
    object: Value,
    created: Option<i64>,
) -> Value {
    let event = json!({
        "id": st.id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": created.unwrap_or_else(now),
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": st.request_key},
        "type": event_type,
        "data": {"object": object},
    });
    st.hub.publish(&event);
    event
}

/// A Stripe invoice for a renewal of `subscription_id`: paid, or open after a failed attempt.
/// Customer, metadata and periods come from the stored subscription (null, empty and now when
/// there is none).
pub(crate) fn invoice_object(
    st: &mut State,
    subscription_id: &str,
    paid: bool,
    amount: u64,
) -> Value {
    let now = now();
    let sub = st
        .subscriptions
        .iter()
        .find(|s| s["id"] == subscription_id)
        .cloned()
        .unwrap_or(Value::Null);
    let customer = sub["customer"].clone();
    let metadata = match &sub["metadata"] {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    // Stripe's renewal invoice covers the period that just ended; its line, the next one.
    let period_start = sub["current_period_start"].as_i64().unwrap_or(now);
    let period_end = sub["current_period_end"].as_i64().unwrap_or(now);
    let line_end = period_end + (period_end - period_start).max(0);
    let price = sub["items"]["data"][0]["price"].clone();
    let id = st.id("in");
    let line_id = st.id("il");
    let number = st.random_chars(8).to_ascii_uppercase();
    json!({
        "id": id,
        "object": "invoice",
        "account_country": "US",
        "amount_due": amount,
        "amount_paid": if paid { amount } else { 0 },
        "amount_remaining": if paid { 0 } else { amount },
        "attempt_count": 1,
        "attempted": true,
        "auto_advance": !paid,
        "billing_reason": "subscription_cycle",
        "collection_method": "charge_automatically",
        "created": now,
        "currency": "usd",
        "customer": customer,
        "description": null,
        "hosted_invoice_url": null,
        "lines": {
            "object": "list",
            "data": [{
                "id": line_id,
                "object": "line_item",
                "amount": amount,
                "currency": "usd",
                "description": null,
                "invoice": id,
                "livemode": false,
                "metadata": metadata,
                "period": {"start": period_end, "end": line_end},
                "pricing": {"type": "price_details", "price_details": {"price": price["id"]}},
                "quantity": 1,
                "subscription": subscription_id,
            }],
            "has_more": false,
            "total_count": 1,
            "url": format!("/v1/invoices/{id}/lines"),
        },
        "livemode": false,
        "metadata": {},
        "next_payment_attempt": if paid { Value::Null } else { json!(now + 86_400) },
        "number": number,
        "paid": paid,
        "parent": {
            "type": "subscription_details",
            "quote_details": null,
            "subscription_details": {"subscription": subscription_id, "metadata": metadata},
        },
        "period_start": period_start,
        "period_end": period_end,
        "status": if paid { "paid" } else { "open" },
        "status_transitions": {
            "finalized_at": now,
            "paid_at": if paid { json!(now) } else { Value::Null },
            "voided_at": null,
            "marked_uncollectible_at": null,
        },
        "subscription": subscription_id,
        "subscription_details": {"metadata": metadata},
        "subtotal": amount,
        "total": amount,
    })
}

/// Sets a stored subscription's status (a `canceled` one also gets `canceled_at` and
/// `ended_at` if it had none) and returns it; emits nothing.
pub(crate) fn set_subscription_status(st: &mut State, id: &str, status: &str) -> Option<Value> {
    let now = now();
    let sub = st.subscriptions.iter_mut().find(|s| s["id"] == id)?;
    sub["status"] = json!(status);
    if status == "canceled" {
        for field in ["canceled_at", "ended_at"] {
            if sub[field].is_null() {
                sub[field] = json!(now);
            }
        }
    }
    Some(sub.clone())
}

// ---------------------------------------------------------------------------------------------
// The hub

/// What is delivered for one event.
#[derive(Clone)]
struct Pending {
    event_id: String,
    kind: String,
    body: Arc<str>,
}

/// One delivery (one copy of an event), through its attempts.
struct Job {
    pending: Pending,
    /// The attempt about to be made, from 1.
    attempt: u32,
    due: Instant,
    concurrent: bool,
    /// The hub's generation when queued; a reset makes older jobs vanish.
    generation: u64,
}

struct Inner {
    url: Option<String>,
    secret: String,
    held: bool,
    stopping: bool,
    generation: u64,
    events: Vec<Value>,
    deliveries: Vec<Value>,
    /// Events created while held, in order.
    holding: Vec<Pending>,
    queue: VecDeque<Job>,
    in_flight: usize,
    /// An ordered-lane attempt is in flight.
    ordered_busy: bool,
    first_retry: Duration,
    max_retry: Duration,
    seed: u64,
}

/// Records events and delivers them (see the module doc).
pub(crate) struct Hub {
    inner: Mutex<Inner>,
    changed: Condvar,
}

impl Hub {
    /// A hub with its delivery threads running.
    ///
    /// Panics when a thread cannot be started (a test setup failure).
    pub(crate) fn start(url: Option<String>, secret: String) -> Arc<Hub> {
        let hub = Arc::new(Hub {
            inner: Mutex::new(Inner {
                url,
                secret,
                held: false,
                stopping: false,
                generation: 0,
                events: Vec::new(),
                deliveries: Vec::new(),
                holding: Vec::new(),
                queue: VecDeque::new(),
                in_flight: 0,
                ordered_busy: false,
                first_retry: FIRST_RETRY,
                max_retry: MAX_RETRY,
                seed: nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32),
            }),
            changed: Condvar::new(),
        });
        for n in 0..DELIVERY_THREADS {
            let hub = Arc::clone(&hub);
            std::thread::Builder::new()
                .name(format!("stand-in-webhooks-{n}"))
                .spawn(move || deliver_loop(&hub))
                .unwrap_or_else(|e| panic!("stand-in: cannot start a webhook thread: {e}"));
        }
        hub
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records an event and queues (or holds) its delivery.
    fn publish(&self, event: &Value) {
        let pending = Pending {
            event_id: event["id"].as_str().unwrap_or_default().to_string(),
            kind: event["type"].as_str().unwrap_or_default().to_string(),
            body: Arc::from(event.to_string()),
        };
        let mut h = self.lock();
        h.events.push(event.clone());
        if h.held {
            h.holding.push(pending);
        } else if h.url.is_some() {
            let generation = h.generation;
            h.queue.push_back(Job::new(pending, false, generation));
        }
        drop(h);
        self.changed.notify_all();
    }

    pub(crate) fn set_url(&self, url: Option<String>) {
        self.lock().url = url;
        self.changed.notify_all();
    }

    pub(crate) fn url(&self) -> Option<String> {
        self.lock().url.clone()
    }

    pub(crate) fn is_held(&self) -> bool {
        self.lock().held
    }

    /// Holds new events; un-holding releases what was held, in order, once each.
    pub(crate) fn hold(&self, hold: bool) {
        if hold {
            self.lock().held = true;
        } else {
            self.release(false, 0);
        }
    }

    /// Ends the hold and queues every held event `1 + duplicates` times: the whole list in
    /// creation order, then again for each duplicate; or all copies shuffled, for concurrent
    /// delivery. Returns the number of deliveries queued (0 without a URL: the held events
    /// are dropped, as they would be without a hold).
    pub(crate) fn release(&self, shuffle: bool, duplicates: u32) -> usize {
        let mut h = self.lock();
        h.held = false;
        let held = std::mem::take(&mut h.holding);
        if h.url.is_none() {
            drop(h);
            self.changed.notify_all();
            return 0;
        }
        let generation = h.generation;
        let copies = duplicates as usize + 1;
        let mut jobs: Vec<Job> = Vec::with_capacity(held.len().saturating_mul(copies));
        for _ in 0..copies {
            for pending in &held {
                jobs.push(Job::new(pending.clone(), shuffle, generation));
            }
        }
        if shuffle {
            h.seed ^= nanos() as u64;
            let mut rng = XorShift::new(h.seed);
            for i in (1..jobs.len()).rev() {
                let j = (rng.next() % (i as u64 + 1)) as usize;
                jobs.swap(i, j);
            }
            h.seed = rng.next();
        }
        let count = jobs.len();
        h.queue.extend(jobs);
        drop(h);
        self.changed.notify_all();
        count
    }

    pub(crate) fn events(&self) -> Vec<Value> {
        self.lock().events.clone()
    }

    pub(crate) fn deliveries(&self) -> Vec<Value> {
        self.lock().deliveries.clone()
    }

    /// Waits until nothing is queued, held or in flight; false on timeout.
    pub(crate) fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut h = self.lock();
        loop {
            if h.queue.is_empty() && h.holding.is_empty() && h.in_flight == 0 {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            h = self
                .changed
                .wait_timeout(h, deadline - now)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
    }

    /// Forgets events, deliveries and queued or held deliveries (URL and hold stay); attempts
    /// in flight finish unrecorded.
    pub(crate) fn clear(&self) {
        let mut h = self.lock();
        h.generation += 1;
        h.events.clear();
        h.deliveries.clear();
        h.holding.clear();
        h.queue.clear();
        drop(h);
        self.changed.notify_all();
    }

    /// Stops the delivery threads (attempts in flight finish first).
    pub(crate) fn stop(&self) {
        let mut h = self.lock();
        h.stopping = true;
        h.queue.clear();
        h.holding.clear();
        drop(h);
        self.changed.notify_all();
    }

    /// Shorter retry delays, for tests of the retry schedule.
    #[cfg(test)]
    pub(crate) fn set_retry_delays(&self, first: Duration, max: Duration) {
        let mut h = self.lock();
        h.first_retry = first;
        h.max_retry = max;
    }

    /// The next attempt to make, with the URL and secret to use; `None` once stopping.
    fn next_job(&self) -> Option<(Job, String, String)> {
        let mut h = self.lock();
        loop {
            if h.stopping {
                return None;
            }
            let Some(url) = h.url.clone() else {
                // No URL any more: what is queued is not delivered.
                if !h.queue.is_empty() {
                    h.queue.clear();
                    self.changed.notify_all();
                }
                h = self
                    .changed
                    .wait(h)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            };
            let now = Instant::now();
            let busy = h.ordered_busy;
            let ready = h
                .queue
                .iter()
                .position(|j| j.due <= now && (j.concurrent || !busy));
            if let Some(job) = ready.and_then(|i| h.queue.remove(i)) {
                h.in_flight += 1;
                if !job.concurrent {
                    h.ordered_busy = true;
                }
                return Some((job, url, h.secret.clone()));
            }
            let next_due = h.queue.iter().filter(|j| j.due > now).map(|j| j.due).min();
            h = match next_due {
                Some(due) => self
                    .changed
                    .wait_timeout(h, due - now)
                    .map(|(guard, _)| guard)
                    .unwrap_or_else(|poisoned| poisoned.into_inner().0),
                None => self
                    .changed
                    .wait(h)
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
            };
        }
    }

    /// Records an attempt and schedules the retry it calls for.
    fn finish(&self, job: Job, at: u128, status: Option<u16>, error: Option<String>) {
        let mut h = self.lock();
        h.in_flight = h.in_flight.saturating_sub(1);
        if !job.concurrent {
            h.ordered_busy = false;
        }
        if job.generation == h.generation && !h.stopping {
            h.deliveries.push(json!({
                "event_id": job.pending.event_id,
                "type": job.pending.kind,
                "attempt": job.attempt,
                "status": status,
                "error": error,
                "at": at as u64,
            }));
            let delivered = status.is_some_and(|s| (200..300).contains(&s));
            if !delivered && job.attempt < MAX_ATTEMPTS {
                let delay = retry_delay(h.first_retry, h.max_retry, job.attempt);
                h.queue.push_back(Job {
                    attempt: job.attempt + 1,
                    due: Instant::now() + delay,
                    ..job
                });
            }
        }
        drop(h);
        self.changed.notify_all();
    }
}

impl Job {
    fn new(pending: Pending, concurrent: bool, generation: u64) -> Job {
        Job {
            pending,
            attempt: 1,
            due: Instant::now(),
            concurrent,
            generation,
        }
    }
}

/// The delay after failed attempt `attempt` (from 1): `first`, doubling, capped at `max`.
pub(crate) fn retry_delay(first: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(20);
    first.saturating_mul(factor).min(max)
}

fn deliver_loop(hub: &Hub) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(TIMEOUT))
        .max_redirects(0)
        .max_idle_connections(0)
        .user_agent(USER_AGENT)
        .build()
        .new_agent();
    while let Some((job, url, secret)) = hub.next_job() {
        let at = unix_ms();
        let (status, error) = post(&agent, &url, &secret, &job.pending.body);
        hub.finish(job, at, status, error);
    }
}

/// One attempt: the HTTP status, or the transport error.
fn post(agent: &ureq::Agent, url: &str, secret: &str, body: &str) -> (Option<u16>, Option<String>) {
    let signature = domain::signature::sign_header(secret.as_bytes(), now(), body.as_bytes());
    let sent = agent
        .post(url)
        .header("Stripe-Signature", &signature)
        .header("Content-Type", CONTENT_TYPE)
        .send(body.as_bytes());
    match sent {
        Ok(mut response) => {
            // Read (and discard) the answer so that a slow body counts against the timeout.
            let _ = response
                .body_mut()
                .with_config()
                .limit(1 << 20)
                .read_to_vec();
            (Some(response.status().as_u16()), None)
        }
        Err(e) => (None, Some(e.to_string())),
    }
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// Marsaglia's xorshift64: enough to shuffle deliveries.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

// ---------------------------------------------------------------------------------------------
// Control routes

/// `/_stand_in/events`, `/_stand_in/webhooks*`, `/_stand_in/invoices` and
/// `/_stand_in/subscriptions/{id}/status`; `None` for other paths.
pub(crate) fn control(st: &mut State, incoming: &Incoming, path: &str) -> Option<Reply> {
    let method = incoming.method.as_str();
    let result = match (method, path) {
        ("POST", "/_stand_in/events") => {
            json_object(&incoming.body).and_then(|body| control_emit(st, &body))
        }
        ("GET", "/_stand_in/webhooks") => Ok(Reply::json(
            200,
            &json!({
                "url": st.hub.url(),
                "hold": st.hub.is_held(),
                "events": st.hub.events(),
                "deliveries": st.hub.deliveries(),
            }),
        )),
        ("POST", "/_stand_in/webhooks/config") => {
            json_object(&incoming.body).and_then(|body| control_config(st, &body))
        }
        ("POST", "/_stand_in/webhooks/release") => {
            json_object(&incoming.body).and_then(|body| control_release(st, &body))
        }
        ("POST", "/_stand_in/invoices") => {
            json_object(&incoming.body).and_then(|body| control_invoice(st, &body))
        }
        ("POST", p) => {
            let id = p
                .strip_prefix("/_stand_in/subscriptions/")
                .and_then(|rest| rest.strip_suffix("/status"))
                .filter(|id| !id.is_empty() && !id.contains('/'))?;
            json_object(&incoming.body).and_then(|body| {
                let status = body
                    .get("status")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| control_error(400, "status must be a non-empty string"))?;
                set_subscription_status(st, id, status)
                    .map(|sub| Reply::json(200, &sub))
                    .ok_or_else(|| control_error(404, &format!("no subscription {id}")))
            })
        }
        _ => return None,
    };
    Some(result.unwrap_or_else(|reply| reply))
}

fn control_emit(st: &mut State, body: &Map<String, Value>) -> Result<Reply, Reply> {
    let event_type = body
        .get("type")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| control_error(400, "type must be a non-empty string"))?
        .to_string();
    let object = match body.get("object") {
        Some(Value::Object(object)) => Value::Object(object.clone()),
        _ => return Err(control_error(400, "object must be a JSON object")),
    };
    let created = optional(body, "created", "a unix time", Value::as_i64)?;
    let event = create_event(st, &event_type, object, created);
    Ok(Reply::json(200, &event))
}

fn control_config(st: &mut State, body: &Map<String, Value>) -> Result<Reply, Reply> {
    let url = match body.get("url") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(url)) if url.starts_with("http://") || url.starts_with("https://") => {
            Some(Some(url.clone()))
        }
        Some(_) => {
            return Err(control_error(
                400,
                "url must be null or an http:// or https:// URL",
            ))
        }
    };
    let hold = optional(body, "hold", "a boolean", Value::as_bool)?;
    if let Some(url) = url {
        st.hub.set_url(url);
    }
    if let Some(hold) = hold {
        st.hub.hold(hold);
    }
    Ok(Reply::json(
        200,
        &json!({"url": st.hub.url(), "hold": st.hub.is_held()}),
    ))
}

fn control_release(st: &mut State, body: &Map<String, Value>) -> Result<Reply, Reply> {
    let shuffle = optional(body, "shuffle", "a boolean", Value::as_bool)?.unwrap_or(false);
    let expected = format!("an integer from 0 to {MAX_HTTP_DUPLICATES}");
    let duplicates = optional(body, "duplicates", &expected, |v| {
        v.as_u64()
            .filter(|n| *n <= MAX_HTTP_DUPLICATES)
            .map(|n| n as u32)
    })?
    .unwrap_or(0);
    let queued = st.hub.release(shuffle, duplicates);
    Ok(Reply::json(200, &json!({ "queued": queued })))
}

fn control_invoice(st: &mut State, body: &Map<String, Value>) -> Result<Reply, Reply> {
    let subscription = body
        .get("subscription")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| control_error(400, "subscription must be a subscription id"))?
        .to_string();
    let paid = optional(body, "paid", "a boolean", Value::as_bool)?.unwrap_or(true);
    let amount = body
        .get("amount")
        .and_then(Value::as_u64)
        .ok_or_else(|| control_error(400, "amount must be a non-negative integer"))?;
    if !st
        .subscriptions
        .iter()
        .any(|s| s["id"] == subscription.as_str())
    {
        return Err(control_error(
            404,
            &format!("no subscription {subscription}"),
        ));
    }
    Ok(Reply::json(
        200,
        &invoice_object(st, &subscription, paid, amount),
    ))
}
