//! OAuth response shapes: the token response (docs/PROTOCOL.md §3.3) and RFC 8414 metadata.

use serde_json::{json, Value};

use crate::account::Issued;

/// The success body of `POST /oauth/token`.
pub fn token_response(access_token: &str, refresh_token: &str, issued: &Issued) -> Value {
    json!({
        "token_type": "bearer",
        "access_token": access_token,
        "refresh_token": refresh_token,
        "expires_in": issued.expires_in,
        "scope": issued.scopes.join(" "),
        "account": {"id": issued.account_id, "payment_credentials": "orchestrator"},
    })
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414) for `issuer` (our base URL).
pub fn metadata(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "stripe_signature"],
        "introspection_endpoint_auth_methods_supported": ["bearer"],
        "revocation_endpoint_auth_methods_supported": ["none", "stripe_signature"],
        "scopes_supported": crate::account_request::SUPPORTED_SCOPES,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_response_shape() {
        let issued = Issued {
            account_id: "acct_x".into(),
            scopes: vec!["resources:read".into(), "resources:write".into()],
            expires_in: 3600,
        };
        assert_eq!(
            token_response("pvat_a", "pvrt_b", &issued),
            json!({"token_type": "bearer", "access_token": "pvat_a", "refresh_token": "pvrt_b",
                   "expires_in": 3600, "scope": "resources:read resources:write",
                   "account": {"id": "acct_x", "payment_credentials": "orchestrator"}})
        );
    }

    #[test]
    fn metadata_names_every_endpoint() {
        let m = metadata("https://p.example.com");
        assert_eq!(m["issuer"], "https://p.example.com");
        assert_eq!(m["token_endpoint"], "https://p.example.com/oauth/token");
        assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    }
}
