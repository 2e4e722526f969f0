//! What the engine needs from its host: the object's storage and the world outside it.
//!
//! Both are single-threaded (a Durable Object runs one event at a time, interleaving only at
//! an `.await`), so the futures need not be `Send`.

use serde_json::Value;

use crate::account::Account;
use crate::audit::AuditRecord;
use crate::resources::{Action, ActionResult, Settings};

/// The object's own storage. Only this object writes it.
#[allow(async_fn_in_trait)] // single-threaded host: no `Send` bound wanted
pub trait Store {
    /// More statements the host writes in the same transaction as a change (e.g. applied
    /// Stripe event ids).
    type Extra: Default;

    /// The stored account, if any, and what the engine may know without reading again.
    fn read_state(&self) -> Stored;
    /// Writes the state (JSON), `extra` and one change's outbox records `(seq, record JSON)`
    /// in one transaction: all or nothing.
    fn write(
        &self,
        state_json: String,
        outbox: Vec<(u64, String)>,
        extra: Self::Extra,
    ) -> Result<(), String>;
    /// The oldest outbox records, by `seq`, decoded by the store (each store picks its JSON
    /// decoder); a record that does not decode is skipped. At least `limit` when there are as
    /// many, and more when a change's records go past it: a store that keeps a change's records
    /// together returns them whole, so that deleting through the last one sent frees them.
    fn read_outbox(&self, limit: usize) -> Vec<AuditRecord>;
    /// Deletes the outbox records up to and including `seq`; `false` when the delete failed.
    /// A store that keeps a change's records together may keep those of a change whose
    /// records go past `seq` (all of them, until a later delete): they are sent again if
    /// read again, and D1 ignores a record it has.
    fn delete_outbox_through(&self, seq: u64) -> bool;
    fn kv(&self, key: &str) -> Option<String>;
    /// Sets (`Some`) or deletes (`None`) a kv entry.
    fn set_kv(&self, key: &str, value: Option<String>);
    /// When the alarm fires (unix ms), if set.
    async fn alarm(&self) -> Result<Option<i64>, String>;
    /// Sets the alarm `delay_ms` from now.
    async fn set_alarm(&self, delay_ms: i64) -> Result<(), String>;
    async fn delete_alarm(&self) -> Result<(), String>;
}

/// What an object's storage holds when its engine first reads it: read together (one query
/// in SQLite), so a new instance knows whether records wait in the outbox and whether a failed
/// flush is on record without asking again before its first flush.
#[derive(Debug, Default)]
pub struct Stored {
    pub account: Option<Account>,
    /// No row waits in the outbox.
    pub outbox_empty: bool,
    /// `flush_attempts` or `flush_wake` is in `kv`: a failed flush is on record.
    pub flush_failing: bool,
}

/// Log levels of [`Effects::log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Warn,
    Error,
}

/// The clock, configuration and outbound calls.
#[allow(async_fn_in_trait)] // single-threaded host: no `Send` bound wanted
pub trait Effects {
    /// Now, unix ms.
    fn now_ms(&self) -> i64;
    /// How long records wait in the outbox to be sent together (`AUDIT_BATCH_MS`; 0: at once).
    fn audit_batch_ms(&self) -> i64;
    /// The payment grace period (s).
    fn payment_grace(&self) -> i64;
    fn settings(&self) -> Settings;
    /// Performs one external call of resource `resource_id`'s job.
    async fn perform(&self, account: &Account, resource_id: &str, action: Action) -> ActionResult;
    /// Writes audit records to D1; `Err` with the reason when it did not confirm them.
    async fn write_audit(&self, records: &[AuditRecord]) -> Result<(), String>;
    /// One structured log line.
    fn log(&self, level: Level, line: Value);
}
