//! The account request the orchestrator sends (docs/PROTOCOL.md §3.1) and what it led to: a
//! code to exchange, or a consent URL for the account's owner.

use serde_json::{json, Value};

use crate::orchestrator::answer::Answer;

/// `orchestrator.stripe.account` when none is given.
pub const DEFAULT_STRIPE_ACCOUNT: &str = "acct_local_cli";
/// Account requests expire this long after they are made (seconds).
pub const ACCOUNT_REQUEST_TTL_SECONDS: i64 = 600;

/// An account request as the orchestrator sends it (docs/PROTOCOL.md §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRequest {
    pub email: String,
    pub name: Option<String>,
    /// `None` lets the provider pick its default scopes.
    pub scopes: Option<Vec<String>>,
    /// `orchestrator.stripe.account`.
    pub stripe_account: String,
    /// Send a PKCE (S256) challenge and keep the verifier for the exchange.
    pub pkce: bool,
}

impl AccountRequest {
    pub fn new(email: &str) -> Self {
        AccountRequest {
            email: email.to_string(),
            name: None,
            scopes: None,
            stripe_account: DEFAULT_STRIPE_ACCOUNT.to_string(),
            pkce: false,
        }
    }

    /// The JSON body, with id `id`, expiring [`ACCOUNT_REQUEST_TTL_SECONDS`] after `now`.
    pub fn body(&self, id: &str, now: i64, code_challenge: Option<&str>) -> Value {
        let mut body = json!({
            "id": id,
            "object": "account_request",
            "email": self.email,
            "client_capabilities": ["browser"],
            "expires_at": domain::time::format_rfc3339(now + ACCOUNT_REQUEST_TTL_SECONDS),
            "configuration": {},
            "orchestrator": {"type": "stripe", "stripe": {"account": self.stripe_account}},
        });
        if let Some(name) = &self.name {
            body["name"] = json!(name);
        }
        if let Some(scopes) = &self.scopes {
            body["scopes"] = json!(scopes);
        }
        if let Some(challenge) = code_challenge {
            body["code_challenge"] = json!(challenge);
            body["code_challenge_method"] = json!("S256");
        }
        body
    }
}

/// What an account request led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `type: oauth`: a code to exchange.
    Code(String),
    /// `type: requires_auth`: the owner must consent at this URL.
    Consent(String),
}

/// An account request's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountOutcome {
    /// The request id (`acctreq_...`), which the consent callback echoes as `state`.
    pub id: String,
    pub outcome: Outcome,
    pub answer: Answer,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_request_body() {
        let mut r = AccountRequest::new("dev@example.com");
        let body = r.body("acctreq_1", 1_700_000_000, None);
        assert_eq!(body["orchestrator"]["stripe"]["account"], "acct_local_cli");
        assert_eq!(
            body["expires_at"],
            domain::time::format_rfc3339(1_700_000_600)
        );
        assert!(body.get("scopes").is_none() && body.get("name").is_none());
        assert!(body.get("code_challenge").is_none());
        r.name = Some("Dev".into());
        r.scopes = Some(vec!["resources:read".into()]);
        let body = r.body("acctreq_1", 0, Some("chal"));
        assert_eq!(body["name"], "Dev");
        assert_eq!(body["scopes"], json!(["resources:read"]));
        assert_eq!(
            (
                body["code_challenge"].as_str(),
                body["code_challenge_method"].as_str()
            ),
            (Some("chal"), Some("S256"))
        );
    }
}
