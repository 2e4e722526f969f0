//! The operator's own platform backend: `POST /operator/v1/resources`.
//!
//! Body (JSON): `{"action":"create"|"link"|"update"|"rotate"|"remove"|"suspend"|"resume","account_id",
//! "resource_id","service_id","project_id","configuration"?,"submitted_information"?,
//! "environment"?,"linked"?}`; `account_id`, `resource_id` and `service_id` are non-empty
//! strings, `project_id` is a string or null, `configuration` and `submitted_information`
//! objects (absent or null read as `{}` / none), `environment` a string, `linked` a boolean;
//! other fields are refused. Headers:
//! `Provider-Signature: t=<unix>,v1=<hex HMAC-SHA256(operator secret, "<t>." + raw body)>`
//! (300 s tolerance; 401 `invalid_signature` otherwise) and `Idempotency-Key` (required).
//!
//! - `create`: the first N calls for a resource answer `{"status":"pending","retry_after":1}`,
//!   then `{"status":"complete","access_configuration":{"DATABASE_URL":…}}`, stable for the
//!   resource until it is rotated. `configuration.fail = "<code>"` answers
//!   `{"status":"error","error":{"code","message"}}` instead.
//!   `configuration.ask = "region"` first answers `{"status":"needs_information","schema":…}`
//!   asking `{"region": "eu"|"us"}`, and completes (with `REGION`) once it is submitted.
//! - `link`: without `submitted_information`, `needs_information` asking `{"resource_id"}`: the
//!   id of a resource this backend created for the same `account_id`; with it, `complete` with
//!   that resource's access configuration, or `{"status":"error"}` (`not_owned`) for a resource
//!   it did not create for this account.
//! - `update`: complete with the same secret (`configuration.fail` answers an error instead);
//!   404 `resource_not_found` before a create completed.
//! - `rotate`: complete with a new secret (404 `resource_not_found` before a create completed).
//! - `suspend` / `resume` (the gateway's hard cap): complete with the same access
//!   configuration, the resource marked suspended or not (`suspended` in the state); 404
//!   `resource_not_found` before a create completed.
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
    account_id: String,
    resource_id: String,
    configuration: Map<String, Value>,
    submitted_information: Option<Map<String, Value>>,
}

fn validate(body: &Value) -> Result<Request, String> {
    let Value::Object(body) = body else {
        return Err("The body must be a JSON object.".into());
    };
    const FIELDS: [&str; 9] = [
        "action",
        "account_id",
        "resource_id",
        "service_id",
        "project_id",
        "configuration",
        "submitted_information",
        "environment",
        "linked",
    ];
    if let Some(unknown) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!("Unknown field {unknown:?}."));
    }
    let action = match body.get("action").and_then(Value::as_str) {
        Some(a @ ("create" | "link" | "update" | "rotate" | "remove" | "suspend" | "resume")) => {
            a.to_string()
        }
        _ => {
            return Err(
                "action must be one of create, link, update, rotate, remove, suspend, resume."
                    .into(),
            )
        }
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
    let submitted_information = match body.get("submitted_information") {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => Some(o.clone()),
        Some(_) => return Err("submitted_information must be an object.".into()),
    };
    if body.get("environment").is_some_and(|e| !e.is_string()) {
        return Err("environment must be a string.".into());
    }
    if body.get("linked").is_some_and(|l| !l.is_boolean()) {
        return Err("linked must be a boolean.".into());
    }
    let text = |field: &str| {
        body.get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Ok(Request {
        action,
        account_id: text("account_id"),
        resource_id: text("resource_id"),
        configuration,
        submitted_information,
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
        "submitted_information": body.get("submitted_information"),
        "environment": body.get("environment"),
        "linked": body.get("linked"),
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

fn complete(resource_id: &str, secret: &str, region: Option<&str>) -> Outcome {
    let mut access = json!({
        "DATABASE_URL": format!("postgres://u:{secret}@db.example.test/{resource_id}"),
    });
    if let Some(r) = region {
        access["REGION"] = json!(r);
    }
    Outcome::Final(Reply::json(
        200,
        &json!({"status": "complete", "access_configuration": access}),
    ))
}

fn needs_information(message: &str, schema: Value) -> Outcome {
    Outcome::Final(Reply::json(
        200,
        &json!({"status": "needs_information", "message": message, "schema": schema}),
    ))
}

fn failed(code: &str, message: String) -> Outcome {
    Outcome::Final(Reply::json(
        200,
        &json!({"status": "error", "error": {"code": code, "message": message}}),
    ))
}

fn perform(st: &mut State, request: &Request) -> Outcome {
    let id = request.resource_id.as_str();
    let submitted = request.submitted_information.as_ref();
    match request.action.as_str() {
        "create" => {
            if let Some(code) = request.configuration.get("fail").and_then(Value::as_str) {
                return failed(
                    code,
                    format!("The operator backend could not create {id}: {code}."),
                );
            }
            let asks_region =
                request.configuration.get("ask").and_then(Value::as_str) == Some("region");
            let region = submitted
                .and_then(|s| s.get("region"))
                .and_then(Value::as_str);
            if asks_region && region.is_none() {
                return needs_information(
                    "Which region should the database live in?",
                    json!({"type": "object", "properties": {"region": {"type": "string", "enum": ["eu", "us"]}},
                           "required": ["region"], "additionalProperties": false}),
                );
            }
            let pending = st.operator_pending_calls;
            let fresh = st.random_chars(32);
            let resource = st.operator_resources.entry(id.to_string()).or_default();
            resource.account_id = request.account_id.clone();
            resource.creates = resource.creates.saturating_add(1);
            if resource.creates <= pending {
                return Outcome::Provisional(Reply::json(
                    200,
                    &json!({"status": "pending", "retry_after": 1}),
                ));
            }
            if let Some(r) = region {
                resource.region = Some(r.to_string());
            }
            let secret = resource.secret.get_or_insert(fresh).clone();
            complete(id, &secret, resource.region.as_deref())
        }
        "link" => {
            let Some(existing) = submitted
                .and_then(|s| s.get("resource_id"))
                .and_then(Value::as_str)
            else {
                return needs_information(
                    "Which existing database? Give its resource id on this platform.",
                    json!({"type": "object", "properties": {"resource_id": {"type": "string", "minLength": 1, "maxLength": 64}},
                           "required": ["resource_id"], "additionalProperties": false}),
                );
            };
            match st.operator_resources.get(existing) {
                Some(OperatorResource {
                    account_id,
                    secret: Some(secret),
                    region,
                    ..
                }) if *account_id == request.account_id => {
                    complete(existing, secret, region.as_deref())
                }
                _ => failed(
                    "not_owned",
                    format!("{existing} is not a database of this account on this platform."),
                ),
            }
        }
        "update" => {
            if let Some(code) = request.configuration.get("fail").and_then(Value::as_str) {
                return failed(
                    code,
                    format!("The operator backend could not update {id}: {code}."),
                );
            }
            match st.operator_resources.get(id) {
                Some(OperatorResource {
                    secret: Some(secret),
                    region,
                    ..
                }) => complete(id, secret, region.as_deref()),
                _ => Outcome::Rejected(error(
                    404,
                    "resource_not_found",
                    &format!("{id} has not been created (or is still pending)."),
                )),
            }
        }
        "suspend" | "resume" => match st.operator_resources.get_mut(id) {
            Some(OperatorResource {
                secret: Some(secret),
                region,
                suspended,
                ..
            }) => {
                *suspended = request.action == "suspend";
                complete(id, secret, region.as_deref())
            }
            _ => Outcome::Rejected(error(
                404,
                "resource_not_found",
                &format!("{id} has not been created (or is still pending)."),
            )),
        },
        "rotate" => {
            let fresh = st.random_chars(32);
            match st.operator_resources.get_mut(id) {
                Some(OperatorResource {
                    secret: Some(secret),
                    region,
                    ..
                }) => {
                    *secret = fresh.clone();
                    complete(id, &fresh, region.as_deref())
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
