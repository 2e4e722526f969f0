//! Resources (docs/PROTOCOL.md §4): plans, API tokens, domains and operator-backed services, with
//! payments that survive outages and a hard spending cap.
//!
//! A resource's external work (Stripe, the registrar, the operator's backend) is a *job*: a
//! small saga stored on the resource. [`next_action`] says which external call comes next (with
//! its idempotency key); the glue performs it and feeds the answer to [`apply_outcome`], which
//! records it and moves on. Each step is committed before the next call, so a crash or an
//! outage resumes where it stopped, and a repeated call carries the same idempotency key.
//!
//! Invariants:
//! - A create the orchestrator names (`Idempotency-Key`, `orchestrator_resource_id`) is matched
//!   by those names: the same names return the same resource, another body under them is
//!   `idempotency_conflict`, and a project may hold several resources of one service. An
//!   unnamed create is matched by (project_id, service_id). An account has at most one plan. A
//!   retried create returns the existing resource and starts nothing (unless it carries the
//!   `submitted_information` the resource asked for: `information`).
//! - Money is reserved in the ledger (cap checked) before the first external call; a definite
//!   failure before the charge releases it; success settles it; a definite failure after the
//!   charge refunds it (a `Refund` job, recorded in the ledger and the audit trail). A purchase
//!   ends with what was paid for in place, or with its money back.
//! - A purchase that fails definitively before its create call was answered, and before any
//!   money moved, leaves no resource behind; one that fails later, or after the charge, leaves
//!   the resource `errored` with the reason (after the refund). A resource whose charge is
//!   live is never dropped, so a retried create finds it and never charges again.
//! - API tokens are random (bytes from the glue); each is stored sealed (AES-256-GCM under
//!   `TOKEN_ENCRYPTION_KEYS`, [`crate::sealing`]) so a replay or a GET can show it, and as its
//!   hash, which is all verification uses. Tokens minted before that (no sealed copy) are
//!   derived from `DERIVATION_KEY`, the resource id and the generation, until rotated.
//!   Operator backends' access configuration is stored as the backend returned it.
//!
//! Files: `model` (the stored resource), `error`, `request` (wire bodies), `lookup`, the
//! commands (`create`, `link`, `information`, `update`, `remove`, `confirm`), `action` (the external calls and their
//! answers), the saga engine (`saga`) and its kinds of work (`jobs/`, one file per kind),
//! `api_token`, `render`.

pub mod action;
pub mod api_token;
pub mod asked;
pub mod confirm;
pub mod create;
pub mod error;
pub mod information;
pub mod jobs;
pub mod link;
pub mod lookup;
pub mod model;
pub mod remove;
pub mod render;
pub mod request;
pub mod saga;
pub mod update;

pub use action::{Action, ActionResult, OperatorStatus};
pub use api_token::{
    api_token_context, api_token_value, introspect_api_key, new_api_token, NewApiToken,
    TokenValueError,
};
pub use asked::information_schema;
pub use confirm::{acknowledge, confirm_domain, refresh_quote};
pub use create::{create, prepare_create, NewIds, Preparation};
pub use error::{ResourceError, REFUND_FAILED};
pub use information::submit_information;
pub use jobs::cancel::{hasten_stale, stale_ended, stale_note, stale_resources};
pub use link::{link, prepare_link};
pub use lookup::{current_plan, find, find_served, live};
pub use model::{
    Candidate, Detail, ErrorInfo, InformationAsked, Job, JobState, OperatorAction, Origin, Quote,
    Resource, ResourceStatus, Settings, StaleSubscription,
};
pub use remove::{mark_removed, remove};
pub use render::{render, summary};
pub use request::{
    parse_confirm, parse_create, parse_deep_link, parse_empty, parse_update, require_scope,
    ConfirmRequest, CreateCall, CreateRequest, DeepLinkRequest, UpdateRequest,
};
pub use saga::{apply_outcome, due, next_action, next_wake};
pub use update::{rotate, update_service};

#[cfg(test)]
mod tests;
