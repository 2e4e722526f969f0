//! Account and token commands: `account-request` (with `--wait`, the consent callback),
//! `token` and `refresh`. The tokens land in the state file, never on stdout unless `--json`.

use std::time::Duration;

use serde_json::Value;

use crate::callback::{self, Decision};
use crate::cli::args;
use crate::cli::fail::Fail;
use crate::cli::session::{Cli, DEFAULT_CALLBACK};
use crate::orchestrator::account_request::{AccountRequest, Outcome, DEFAULT_STRIPE_ACCOUNT};
use crate::orchestrator::answer::Answer;
use crate::orchestrator::error::Error;
use crate::{unix_now, ProtocolError};

impl Cli<'_> {
    pub(super) fn account_request(&mut self) -> Result<(), Fail> {
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

    pub(super) fn logged_in(&mut self, answer: &Answer, what: &str) {
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

    pub(super) fn token(&mut self) -> Result<(), Fail> {
        let code = self.p.value("code").map(str::to_string);
        let mut orch = self.orchestrator()?;
        let answer = orch.exchange_code(code.as_deref())?;
        self.logged_in(&answer, "logged in");
        Ok(())
    }

    pub(super) fn refresh(&mut self) -> Result<(), Fail> {
        let mut orch = self.orchestrator()?;
        let answer = orch.refresh()?;
        self.logged_in(&answer, "refreshed");
        Ok(())
    }
}
