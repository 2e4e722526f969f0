//! The one interface between the saga engine (`resources::saga`) and a kind of external work.
//!
//! A kind says what its job calls next ([`Work::next_action`]), what an answer changes
//! ([`Work::apply`]) and where a job that failed for good leaves its resource
//! ([`Work::fail`]). The engine keeps what every job shares: due times, retrying outages with
//! the same key, releasing an unspent reservation ([`Work::reserved`]), recording the failure.
//!
//! Invariants a kind keeps:
//! - `next_action` is a function of the stored job and account only, so a retried step
//!   repeats its call and its idempotency key ([`Next::key`]).
//! - `apply` either hands the job back to continue ([`Progress::Continue`]) or ends it with the
//!   resource in its final state ([`Progress::Ended`]); `Err` means the job failed for good, and
//!   the engine then calls `fail` (never the kind itself).
//! - `fail` ends with what was paid for in place or with a follow-up job that refunds it.

use crate::account::{Account, Draft};
use crate::resources::action::{Action, ActionResult};
use crate::resources::error::ResourceError;
use crate::resources::model::{ErrorInfo, Job, JobState, Resource, ResourceStatus, Settings};

/// What a kind sees when it chooses its job's next call.
pub(crate) struct Next<'a> {
    pub account: &'a Account,
    pub resource: &'a Resource,
    pub job: &'a JobState,
}

impl Next<'_> {
    /// The idempotency key of a step of this resource's work. Payments are keyed by their
    /// charge (unique per purchase), other steps by what they act on, so a retry repeats the key
    /// and a new purchase never does.
    pub fn key(&self, scope: &str, step: &str) -> String {
        idempotency_key(self.account, self.resource, scope, step)
    }
}

pub(crate) fn idempotency_key(a: &Account, r: &Resource, scope: &str, step: &str) -> String {
    format!("{}:{}:{scope}:{step}", a.id, r.id)
}

/// What an answer did to the job.
pub(crate) enum Progress {
    /// The job goes on (the engine stores it back on the resource, due at once unless the kind
    /// set a later `next_at`).
    Continue,
    /// The job is over: the kind left the resource in its final state.
    Ended,
}

/// A job that failed for good, handed to its kind to end it (the engine has already recorded
/// `job.failed`, released an unspent reservation and taken the job off the resource).
pub(crate) struct Failed {
    pub job: Job,
    /// The resource's status when it failed (a plan change keeps a `complete` plan).
    pub status: ResourceStatus,
    /// Whether the request that started it was answered while it was pending.
    pub acknowledged: bool,
    /// What the failure says (left on the resource, or in its message).
    pub info: ErrorInfo,
    pub now: i64,
}

/// Whether the caller is told the request failed.
pub(crate) type Told = bool;

/// One kind of external work (one [`Job`] variant).
pub(crate) trait Work {
    /// The next external call (`None` only if `next.job` is not of this kind).
    fn next_action(&self, next: &Next) -> Option<Action>;

    /// Records `outcome` (the engine handles outages and refusals) on resource `i`, whose job
    /// `js` was taken from it with its attempts reset and due now.
    fn apply(
        &self,
        d: &mut Draft,
        i: usize,
        js: &mut JobState,
        outcome: ActionResult,
        settings: &Settings,
    ) -> Result<Progress, ResourceError>;

    /// A refusal this kind takes as an answer instead of failing (by default none).
    fn refusal_answer(&self, _job: &Job, _error: &ResourceError) -> Option<ActionResult> {
        None
    }

    /// The charge reserved for `job` and not made yet: released when the job fails.
    fn reserved<'a>(&self, _job: &'a Job) -> Option<&'a str> {
        None
    }

    /// Leaves resource `i` where the human or agent can act on it after `failed`. By default it
    /// ends `errored` with the failure.
    fn fail(&self, d: &mut Draft, i: usize, failed: Failed) -> Told {
        errored(d, i, failed.info)
    }
}

/// The resource ends `errored` with `info`.
pub(crate) fn errored(d: &mut Draft, i: usize, info: ErrorInfo) -> Told {
    let res = &mut d.account.resources[i];
    res.status = ResourceStatus::Errored;
    res.error = Some(info);
    true
}

/// The same work going on as another kind of job (a paid operator service: subscribed or
/// charged, now the backend's `create`; removed at the backend, now its cancel), due at once.
/// The request that started the first is still the one waiting, so `acknowledged` carries over.
pub(crate) fn continue_as(js: &mut JobState, job: Job, now: i64) {
    *js = JobState {
        job,
        started_at: now,
        attempts: 0,
        next_at: now,
        acknowledged: js.acknowledged,
    };
}

/// A job started by a failure to undo part of it (already acknowledged: the caller was told).
pub(crate) fn follow_up(job: Job, now: i64) -> Option<JobState> {
    Some(JobState {
        job,
        started_at: now,
        attempts: 0,
        next_at: now,
        acknowledged: true,
    })
}

/// An answer that is not one this job's step can get: the job fails.
pub(crate) fn unexpected(other: ActionResult) -> ResourceError {
    ResourceError::Backend {
        code: "unexpected_answer".into(),
        message: format!("unexpected answer {other:?}"),
    }
}
