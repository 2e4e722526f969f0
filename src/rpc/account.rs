//! Operations on one account's object (`ACCOUNTS.get_by_name(account_id)`): one type per
//! operation, each with its answer and its error ([`Op`]), shared by the callers and the object.
//!
//! Invariants: the table in `account_ops!` is the only place an operation's answer and error
//! are declared; callers never re-declare an answer's shape. Every operation the object answers
//! in `account_op` has `AccountError` as its error; `Resource` and `Dashboard` have their own.

use domain::account::{
    AccountError, CodeStatus, ConsentView, Decision, Issued, NewAccount, OpenConsent,
};
use domain::audit::Actor;
use domain::dashboard::{DashboardError, View};
use domain::errors::Failure;
use domain::resources::{
    ConfirmRequest, CreateRequest, DeepLinkRequest, ResourceError, UpdateRequest,
};
use domain::stripe_events::{EventOutcome, StripeEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::Env;

use super::op::{CallError, Op};
use super::transport;

/// An operation on one account, with who asks and for which request.
#[derive(Debug, Serialize, Deserialize)]
pub struct AccountCall<O = AccountOp> {
    pub actor: Actor,
    pub request_id: Option<String>,
    pub op: O,
}

/// Runs `call` on the account object of `account_id`.
pub async fn call<O: Op + Into<AccountOp>>(
    env: &Env,
    account_id: &str,
    call: AccountCall<O>,
) -> Result<O::Answer, CallError<O::Error>> {
    let stub = transport::stub(env, "ACCOUNTS", account_id).map_err(CallError::Transport)?;
    let call = AccountCall {
        actor: call.actor,
        request_id: call.request_id,
        op: call.op.into(),
    };
    transport::call::<O>(stub, &call).await
}

/// The operations: `Variant(request type) -> answer, error`. The variant, in snake case, is the
/// operation's tag on the wire.
macro_rules! account_ops {
    ($($(#[$doc:meta])* $variant:ident($op:ty) -> $answer:ty, $error:ty;)*) => {
        /// Every operation on an account, for the object's dispatch.
        #[derive(Debug, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum AccountOp {
            $($(#[$doc])* $variant($op),)*
        }

        $(
            impl From<$op> for AccountOp {
                fn from(op: $op) -> Self {
                    AccountOp::$variant(op)
                }
            }

            impl Op for $op {
                type Answer = $answer;
                type Error = $error;
            }
        )*
    };
}

account_ops! {
    /// Creates the account; the same account request creating it again is answered the same.
    Create(NewAccount) -> (), AccountError;
    CodeStatus(CheckCode) -> CodeStatus, AccountError;
    ExchangeCode(ExchangeCode) -> IssuedTokens, AccountError;
    Refresh(Refresh) -> IssuedTokens, AccountError;
    /// The introspection response (RFC 7662), as `account::introspect` renders it.
    Introspect(Introspect) -> Body, AccountError;
    /// The introspection response of an API token resource.
    IntrospectApiKey(IntrospectApiKey) -> Body, AccountError;
    /// Whether a token was revoked.
    Revoke(Revoke) -> bool, AccountError;
    /// When the consent link expires (unix seconds).
    OpenConsent(OpenConsent) -> i64, AccountError;
    ViewConsent(ViewConsent) -> ConsentView, AccountError;
    SignIn(SignIn) -> SignedIn, AccountError;
    Decide(Decide) -> Decided, AccountError;
    Suspend(Suspend) -> (), AccountError;
    Resume(Resume) -> (), AccountError;
    Close(Close) -> (), AccountError;
    /// A resource endpoint: authenticated by the bearer's hash inside the object; answers the
    /// response body.
    /// Refusals come rendered (`ResourceError::failure`): the worker only sends them on.
    Resource(ResourceCall) -> Body, Failure;
    OpenDashboard(OpenDashboard) -> Opened, AccountError;
    Dashboard(DashboardCall) -> Shown, DashboardFailure;
    /// The owner signs in on a dashboard session (the operator's assertion: by the session's
    /// nonce alone; the development form: with the session too).
    DashboardSignIn(DashboardSignIn) -> Opened, AccountError;
    StripeEvent(StripeEvent) -> EventOutcome, AccountError;
    /// The account as the operator API shows it (`dashboard::operator_view`).
    OperatorView(OperatorView) -> Rendered, AccountError;
    /// Sends the account's outbox to D1 now (the operator reads the audit trail from D1).
    FlushAudit(FlushAudit) -> (), AccountError;
    /// Records a usage report (`POST /v1/usage`); refusals are answers too.
    ReportUsage(ReportUsage) -> UsageAnswer, AccountError;
    /// Grants credits (`POST /v1/accounts/{id}/credits`); refusals are answers too.
    GrantCredits(GrantCredits) -> UsageAnswer, AccountError;
}

/// A value the domain rendered, which the worker composes into its answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Rendered(pub Value);

/// A response body the domain rendered, as JSON text: the worker sends it without decoding it
/// (decoding a `Value` through serde_wasm_bindgen walks it across the JS boundary node by node,
/// only for the worker to encode it again).
#[derive(Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Body(pub String);

impl Body {
    pub fn of(value: &Value) -> serde_json::Result<Body> {
        serde_json::to_string(value).map(Body)
    }
}

/// The state of an authorization code, for the replay of an account request.
#[derive(Debug, Serialize, Deserialize)]
pub struct CheckCode {
    pub code_hash: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ExchangeCode {
    pub code_hash: String,
    pub verifier: Option<String>,
    pub signed: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Refresh {
    pub refresh_hash: String,
    pub signed: bool,
}

/// What a code exchange or a refresh issued.
#[derive(Debug, Serialize, Deserialize)]
pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub issued: Issued,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Introspect {
    pub token_hash: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct IntrospectApiKey {
    pub token_hash: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Revoke {
    pub token_hash: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ViewConsent {
    pub consent_hash: String,
}

/// The owner signs in on a consent page.
#[derive(Debug, Serialize, Deserialize)]
pub struct SignIn {
    pub consent_hash: String,
    pub email: String,
    pub nonce: String,
}

/// The approval page after a sign-in: its single-use CSRF token and what it shows.
#[derive(Debug, Serialize, Deserialize)]
pub struct SignedIn {
    pub csrf: String,
    pub view: ConsentView,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Decide {
    pub consent_hash: String,
    pub csrf: String,
    pub approve: bool,
}

/// Where to send the owner, and the authorization code when approved.
#[derive(Debug, Serialize, Deserialize)]
pub struct Decided {
    pub decision: Decision,
    pub code: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Suspend {
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Resume {
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Close {
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ReportUsage {
    pub report: domain::usage::UsageReport,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct GrantCredits {
    pub grant: domain::usage::credits::CreditGrant,
}

/// The answer to a usage report or a credit grant: its HTTP status and body (the record, or the error envelope).
#[derive(Debug, Serialize, Deserialize)]
pub struct UsageAnswer {
    pub status: u16,
    pub body: Value,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ResourceCall {
    pub access_hash: String,
    pub public_base: String,
    pub resource: ResourceOp,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceOp {
    Create { req: CreateRequest },
    Link { req: CreateRequest },
    Get { id: String },
    Update { id: String, req: UpdateRequest },
    Rotate { id: String },
    Remove { id: String },
    Confirm { id: String, req: ConfirmRequest },
    DeepLink { req: DeepLinkRequest },
}

/// Opens a dashboard by its single-use deep link.
#[derive(Debug, Serialize, Deserialize)]
pub struct OpenDashboard {
    pub link_hash: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DashboardSignIn {
    pub session_hash: Option<String>,
    pub nonce: String,
    pub email: String,
}

/// What opening a dashboard or signing in on one gives: a session, or the page saying why not
/// (a refusal is an answer, a page, not a failure of the call).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Opened {
    Session(OwnerSession),
    Refused(DashboardError),
}

/// A new dashboard session and what it shows.
#[derive(Debug, Serialize, Deserialize)]
pub struct OwnerSession {
    /// The session token (the browser keeps it in the page's forms).
    pub session: String,
    pub view: View,
    pub signed_in: bool,
    /// The nonce of the owner's next sign-in.
    pub nonce: String,
}

/// An action on the dashboard of a session.
#[derive(Debug, Serialize, Deserialize)]
pub struct DashboardCall {
    pub session_hash: String,
    pub action: DashboardAction,
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

/// The dashboard as a session sees it after an action.
#[derive(Debug, Serialize, Deserialize)]
pub struct Shown {
    pub view: View,
    pub notice: Option<String>,
    /// The page's status when not 200.
    pub status: Option<u16>,
    pub signed_in: bool,
    /// The nonce of the owner's next sign-in.
    pub nonce: String,
}

/// Why a dashboard action failed: a page to show. A resource action's refusal comes rendered
/// (`ResourceError::failure`), as for resource calls.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DashboardFailure {
    Page(DashboardError),
    Resource(Failure),
}

impl From<ResourceError> for DashboardFailure {
    fn from(e: ResourceError) -> Self {
        DashboardFailure::Resource(e.failure())
    }
}

impl From<AccountError> for DashboardFailure {
    fn from(e: AccountError) -> Self {
        DashboardFailure::from(ResourceError::from(e))
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct OperatorView;

#[derive(Debug, Serialize, Deserialize)]
pub struct FlushAudit;
