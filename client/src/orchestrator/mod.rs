//! The orchestrator's session: what it remembers between calls (the state file) and the
//! protocol flows built from [`Provider`]'s calls: account request, code exchange, refresh,
//! and the resource calls with a bearer that is refreshed when it expired or is refused once.
//!
//! Every method answers the provider's JSON as an [`Answer`], or an [`Error`] that keeps the
//! provider's error code, message and `Request-Id`.
//!
//! Layout: [`error`] and [`answer`] are what every call yields; [`state`] is the state file;
//! [`account_request`] the request body and its outcome; [`session`] the flows; [`stand_in`]
//! test payment tokens; [`random`] ids and verifiers. The re-exports below are the public
//! names; the files import each other directly, never through this one.

pub mod account_request;
pub mod answer;
pub mod error;
pub mod random;
pub mod session;
pub mod stand_in;
pub mod state;

pub use account_request::{
    AccountOutcome, AccountRequest, Outcome, ACCOUNT_REQUEST_TTL_SECONDS, DEFAULT_STRIPE_ACCOUNT,
};
pub use answer::Answer;
pub use error::Error;
pub use random::random_hex;
pub use session::Orchestrator;
pub use stand_in::test_payment_token;
pub use state::{ResourceRecord, State};
