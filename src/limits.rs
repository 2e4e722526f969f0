//! Rate limits (our extension): the orchestrator's signed calls are counted by Cloudflare's Rate
//! Limiting binding `ORCHESTRATOR_LIMITER` (wrangler.toml: `simple.limit` calls per `period`,
//! per Cloudflare location, so approximate), and each account has two exact limits inside its
//! Durable Object: its own budget, taken only by calls that proved they belong to it, and one
//! for failed unsigned attempts. Calls that prove nothing are counted per client address
//! (`crate::gate::client`).

use std::sync::atomic::{AtomicBool, Ordering};

use domain::errors::ApiError;
use domain::ratelimit::Limit;
use worker::Env;

use crate::config;

fn limit(env: &Env, name: &str, default: u32) -> Limit {
    let per_minute = config::string(env, name)
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(default);
    Limit {
        per_minute,
        burst: (per_minute / 6).max(10),
    }
}

/// `ACCOUNT_RATE_LIMIT` requests a minute per account (default 600; 0 = unlimited).
pub fn account_limit(env: &Env) -> Limit {
    limit(env, "ACCOUNT_RATE_LIMIT", 600)
}

/// `ACCOUNT_FAILURE_RATE_LIMIT` failed unsigned token calls a minute per account (default 60;
/// 0 = unlimited).
pub fn failure_limit(env: &Env) -> Limit {
    limit(env, "ACCOUNT_FAILURE_RATE_LIMIT", 60)
}

/// The binding counting the orchestrator's signed calls.
const ORCHESTRATOR_LIMITER: &str = "ORCHESTRATOR_LIMITER";
/// `Retry-After` for the orchestrator over its limit: the binding's window (`period` in
/// wrangler.toml) is 60 s, and it does not say when the window ends.
pub const ORCHESTRATOR_RETRY_AFTER: u64 = 60;
/// The binding's key: the orchestrator the signature proves. `ORCHESTRATOR_SECRETS` are one
/// orchestrator's (several only during a rotation), so every validly signed call is its.
const ORCHESTRATOR_KEY: &str = "orchestrator";

/// Counts one signed orchestrator call (after its signature verified); `RateLimited` over the
/// limit. A missing binding refuses (a configuration error must not lift the limit); a failing
/// call of a present binding lets the request through and logs, as [`crate::gate::client`]
/// does: the binding is approximate by design and the exact per-account limits still hold.
pub async fn orchestrator(env: &Env) -> Result<(), ApiError> {
    warn_retired_setting(env);
    take(
        env,
        ORCHESTRATOR_LIMITER,
        ORCHESTRATOR_KEY.to_string(),
        ORCHESTRATOR_RETRY_AFTER,
    )
    .await
}

/// Takes one call for `key` from the Rate Limiting binding `binding`: `RateLimited` (with
/// `retry_after`) over its limit. A missing binding refuses: a configuration error must not
/// lift a limit. A failing call of a present binding lets the request through and logs: the
/// bindings are approximate by design, and the exact protections (the token's tag, the
/// accounts' own limits) do not depend on them.
pub async fn take(env: &Env, binding: &str, key: String, retry_after: u64) -> Result<(), ApiError> {
    let limiter = env.rate_limiter(binding).map_err(|e| {
        worker::console_error!("{binding} binding: {e}");
        ApiError::Unavailable("rate limiter".into())
    })?;
    match limiter.limit(key).await {
        Ok(outcome) if outcome.success => Ok(()),
        Ok(_) => Err(ApiError::RateLimited { retry_after }),
        Err(e) => {
            worker::console_error!("{binding}: {e}");
            Ok(())
        }
    }
}

/// `ORCHESTRATOR_RATE_LIMIT` is no longer read (the limit is the binding's): said once per
/// isolate, so a deployment that still sets it learns where the limit went.
fn warn_retired_setting(env: &Env) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if WARNED.load(Ordering::Relaxed) {
        return;
    }
    WARNED.store(true, Ordering::Relaxed);
    if config::string(env, "ORCHESTRATOR_RATE_LIMIT").is_some() {
        worker::console_warn!(
            "{}",
            serde_json::json!({"level": "warn",
            "msg": "ORCHESTRATOR_RATE_LIMIT is no longer read: the orchestrator's limit is simple.limit of the ORCHESTRATOR_LIMITER binding in wrangler.toml"})
        );
    }
}
