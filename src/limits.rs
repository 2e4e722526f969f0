//! Rate limits (our extension): a token bucket per orchestrator in each worker isolate (cheap,
//! approximate across isolates; put Cloudflare's edge rate limiting in front for hard global
//! limits), and two per account inside its Durable Object (exact for that account): its own
//! budget, taken only by calls that proved they belong to it, and one for failed unsigned
//! attempts. Calls that prove nothing are counted per client address (`crate::gate::client`).

use std::cell::RefCell;

use domain::errors::ApiError;
use domain::ratelimit::{Bucket, Limit};
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

/// `ORCHESTRATOR_RATE_LIMIT` requests a minute (default 6000; 0 = unlimited).
pub fn orchestrator_limit(env: &Env) -> Limit {
    limit(env, "ORCHESTRATOR_RATE_LIMIT", 6000)
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

thread_local! {
    static ORCHESTRATOR: RefCell<Option<Bucket>> = const { RefCell::new(None) };
}

/// Takes a token for a signed orchestrator call.
pub fn orchestrator(env: &Env, now_ms: u64) -> Result<(), ApiError> {
    let l = orchestrator_limit(env);
    ORCHESTRATOR.with(|b| {
        let mut b = b.borrow_mut();
        let bucket = b.get_or_insert_with(|| Bucket::full(l, now_ms));
        bucket
            .take(l, now_ms)
            .map_err(|retry_after| ApiError::RateLimited { retry_after })
    })
}
