//! Sending the outbox to D1: oldest first, deleting only what D1 confirmed; a failure is
//! retried by the alarm with exponential backoff (1 s doubling, at most 5 min), and a success
//! clears it. One flush runs at a time; others wait for it with [`FlushIdle`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use serde_json::json;

use crate::audit::AuditRecord;
use crate::engine::core::Engine;
use crate::engine::ports::{Effects, Level, Store};

/// Records sent in one D1 write; more when the outbox is read from storage and a change's
/// records go past it (a store may keep a change's records together: [`Store::read_outbox`]).
pub const FLUSH_BATCH: usize = 50;
/// kv: consecutive failed flushes.
pub const FLUSH_ATTEMPTS: &str = "flush_attempts";
/// kv: when to retry the failed flush (unix ms).
pub const FLUSH_WAKE: &str = "flush_wake";

/// The wait before retrying after `attempts` consecutive failed flushes (ms): 1 s doubling,
/// at most 5 min.
pub fn backoff_ms(attempts: i64) -> i64 {
    (1000i64 << (attempts - 1).clamp(0, 9)).min(300_000)
}

/// Ready when no flush is running; the flush that ends wakes its waiters.
pub struct FlushIdle<'a, S, E>(&'a Engine<S, E>);

impl<S, E> Future for FlushIdle<'_, S, E> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if !self.0.flushing.get() {
            return Poll::Ready(());
        }
        self.0.flush_waiters.borrow_mut().push(cx.waker().clone());
        Poll::Pending
    }
}

impl<S: Store, E: Effects> Engine<S, E> {
    /// Ready when no flush is running.
    pub fn flush_idle(&self) -> FlushIdle<'_, S, E> {
        FlushIdle(self)
    }

    /// Sends the outbox to D1, oldest first, deleting what D1 confirmed. On failure, arms the
    /// alarm to retry.
    pub async fn flush(&self) {
        if self.flushing.replace(true) {
            return; // the running flush loops until the outbox is empty
        }
        loop {
            // Commits can only interleave while the write below is awaited.
            let mark = self.written.get();
            let records = self.outbox_batch();
            let Some(last) = records.last().map(|r| r.seq) else {
                self.flushed(mark);
                break;
            };
            match self.effects.write_audit(&records).await {
                Ok(()) => {
                    if !self.store.delete_outbox_through(last) {
                        // The rows stay: read them again later (D1 ignores a record sent twice),
                        // and leave them unconfirmed so the alarm's safety net comes back.
                        self.outbox.replace(None);
                        break;
                    }
                    if let Some(rows) = self.outbox.borrow_mut().as_mut() {
                        rows.retain(|r| r.seq > last);
                    }
                    // A short batch and no commit meanwhile: the outbox is empty now.
                    if records.len() < FLUSH_BATCH && self.written.get() == mark {
                        self.flushed(mark);
                        break;
                    }
                }
                Err(reason) => {
                    let attempts: i64 = self
                        .store
                        .kv(FLUSH_ATTEMPTS)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0)
                        + 1;
                    let delay_ms = backoff_ms(attempts);
                    self.store
                        .set_kv(FLUSH_ATTEMPTS, Some(attempts.to_string()));
                    let wake = self.effects.now_ms() + delay_ms;
                    self.store.set_kv(FLUSH_WAKE, Some(wake.to_string()));
                    self.flush_failing.set(Some(true));
                    self.effects.log(
                        Level::Warn,
                        json!({"level": "warn", "msg": "audit flush failed; retrying", "attempt": attempts,
                               "retry_in_ms": delay_ms, "detail": crate::text::truncate(&reason, 300)}),
                    );
                    break;
                }
            }
        }
        self.flushing.set(false);
        for waiter in self.flush_waiters.take() {
            waiter.wake();
        }
        self.reschedule().await;
    }

    /// The oldest [`FLUSH_BATCH`] records of the outbox: from memory when it holds them, else
    /// read from storage.
    fn outbox_batch(&self) -> Vec<AuditRecord> {
        match self.outbox.borrow().as_ref() {
            Some(rows) => rows.iter().take(FLUSH_BATCH).cloned().collect(),
            None => self.store.read_outbox(FLUSH_BATCH),
        }
    }

    /// Notes that the outbox was emptied with every record of the first `mark` commits; seen
    /// empty, memory holds what is written from now on.
    fn flushed(&self, mark: u64) {
        self.outbox.replace(Some(Vec::new()));
        if self.flush_failing.get() != Some(false) {
            self.store.set_kv(FLUSH_ATTEMPTS, None);
            self.store.set_kv(FLUSH_WAKE, None);
            self.flush_failing.set(Some(false));
        }
        self.sent_through.set(Some(mark));
    }
}
