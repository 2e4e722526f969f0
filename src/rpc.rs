//! Calls from the worker to its Durable Objects: one JSON request, one JSON answer.
//!
//! Account objects are addressed by account id (`ACCOUNTS.get_by_name(account_id)`), directory
//! objects by normalised email. Answers are `{"ok": value}` or `{"err": error}`; a transport
//! failure (object unreachable, reset) is `temporarily_unavailable` and changed nothing the
//! caller can observe, so the caller may retry.

use domain::account::{AccountError, NewAccount, OpenConsent};
use domain::account_request::{AccountRequest, AccountRequestError};
use domain::audit::Actor;
use domain::errors::ApiError;
use domain::resources::{ConfirmRequest, CreateRequest, UpdateRequest};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{web_sys, Env, Response, Stub};

/// An operation on one account, with who asks and for which request.
#[derive(Debug, Serialize, Deserialize)]
pub struct AccountCall {
    pub actor: Actor,
    pub request_id: Option<String>,
    pub op: AccountOp,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountOp {
    Create {
        new: NewAccount,
    },
    CodeStatus {
        code_hash: String,
    },
    ExchangeCode {
        code_hash: String,
        verifier: Option<String>,
        signed: bool,
    },
    Refresh {
        refresh_hash: String,
        signed: bool,
    },
    Authenticate {
        access_hash: String,
    },
    Introspect {
        token_hash: String,
    },
    Revoke {
        token_hash: String,
    },
    OpenConsent {
        open: OpenConsent,
    },
    ViewConsent {
        consent_hash: String,
    },
    SignIn {
        consent_hash: String,
        email: String,
        nonce: String,
    },
    Decide {
        consent_hash: String,
        csrf: String,
        approve: bool,
    },
    Suspend {
        reason: String,
    },
    Resume {
        reason: String,
    },
    Close {
        reason: String,
    },
    /// A resource endpoint: authenticated by the bearer's hash inside the object.
    Resource {
        access_hash: String,
        public_base: String,
        resource: ResourceOp,
    },
    IntrospectApiKey {
        token_hash: String,
    },
    OpenDashboard {
        link_hash: String,
    },
    Dashboard {
        session_hash: String,
        action: DashboardAction,
    },
    /// The owner signs in on a dashboard session (the operator's assertion: by the session's
    /// nonce alone; the development form: with the session too).
    DashboardSignIn {
        session_hash: Option<String>,
        nonce: String,
        email: String,
    },
    StripeEvent {
        event: domain::stripe_events::StripeEvent,
    },
    OperatorView,
    /// Sends the account's outbox to D1 now (the operator reads the audit trail from D1).
    FlushAudit,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceOp {
    Create { req: CreateRequest },
    Get { id: String },
    Update { id: String, req: UpdateRequest },
    Rotate { id: String },
    Remove { id: String },
    Confirm { id: String, req: ConfirmRequest },
    DeepLink { purpose: String },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DashboardAction {
    View,
    SetCap {
        cap: u64,
    },
    Confirm {
        resource_id: String,
        domain: String,
        amount: u64,
    },
}

/// An operation on the registry object of one domain name (builtin registrar).
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
pub async fn registry(
    env: &Env,
    domain: &str,
    op: &RegistryOp,
) -> Result<RegistryAnswer, ApiError> {
    let ns = env
        .durable_object("REGISTRY")
        .map_err(|_| ApiError::Internal)?;
    let stub = ns.get_by_name(domain).map_err(|_| ApiError::Internal)?;
    serde_json::from_value(post(stub, op).await?).map_err(|_| ApiError::Internal)
}

/// An operation on the directory object of one email.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectoryOp {
    AccountRequest {
        request: AccountRequest,
        public_base: String,
        request_id: String,
    },
    /// On the claim object of an account request id ([`request_claim`]): records the first
    /// body's fingerprint, or says whether this one is the same.
    ClaimRequest {
        id: String,
        fingerprint: String,
        email: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reply<T, E> {
    Ok(T),
    Err(E),
}

async fn post<T: Serialize>(stub: Stub, body: &T) -> Result<Value, ApiError> {
    let unavailable = || ApiError::Unavailable("account storage".into());
    let json = serde_json::to_string(body).map_err(|_| ApiError::Internal)?;
    // The runtime's own request, `fetch` and `text()`: `worker`'s `Request` reads its URL, headers
    // and `cf` on creation, and its `Response::text` reads the answer chunk by chunk through a
    // stream reader, one promise per chunk.
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_body(&JsValue::from_str(&json));
    let req = web_sys::Request::new_with_str_and_init("https://internal/", &init)
        .map_err(|_| ApiError::Internal)?;
    let object: worker::worker_sys::DurableObject = stub.into_rpc();
    let promise = object.fetch_with_request(&req).map_err(|_| unavailable())?;
    let resp: web_sys::Response = JsFuture::from(promise)
        .await
        .and_then(|r| r.dyn_into())
        .map_err(|_| unavailable())?;
    if resp.status() != 200 {
        return Err(unavailable());
    }
    let text = JsFuture::from(resp.text().map_err(|_| unavailable())?)
        .await
        .map_err(|_| unavailable())?
        .as_string()
        .unwrap_or_default();
    serde_json::from_str(&text).map_err(|_| unavailable())
}

fn decode<T: DeserializeOwned, E: DeserializeOwned>(
    value: Value,
) -> Result<Result<T, E>, ApiError> {
    match serde_json::from_value::<Reply<T, E>>(value).map_err(|_| ApiError::Internal)? {
        Reply::Ok(v) => Ok(Ok(v)),
        Reply::Err(e) => Ok(Err(e)),
    }
}

/// Runs `call` on the account object of `account_id`.
pub async fn account<T: DeserializeOwned>(
    env: &Env,
    account_id: &str,
    call: &AccountCall,
) -> Result<Result<T, AccountError>, ApiError> {
    account_with(env, account_id, call).await
}

/// [`account`] for operations whose error type is not `AccountError`.
pub async fn account_with<T: DeserializeOwned, E: DeserializeOwned>(
    env: &Env,
    account_id: &str,
    call: &AccountCall,
) -> Result<Result<T, E>, ApiError> {
    let ns = env
        .durable_object("ACCOUNTS")
        .map_err(|_| ApiError::Internal)?;
    let stub = ns.get_by_name(account_id).map_err(|_| ApiError::Internal)?;
    decode(post(stub, call).await?)
}

/// Runs `op` on the claim object of an account request id: a reserved name in the directory
/// namespace (`request:<id>`; email objects are `email:<email>`), so ids are idempotent across
/// emails. One more (tiny) object per account request id.
pub async fn request_claim<T: DeserializeOwned>(
    env: &Env,
    id: &str,
    op: &DirectoryOp,
) -> Result<Result<T, AccountRequestError>, ApiError> {
    directory_object(env, &format!("request:{id}"), op).await
}

/// Runs `op` on the directory object of a normalised email.
pub async fn directory<T: DeserializeOwned>(
    env: &Env,
    email: &str,
    op: &DirectoryOp,
) -> Result<Result<T, AccountRequestError>, ApiError> {
    directory_object(env, &format!("email:{email}"), op).await
}

async fn directory_object<T: DeserializeOwned>(
    env: &Env,
    name: &str,
    op: &DirectoryOp,
) -> Result<Result<T, AccountRequestError>, ApiError> {
    let ns = env
        .durable_object("DIRECTORY")
        .map_err(|_| ApiError::Internal)?;
    let stub = ns.get_by_name(name).map_err(|_| ApiError::Internal)?;
    decode(post(stub, op).await?)
}

/// The answer of a Durable Object's fetch handler.
pub fn answer<T: Serialize, E: Serialize>(result: Result<T, E>) -> worker::Result<Response> {
    let reply = match result {
        Ok(v) => Reply::Ok(v),
        Err(e) => Reply::Err(e),
    };
    Response::from_json(&reply)
}
