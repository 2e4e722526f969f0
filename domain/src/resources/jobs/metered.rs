//! StartMetered: start a usage-based operator service. Check the payment token, make sure the
//! account is a Stripe customer, save the token's payment method with a SetupIntent (nothing
//! is charged: usage is billed in arrears), subscribe the customer to the metered price, then
//! hand over to the backend's `create` (`operator`).
//!
//! Invariants: nothing is reserved against the cap (there is no charge yet; reported usage
//! counts, `crate::usage`); once the subscription exists it is on the resource
//! (`Detail::Operator.usage`), so a backend that cannot create the resource has it cancelled
//! (`Refund` with amount 0), and remove and close cancel it.

use serde_json::{json, Value};

use crate::account::Draft;
use crate::audit_action::AuditAction;
use crate::resources::action::{Action, ActionResult};
use crate::resources::error::ResourceError;
use crate::resources::jobs::operator::operator_job;
use crate::resources::jobs::payment::{
    create_customer, customer_created, method_saved, verify_token,
};
use crate::resources::jobs::work::{continue_as, unexpected, Next, Progress, Work};
use crate::resources::model::{Detail, Job, JobState, OperatorAction, Settings, UsageBilling};

pub(crate) struct StartMetered;

impl Work for StartMetered {
    fn next_action(&self, next: &Next) -> Option<Action> {
        let Job::StartMetered {
            token,
            stripe_price,
            key,
            token_checked,
            payment_method,
            ..
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
        } else if payment_method.is_none() {
            Action::CreateSetupIntent {
                key: next.key(key, "metered-setup"),
                token: token.clone(),
                customer: a.billing.customer_id.clone().unwrap_or_default(),
            }
        } else {
            Action::CreateSubscription {
                key: next.key(key, "metered-sub"),
                customer: a.billing.customer_id.clone().unwrap_or_default(),
                price: stripe_price.clone(),
                payment_method: payment_method.clone().unwrap_or_default(),
                trial_end: None,
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
                Job::StartMetered {
                    token_checked,
                    currency,
                    ..
                },
                ActionResult::Token { token },
            ) => {
                // Nothing is charged now: the token must be usable, in the service's currency.
                verify_token(d, &id, &token, 0, currency)?;
                *token_checked = true;
            }
            (Job::StartMetered { .. }, ActionResult::Customer { id: customer }) => {
                customer_created(d, customer);
            }
            (
                Job::StartMetered { payment_method, .. },
                ActionResult::SetupIntent {
                    id: setup,
                    payment_method: pm,
                },
            ) => {
                method_saved(d, &id, &setup, &pm);
                *payment_method = Some(pm);
            }
            (
                Job::StartMetered {
                    event_name,
                    then_operator,
                    ..
                },
                ActionResult::Subscription { id: sub, .. },
            ) => {
                let usage = UsageBilling {
                    subscription_id: sub.clone(),
                    event_name: event_name.clone(),
                };
                let url = then_operator.clone();
                d.record(
                    AuditAction::SubscriptionStarted,
                    None,
                    Value::Null,
                    json!({"resource_id": id, "subscription_id": sub, "metered": true}),
                );
                let job = operator_job(d, OperatorAction::Create, url, None, None);
                let r = &mut d.account.resources[i];
                r.detail = Detail::Operator {
                    access_configuration: None,
                    asked: None,
                    billing: None,
                    usage: Some(usage),
                };
                r.message = Some("the platform is provisioning it".into());
                r.updated_at = now;
                continue_as(js, job, now);
            }
            (_, other) => return Err(unexpected(other)),
        }
        Ok(Progress::Continue)
    }
}
