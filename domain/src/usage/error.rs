//! Why a usage report or a credit grant is refused, and the limits both are checked against.

/// Longest idempotency key accepted (Stripe's own limit).
pub const MAX_KEY_LEN: usize = 255;
/// Largest amount one report may carry, in minor units: the highest cap an owner can set. A
/// report bigger than any cap is a bug in the reporter, not usage.
pub const MAX_AMOUNT: u64 = crate::ledger::MAX_CAP;
/// Largest quantity one report may carry.
pub const MAX_QUANTITY: u64 = 1_000_000_000_000;
/// How far back a report may be dated: Stripe accepts meter events up to 35 days old.
pub const MAX_AGE_SECONDS: i64 = 35 * 86_400;
/// How far ahead a report may be dated (clock skew): Stripe allows 5 minutes.
pub const MAX_AHEAD_SECONDS: i64 = 300;

/// Why a usage report is refused (mapped to envelopes in `crate::errors`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageError {
    /// A field is missing, of the wrong type or out of range.
    Invalid { field: String, message: String },
    /// A credit grant's field is missing, of the wrong type or out of range.
    InvalidCredit { field: String, message: String },
    /// No live resource with this id in this account.
    ResourceNotFound,
    /// The resource is not a usage-based service.
    NotUsageBased { service_id: String },
    /// The key was used with another report.
    IdempotencyConflict,
    /// The account is closed.
    AccountClosed,
    /// The account's object could not take it (storage).
    Account(crate::account::AccountError),
}

impl From<crate::account::AccountError> for UsageError {
    fn from(e: crate::account::AccountError) -> Self {
        UsageError::Account(e)
    }
}

pub(crate) fn invalid(field: &str, message: impl Into<String>) -> UsageError {
    UsageError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}
