//! Operations on the registry object of one domain name (builtin registrar): every operation
//! answers a [`RegistryAnswer`]; the object never refuses.

use domain::errors::ApiError;
use serde::{Deserialize, Serialize};
use worker::Env;

use super::transport;

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistryOp {
    Status,
    Claim {
        account_id: String,
        resource_id: String,
    },
    Release {
        account_id: String,
        resource_id: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RegistryAnswer {
    /// Someone holds the name.
    pub taken: bool,
    /// The caller holds it.
    pub owned: bool,
}

/// Runs `op` on the registry object of `domain`.
pub async fn call(env: &Env, domain: &str, op: &RegistryOp) -> Result<RegistryAnswer, ApiError> {
    let stub = transport::stub(env, "REGISTRY", domain)?;
    transport::decode(&transport::post(stub, op).await?)
}
