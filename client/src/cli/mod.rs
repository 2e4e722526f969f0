//! `appctl`, the orchestrator's command line: parses the arguments, calls the
//! [`Orchestrator`](crate::orchestrator::Orchestrator), prints the answers.
//!
//! Output: human text on stdout, progress and warnings on stderr; with `--json`, stdout gets
//! exactly the provider's JSON answer (the last one of a multi-step command), or
//! `{"error":{...},"request_id":...}`. Exit status: 0 done, 1 usage/transport/local error,
//! 2 the provider answered an error.

pub mod args;
pub mod render;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::callback::{self, Decision};
use crate::orchestrator::{
    self, AccountRequest, Answer, Error, Orchestrator, Outcome, State, DEFAULT_STRIPE_ACCOUNT,
};
use crate::{services, unix_now, ProtocolError, Provider};
use args::{CommandSpec, Parsed};

pub const DEFAULT_URL: &str = "http://127.0.0.1:8787";
/// The public development secret of `.dev.vars.example`.
pub const DEV_SECRET: &str = "whsec_dev_orchestrator_0000000000000000";
pub const DEFAULT_STATE: &str = ".appctl/state.json";
pub const DEFAULT_STAND_IN: &str = "http://127.0.0.1:12111";
pub const DEFAULT_CALLBACK: &str = "127.0.0.1:8788";
pub const DEFAULT_PROJECT: &str = "proj_local";
/// Default `--max` of test payment tokens, in cents.
pub const DEFAULT_TEST_MAX: u64 = 5000;
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Runs `appctl` with the process's arguments, environment and standard streams; answers the
/// exit status.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env = |name: &str| std::env::var(name).ok();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    run(&args, &env, &mut stdout.lock(), &mut stderr.lock())
}

/// Runs `appctl` with `args` (without the program name), reading variables through `env` and
/// writing to `out` and `err`; answers the exit status.
pub fn run(
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let json = args.iter().any(|a| a == "--json");
    let parsed = match args::parse(args) {
        Ok(p) => p,
        Err(usage) => return report(out, err, json, Fail::Usage(usage.message), usage.command),
    };
    let command = parsed.command;
    if parsed.help || command.is_some_and(|c| c.name == "help") {
        // `appctl help [cmd]`, `appctl [cmd] --help`.
        let topic = match command.filter(|c| c.name != "help") {
            Some(c) => Some(c.name),
            None => parsed.positionals.first().map(String::as_str),
        };
        let text = match topic {
            None => args::help(),
            Some(name) => match args::command(name) {
                Some(c) => args::usage(c),
                None => {
                    let fail = Fail::Usage(format!("unknown command {name:?}"));
                    return report(out, err, json, fail, None);
                }
            },
        };
        let _ = out.write_all(text.as_bytes());
        return 0;
    }
    let mut cli = Cli {
        json: parsed.has("json"),
        p: parsed,
        env,
        out,
        err,
    };
    let result = cli.dispatch();
    let Cli { out, err, json, .. } = cli;
    match result {
        Ok(()) => 0,
        Err(fail) => report(out, err, json, fail, command),
    }
}

/// Why a command stopped.
enum Fail {
    /// The command line is wrong: message, then the command's usage.
    Usage(String),
    /// A call failed, or the session could not go on.
    Error(Error),
    /// Refused here, before anything was sent (a paid service without --confirm-paid).
    Refused(String),
    /// The resource ended `errored`: its answer.
    Errored(Answer),
    /// The resource was still `pending` after the timeout: its answer.
    StillPending(Answer, u64),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Error(e)
    }
}

impl From<ProtocolError> for Fail {
    fn from(e: ProtocolError) -> Self {
        Fail::Error(Error::Protocol(e))
    }
}

fn report(
    out: &mut dyn Write,
    err: &mut dyn Write,
    json: bool,
    fail: Fail,
    command: Option<&CommandSpec>,
) -> i32 {
    let (human, machine, code) = match fail {
        Fail::Usage(message) => {
            let usage = match command {
                Some(c) => args::usage(c),
                None => "usage: appctl [global flags] <command> [arguments] (appctl help)\n".into(),
            };
            (
                format!("error: {message}\n{usage}"),
                json!({"error": {"code": "usage", "message": message}, "request_id": null})
                    .to_string(),
                1,
            )
        }
        Fail::Error(e) => {
            let code = if matches!(e, Error::Protocol(_)) {
                2
            } else {
                1
            };
            (render::error(&e), render::error_json(&e).to_string(), code)
        }
        Fail::Refused(message) => (
            format!("error: {message}\n"),
            json!({"error": {"code": "confirmation_required", "message": message}, "request_id": null})
                .to_string(),
            1,
        ),
        Fail::Errored(answer) => {
            let r = &answer.json;
            let e = ProtocolError {
                status: answer.status,
                code: r["error"]["code"].as_str().unwrap_or("errored").to_string(),
                message: r["error"]["message"]
                    .as_str()
                    .unwrap_or("the resource failed")
                    .to_string(),
                request_id: answer.request_id.clone(),
                body: Value::Null,
            };
            (
                format!(
                    "{}{}",
                    render::resource_header(r),
                    render::protocol_error(&e)
                ),
                answer.text.trim().to_string(),
                2,
            )
        }
        Fail::StillPending(answer, timeout) => {
            let id = answer.json["id"].as_str().unwrap_or("<id>").to_string();
            (
                format!(
                    "{}error: still pending after {timeout} s; look again with `appctl get {id}`\n",
                    render::resource(&answer.json)
                ),
                answer.text.trim().to_string(),
                1,
            )
        }
    };
    let _ = err.write_all(human.as_bytes());
    if json {
        let _ = writeln!(out, "{machine}");
    }
    code
}

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

struct Cli<'a> {
    p: Parsed,
    env: &'a dyn Fn(&str) -> Option<String>,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    json: bool,
}

impl Cli<'_> {
    fn dispatch(&mut self) -> Result<(), Fail> {
        let Some(command) = self.p.command else {
            return Err(Fail::Usage("no command given".into()));
        };
        match command.name {
            "health" => self.health(),
            "catalog" => self.catalog(),
            "account-request" => self.account_request(),
            "token" => self.token(),
            "refresh" => self.refresh(),
            "add" => self.add(),
            "get" => self.get(),
            "update" => self.update(),
            "rotate" => self.rotate(),
            "remove" => self.remove(),
            "deep-link" => self.deep_link(),
            "env" => self.env_file(),
            "status" => self.status(),
            "payment-token" => self.payment_token_command(),
            "simulate" => self.simulate(),
            "audit" => self.audit(),
            other => Err(Fail::Usage(format!("unknown command {other:?}"))),
        }
    }

    // -- settings --------------------------------------------------------------------------

    fn var(&self, name: &str) -> Option<String> {
        (self.env)(name).filter(|v| !v.trim().is_empty())
    }

    fn setting(&self, flag: &str, var: &str) -> Option<String> {
        self.p
            .value(flag)
            .map(str::to_string)
            .or_else(|| self.var(var))
    }

    fn state_path(&self) -> PathBuf {
        PathBuf::from(
            self.setting("state", "APP_CLI_STATE")
                .unwrap_or_else(|| DEFAULT_STATE.into()),
        )
    }

    fn stand_in(&self) -> String {
        self.setting("stand-in", "APP_STAND_IN_URL")
            .unwrap_or_else(|| DEFAULT_STAND_IN.into())
    }

    /// The provider: `--url`, else `APP_PROVIDER_URL`, else the state's, else the default;
    /// signed with `--secret`, else `APP_ORCHESTRATOR_SECRET`, else the dev secret (with a
    /// warning off loopback).
    fn provider(&mut self, state_url: Option<&str>) -> Result<Provider, Fail> {
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

    fn orchestrator(&mut self) -> Result<Orchestrator, Fail> {
        let path = self.state_path();
        let state = State::load(&path)?;
        let provider = self.provider(state.provider_url.as_deref())?;
        Ok(Orchestrator::open(provider, &path)?)
    }

    fn timeout(&self, default: u64) -> Result<u64, Fail> {
        self.number("timeout", default)
    }

    /// `--currency` of a test payment token: an ISO 4217 code (any case), sent lowercase as
    /// Stripe writes it; `usd` by default.
    fn currency(&self) -> Result<String, Fail> {
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

    fn number(&self, flag: &str, default: u64) -> Result<u64, Fail> {
        match self.p.value(flag) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| Fail::Usage(format!("--{flag} must be a whole number, got {v:?}"))),
        }
    }

    // -- output ----------------------------------------------------------------------------

    /// Human output (stdout; nothing with --json).
    fn say(&mut self, text: &str) {
        if !self.json {
            let _ = self.out.write_all(text.as_bytes());
            if !text.ends_with('\n') {
                let _ = self.out.write_all(b"\n");
            }
        }
    }

    /// Progress and warnings (stderr).
    fn note(&mut self, text: &str) {
        let _ = writeln!(self.err, "{}", text.trim_end());
    }

    /// The provider's answer, as is (stdout, --json only).
    fn emit(&mut self, answer: &Answer) {
        if self.json {
            let _ = writeln!(self.out, "{}", answer.text.trim());
        }
    }

    // -- discovery -------------------------------------------------------------------------

    /// The provider for calls that need no session (the state file only gives the URL).
    fn session_free(&mut self) -> Result<Orchestrator, Fail> {
        let state_url = State::load(&self.state_path())
            .ok()
            .and_then(|s| s.provider_url);
        Ok(Orchestrator::new(
            self.provider(state_url.as_deref())?,
            State::default(),
        ))
    }

    fn health(&mut self) -> Result<(), Fail> {
        let orch = self.session_free()?;
        let provider = orch.provider().clone();
        let answer = orch.health()?;
        self.emit(&answer);
        let versions: Vec<String> = answer.json["supported_versions"]
            .as_array()
            .map(|v| {
                v.iter()
                    .map(|x| x.as_str().unwrap_or("?").to_string())
                    .collect()
            })
            .unwrap_or_default();
        self.say(&format!(
            "{}: {} (supported versions: {})",
            provider.base(),
            answer.json["status"].as_str().unwrap_or("?"),
            versions.join(", ")
        ));
        Ok(())
    }

    fn catalog(&mut self) -> Result<(), Fail> {
        let answer = self.session_free()?.services()?;
        self.emit(&answer);
        self.say(&render::catalog(&answer.json));
        Ok(())
    }

    // -- accounts and tokens ---------------------------------------------------------------

    fn account_request(&mut self) -> Result<(), Fail> {
        let Some(email) = self.p.value("email").map(str::to_string) else {
            return Err(Fail::Usage("account-request needs --email <e>".into()));
        };
        let mut request = AccountRequest::new(&email);
        request.name = self.p.value("name").map(str::to_string);
        request.scopes = self.p.value("scopes").map(args::parse_scopes);
        request.stripe_account = self
            .setting("stripe-account", "APP_STRIPE_ACCOUNT")
            .unwrap_or_else(|| DEFAULT_STRIPE_ACCOUNT.into());
        request.pkce = self.p.has("pkce");
        let wait = self.p.has("wait");
        let timeout = self.timeout(600)?;
        let callback_addr = self
            .p
            .value("callback")
            .unwrap_or(DEFAULT_CALLBACK)
            .to_string();
        let mut orch = self.orchestrator()?;
        if let Some(previous) = orch.state().provider_url.clone() {
            if previous != orch.provider().base() {
                self.note(&format!(
                    "note: the state file knew {previous}; it now follows {} (its old tokens are dropped)",
                    orch.provider().base()
                ));
            }
        }
        // Bound before anything is sent, so a busy port fails with no side effect.
        let listener = if wait {
            Some(callback::Listener::bind(&callback_addr).map_err(|e| {
                Fail::Error(Error::Local(format!(
                    "cannot listen on {callback_addr} for the callback: {e}"
                )))
            })?)
        } else {
            None
        };
        let outcome = orch.request_account(&request)?;
        match &outcome.outcome {
            Outcome::Code(code) => {
                self.say(&format!(
                    "account request {}: new account for {email}\ncode: {code} (single use, about 5 minutes)",
                    outcome.id
                ));
                if request.pkce {
                    self.say("PKCE: the verifier is kept in the state file for `appctl token`");
                }
                if !wait {
                    self.emit(&outcome.answer);
                    self.say("next: appctl token");
                    return Ok(());
                }
            }
            Outcome::Consent(url) => {
                self.say(&format!(
                    "account request {}: {email} already has an account; its owner must approve in a browser:\n  {url}",
                    outcome.id
                ));
                let Some(listener) = listener else {
                    self.emit(&outcome.answer);
                    self.say("then: appctl token --code <the code the callback receives> (or re-run with --wait)");
                    return Ok(());
                };
                let shown = listener
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or(callback_addr);
                self.note(&format!(
                    "waiting up to {timeout} s for the browser on http://{shown}{} ...",
                    callback::PATHS[0]
                ));
                match listener.wait(&outcome.id, Duration::from_secs(timeout)) {
                    Ok(Decision::Approved { code }) => {
                        self.note("the owner approved; exchanging the code");
                        orch.set_code(&code)?;
                    }
                    Ok(Decision::Denied { error, description }) => {
                        return Err(Fail::Error(Error::Protocol(ProtocolError {
                            status: 0,
                            message: description.unwrap_or_else(|| {
                                "the owner did not approve the account request; nothing was linked".into()
                            }),
                            code: error,
                            request_id: None,
                            body: Value::Null,
                        })))
                    }
                    Err(e) => {
                        return Err(Fail::Error(Error::Local(format!(
                            "{e}; once approved, run: appctl token --code <code>"
                        ))))
                    }
                }
            }
        }
        let answer = orch.exchange_code(None)?;
        self.logged_in(&answer, "logged in");
        Ok(())
    }

    fn logged_in(&mut self, answer: &Answer, what: &str) {
        self.emit(answer);
        let t = &answer.json;
        let mut line = format!(
            "{what}: account {}",
            t["account"]["id"].as_str().unwrap_or("?")
        );
        if let Some(scope) = t["scope"].as_str() {
            line.push_str(&format!(", scope {scope}"));
        }
        if let Some(s) = t["expires_in"].as_i64() {
            line.push_str(&format!(
                "; access token valid {s} s (until {})",
                domain::time::format_rfc3339(unix_now() + s)
            ));
        }
        self.say(&line);
    }

    fn token(&mut self) -> Result<(), Fail> {
        let code = self.p.value("code").map(str::to_string);
        let mut orch = self.orchestrator()?;
        let answer = orch.exchange_code(code.as_deref())?;
        self.logged_in(&answer, "logged in");
        Ok(())
    }

    fn refresh(&mut self) -> Result<(), Fail> {
        let mut orch = self.orchestrator()?;
        let answer = orch.refresh()?;
        self.logged_in(&answer, "refreshed");
        Ok(())
    }

    // -- resources -------------------------------------------------------------------------

    /// `--payment-token`, or with `--test-payment` a fresh token from the stand-in.
    fn payment_token(&mut self, provider_url: &str) -> Result<Option<String>, Fail> {
        let given = self.p.value("payment-token").map(str::to_string);
        if !self.p.has("test-payment") {
            return Ok(given);
        }
        if given.is_some() {
            return Err(Fail::Usage(
                "--payment-token and --test-payment exclude each other".into(),
            ));
        }
        if !is_loopback_url(provider_url) {
            return Err(Fail::Usage(format!(
                "--test-payment only works against a local provider, not {provider_url}; pass --payment-token spt_..."
            )));
        }
        let max = self.number("max", DEFAULT_TEST_MAX)?;
        let currency = self.currency()?;
        let token = orchestrator::test_payment_token(&self.stand_in(), max, &currency)?;
        self.note(&format!(
            "test payment token {token} (up to {})",
            domain::ledger::format_amount(max, &currency)
        ));
        Ok(Some(token))
    }

    /// Refuses a paid service unless --confirm-paid agrees to its price.
    fn check_paid(
        &mut self,
        service_id: &str,
        catalog: &Value,
        plan: Option<&str>,
        verb: &str,
    ) -> Result<(), Fail> {
        let Some(service) = services::find(catalog, service_id) else {
            self.note(&format!(
                "warning: {service_id} is not in the provider's catalog; sending anyway"
            ));
            return Ok(());
        };
        let Some(price) = services::charge(service, plan) else {
            return Ok(());
        };
        if !self.p.has("confirm-paid") {
            return Err(Fail::Refused(format!(
                "{service_id} is a paid service: {price}. Nothing was sent. To {verb} it and agree to this charge, re-run with --confirm-paid"
            )));
        }
        self.note(&format!(
            "{service_id} is a paid service: {price} (agreed with --confirm-paid)"
        ));
        Ok(())
    }

    fn settle(
        &mut self,
        orch: &mut Orchestrator,
        answer: Answer,
        timeout: u64,
    ) -> Result<Answer, Fail> {
        let mut last = String::new();
        let err = &mut self.err;
        let answer =
            orch.wait_while_pending(answer, POLL_INTERVAL, Duration::from_secs(timeout), |a| {
                let message = a.json["pending"]["message"]
                    .as_str()
                    .unwrap_or("in progress")
                    .to_string();
                if message != last {
                    let _ = writeln!(
                        err,
                        "pending: {message} (polling every second, up to {timeout} s)"
                    );
                    last = message;
                }
            })?;
        if answer.resource_status() == "pending" {
            return Err(Fail::StillPending(answer, timeout));
        }
        Ok(answer)
    }

    /// Prints the final resource; an `errored` one fails.
    fn finish(&mut self, answer: Answer) -> Result<(), Fail> {
        if answer.resource_status() == "errored" {
            return Err(Fail::Errored(answer));
        }
        self.emit(&answer);
        self.say(&render::resource(&answer.json));
        Ok(())
    }

    fn add(&mut self) -> Result<(), Fail> {
        let service_id = self.p.positionals[0].clone();
        let project = self
            .p
            .value("project")
            .unwrap_or(DEFAULT_PROJECT)
            .to_string();
        let config = args::parse_config(&self.p.values("config")).map_err(Fail::Usage)?;
        let timeout = self.timeout(60)?;
        let wanted_domain = self.p.value("domain").map(str::to_string);
        let mut orch = self.orchestrator()?;
        orch.check_provider()?;
        let catalog = orch.services()?.json;
        let plan = orch.state().current_plan(&catalog);
        // Humans stay in control: without --confirm-paid no payment token is ever sent, so the
        // provider cannot charge. A paid plan is then refused by the provider
        // (requires_payment_credentials); a domain still answers its free quote.
        let agreed = self.p.has("confirm-paid");
        if agreed {
            self.check_paid(&service_id, &catalog, plan.as_deref(), "add")?;
        }
        let price = services::find(&catalog, &service_id)
            .and_then(|s| services::charge(s, plan.as_deref()));
        let base = orch.provider().base().to_string();
        let token = if agreed {
            self.payment_token(&base)?
        } else {
            None
        };
        let body = crate::create_resource_body(
            &service_id,
            &project,
            (!config.is_empty()).then_some(&config),
            token.as_deref(),
        );
        let answer = match orch.create_resource(&body) {
            Err(Error::Protocol(e)) if !agreed && e.code == "requires_payment_credentials" => {
                return Err(Fail::Refused(format!(
                    "{service_id} is a paid service: {}. Nothing was charged. To add it and agree to this charge, re-run with --confirm-paid (and --payment-token or --test-payment)",
                    price.unwrap_or_else(|| "see the catalog".into())
                )));
            }
            other => other?,
        };
        let mut answer = self.settle(&mut orch, answer, timeout)?;
        let quoted = answer.resource_status() == "needs_information"
            && answer.json["needs_information"]["quote"]["candidates"].is_array();
        if quoted {
            if !self.p.has("confirm-paid") {
                self.finish(answer)?;
                self.note("nothing bought: re-run with --confirm-paid [--domain <name>] to buy a candidate at its quoted price");
                return Ok(());
            }
            self.note(render::quote(&answer.json).trim_end());
            let (name, amount, currency) =
                choose_candidate(&answer.json, wanted_domain.as_deref())?;
            self.note(&format!(
                "confirming {name} at {}",
                domain::ledger::format_amount(amount, &currency)
            ));
            let id = answer.json["id"].as_str().unwrap_or_default().to_string();
            let confirmed = orch.confirm(&id, &name, amount, token.as_deref())?;
            answer = self.settle(&mut orch, confirmed, timeout)?;
        } else if wanted_domain.is_some() {
            self.note("warning: --domain is ignored: the resource has no quote");
        }
        self.finish(answer)
    }

    fn target(&self, orch: &Orchestrator) -> Result<String, Fail> {
        Ok(orch
            .state()
            .resolve(&self.p.positionals[0], self.p.value("project"))?)
    }

    fn get(&mut self) -> Result<(), Fail> {
        let mut orch = self.orchestrator()?;
        let id = self.target(&orch)?;
        let answer = orch.get_resource(&id)?;
        self.emit(&answer);
        self.say(&render::resource(&answer.json));
        if answer.resource_status() == "needs_information" {
            self.note("buy a candidate with: appctl add <service_id> --config ... --confirm-paid --domain <name>");
        }
        Ok(())
    }

    fn update(&mut self) -> Result<(), Fail> {
        let new_service = self.p.positionals[1].clone();
        let timeout = self.timeout(60)?;
        let mut orch = self.orchestrator()?;
        let id = self.target(&orch)?;
        orch.check_provider()?;
        let catalog = orch.services()?.json;
        let plan = orch.state().current_plan(&catalog);
        self.check_paid(&new_service, &catalog, plan.as_deref(), "move to")?;
        let base = orch.provider().base().to_string();
        let token = self.payment_token(&base)?;
        let answer = orch.update_service(&id, &new_service, token.as_deref())?;
        let answer = self.settle(&mut orch, answer, timeout)?;
        self.finish(answer)
    }

    fn rotate(&mut self) -> Result<(), Fail> {
        let mut orch = self.orchestrator()?;
        let id = self.target(&orch)?;
        let answer = orch.rotate_credentials(&id)?;
        self.finish(answer)?;
        self.say("the old credentials no longer work: run `appctl env` to write the new ones");
        Ok(())
    }

    fn remove(&mut self) -> Result<(), Fail> {
        let mut orch = self.orchestrator()?;
        let id = self.target(&orch)?;
        let answer = orch.remove_resource(&id)?;
        self.emit(&answer);
        self.say(&format!(
            "removed {}",
            answer.json["id"].as_str().unwrap_or(&id)
        ));
        Ok(())
    }

    fn deep_link(&mut self) -> Result<(), Fail> {
        let mut orch = self.orchestrator()?;
        let answer = orch.deep_link()?;
        self.emit(&answer);
        let url = answer.json["url"].as_str().unwrap_or("").to_string();
        self.say(&url);
        if let Some(at) = answer.json["expires_at"].as_str() {
            self.note(&format!("single use, valid until {at}"));
        }
        Ok(())
    }

    fn env_file(&mut self) -> Result<(), Fail> {
        let file = PathBuf::from(self.p.value("file").unwrap_or(".env"));
        let mut orch = self.orchestrator()?;
        let records = orch.state().resources.clone();
        let mut vars: Vec<(String, String)> = Vec::new();
        let mut origin: Vec<String> = Vec::new();
        let mut sources = Vec::new();
        for record in &records {
            let answer = match orch.get_resource(&record.id) {
                Ok(a) => a,
                Err(Error::Protocol(e)) if e.code == "resource_not_found" => {
                    self.note(&format!(
                        "warning: {} is gone from the provider; forgotten",
                        record.id
                    ));
                    orch.state_mut().forget_resource(&record.id);
                    orch.save()?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let status = answer.resource_status().to_string();
            let Some(ac) = answer.json["complete"]["access_configuration"]
                .as_object()
                .filter(|_| status == "complete")
            else {
                self.note(&format!(
                    "skipping {} ({}): {status}",
                    record.id, record.service_id
                ));
                continue;
            };
            sources.push(record.id.clone());
            for (key, value) in ac {
                let value = value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_string);
                if !crate::dotenv::valid_key(key) {
                    self.note(&format!(
                        "warning: skipping {key:?} of {}: not a variable name",
                        record.id
                    ));
                    continue;
                }
                match vars.iter().position(|(k, _)| k == key) {
                    Some(i) if vars[i].1 != value => self.note(&format!(
                        "warning: {key} of {} differs from {}'s; kept the first",
                        record.id, origin[i]
                    )),
                    Some(_) => {}
                    None => {
                        vars.push((key.clone(), value));
                        origin.push(record.id.clone());
                    }
                }
            }
        }
        let keys: Vec<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
        if self.json {
            let _ = writeln!(
                self.out,
                "{}",
                json!({"file": file.display().to_string(), "keys": keys, "resources": sources})
            );
        }
        if vars.is_empty() {
            self.say("no complete resource: nothing written");
            return Ok(());
        }
        crate::dotenv::write_file(&file, &vars)
            .map_err(|e| Error::Local(format!("writing {}: {e}", file.display())))?;
        let text = format!(
            "wrote {} keys to {}: {}",
            keys.len(),
            file.display(),
            keys.join(", ")
        );
        self.say(&text);
        Ok(())
    }

    fn status(&mut self) -> Result<(), Fail> {
        let path = self.state_path();
        let exists = path.exists();
        let state = State::load(&path)?;
        if self.json {
            let _ = writeln!(self.out, "{}", render::state_json(&state));
            return Ok(());
        }
        if !exists {
            self.say(&format!(
                "state file {} does not exist yet: nothing known (start with appctl account-request)",
                path.display()
            ));
            return Ok(());
        }
        self.say(&render::state(
            &state,
            &path.display().to_string(),
            unix_now(),
        ));
        Ok(())
    }

    fn payment_token_command(&mut self) -> Result<(), Fail> {
        let max = self.number("max", DEFAULT_TEST_MAX)?;
        let currency = self.currency()?;
        let stand_in = self.stand_in();
        let token = orchestrator::test_payment_token(&stand_in, max, &currency)?;
        if self.json {
            let _ = writeln!(
                self.out,
                "{}",
                json!({"id": token, "max_amount": max, "currency": currency})
            );
        }
        self.say(&token);
        Ok(())
    }
}

impl Cli<'_> {
    /// `simulate payment-failed|payment-recovered`: Stripe's side of a renewal, through the
    /// local stand-in, which signs and delivers the webhook.
    fn simulate(&mut self) -> Result<(), Fail> {
        let (kind, paid) = match self.p.positionals[0].as_str() {
            "payment-failed" => ("invoice.payment_failed", false),
            "payment-recovered" => ("invoice.paid", true),
            other => {
                return Err(Fail::Usage(format!(
                    "unknown simulation {other:?}: use payment-failed or payment-recovered"
                )))
            }
        };
        let stand_in = self.stand_in();
        if !is_loopback_url(&stand_in) {
            return Err(Fail::Usage(
                "simulate works with a local stand-in only".into(),
            ));
        }
        let orch = self.orchestrator()?;
        let plan = orch
            .state()
            .resources
            .iter()
            .find(|r| r.service_id == "paid")
            .map(|r| r.id.clone())
            .ok_or_else(|| Error::Local("no paid plan in the state file: add one first (appctl add paid --confirm-paid)".into()))?;
        let control = Provider::new(&stand_in, "");
        let call =
            |c: crate::Call| control.send(c.signing(crate::Signing::Unsigned).api_version(None));
        let state = Answer::from_reply(
            call(crate::Call::get("/_stand_in/state")).map_err(Error::Transport)?,
        )?;
        let subscription = state.json["subscriptions"]
            .as_array()
            .and_then(|subs| {
                subs.iter()
                    .rev()
                    .find(|s| s["metadata"]["resource_id"] == plan.as_str())
            })
            .and_then(|s| s["id"].as_str())
            .map(str::to_string)
            .ok_or_else(|| Error::Local(format!("the stand-in has no subscription for {plan}")))?;
        let invoice = Answer::from_reply(
            call(crate::Call::post_json(
                "/_stand_in/invoices",
                &json!({"subscription": subscription, "paid": paid, "amount": 2000}),
            ))
            .map_err(Error::Transport)?,
        )?;
        let event = Answer::from_reply(
            call(crate::Call::post_json(
                "/_stand_in/events",
                &json!({"type": kind, "object": invoice.json}),
            ))
            .map_err(Error::Transport)?,
        )?;
        self.emit(&event);
        self.say(&format!(
            "sent {kind} {} for {subscription} (plan {plan}); the stand-in delivers it signed to the provider",
            event.json["id"].as_str().unwrap_or("")
        ));
        Ok(())
    }

    /// `audit [--verify]`: the account's trail from the operator API.
    fn audit(&mut self) -> Result<(), Fail> {
        let secret = self
            .p
            .value("operator-secret")
            .map(str::to_string)
            .or_else(|| self.var("APP_OPERATOR_SECRET"))
            .unwrap_or_else(|| DEV_OPERATOR_SECRET.to_string());
        let orch = self.orchestrator()?;
        let account = orch.state().account_id.clone().ok_or_else(|| {
            Error::Local("no account in the state file: start with appctl account-request".into())
        })?;
        let base = orch.provider().base().to_string();
        let operator = Provider::new(&base, "");
        let get = |path: &str| -> Result<Answer, Fail> {
            let reply = operator
                .send(
                    crate::Call::get(path)
                        .signing(crate::Signing::Unsigned)
                        .api_version(None)
                        .bearer(&secret),
                )
                .map_err(Error::Transport)?;
            Ok(Answer::from_reply(reply)?)
        };
        if self.p.has("verify") {
            let v = get(&format!("/v1/accounts/{account}/audit/verify"))?;
            self.emit(&v);
            if v.json["ok"] == true {
                self.say(&format!(
                    "chain ok: {} records, last hash {}",
                    v.json["records"],
                    v.json["last_hash"].as_str().unwrap_or("-")
                ));
            } else {
                self.say(&format!(
                    "chain broken at record {}: {}",
                    v.json["first_break"]["seq"], v.json["first_break"]["reason"]
                ));
                return Err(Fail::Error(Error::Local(
                    "the audit chain does not verify".into(),
                )));
            }
            return Ok(());
        }
        let page = get(&format!("/v1/accounts/{account}/audit?limit=500"))?;
        self.emit(&page);
        let mut text = String::new();
        for r in page.json["data"].as_array().into_iter().flatten() {
            let actor = match r["actor_id"].as_str() {
                Some(id) => format!("{} {id}", r["actor"].as_str().unwrap_or("")),
                None => r["actor"].as_str().unwrap_or("").to_string(),
            };
            text.push_str(&format!(
                "{:>4}  {:<26} {:<40} {}\n",
                r["seq"].as_u64().unwrap_or(0),
                r["action"].as_str().unwrap_or(""),
                actor,
                r["consent"].as_str().unwrap_or("")
            ));
        }
        self.say(text.trim_end());
        Ok(())
    }
}

/// The operator secret of `.dev.vars.example` (development only).
pub const DEV_OPERATOR_SECRET: &str = "op_dev_operator_secret_000000000000000000";

/// The quoted candidate to buy: `wanted`, else the first available; with its exact amount.
fn choose_candidate(resource: &Value, wanted: Option<&str>) -> Result<(String, u64, String), Fail> {
    let candidates = resource["needs_information"]["quote"]["candidates"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let names = || {
        candidates
            .iter()
            .filter_map(|c| c["domain"].as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let candidate = match wanted {
        Some(name) => {
            let c = candidates
                .iter()
                .find(|c| c["domain"] == name)
                .ok_or_else(|| {
                    Error::Local(format!(
                        "--domain {name} is not a quoted candidate (candidates: {}); nothing bought",
                        names()
                    ))
                })?;
            if c["available"] == false {
                return Err(Error::Local(format!(
                    "{name} is not available; nothing bought"
                ))
                .into());
            }
            c
        }
        None => candidates
            .iter()
            .find(|c| c["available"] != false)
            .ok_or_else(|| {
                Error::Local(format!(
                    "no quoted candidate is available ({}); nothing bought: try another domain_query",
                    names()
                ))
            })?,
    };
    let name = candidate["domain"].as_str().unwrap_or_default().to_string();
    let amount = candidate["amount"].as_u64().ok_or_else(|| {
        Error::Local(format!(
            "the quote gives no amount for {name}; nothing bought"
        ))
    })?;
    let currency = candidate["currency"].as_str().unwrap_or("usd").to_string();
    Ok((name, amount, currency))
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

    #[test]
    fn candidates() {
        let r = json!({"needs_information": {"quote": {"candidates": [
            {"domain": "a.dev", "amount": 1200, "currency": "usd", "available": false},
            {"domain": "b.dev", "amount": 1500, "currency": "usd", "available": true}]}}});
        let first = choose_candidate(&r, None).ok();
        assert_eq!(first, Some(("b.dev".into(), 1500, "usd".into())));
        assert!(choose_candidate(&r, Some("a.dev")).is_err());
        assert!(choose_candidate(&r, Some("c.dev")).is_err());
        assert!(choose_candidate(&json!({}), None).is_err());
    }

    fn run_line(line: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let args: Vec<String> = line.iter().map(|s| s.to_string()).collect();
        let vars: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(&args, &lookup, &mut out, &mut err);
        (
            code,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }

    #[test]
    fn help_and_usage_errors() {
        let (code, out, _) = run_line(&["help"], &[]);
        assert_eq!(code, 0);
        assert!(
            out.contains("commands:") && out.contains("global flags"),
            "{out}"
        );
        let (code, out, _) = run_line(&["help", "env"], &[]);
        assert_eq!(
            (code, out.starts_with("usage: appctl env")),
            (0, true),
            "{out}"
        );
        let (code, out, _) = run_line(&["add", "--help"], &[]);
        assert_eq!(
            (code, out.starts_with("usage: appctl add")),
            (0, true),
            "{out}"
        );

        let (code, out, err) = run_line(&["add"], &[]);
        assert_eq!(code, 1);
        assert!(out.is_empty());
        assert!(
            err.starts_with("error: add needs <service_id>\nusage: appctl add"),
            "{err}"
        );

        let (code, out, err) = run_line(&["--json", "fly"], &[]);
        assert_eq!(code, 1);
        let v: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(v["error"]["code"], "usage");
        assert!(err.contains("unknown command"), "{err}");

        let (code, _, err) = run_line(
            &[
                "add",
                "x",
                "--config",
                "novalue",
                "--url",
                "http://127.0.0.1:9",
            ],
            &[],
        );
        assert_eq!(code, 1);
        assert!(err.contains("--config expects key=value"), "{err}");

        let (code, _, err) = run_line(&["health", "--url", "ftp://x"], &[]);
        assert_eq!(code, 1);
        assert!(err.contains("http:// or https://"), "{err}");
    }

    #[test]
    fn default_secret_is_warned_about_off_loopback() {
        // 0.0.0.0 is not loopback by name (though it reaches this machine): refused at once.
        let (code, _, err) = run_line(
            &["health"],
            &[
                ("APP_PROVIDER_URL", "http://0.0.0.0:1"),
                ("APP_CLI_STATE", "/nonexistent/appctl/state.json"),
            ],
        );
        assert!(
            err.starts_with(
                "warning: signing with the public development secret against http://0.0.0.0:1"
            ),
            "{err}"
        );
        assert_eq!(code, 1, "{err}");
        let (_, _, err) = run_line(
            &["health", "--secret", "s"],
            &[
                ("APP_PROVIDER_URL", "http://0.0.0.0:1"),
                ("APP_CLI_STATE", "/nonexistent/appctl/state.json"),
            ],
        );
        assert!(!err.contains("warning"), "{err}");
    }

    #[test]
    fn status_without_state() {
        let (code, out, _) = run_line(
            &["status", "--state", "/nonexistent/appctl/state.json"],
            &[],
        );
        assert_eq!(code, 0);
        assert!(out.contains("does not exist yet"), "{out}");
    }
}
