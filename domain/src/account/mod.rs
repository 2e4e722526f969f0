//! The account state machine: `(state, command, now) -> new state + audit records`.
//!
//! An account is owned by one Durable Object, which loads the [`Account`], calls [`apply`] with
//! an operation, and writes the new state and the audit records in one storage step.
//!
//! Invariants:
//! - [`apply`] never mutates its input. On `Err` the changes of the operation are discarded,
//!   except when the operation asked to keep them ([`Draft::keep_on_error`]): security
//!   reactions such as revoking tokens on authorization-code or refresh-token reuse persist even
//!   though the request fails.
//! - Every change produces at least one audit record, chained by hash (see `audit`).
//! - Secrets never enter the state: codes, tokens, consent ids and CSRF tokens are stored as
//!   SHA-256 hashes and compared in constant time.
//! - Only an `active` account issues, refreshes or accepts tokens; `suspended` and `closed`
//!   accounts refuse them at once. `closed` is final.
//!
//! Layout (children import each other directly; this file only re-exports for callers):
//! - `model`: the stored shape ([`Account`] and its parts) and [`Policy`].
//! - `error`: [`AccountError`] and [`ConsentError`].
//! - `kernel`: [`Draft`], [`apply`], [`Applied`], [`Ctx`].
//! - `grants`: grants, codes, token families (exchange, refresh rotation, reuse detection).
//! - `consent`: linking an existing account with the owner's approval.
//! - `lifecycle`: create, suspend, resume, close.

mod consent;
mod error;
mod grants;
mod kernel;
mod lifecycle;
mod model;

pub use consent::{
    check_sign_in, decide, open_consent, sign_in, view_consent, ConsentView, Decision, OpenConsent,
    SignInRefusal, MAX_OPEN_CONSENTS,
};
pub use error::{AccountError, ConsentError};
pub use grants::{
    authenticate, code_status, exchange_code, introspect, refresh, revoke_everything, revoke_token,
    token_requester, Access, CodeStatus, Issued, NewCode, NewFamily, MAX_LIVE_FAMILIES,
};
pub use kernel::{apply, orchestrator_actor, Applied, Ctx, Draft};
#[cfg(test)]
pub(crate) use lifecycle::test_new_account;
pub use lifecycle::{close, create, resume, suspend, NewAccount};
pub use model::{
    Account, AccountStatus, AuthCode, Billing, Consent, ConsentState, Grant, Owner, Policy,
    TokenFamily,
};

#[cfg(test)]
mod tests;
