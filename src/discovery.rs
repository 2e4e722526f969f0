//! `GET /provisioning/health` and `GET /provisioning/services` (docs/PROTOCOL.md §2), the
//! catalog every part of the worker reads, and `GET /openapi.json`.

use std::sync::OnceLock;

use domain::catalog::{Catalog, CatalogError, DEFAULT_CATALOG};
use domain::errors::ApiError;
use serde_json::Value;
use worker::{Env, Response};

use crate::config;
use crate::http::{self, Problem};

/// Where `docs/openapi.json` is served from: the `ASSETS` binding (Workers static assets), which
/// `scripts/build.sh` fills with the document without its indentation. Kept out of the wasm, it
/// is 163 KB less to download and 30 KB less of gzip (BENCHMARKS.md, "Wasm size").
const OPENAPI_ASSET: &str = "https://assets.invalid/openapi.json";

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

/// The catalog's currency, once per isolate: the `CATALOG` var's when set (none when it is
/// invalid), else the built-in catalog's, known at build time (`build.rs`), so an account
/// request does not parse the catalog (a fresh isolate's first one would compile and run the
/// whole parser), nor copy the `CATALOG` text out of the environment each time.
pub fn currency(env: &Env) -> Option<&'static str> {
    static CURRENCY: OnceLock<Option<String>> = OnceLock::new();
    CURRENCY
        .get_or_init(|| match config::string(env, "CATALOG") {
            Some(_) => catalog(env).ok().map(|c| c.currency().to_string()),
            None => Some(env!("APP_CATALOG_CURRENCY").to_string()),
        })
        .as_deref()
}

pub fn health() -> Value {
    domain::protocol::health()
}

/// The body of `GET /provisioning/services`, serialised once per isolate: the catalog does
/// not change while the isolate lives.
pub fn services(env: &Env) -> Result<&'static [u8], ApiError> {
    static BODY: OnceLock<Vec<u8>> = OnceLock::new();
    let catalog = catalog(env).map_err(|_| ApiError::Internal)?;
    if let Some(body) = BODY.get() {
        return Ok(body);
    }
    let body = serde_json::to_vec(&catalog.discovery()).map_err(|_| ApiError::Internal)?;
    Ok(BODY.get_or_init(|| body))
}

/// `GET /openapi.json`: the document from the `ASSETS` binding, with our headers and log line
/// (the worker runs first); missing, it is an internal error, logged.
pub async fn openapi(env: &Env, request_id: &str) -> Result<Response, Problem> {
    let document = match env.assets("ASSETS") {
        Ok(assets) => match assets.fetch(OPENAPI_ASSET, None).await {
            Ok(mut r) if r.status_code() == 200 => r.text().await.ok(),
            _ => None,
        },
        Err(_) => None,
    };
    let Some(document) = document else {
        http::log_internal(request_id, "openapi", "ASSETS has no /openapi.json");
        return Err(Problem::plain(ApiError::Internal));
    };
    http::json_bytes(200, document.into_bytes()).map_err(http::internal)
}
