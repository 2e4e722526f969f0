//! Operations on directory objects: the object of a normalised email (`email:<email>`), which
//! finds or creates the account of an account request, and the claim objects of account
//! request ids (`claims:<hh>`, 256 names reserved in the same namespace, chosen by the id's
//! hash), which keep each id's first body so ids are idempotent across emails.

use domain::account_request::{AccountRequest, Outcome};
use domain::errors::Failure;
use serde::{Deserialize, Serialize};
use worker::Env;

use super::op::{CallError, Op};
use super::transport;

/// An operation on a directory object.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectoryOp {
    AccountRequest(AccountRequestCall),
    ClaimRequest(ClaimRequest),
}

/// An account request, for the directory object of its email.
#[derive(Debug, Serialize, Deserialize)]
pub struct AccountRequestCall {
    pub request: AccountRequest,
    pub public_base: String,
    pub request_id: String,
}

// Refusals come rendered (`AccountRequestError::failure`): the worker only sends them on.
impl Op for AccountRequestCall {
    type Answer = Outcome;
    type Error = Failure;
}

/// On the claim object of an account request id: records the first body's fingerprint, or says
/// whether this one is the same.
#[derive(Debug, Serialize, Deserialize)]
pub struct ClaimRequest {
    pub id: String,
    pub fingerprint: String,
    pub email: String,
}

impl Op for ClaimRequest {
    type Answer = ();
    type Error = Failure;
}

/// Runs `call` on the directory object of its request's (normalised) email.
pub async fn account_request(
    env: &Env,
    call: AccountRequestCall,
) -> Result<Outcome, CallError<Failure>> {
    let name = format!("email:{}", call.request.email);
    let stub = transport::stub(env, "DIRECTORY", &name).map_err(CallError::Transport)?;
    transport::call::<AccountRequestCall>(stub, &DirectoryOp::AccountRequest(call)).await
}

/// Runs `claim` on the claim object of its account request id (`account_request::claim_object`).
pub async fn claim_request(env: &Env, claim: ClaimRequest) -> Result<(), CallError<Failure>> {
    let name = domain::account_request::claim_object(&claim.id);
    let stub = transport::stub(env, "DIRECTORY", &name).map_err(CallError::Transport)?;
    transport::call::<ClaimRequest>(stub, &DirectoryOp::ClaimRequest(claim)).await
}
