//! `GET /provisioning/health` and `GET /provisioning/services` (PROTOCOL.md §2–§3), and the
//! catalog every part of the worker reads.

use std::sync::OnceLock;

use domain::catalog::{Catalog, CatalogError, DEFAULT_CATALOG};
use domain::errors::ApiError;
use serde_json::Value;
use worker::Env;

use crate::config;

/// The catalog, parsed once per isolate: the `CATALOG` var when set (JSON text, so an operator
/// can change the offer without a rebuild), else `catalog.json` as built (validated by
/// `build.rs`). A bad `CATALOG` is reported on every request, naming the entry, never ignored.
pub fn catalog(env: &Env) -> Result<&'static Catalog, &'static CatalogError> {
    static CATALOG: OnceLock<Result<Catalog, CatalogError>> = OnceLock::new();
    CATALOG
        .get_or_init(|| {
            let parsed = match config::string(env, "CATALOG") {
                Some(text) => Catalog::parse(&text),
                None => Catalog::parse(DEFAULT_CATALOG),
            };
            if let Err(e) = &parsed {
                worker::console_error!("{}", serde_json::json!({"level": "error", "msg": "catalog is invalid", "detail": e.to_string()}));
            }
            parsed
        })
        .as_ref()
}

pub fn health() -> Value {
    domain::protocol::health()
}

pub fn services(env: &Env) -> Result<Value, ApiError> {
    catalog(env)
        .map(Catalog::discovery)
        .map_err(|_| ApiError::Internal)
}
