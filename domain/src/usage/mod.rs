//! Usage reports (our extension; docs/PROTOCOL.md §6.4): the operator's platform reports what a
//! usage-based resource used (`POST /v1/usage`); the gateway records it once in the account's
//! ledger, counts it against the month's spend, sends it to Stripe as a Billing meter event
//! (`meter`), and pauses the account's usage-based resources when the spend reaches the cap
//! (`cap`).
//!
//! Invariants:
//! - A report is recorded once per (account, `idempotency_key`): the same key with the same
//!   report answers the first record (`replayed`); with another report it is
//!   `idempotency_conflict` and nothing changes. Anything refused changes nothing.
//! - A report is never refused for being over the cap: the usage happened, so it is recorded,
//!   billed and shown as over the cap. The cap acts by pausing, not by losing records.
//! - Its meter event is stored in the same step as the record, and sent from the alarm until
//!   Stripe accepts or refuses it: an outage delays billing, never loses it.

pub mod cap;
pub mod credits;
pub mod error;
pub mod meter;
pub mod report;

pub use cap::{next_wake, reconcile};
pub use error::{
    UsageError, MAX_AGE_SECONDS, MAX_AHEAD_SECONDS, MAX_AMOUNT, MAX_KEY_LEN, MAX_QUANTITY,
};
pub use report::{render, report, UsageReport};
