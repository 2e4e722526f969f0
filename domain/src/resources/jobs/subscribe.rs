//! Subscribe: start a paid plan. Check the payment token, make sure the account is a Stripe
//! customer, charge the first period (saving the payment method), create the subscription
//! with its trial ending when that period does; on a paid -> paid change, then cancel the
//! subscription it replaces.
//!
//! Invariants: exactly one subscription bills once the job ends (a replaced one whose
//! cancellation fails is kept on the account's billing state and retried, `cancel`); a charge
//! made for a plan that could not start is refunded (a `Refund` job); a new plan whose
//! purchase fails before anyone was told it is pending, and before the charge, leaves nothing.

use crate::audit_action::AuditAction;
use serde_json::{json, Value};

use crate::account::Draft;
use crate::resources::action::{Action, ActionResult};
use crate::resources::error::ResourceError;
use crate::resources::jobs::cancel::keep_cancelling;
use crate::resources::jobs::operator::operator_job;
use crate::resources::jobs::payment::{
    create_customer, customer_created, method_saved, paid_by_credits, settled, verify_token,
};
use crate::resources::jobs::work::{
    continue_as, errored, follow_up, unexpected, Failed, Next, Progress, Told, Work,
};
use crate::resources::model::{
    Detail, Job, JobState, OperatorAction, OperatorBilling, ResourceStatus, Settings,
};
use crate::resources::render::summary;

pub(crate) struct Subscribe;

impl Work for Subscribe {
    fn next_action(&self, next: &Next) -> Option<Action> {
        let Job::Subscribe {
            token,
            token_checked,
            payment_intent,
            payment_method,
            amount,
            currency,
            stripe_price,
            period_days,
            target_service,
            charge_id,
            replaces,
            subscription,
            then_operator,
        } = &next.job.job
        else {
            return None;
        };
        let a = next.account;
        Some(if !token_checked {
            Action::RetrieveToken {
                token: token.clone(),
            }
        } else if a.billing.customer_id.is_none() {
            create_customer(a)
        } else if payment_intent.is_none() && payment_method.is_none() && *amount == 0 {
            // Credits paid the first period: nothing to charge, but the subscription bills
            // the card from the next period, so its payment method is saved (a SetupIntent).
            Action::CreateSetupIntent {
                key: next.key(charge_id, "subscribe-setup"),
                token: token.clone(),
                customer: a.billing.customer_id.clone().unwrap_or_default(),
            }
        } else if payment_intent.is_none() && *amount > 0 {
            Action::CreatePaymentIntent {
                key: next.key(charge_id, "subscribe-pi"),
                amount: *amount,
                currency: currency.clone(),
                token: token.clone(),
                customer: a.billing.customer_id.clone(),
                save: true,
                description: match then_operator {
                    Some(_) => format!("{target_service}, first period"),
                    None => format!("{target_service} plan, first period"),
                },
            }
        } else if let (Some(_), Some(old)) = (subscription, replaces) {
            // Same key as an Unsubscribe of that subscription: the same DELETE.
            Action::CancelSubscription {
                key: next.key(old, "cancel"),
                subscription_id: old.clone(),
            }
        } else {
            Action::CreateSubscription {
                key: next.key(charge_id, "subscribe-sub"),
                customer: a.billing.customer_id.clone().unwrap_or_default(),
                price: stripe_price.clone(),
                payment_method: payment_method.clone().unwrap_or_default(),
                trial_end: Some(next.job.started_at + period_days * 86_400),
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
                Job::Subscribe {
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
            (Job::Subscribe { .. }, ActionResult::Customer { id: customer }) => {
                customer_created(d, customer);
            }
            (
                Job::Subscribe { payment_method, .. },
                ActionResult::SetupIntent {
                    id: setup,
                    payment_method: pm,
                },
            ) => {
                method_saved(d, &id, &setup, &pm);
                *payment_method = Some(pm);
            }
            (
                Job::Subscribe {
                    payment_intent,
                    payment_method,
                    charge_id,
                    amount,
                    currency,
                    ..
                },
                ActionResult::PaymentIntent {
                    id: pi,
                    payment_method: pm,
                },
            ) => {
                *payment_intent = Some(pi.clone());
                *payment_method = pm;
                settled(d, &id, charge_id, &pi, *amount, currency);
            }
            (
                Job::Subscribe {
                    then_operator: Some(url),
                    payment_intent,
                    charge_id,
                    amount,
                    ..
                },
                ActionResult::Subscription { id: sub, .. },
            ) => {
                // A paid operator service: paid for and subscribed; now its backend creates
                // it (the same request's job goes on, so its answer still waits for it).
                if payment_intent.is_none() {
                    let charge_id = charge_id.clone();
                    paid_by_credits(d, &id, &charge_id);
                }
                let billing = OperatorBilling {
                    subscription_id: Some(sub.clone()),
                    payment_intent: payment_intent.clone().unwrap_or_default(),
                    charge_id: charge_id.clone(),
                    amount: *amount,
                };
                let url = url.clone();
                d.record(
                    AuditAction::SubscriptionStarted,
                    None,
                    Value::Null,
                    json!({"resource_id": id, "subscription_id": sub}),
                );
                let job = operator_job(d, OperatorAction::Create, url, None, None);
                let r = &mut d.account.resources[i];
                r.detail = Detail::Operator {
                    access_configuration: None,
                    asked: None,
                    billing: Some(billing),
                    usage: None,
                };
                r.message = Some("the platform is provisioning it".into());
                r.updated_at = now;
                continue_as(js, job, now);
            }
            (
                Job::Subscribe {
                    target_service,
                    replaces,
                    subscription,
                    payment_intent,
                    charge_id,
                    ..
                },
                ActionResult::Subscription { id: sub, status },
            ) => {
                if payment_intent.is_none() {
                    // Credits paid the first period.
                    let charge_id = charge_id.clone();
                    paid_by_credits(d, &id, &charge_id);
                }
                let target = target_service.clone();
                // paid -> paid: the new plan is in place now; the old subscription is cancelled
                // next, in this job (the resource stays busy until it is).
                let old = replaces.clone();
                *subscription = Some(sub.clone());
                let before = summary(&d.account.resources[i]);
                let r = &mut d.account.resources[i];
                r.service_id = target;
                r.detail = Detail::Plan {
                    subscription_id: Some(sub),
                    subscription_status: Some(status),
                    past_due_since: None,
                    suspended: false,
                };
                r.status = ResourceStatus::Complete;
                r.job = None;
                r.message = None;
                r.error = None;
                r.updated_at = now;
                let after = summary(r);
                d.record(AuditAction::ResourceCompleted, None, before, after);
                let Some(old) = old else {
                    return Ok(Progress::Ended);
                };
                d.account.resources[i].message =
                    Some(format!("cancelling the previous subscription {old}"));
            }
            (
                Job::Subscribe {
                    replaces: Some(old),
                    subscription: Some(_),
                    ..
                },
                ActionResult::Canceled,
            ) => {
                let old = old.clone();
                let r = &mut d.account.resources[i];
                r.job = None;
                r.message = None;
                r.updated_at = now;
                let new = summary(r)["subscription_id"].clone();
                d.record(
                    AuditAction::SubscriptionCanceled,
                    None,
                    Value::Null,
                    json!({"subscription_id": old, "replaced_by": new}),
                );
                return Ok(Progress::Ended);
            }
            (_, other) => return Err(unexpected(other)),
        }
        Ok(Progress::Continue)
    }

    fn reserved<'a>(&self, job: &'a Job) -> Option<&'a str> {
        match job {
            Job::Subscribe {
                charge_id,
                payment_intent: None,
                ..
            } => Some(charge_id),
            _ => None,
        }
    }

    fn fail(&self, d: &mut Draft, i: usize, failed: Failed) -> Told {
        let Failed {
            job,
            status,
            acknowledged,
            info,
            now,
        } = failed;
        let Job::Subscribe {
            payment_intent,
            charge_id,
            amount,
            replaces,
            subscription,
            ..
        } = job
        else {
            return errored(d, i, info);
        };
        // paid -> paid: the new plan is paid for and in place; only cancelling the old
        // subscription failed. Nothing to refund: it is kept on record and retried from the
        // alarm (two subscriptions never both bill silently; remove and close cancel it too),
        // and said so. The change itself succeeded, so the caller is not told it failed.
        if let (Some(old), Some(_)) = (replaces, subscription) {
            keep_cancelling(d, i, &old, &info, now);
            return false;
        }
        let res = &mut d.account.resources[i];
        if let Some(pi) = payment_intent {
            // Charged, but the subscription could not be started: refund it. A plan change
            // keeps the current plan; a new plan stays `pending` until the refund, then ends
            // `errored` (it is never dropped while its charge is live: a retried create finds
            // it).
            let keep_current = status == ResourceStatus::Complete;
            if !keep_current {
                res.status = ResourceStatus::Pending;
            }
            res.message =
                Some("the subscription could not be started; refunding the charge".into());
            res.job = follow_up(
                Job::Refund {
                    payment_intent: pi,
                    charge_id,
                    amount,
                    reason: info,
                    keep_current,
                    cancel_subscription: None,
                },
                now,
            );
        } else if status == ResourceStatus::Complete {
            // A failed plan change leaves the current plan in place.
            res.message = Some(format!("the plan change failed: {}", info.message));
        } else if !acknowledged {
            // A new plan whose purchase failed before anyone was told it was pending, and
            // before any money moved: nothing stays.
            d.account.resources.remove(i);
        } else {
            return errored(d, i, info);
        }
        true
    }
}
