//! The operator's own platform backend: `POST /operator/v1/resources`.
//!
//! Body (JSON): `{"action":"create"|"rotate"|"remove","account_id","resource_id","service_id",
//! "project_id","configuration"?}`; `account_id`, `resource_id` and `service_id` are non-empty
//! strings, `project_id` is a string or null, `configuration` an object (absent or null reads
//! as `{}`); other fields are refused. Headers:
//! `Provider-Signature: t=<unix>,v1=<hex HMAC-SHA256(operator secret, "<t>." + raw body)>`
//! (300 s tolerance; 401 `invalid_signature` otherwise) and `Idempotency-Key` (required).
//!
//! - `create`: the first N calls for a resource answer `{"status":"pending","retry_after":1}`,
//!   then `{"status":"complete","access_configuration":{"DATABASE_URL":…}}`, stable for the
//!   resource until it is rotated. `configuration.fail = "<code>"` answers
//!   `{"status":"error","error":{"code","message"}}` instead.
//! - `rotate`: complete with a new secret (404 `resource_not_found` before a create completed).
//! - `remove`: `{"status":"removed"}`; the resource is forgotten.
//!
//! Final answers are replayed for the same key; a pending one is not (the retry is the poll).

use serde_json::{json, Map, Value};

use super::clock::now;
use super::http::{error_reply as error, Handled, Incoming, Reply};
use super::idempotency::{run, Api, Call, Outcome};
use super::state::{OperatorResource, State};

/// Signature timestamps may be this many seconds off.
const TOLERANCE_SECS: i64 = 300;

/// A validated request.
struct Request {
    action: String,
    resource_id: String,
    configuration: Map<String, Value>,
}

fn validate(body: &Value) -> Result<Request, String> {
    let Value::Object(body) = body else {
        return Err("The body must be a JSON object.".into());
    };
    const FIELDS: [&str; 6] = [
        "action",
        "account_id",
        "resource_id",
        "service_id",
        "project_id",
        "configuration",
    ];
    if let Some(unknown) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!("Unknown field {unknown:?}."));
    }
    let action = match body.get("action").and_then(Value::as_str) {
        Some(a @ ("create" | "rotate" | "remove")) => a.to_string(),
        _ => return Err("action must be one of create, rotate, remove.".into()),
    };
    for field in ["account_id", "resource_id", "service_id"] {
        if body
            .get(field)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(format!("{field} must be a non-empty string."));
        }
    }
    match body.get("project_id") {
        Some(Value::String(_) | Value::Null) => {}
        _ => return Err("project_id must be present, a string or null.".into()),
    }
    let configuration = match body.get("configuration") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(c)) => c.clone(),
        Some(_) => return Err("configuration must be an object.".into()),
    };
    if configuration.get("fail").is_some_and(|f| !f.is_string()) {
        return Err("configuration.fail must be a string.".into());
    }
    let resource_id = body
        .get("resource_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Ok(Request {
        action,
        resource_id,
        configuration,
    })
}

pub(crate) fn handle(st: &mut State, incoming: &Incoming) -> Handled {
    let body: Value = serde_json::from_slice(&incoming.body).unwrap_or(Value::Null);
    let key = incoming.idempotency_key();
    let (reply, replayed) = if incoming.method != "POST"
        || incoming.path.trim_end_matches('/') != "/operator/v1/resources"
    {
        (
            error(404, "not_found", "Unknown operator backend route."),
            false,
        )
    } else {
        let secret = st.config.operator_secret.clone();
        let verified = domain::signature::verify(
            incoming.header("provider-signature"),
            &incoming.body,
            &[secret.as_bytes()],
            now(),
            TOLERANCE_SECS,
        );
        match (verified, key) {
            (Err(e), _) => (
                error(
                    401,
                    "invalid_signature",
                    &format!("Provider-Signature refused ({e:?})."),
                ),
                false,
            ),
            (Ok(_), None) => (
                error(
                    400,
                    "idempotency_key_required",
                    "An Idempotency-Key header is required.",
                ),
                false,
            ),
            (Ok(_), Some(key)) => match validate(&body) {
                Err(message) => (error(400, "invalid_request", &message), false),
                Ok(request) => {
                    let call = Call {
                        api: Api::Operator,
                        scope: "operator",
                        key: Some(key),
                        method: "POST",
                        path: &incoming.path,
                        params: &body,
                    };
                    run(st, call, |st| perform(st, &request))
                }
            },
        }
    };
    let result: Value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
    st.operator_calls.push(json!({
        "action": body.get("action"),
        "account_id": body.get("account_id"),
        "resource_id": body.get("resource_id"),
        "service_id": body.get("service_id"),
        "project_id": body.get("project_id"),
        "configuration": body.get("configuration"),
        "idempotency_key": key,
        "status": reply.status,
        "result": result,
        "replayed": replayed,
    }));
    Handled {
        reply,
        params: body,
        replayed,
    }
}

fn complete(resource_id: &str, secret: &str) -> Outcome {
    Outcome::Final(Reply::json(
        200,
        &json!({
            "status": "complete",
            "access_configuration": {
                "DATABASE_URL": format!("postgres://u:{secret}@db.example.test/{resource_id}"),
            },
        }),
    ))
}

fn perform(st: &mut State, request: &Request) -> Outcome {
    let id = request.resource_id.as_str();
    match request.action.as_str() {
        "create" => {
            if let Some(code) = request.configuration.get("fail").and_then(Value::as_str) {
                return Outcome::Final(Reply::json(
                    200,
                    &json!({
                        "status": "error",
                        "error": {
                            "code": code,
                            "message": format!("The operator backend could not create {id}: {code}."),
                        },
                    }),
                ));
            }
            let pending = st.operator_pending_calls;
            let fresh = st.random_chars(32);
            let resource = st.operator_resources.entry(id.to_string()).or_default();
            resource.creates = resource.creates.saturating_add(1);
            if resource.creates <= pending {
                return Outcome::Provisional(Reply::json(
                    200,
                    &json!({"status": "pending", "retry_after": 1}),
                ));
            }
            let secret = resource.secret.get_or_insert(fresh).clone();
            complete(id, &secret)
        }
        "rotate" => {
            let fresh = st.random_chars(32);
            match st.operator_resources.get_mut(id) {
                Some(OperatorResource {
                    secret: Some(secret),
                    ..
                }) => {
                    *secret = fresh.clone();
                    complete(id, &fresh)
                }
                _ => Outcome::Rejected(error(
                    404,
                    "resource_not_found",
                    &format!("{id} has not been created (or is still pending)."),
                )),
            }
        }
        _ => {
            st.operator_resources.remove(id);
            Outcome::Final(Reply::json(200, &json!({"status": "removed"})))
        }
    }
}
