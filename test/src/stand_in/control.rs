//! Control routes under `/_stand_in/` (JSON, no auth, never logged): what tests in another
//! process call to inspect and steer the stand-in. They mirror the Rust API of `StandIn`.

use serde_json::{json, Map, Value};

use super::fault::{fault_json, Fault};
use super::http::{error_reply, Incoming, Reply};
use super::state::State;
use super::stripe::events::create_event;
use super::stripe::granted_tokens::{create_token, revoke_token, token_json};
use super::stripe::invoices::invoice_object;
use super::stripe::subscriptions::set_subscription_status;

/// Most copies per event a release over HTTP may ask for.
const MAX_HTTP_DUPLICATES: u64 = 100;

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

/// A control body: a JSON object (an empty body counts as `{}`).
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

/// Answers a request under `/_stand_in/` (a trailing slash is ignored); 404 for unknown routes.
pub(crate) fn control(st: &mut State, incoming: &Incoming) -> Reply {
    let path = incoming.path.trim_end_matches('/');
    if let Some(reply) = webhook_control(st, incoming, path) {
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
            Some(id) => revoke_token(st, id)
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
    let id = create_token(
        st,
        &currency.to_ascii_lowercase(),
        max_amount,
        expires_at,
        metadata,
    );
    Ok(Reply::json(200, &token_json(st, &id)))
}

/// `/_stand_in/events`, `/_stand_in/webhooks*`, `/_stand_in/invoices` and
/// `/_stand_in/subscriptions/{id}/status`; `None` for other paths.
fn webhook_control(st: &mut State, incoming: &Incoming, path: &str) -> Option<Reply> {
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
