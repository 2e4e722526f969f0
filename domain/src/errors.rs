//! Every failure the provider can answer, and the one place where each becomes an HTTP status
//! and one of the protocol's error envelopes (docs/PROTOCOL.md §5).
//!
//! Handlers never build error JSON themselves: they return a typed error, convert it into a
//! [`Failure`] here, and render it with the [`Envelope`] of their endpoint family.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::account::{AccountError, AccountStatus, ConsentError};
use crate::account_request::AccountRequestError;
use crate::protocol::UnsupportedVersion;
use crate::resources::error::ResourceError;
use crate::signature::SignatureError;
use crate::stripe_api::PaymentError;
use crate::text::truncate;

/// The shape an error takes on the wire, chosen by the endpoint family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Envelope {
    /// Signature, version, routing and size errors: `{"error":{"code","message"}}`.
    Plain,
    /// `POST /provisioning/account_requests`: `{"id","type":"error","error":{...}}`.
    AccountRequest { id: Option<String> },
    /// Resource endpoints: `{"status":"error","id","error":{...}}`.
    Resource { id: Option<String> },
    /// `/oauth/*`: RFC 6749 `{"error","error_description"}`.
    OAuth,
}

/// A failure ready to be rendered: HTTP status, stable machine code, human message.
///
/// Durable Objects answer their refusals in this form when the worker only renders them
/// (resource calls, account requests): the worker then needs no decoder for the typed error,
/// which is most of a large enum's code in the wasm (BENCHMARKS.md, "Wasm size").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub status: u16,
    pub code: Cow<'static, str>,
    pub message: String,
    /// Seconds, for `429` and `503` answers (`Retry-After`).
    pub retry_after: Option<u64>,
}

impl Failure {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Failure {
            status,
            code: Cow::Borrowed(code),
            message: message.into(),
            retry_after: None,
        }
    }

    /// The JSON body for this failure in the given envelope.
    pub fn render(&self, envelope: &Envelope) -> Value {
        let error = json!({"code": self.code, "message": self.message});
        match envelope {
            Envelope::Plain => json!({ "error": error }),
            Envelope::AccountRequest { id } => json!({"id": id, "type": "error", "error": error}),
            Envelope::Resource { id } => json!({"status": "error", "id": id, "error": error}),
            Envelope::OAuth => json!({"error": self.code, "error_description": self.message}),
        }
    }
}

/// Failures common to every endpoint: authentication, version, routing, size, internal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    Signature(SignatureError),
    ApiVersion {
        got: Option<String>,
    },
    NotFound,
    MethodNotAllowed {
        allow: &'static str,
    },
    PayloadTooLarge {
        limit: usize,
    },
    /// The body is not what the endpoint accepts; the message names the field.
    InvalidRequest(String),
    UnsupportedMediaType {
        expected: &'static str,
    },
    RateLimited {
        retry_after: u64,
    },
    /// A dependency failed; nothing was changed. Safe to retry.
    Unavailable(String),
    /// A bug or misconfiguration: details go to the log, not to the caller.
    Internal,
    /// Outside development with development settings ([`crate::deployment::check`]): the
    /// health endpoint's answer, naming each setting and its fix.
    Misconfigured(String),
    /// Every other route of such a deployment.
    NotServing,
}

impl From<SignatureError> for ApiError {
    fn from(e: SignatureError) -> Self {
        ApiError::Signature(e)
    }
}

impl From<UnsupportedVersion> for ApiError {
    fn from(e: UnsupportedVersion) -> Self {
        ApiError::ApiVersion { got: e.got }
    }
}

impl ApiError {
    pub fn failure(&self) -> Failure {
        match self {
            ApiError::Signature(e) => Failure::new(401, "invalid_signature", e.reason()),
            ApiError::ApiVersion { got: None } => Failure::new(
                400,
                "invalid_api_version",
                format!(
                    "the API-Version header is required; send API-Version: {}",
                    crate::protocol::API_VERSION
                ),
            ),
            ApiError::ApiVersion { got: Some(v) } => Failure::new(
                400,
                "invalid_api_version",
                format!(
                    "API-Version {:?} is not supported; supported versions: {}",
                    truncate(v, 32),
                    crate::protocol::SUPPORTED_VERSIONS.join(", ")
                ),
            ),
            ApiError::NotFound => Failure::new(404, "not_found", "no such endpoint"),
            ApiError::MethodNotAllowed { allow } => Failure::new(
                405,
                "method_not_allowed",
                format!("this endpoint accepts {allow}"),
            ),
            ApiError::PayloadTooLarge { limit } => Failure::new(
                413,
                "payload_too_large",
                format!("request bodies are limited to {limit} bytes"),
            ),
            ApiError::InvalidRequest(message) => {
                Failure::new(400, "invalid_request", message.clone())
            }
            ApiError::UnsupportedMediaType { expected } => Failure::new(
                415,
                "unsupported_media_type",
                format!("send the body as {expected}"),
            ),
            ApiError::RateLimited { retry_after } => Failure {
                retry_after: Some(*retry_after),
                ..Failure::new(
                    429,
                    "rate_limited",
                    format!("too many requests; retry after {retry_after} s"),
                )
            },
            ApiError::Unavailable(what) => Failure {
                retry_after: Some(5),
                ..Failure::new(
                    503,
                    "temporarily_unavailable",
                    format!("{what} is unavailable; nothing was changed, retry shortly"),
                )
            },
            ApiError::Internal => Failure::new(
                500,
                "internal_error",
                "an internal error occurred; nothing was changed",
            ),
            ApiError::Misconfigured(message) => Failure::new(503, "misconfigured", message.clone()),
            ApiError::NotServing => Failure {
                retry_after: Some(60),
                ..Failure::new(
                    503,
                    "temporarily_unavailable",
                    "this provider is not serving until its operator fixes its configuration (GET /provisioning/health names what); nothing was changed",
                )
            },
        }
    }
}

impl AccountRequestError {
    /// Rendered with [`Envelope::AccountRequest`].
    pub fn failure(&self) -> Failure {
        match self {
            AccountRequestError::InvalidRequest { message } => {
                Failure::new(400, "invalid_request", message.clone())
            }
            AccountRequestError::InvalidEmail { message } => {
                Failure::new(400, "invalid_email", message.clone())
            }
            AccountRequestError::Expired => Failure::new(
                400,
                "expired",
                "expires_at is in the past; send a new account request",
            ),
            AccountRequestError::InvalidScope { scope } => Failure::new(
                400,
                "invalid_scope",
                format!(
                    "scope {scope:?} is not supported; supported scopes: {}",
                    crate::account_request::SUPPORTED_SCOPES.join(", ")
                ),
            ),
            AccountRequestError::InvalidCodeChallenge { message } => {
                Failure::new(400, "invalid_code_challenge", message.clone())
            }
            AccountRequestError::IdempotencyConflict => Failure::new(
                409,
                "idempotency_conflict",
                "this account request id was already used with a different body; use a new id",
            ),
            AccountRequestError::AccountUnavailable { status } => Failure::new(
                403,
                "account_unavailable",
                format!("the account for this email is {status}; its owner must contact support"),
            ),
            AccountRequestError::Unavailable => ApiError::Unavailable("account storage".into()).failure(),
            AccountRequestError::Internal => ApiError::Internal.failure(),
            AccountRequestError::AlreadyRedeemed => Failure::new(
                409,
                "already_redeemed",
                "this account request's code was already exchanged; use the tokens it gave, or send a new account request",
            ),
        }
    }
}

/// Errors of the OAuth endpoints that come before any account is involved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthError {
    InvalidRequest(String),
    UnsupportedGrantType,
    InvalidClient(String),
    InvalidGrant(String),
}

impl OAuthError {
    /// Rendered with [`Envelope::OAuth`] (RFC 6749 §5.2).
    pub fn failure(&self) -> Failure {
        match self {
            OAuthError::InvalidRequest(m) => Failure::new(400, "invalid_request", m.clone()),
            OAuthError::UnsupportedGrantType => Failure::new(
                400,
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token",
            ),
            OAuthError::InvalidClient(m) => Failure::new(401, "invalid_client", m.clone()),
            OAuthError::InvalidGrant(m) => Failure::new(400, "invalid_grant", m.clone()),
        }
    }
}

impl AccountError {
    /// At the token endpoint (RFC 6749 envelope).
    pub fn oauth_failure(&self) -> Failure {
        match self {
            AccountError::InvalidClient { reason } => {
                OAuthError::InvalidClient(reason.clone()).failure()
            }
            AccountError::InvalidGrant { reason } => {
                OAuthError::InvalidGrant(reason.clone()).failure()
            }
            AccountError::Inactive { status } => OAuthError::InvalidGrant(format!(
                "the account is {}; its tokens no longer work",
                status.as_str()
            ))
            .failure(),
            AccountError::NotFound | AccountError::InvalidToken => {
                OAuthError::InvalidGrant("the code or token is not valid".into()).failure()
            }
            AccountError::Unavailable => ApiError::Unavailable("account storage".into()).failure(),
            AccountError::RateLimited { retry_after } => ApiError::RateLimited {
                retry_after: *retry_after,
            }
            .failure(),
            AccountError::InvalidTransition { .. } | AccountError::Consent(_) => {
                ApiError::Internal.failure()
            }
        }
    }

    /// On bearer-authenticated endpoints (resources, deep links).
    pub fn bearer_failure(&self) -> Failure {
        match self {
            AccountError::Inactive {
                status: AccountStatus::Suspended,
            } => Failure::new(
                403,
                "account_suspended",
                "the account is suspended; its owner must contact support",
            ),
            AccountError::Inactive { .. } => {
                Failure::new(403, "account_closed", "the account is closed")
            }
            AccountError::Unavailable => ApiError::Unavailable("account storage".into()).failure(),
            AccountError::RateLimited { retry_after } => ApiError::RateLimited {
                retry_after: *retry_after,
            }
            .failure(),
            AccountError::InvalidTransition { from, to } => Failure::new(
                409,
                "invalid_transition",
                format!(
                    "an account cannot go from {} to {}",
                    from.as_str(),
                    to.as_str()
                ),
            ),
            _ => Failure::new(
                401,
                "invalid_token",
                "the bearer token is missing, expired or revoked; refresh it at /oauth/token",
            ),
        }
    }
}

impl ConsentError {
    /// Title and explanation for the consent page, and the HTTP status.
    pub fn page(&self) -> (u16, &'static str, &'static str) {
        match self {
            ConsentError::Unknown => (404, "This link is not valid", "Ask the tool that sent you here to start again."),
            ConsentError::Expired => (410, "This request has expired", "Nothing was changed. Ask the tool that sent you here to start again."),
            ConsentError::AlreadyAnswered { approved: true } => (409, "Already approved", "You already approved this request. Nothing more to do here."),
            ConsentError::AlreadyAnswered { approved: false } => (409, "Already denied", "You already denied this request. Nothing was shared."),
            ConsentError::NotSignedIn => (403, "Sign in first", "Open the link again and sign in before deciding."),
            ConsentError::WrongOwner => (403, "Wrong account", "You signed in as someone else than the owner of this account. Nothing was changed."),
            ConsentError::BadNonce => (403, "This sign-in was already used", "Open the link again and sign in once more. Nothing was changed."),
            ConsentError::BadCsrf => (403, "This form has expired", "Open the link again to see the request. Nothing was changed."),
        }
    }
}

impl PaymentError {
    pub fn failure(&self) -> Failure {
        let status = match self {
            PaymentError::TokenCurrency { .. } => 400,
            _ => 402,
        };
        let (code, message) = self.describe();
        Failure::new(status, code, message)
    }
}

impl crate::usage::UsageError {
    /// A refused usage report (`POST /v1/usage`) or credit grant (`POST
    /// /v1/accounts/{id}/credits`), rendered with [`Envelope::Plain`].
    pub fn failure(&self) -> Failure {
        use crate::usage::UsageError;
        match self {
            UsageError::Invalid { field, message } => Failure::new(
                400,
                "invalid_usage",
                format!("{}: {message}", truncate(field, 60)),
            ),
            UsageError::InvalidCredit { field, message } => Failure::new(
                400,
                "invalid_credit",
                format!("{}: {message}", truncate(field, 60)),
            ),
            UsageError::ResourceNotFound => Failure::new(
                404,
                "resource_not_found",
                "this account has no such resource (or it was removed)",
            ),
            UsageError::NotUsageBased { service_id } => Failure::new(
                400,
                "not_usage_based",
                format!("the resource's service {} is not usage-based: only services with provider.metered take usage reports", truncate(service_id, 60)),
            ),
            UsageError::IdempotencyConflict => Failure::new(
                409,
                "idempotency_conflict",
                "this idempotency_key was already used with a different body; use a new key",
            ),
            UsageError::AccountClosed => Failure::new(
                409,
                "account_closed",
                "the account is closed or closing: its usage-based resources are gone",
            ),
            UsageError::Account(e) => e.bearer_failure(),
        }
    }
}

impl ResourceError {
    /// Rendered with [`Envelope::Resource`].
    pub fn failure(&self) -> Failure {
        match self {
            ResourceError::Payment { error } => error.failure(),
            ResourceError::Unavailable => ApiError::Unavailable("account storage".into()).failure(),
            ResourceError::SecretsUnavailable => {
                ApiError::Unavailable("API token encryption".into()).failure()
            }
            ResourceError::Account { error } => error.bearer_failure(),
            e => match e.describe() {
                Some((code, message)) => Failure::new(resource_status(e), code, message),
                None => ApiError::Internal.failure(),
            },
        }
    }
}

/// The HTTP status of a resource failure (its code and message are [`ResourceError::describe`]).
fn resource_status(e: &ResourceError) -> u16 {
    match e {
        ResourceError::InvalidRequest { .. }
        | ResourceError::UnknownService { .. }
        | ResourceError::InvalidConfiguration { .. }
        | ResourceError::RequiresPaymentCredentials
        | ResourceError::UpdateNotAllowed { .. }
        | ResourceError::RotationNotSupported
        | ResourceError::CurrencyNotSupported { .. }
        | ResourceError::UnsupportedPurpose { .. }
        | ResourceError::InvalidInformation { .. }
        | ResourceError::LinkNotSupported { .. }
        | ResourceError::ConfigurationNotUpdatable { .. } => 400,
        ResourceError::SpendingCapExceeded { .. } => 402,
        ResourceError::InsufficientScope { .. } => 403,
        ResourceError::NotFound | ResourceError::LinkTargetNotFound { .. } => 404,
        ResourceError::PlanRequired
        | ResourceError::PlanAlreadyActive { .. }
        | ResourceError::ResourceLimitReached { .. }
        | ResourceError::Busy
        | ResourceError::QuoteExpired
        | ResourceError::NotAwaitingConfirmation
        | ResourceError::PriceChanged { .. }
        | ResourceError::DomainUnavailable { .. }
        | ResourceError::NoDomainAvailable
        | ResourceError::IdempotencyConflict => 409,
        ResourceError::Backend { .. } | ResourceError::BackendTimeout { .. } => 502,
        ResourceError::Payment { error } => error.failure().status,
        ResourceError::Unavailable | ResourceError::SecretsUnavailable => 503,
        ResourceError::Account { error } => error.bearer_failure().status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_envelope_has_the_protocol_shape() {
        let f = Failure::new(400, "expired", "the request expired");
        assert_eq!(
            f.render(&Envelope::Plain),
            json!({"error": {"code": "expired", "message": "the request expired"}})
        );
        assert_eq!(
            f.render(&Envelope::AccountRequest {
                id: Some("acctreq_1".into())
            }),
            json!({"id": "acctreq_1", "type": "error",
                   "error": {"code": "expired", "message": "the request expired"}})
        );
        assert_eq!(
            f.render(&Envelope::Resource { id: None }),
            json!({"status": "error", "id": null,
                   "error": {"code": "expired", "message": "the request expired"}})
        );
        assert_eq!(
            f.render(&Envelope::OAuth),
            json!({"error": "expired", "error_description": "the request expired"})
        );
    }

    #[test]
    fn statuses_and_codes() {
        let cases = [
            (
                ApiError::Signature(SignatureError::Mismatch),
                401,
                "invalid_signature",
            ),
            (
                ApiError::ApiVersion { got: None },
                400,
                "invalid_api_version",
            ),
            (ApiError::NotFound, 404, "not_found"),
            (
                ApiError::MethodNotAllowed { allow: "GET" },
                405,
                "method_not_allowed",
            ),
            (
                ApiError::PayloadTooLarge { limit: 10 },
                413,
                "payload_too_large",
            ),
            (
                ApiError::RateLimited { retry_after: 3 },
                429,
                "rate_limited",
            ),
            (ApiError::Internal, 500, "internal_error"),
        ];
        for (error, status, code) in cases {
            let f = error.failure();
            assert_eq!((f.status, &*f.code), (status, code), "{error:?}");
        }
        assert_eq!(
            ApiError::RateLimited { retry_after: 3 }
                .failure()
                .retry_after,
            Some(3)
        );
    }

    #[test]
    fn echoed_input_is_truncated() {
        let long = "9".repeat(1000);
        let f = ApiError::ApiVersion { got: Some(long) }.failure();
        assert!(f.message.len() < 120, "{}", f.message);
    }

    #[test]
    fn a_refused_api_version_keeps_what_was_sent() {
        let refused = crate::protocol::check_api_version(Some("0.1c")).unwrap_err();
        assert_eq!(
            ApiError::from(refused),
            ApiError::ApiVersion {
                got: Some("0.1c".into())
            }
        );
        let missing = crate::protocol::check_api_version(None).unwrap_err();
        assert_eq!(ApiError::from(missing), ApiError::ApiVersion { got: None });
    }
}
