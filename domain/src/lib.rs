//! Pure domain logic of the APP provider.
//!
//! Rule of this crate: no `worker::` imports, no I/O, no clock and no randomness of its own.
//! Time comes in as unix seconds and randomness as byte slices, so every rule here is tested
//! natively with `cargo test -p app-domain`. Where the domain must wait on the world (the
//! account object's storage, alarm and outbound calls), it does so over traits the glue
//! implements (`engine::ports`). The worker glue (`src/` at the top level) only
//! translates HTTP to calls into this crate and results back to HTTP.

pub mod account;
pub mod account_request;
pub mod audit;
pub mod audit_action;
pub mod audit_shards;
pub mod audit_sql;
pub mod catalog;
pub mod closing;
pub mod cost;
pub mod crypto;
pub mod dashboard;
pub mod deployment;
pub mod domain_names;
pub mod email;
pub mod engine;
pub mod errors;
pub mod form;
pub mod jwt;
pub mod ledger;
pub mod oauth;
pub mod object_sql;
#[cfg(test)]
mod object_sql_tests;
pub mod openapi;
pub mod pages;
pub mod pattern;
pub mod pkce;
pub mod protocol;
pub mod ratelimit;
pub mod resources;
pub mod routes;
pub mod schema;
pub mod sealing;
pub mod signature;
pub mod stripe_api;
pub mod stripe_events;
pub mod tagged;
#[cfg(test)]
mod tagged_tests;
pub mod text;
pub mod time;
pub mod tokens;
pub mod usage;
pub mod wire;
