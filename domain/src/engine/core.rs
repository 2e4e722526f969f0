//! The engine's state and its one way to change the account: [`Engine::commit`].
//!
//! The cached account is the stored one (only this object writes it); the counters let the
//! flush and the rescheduler know the outbox is empty without reading it, and `outbox`, once
//! the engine has seen the outbox empty, holds exactly the records written since and not yet
//! deleted, so the flush sends them without reading and decoding the rows again.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::task::Waker;

use serde_json::json;

use crate::account::{Account, AccountError, Applied};
use crate::audit::{needed_at_once, AuditRecord};
use crate::engine::ports::{Effects, Level, Store};

/// How long after a change the alarm sends its audit records if the flush never confirmed.
pub const FLUSH_SAFETY_MS: i64 = 10_000;
/// Most external calls one drive ([`Engine::drive`]) makes for one resource.
pub const MAX_STEPS: usize = 12;

/// One account object's engine over its storage `S` and the world `E`.
pub struct Engine<S, E> {
    pub(super) store: S,
    pub(super) effects: E,
    pub(super) cache: RefCell<Option<Account>>,
    pub(super) flushing: Cell<bool>,
    /// Tasks waiting for the running flush to end ([`crate::engine::FlushIdle`]).
    pub(super) flush_waiters: RefCell<Vec<Waker>>,
    /// Counts commits that wrote outbox rows; with `sent_through`, tells the flush and the
    /// rescheduler whether the outbox is known to be empty without reading it.
    pub(super) written: Cell<u64>,
    /// `Some(n)`: every record of the first `n` commits reached D1 and the outbox was empty then.
    pub(super) sent_through: Cell<Option<u64>>,
    /// `Some(false)`: no failed flush is recorded in `kv` (known from memory; `None`: unknown).
    pub(super) flush_failing: Cell<Option<bool>>,
    /// `Some`: the outbox's records, in order, as this object wrote them (known since it saw
    /// the outbox empty); `None`: unknown, the flush reads them from storage.
    pub(super) outbox: RefCell<Option<Vec<AuditRecord>>>,
    /// Resources whose job a caller is driving now.
    pub(super) running: RefCell<HashSet<String>>,
    /// The alarm as last read or set by this object (`None`: not known yet). Only this object
    /// sets its alarm, so the copy stays true; it saves a storage read on every change.
    pub(super) alarm_at: Cell<Option<Option<i64>>>,
    /// Most external calls one drive makes for one resource.
    pub(super) max_steps: usize,
}

impl<S: Store, E: Effects> Engine<S, E> {
    pub fn new(store: S, effects: E) -> Self {
        Engine {
            store,
            effects,
            cache: RefCell::new(None),
            flushing: Cell::new(false),
            flush_waiters: RefCell::new(Vec::new()),
            written: Cell::new(0),
            sent_through: Cell::new(None),
            flush_failing: Cell::new(None),
            outbox: RefCell::new(None),
            running: RefCell::new(HashSet::new()),
            alarm_at: Cell::new(None),
            max_steps: MAX_STEPS,
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn effects(&self) -> &E {
        &self.effects
    }

    /// Now, unix s.
    pub fn now_s(&self) -> i64 {
        self.effects.now_ms() / 1000
    }

    /// Logs an internal failure; the caller is told the account is unavailable.
    pub fn internal(&self, context: &str, e: impl std::fmt::Display) -> AccountError {
        self.effects.log(
            Level::Error,
            json!({"level": "error", "msg": context, "detail": e.to_string()}),
        );
        AccountError::Unavailable
    }

    /// The account (a copy), read from storage the first time.
    pub fn load(&self) -> Option<Account> {
        if let Some(a) = self.cache.borrow().as_ref() {
            return Some(a.clone());
        }
        let stored = self.store.read_state();
        // Nothing was committed by this instance yet (a commit fills the cache), so what was
        // read is all there is.
        if stored.outbox_empty && self.outbox.borrow().is_none() {
            *self.outbox.borrow_mut() = Some(Vec::new());
            if self.sent_through.get().is_none() {
                self.sent_through.set(Some(self.written.get()));
            }
        }
        if self.flush_failing.get().is_none() {
            self.flush_failing.set(Some(stored.flush_failing));
        }
        let account = stored.account?;
        *self.cache.borrow_mut() = Some(account.clone());
        Some(account)
    }

    /// Reads the account's state in place (no copy), loading it first if needed.
    pub fn peek<R>(&self, f: impl FnOnce(&Account) -> R) -> Option<R> {
        if self.cache.borrow().is_none() {
            self.load()?;
        }
        self.cache.borrow().as_ref().map(f)
    }

    /// Resources whose job is being driven now.
    pub fn in_flight(&self) -> Vec<String> {
        self.running.borrow().iter().cloned().collect()
    }

    /// For an object about to write its first account: nothing was ever written here, so no
    /// failed flush is on record either, and no alarm is set (at worst one armed by a create
    /// whose write then failed: [`Self::arm`] replaces it). Saves storage reads.
    pub fn assume_empty(&self) {
        self.flush_failing.set(Some(false));
        if self.outbox.borrow().is_none() {
            *self.outbox.borrow_mut() = Some(Vec::new());
        }
        if self.alarm_at.get().is_none() {
            self.alarm_at.set(Some(None));
        }
    }

    /// The runtime clears a fired alarm: read it again rather than trust the copy.
    pub fn alarm_fired(&self) {
        self.alarm_at.set(None);
    }

    /// Writes the new state and its records in one transaction; then sends them to D1 at once
    /// when other requests read their rows (or `audit_batch_ms` is 0), else leaves them to the
    /// alarm, which sends every record waiting by then in one write.
    pub async fn commit<T, Er: From<AccountError>>(
        &self,
        applied: Applied<T, Er>,
    ) -> Result<T, Er> {
        self.commit_with(applied, S::Extra::default()).await
    }

    /// [`Self::commit`], with `extra` in the same transaction when the state changed.
    pub async fn commit_with<T, Er: From<AccountError>>(
        &self,
        applied: Applied<T, Er>,
        extra: S::Extra,
    ) -> Result<T, Er> {
        if applied.changed() {
            let state_json = serde_json::to_string(&applied.account)
                .map_err(|e| self.internal("encode state", e))?;
            let mut rows = Vec::with_capacity(applied.records.len());
            for r in &applied.records {
                let text =
                    serde_json::to_string(r).map_err(|e| self.internal("encode record", e))?;
                rows.push((r.seq, text));
            }
            let batch_ms = self.effects.audit_batch_ms();
            let at_once = batch_ms == 0 || applied.records.iter().any(needed_at_once);
            if !applied.records.is_empty() {
                // Armed before the write: if this object dies before the records are sent, the
                // alarm still sends them.
                let wait = if at_once { FLUSH_SAFETY_MS } else { batch_ms };
                self.arm(self.effects.now_ms() + wait).await;
            }
            self.store
                .write(state_json, rows, extra)
                .map_err(|e| self.internal("write state", e))?;
            if !applied.records.is_empty() {
                self.written.set(self.written.get() + 1);
                if let Some(outbox) = self.outbox.borrow_mut().as_mut() {
                    outbox.extend(applied.records);
                }
            }
            *self.cache.borrow_mut() = Some(applied.account);
            if at_once {
                self.flush().await;
            }
        }
        applied.result
    }
}
