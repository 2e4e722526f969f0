//! Commands that drive the local Stripe stand-in (development only): `payment-token` mints a
//! test payment token; `simulate` makes the stand-in send a signed renewal webhook.

use serde_json::json;

use crate::cli::fail::Fail;
use crate::cli::session::{is_loopback_url, Cli, DEFAULT_TEST_MAX};
use crate::orchestrator::answer::Answer;
use crate::orchestrator::error::Error;
use crate::orchestrator::stand_in::test_payment_token;
use crate::Provider;

impl Cli<'_> {
    pub(super) fn payment_token_command(&mut self) -> Result<(), Fail> {
        let max = self.number("max", DEFAULT_TEST_MAX)?;
        let currency = self.currency()?;
        let stand_in = self.stand_in();
        let token = test_payment_token(&stand_in, max, &currency)?;
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
    /// `simulate payment-failed|payment-recovered`: Stripe's side of a renewal, through the
    /// local stand-in, which signs and delivers the webhook.
    pub(super) fn simulate(&mut self) -> Result<(), Fail> {
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
}
