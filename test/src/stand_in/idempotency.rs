//! Idempotency and injected faults, shared by the three APIs: [`run`] wraps every operation.

use serde_json::{json, Map, Value};

use super::http::{Reply, DELAY_HEADER};
use super::state::{State, Stored};

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
    pub(crate) api: Api,
    /// Keys are unique within a scope (Stripe: per API key).
    pub(crate) scope: &'a str,
    /// `None` for reads: no replay, no storage.
    pub(crate) key: Option<&'a str>,
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) params: &'a Value,
}

/// Applies queued faults and idempotency around `perform`. Returns the reply and whether it
/// was replayed from storage.
pub(crate) fn run(
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
