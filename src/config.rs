//! Configuration from the environment: `[vars]` in wrangler.toml and secrets (`.dev.vars`
//! locally, `wrangler secret put` in production). Every name is documented in the README's
//! configuration reference.
//!
//! Invariant: a missing secret never weakens a check. With no `ORCHESTRATOR_SECRETS`, every
//! signed endpoint refuses every request.

use domain::signature;
use worker::Env;

/// A string binding (var or secret), if set and not empty.
pub fn string(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|s| !s.trim().is_empty())
}

/// Seconds of clock skew accepted on signatures (`SIGNATURE_TOLERANCE_SECONDS`, default 300).
pub fn signature_tolerance(env: &Env) -> i64 {
    string(env, "SIGNATURE_TOLERANCE_SECONDS")
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|&t| t > 0 && t <= 3600)
        .unwrap_or(signature::DEFAULT_TOLERANCE_SECS)
}

/// The orchestrator's signing secrets (`ORCHESTRATOR_SECRETS`, comma-separated during rotation).
pub fn orchestrator_secrets(env: &Env) -> String {
    string(env, "ORCHESTRATOR_SECRETS").unwrap_or_default()
}
