//! Everything one stand-in remembers, behind one lock: objects of the three services,
//! idempotency records, queued faults and the request log. Handlers take `&mut State` and run
//! one at a time, so no operation sees another half done.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Value};

use super::clock::{nanos, now};
use super::config::Config;
use super::fault::{fault_json, Fault};
use super::http::Reply;
use super::stripe::token::Token;
use super::webhooks::Hub;

/// Locks the state; a handler that panicked (answered 500) does not make it unusable.
pub(crate) fn lock(shared: &Mutex<State>) -> MutexGuard<'_, State> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A stored idempotent request: what it was, and the reply to replay (none while provisional).
pub(crate) struct Stored {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) params: Value,
    pub(crate) reply: Option<Reply>,
}

/// What one stand-in remembers (see the module doc); objects are kept as the API shows them.
pub(crate) struct State {
    pub(crate) config: Config,
    pub(crate) hub: Arc<Hub>,
    /// The `Idempotency-Key` of the API request being handled, for the events it causes.
    pub(crate) request_key: Option<String>,
    salt: u64,
    seq: u64,
    pub(crate) tokens: Vec<Token>,
    pub(crate) customers: Vec<Value>,
    pub(crate) payment_methods: Vec<Value>,
    pub(crate) payment_intents: Vec<Value>,
    pub(crate) subscriptions: Vec<Value>,
    pub(crate) refunds: Vec<Value>,
    pub(crate) setup_intents: Vec<Value>,
    pub(crate) meter_events: Vec<Value>,
    pub(crate) credit_grants: Vec<Value>,
    pub(crate) idempotency: HashMap<String, Stored>,
    pub(crate) faults: Vec<Fault>,
    pub(crate) requests: Vec<Value>,
    pub(crate) registrations: Vec<Value>,
    pub(crate) operator_calls: Vec<Value>,
    pub(crate) operator_pending_calls: u32,
    pub(crate) operator_resources: HashMap<String, OperatorResource>,
}

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

impl State {
    pub(crate) fn new(config: Config, hub: Arc<Hub>) -> State {
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
            setup_intents: Vec::new(),
            meter_events: Vec::new(),
            credit_grants: Vec::new(),
            idempotency: HashMap::new(),
            faults: Vec::new(),
            requests: Vec::new(),
            registrations: Vec::new(),
            operator_calls: Vec::new(),
            operator_pending_calls: 1,
            operator_resources: HashMap::new(),
        }
    }

    pub(crate) fn reset(&mut self) {
        let hub = Arc::clone(&self.hub);
        hub.clear();
        *self = State::new(self.config.clone(), hub);
    }

    /// `n` random base-62 characters.
    pub(crate) fn random_chars(&mut self, n: usize) -> String {
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
    pub(crate) fn id(&mut self, prefix: &str) -> String {
        format!("{prefix}_{}", self.random_chars(24))
    }

    /// Consumes one use of the first queued fault matching `path`.
    pub(crate) fn take_fault(
        &mut self,
        path: &str,
        params: &Value,
        key: Option<&str>,
    ) -> Option<Fault> {
        self.faults.retain(|f| f.count > 0);
        let i = self
            .faults
            .iter()
            .position(|f| f.matches(path, params, key))?;
        self.faults[i].count -= 1;
        let fault = self.faults[i].clone();
        if self.faults[i].count == 0 {
            self.faults.remove(i);
        }
        Some(fault)
    }

    pub(crate) fn snapshot(&self) -> Value {
        let now = now();
        let faults: Vec<Value> = self.faults.iter().map(fault_json).collect();
        json!({
            "granted_tokens": self.tokens.iter().map(|t| t.to_json(now)).collect::<Vec<_>>(),
            "customers": self.customers,
            "payment_methods": self.payment_methods,
            "payment_intents": self.payment_intents,
            "subscriptions": self.subscriptions,
            "refunds": self.refunds,
            "setup_intents": self.setup_intents,
            "meter_events": self.meter_events,
            "credit_grants": self.credit_grants,
            "suspended_resources": self.operator_resources.iter()
                .filter(|(_, r)| r.suspended).map(|(id, _)| id.clone()).collect::<Vec<_>>(),
            "registrations": self.registrations,
            "operator_calls": self.operator_calls,
            "operator_pending_calls": self.operator_pending_calls,
            "faults": faults,
            "requests": self.requests,
        })
    }
}

/// What the operator backend knows about one resource.
#[derive(Debug, Default)]
pub(crate) struct OperatorResource {
    /// The account it was created for (what `link` checks).
    pub(crate) account_id: String,
    pub(crate) creates: u32,
    pub(crate) secret: Option<String>,
    /// What `needs_information` asked for, once submitted.
    pub(crate) region: Option<String>,
    /// Stopped by a `suspend` (the gateway's hard cap), until a `resume`.
    pub(crate) suspended: bool,
}
