//! Release domain: let a name go at its registrar, on removal (`then_remove`) or after a
//! purchase that had claimed the name failed before its charge (the resource stays on its
//! quote).
//!
//! Invariant: a removal whose release fails keeps the domain `complete` (it is still ours).

use crate::audit_action::AuditAction;
use serde_json::{json, Value};

use crate::account::Draft;
use crate::resources::action::{Action, ActionResult};
use crate::resources::error::ResourceError;
use crate::resources::jobs::work::{errored, unexpected, Failed, Next, Progress, Told, Work};
use crate::resources::model::{Job, JobState, ResourceStatus, Settings};

pub(crate) struct ReleaseDomain;

impl Work for ReleaseDomain {
    fn next_action(&self, next: &Next) -> Option<Action> {
        let Job::ReleaseDomain { domain, .. } = &next.job.job else {
            return None;
        };
        Some(Action::ReleaseDomain {
            domain: domain.clone(),
            registrar: next.resource.registrar(),
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
            Job::ReleaseDomain {
                domain,
                then_remove,
            },
            ActionResult::Released,
        ) = (&js.job, &outcome)
        else {
            return Err(unexpected(outcome));
        };
        let (name, then_remove) = (domain.clone(), *then_remove);
        d.account.resources[i].job = None;
        d.record(
            AuditAction::DomainReleased,
            None,
            Value::Null,
            json!({"domain": name}),
        );
        if then_remove {
            d.account.resources[i].message = None;
            d.set_status(i, ResourceStatus::Removed, AuditAction::ResourceRemoved);
        }
        Ok(Progress::Ended)
    }

    fn fail(&self, d: &mut Draft, i: usize, failed: Failed) -> Told {
        let Job::ReleaseDomain {
            then_remove: true, ..
        } = failed.job
        else {
            return errored(d, i, failed.info);
        };
        let res = &mut d.account.resources[i];
        res.status = ResourceStatus::Complete;
        res.message = Some(format!("the change failed: {}", failed.info.message));
        true
    }
}
