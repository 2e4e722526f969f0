//! The object's one alarm: set to the earliest pending work, deleted when nothing is due.
//!
//! Only this object sets its alarm, so the copy in memory (`alarm_at`) stays true and saves a
//! storage read on every change; a failed alarm call makes it unknown again.

use crate::engine::core::{Engine, FLUSH_SAFETY_MS};
use crate::engine::outbox::FLUSH_WAKE;
use crate::engine::ports::{Effects, Store};
use crate::resources::next_wake;
use crate::stripe_events::next_grace_deadline;

/// While an account is closing, the alarm looks at it again this often (ms).
const CLOSING_POLL_MS: i64 = 5_000;

impl<S: Store, E: Effects> Engine<S, E> {
    /// Sets the alarm to the earliest pending work: a failed flush, a resource job, a grace
    /// deadline, a closing account, usage work (the cap's pause, meter events), or records still
    /// in the outbox.
    pub async fn reschedule(&self) {
        let flush = match self.flush_failing.get() {
            Some(false) => None,
            _ => self
                .store
                .kv(FLUSH_WAKE)
                .and_then(|v| v.parse::<i64>().ok()),
        };
        let grace = self.effects.payment_grace();
        let now = self.effects.now_ms();
        let wants = self
            .peek(|a| {
                [
                    next_wake(a).map(|s| s * 1000),
                    crate::usage::next_wake(a, now / 1000).map(|s| s * 1000),
                    next_grace_deadline(a, grace).map(|s| s * 1000),
                    a.closing.as_ref().map(|_| now + CLOSING_POLL_MS),
                ]
            })
            .unwrap_or_default();
        // Records possibly still in the outbox keep the net. Not knowing costs at worst an alarm
        // that finds the outbox empty; looking would cost a read after every change.
        let unsent =
            (self.sent_through.get() != Some(self.written.get())).then_some(now + FLUSH_SAFETY_MS);
        match wants.into_iter().chain([flush, unsent]).flatten().min() {
            Some(at) => self.arm(at).await,
            None => {
                if self.current_alarm().await.is_some() {
                    // Unknown after a failed delete: read again next time.
                    let known = self.store.delete_alarm().await.is_ok().then_some(None);
                    self.alarm_at.set(known);
                }
            }
        }
    }

    /// When the alarm is set to fire (unix ms), from memory when known.
    pub async fn current_alarm(&self) -> Option<i64> {
        if let Some(known) = self.alarm_at.get() {
            return known;
        }
        match self.store.alarm().await {
            Ok(at) => {
                self.alarm_at.set(Some(at));
                at
            }
            Err(_) => None,
        }
    }

    /// Makes sure the alarm fires at `at` (unix ms) or earlier.
    pub async fn arm(&self, at: i64) {
        if self.current_alarm().await.is_none_or(|c| c > at) {
            let delay = (at - self.effects.now_ms()).max(10);
            let set = self.store.set_alarm(delay).await.is_ok();
            self.alarm_at
                .set(set.then_some(Some(self.effects.now_ms() + delay)));
        }
    }
}
