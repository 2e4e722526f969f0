//! A local HTTP stand-in for the three outside services the worker calls: a subset of
//! Stripe's API, a domain registrar and the operator's own backend. Tests and local
//! development point the worker at it instead of the real services.
//!
//! It speaks the wire format of the real services and **checks what it receives**, so the
//! worker's clients are tested honestly rather than against a mock that accepts anything.
//!
//! # What it checks
//!
//! Stripe (`/v1/*`, endpoints listed in `stripe.rs`):
//! - `Authorization: Bearer <api key>` on every call (401 otherwise);
//! - POST bodies are `application/x-www-form-urlencoded` with Stripe's nested keys
//!   (`a[b]=1`, `items[0][price]=…`), decoded strictly: bad percent-escapes, non-UTF-8,
//!   malformed brackets, repeated or conflicting keys are 400 errors;
//! - unknown parameters are refused (`parameter_unknown`), as Stripe does; required parameters
//!   and their types are checked (`parameter_missing`, `parameter_invalid_integer`, …);
//! - every POST and DELETE carries an `Idempotency-Key` (stricter than Stripe, on purpose: the
//!   worker must always send one), and keys behave like Stripe's: same key and same request
//!   replays the stored response byte for byte with `Idempotent-Replayed: true`; same key with
//!   other parameters is an `idempotency_error`. Parameter-validation failures are not stored,
//!   every other result (including 402 declines) is;
//! - the business rules of a shared payment granted token (existence, expiry, revocation,
//!   currency, spending limit, scripted declines), customers, payment methods attached to
//!   customers and subscriptions.
//!
//! Registrar (`/registrar/v1/*`) and operator backend (`/operator/v1/*`): see `registrar.rs` and
//! `operator.rs`: bearer key or `Provider-Signature` HMAC, required idempotency keys, strict
//! JSON bodies.
//!
//! Faults ([`Fault`]) can be queued for any path prefix, answered instead of the operation or
//! after it (a response lost in transit; the retry with the same key then replays the success).
//!
//! Control routes under `/_stand_in/` (JSON, no auth, never logged) mirror the Rust API for the
//! `stand-in` binary and for tests in another process: `POST faults`
//! (`{"path_prefix","count"?,"status"?,"after"?,"slow_ms"?,"param_pointer"?,"param_value"?,
//! "key_prefix"?}`), `POST granted_tokens`
//! (`{"currency","max_amount","expires_at","decline_code"?}`), `POST granted_tokens/{id}/revoke`,
//! `POST operator` (`{"pending_calls"}`), `GET state`, `POST reset`, and the webhook routes
//! below.
//!
//! # Webhooks
//!
//! Every operation that changes something creates a Stripe event, once (an idempotent replay
//! creates none): `payment_intent.succeeded`, `payment_intent.payment_failed` (any 402
//! decline), `customer.subscription.created`, `customer.subscription.deleted`,
//! `charge.refunded` (the charge: `amount`, `amount_refunded`, `payment_intent`, `refunded`
//! once fully refunded, the PaymentIntent's `metadata`) and
//! `shared_payment.granted_token.deactivated` (a revocation). Events have Stripe's shape:
//! `{"id":"evt_…","object":"event","api_version":"2026-04-22.preview","created","livemode":false,
//! "pending_webhooks":1,"request":{"id":null,"idempotency_key"},"type","data":{"object"}}`, with
//! the object as the API returns it at that moment.
//!
//! Stripe-side life the stand-in does not simulate (renewals, failed renewals, disputes…) is
//! emitted on demand: [`StandIn::emit`] / `POST /_stand_in/events` (`{"type","object","created"?}`)
//! with objects from [`StandIn::invoice_object`] (`POST /_stand_in/invoices`
//! `{"subscription","paid"?,"amount"}`), [`StandIn::subscription_object`] and
//! [`StandIn::set_subscription_status`] (`POST /_stand_in/subscriptions/{id}/status`
//! `{"status"}`).
//!
//! With a [`Config::webhook_url`], each event is POSTed there from background threads (an API
//! request never waits): body the compact event JSON, `Stripe-Signature: t=<now>,v1=<hex
//! HMAC-SHA256(webhook_secret, "<t>." + body)>` computed afresh for every attempt,
//! `Content-Type: application/json; charset=utf-8`, `User-Agent: Stripe/1.0
//! (+https://stripe.com/docs/webhooks)`. A 2xx answer ends the delivery; anything else
//! (redirects included, which are not followed), a transport error or no answer within 10 s
//! is retried after 200 ms, doubling, capped at 5 s, for at most 8 attempts: Stripe's three
//! days, compressed. Events are delivered one at a time in creation order, except that an
//! event waiting for its retry does not hold back the next ones. Without a URL, events are
//! recorded but not delivered (setting a URL later does not deliver them, except held
//! ones: a release delivers to the URL of that moment).
//!
//! Tests control delivery ([`StandIn::hold_webhooks`], [`StandIn::release_webhooks`],
//! [`StandIn::wait_for_deliveries`]): held events wait; a release delivers each of them
//! `1 + duplicates` times (Stripe's at-least-once), in order or shuffled and concurrently from
//! up to 8 threads. Over HTTP: `POST /_stand_in/webhooks/config` (`{"url"?: string|null,
//! "hold"?: bool}`), `POST /_stand_in/webhooks/release` (`{"shuffle"?,"duplicates"?}`, at most
//! 100 duplicates), `GET /_stand_in/webhooks` (`{"url","hold","events","deliveries"}`). Every
//! attempt is logged in [`StandIn::deliveries`].
//!
//! # What it deliberately does not implement
//!
//! - Anything outside the listed endpoints (404 like Stripe's "Unrecognized request URL"),
//!   list endpoints, pagination, `expand` (accepted and ignored), the `/v1/events` API.
//! - Events Stripe also sends but the worker does not need (`payment_intent.created`,
//!   `charge.succeeded`, `customer.created`, `refund.created`, `customer.subscription.updated`,
//!   …), events for a token that expires or is used up, and anything about invoices unless
//!   emitted on demand. Event `request.id` is always null. Webhook endpoints, their event
//!   filters and several endpoints per account do not exist: one URL gets every event, and
//!   the secret cannot be rolled (no second `v1` signature).
//! - Stripe's delivery timing: retries are seconds apart instead of hours, and a delivery
//!   that never succeeds is simply abandoned (no endpoint disabling, no e-mail).
//! - Prices and products: any non-empty `items[i][price]` is accepted.
//! - Real money rules: minimum charge amounts, currency exponents, 3-D Secure, manual capture,
//!   unconfirmed PaymentIntents (`confirm=true` is required). A refund does not give the
//!   granted token its allowance back.
//! - Billing cycles: `current_period_end` is the trial end or 30 days after creation; no
//!   invoices and no renewals (tests emit those events themselves).
//! - Concurrency conflicts on one idempotency key: requests are applied one at a time under
//!   a single lock, so Stripe's 409 "request in progress" never happens.
//! - Stripe-Version handling: the header is neither required nor checked.
//! - Slow-client protection: 8 worker threads; a client that never sends the body it announced
//!   (over 1 KiB) holds one of them until it disconnects.

mod form;
mod operator;
mod registrar;
mod stripe;
#[cfg(test)]
mod tests;
mod webhooks;
#[cfg(test)]
mod webhooks_tests;

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

/// Threads answering requests; each handles one request at a time.
const WORKERS: usize = 8;
/// Internal marker on a reply to be sent late (a slow fault); never sent.
const DELAY_HEADER: &str = "x-stand-in-delay-ms";
/// Largest request body read, in bytes.
const MAX_BODY: usize = 1 << 20;

/// Secrets and port of a stand-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The Stripe secret key callers must present as `Authorization: Bearer <key>`.
    pub api_key: String,
    /// The HMAC secret of `Provider-Signature` on operator backend calls.
    pub operator_secret: String,
    /// The registrar's bearer key.
    pub registrar_key: String,
    /// Port on 127.0.0.1; 0 picks any free port.
    pub port: u16,
    /// Where events are POSTed as webhooks (e.g. `http://127.0.0.1:8787/webhooks/stripe`);
    /// `None` records events without delivering them.
    pub webhook_url: Option<String>,
    /// The endpoint's signing secret (`Stripe-Signature`).
    pub webhook_secret: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            api_key: "sk_test_dev_stand_in".into(),
            operator_secret: "op_backend_dev_secret".into(),
            registrar_key: "rk_dev_registrar".into(),
            port: 0,
            webhook_url: None,
            webhook_secret: "whsec_dev_stand_in_webhooks".into(),
        }
    }
}

/// A scripted failure: the next `count` requests whose path starts with `path_prefix` are
/// answered with `status` and an `api_error` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub path_prefix: String,
    pub count: u32,
    pub status: u16,
    /// Perform (and store, for idempotent replay) the operation first, then answer the error:
    /// a response lost in transit.
    pub after: bool,
    /// Only requests whose decoded parameters have this value at this JSON pointer (e.g.
    /// `/payment_method_data/shared_payment_granted_token`), so parallel tests do not take each
    /// other's faults.
    pub param: Option<(String, String)>,
    /// When non-zero, a slow service instead of a failing one: the request is performed
    /// normally and its real answer sent this many milliseconds later (outside the stand-in's
    /// lock); `status` and `after` are then ignored. Lets a test stop the worker mid-call.
    pub slow_ms: u64,
    /// Only requests whose `Idempotency-Key` starts with this (the worker's keys start with
    /// the account id), for calls whose parameters a test cannot know in advance (a refund of
    /// a PaymentIntent the worker creates).
    pub key_prefix: Option<String>,
}

impl Fault {
    /// The next `count` requests whose path starts with `path_prefix` answer `status`.
    pub fn new(path_prefix: &str, count: u32, status: u16) -> Fault {
        Fault {
            path_prefix: path_prefix.to_string(),
            count,
            status,
            after: false,
            param: None,
            slow_ms: 0,
            key_prefix: None,
        }
    }

    /// Only requests whose `Idempotency-Key` starts with `prefix`.
    pub fn key_prefix(self, prefix: &str) -> Fault {
        Fault {
            key_prefix: Some(prefix.to_string()),
            ..self
        }
    }

    /// Performs the operation first, then answers the error: a response lost in transit.
    pub fn after(self) -> Fault {
        Fault {
            after: true,
            ..self
        }
    }

    /// Only requests with this (JSON pointer, value) among their parameters.
    pub fn param(self, param: Option<(String, String)>) -> Fault {
        Fault { param, ..self }
    }

    /// A slow service instead of a failing one: the real answer, `ms` milliseconds late.
    pub fn slow(self, ms: u64) -> Fault {
        Fault {
            slow_ms: ms,
            ..self
        }
    }
}

/// A running stand-in. Dropping it stops the server.
pub struct StandIn {
    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub base_url: String,
    shared: Arc<Mutex<State>>,
    hub: Arc<webhooks::Hub>,
    server: Arc<tiny_http::Server>,
    stopping: Arc<AtomicBool>,
}

impl StandIn {
    /// Binds 127.0.0.1 and serves on background threads until dropped.
    ///
    /// Panics when the port cannot be bound (a test setup failure).
    pub fn start(config: Config) -> StandIn {
        let server = tiny_http::Server::http(("127.0.0.1", config.port))
            .unwrap_or_else(|e| panic!("stand-in: cannot bind 127.0.0.1:{}: {e}", config.port));
        let port = server
            .server_addr()
            .to_ip()
            .map(|a| a.port())
            .unwrap_or(config.port);
        let server = Arc::new(server);
        let hub = webhooks::Hub::start(config.webhook_url.clone(), config.webhook_secret.clone());
        let shared = Arc::new(Mutex::new(State::new(config, Arc::clone(&hub))));
        let stopping = Arc::new(AtomicBool::new(false));
        for n in 0..WORKERS {
            let server = Arc::clone(&server);
            let shared = Arc::clone(&shared);
            let stopping = Arc::clone(&stopping);
            std::thread::Builder::new()
                .name(format!("stand-in-{n}"))
                .spawn(move || serve(&server, &shared, &stopping))
                .unwrap_or_else(|e| panic!("stand-in: cannot start a worker thread: {e}"));
        }
        StandIn {
            base_url: format!("http://127.0.0.1:{port}"),
            shared,
            hub,
            server,
            stopping,
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.base_url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared)
    }

    /// Creates a granted token as the buyer's agent would, and returns its id (`spt_…`).
    /// With `decline_code`, every payment with it is declined with that code.
    pub fn create_granted_token(
        &self,
        currency: &str,
        max_amount: u64,
        expires_at: i64,
        decline_code: Option<&str>,
    ) -> String {
        let mut metadata = Map::new();
        if let Some(code) = decline_code {
            metadata.insert("decline_code".into(), Value::String(code.into()));
        }
        let mut st = self.state();
        stripe::create_token(
            &mut st,
            &currency.to_ascii_lowercase(),
            max_amount,
            expires_at,
            metadata,
        )
    }

    /// Deactivates a granted token (reason `revoked`) and emits
    /// `shared_payment.granted_token.deactivated`; unknown or already deactivated tokens are
    /// left alone.
    pub fn revoke_granted_token(&self, id: &str) {
        let _ = stripe::revoke_token(&mut self.state(), id);
    }

    /// A granted token as `GET /v1/shared_payment/granted_tokens/{id}` shows it.
    pub fn granted_token(&self, id: &str) -> Option<Value> {
        let st = self.state();
        st.tokens
            .iter()
            .find(|t| t.id == id)
            .map(|t| t.to_json(now()))
    }

    /// Queues a fault (see [`Fault`]).
    pub fn fail_next(&self, fault: Fault) {
        self.state().faults.push(fault);
    }

    /// Every PaymentIntent created, succeeded or not, in order.
    pub fn payment_intents(&self) -> Vec<Value> {
        self.state().payment_intents.clone()
    }

    pub fn subscriptions(&self) -> Vec<Value> {
        self.state().subscriptions.clone()
    }

    pub fn customers(&self) -> Vec<Value> {
        self.state().customers.clone()
    }

    /// Every refund created, in order.
    pub fn refunds(&self) -> Vec<Value> {
        self.state().refunds.clone()
    }

    /// Payment methods created by successful payments.
    pub fn payment_methods(&self) -> Vec<Value> {
        self.state().payment_methods.clone()
    }

    /// The request log: `{method, path, idempotency_key, status, params, replayed}` for every
    /// call to `/v1`, `/registrar` and `/operator` (control routes are not logged).
    pub fn requests(&self) -> Vec<Value> {
        self.state().requests.clone()
    }

    /// Every domain registration, active or released.
    pub fn registrations(&self) -> Vec<Value> {
        self.state().registrations.clone()
    }

    /// Every call to the operator backend, refused ones included.
    pub fn operator_calls(&self) -> Vec<Value> {
        self.state().operator_calls.clone()
    }

    /// How many `create` calls per resource answer `pending` before `complete` (default 1).
    pub fn set_operator_pending_calls(&self, n: u32) {
        self.state().operator_pending_calls = n;
    }

    /// Everything, as `GET /_stand_in/state` shows it.
    pub fn snapshot(&self) -> Value {
        self.state().snapshot()
    }

    /// Forgets every object, key, fault and log entry, events and deliveries included, and
    /// drops queued or held deliveries (the configuration, webhook URL and hold included, stays).
    pub fn reset(&self) {
        self.state().reset();
    }

    // -----------------------------------------------------------------------------------------
    // Events and webhooks

    /// Creates an event of `event_type` around `object` (`created` defaults to now), records
    /// it, queues its delivery and returns it: Stripe-side life (renewals, disputes...) that
    /// the stand-in does not simulate itself.
    pub fn emit(&self, event_type: &str, object: Value, created: Option<i64>) -> Value {
        webhooks::create_event(&mut self.state(), event_type, object, created)
    }

    /// A renewal invoice of a stored subscription, as Stripe shows it in `invoice.paid` or
    /// `invoice.payment_failed`: `status` `paid` or `open`, `amount_due` `amount` in `usd`, the
    /// subscription's customer, and its metadata in `subscription_details.metadata` (and in
    /// `parent.subscription_details`, where recent API versions put it). Nothing is stored or
    /// emitted. An unknown subscription gives `customer: null` and empty metadata.
    pub fn invoice_object(&self, subscription_id: &str, paid: bool, amount: u64) -> Value {
        webhooks::invoice_object(&mut self.state(), subscription_id, paid, amount)
    }

    /// A subscription as `GET /v1/subscriptions/{id}` shows it.
    pub fn subscription_object(&self, id: &str) -> Option<Value> {
        self.state()
            .subscriptions
            .iter()
            .find(|s| s["id"] == id)
            .cloned()
    }

    /// Sets a stored subscription's `status` (`canceled` also fills `canceled_at` and
    /// `ended_at`) and returns it, without emitting anything.
    pub fn set_subscription_status(&self, id: &str, status: &str) -> Option<Value> {
        webhooks::set_subscription_status(&mut self.state(), id, status)
    }

    /// Where webhooks go from now on (retries included); `None` stops delivering, and drops
    /// what is queued.
    pub fn set_webhook_url(&self, url: Option<String>) {
        self.hub.set_url(url);
    }

    /// While held, new events are recorded but wait undelivered. `hold_webhooks(false)`
    /// releases them in order, once each.
    pub fn hold_webhooks(&self, hold: bool) {
        self.hub.hold(hold);
    }

    /// Ends the hold and delivers every held event `1 + duplicates` times (same id and body, a
    /// fresh signature per attempt): the whole list in creation order, then again once per
    /// duplicate, one attempt at a time; or, with `shuffle`, all copies in a random order from
    /// up to 8 threads at once. Returns the number of deliveries queued.
    pub fn release_webhooks(&self, shuffle: bool, duplicates: u32) -> usize {
        self.hub.release(shuffle, duplicates)
    }

    /// Every event created, in order, delivered or not.
    pub fn events(&self) -> Vec<Value> {
        self.hub.events()
    }

    /// Every delivery attempt, in the order they ended:
    /// `{"event_id","type","attempt","status","error","at"}` (`status` null and `error` set on a
    /// transport failure; `at` in unix milliseconds, when the attempt started).
    pub fn deliveries(&self) -> Vec<Value> {
        self.hub.deliveries()
    }

    /// Waits until no delivery is queued, held, waiting for a retry or in flight; false when
    /// `timeout` passes first.
    pub fn wait_for_deliveries(&self, timeout: Duration) -> bool {
        self.hub.wait(timeout)
    }
}

impl std::fmt::Debug for StandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandIn")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.hub.stop();
        // Each unblock wakes one worker; the listener closes once they all let go.
        for _ in 0..WORKERS {
            self.server.unblock();
        }
    }
}

fn lock(shared: &Mutex<State>) -> MutexGuard<'_, State> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Unix seconds.
pub(crate) use app_client::unix_now as now;

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// State

/// A stored idempotent request: what it was, and the reply to replay (none while provisional).
struct Stored {
    method: String,
    path: String,
    params: Value,
    reply: Option<Reply>,
}

pub(crate) struct State {
    config: Config,
    hub: Arc<webhooks::Hub>,
    /// The `Idempotency-Key` of the API request being handled, for the events it causes.
    request_key: Option<String>,
    salt: u64,
    seq: u64,
    tokens: Vec<stripe::Token>,
    customers: Vec<Value>,
    payment_methods: Vec<Value>,
    payment_intents: Vec<Value>,
    subscriptions: Vec<Value>,
    refunds: Vec<Value>,
    idempotency: HashMap<String, Stored>,
    faults: Vec<Fault>,
    requests: Vec<Value>,
    registrations: Vec<Value>,
    operator_calls: Vec<Value>,
    operator_pending_calls: u32,
    operator_resources: HashMap<String, operator::Resource>,
}

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

impl State {
    fn new(config: Config, hub: Arc<webhooks::Hub>) -> State {
        let salt =
            std::collections::hash_map::RandomState::new().hash_one((nanos(), std::process::id()));
        State {
            config,
            hub,
            request_key: None,
            salt,
            seq: 0,
            tokens: Vec::new(),
            customers: Vec::new(),
            payment_methods: Vec::new(),
            payment_intents: Vec::new(),
            subscriptions: Vec::new(),
            refunds: Vec::new(),
            idempotency: HashMap::new(),
            faults: Vec::new(),
            requests: Vec::new(),
            registrations: Vec::new(),
            operator_calls: Vec::new(),
            operator_pending_calls: 1,
            operator_resources: HashMap::new(),
        }
    }

    fn reset(&mut self) {
        let hub = Arc::clone(&self.hub);
        hub.clear();
        *self = State::new(self.config.clone(), hub);
    }

    /// `n` random base-62 characters.
    fn random_chars(&mut self, n: usize) -> String {
        let mut out = String::with_capacity(n);
        while out.len() < n {
            self.seq += 1;
            let seed = format!("{}:{}:{}", self.salt, self.seq, nanos());
            for b in domain::crypto::sha256(seed.as_bytes()) {
                if out.len() == n {
                    break;
                }
                out.push(ALPHABET[usize::from(b) % ALPHABET.len()] as char);
            }
        }
        out
    }

    /// A new object id such as `cus_…`.
    fn id(&mut self, prefix: &str) -> String {
        format!("{prefix}_{}", self.random_chars(24))
    }

    /// Consumes one use of the first queued fault matching `path`.
    fn take_fault(&mut self, path: &str, params: &Value, key: Option<&str>) -> Option<Fault> {
        self.faults.retain(|f| f.count > 0);
        let i = self.faults.iter().position(|f| {
            path.starts_with(&f.path_prefix)
                && f.param.as_ref().is_none_or(|(pointer, value)| {
                    params.pointer(pointer).and_then(Value::as_str) == Some(value.as_str())
                })
                && f.key_prefix
                    .as_ref()
                    .is_none_or(|p| key.is_some_and(|k| k.starts_with(p.as_str())))
        })?;
        self.faults[i].count -= 1;
        let fault = self.faults[i].clone();
        if self.faults[i].count == 0 {
            self.faults.remove(i);
        }
        Some(fault)
    }

    fn snapshot(&self) -> Value {
        let now = now();
        let faults: Vec<Value> = self.faults.iter().map(fault_json).collect();
        json!({
            "granted_tokens": self.tokens.iter().map(|t| t.to_json(now)).collect::<Vec<_>>(),
            "customers": self.customers,
            "payment_methods": self.payment_methods,
            "payment_intents": self.payment_intents,
            "subscriptions": self.subscriptions,
            "refunds": self.refunds,
            "registrations": self.registrations,
            "operator_calls": self.operator_calls,
            "operator_pending_calls": self.operator_pending_calls,
            "faults": faults,
            "requests": self.requests,
        })
    }
}

fn fault_json(f: &Fault) -> Value {
    json!({"path_prefix": f.path_prefix, "count": f.count, "status": f.status, "after": f.after,
           "slow_ms": f.slow_ms, "key_prefix": f.key_prefix})
}

// ---------------------------------------------------------------------------------------------
// HTTP plumbing

/// A request, read fully before any state is touched.
pub(crate) struct Incoming {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Incoming {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `Idempotency-Key` header, when present and not blank.
    fn idempotency_key(&self) -> Option<&str> {
        self.header("idempotency-key")
            .map(str::trim)
            .filter(|k| !k.is_empty())
    }

    /// The token of `Authorization: Bearer <token>`.
    fn bearer(&self) -> Option<&str> {
        let value = self.header("authorization")?.trim();
        let (scheme, token) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty())
    }

    /// The media type of `Content-Type`, lowercased, without parameters.
    fn media_type(&self) -> String {
        self.header("content-type")
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default()
    }
}

/// A response: status, JSON body text (kept verbatim for replays) and extra headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    status: u16,
    body: String,
    headers: Vec<(String, String)>,
}

impl Reply {
    fn json(status: u16, body: &Value) -> Reply {
        Reply {
            status,
            body: body.to_string(),
            headers: Vec::new(),
        }
    }

    fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    }
}

fn serve(server: &tiny_http::Server, shared: &Mutex<State>, stopping: &AtomicBool) {
    loop {
        let request = match server.recv() {
            Ok(request) => request,
            Err(_) if stopping.load(Ordering::SeqCst) => return,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        answer(request, shared);
    }
}

fn answer(mut request: tiny_http::Request, shared: &Mutex<State>) {
    let url = request.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|h| (h.field.as_str().to_string(), h.value.to_string()))
        .collect();
    let mut body = Vec::new();
    let read = request
        .as_reader()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body);
    let reply = if read.is_err() {
        Reply::json(
            400,
            &json!({"error": {"type": "invalid_request_error", "message": "The request body could not be read."}}),
        )
    } else if body.len() > MAX_BODY {
        Reply::json(
            413,
            &json!({"error": {"type": "invalid_request_error", "message": "The request body is too large."}}),
        )
    } else {
        let incoming = Incoming {
            method: request.method().as_str().to_ascii_uppercase(),
            path: path.to_string(),
            query: query.to_string(),
            headers,
            body,
        };
        catch_unwind(AssertUnwindSafe(|| handle(shared, &incoming))).unwrap_or_else(|_| {
            Reply::json(
                500,
                &json!({"error": {"type": "api_error", "message": "The stand-in failed internally."}}),
            )
        })
    };
    let mut reply = reply;
    // A slow fault: answer late, holding only this request's thread.
    if let Some(i) = reply.headers.iter().position(|(k, _)| k == DELAY_HEADER) {
        let (_, ms) = reply.headers.remove(i);
        std::thread::sleep(Duration::from_millis(ms.parse().unwrap_or(0)));
    }
    let mut response = tiny_http::Response::from_data(reply.body.into_bytes())
        .with_status_code(reply.status)
        .with_header(tiny_http::Header {
            field: "Content-Type".parse().expect("static header name"),
            value: "application/json".parse().expect("static header value"),
        });
    for (name, value) in &reply.headers {
        if let Ok(header) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(header);
        }
    }
    let _ = request.respond(response);
}

/// What an API handler did: the reply, the decoded parameters and whether it was a replay.
pub(crate) struct Handled {
    reply: Reply,
    params: Value,
    replayed: bool,
}

fn handle(shared: &Mutex<State>, incoming: &Incoming) -> Reply {
    let mut st = lock(shared);
    let path = incoming.path.as_str();
    if path == "/_stand_in" || path.starts_with("/_stand_in/") {
        return control(&mut st, incoming);
    }
    st.request_key = incoming.idempotency_key().map(str::to_string);
    let handled = if path.starts_with("/v1/") {
        stripe::handle(&mut st, incoming)
    } else if path.starts_with("/registrar/") {
        registrar::handle(&mut st, incoming)
    } else if path.starts_with("/operator/") {
        operator::handle(&mut st, incoming)
    } else {
        Handled {
            reply: stripe::unrecognized(incoming),
            params: Value::Null,
            replayed: false,
        }
    };
    st.request_key = None;
    let mut reply = handled.reply;
    if !reply.has_header("Request-Id") {
        let id = st.id("req");
        reply = reply.with_header("Request-Id", &id);
    }
    st.requests.push(json!({
        "method": incoming.method,
        "path": incoming.path,
        "idempotency_key": incoming.idempotency_key(),
        "status": reply.status,
        "params": handled.params,
        "replayed": handled.replayed,
    }));
    reply
}

// ---------------------------------------------------------------------------------------------
// Idempotency and faults, shared by the three APIs

/// The result of performing an operation, and what to keep of it under its idempotency key.
pub(crate) enum Outcome {
    /// Stored; the same key and request replay it.
    Final(Reply),
    /// The key is bound to this request, but the operation runs again on retry (an operation
    /// still pending on the operator backend).
    Provisional(Reply),
    /// Nothing is stored (the parameters failed validation).
    Rejected(Reply),
}

/// Which API a request belongs to: decides the shape of its error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    Stripe,
    Registrar,
    Operator,
}

impl Api {
    /// An error body: Stripe's `{type, code?, message}` or the other APIs' `{code, message}`.
    fn error(self, status: u16, kind: &str, code: Option<&str>, message: &str) -> Reply {
        match self {
            Api::Stripe => {
                let mut error = Map::new();
                error.insert("type".into(), kind.into());
                if let Some(code) = code {
                    error.insert("code".into(), code.into());
                }
                error.insert("message".into(), message.into());
                Reply::json(status, &json!({ "error": error }))
            }
            Api::Registrar | Api::Operator => Reply::json(
                status,
                &json!({"error": {"code": code.unwrap_or(kind), "message": message}}),
            ),
        }
    }

    fn fault(self, status: u16) -> Reply {
        let code = match self {
            Api::Stripe => None,
            Api::Registrar | Api::Operator => Some("injected_fault"),
        };
        self.error(status, "api_error", code, "stand-in injected fault")
    }
}

/// One call through the idempotency layer.
pub(crate) struct Call<'a> {
    api: Api,
    /// Keys are unique within a scope (Stripe: per API key).
    scope: &'a str,
    /// `None` for reads: no replay, no storage.
    key: Option<&'a str>,
    method: &'a str,
    path: &'a str,
    params: &'a Value,
}

/// Applies queued faults and idempotency around `perform`. Returns the reply and whether it
/// was replayed from storage.
fn run(
    st: &mut State,
    call: Call<'_>,
    perform: impl FnOnce(&mut State) -> Outcome,
) -> (Reply, bool) {
    let mut fault = st.take_fault(call.path, call.params, call.key);
    let slow_ms = fault.as_ref().map_or(0, |f| f.slow_ms);
    if slow_ms > 0 {
        fault = None;
    }
    if let Some(fault) = &fault {
        if !fault.after {
            return (call.api.fault(fault.status), false);
        }
    }
    let slot = call.key.map(|key| format!("{}\u{0}{key}", call.scope));
    let mut stored_reply = None;
    if let Some(slot) = &slot {
        if let Some(stored) = st.idempotency.get(slot) {
            if stored.method != call.method
                || stored.path != call.path
                || stored.params != *call.params
            {
                let message = format!(
                    "Keys for idempotent requests can only be used with the same parameters they \
                     were first used with. Try using a key other than '{}' if you meant to \
                     execute a different request.",
                    call.key.unwrap_or_default()
                );
                let code = (call.api != Api::Stripe).then_some("idempotency_error");
                return (
                    call.api.error(400, "idempotency_error", code, &message),
                    false,
                );
            }
            stored_reply = stored.reply.clone();
        }
    }
    let (reply, replayed) = match stored_reply {
        Some(reply) => (reply.with_header("Idempotent-Replayed", "true"), true),
        None => {
            let (reply, keep) = match perform(st) {
                Outcome::Final(reply) => (reply, Some(true)),
                Outcome::Provisional(reply) => (reply, Some(false)),
                Outcome::Rejected(reply) => (reply, None),
            };
            let request_id = st.id("req");
            let reply = reply.with_header("Request-Id", &request_id);
            if let (Some(slot), Some(keep_reply)) = (slot, keep) {
                st.idempotency.insert(
                    slot,
                    Stored {
                        method: call.method.to_string(),
                        path: call.path.to_string(),
                        params: call.params.clone(),
                        reply: keep_reply.then(|| reply.clone()),
                    },
                );
            }
            (reply, false)
        }
    };
    match fault {
        Some(fault) => (call.api.fault(fault.status), replayed),
        None if slow_ms > 0 => (
            reply.with_header(DELAY_HEADER, &slow_ms.to_string()),
            replayed,
        ),
        None => (reply, replayed),
    }
}

// ---------------------------------------------------------------------------------------------
// Control routes

/// The error body of the registrar and operator-backend APIs (and of the control routes).
pub(crate) fn error_reply(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

fn control_error(status: u16, message: &str) -> Reply {
    error_reply(status, "invalid_request", message)
}

/// An optional control field: `None` when absent or null, else what `parse` makes of it, or a
/// 400 saying that `{name} must be {expected}`.
fn optional<T>(
    body: &Map<String, Value>,
    name: &str,
    expected: &str,
    parse: impl FnOnce(&Value) -> Option<T>,
) -> Result<Option<T>, Reply> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => parse(v)
            .map(Some)
            .ok_or_else(|| control_error(400, &format!("{name} must be {expected}"))),
    }
}

fn json_object(body: &[u8]) -> Result<Map<String, Value>, Reply> {
    let text = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    match serde_json::from_slice::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(control_error(400, "the body must be a JSON object")),
        Err(e) => Err(control_error(400, &format!("the body is not JSON: {e}"))),
    }
}

fn control(st: &mut State, incoming: &Incoming) -> Reply {
    let path = incoming.path.trim_end_matches('/');
    if let Some(reply) = webhooks::control(st, incoming, path) {
        return reply;
    }
    let result = match (incoming.method.as_str(), path) {
        ("GET", "/_stand_in/state") => Ok(Reply::json(200, &st.snapshot())),
        ("POST", "/_stand_in/reset") => {
            st.reset();
            Ok(Reply::json(200, &json!({"reset": true})))
        }
        ("POST", "/_stand_in/faults") => json_object(&incoming.body)
            .and_then(|body| parse_fault(&body))
            .map(|fault| {
                let shown = fault_json(&fault);
                st.faults.push(fault);
                Reply::json(200, &json!({ "queued": shown }))
            }),
        ("POST", "/_stand_in/granted_tokens") => {
            json_object(&incoming.body).and_then(|body| control_token(st, &body))
        }
        ("POST", "/_stand_in/operator") => json_object(&incoming.body).and_then(|body| match body
            .get("pending_calls")
            .and_then(Value::as_u64)
        {
            Some(n) if n <= u64::from(u32::MAX) => {
                st.operator_pending_calls = n as u32;
                Ok(Reply::json(200, &json!({"pending_calls": n})))
            }
            _ => Err(control_error(
                400,
                "pending_calls must be a non-negative integer",
            )),
        }),
        ("POST", p) => match p
            .strip_prefix("/_stand_in/granted_tokens/")
            .and_then(|rest| rest.strip_suffix("/revoke"))
        {
            Some(id) => stripe::revoke_token(st, id)
                .map(|token| Reply::json(200, &token))
                .ok_or_else(|| control_error(404, &format!("no granted token {id}"))),
            None => Err(control_error(404, "unknown control route")),
        },
        _ => Err(control_error(404, "unknown control route")),
    };
    result.unwrap_or_else(|reply| reply)
}

fn parse_fault(body: &Map<String, Value>) -> Result<Fault, Reply> {
    let path_prefix = body
        .get("path_prefix")
        .and_then(Value::as_str)
        .filter(|p| p.starts_with('/'))
        .ok_or_else(|| control_error(400, "path_prefix must be a string starting with /"))?;
    let count = optional(body, "count", "a non-negative integer", |v| {
        v.as_u64().and_then(|n| u32::try_from(n).ok())
    })?
    .unwrap_or(1);
    let status = optional(body, "status", "an HTTP status (100-599)", |v| {
        v.as_u64()
            .filter(|s| (100..=599).contains(s))
            .map(|s| s as u16)
    })?
    .unwrap_or(500);
    let after = optional(body, "after", "a boolean", Value::as_bool)?.unwrap_or(false);
    let param = match (body.get("param_pointer"), body.get("param_value")) {
        (Some(Value::String(p)), Some(Value::String(v))) => Some((p.clone(), v.clone())),
        (None, None) => None,
        _ => {
            return Err(control_error(
                400,
                "param_pointer and param_value must both be strings",
            ))
        }
    };
    let slow_ms = optional(body, "slow_ms", "an integer of at most 60000", |v| {
        v.as_u64().filter(|ms| *ms <= 60_000)
    })?
    .unwrap_or(0);
    let key_prefix = optional(body, "key_prefix", "a string", |v| {
        v.as_str().map(str::to_string)
    })?;
    Ok(Fault {
        path_prefix: path_prefix.to_string(),
        count,
        status,
        after,
        param,
        slow_ms,
        key_prefix,
    })
}

fn control_token(st: &mut State, body: &Map<String, Value>) -> Result<Reply, Reply> {
    let currency = body
        .get("currency")
        .and_then(Value::as_str)
        .filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_alphabetic()))
        .ok_or_else(|| control_error(400, "currency must be a three-letter code"))?;
    let max_amount = body
        .get("max_amount")
        .and_then(Value::as_u64)
        .ok_or_else(|| control_error(400, "max_amount must be a non-negative integer"))?;
    let expires_at = body
        .get("expires_at")
        .and_then(Value::as_i64)
        .ok_or_else(|| control_error(400, "expires_at must be a unix time"))?;
    let mut metadata = Map::new();
    match body.get("decline_code") {
        None | Some(Value::Null) => {}
        Some(Value::String(code)) => {
            metadata.insert("decline_code".into(), Value::String(code.clone()));
        }
        Some(_) => return Err(control_error(400, "decline_code must be a string")),
    }
    let id = stripe::create_token(
        st,
        &currency.to_ascii_lowercase(),
        max_amount,
        expires_at,
        metadata,
    );
    Ok(Reply::json(200, &stripe::token_json(st, &id)))
}
