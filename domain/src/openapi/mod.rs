//! The OpenAPI 3.1 description of every endpoint (`docs/openapi.json`), served at
//! `GET /openapi.json`. Tests keep it and the route table in step, both ways.

/// The document, as shipped.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

#[cfg(test)]
mod error_tests;
#[cfg(test)]
mod tests;
