//! The account object's engine: what one account's Durable Object does with its storage, its
//! alarm and the outside world, as plain Rust over two small traits, so every rule is tested
//! natively (`src/account_do.rs` is the thin wasm shell: SQLite storage, D1 and fetch).
//!
//! - [`ports::Store`]: the object's own storage (the state and its audit outbox written in one
//!   transaction, the outbox read and trimmed, a small kv, the alarm).
//! - [`ports::Effects`]: the clock, configuration, one outbound call per resource step, and
//!   the audit write to D1.
//!
//! Invariants:
//! - A change is computed by the pure domain (`account::apply`) and written, new state and
//!   audit records together, in one transaction before anything is awaited; only then is the
//!   caller answered. So an acknowledged change always has its audit records.
//! - Records go to D1 by the alarm `audit_batch_ms` after the change (several changes in one
//!   write), or right after the change when other requests read their rows
//!   (`audit::needed_at_once`), or when the operator asks (`FlushAudit`).
//! - A new instance reads the state, the flush's kv entries and whether the outbox is empty
//!   together ([`ports::Stored`]). Once it has seen the outbox empty, it keeps the records it
//!   writes in memory as well, in order, and the flush sends those instead of reading the rows
//!   back; the rows are written and deleted as ever. A failed delete makes memory unknown again.
//! - Outbox rows are deleted only after D1 confirmed them; a failed flush is retried by the
//!   alarm with exponential backoff (1 s doubling to 5 min, reset by a success). The alarm is
//!   armed before records are written, so records survive a crash between the write and the
//!   flush and are sent; it is deleted once nothing is due. A busy account sets it once per
//!   batch, not once per change.
//! - External work of resources runs one step at a time: each answer is committed before the
//!   next call, an answer to a step that is no longer current is dropped, and one drive makes
//!   at most [`core::MAX_STEPS`] calls. A resource's job is driven by one caller at a time;
//!   what is not finished in the request is finished by the alarm.
//! - Usage reports' meter events are sent by the alarm, one call and one commit each, and the
//!   hard cap's pause is brought in line with the spend there (`usage`).
//! - The in-memory copy is the stored state: only this object writes it.

pub mod alarm;
pub mod core;
pub mod jobs;
pub mod outbox;
pub mod ports;
pub mod usage;

#[cfg(test)]
mod memory;
#[cfg(test)]
mod tests;

pub use self::core::Engine;
pub use self::outbox::FlushIdle;
pub use self::ports::{Effects, Level, Store, Stored};
