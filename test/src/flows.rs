//! The orchestrator's happy paths against any running worker, shared by the black-box cases,
//! the load test and the benchmark. Errors are strings naming the call and the answer.

use app_client::{Provider, Reply};
use serde_json::{json, Value};

/// An account request body as the orchestrator sends it, expiring in 10 minutes.
pub fn account_request(id: &str, email: &str) -> Value {
    let expires = domain::time::format_rfc3339(app_client::unix_now() + 600);
    json!({
        "id": id, "object": "account_request", "email": email, "name": "Dev",
        "scopes": ["resources:read", "resources:write"], "client_capabilities": ["browser"],
        "confirmation_secret": "cs_test", "expires_at": expires,
        "configuration": {},
        "orchestrator": {"type": "stripe", "stripe": {"organisation": "org_test", "account": "acct_stripe_test"}}
    })
}

/// Tokens from a token response.
#[derive(Clone, Debug)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub account: String,
}

/// The tokens of a `200` token response.
pub fn tokens(reply: &Reply) -> Result<Tokens, String> {
    let body = reply.json();
    let field = |v: &Value| v.as_str().map(str::to_string);
    match (
        reply.status,
        field(&body["access_token"]),
        field(&body["refresh_token"]),
        field(&body["account"]["id"]),
    ) {
        (200, Some(access), Some(refresh), Some(account)) => Ok(Tokens {
            access,
            refresh,
            account,
        }),
        _ => Err(format!(
            "token endpoint answered {}: {}",
            reply.status,
            reply.text()
        )),
    }
}

/// Creates a new account for `email` (request id `request_id`) and exchanges its code.
pub fn new_account(p: &Provider, request_id: &str, email: &str) -> Result<Tokens, String> {
    let reply = p
        .account_request(&account_request(request_id, email))
        .map_err(|e| e.to_string())?;
    let code = reply.json()["oauth"]["code"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| {
            format!(
                "account request answered {}: {}",
                reply.status,
                reply.text()
            )
        })?;
    tokens(
        &p.exchange_code(&code, None, true)
            .map_err(|e| e.to_string())?,
    )
}

/// Creates a resource and expects it `complete` at once (free services); returns its id.
pub fn create_complete(p: &Provider, access: &str, body: &Value) -> Result<String, String> {
    let reply = p.create_resource(access, body).map_err(|e| e.to_string())?;
    let answer = reply.json();
    match (
        reply.status,
        answer["status"].as_str(),
        answer["id"].as_str(),
    ) {
        (200 | 201, Some("complete"), Some(id)) => Ok(id.to_string()),
        _ => Err(format!(
            "create resource answered {}: {}",
            reply.status,
            reply.text()
        )),
    }
}
