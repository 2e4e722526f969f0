//! Resource commands: `add`, `get`, `update`, `rotate`, `remove`. Invariant: no payment token
//! is sent without `--confirm-paid`, so the provider cannot charge without the human's yes;
//! pending resources are polled until they settle or the timeout passes.

use std::io::Write;
use std::time::Duration;

use serde_json::{json, Value};

use crate::cli::args;
use crate::cli::fail::Fail;
use crate::cli::render;
use crate::cli::session::{is_loopback_url, Cli, DEFAULT_PROJECT, DEFAULT_TEST_MAX};
use crate::orchestrator::answer::Answer;
use crate::orchestrator::error::Error;
use crate::orchestrator::session::Orchestrator;
use crate::orchestrator::stand_in::test_payment_token;
use crate::services;

const POLL_INTERVAL: Duration = Duration::from_secs(1);

impl Cli<'_> {
    /// `--payment-token`, or with `--test-payment` a fresh token from the stand-in.
    pub(super) fn payment_token(&mut self, provider_url: &str) -> Result<Option<String>, Fail> {
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
        let token = test_payment_token(&self.stand_in(), max, &currency)?;
        self.note(&format!(
            "test payment token {token} (up to {})",
            domain::ledger::format_amount(max, &currency)
        ));
        Ok(Some(token))
    }

    /// Refuses a paid service unless --confirm-paid agrees to its price.
    pub(super) fn check_paid(
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

    pub(super) fn settle(
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
    pub(super) fn finish(&mut self, answer: Answer) -> Result<(), Fail> {
        if answer.resource_status() == "errored" {
            return Err(Fail::Errored(answer));
        }
        self.emit(&answer);
        self.say(&render::resource(&answer.json));
        Ok(())
    }

    pub(super) fn add(&mut self) -> Result<(), Fail> {
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
        let mut body = crate::create_resource_body(
            &service_id,
            &project,
            (!config.is_empty()).then_some(&config),
            token.as_deref(),
        );
        if let Some(name) = self.p.value("name") {
            body["orchestrator_resource_id"] = json!(format!("{project}/{name}"));
        }
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
                "buying {name} at {}",
                domain::ledger::format_amount(amount, &currency)
            ));
            // The protocol's way: the same create again, answering needs_information.
            body["submitted_information"] = json!({"domain": name, "amount": amount});
            let confirmed = orch.create_resource(&body)?;
            answer = self.settle(&mut orch, confirmed, timeout)?;
        } else if wanted_domain.is_some() {
            self.note("warning: --domain is ignored: the resource has no quote");
        }
        self.finish(answer)
    }

    pub(super) fn target(&self, orch: &Orchestrator) -> Result<String, Fail> {
        Ok(orch
            .state()
            .resolve(&self.p.positionals[0], self.p.value("project"))?)
    }

    pub(super) fn get(&mut self) -> Result<(), Fail> {
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

    pub(super) fn update(&mut self) -> Result<(), Fail> {
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

    pub(super) fn rotate(&mut self) -> Result<(), Fail> {
        let mut orch = self.orchestrator()?;
        let id = self.target(&orch)?;
        let answer = orch.rotate_credentials(&id)?;
        self.finish(answer)?;
        self.say("the old credentials no longer work: run `appctl env` to write the new ones");
        Ok(())
    }

    pub(super) fn remove(&mut self) -> Result<(), Fail> {
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
}

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
    use serde_json::json;

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
}
