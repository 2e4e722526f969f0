//! Refund: give back a charge whose purchase could not be completed, then leave the resource
//! `errored` with the reason (or, for a failed plan change, on its current plan). A paid
//! operator service whose backend could not create it first has its subscription cancelled
//! (`cancel_subscription`), so nothing goes on billing for what does not exist; a usage-based
//! one was never charged (`amount` 0), so cancelling is the whole job.
//!
//! Invariants: a charge Stripe reports as already refunded (a webhook or the dashboard did it)
//! counts as refunded; a refund that is refused for good leaves `refund_failed` on the resource
//! (so a retried create never charges again) or, for a plan change, a message that the operator
//! must refund it.

use crate::audit_action::AuditAction;
use serde_json::{json, Value};

use crate::account::Draft;
use crate::ledger::ChargeStatus;
use crate::resources::action::{Action, ActionResult};
use crate::resources::error::{ResourceError, REFUND_FAILED};
use crate::resources::jobs::work::{errored, unexpected, Failed, Next, Progress, Told, Work};
use crate::resources::model::{Detail, ErrorInfo, Job, JobState, ResourceStatus, Settings};
use crate::stripe_api::PaymentError;

pub(crate) struct Refund;

impl Work for Refund {
    fn next_action(&self, next: &Next) -> Option<Action> {
        let Job::Refund {
            payment_intent,
            amount,
            cancel_subscription,
            ..
        } = &next.job.job
        else {
            return None;
        };
        if let Some(sub) = cancel_subscription {
            // The same key as any other cancel of that subscription: the same DELETE.
            return Some(Action::CancelSubscription {
                key: next.key(sub, "cancel"),
                subscription_id: sub.clone(),
            });
        }
        Some(Action::Refund {
            key: next.key(payment_intent, "refund"),
            payment_intent: payment_intent.clone(),
            amount: *amount,
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
        if let (
            Job::Refund {
                cancel_subscription: cancel @ Some(_),
                ..
            },
            ActionResult::Canceled,
        ) = (&mut js.job, &outcome)
        {
            let sub = cancel.take();
            d.record(
                AuditAction::SubscriptionCanceled,
                None,
                Value::Null,
                json!({"subscription_id": sub}),
            );
            if let Detail::Operator { billing, usage, .. } = &mut d.account.resources[i].detail {
                *billing = None;
                *usage = None;
            }
            if let Job::Refund {
                amount: 0,
                reason,
                charge_id,
                ..
            } = &js.job
            {
                // Nothing went to the card (a usage-based service, or credits paid the first
                // period): cancelling, and giving credits back, is all there is to undo.
                if !charge_id.is_empty() {
                    crate::resources::jobs::payment::refunded_by_credits(d, charge_id);
                }
                let r = &mut d.account.resources[i];
                r.job = None;
                r.message = None;
                r.error = Some(reason.clone());
                d.set_status(i, ResourceStatus::Errored, AuditAction::ResourceFailed);
                return Ok(Progress::Ended);
            }
            return Ok(Progress::Continue);
        }
        let (
            Job::Refund {
                charge_id,
                amount,
                reason,
                keep_current,
                ..
            },
            ActionResult::Refunded { id: refund },
        ) = (&js.job, &outcome)
        else {
            return Err(unexpected(outcome));
        };
        let now = d.now();
        let (cid, amount, reason) = (charge_id.clone(), *amount, reason.clone());
        let keep_current = *keep_current;
        if let Some(c) = d.account.ledger.get_mut(&cid) {
            c.refunded = amount;
            c.status = ChargeStatus::Refunded;
        }
        // What credits paid of it goes back to them.
        d.account.ledger.return_credits(&cid);
        d.record(
            AuditAction::ChargeRefunded,
            None,
            Value::Null,
            json!({"charge_id": cid, "refund": refund, "amount": amount}),
        );
        let r = &mut d.account.resources[i];
        r.job = None;
        r.message = None;
        if keep_current {
            // The plan change failed: the current plan stays as it was.
            r.updated_at = now;
            r.message = Some(format!(
                "the plan change failed: {} The charge was refunded.",
                reason.message
            ));
            return Ok(Progress::Ended);
        }
        r.error = Some(ErrorInfo {
            code: reason.code,
            message: format!("{} The charge was refunded.", reason.message),
        });
        d.set_status(i, ResourceStatus::Errored, AuditAction::ResourceFailed);
        Ok(Progress::Ended)
    }

    /// Stripe refuses to refund what is already refunded (by a webhook-reported refund, or from
    /// the dashboard): the compensation is done.
    fn refusal_answer(&self, job: &Job, error: &ResourceError) -> Option<ActionResult> {
        match (job, error) {
            // A subscription Stripe no longer has is cancelled already.
            (
                Job::Refund {
                    cancel_subscription: Some(_),
                    ..
                },
                ResourceError::Payment {
                    error: PaymentError::Failed { code, .. },
                },
            ) if code == "resource_missing" => Some(ActionResult::Canceled),
            (
                Job::Refund { .. },
                ResourceError::Payment {
                    error: PaymentError::Failed { code, .. },
                },
            ) if code == "charge_already_refunded" => Some(ActionResult::Refunded {
                id: "already_refunded".to_string(),
            }),
            _ => None,
        }
    }

    /// The refund itself was refused: the money is still with us. A plan change keeps its
    /// (working) current plan; anything else ends `errored` with `refund_failed`, which also
    /// keeps a retried create from charging again (`prepare_create`).
    fn fail(&self, d: &mut Draft, i: usize, failed: Failed) -> Told {
        let Job::Refund {
            keep_current,
            reason,
            ..
        } = failed.job
        else {
            return errored(d, i, failed.info);
        };
        let info = failed.info;
        let res = &mut d.account.resources[i];
        if keep_current {
            res.message = Some(format!(
                "the plan change failed ({}) and its charge could not be refunded ({}); the operator must refund it",
                reason.message, info.message
            ));
            return true;
        }
        errored(
            d,
            i,
            ErrorInfo {
                code: REFUND_FAILED.into(),
                message: format!(
                    "{} The charge could not be refunded ({}); the operator must refund it.",
                    reason.message, info.message
                ),
            },
        )
    }
}
