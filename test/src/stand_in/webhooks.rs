//! Delivery of Stripe events as signed webhooks.
//!
//! Events are created under the state lock (`stripe/events.rs`), recorded in order and handed
//! to a [`Hub`]; the hub
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

use serde_json::{json, Value};

use super::clock::{nanos, now};

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
const USER_AGENT: &str = "Stripe/1.0 (+https://stripe.com/docs/webhooks)";
const CONTENT_TYPE: &str = "application/json; charset=utf-8";

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
    pub(crate) fn publish(&self, event: &Value) {
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
