//! The stand-in's secrets, port and webhook endpoint.

/// Secrets and port of a stand-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The Stripe secret key callers must present as `Authorization: Bearer <key>`.
    pub api_key: String,
    /// The HMAC secret of `Provider-Signature` on operator backend calls.
    pub operator_secret: String,
    /// The registrar's bearer key.
    pub registrar_key: String,
    /// Port on 127.0.0.1; 0 picks any free port.
    pub port: u16,
    /// Where events are POSTed as webhooks (e.g. `http://127.0.0.1:8787/webhooks/stripe`);
    /// `None` records events without delivering them.
    pub webhook_url: Option<String>,
    /// The endpoint's signing secret (`Stripe-Signature`).
    pub webhook_secret: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            api_key: "sk_test_dev_stand_in".into(),
            operator_secret: "op_backend_dev_secret".into(),
            registrar_key: "rk_dev_registrar".into(),
            port: 0,
            webhook_url: None,
            webhook_secret: "whsec_dev_stand_in_webhooks".into(),
        }
    }
}
