//! A Stripe client over plain `fetch`: form-encoded bodies, `Idempotency-Key` on every POST and
//! DELETE, the secret key from `STRIPE_SECRET_KEY`, the base URL from `STRIPE_API_BASE`
//! (`https://api.stripe.com` in production; the local stand-in in tests and development).

use domain::stripe_api::{classify, form, StripeFailure};
use serde_json::Value;
use worker::{Env, Method};

use crate::{config, outbound};

pub struct Stripe {
    base: String,
    key: String,
}

impl Stripe {
    /// `None` when `STRIPE_SECRET_KEY` is not configured.
    pub fn from_env(env: &Env) -> Option<Stripe> {
        let key = config::string(env, "STRIPE_SECRET_KEY")?;
        let base = config::string(env, "STRIPE_API_BASE")
            .unwrap_or_else(|| "https://api.stripe.com".into());
        Some(Stripe {
            base: base.trim_end_matches('/').to_string(),
            key,
        })
    }

    /// One call. `Ok` carries the object; `Err` says whether to retry.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, String)],
        idempotency_key: Option<&str>,
    ) -> Result<Value, StripeFailure> {
        let mut headers = vec![("authorization", format!("Bearer {}", self.key))];
        if let Some(k) = idempotency_key {
            headers.push(("idempotency-key", k.to_string()));
        }
        let body =
            (method == Method::Post).then(|| (form(params), "application/x-www-form-urlencoded"));
        let url = format!("{}{path}", self.base);
        match outbound::send(method, &url, &headers, body).await {
            Ok(a) if (200..300).contains(&a.status) => Ok(a.body),
            Ok(a) => Err(classify(a.status, &a.body)),
            Err(message) => Err(StripeFailure::Unavailable { message }),
        }
    }
}
