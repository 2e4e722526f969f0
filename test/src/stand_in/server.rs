//! The server: [`StandIn`] binds a port, answers on worker threads, and dispatches each
//! request, read fully first, to the Stripe, registrar or operator API or the control routes
//! under one state lock. It is also the Rust API tests use to inspect and steer it.

use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::clock::now;
use super::config::Config;
use super::control::control;
use super::fault::Fault;
use super::http::{Handled, Incoming, Reply, DELAY_HEADER};
use super::state::{lock, State};
use super::stripe::errors::unrecognized;
use super::stripe::events::create_event;
use super::stripe::granted_tokens::{create_token, revoke_token};
use super::stripe::invoices::invoice_object;
use super::stripe::subscriptions::set_subscription_status;
use super::webhooks::Hub;
use super::{operator, registrar, stripe};

/// Threads answering requests; each handles one request at a time.
const WORKERS: usize = 8;
/// Largest request body read, in bytes.
const MAX_BODY: usize = 1 << 20;

/// A running stand-in. Dropping it stops the server.
pub struct StandIn {
    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub base_url: String,
    shared: Arc<Mutex<State>>,
    /// Visible to the stand-in's own tests, which shorten the retry delays.
    pub(super) hub: Arc<Hub>,
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
        let hub = Hub::start(config.webhook_url.clone(), config.webhook_secret.clone());
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
        create_token(
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
        let _ = revoke_token(&mut self.state(), id);
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

    /// Every SetupIntent created, in order.
    pub fn setup_intents(&self) -> Vec<Value> {
        self.state().setup_intents.clone()
    }

    /// Every Billing credit grant created, in order.
    pub fn credit_grants(&self) -> Vec<Value> {
        self.state().credit_grants.clone()
    }

    /// Every Billing meter event accepted, in order.
    pub fn meter_events(&self) -> Vec<Value> {
        self.state().meter_events.clone()
    }

    /// Whether the operator backend has `resource_id` suspended (the gateway's hard cap).
    pub fn operator_suspended(&self, resource_id: &str) -> bool {
        self.state()
            .operator_resources
            .get(resource_id)
            .is_some_and(|r| r.suspended)
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
        create_event(&mut self.state(), event_type, object, created)
    }

    /// A renewal invoice of a stored subscription, as Stripe shows it in `invoice.paid` or
    /// `invoice.payment_failed`: `status` `paid` or `open`, `amount_due` `amount` in `usd`, the
    /// subscription's customer, and its metadata in `subscription_details.metadata` (and in
    /// `parent.subscription_details`, where recent API versions put it). Nothing is stored or
    /// emitted. An unknown subscription gives `customer: null` and empty metadata.
    pub fn invoice_object(&self, subscription_id: &str, paid: bool, amount: u64) -> Value {
        invoice_object(&mut self.state(), subscription_id, paid, amount)
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
        set_subscription_status(&mut self.state(), id, status)
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

fn handle(shared: &Mutex<State>, incoming: &Incoming) -> Reply {
    let mut st = lock(shared);
    let path = incoming.path.as_str();
    if path == "/_stand_in" || path.starts_with("/_stand_in/") {
        return control(&mut st, incoming);
    }
    st.request_key = incoming.idempotency_key().map(str::to_string);
    let handled = if path.starts_with("/v1/") {
        stripe::routes::handle(&mut st, incoming)
    } else if path.starts_with("/registrar/") {
        registrar::handle(&mut st, incoming)
    } else if path.starts_with("/operator/") {
        operator::handle(&mut st, incoming)
    } else {
        Handled {
            reply: unrecognized(incoming),
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
