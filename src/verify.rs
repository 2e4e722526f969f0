//! Who is calling: the orchestrator's (or Stripe's) `Stripe-Signature` over the raw body, and
//! the operator's bearer secret.
//!
//! Below every handler: `entry` checks the orchestrator's signature on the provisioning and
//! resource families before dispatch; `oauth` and `webhooks` check theirs themselves, since a
//! missing or bad signature means something else there.

use domain::errors::ApiError;
use domain::signature;
use worker::Env;

use crate::config;
use crate::http::{self, Incoming};

/// Checks `Stripe-Signature` over the raw body against `secrets` (comma-separated during a
/// rotation), with the configured tolerance.
pub fn signature(
    incoming: &Incoming,
    env: &Env,
    secrets: &str,
) -> Result<(), signature::SignatureError> {
    signature::verify(
        incoming.header("stripe-signature").as_deref(),
        &incoming.body,
        &signature::split_secrets(secrets),
        incoming.now,
        config::signature_tolerance(env),
    )
    .map(|_| ())
}

/// Checks the orchestrator's `Stripe-Signature` over the raw body (docs/PROTOCOL.md §1.1).
pub fn orchestrator(incoming: &Incoming, env: &Env) -> Result<(), ApiError> {
    Ok(signature(
        incoming,
        env,
        &config::orchestrator_secrets(env),
    )?)
}

/// Checks `Authorization: Bearer <OPERATOR_SECRET>` in constant time.
pub fn operator(incoming: &Incoming, env: &Env) -> Result<(), ApiError> {
    if http::bearer_matches(incoming, config::string(env, "OPERATOR_SECRET")) {
        Ok(())
    } else {
        Err(ApiError::Signature(signature::SignatureError::Mismatch))
    }
}
