//! Worker glue for the APP provider: HTTP in, domain calls, HTTP out.
//!
//! Everything that decides anything lives in the `app-domain` crate (`domain/`), which is pure
//! and tested natively. This crate only reads requests (bodies once, as bytes, with a size
//! limit), reads configuration from the environment, talks to Durable Objects and D1, and
//! renders results and failures through `domain::errors`.
//!
//! The glue compiles only for wasm32; on other targets this crate is empty so that
//! `cargo test --workspace` stays native and fast.

#[cfg(target_arch = "wasm32")]
mod account_do;
#[cfg(target_arch = "wasm32")]
mod account_requests;
#[cfg(target_arch = "wasm32")]
mod audit_db;
#[cfg(target_arch = "wasm32")]
mod audit_sink;
#[cfg(target_arch = "wasm32")]
mod config;
#[cfg(target_arch = "wasm32")]
mod consent;
#[cfg(target_arch = "wasm32")]
mod dashboard;
#[cfg(target_arch = "wasm32")]
mod directory_do;
#[cfg(target_arch = "wasm32")]
mod discovery;
#[cfg(target_arch = "wasm32")]
mod entry;
#[cfg(target_arch = "wasm32")]
mod external;
#[cfg(target_arch = "wasm32")]
mod faults_do;
#[cfg(target_arch = "wasm32")]
mod gate;
#[cfg(target_arch = "wasm32")]
mod http;
#[cfg(target_arch = "wasm32")]
mod limits;
#[cfg(target_arch = "wasm32")]
mod meter;
#[cfg(target_arch = "wasm32")]
mod oauth;
#[cfg(target_arch = "wasm32")]
mod operator;
#[cfg(target_arch = "wasm32")]
mod outbound;
#[cfg(target_arch = "wasm32")]
mod owner_sign_in;
#[cfg(target_arch = "wasm32")]
mod registry_do;
#[cfg(target_arch = "wasm32")]
mod resources;
#[cfg(target_arch = "wasm32")]
mod rpc;
#[cfg(target_arch = "wasm32")]
mod storage;
#[cfg(target_arch = "wasm32")]
mod stripe;
#[cfg(target_arch = "wasm32")]
mod verify;
#[cfg(target_arch = "wasm32")]
mod webhooks;
