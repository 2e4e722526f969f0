//! Stripe's error bodies: `{"error":{type, code?, message, param?}}`.

use serde_json::{json, Map, Value};

use crate::stand_in::http::{Incoming, Reply};
use crate::stand_in::idempotency::Outcome;

/// A Stripe error body with every optional field.
pub(crate) fn stripe_error(
    kind: &str,
    code: Option<&str>,
    message: &str,
    param: Option<&str>,
) -> Map<String, Value> {
    let mut error = Map::new();
    error.insert("type".into(), kind.into());
    if let Some(code) = code {
        error.insert("code".into(), code.into());
    }
    error.insert("message".into(), message.into());
    if let Some(param) = param {
        error.insert("param".into(), param.into());
    }
    error
}

pub(crate) fn invalid(
    status: u16,
    code: Option<&str>,
    message: &str,
    param: Option<&str>,
) -> Reply {
    let error = stripe_error("invalid_request_error", code, message, param);
    Reply::json(status, &json!({ "error": error }))
}

/// A parameter-validation failure: 400, not stored under the idempotency key.
pub(crate) fn reject(code: Option<&str>, message: &str, param: &str) -> Outcome {
    Outcome::Rejected(invalid(400, code, message, Some(param)))
}

/// A stored failure such as `resource_missing`.
pub(crate) fn fail(status: u16, code: &str, message: &str, param: &str) -> Outcome {
    Outcome::Final(invalid(status, Some(code), message, Some(param)))
}

/// `404 Unrecognized request URL`, as Stripe answers unknown routes.
pub(crate) fn unrecognized(incoming: &Incoming) -> Reply {
    invalid(
        404,
        None,
        &format!(
            "Unrecognized request URL ({}: {}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.",
            incoming.method, incoming.path
        ),
        None,
    )
}

pub(crate) fn missing_object(kind: &str, id: &str) -> Outcome {
    fail(
        404,
        "resource_missing",
        &format!("No such {kind}: '{id}'"),
        "id",
    )
}
