//! Test payment tokens from a local Stripe stand-in (development only: the stand-in is
//! unsigned and reached without the orchestrator secret).

use serde_json::json;

use crate::orchestrator::answer::Answer;
use crate::orchestrator::error::Error;
use crate::{unix_now, Call, Provider, Signing};

/// Creates a test payment token at a local Stripe stand-in
/// (`POST <stand_in>/_stand_in/granted_tokens`): up to `max_amount` minor units of `currency`
/// (a lowercase ISO 4217 code), valid one hour. Answers the `spt_...` id.
pub fn test_payment_token(
    stand_in: &str,
    max_amount: u64,
    currency: &str,
) -> Result<String, Error> {
    let body = json!({
        "currency": currency,
        "max_amount": max_amount,
        "expires_at": unix_now() + 3600,
    });
    let reply = Provider::new(stand_in, "").send(
        Call::post_json("/_stand_in/granted_tokens", &body)
            .signing(Signing::Unsigned)
            .api_version(None),
    )?;
    let answer = Answer::from_reply(reply)?;
    match answer.json["id"].as_str() {
        Some(id) if id.starts_with("spt_") => Ok(id.to_string()),
        _ => Err(Error::Local(format!(
            "the stand-in at {stand_in} answered no token id: {}",
            answer.json
        ))),
    }
}
