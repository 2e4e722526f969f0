//! Refusing to serve outside development with development settings, or with token settings
//! it could only ignore.
//!
//! [`check`] takes the settings (a lookup by name) and answers what is wrong with them for a
//! deployment whose `ENVIRONMENT` is not `development`: a secret whose value is published in
//! `.dev.vars.example`, an `http://` Stripe or registrar base, no `PUBLIC_BASE_URL`, a key ring
//! that does not parse. The worker checks once per isolate and, if anything is wrong, answers
//! health with `503 misconfigured` naming each setting and every other route with
//! `503 temporarily_unavailable`.
//!
//! The published values are `.dev.vars.example` itself, compiled in, so the list cannot drift:
//! every name in it is a secret unless it is one of [`NOT_SECRETS`], so a secret added there is
//! checked without touching this file.

use crate::sealing::{KeyRing, KEYS_SETTING};

/// `.dev.vars.example`, whose values are public.
pub const DEV_VARS_EXAMPLE: &str = include_str!("../../.dev.vars.example");

/// Names in `.dev.vars.example` that are not secrets: the environment itself and addresses
/// (checked by their own rules below, or harmless).
pub const NOT_SECRETS: &[&str] = &[
    "ENVIRONMENT",
    "ORCHESTRATOR_CALLBACK_URL",
    "STRIPE_API_BASE",
    "REGISTRAR_API_BASE",
];

/// The longest access token lifetime `ACCESS_TOKEN_TTL_SECONDS` may set: 365 days.
pub const MAX_ACCESS_TOKEN_TTL_SECONDS: i64 = 365 * 86_400;

/// Stripe's API when `STRIPE_API_BASE` is not set (wrangler.toml's default too).
pub const DEFAULT_STRIPE_API_BASE: &str = "https://api.stripe.com";

/// One setting that keeps the deployment from serving, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub setting: String,
    pub fix: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.setting, self.fix)
    }
}

/// `NAME=value` lines of `.dev.vars.example` (comments and blank lines skipped).
pub fn dev_vars() -> impl Iterator<Item = (&'static str, &'static str)> {
    DEV_VARS_EXAMPLE
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
}

/// The secrets to check: every name of `.dev.vars.example` but [`NOT_SECRETS`].
pub fn secret_names() -> Vec<&'static str> {
    dev_vars()
        .map(|(k, _)| k)
        .filter(|k| !NOT_SECRETS.contains(k))
        .collect()
}

/// Comma-separated lists (secrets in rotation) compare element by element.
fn elements(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|e| !e.is_empty())
}

fn published(value: &str) -> bool {
    let published: Vec<&str> = dev_vars()
        .filter(|(k, _)| !NOT_SECRETS.contains(k))
        .flat_map(|(_, v)| elements(v))
        .collect();
    elements(value).any(|e| published.contains(&e))
}

fn https_base(setting: &str, value: &str) -> Option<Problem> {
    (!value.trim().starts_with("https://")).then(|| Problem {
        setting: setting.to_string(),
        fix: format!(
            "is {} rather than an https:// URL (a development stand-in?); set the real https:// API base in wrangler.toml [vars]",
            if value.trim().starts_with("http://") {
                "http://"
            } else {
                "not https://"
            }
        ),
    })
}

/// What is wrong with these settings for a deployment whose `ENVIRONMENT` is not
/// `development`; empty when it may serve. `get` answers a setting's value, `None` when unset
/// or empty.
pub fn check(get: &dyn Fn(&str) -> Option<String>) -> Vec<Problem> {
    if get("ENVIRONMENT").as_deref() == Some("development") {
        return Vec::new();
    }
    let mut problems = Vec::new();
    for name in secret_names() {
        if get(name).is_some_and(|v| published(&v)) {
            problems.push(Problem {
                setting: name.to_string(),
                fix: format!(
                    "has a value published in .dev.vars.example; set a new random one with `wrangler secret put {name}`"
                ),
            });
        }
    }
    let stripe = get("STRIPE_API_BASE").unwrap_or_else(|| DEFAULT_STRIPE_API_BASE.into());
    problems.extend(https_base("STRIPE_API_BASE", &stripe));
    if let Some(registrar) = get("REGISTRAR_API_BASE") {
        problems.extend(https_base("REGISTRAR_API_BASE", &registrar));
    }
    if get("PUBLIC_BASE_URL").is_none() {
        problems.push(Problem {
            setting: "PUBLIC_BASE_URL".into(),
            fix: "is not set; set it to this worker's public https:// origin in wrangler.toml [vars] (links handed out must not follow the request's Host)".into(),
        });
    }
    // A lifetime or switch the worker cannot read would silently be its default instead (a
    // year asked for, an hour given; a `False` taken as the strict `true`): refuse and say so.
    if let Some(ttl) = get("ACCESS_TOKEN_TTL_SECONDS") {
        let ok = ttl
            .trim()
            .parse::<i64>()
            .is_ok_and(|t| (1..=MAX_ACCESS_TOKEN_TTL_SECONDS).contains(&t));
        if !ok {
            problems.push(Problem {
                setting: "ACCESS_TOKEN_TTL_SECONDS".into(),
                fix: format!("is {ttl:?}, not a number of seconds from 1 to {MAX_ACCESS_TOKEN_TTL_SECONDS} (365 days); fix it in wrangler.toml [vars] or remove it for the 1-hour default"),
            });
        }
    }
    if let Some(v) = get("REFRESH_REQUIRES_SIGNATURE") {
        if !matches!(v.trim(), "true" | "false") {
            problems.push(Problem {
                setting: "REFRESH_REQUIRES_SIGNATURE".into(),
                fix: format!("is {v:?}; set it to true or false in wrangler.toml [vars]"),
            });
        }
    }
    // A shard count it cannot read would put accounts' audit trails in the wrong databases.
    if let Err(e) = crate::audit_shards::parse(get("AUDIT_SHARDS").as_deref()) {
        problems.push(Problem {
            setting: "AUDIT_SHARDS".into(),
            fix: format!("{e} in wrangler.toml [vars]"),
        });
    }
    if let Some(Err(e)) = get(KEYS_SETTING).map(|v| KeyRing::parse(&v)) {
        problems.push(Problem {
            setting: KEYS_SETTING.into(),
            fix: format!("{e}; set it with `wrangler secret put {KEYS_SETTING}`"),
        });
    }
    problems
}

/// The message of the health endpoint's `503 misconfigured`: every problem, in order.
pub fn message(problems: &[Problem]) -> String {
    let list: Vec<String> = problems.iter().map(Problem::to_string).collect();
    format!(
        "this deployment refuses to serve with development settings: {}",
        list.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const KEYS: &str = "k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

    fn good() -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            ("ENVIRONMENT", "production".to_string()),
            ("ORCHESTRATOR_SECRETS", "whsec_live_1".to_string()),
            ("DERIVATION_KEY", "a-real-random-key".to_string()),
            ("OPERATOR_SECRET", "op_live".to_string()),
            ("STRIPE_API_BASE", "https://api.stripe.com".to_string()),
            ("PUBLIC_BASE_URL", "https://provider.example".to_string()),
            (KEYS_SETTING, KEYS.to_string()),
        ])
    }

    fn run(settings: &BTreeMap<&'static str, String>) -> Vec<String> {
        check(&|name| settings.get(name).cloned())
            .into_iter()
            .map(|p| p.setting)
            .collect()
    }

    #[test]
    fn the_secret_list_comes_from_the_example_file() {
        let names = secret_names();
        for name in [
            "ORCHESTRATOR_SECRETS",
            "DERIVATION_KEY",
            "OPERATOR_SECRET",
            "OWNER_ASSERTION_SECRET",
            "STRIPE_SECRET_KEY",
            "REGISTRAR_API_KEY",
            "OPERATOR_BACKEND_SECRET",
            "STRIPE_WEBHOOK_SECRETS",
            KEYS_SETTING,
        ] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        for name in NOT_SECRETS {
            assert!(!names.contains(name));
        }
        // Every name the example file sets is known to this module one way or the other.
        assert_eq!(names.len() + NOT_SECRETS.len(), dev_vars().count());
    }

    #[test]
    fn a_correct_production_configuration_serves() {
        assert_eq!(run(&good()), Vec::<String>::new());
        // Unset optional settings are fine: Stripe's default base, no registrar.
        let mut s = good();
        s.remove("STRIPE_API_BASE");
        assert_eq!(run(&s), Vec::<String>::new());
    }

    #[test]
    fn development_is_never_refused() {
        let settings: BTreeMap<&'static str, String> =
            dev_vars().map(|(k, v)| (k, v.to_string())).collect();
        assert_eq!(settings["ENVIRONMENT"], "development");
        assert_eq!(run(&settings), Vec::<String>::new());
    }

    #[test]
    fn each_development_setting_is_named() {
        // Every published secret, alone or inside a rotation list, under its own name.
        for (name, value) in dev_vars().filter(|(k, _)| !NOT_SECRETS.contains(k)) {
            let mut s = good();
            s.insert(name, value.to_string());
            assert_eq!(run(&s), vec![name.to_string()], "{name}");
            let fresh = if name == KEYS_SETTING {
                KEYS
            } else {
                "fresh_value_1"
            };
            s.insert(name, format!("{fresh}, {value}"));
            assert_eq!(run(&s), vec![name.to_string()], "{name} in a list");
        }
        // A published value under another secret's name is published all the same.
        let mut s = good();
        s.insert(
            "OPERATOR_SECRET",
            "whsec_dev_orchestrator_0000000000000000".into(),
        );
        assert_eq!(run(&s), vec!["OPERATOR_SECRET"]);

        let mut s = good();
        s.insert("STRIPE_API_BASE", "http://127.0.0.1:12111".into());
        s.insert(
            "REGISTRAR_API_BASE",
            "http://127.0.0.1:12111/registrar".into(),
        );
        s.remove("PUBLIC_BASE_URL");
        s.insert(KEYS_SETTING, "k1:short".into());
        assert_eq!(
            run(&s),
            vec![
                "STRIPE_API_BASE",
                "REGISTRAR_API_BASE",
                "PUBLIC_BASE_URL",
                KEYS_SETTING
            ]
        );
        let problems = check(&|name| s.get(name).cloned());
        let text = message(&problems);
        assert!(text.contains("STRIPE_API_BASE: is http://"), "{text}");
        assert!(text.contains("PUBLIC_BASE_URL: is not set"), "{text}");
        assert!(!text.contains("k1:short"), "never echo a key: {text}");

        // No ENVIRONMENT at all is production (wrangler.toml's default).
        let mut s = good();
        s.remove("ENVIRONMENT");
        s.insert(
            "DERIVATION_KEY",
            "dev_code_derivation_key_0000000000000000".into(),
        );
        assert_eq!(run(&s), vec!["DERIVATION_KEY"]);
    }

    #[test]
    fn the_message_names_the_setting_and_the_fix() {
        let mut s = good();
        s.insert(
            "ORCHESTRATOR_SECRETS",
            "whsec_dev_orchestrator_0000000000000000".into(),
        );
        let problems = check(&|name| s.get(name).cloned());
        assert_eq!(
            message(&problems),
            "this deployment refuses to serve with development settings: ORCHESTRATOR_SECRETS: has a value published in .dev.vars.example; set a new random one with `wrangler secret put ORCHESTRATOR_SECRETS`"
        );
    }

    #[test]
    fn token_settings_it_cannot_read_are_refused_not_ignored() {
        for (name, value) in [
            ("ACCESS_TOKEN_TTL_SECONDS", "0"),
            ("ACCESS_TOKEN_TTL_SECONDS", "31536001"),
            ("ACCESS_TOKEN_TTL_SECONDS", "1h"),
            ("REFRESH_REQUIRES_SIGNATURE", "False"),
            ("REFRESH_REQUIRES_SIGNATURE", "no"),
            ("AUDIT_SHARDS", "0"),
            ("AUDIT_SHARDS", "two"),
        ] {
            let mut s = good();
            s.insert(name, value.to_string());
            assert_eq!(run(&s), vec![name.to_string()], "{name}={value}");
        }
        let mut s = good();
        s.insert("ACCESS_TOKEN_TTL_SECONDS", "31536000".into());
        s.insert("REFRESH_REQUIRES_SIGNATURE", "false".into());
        s.insert("AUDIT_SHARDS", "2".into());
        assert_eq!(run(&s), Vec::<String>::new());
    }
}
