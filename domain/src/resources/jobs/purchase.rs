//! Purchase: charge a paid operator service's one-time price, once the orchestrator
//! acknowledged it (`submitted_information` `{"amount"}`), then hand over to the backend's
//! `create`. Check the payment token, charge it (a PaymentIntent keyed by the charge), then the
//! job becomes the backend's call, with the charge kept in the resource's `billing`.
//!
//! Invariants: the money was reserved against the cap before this job started; a failure
//! before the charge releases it and puts the quote back (`needs_information`); once charged,
//! a backend that cannot create the resource gets the charge refunded (`operator`, `Refund`).

use crate::account::Draft;
use crate::resources::action::{Action, ActionResult};
use crate::resources::error::ResourceError;
use crate::resources::jobs::operator::operator_job;
use crate::resources::jobs::payment::{paid_by_credits, settled, verify_token};
use crate::resources::jobs::work::{
    continue_as, errored, unexpected, Failed, Next, Progress, Told, Work,
};
use crate::resources::model::{
    Detail, Job, JobState, OperatorAction, OperatorBilling, ResourceStatus, Settings,
};

pub(crate) struct Purchase;

fn charge_id_of(job: &Job) -> String {
    match job {
        Job::Purchase { charge_id, .. } => charge_id.clone(),
        _ => String::new(),
    }
}

/// Paid (`pi`, empty when credits paid it all): the job becomes the backend's `create`, the
/// charge kept in the resource's `billing` (refunded if the backend cannot create it).
fn hand_over(d: &mut Draft, i: usize, js: &mut JobState, pi: String) {
    let Job::Purchase {
        amount,
        charge_id,
        then_operator,
        ..
    } = &js.job
    else {
        return;
    };
    let now = d.now();
    let billing = OperatorBilling {
        subscription_id: None,
        payment_intent: pi,
        charge_id: charge_id.clone(),
        amount: *amount,
    };
    let job = operator_job(d, OperatorAction::Create, then_operator.clone(), None, None);
    let r = &mut d.account.resources[i];
    r.detail = Detail::Operator {
        access_configuration: None,
        asked: None,
        billing: Some(billing),
        usage: None,
    };
    r.message = Some("paid; the platform is provisioning it".into());
    r.updated_at = now;
    continue_as(js, job, now);
}

impl Work for Purchase {
    fn next_action(&self, next: &Next) -> Option<Action> {
        let Job::Purchase {
            amount,
            currency,
            token,
            charge_id,
            token_checked,
            ..
        } = &next.job.job
        else {
            return None;
        };
        Some(if !token_checked {
            Action::RetrieveToken {
                token: token.clone(),
            }
        } else {
            Action::CreatePaymentIntent {
                key: next.key(charge_id, "purchase-pi"),
                amount: *amount,
                currency: currency.clone(),
                token: token.clone(),
                customer: None,
                save: false,
                description: format!("{}: one-time purchase", next.resource.service_id),
            }
        })
    }

    fn apply(
        &self,
        d: &mut Draft,
        i: usize,
        js: &mut JobState,
        outcome: ActionResult,
        _settings: &Settings,
    ) -> Result<Progress, ResourceError> {
        let id = d.account.resources[i].id.clone();
        match (&mut js.job, outcome) {
            (
                Job::Purchase {
                    token_checked,
                    amount,
                    currency,
                    ..
                },
                ActionResult::Token { token },
            ) => {
                verify_token(d, &id, &token, *amount, currency)?;
                *token_checked = true;
                if *amount > 0 {
                    return Ok(Progress::Continue);
                }
                // Credits paid it all: nothing to charge; the backend creates it now.
                let charge_id = charge_id_of(&js.job);
                paid_by_credits(d, &id, &charge_id);
                hand_over(d, i, js, String::new());
                Ok(Progress::Continue)
            }
            (
                Job::Purchase {
                    amount,
                    currency,
                    charge_id,
                    ..
                },
                ActionResult::PaymentIntent { id: pi, .. },
            ) => {
                settled(d, &id, charge_id, &pi, *amount, currency);
                hand_over(d, i, js, pi);
                Ok(Progress::Continue)
            }
            (_, other) => Err(unexpected(other)),
        }
    }

    fn reserved<'a>(&self, job: &'a Job) -> Option<&'a str> {
        match job {
            Job::Purchase {
                charge_id,
                payment_intent: None,
                ..
            } => Some(charge_id),
            _ => None,
        }
    }

    /// Before the charge (a refused token, a declined payment): nothing was bought; the quote
    /// is still there to answer again.
    fn fail(&self, d: &mut Draft, i: usize, failed: Failed) -> Told {
        let r = &mut d.account.resources[i];
        match &r.detail {
            Detail::Operator { asked: Some(_), .. } => {
                r.status = ResourceStatus::NeedsInformation;
                r.message = Some(format!(
                    "the purchase failed: {}; nothing was charged",
                    failed.info.message
                ));
                true
            }
            _ => errored(d, i, failed.info),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored purchase job reads back as written.
    #[test]
    fn a_purchase_job_round_trips() {
        let text = r#"{"job":"purchase","amount":4900,"currency":"usd","token":"spt_1","charge_id":"chg_1","token_checked":false,"payment_intent":null,"then_operator":"https://ops.example/v1"}"#;
        let job: Job = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&job).unwrap(), text);
    }
}
