//! The domain registrar: JSON API under `/registrar/v1`, `Authorization: Bearer <registrar key>`.
//!
//! | Route | Operation |
//! |---|---|
//! | `GET /registrar/v1/search?query=<label>` | `<label>.com`, `.dev`, `.io` with availability and yearly price |
//! | `POST /registrar/v1/registrations` | register one for a year (`Idempotency-Key` required) |
//! | `GET /registrar/v1/registrations/{id}` | read a registration |
//! | `DELETE /registrar/v1/registrations/{id}` | release it |
//!
//! Errors are `{"error":{"code","message"}}`. Labels are lowercased, then must be 1 to 63
//! characters of `a-z`, `0-9` and `-`, not starting or ending with `-`.

use serde_json::{json, Map, Value};

use super::clock::now;
use super::form;
use super::http::{error_reply as error, Handled, Incoming, Reply};
use super::idempotency::{run, Api, Call, Outcome};
use super::state::State;

/// Top-level domains offered, with the yearly price in cents (USD).
const TLDS: [(&str, u64); 3] = [("com", 1299), ("dev", 1599), ("io", 3999)];
const YEAR_SECS: i64 = 365 * 86_400;

/// A valid, lowercased label, or `None`.
fn label(text: &str) -> Option<String> {
    let label = text.trim().to_ascii_lowercase();
    let valid = !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-');
    valid.then_some(label)
}

fn price_of(domain: &str) -> Option<u64> {
    let (name, tld) = domain.split_once('.')?;
    let price = TLDS.iter().find(|(t, _)| *t == tld)?.1;
    (label(name).as_deref() == Some(name)).then_some(price)
}

fn taken(st: &State, domain: &str) -> bool {
    st.registrations
        .iter()
        .any(|r| r["domain"] == domain && r["status"] == "active")
}

pub(crate) fn handle(st: &mut State, incoming: &Incoming) -> Handled {
    let logged = if incoming.method == "GET" {
        form::parse(incoming.query.as_bytes()).unwrap_or(Value::Null)
    } else {
        serde_json::from_slice(&incoming.body).unwrap_or(Value::Null)
    };
    let done = |reply: Reply| Handled {
        reply,
        params: logged.clone(),
        replayed: false,
    };
    if incoming.bearer() != Some(st.config.registrar_key.as_str()) {
        return done(error(
            401,
            "unauthorized",
            "A valid registrar key is required (Authorization: Bearer <key>).",
        ));
    }
    let Some(rest) = incoming.path.strip_prefix("/registrar/v1/") else {
        return done(error(404, "not_found", "Unknown registrar route."));
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let key = incoming.idempotency_key();
    let scope = format!("registrar\u{0}{}", st.config.registrar_key);
    let (reply, replayed) = match (incoming.method.as_str(), segments.as_slice()) {
        ("GET", ["search"]) => {
            let query = form::parse(incoming.query.as_bytes())
                .ok()
                .and_then(|q| q.get("query").and_then(Value::as_str).map(str::to_string));
            let call = Call {
                api: Api::Registrar,
                scope: &scope,
                key: None,
                method: "GET",
                path: &incoming.path,
                params: &logged,
            };
            run(st, call, |st| search(st, query.as_deref()))
        }
        ("POST", ["registrations"]) => {
            if incoming.media_type() != "application/json" {
                return done(error(
                    400,
                    "invalid_request",
                    "The body must be application/json.",
                ));
            }
            let Some(key) = key else {
                return done(error(
                    400,
                    "idempotency_key_required",
                    "An Idempotency-Key header is required.",
                ));
            };
            let body = match serde_json::from_slice::<Value>(&incoming.body) {
                Ok(Value::Object(body)) => body,
                Ok(_) => {
                    return done(error(
                        400,
                        "invalid_request",
                        "The body must be a JSON object.",
                    ))
                }
                Err(e) => {
                    return done(error(
                        400,
                        "invalid_request",
                        &format!("The body is not JSON: {e}"),
                    ))
                }
            };
            let call = Call {
                api: Api::Registrar,
                scope: &scope,
                key: Some(key),
                method: "POST",
                path: &incoming.path,
                params: &logged,
            };
            run(st, call, |st| register(st, &body, key))
        }
        ("GET", ["registrations", id]) => {
            let call = Call {
                api: Api::Registrar,
                scope: &scope,
                key: None,
                method: "GET",
                path: &incoming.path,
                params: &logged,
            };
            run(st, call, |st| {
                match st.registrations.iter().find(|r| r["id"] == *id) {
                    Some(r) => Outcome::Final(Reply::json(200, &public(r))),
                    None => {
                        Outcome::Final(error(404, "not_found", &format!("No registration {id}.")))
                    }
                }
            })
        }
        ("DELETE", ["registrations", id]) => {
            let call = Call {
                api: Api::Registrar,
                scope: &scope,
                key,
                method: "DELETE",
                path: &incoming.path,
                params: &Value::Null,
            };
            run(st, call, |st| release(st, id))
        }
        _ => return done(error(404, "not_found", "Unknown registrar route.")),
    };
    Handled {
        reply,
        params: logged,
        replayed,
    }
}

fn search(st: &mut State, query: Option<&str>) -> Outcome {
    let Some(label) = query.and_then(label) else {
        return Outcome::Rejected(error(
            400,
            "invalid_query",
            "query must be one domain label: 1 to 63 letters, digits or hyphens, not starting or ending with a hyphen.",
        ));
    };
    let candidates: Vec<Value> = TLDS
        .iter()
        .map(|(tld, amount)| {
            let domain = format!("{label}.{tld}");
            json!({
                "domain": domain,
                "available": !taken(st, &domain),
                "price": {"amount": amount, "currency": "usd"},
            })
        })
        .collect();
    Outcome::Final(Reply::json(200, &json!({ "candidates": candidates })))
}

/// The fields a registration shows over the API.
fn public(r: &Value) -> Value {
    json!({
        "id": r["id"],
        "domain": r["domain"],
        "expires_at": r["expires_at"],
        "status": r["status"],
    })
}

fn register(st: &mut State, body: &Map<String, Value>, key: &str) -> Outcome {
    let bad = |code: &str, message: &str| Outcome::Rejected(error(400, code, message));
    if let Some(unknown) = body
        .keys()
        .find(|k| !["domain", "years", "contact_email"].contains(&k.as_str()))
    {
        return bad("invalid_request", &format!("Unknown field {unknown:?}."));
    }
    let Some(domain) = body.get("domain").and_then(Value::as_str) else {
        return bad("invalid_domain", "domain is required and must be a string.");
    };
    let Some(price) = price_of(domain) else {
        return bad(
            "invalid_domain",
            &format!("{domain:?} is not a lowercase <label>.com, .dev or .io name."),
        );
    };
    if body.get("years").and_then(Value::as_u64) != Some(1) {
        return bad("invalid_years", "years is required and must be 1.");
    }
    let email = body
        .get("contact_email")
        .and_then(Value::as_str)
        .unwrap_or("");
    let email_ok = email.split_once('@').is_some_and(|(local, host)| {
        !local.is_empty() && host.contains('.') && !host.contains('@')
    }) && !email.chars().any(char::is_whitespace);
    if !email_ok {
        return bad(
            "invalid_contact_email",
            "contact_email must be an email address.",
        );
    }
    if taken(st, domain) {
        return Outcome::Final(error(
            409,
            "domain_unavailable",
            &format!("{domain} is not available."),
        ));
    }
    let now = now();
    let record = json!({
        "id": st.id("reg"),
        "domain": domain,
        "years": 1,
        "contact_email": email,
        "price": {"amount": price, "currency": "usd"},
        "created_at": now,
        "expires_at": now + YEAR_SECS,
        "status": "active",
        "released_at": null,
        "idempotency_key": key,
    });
    let shown = public(&record);
    st.registrations.push(record);
    Outcome::Final(Reply::json(201, &shown))
}

fn release(st: &mut State, id: &str) -> Outcome {
    let Some(record) = st.registrations.iter_mut().find(|r| r["id"] == id) else {
        return Outcome::Final(error(404, "not_found", &format!("No registration {id}.")));
    };
    if record["status"] == "active" {
        record["status"] = json!("released");
        record["released_at"] = json!(now());
    }
    Outcome::Final(Reply::json(200, &public(record)))
}
