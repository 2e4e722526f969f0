//! What every command shares: the parsed line, the settings it resolves (flag, else
//! environment variable, else default), the provider and the state-file session, and the
//! three output channels (`say`: human stdout, `note`: stderr, `emit`: the provider's JSON
//! with `--json`). Invariant: with `--json`, stdout carries JSON only.

use std::io::Write;
use std::path::PathBuf;

use crate::cli::args::Parsed;
use crate::cli::fail::Fail;
use crate::orchestrator::answer::Answer;
use crate::orchestrator::session::Orchestrator;
use crate::orchestrator::state::State;
use crate::Provider;

pub const DEFAULT_URL: &str = "http://127.0.0.1:8787";
/// The public development secret of `.dev.vars.example`.
pub const DEV_SECRET: &str = "whsec_dev_orchestrator_0000000000000000";
pub const DEFAULT_STATE: &str = ".appctl/state.json";
pub const DEFAULT_STAND_IN: &str = "http://127.0.0.1:12111";
pub const DEFAULT_CALLBACK: &str = "127.0.0.1:8788";
pub const DEFAULT_PROJECT: &str = "proj_local";
/// Default `--max` of test payment tokens, in cents.
pub const DEFAULT_TEST_MAX: u64 = 5000;

/// True when `url`'s host is `localhost` or a loopback address.
pub fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.rsplit_once(':').map_or(host_port, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// One `appctl` run: the parsed line, the environment and the output streams.
pub(super) struct Cli<'a> {
    pub(super) p: Parsed,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
    pub(super) out: &'a mut dyn Write,
    pub(super) err: &'a mut dyn Write,
    pub(super) json: bool,
}

impl Cli<'_> {
    // -- settings --------------------------------------------------------------------------

    pub(super) fn var(&self, name: &str) -> Option<String> {
        (self.env)(name).filter(|v| !v.trim().is_empty())
    }

    pub(super) fn setting(&self, flag: &str, var: &str) -> Option<String> {
        self.p
            .value(flag)
            .map(str::to_string)
            .or_else(|| self.var(var))
    }

    pub(super) fn state_path(&self) -> PathBuf {
        PathBuf::from(
            self.setting("state", "APP_CLI_STATE")
                .unwrap_or_else(|| DEFAULT_STATE.into()),
        )
    }

    pub(super) fn stand_in(&self) -> String {
        self.setting("stand-in", "APP_STAND_IN_URL")
            .unwrap_or_else(|| DEFAULT_STAND_IN.into())
    }

    /// The provider: `--url`, else `APP_PROVIDER_URL`, else the state's, else the default;
    /// signed with `--secret`, else `APP_ORCHESTRATOR_SECRET`, else the dev secret (with a
    /// warning off loopback).
    pub(super) fn provider(&mut self, state_url: Option<&str>) -> Result<Provider, Fail> {
        let url = self
            .setting("url", "APP_PROVIDER_URL")
            .or_else(|| state_url.map(str::to_string))
            .unwrap_or_else(|| DEFAULT_URL.into());
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Fail::Usage(format!(
                "--url must be an http:// or https:// URL, got {url:?}"
            )));
        }
        let secret = match self.setting("secret", "APP_ORCHESTRATOR_SECRET") {
            Some(s) => s,
            None => {
                if !is_loopback_url(&url) {
                    self.note(&format!(
                        "warning: signing with the public development secret against {url}; set --secret or APP_ORCHESTRATOR_SECRET"
                    ));
                }
                DEV_SECRET.to_string()
            }
        };
        Ok(Provider::new(&url, &secret))
    }

    pub(super) fn orchestrator(&mut self) -> Result<Orchestrator, Fail> {
        let path = self.state_path();
        let state = State::load(&path)?;
        let provider = self.provider(state.provider_url.as_deref())?;
        Ok(Orchestrator::open(provider, &path)?)
    }

    pub(super) fn timeout(&self, default: u64) -> Result<u64, Fail> {
        self.number("timeout", default)
    }

    /// `--currency` of a test payment token: an ISO 4217 code (any case), sent lowercase as
    /// Stripe writes it; `usd` by default.
    pub(super) fn currency(&self) -> Result<String, Fail> {
        match self.p.value("currency") {
            None => Ok("usd".into()),
            Some(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_alphabetic()) => {
                Ok(c.to_ascii_lowercase())
            }
            Some(c) => Err(Fail::Usage(format!(
                "--currency must be a three-letter ISO 4217 code like usd or eur, got {c:?}"
            ))),
        }
    }

    pub(super) fn number(&self, flag: &str, default: u64) -> Result<u64, Fail> {
        match self.p.value(flag) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| Fail::Usage(format!("--{flag} must be a whole number, got {v:?}"))),
        }
    }

    // -- output ----------------------------------------------------------------------------

    /// Human output (stdout; nothing with --json).
    pub(super) fn say(&mut self, text: &str) {
        if !self.json {
            let _ = self.out.write_all(text.as_bytes());
            if !text.ends_with('\n') {
                let _ = self.out.write_all(b"\n");
            }
        }
    }

    /// Progress and warnings (stderr).
    pub(super) fn note(&mut self, text: &str) {
        let _ = writeln!(self.err, "{}", text.trim_end());
    }

    /// The provider's answer, as is (stdout, --json only).
    pub(super) fn emit(&mut self, answer: &Answer) {
        if self.json {
            let _ = writeln!(self.out, "{}", answer.text.trim());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls() {
        for url in [
            "http://127.0.0.1:8787",
            "http://localhost:8787/x",
            "http://LOCALHOST",
            "http://[::1]:8787",
            "https://user@127.0.0.2/",
        ] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in [
            "https://provider.example.com",
            "http://10.0.0.1:8787",
            "http://127.0.0.1.example.com",
            "http://[2001:db8::1]:80",
        ] {
            assert!(!is_loopback_url(url), "{url}");
        }
    }
}
