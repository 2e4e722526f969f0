//! Injected failures: a [`Fault`] queued for a path prefix answers instead of the operation
//! (or after it, or late). Faults are consumed in queue order, one use per matching request.

use serde_json::{json, Value};

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

    /// Whether a request to `path` with these decoded parameters and idempotency key is one
    /// this fault applies to.
    pub(crate) fn matches(&self, path: &str, params: &Value, key: Option<&str>) -> bool {
        path.starts_with(&self.path_prefix)
            && self.param.as_ref().is_none_or(|(pointer, value)| {
                params.pointer(pointer).and_then(Value::as_str) == Some(value.as_str())
            })
            && self
                .key_prefix
                .as_ref()
                .is_none_or(|p| key.is_some_and(|k| k.starts_with(p.as_str())))
    }
}

/// A queued fault as the control routes show it.
pub(crate) fn fault_json(f: &Fault) -> Value {
    json!({"path_prefix": f.path_prefix, "count": f.count, "status": f.status, "after": f.after,
           "slow_ms": f.slow_ms, "key_prefix": f.key_prefix})
}
