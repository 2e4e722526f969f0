//! Usage work of the alarm: the hard cap's pause brought in line with the spend
//! (`usage::reconcile`, whose `suspend`/`resume` calls are resource jobs), and usage records'
//! meter events sent to Stripe, each answer committed before the next call.

use crate::account::{apply, Ctx};
use crate::catalog::Catalog;
use crate::engine::core::Engine;
use crate::engine::ports::{Effects, Store};
use crate::resources::ResourceError;
use crate::usage;

impl<S: Store, E: Effects> Engine<S, E> {
    /// Runs the cap's reconciliation if it is due, then sends the meter events that are due.
    /// The caller drives the `suspend`/`resume` jobs it started and then sets the alarm
    /// (`reschedule`) once, for all of it. `catalog` is asked for only when the reconciliation
    /// is due: most alarms (an audit flush) need no catalog, and a fresh isolate's first one
    /// would parse it.
    pub async fn continue_usage<'c>(
        &self,
        ctx: &Ctx,
        catalog: impl FnOnce() -> Option<&'c Catalog>,
    ) {
        let now = self.now_s();
        let Some(current) = self.load() else { return };
        if usage::next_wake(&current, now).is_some_and(|t| t <= now) {
            if let Some(catalog) = catalog() {
                let _ = self
                    .commit(apply(&current, ctx, |d| {
                        usage::reconcile(d, catalog);
                        Ok::<(), ResourceError>(())
                    }))
                    .await;
            }
        }
        self.send_meter_events(ctx).await;
    }

    /// Sends the due credit grants and meter events to Stripe, one call and one commit each
    /// (grants first: Stripe applies them to the usage invoice).
    pub async fn send_meter_events(&self, ctx: &Ctx) {
        let Some(current) = self.load() else { return };
        for id in usage::credits::due(&current, self.now_s()) {
            let Some(current) = self.load() else { return };
            let Some(action) = usage::credits::action(&current, &id) else {
                continue;
            };
            let outcome = self.effects.perform(&current, "", action).await;
            let Some(current) = self.load() else { return };
            let step = Ctx {
                now: self.now_s(),
                ..ctx.clone()
            };
            let _ = self
                .commit(apply(&current, &step, |d| {
                    usage::credits::apply(d, &id, outcome);
                    Ok::<(), ResourceError>(())
                }))
                .await;
        }
        let Some(current) = self.load() else { return };
        for key in usage::meter::due(&current, self.now_s()) {
            let Some(current) = self.load() else { return };
            let Some((resource_id, action)) = usage::meter::action(&current, &key) else {
                continue;
            };
            let outcome = self.effects.perform(&current, &resource_id, action).await;
            let Some(current) = self.load() else { return };
            let step = Ctx {
                now: self.now_s(),
                ..ctx.clone()
            };
            let _ = self
                .commit(apply(&current, &step, |d| {
                    usage::meter::apply(d, &key, outcome);
                    Ok::<(), ResourceError>(())
                }))
                .await;
        }
    }
}
