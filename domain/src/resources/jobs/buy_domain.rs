//! Buy domain: purchase a confirmed name. Check the payment token, then on the builtin registrar
//! hold the name before charging (so the money never pays for a name someone else got in
//! between); on an upstream registrar charge, then register.
//!
//! Invariants: a failure before the charge goes back to the quote, letting go of a held name
//! (a `ReleaseDomain` job); a failure after the charge refunds it (a `Refund` job).

use crate::audit_action::AuditAction;
use serde_json::{json, Value};

use crate::account::Draft;
use crate::catalog::Registrar;
use crate::resources::action::{Action, ActionResult};
use crate::resources::error::ResourceError;
use crate::resources::jobs::payment::{paid_by_credits, settled, verify_token};
use crate::resources::jobs::work::{
    errored, follow_up, unexpected, Failed, Next, Progress, Told, Work,
};
use crate::resources::model::{Detail, Job, JobState, ResourceStatus, Settings};
use crate::resources::render::summary;

pub(crate) struct BuyDomain;

impl Work for BuyDomain {
    fn next_action(&self, next: &Next) -> Option<Action> {
        let Job::BuyDomain {
            domain,
            amount,
            currency,
            token,
            token_checked,
            claimed,
            payment_intent,
            charge_id,
        } = &next.job.job
        else {
            return None;
        };
        let registrar = next.resource.registrar();
        let claim_first = registrar == Registrar::Builtin && !claimed;
        Some(if !token_checked {
            Action::RetrieveToken {
                token: token.clone(),
            }
        } else if payment_intent.is_none() && *amount > 0 && !claim_first {
            Action::CreatePaymentIntent {
                key: next.key(charge_id, "domain-pi"),
                amount: *amount,
                currency: currency.clone(),
                token: token.clone(),
                customer: None,
                save: false,
                description: format!("Domain registration: {domain} (1 year)"),
            }
        } else {
            Action::ClaimDomain {
                domain: domain.clone(),
                registrar,
                key: next.key(charge_id, "register"),
                contact_email: next.account.owner.email.clone(),
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
        let now = d.now();
        let id = d.account.resources[i].id.clone();
        match (&mut js.job, outcome) {
            (
                Job::BuyDomain {
                    token_checked,
                    amount,
                    currency,
                    ..
                },
                ActionResult::Token { token },
            ) => {
                verify_token(d, &id, &token, *amount, currency)?;
                *token_checked = true;
            }
            (
                Job::BuyDomain {
                    claimed,
                    payment_intent,
                    domain,
                    amount,
                    charge_id,
                    ..
                },
                ActionResult::Claimed { expires_at },
            ) => {
                // Held before the charge (the builtin registrar), or registered once paid. A
                // price credits paid in full has no charge: its first builtin claim holds it.
                let builtin = d.account.resources[i].registrar() == Registrar::Builtin;
                let held_first =
                    payment_intent.is_none() && (*amount > 0 || (builtin && !*claimed));
                if held_first {
                    *claimed = true;
                    return Ok(Progress::Continue);
                }
                if payment_intent.is_none() {
                    let charge_id = charge_id.clone();
                    paid_by_credits(d, &id, &charge_id);
                }
                // Charged and registered: done.
                let name = domain.clone();
                let before = summary(&d.account.resources[i]);
                let r = &mut d.account.resources[i];
                if let Detail::Domain {
                    domain,
                    expires_at: e,
                    quote,
                    ..
                } = &mut r.detail
                {
                    *domain = Some(name.clone());
                    *e = Some(expires_at);
                    *quote = None;
                }
                r.status = ResourceStatus::Complete;
                r.job = None;
                r.message = None;
                r.updated_at = now;
                let after = summary(r);
                d.record(
                    AuditAction::DomainRegistered,
                    None,
                    Value::Null,
                    json!({"domain": name, "expires_at": expires_at}),
                );
                d.record(AuditAction::ResourceCompleted, None, before, after);
                return Ok(Progress::Ended);
            }
            (
                Job::BuyDomain {
                    payment_intent,
                    charge_id,
                    amount,
                    currency,
                    ..
                },
                ActionResult::PaymentIntent { id: pi, .. },
            ) => {
                *payment_intent = Some(pi.clone());
                settled(d, &id, charge_id, &pi, *amount, currency);
            }
            (_, other) => return Err(unexpected(other)),
        }
        Ok(Progress::Continue)
    }

    fn reserved<'a>(&self, job: &'a Job) -> Option<&'a str> {
        match job {
            Job::BuyDomain {
                charge_id,
                payment_intent: None,
                ..
            } => Some(charge_id),
            _ => None,
        }
    }

    fn fail(&self, d: &mut Draft, i: usize, failed: Failed) -> Told {
        let Job::BuyDomain {
            payment_intent,
            charge_id,
            amount,
            claimed,
            domain,
            ..
        } = failed.job
        else {
            return errored(d, i, failed.info);
        };
        let (info, now) = (failed.info, failed.now);
        let res = &mut d.account.resources[i];
        match payment_intent {
            // Charged but not registered: refund, then report.
            Some(pi) => {
                res.status = ResourceStatus::Pending;
                res.message = Some("the registration failed; refunding the charge".into());
                res.job = follow_up(
                    Job::Refund {
                        payment_intent: pi,
                        charge_id,
                        amount,
                        reason: info,
                        keep_current: false,
                        cancel_subscription: None,
                    },
                    now,
                );
            }
            // Not charged: back to the quote, letting go of a claimed name first.
            None => {
                res.status = ResourceStatus::NeedsInformation;
                res.message = Some(format!("the purchase failed: {}", info.message));
                if claimed {
                    res.job = follow_up(
                        Job::ReleaseDomain {
                            domain,
                            then_remove: false,
                        },
                        now,
                    );
                }
            }
        }
        true
    }
}
