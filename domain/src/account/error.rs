//! Why an account operation failed. Errors travel between Durable Objects as JSON, so their
//! serde names are part of the wire between objects. They are never stored, and they use serde's
//! default (externally tagged) form: a `tag = "..."` form is decoded through serde's buffering
//! `Content`, about three times the code in the wasm (BENCHMARKS.md, "Wasm size").

use serde::{Deserialize, Serialize};

use super::model::{Account, AccountStatus};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentError {
    Unknown,
    Expired,
    AlreadyAnswered { approved: bool },
    NotSignedIn,
    WrongOwner,
    BadNonce,
    BadCsrf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountError {
    /// No such account (never created, or its object is empty).
    NotFound,
    /// The account is suspended or closed.
    Inactive {
        status: AccountStatus,
    },
    /// RFC 6749 `invalid_grant`: the code or refresh token is unknown, used, expired or revoked.
    InvalidGrant {
        reason: String,
    },
    /// RFC 6749 `invalid_client`: the client did not authenticate as it must.
    InvalidClient {
        reason: String,
    },
    /// The bearer token is unknown, expired or revoked.
    InvalidToken,
    /// A status change that the state machine forbids.
    InvalidTransition {
        from: AccountStatus,
        to: AccountStatus,
    },
    Consent(ConsentError),
    /// Storage failed; nothing was changed. Safe to retry.
    Unavailable,
    /// Too many calls for this account; retry after this many seconds.
    RateLimited {
        retry_after: u64,
    },
}

pub(super) fn grant_err(reason: &str) -> AccountError {
    AccountError::InvalidGrant {
        reason: reason.to_string(),
    }
}

impl Account {
    /// The status to report when it may not act.
    pub fn refusal(&self) -> AccountError {
        match (self.status, &self.closing) {
            (AccountStatus::Active, Some(_)) => AccountError::Inactive {
                status: AccountStatus::Closed,
            },
            (status, _) => AccountError::Inactive { status },
        }
    }
}
