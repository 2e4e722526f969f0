use serde::{Deserialize, Serialize};

use crate::account::AccountError;
use crate::stripe_api::PaymentError;

/// What can go wrong on a resource endpoint; errors.rs maps each to a status and a code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ResourceError {
    InvalidRequest {
        message: String,
    },
    UnknownService {
        service_id: String,
    },
    InvalidConfiguration {
        field: String,
        message: String,
    },
    RequiresPaymentCredentials,
    PlanRequired,
    PlanAlreadyActive {
        service_id: String,
    },
    UpdateNotAllowed {
        from: String,
        to: String,
    },
    NotFound,
    Busy,
    RotationNotSupported,
    InsufficientScope {
        needed: String,
    },
    SpendingCapExceeded {
        spent: u64,
        cap: u64,
        amount: u64,
        currency: String,
    },
    CurrencyNotSupported {
        expected: String,
    },
    Payment {
        error: PaymentError,
    },
    QuoteExpired,
    NotAwaitingConfirmation,
    PriceChanged {
        domain: String,
        amount: u64,
        currency: String,
    },
    DomainUnavailable {
        domain: String,
    },
    NoDomainAvailable,
    Backend {
        code: String,
        message: String,
    },
    /// The operator's backend still answered `pending` after `attempts` checks over `waited`
    /// seconds.
    BackendTimeout {
        attempts: u32,
        waited: i64,
    },
    UnsupportedPurpose {
        purpose: String,
    },
    Unavailable,
    /// No usable `TOKEN_ENCRYPTION_KEYS` (or key for a sealed token): nothing is minted.
    SecretsUnavailable,
    Account {
        error: AccountError,
    },
}

impl From<AccountError> for ResourceError {
    fn from(error: AccountError) -> Self {
        ResourceError::Account { error }
    }
}

pub(crate) fn invalid(message: impl Into<String>) -> ResourceError {
    ResourceError::InvalidRequest {
        message: message.into(),
    }
}

/// The error code of a resource whose purchase failed and whose charge could not be refunded.
pub const REFUND_FAILED: &str = "refund_failed";
