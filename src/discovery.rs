//! `GET /provisioning/health` and `GET /provisioning/services` (PROTOCOL.md §2–§3).

use std::sync::OnceLock;

use domain::catalog::{Catalog, CatalogError, DEFAULT_CATALOG};
use domain::errors::ApiError;
use serde_json::Value;

/// The catalog, parsed once per isolate. It was already validated by `build.rs`, so an error
/// here means the build was bypassed; it is reported on every request rather than hidden.
pub fn catalog() -> Result<&'static Catalog, &'static CatalogError> {
    static CATALOG: OnceLock<Result<Catalog, CatalogError>> = OnceLock::new();
    CATALOG
        .get_or_init(|| Catalog::parse(DEFAULT_CATALOG))
        .as_ref()
}

pub fn health() -> Value {
    domain::protocol::health()
}

pub fn services() -> Result<Value, ApiError> {
    catalog()
        .map(Catalog::discovery)
        .map_err(|_| ApiError::Internal)
}
