//! Human-readable output: the catalog, a resource, a quote, the state, errors.

use serde_json::{json, Value};

use crate::orchestrator::{Error, State};
use crate::services;
use crate::ProtocolError;

/// The catalog, one block per service.
pub fn catalog(catalog: &Value) -> String {
    let list = services::list(catalog);
    if list.is_empty() {
        return "the provider offers no services\n".to_string();
    }
    let width = list
        .iter()
        .filter_map(|s| s["id"].as_str())
        .map(str::len)
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for s in list {
        let id = s["id"].as_str().unwrap_or("?");
        out.push_str(&format!(
            "{id:<width$}  {:<10}  {}\n",
            services::kind(s),
            services::pricing_summary(s)
        ));
        let pad = " ".repeat(width + 2);
        if let Some(d) = s["description"].as_str() {
            out.push_str(&format!("{pad}{d}\n"));
        }
        out.push_str(&format!(
            "{pad}configuration: {}\n",
            services::schema_summary(s)
        ));
    }
    out
}

/// True for access configuration names whose values are secrets (shown masked).
pub fn secret_name(key: &str) -> bool {
    let upper = key.to_ascii_uppercase();
    let last = upper.rsplit('_').next().unwrap_or("");
    matches!(
        last,
        "TOKEN" | "SECRET" | "KEY" | "PASSWORD" | "PASS" | "PWD"
    ) || upper.contains("SECRET")
        || upper.contains("PASSWORD")
}

fn masked(value: &str) -> String {
    let shown: String = value.chars().take(5).collect();
    if value.chars().count() > 8 {
        format!("{shown}... (hidden; `appctl env` writes it)")
    } else {
        "(hidden; `appctl env` writes it)".to_string()
    }
}

fn plain(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// `resource res_1 (api_token, project proj_local): complete`.
pub fn resource_header(r: &Value) -> String {
    let mut line = format!(
        "resource {} ({}",
        r["id"].as_str().unwrap_or("?"),
        r["service_id"].as_str().unwrap_or("?")
    );
    if let Some(p) = r["project_id"].as_str() {
        line.push_str(&format!(", project {p}"));
    }
    line.push_str(&format!("): {}\n", r["status"].as_str().unwrap_or("?")));
    line
}

/// A resource: header, then what its status says (secrets masked).
pub fn resource(r: &Value) -> String {
    let mut out = resource_header(r);
    match r["status"].as_str() {
        Some("complete") => {
            if let Some(ac) = r["complete"]["access_configuration"].as_object() {
                let width = ac.keys().map(String::len).max().unwrap_or(0);
                for (k, v) in ac {
                    let v = plain(v);
                    let shown = if secret_name(k) { masked(&v) } else { v };
                    out.push_str(&format!("  {k:<width$}  {shown}\n"));
                }
            }
            if let Some(m) = r["complete"]["message"].as_str() {
                out.push_str(&format!("  note: {m}\n"));
            }
        }
        Some("pending") => {
            if let Some(m) = r["pending"]["message"].as_str() {
                out.push_str(&format!("  pending: {m}\n"));
            }
        }
        Some("needs_information") => {
            if let Some(m) = r["needs_information"]["message"].as_str() {
                out.push_str(&format!("  needs information: {m}\n"));
            }
            out.push_str(&quote(r));
        }
        Some("errored") => {
            out.push_str(&format!(
                "  error: {}: {}\n",
                r["error"]["code"].as_str().unwrap_or("errored"),
                r["error"]["message"].as_str().unwrap_or("")
            ));
        }
        _ => {}
    }
    out
}

/// The candidates of a domain quote, with their exact prices; "" without a quote.
pub fn quote(r: &Value) -> String {
    let q = &r["needs_information"]["quote"];
    let Some(candidates) = q["candidates"].as_array() else {
        return String::new();
    };
    let mut out = format!(
        "  quote (valid until {}):\n",
        q["expires_at"].as_str().unwrap_or("?")
    );
    let width = candidates
        .iter()
        .filter_map(|c| c["domain"].as_str())
        .map(str::len)
        .max()
        .unwrap_or(0);
    for c in candidates {
        let price = match c["amount"].as_u64() {
            Some(a) => domain::ledger::format_amount(a, c["currency"].as_str().unwrap_or("usd")),
            None => "?".into(),
        };
        let availability = if c["available"] == false {
            "taken"
        } else {
            "available"
        };
        out.push_str(&format!(
            "    {:<width$}  {price:>9}  {availability}\n",
            c["domain"].as_str().unwrap_or("?")
        ));
    }
    out
}

/// The state file, without its secrets.
pub fn state(s: &State, path: &str, now: i64) -> String {
    let mut out = format!("state file: {path}\n");
    let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
    out.push_str(&format!("provider:   {}\n", or_none(&s.provider_url)));
    out.push_str(&format!("account:    {}\n", or_none(&s.account_id)));
    let tokens = match (&s.access_token, s.token_expires_at) {
        (None, _) => "none (account-request, then token)".to_string(),
        (Some(_), Some(at)) if at > now => format!(
            "access token valid {} more min (until {})",
            (at - now + 59) / 60,
            domain::time::format_rfc3339(at)
        ),
        (Some(_), Some(at)) => format!(
            "access token expired at {} (refreshed on next use)",
            domain::time::format_rfc3339(at)
        ),
        (Some(_), None) => "access token (expiry unknown)".to_string(),
    };
    let refresh = if s.refresh_token.is_some() {
        "; refresh token kept"
    } else {
        ""
    };
    out.push_str(&format!("tokens:     {tokens}{refresh}\n"));
    if let Some(scope) = &s.scope {
        out.push_str(&format!("scope:      {scope}\n"));
    }
    if let Some(id) = &s.account_request_id {
        let code = if s.last_code.is_some() {
            "a code not yet exchanged (appctl token)"
        } else {
            "no pending code"
        };
        let pkce = if s.pkce_verifier.is_some() {
            ", PKCE verifier kept"
        } else {
            ""
        };
        out.push_str(&format!("request:    {id}: {code}{pkce}\n"));
    }
    if s.resources.is_empty() {
        out.push_str("resources:  none\n");
    } else {
        out.push_str("resources:\n");
        let w_id = s.resources.iter().map(|r| r.id.len()).max().unwrap_or(0);
        let w_svc = s
            .resources
            .iter()
            .map(|r| r.service_id.len())
            .max()
            .unwrap_or(0);
        for r in &s.resources {
            out.push_str(&format!(
                "  {:<w_id$}  {:<w_svc$}  {}  {}\n",
                r.id,
                r.service_id,
                r.project_id.as_deref().unwrap_or("-"),
                r.status
            ));
        }
    }
    out
}

/// The state as `status --json` prints it: secrets replaced by whether they are kept.
pub fn state_json(s: &State) -> Value {
    json!({
        "provider_url": s.provider_url,
        "account_id": s.account_id,
        "access_token": s.access_token.is_some(),
        "refresh_token": s.refresh_token.is_some(),
        "token_expires_at": s.token_expires_at,
        "scope": s.scope,
        "account_request_id": s.account_request_id,
        "last_code": s.last_code.is_some(),
        "pkce_verifier": s.pkce_verifier.is_some(),
        "resources": s.resources,
    })
}

/// `error: <code>: <message>` and `request id: <id>`, plus a hint for some codes.
pub fn protocol_error(e: &ProtocolError) -> String {
    let mut out = format!("error: {}: {}\n", e.code, e.message);
    out.push_str(&format!(
        "request id: {}\n",
        e.request_id.as_deref().unwrap_or("(none)")
    ));
    let hint = match e.code.as_str() {
        "invalid_signature" => Some(
            "the signing secret (--secret, APP_ORCHESTRATOR_SECRET) must be one of the provider's ORCHESTRATOR_SECRETS",
        ),
        "invalid_token" | "invalid_grant" => Some(
            "log in again: appctl account-request --email <e>, then appctl token",
        ),
        "requires_payment_credentials" => {
            Some("pass --payment-token spt_..., or --test-payment against a local provider")
        }
        _ => None,
    };
    if let Some(h) = hint {
        out.push_str(&format!("hint: {h}\n"));
    }
    out
}

/// How an [`Error`] is printed for a human.
pub fn error(e: &Error) -> String {
    match e {
        Error::Protocol(p) => protocol_error(p),
        Error::Transport(t) => format!("error: cannot reach the provider: {t}\n"),
        Error::Local(m) => format!("error: {m}\n"),
    }
}

/// `{"error":{"code","message","status"},"request_id"}` for `--json`.
pub fn error_json(e: &Error) -> Value {
    match e {
        Error::Protocol(p) => json!({
            "error": {"code": p.code, "message": p.message, "status": p.status},
            "request_id": p.request_id,
        }),
        Error::Transport(t) => json!({
            "error": {"code": "transport_error", "message": t.to_string()},
            "request_id": null,
        }),
        Error::Local(m) => json!({
            "error": {"code": "local_error", "message": m},
            "request_id": null,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orchestrator::ResourceRecord;
    use crate::TransportError;

    #[test]
    fn errors_print_code_message_and_request_id() {
        let e = Error::Protocol(ProtocolError {
            status: 409,
            code: "plan_already_active".into(),
            message: "the account already has a plan".into(),
            request_id: Some("req_7".into()),
            body: Value::Null,
        });
        assert_eq!(
            error(&e),
            "error: plan_already_active: the account already has a plan\nrequest id: req_7\n"
        );
        assert_eq!(
            error_json(&e),
            json!({"error": {"code": "plan_already_active", "message": "the account already has a plan", "status": 409}, "request_id": "req_7"})
        );
        let no_id = Error::Protocol(ProtocolError {
            status: 401,
            code: "invalid_signature".into(),
            message: "bad".into(),
            request_id: None,
            body: Value::Null,
        });
        let text = error(&no_id);
        assert!(
            text.contains("request id: (none)\nhint: the signing secret"),
            "{text}"
        );
        let t = Error::Transport(TransportError("GET http://x: refused".into()));
        assert_eq!(
            error(&t),
            "error: cannot reach the provider: GET http://x: refused\n"
        );
        assert_eq!(error_json(&t)["error"]["code"], "transport_error");
        assert_eq!(error(&Error::Local("no code".into())), "error: no code\n");
    }

    #[test]
    fn resources_mask_secrets() {
        let r = json!({"id": "res_1", "service_id": "api_token", "project_id": "p", "status": "complete",
            "complete": {"access_configuration": {"API_TOKEN": "pvak_0123456789", "API_TOKEN_SCOPES": "logs:read", "ACCOUNT_ID": "acct_1"}}});
        let text = resource(&r);
        assert!(
            text.starts_with("resource res_1 (api_token, project p): complete\n"),
            "{text}"
        );
        assert!(text.contains("pvak_... (hidden"), "{text}");
        assert!(!text.contains("0123456789"), "{text}");
        assert!(text.contains("API_TOKEN_SCOPES  logs:read"), "{text}");
        assert!(
            secret_name("DB_PASSWORD")
                && secret_name("STRIPE_SECRET_KEY")
                && secret_name("api_key")
        );
        assert!(!secret_name("DOMAIN") && !secret_name("API_TOKEN_SCOPES"));

        let errored = json!({"id": "res_2", "service_id": "paid", "status": "errored",
            "error": {"code": "payment_declined", "message": "declined"}});
        assert!(resource(&errored).contains("  error: payment_declined: declined\n"));
    }

    #[test]
    fn quotes_show_prices() {
        let r = json!({"id": "res_3", "service_id": "domain", "status": "needs_information",
            "needs_information": {"message": "Pick one.", "quote": {"expires_at": "2030-01-01T00:00:00Z", "candidates": [
                {"domain": "acme.apps.dev", "amount": 1200, "currency": "usd", "available": false},
                {"domain": "acme-app.apps.dev", "amount": 1500, "currency": "usd", "available": true}]}}});
        let text = resource(&r);
        assert!(text.contains("needs information: Pick one."), "{text}");
        assert!(
            text.contains("acme.apps.dev         $12.00  taken"),
            "{text}"
        );
        assert!(
            text.contains("acme-app.apps.dev     $15.00  available"),
            "{text}"
        );
        // The currency given, not dollars.
        let mut eur = r.clone();
        eur["needs_information"]["quote"]["candidates"][1]["currency"] = json!("eur");
        eur["needs_information"]["quote"]["candidates"][0]["currency"] = json!("chf");
        let text = resource(&eur);
        assert!(
            text.contains("acme-app.apps.dev     €15.00  available"),
            "{text}"
        );
        assert!(
            text.contains("acme.apps.dev      12.00 CHF  taken"),
            "{text}"
        );
    }

    #[test]
    fn state_without_secrets() {
        let s = State {
            provider_url: Some("http://127.0.0.1:8787".into()),
            account_id: Some("acct_1".into()),
            access_token: Some("secret-access".into()),
            refresh_token: Some("secret-refresh".into()),
            token_expires_at: Some(1000 + 1800),
            resources: vec![ResourceRecord {
                id: "res_1".into(),
                service_id: "free".into(),
                project_id: Some("proj_local".into()),
                status: "complete".into(),
                name: None,
            }],
            ..State::default()
        };
        let text = state(&s, ".appctl/state.json", 1000);
        assert!(text.contains("access token valid 30 more min"), "{text}");
        assert!(text.contains("res_1  free  proj_local  complete"), "{text}");
        assert!(!text.contains("secret-"), "{text}");
        let j = state_json(&s);
        assert_eq!(j["access_token"], true);
        assert!(!j.to_string().contains("secret-"));
        assert!(state(&s, "x", 5000).contains("expired"));
    }

    #[test]
    fn catalog_lists_services() {
        let c = json!({"data": [{"id": "free", "kind": "plan", "description": "Hobby.", "pricing": {"type": "free"}},
                                {"id": "domain", "kind": "deployable", "pricing": {"type": "paid", "paid": {"type": "freeform", "freeform": "$12/year"}},
                                 "configuration_schema": {"type": "object", "required": ["domain_query"], "properties": {"domain_query": {"type": "string"}}}}]});
        let text = catalog(&c);
        assert!(text.contains("free    plan        free\n        Hobby.\n        configuration: no configuration\n"), "{text}");
        assert!(
            text.contains(
                "domain  deployable  $12/year\n        configuration: domain_query* (string)\n"
            ),
            "{text}"
        );
        assert_eq!(catalog(&json!({})), "the provider offers no services\n");
    }
}
