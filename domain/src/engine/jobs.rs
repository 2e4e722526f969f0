//! Driving resource jobs: one external call at a time, each answer committed before the next
//! call, an answer to a step that is no longer current dropped, at most
//! [`crate::engine::core::MAX_STEPS`] calls per drive. A job is driven by one caller at a time; the rest is left to the alarm.

use crate::audit_action::AuditAction;
use serde_json::{json, Value};

use crate::account::{apply, Ctx};
use crate::catalog::Catalog;
use crate::closing::{self, Progress};
use crate::engine::core::Engine;
use crate::engine::ports::{Effects, Store};
use crate::resources::{self, ResourceError, ResourceStatus};

/// Most rounds of [`Engine::continue_closing`] in one call.
const CLOSING_ROUNDS: usize = 8;

impl<S: Store, E: Effects> Engine<S, E> {
    /// Lowers the step limit (tests).
    #[cfg(test)]
    pub(super) fn with_max_steps(mut self, max_steps: usize) -> Self {
        self.max_steps = max_steps;
        self
    }

    /// Runs the job of resource `id` until it is done, waiting, or failed for good.
    pub async fn drive(&self, id: &str, ctx: &Ctx) -> Result<(), ResourceError> {
        if !self.running.borrow_mut().insert(id.to_string()) {
            return Ok(()); // another caller is driving it
        }
        let settings = self.effects.settings();
        // Bounded: a job has a handful of steps; waiting (a retry, or a backend still working)
        // ends the loop and is left to the alarm.
        let mut steps = 0;
        // A definite failure may leave a follow-up job (a refund, a name to let go): it is
        // driven on in the same loop, and the failure is what the caller is told.
        let mut failed: Option<ResourceError> = None;
        let result = loop {
            steps += 1;
            let Some(current) = self.load() else {
                break Ok(());
            };
            let waiting = resources::find(&current, id)
                .ok()
                .and_then(|r| r.job.as_ref())
                .is_some_and(|j| j.attempts > 0);
            if steps > self.max_steps || (waiting && steps > 1) {
                break Ok(());
            }
            let Some(action) = resources::next_action(&current, id, self.now_s()) else {
                break Ok(());
            };
            let outcome = self.effects.perform(&current, id, action.clone()).await;
            let Some(current) = self.load() else {
                break Ok(());
            };
            // While we awaited, another event (a webhook) may have moved the job on: an answer
            // to a step that is no longer the current one is dropped.
            if resources::next_action(&current, id, i64::MAX).as_ref() != Some(&action) {
                continue;
            }
            let step_ctx = Ctx {
                now: self.now_s(),
                ..ctx.clone()
            };
            let applied = apply(&current, &step_ctx, |d| {
                resources::apply_outcome(d, id, outcome, &settings)
            });
            if let Err(e) = self.commit(applied).await {
                let follow_up = self.load().is_some_and(|a| {
                    resources::find(&a, id)
                        .ok()
                        .and_then(|r| r.job.as_ref())
                        .is_some_and(|j| j.attempts == 0)
                });
                if !follow_up || matches!(e, ResourceError::Unavailable) {
                    break Err(e);
                }
                failed.get_or_insert(e);
            }
        };
        let result = match failed {
            Some(e) => Err(e),
            None => result,
        };
        self.running.borrow_mut().remove(id);
        self.reschedule().await;
        result
    }

    /// Drives the job of `id` for a request: a definite failure that left the resource
    /// `errored` is answered with the resource (it exists and says why); any other failure is
    /// answered as an error.
    pub async fn drive_for_request(&self, id: &str, ctx: &Ctx) -> Result<(), ResourceError> {
        match self.drive(id, ctx).await {
            Err(e) => {
                let errored = self
                    .load()
                    .and_then(|a| {
                        resources::find(&a, id)
                            .ok()
                            .map(|r| r.status == ResourceStatus::Errored)
                    })
                    .unwrap_or(false);
                if errored {
                    Ok(())
                } else {
                    Err(e)
                }
            }
            ok => ok,
        }
    }

    /// After a request drove a job as far as it could: if it is still pending, note that the
    /// caller was told so (a later failure then leaves the resource `errored`).
    pub async fn acknowledge(&self, id: &str, ctx: &Ctx) -> Result<(), ResourceError> {
        let Some(current) = self.load() else {
            return Ok(());
        };
        let pending = resources::find(&current, id)
            .is_ok_and(|r| r.job.as_ref().is_some_and(|j| !j.acknowledged));
        if pending {
            self.commit(apply(&current, ctx, |d| {
                resources::acknowledge(d, id);
                d.record(
                    AuditAction::ResourcePending,
                    None,
                    Value::Null,
                    json!({"resource_id": id}),
                );
                Ok::<(), ResourceError>(())
            }))
            .await?;
        }
        Ok(())
    }

    /// Releases what a closing account still holds, step by step; finishes the close when
    /// nothing is left. Whatever waits on a backend is finished by the alarm. `catalog` is
    /// asked for each round; without one the close waits for the next call.
    pub async fn continue_closing<'c>(&self, ctx: &Ctx, catalog: impl Fn() -> Option<&'c Catalog>) {
        for _ in 0..CLOSING_ROUNDS {
            let Some(current) = self.load() else { return };
            if current.closing.is_none() {
                return;
            }
            let Some(catalog) = catalog() else { return };
            let progress = self
                .commit(apply(&current, ctx, |d| closing::step(d, catalog)))
                .await;
            match progress {
                Ok(Progress::Releasing { resources }) => {
                    if resources.is_empty() {
                        continue;
                    }
                    for id in resources {
                        let _ = self.drive(&id, ctx).await;
                    }
                }
                Ok(Progress::Closed) | Err(_) => {
                    self.reschedule().await;
                    return;
                }
            }
        }
        self.reschedule().await;
    }
}
