//! The saga engine: runs a resource's job one external call at a time, sans IO. The glue asks
//! [`next_action`] for the call that is due, performs it, and hands the answer to
//! [`apply_outcome`]; [`next_wake`] and [`due`] say when to come back.
//!
//! What each kind of work calls and what its answers change lives in `jobs/` (one file per
//! kind, behind `jobs::work::Work`). The engine keeps what every job shares:
//! - a step is due at its `next_at`; an outage retries it with backoff and the same call (so
//!   the same idempotency key), up to `max_attempts`, then the job fails;
//! - a job that fails for good releases money reserved and not charged, records `job.failed`,
//!   and hands the resource to its kind to end (a refund or a release follows where needed);
//! - with no job, a replaced subscription still to cancel is the resource's work (`cancel`).

use crate::audit_action::AuditAction;
use serde_json::{json, Value};

use crate::account::{Account, Draft};
use crate::resources::action::{Action, ActionResult};
use crate::resources::error::{resource_error_info, ResourceError};
use crate::resources::jobs::cancel::{apply_stale_outcome, stale_action, stale_due};
use crate::resources::jobs::work::{Failed, Next, Progress};
use crate::resources::jobs::work_of;
use crate::resources::lookup::{find, index};
use crate::resources::model::{JobState, Settings};
use crate::resources::render::summary;

/// The next external call for `id`, if its job has one due at `now`.
pub fn next_action(a: &Account, id: &str, now: i64) -> Option<Action> {
    let r = find(a, id).ok()?;
    let Some(js) = r.job.as_ref() else {
        return stale_action(a, r, now);
    };
    if js.next_at > now {
        return None;
    }
    let next = Next {
        account: a,
        resource: r,
        job: js,
    };
    work_of(&js.job).next_action(&next)
}

/// Earliest time a job of this account wants to run (or a replaced subscription's
/// cancellation is retried).
pub fn next_wake(a: &Account) -> Option<i64> {
    let stale = a.billing.cancelling.iter().filter_map(|s| {
        let r = find(a, &s.resource_id).ok()?;
        // While the resource has a job, the retry waits for it (and the job's wake counts).
        r.job.is_none().then_some(s.next_at)
    });
    a.resources
        .iter()
        .filter_map(|r| r.job.as_ref().map(|j| j.next_at))
        .chain(stale)
        .min()
}

/// Ids of resources with a job (or a replaced subscription's cancellation) due at `now`.
pub fn due(a: &Account, now: i64) -> Vec<String> {
    a.resources
        .iter()
        .filter(|r| {
            r.job.as_ref().is_some_and(|j| j.next_at <= now)
                || (r.job.is_none() && stale_due(a, &r.id, now).is_some())
        })
        .map(|r| r.id.clone())
        .collect()
}

use crate::time::backoff;

/// Records the answer to the resource's current action. `Err` when the job failed for good
/// (the changes that say so are kept).
pub fn apply_outcome(
    d: &mut Draft,
    id: &str,
    outcome: ActionResult,
    settings: &Settings,
) -> Result<(), ResourceError> {
    let i = index(d, id)?;
    let now = d.now();
    let Some(mut js) = d.account.resources[i].job.clone() else {
        return apply_stale_outcome(d, i, outcome);
    };
    match outcome {
        ActionResult::Unavailable { message } => {
            js.attempts += 1;
            if js.attempts >= settings.max_attempts {
                return fail_job(
                    d,
                    i,
                    ResourceError::Backend {
                        code: "unavailable".into(),
                        message: format!("gave up after {} attempts: {message}", js.attempts),
                    },
                );
            }
            js.next_at = now + backoff(js.attempts);
            let attempts = js.attempts;
            d.account.resources[i].job = Some(js);
            d.account.resources[i].message = Some(format!(
                "waiting for a dependency (attempt {attempts}); retrying"
            ));
            d.record(AuditAction::JobRetryScheduled, None, Value::Null, json!({"resource_id": id, "attempt": attempts, "reason": crate::text::truncate(&message, 200)}));
            Ok(())
        }
        ActionResult::Refused { error } => match work_of(&js.job).refusal_answer(&js.job, &error) {
            Some(answer) => advance(d, i, js, answer, settings),
            None => fail_job(d, i, error),
        },
        outcome => advance(d, i, js, outcome, settings),
    }
}

/// Hands an answer to the job's kind, the job due again at once unless the kind says later.
fn advance(
    d: &mut Draft,
    i: usize,
    mut js: JobState,
    outcome: ActionResult,
    settings: &Settings,
) -> Result<(), ResourceError> {
    js.attempts = 0;
    js.next_at = d.now();
    match work_of(&js.job).apply(d, i, &mut js, outcome, settings) {
        Ok(Progress::Continue) => {
            d.account.resources[i].job = Some(js);
            Ok(())
        }
        Ok(Progress::Ended) => Ok(()),
        Err(error) => fail_job(d, i, error),
    }
}

/// A job failed for good: release the money, let go of claimed names, refund what was charged,
/// then leave the resource where the human or agent can act on it. Every purchase ends with
/// what was paid for in place, or with its charge refunded (a `Refund` follow-up).
pub(crate) fn fail_job(d: &mut Draft, i: usize, error: ResourceError) -> Result<(), ResourceError> {
    d.keep_on_error();
    let now = d.now();
    let r = d.account.resources[i].clone();
    let Some(js) = r.job.clone() else {
        return Err(error);
    };
    let info = resource_error_info(&error);
    let work = work_of(&js.job);
    if let Some(cid) = work.reserved(&js.job) {
        d.account.ledger.release(cid);
        d.record(
            AuditAction::SpendReleased,
            None,
            Value::Null,
            json!({"charge_id": cid}),
        );
    }
    d.record(
        AuditAction::JobFailed,
        None,
        summary(&r),
        json!({"resource_id": r.id, "code": info.code, "message": info.message}),
    );
    let res = &mut d.account.resources[i];
    res.job = None;
    res.updated_at = now;
    let failed = Failed {
        job: js.job,
        status: r.status,
        acknowledged: js.acknowledged,
        info,
        now,
    };
    if work.fail(d, i, failed) {
        Err(error)
    } else {
        Ok(())
    }
}
