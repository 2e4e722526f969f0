//! Cancel: ending a subscription. The `Unsubscribe` job leaves a paid plan (cancel, then move
//! to the target plan or remove); a *replaced* subscription (a paid -> paid change whose
//! cancellation failed in its saga) is kept on the account's billing state and retried from
//! the alarm, outside any job, until Stripe cancels it or says it is gone.
//!
//! Invariants: both cancel the same subscription with the same key (`<sub>:cancel`), so a retry
//! is the same DELETE; a replaced subscription's retries never fail the plan resource; while
//! the resource has a job, its retries wait; remove and close make them due at once.

use crate::audit_action::AuditAction;
use serde_json::{json, Value};

use crate::account::{Account, Draft};
use crate::resources::action::{Action, ActionResult};
use crate::resources::error::{resource_error_info, ResourceError};
use crate::resources::jobs::work::{
    errored, idempotency_key, unexpected, Failed, Next, Progress, Told, Work,
};
use crate::resources::lookup::index;
use crate::resources::model::{
    Detail, Job, JobState, Resource, ResourceStatus, Settings, StaleSubscription,
};
use crate::resources::render::summary;
use crate::time::format_rfc3339;

pub(crate) struct Unsubscribe;

impl Work for Unsubscribe {
    fn next_action(&self, next: &Next) -> Option<Action> {
        let Job::Unsubscribe {
            subscription_id, ..
        } = &next.job.job
        else {
            return None;
        };
        Some(Action::CancelSubscription {
            key: next.key(subscription_id, "cancel"),
            subscription_id: subscription_id.clone(),
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
        let (
            Job::Unsubscribe {
                target_service,
                subscription_id,
            },
            ActionResult::Canceled,
        ) = (&js.job, &outcome)
        else {
            return Err(unexpected(outcome));
        };
        let now = d.now();
        let id = d.account.resources[i].id.clone();
        let (target, sub) = (target_service.clone(), subscription_id.clone());
        let before = summary(&d.account.resources[i]);
        let message = stale_message(&d.account, &id);
        let r = &mut d.account.resources[i];
        r.job = None;
        r.message = message;
        r.updated_at = now;
        match &mut r.detail {
            // A paid operator service being removed: its subscription is over.
            Detail::Operator { billing, usage, .. } => {
                *billing = None;
                *usage = None;
            }
            detail => {
                *detail = Detail::Plan {
                    subscription_id: None,
                    subscription_status: Some("canceled".into()),
                    past_due_since: None,
                    suspended: false,
                }
            }
        }
        let action = match target {
            Some(t) => {
                r.service_id = t;
                r.status = ResourceStatus::Complete;
                AuditAction::ResourceUpdated
            }
            None => {
                r.status = ResourceStatus::Removed;
                AuditAction::ResourceRemoved
            }
        };
        let after = summary(r);
        d.record(
            AuditAction::SubscriptionCanceled,
            None,
            Value::Null,
            json!({"subscription_id": sub}),
        );
        d.record(action, None, before, after);
        Ok(Progress::Ended)
    }

    fn fail(&self, d: &mut Draft, i: usize, failed: Failed) -> Told {
        let Job::Unsubscribe {
            subscription_id, ..
        } = &failed.job
        else {
            return errored(d, i, failed.info);
        };
        // A paid operator service already gone at the platform: it is removed, and its
        // subscription is kept on record and cancelled by the alarm until Stripe does.
        if let Detail::Operator { billing, usage, .. } = &mut d.account.resources[i].detail {
            *billing = None;
            *usage = None;
            let sub = subscription_id.clone();
            keep_cancelling(d, i, &sub, &failed.info, failed.now);
            d.set_status(i, ResourceStatus::Removed, AuditAction::ResourceRemoved);
            return false;
        }
        let res = &mut d.account.resources[i];
        res.status = ResourceStatus::Complete;
        res.message = Some(format!("the change failed: {}", failed.info.message));
        true
    }
}

/// A subscription that could not be cancelled in resource `i`'s job: kept on the account's
/// billing state and retried by the alarm (backoff) until Stripe cancels it or says it is
/// gone; remove and close hasten it, and a closing account waits for it.
pub(crate) fn keep_cancelling(
    d: &mut Draft,
    i: usize,
    subscription_id: &str,
    info: &crate::resources::model::ErrorInfo,
    now: i64,
) {
    let id = d.account.resources[i].id.clone();
    let retry_at = now + stale_backoff(1);
    d.account.billing.cancelling.push(StaleSubscription {
        subscription_id: subscription_id.to_string(),
        resource_id: id.clone(),
        since: now,
        attempts: 1,
        next_at: retry_at,
        last_error: Some(crate::text::truncate(&info.message, 200).to_string()),
    });
    d.record(
        AuditAction::SubscriptionCancelFailed,
        None,
        Value::Null,
        json!({"resource_id": id, "subscription_id": subscription_id, "code": info.code,
               "retry_at": format_rfc3339(retry_at)}),
    );
    let stale = stale_message(&d.account, &id);
    d.account.resources[i].message = stale;
}

/// With no job: cancelling resource `r`'s replaced subscription, if one is due at `now` (the
/// same key as the saga's cancel: the same DELETE).
pub(crate) fn stale_action(a: &Account, r: &Resource, now: i64) -> Option<Action> {
    stale_due(a, &r.id, now).map(|s| Action::CancelSubscription {
        key: idempotency_key(a, r, &s.subscription_id, "cancel"),
        subscription_id: s.subscription_id.clone(),
    })
}

/// The replaced subscription of resource `id` to cancel next, if one is due at `now`: the
/// earliest due (the first of equals), so the same one is chosen until it is answered.
pub(crate) fn stale_due<'a>(a: &'a Account, id: &str, now: i64) -> Option<&'a StaleSubscription> {
    a.billing
        .cancelling
        .iter()
        .filter(|s| s.resource_id == id && s.next_at <= now)
        .min_by_key(|s| s.next_at)
}

/// Resources with a replaced subscription still to cancel (closing waits for them).
pub fn stale_resources(a: &Account) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for s in &a.billing.cancelling {
        if !ids.contains(&s.resource_id) {
            ids.push(s.resource_id.clone());
        }
    }
    ids
}

/// Makes the replaced subscriptions of resource `id` (all, with `None`) due now: removing the
/// plan or closing the account tries them at once instead of after their backoff.
pub fn hasten_stale(d: &mut Draft, id: Option<&str>) {
    let now = d.now();
    for s in &mut d.account.billing.cancelling {
        if id.is_none_or(|id| s.resource_id == id) {
            s.next_at = s.next_at.min(now);
        }
    }
}

/// Backoff of a replaced subscription's cancellation: doubling, at most an hour (it is retried
/// until it succeeds; the audit trail and the owner's views show it meanwhile).
pub(crate) fn stale_backoff(attempts: u32) -> i64 {
    (1i64 << attempts.min(12)).min(3600)
}

/// For the owner's dashboard: the replaced subscriptions still being cancelled, if any.
pub fn stale_note(a: &Account) -> Option<String> {
    if a.billing.cancelling.is_empty() {
        return None;
    }
    let ids: Vec<&str> = a
        .billing
        .cancelling
        .iter()
        .map(|s| s.subscription_id.as_str())
        .collect();
    Some(format!(
        "a previous subscription ({}) is still being cancelled; retrying automatically",
        ids.join(", ")
    ))
}

/// What the plan resource says while a replaced subscription is still to cancel.
pub(crate) fn stale_message(a: &Account, id: &str) -> Option<String> {
    let left: Vec<&StaleSubscription> = a
        .billing
        .cancelling
        .iter()
        .filter(|s| s.resource_id == id)
        .collect();
    let s = left.first()?;
    Some(format!(
        "a previous subscription ({}) is still being cancelled: attempt {} failed ({}); retrying automatically, next try at {}",
        left.iter().map(|s| s.subscription_id.as_str()).collect::<Vec<_>>().join(", "),
        s.attempts,
        s.last_error.as_deref().unwrap_or("unknown error"),
        format_rfc3339(s.next_at)
    ))
}

/// Stripe reports `subscription` canceled: if it was a replaced subscription still to cancel,
/// it is done.
pub fn stale_ended(d: &mut Draft, subscription: &str) {
    let Some(k) = d
        .account
        .billing
        .cancelling
        .iter()
        .position(|s| s.subscription_id == subscription)
    else {
        return;
    };
    let s = d.account.billing.cancelling.remove(k);
    d.record(
        AuditAction::SubscriptionCanceled,
        None,
        Value::Null,
        json!({"subscription_id": s.subscription_id, "resource_id": s.resource_id, "replaced": true, "by": "stripe_event"}),
    );
    let message = stale_message(&d.account, &s.resource_id);
    if let Ok(i) = index(d, &s.resource_id) {
        d.account.resources[i].message = message;
    }
}

/// The answer to cancelling a replaced subscription (a resource with no job): cancelled (or
/// already gone) drops it; anything else schedules the next try. Never fails the resource.
pub(crate) fn apply_stale_outcome(
    d: &mut Draft,
    i: usize,
    outcome: ActionResult,
) -> Result<(), ResourceError> {
    let now = d.now();
    let id = d.account.resources[i].id.clone();
    let Some(sub) = stale_due(&d.account, &id, i64::MAX).map(|s| s.subscription_id.clone()) else {
        return Ok(());
    };
    let Some(k) = d
        .account
        .billing
        .cancelling
        .iter()
        .position(|s| s.resource_id == id && s.subscription_id == sub)
    else {
        return Ok(());
    };
    let reason = match outcome {
        ActionResult::Canceled => {
            let s = d.account.billing.cancelling.remove(k);
            d.record(
                AuditAction::SubscriptionCanceled,
                None,
                Value::Null,
                json!({"subscription_id": s.subscription_id, "resource_id": id, "replaced": true, "attempts": s.attempts + 1}),
            );
            let message = stale_message(&d.account, &id);
            let r = &mut d.account.resources[i];
            r.message = message;
            r.updated_at = now;
            return Ok(());
        }
        ActionResult::Unavailable { message } => message,
        ActionResult::Refused { error } => resource_error_info(&error).message,
        other => format!("unexpected answer {other:?}"),
    };
    let reason = crate::text::truncate(&reason, 200).to_string();
    let s = &mut d.account.billing.cancelling[k];
    s.attempts += 1;
    s.next_at = now + stale_backoff(s.attempts);
    s.last_error = Some(reason.clone());
    let (attempt, retry_at) = (s.attempts, s.next_at);
    d.record(
        AuditAction::SubscriptionCancelRetryScheduled,
        None,
        Value::Null,
        json!({"subscription_id": sub, "resource_id": id, "attempt": attempt,
               "retry_at": format_rfc3339(retry_at), "reason": reason}),
    );
    let message = stale_message(&d.account, &id);
    d.account.resources[i].message = message;
    Ok(())
}
