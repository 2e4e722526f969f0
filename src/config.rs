//! Configuration from the environment: `[vars]` in wrangler.toml and secrets (`.dev.vars`
//! locally, `wrangler secret put` in production). Every name is documented in the README's
//! configuration reference.
//!
//! Invariant: a missing secret never weakens a check. With no `ORCHESTRATOR_SECRETS`, every
//! signed endpoint refuses every request; with no `OPERATOR_SECRET`, introspection refuses
//! everyone; with no `OWNER_ASSERTION_SECRET`, no assertion verifies; with no `TOKEN_MAC_KEY`,
//! no token verifies (nothing reaches an account object from a token) and none is minted.

use std::cell::{OnceCell, RefCell};

use domain::account::Policy;
use domain::sealing::{KeyRing, KEYS_SETTING};
use domain::signature;
use serde_json::json;
use worker::Env;

thread_local! {
    /// Bindings read so far in this isolate. They cannot change under it (a new deployment,
    /// var or secret starts new isolates), and each read crosses into JavaScript.
    static READ: RefCell<Vec<(String, Option<String>)>> = const { RefCell::new(Vec::new()) };

    /// The deployment check's answer for this isolate, for the same reason.
    static REFUSAL: OnceCell<Option<String>> = const { OnceCell::new() };
}

/// Why this deployment must not serve (outside development with development settings,
/// `domain::deployment::check`), with what to fix; `None` when it may. Checked once per
/// isolate, and logged then.
pub fn refusal(env: &Env) -> Option<String> {
    REFUSAL.with(|cell| {
        cell.get_or_init(|| {
            let problems = domain::deployment::check(&|name| string(env, name));
            if problems.is_empty() {
                return None;
            }
            let message = domain::deployment::message(&problems);
            let settings: Vec<&str> = problems.iter().map(|p| p.setting.as_str()).collect();
            worker::console_error!(
                "{}",
                json!({"level": "error", "msg": "misconfigured", "settings": settings, "detail": message})
            );
            Some(message)
        })
        .clone()
    })
}

/// A string binding (var or secret), if set and not empty.
pub fn string(env: &Env, name: &str) -> Option<String> {
    let known = READ.with_borrow(|read| {
        read.iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value.clone())
    });
    if let Some(value) = known {
        return value;
    }
    let value = env
        .var(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|s| !s.trim().is_empty());
    READ.with_borrow_mut(|read| read.push((name.to_string(), value.clone())));
    value
}

fn seconds(env: &Env, name: &str, default: i64, max: i64) -> i64 {
    string(env, name)
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|&t| t > 0 && t <= max)
        .unwrap_or(default)
}

/// Seconds of clock skew accepted on signatures (`SIGNATURE_TOLERANCE_SECONDS`, default 300).
pub fn signature_tolerance(env: &Env) -> i64 {
    seconds(
        env,
        "SIGNATURE_TOLERANCE_SECONDS",
        signature::DEFAULT_TOLERANCE_SECS,
        3600,
    )
}

/// The orchestrator's signing secrets (`ORCHESTRATOR_SECRETS`, comma-separated during rotation).
pub fn orchestrator_secrets(env: &Env) -> String {
    string(env, "ORCHESTRATOR_SECRETS").unwrap_or_default()
}

/// True only when `ENVIRONMENT` is exactly `development`.
pub fn is_development(env: &Env) -> bool {
    string(env, "ENVIRONMENT").as_deref() == Some("development")
}

/// Token and code lifetimes (`ACCESS_TOKEN_TTL_SECONDS`, default 3600, at most 365 days) and
/// whether a signed client's refresh needs the signature (`REFRESH_REQUIRES_SIGNATURE`: only
/// the exact value `false` turns it off).
pub fn policy(env: &Env) -> Policy {
    Policy {
        access_ttl: seconds(
            env,
            "ACCESS_TOKEN_TTL_SECONDS",
            3600,
            domain::deployment::MAX_ACCESS_TOKEN_TTL_SECONDS,
        ),
        refresh_requires_signature: string(env, "REFRESH_REQUIRES_SIGNATURE").as_deref()
            != Some("false"),
        ..Policy::default()
    }
}

/// The terms-of-service version recorded with new accounts (`TOS_VERSION`).
pub fn tos_version(env: &Env) -> String {
    string(env, "TOS_VERSION").unwrap_or_else(|| "unversioned".into())
}

/// The key deriving replayable codes and consent ids (`DERIVATION_KEY`), and the API tokens
/// minted before they were random.
pub fn code_key(env: &Env) -> Option<String> {
    string(env, "DERIVATION_KEY")
}

/// The key ring sealing API tokens (`TOKEN_ENCRYPTION_KEYS`); `None`, logged, when unset or
/// invalid: then no API token is minted and no sealed one shown.
pub fn sealing_keys(env: &Env) -> Option<KeyRing> {
    let parsed = string(env, KEYS_SETTING).map(|text| KeyRing::parse(&text));
    match parsed {
        Some(Ok(keys)) => Some(keys),
        Some(Err(e)) => {
            worker::console_error!(
                "{}",
                json!({"level": "error", "msg": "config", "detail": e.to_string()})
            );
            None
        }
        None => {
            worker::console_error!(
                "{}",
                json!({"level": "error", "msg": "config", "detail": format!("{KEYS_SETTING} is not set; no API token can be minted or shown")})
            );
            None
        }
    }
}

/// The keys tagging tokens (`TOKEN_MAC_KEY`, comma-separated during a rotation) and whether
/// untagged tokens of the earlier format are still accepted (`ACCEPT_LEGACY_TOKENS`, exactly
/// `true`; off by default).
pub fn token_keys(env: &Env) -> domain::tokens::MacKeys {
    domain::tokens::MacKeys::new(
        &string(env, "TOKEN_MAC_KEY").unwrap_or_default(),
        string(env, "ACCEPT_LEGACY_TOKENS")
            .as_deref()
            .map(str::trim)
            == Some("true"),
    )
}

/// The key that tags new tokens (the first of `TOKEN_MAC_KEY`).
pub fn token_mac_key(env: &Env) -> Option<Vec<u8>> {
    let key = token_keys(env).current().map(<[u8]>::to_vec);
    if key.is_none() {
        worker::console_error!("TOKEN_MAC_KEY is not set: no token can be minted");
    }
    key
}

/// The public origin of this worker (`PUBLIC_BASE_URL`), else the request's own origin.
pub fn public_base(env: &Env, request_origin: &str) -> String {
    string(env, "PUBLIC_BASE_URL")
        .unwrap_or_else(|| request_origin.to_string())
        .trim_end_matches('/')
        .to_string()
}

/// The monthly spending cap new accounts start with, in cents (`SPENDING_CAP_CENTS`, $100).
pub fn spending_cap(env: &Env) -> u64 {
    string(env, "SPENDING_CAP_CENTS")
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&c| c <= domain::ledger::MAX_CAP)
        .unwrap_or(domain::ledger::DEFAULT_CAP)
}

/// Stripe's webhook endpoint secrets (`STRIPE_WEBHOOK_SECRETS`, comma-separated in rotation).
pub fn webhook_secrets(env: &Env) -> String {
    string(env, "STRIPE_WEBHOOK_SECRETS").unwrap_or_default()
}

/// How long an account's audit records may wait in its outbox so that several go to D1 in one
/// write (`AUDIT_BATCH_MS`, default 1000, at most 60000; `0`: each change writes its records
/// before it is answered). Records other requests read go at once whatever the setting.
pub fn audit_batch_ms(env: &Env) -> i64 {
    string(env, "AUDIT_BATCH_MS")
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|&t| (0..=60_000).contains(&t))
        .unwrap_or(1000)
}

/// How long a plan may stay unpaid before it is suspended (`PAYMENT_GRACE_SECONDS`, 3 days).
pub fn payment_grace(env: &Env) -> i64 {
    seconds(env, "PAYMENT_GRACE_SECONDS", 3 * 86_400, 90 * 86_400)
}
