//! Error codes: every code `domain::errors` produces is in the enum of its envelope (and
//! nothing else is), each is explained, and its status is answered by some operation of the
//! family. The exhaustive matches make a new variant a compile error here until it is listed.

use std::collections::BTreeSet;

use serde_json::Value;

use super::tests::{doc, operation_of, sample};
use crate::account::{AccountError, AccountStatus, ConsentError};
use crate::account_request::AccountRequestError;
use crate::errors::{ApiError, Failure, OAuthError};
use crate::resources::ResourceError;
use crate::routes::{Family, Route, TABLE};
use crate::signature::SignatureError;
use crate::stripe_api::PaymentError;

fn signature_errors() -> Vec<SignatureError> {
    let all = vec![
        SignatureError::Missing,
        SignatureError::TooLong,
        SignatureError::Malformed,
        SignatureError::NoTimestamp,
        SignatureError::NoSignature,
        SignatureError::Mismatch,
        SignatureError::Expired,
        SignatureError::FromTheFuture,
        SignatureError::NoSecretConfigured,
    ];
    for e in &all {
        match e {
            SignatureError::Missing
            | SignatureError::TooLong
            | SignatureError::Malformed
            | SignatureError::NoTimestamp
            | SignatureError::NoSignature
            | SignatureError::Mismatch
            | SignatureError::Expired
            | SignatureError::FromTheFuture
            | SignatureError::NoSecretConfigured => {}
        }
    }
    all
}

fn api_errors() -> Vec<ApiError> {
    let mut all: Vec<ApiError> = signature_errors().into_iter().map(ApiError::from).collect();
    all.extend([
        ApiError::ApiVersion { got: None },
        ApiError::ApiVersion {
            got: Some("0.1c".into()),
        },
        ApiError::NotFound,
        ApiError::MethodNotAllowed { allow: "GET" },
        ApiError::PayloadTooLarge { limit: 65536 },
        ApiError::InvalidRequest("the Content-Length header is not a number".into()),
        ApiError::UnsupportedMediaType {
            expected: "application/json",
        },
        ApiError::RateLimited { retry_after: 1 },
        ApiError::Unavailable("account storage".into()),
        ApiError::Internal,
        ApiError::Misconfigured("PUBLIC_BASE_URL: is not set".into()),
        ApiError::NotServing,
    ]);
    for e in &all {
        match e {
            ApiError::Signature(_)
            | ApiError::ApiVersion { .. }
            | ApiError::NotFound
            | ApiError::MethodNotAllowed { .. }
            | ApiError::PayloadTooLarge { .. }
            | ApiError::InvalidRequest(_)
            | ApiError::UnsupportedMediaType { .. }
            | ApiError::RateLimited { .. }
            | ApiError::Unavailable(_)
            | ApiError::Internal
            | ApiError::Misconfigured(_)
            | ApiError::NotServing => {}
        }
    }
    all
}

fn account_request_errors() -> Vec<AccountRequestError> {
    let all = vec![
        AccountRequestError::InvalidRequest {
            message: "id is required".into(),
        },
        AccountRequestError::InvalidEmail {
            message: "email has no @".into(),
        },
        AccountRequestError::Expired,
        AccountRequestError::InvalidScope {
            scope: "admin".into(),
        },
        AccountRequestError::InvalidCodeChallenge {
            message: "code_challenge_method must be \"S256\"".into(),
        },
        AccountRequestError::IdempotencyConflict,
        AccountRequestError::AccountUnavailable {
            status: "suspended".into(),
        },
        AccountRequestError::AlreadyRedeemed,
        AccountRequestError::Unavailable,
        AccountRequestError::Internal,
    ];
    for e in &all {
        match e {
            AccountRequestError::InvalidRequest { .. }
            | AccountRequestError::InvalidEmail { .. }
            | AccountRequestError::Expired
            | AccountRequestError::InvalidScope { .. }
            | AccountRequestError::InvalidCodeChallenge { .. }
            | AccountRequestError::IdempotencyConflict
            | AccountRequestError::AccountUnavailable { .. }
            | AccountRequestError::AlreadyRedeemed
            | AccountRequestError::Unavailable
            | AccountRequestError::Internal => {}
        }
    }
    all
}

fn oauth_errors() -> Vec<OAuthError> {
    let all = vec![
        OAuthError::InvalidRequest("grant_type is required".into()),
        OAuthError::UnsupportedGrantType,
        OAuthError::InvalidClient("sign the request, or use PKCE".into()),
        OAuthError::InvalidGrant("the code or token is not valid".into()),
    ];
    for e in &all {
        match e {
            OAuthError::InvalidRequest(_)
            | OAuthError::UnsupportedGrantType
            | OAuthError::InvalidClient(_)
            | OAuthError::InvalidGrant(_) => {}
        }
    }
    all
}

fn account_errors() -> Vec<AccountError> {
    let all = vec![
        AccountError::NotFound,
        AccountError::Inactive {
            status: AccountStatus::Suspended,
        },
        AccountError::Inactive {
            status: AccountStatus::Closed,
        },
        AccountError::InvalidGrant {
            reason: "used".into(),
        },
        AccountError::InvalidClient {
            reason: "unsigned".into(),
        },
        AccountError::InvalidToken,
        AccountError::InvalidTransition {
            from: AccountStatus::Closed,
            to: AccountStatus::Suspended,
        },
        AccountError::Consent(ConsentError::Unknown),
        AccountError::Unavailable,
        AccountError::RateLimited { retry_after: 1 },
    ];
    for e in &all {
        match e {
            AccountError::NotFound
            | AccountError::Inactive { .. }
            | AccountError::InvalidGrant { .. }
            | AccountError::InvalidClient { .. }
            | AccountError::InvalidToken
            | AccountError::InvalidTransition { .. }
            | AccountError::Consent(_)
            | AccountError::Unavailable
            | AccountError::RateLimited { .. } => {}
        }
    }
    all
}

fn payment_errors() -> Vec<PaymentError> {
    let all = vec![
        PaymentError::TokenInvalid {
            message: "deactivated".into(),
        },
        PaymentError::TokenExpired,
        PaymentError::TokenInsufficient {
            available: 100,
            amount: 1200,
            currency: "usd".into(),
        },
        PaymentError::TokenCurrency {
            expected: "usd".into(),
            got: "eur".into(),
        },
        PaymentError::Declined {
            code: "card_declined".into(),
            decline_code: Some("insufficient_funds".into()),
            message: "Your card was declined.".into(),
        },
        PaymentError::Failed {
            code: "resource_missing".into(),
            message: "No such customer".into(),
        },
    ];
    for e in &all {
        match e {
            PaymentError::TokenInvalid { .. }
            | PaymentError::TokenExpired
            | PaymentError::TokenInsufficient { .. }
            | PaymentError::TokenCurrency { .. }
            | PaymentError::Declined { .. }
            | PaymentError::Failed { .. } => {}
        }
    }
    all
}

fn resource_errors() -> Vec<ResourceError> {
    let mut all = vec![
        ResourceError::InvalidRequest {
            message: "service_id is required".into(),
        },
        ResourceError::UnknownService {
            service_id: "gold".into(),
        },
        ResourceError::InvalidConfiguration {
            field: "configuration/scopes/0".into(),
            message: "not allowed".into(),
        },
        ResourceError::RequiresPaymentCredentials,
        ResourceError::PlanRequired,
        ResourceError::PlanAlreadyActive {
            service_id: "free".into(),
        },
        ResourceError::ResourceLimitReached {
            service_id: "api_token".into(),
            at_most: 1,
            scope: crate::catalog::Scope::Project,
        },
        ResourceError::UpdateNotAllowed {
            from: "free".into(),
            to: "gold".into(),
        },
        ResourceError::NotFound,
        ResourceError::Busy,
        ResourceError::RotationNotSupported,
        ResourceError::InsufficientScope {
            needed: "resources:write".into(),
        },
        ResourceError::SpendingCapExceeded {
            spent: 9000,
            cap: 10000,
            amount: 2000,
            currency: "usd".into(),
        },
        ResourceError::CurrencyNotSupported {
            expected: "usd".into(),
        },
        ResourceError::QuoteExpired,
        ResourceError::NotAwaitingConfirmation,
        ResourceError::PriceChanged {
            domain: "acme.apps.example.dev".into(),
            amount: 1200,
            currency: "usd".into(),
        },
        ResourceError::DomainUnavailable {
            domain: "acme.apps.example.dev".into(),
        },
        ResourceError::NoDomainAvailable,
        ResourceError::Backend {
            code: "refused".into(),
            message: "no".into(),
        },
        ResourceError::BackendTimeout {
            attempts: 40,
            waited: 600,
        },
        ResourceError::UnsupportedPurpose {
            purpose: "support".into(),
        },
        ResourceError::IdempotencyConflict,
        ResourceError::InvalidInformation {
            field: "submitted_information/amount".into(),
            message: "must be an integer".into(),
        },
        ResourceError::LinkNotSupported {
            service_id: "api_token".into(),
            reason: "create a new one".into(),
        },
        ResourceError::LinkTargetNotFound {
            message: "acme.apps.example.dev is not a domain this account registered here".into(),
        },
        ResourceError::ConfigurationNotUpdatable {
            service_id: "domain".into(),
        },
        ResourceError::Unavailable,
        ResourceError::SecretsUnavailable,
    ];
    all.extend(
        payment_errors()
            .into_iter()
            .map(|error| ResourceError::Payment { error }),
    );
    all.extend(
        account_errors()
            .into_iter()
            .map(|error| ResourceError::Account { error }),
    );
    for e in &all {
        match e {
            ResourceError::InvalidRequest { .. }
            | ResourceError::UnknownService { .. }
            | ResourceError::InvalidConfiguration { .. }
            | ResourceError::RequiresPaymentCredentials
            | ResourceError::PlanRequired
            | ResourceError::PlanAlreadyActive { .. }
            | ResourceError::ResourceLimitReached { .. }
            | ResourceError::UpdateNotAllowed { .. }
            | ResourceError::NotFound
            | ResourceError::Busy
            | ResourceError::RotationNotSupported
            | ResourceError::InsufficientScope { .. }
            | ResourceError::SpendingCapExceeded { .. }
            | ResourceError::CurrencyNotSupported { .. }
            | ResourceError::Payment { .. }
            | ResourceError::QuoteExpired
            | ResourceError::NotAwaitingConfirmation
            | ResourceError::PriceChanged { .. }
            | ResourceError::DomainUnavailable { .. }
            | ResourceError::NoDomainAvailable
            | ResourceError::Backend { .. }
            | ResourceError::BackendTimeout { .. }
            | ResourceError::UnsupportedPurpose { .. }
            | ResourceError::IdempotencyConflict
            | ResourceError::InvalidInformation { .. }
            | ResourceError::LinkNotSupported { .. }
            | ResourceError::LinkTargetNotFound { .. }
            | ResourceError::ConfigurationNotUpdatable { .. }
            | ResourceError::Unavailable
            | ResourceError::SecretsUnavailable
            | ResourceError::Account { .. } => {}
        }
    }
    all
}

/// One envelope's failures, the schema of its `code` enum, and the routes that answer it.
struct ErrorFamily {
    name: &'static str,
    code_enum: &'static str,
    failures: Vec<Failure>,
    /// Codes the worker glue (`src/`) answers in this envelope without `domain::errors`.
    glue_codes: &'static [&'static str],
    routes: fn(&Route) -> bool,
}

/// Every usage report refusal (`crate::usage::UsageError`), one of each variant.
fn usage_errors() -> Vec<crate::usage::UsageError> {
    use crate::usage::UsageError;
    let all = vec![
        UsageError::Invalid {
            field: "amount".into(),
            message: "must be at most 1000000".into(),
        },
        UsageError::InvalidCredit {
            field: "expires_at".into(),
            message: "is in the past".into(),
        },
        UsageError::ResourceNotFound,
        UsageError::NotUsageBased {
            service_id: "database".into(),
        },
        UsageError::IdempotencyConflict,
        UsageError::AccountClosed,
        UsageError::Account(AccountError::Unavailable),
    ];
    for e in &all {
        // A new variant must be added above.
        match e {
            UsageError::Invalid { .. }
            | UsageError::InvalidCredit { .. }
            | UsageError::ResourceNotFound
            | UsageError::NotUsageBased { .. }
            | UsageError::IdempotencyConflict
            | UsageError::AccountClosed
            | UsageError::Account(_) => {}
        }
    }
    all
}

fn families() -> Vec<ErrorFamily> {
    let transport = || {
        [
            ApiError::Unavailable("account storage".into()),
            ApiError::Internal,
        ]
        .map(|e| e.failure())
    };
    vec![
        ErrorFamily {
            name: "plain",
            code_enum: "PlainErrorCode",
            failures: api_errors()
                .iter()
                // Rendered only in the account request and resource envelopes.
                .filter(|e| !matches!(e, ApiError::UnsupportedMediaType { .. }))
                .map(ApiError::failure)
                // The operator API renders account refusals in the plain envelope.
                .chain(
                    [
                        AccountError::InvalidTransition {
                            from: AccountStatus::Active,
                            to: AccountStatus::Active,
                        },
                        AccountError::Unavailable,
                    ]
                    .iter()
                    .map(AccountError::bearer_failure),
                )
                // `POST /v1/usage`.
                .chain(usage_errors().iter().map(crate::usage::UsageError::failure))
                .collect(),
            // src/operator.rs: a wrong operator secret, an unknown account.
            glue_codes: &["unauthorized", "account_not_found"],
            routes: |_| true,
        },
        ErrorFamily {
            name: "account request",
            code_enum: "AccountRequestErrorCode",
            failures: account_request_errors()
                .iter()
                .map(AccountRequestError::failure)
                .chain([ApiError::UnsupportedMediaType {
                    expected: "application/json",
                }
                .failure()])
                .collect(),
            glue_codes: &[],
            routes: |r| *r == Route::AccountRequests,
        },
        ErrorFamily {
            name: "oauth",
            code_enum: "OAuthErrorCode",
            failures: oauth_errors()
                .iter()
                .map(OAuthError::failure)
                .chain(account_errors().iter().map(AccountError::oauth_failure))
                .chain(transport())
                .collect(),
            glue_codes: &[],
            routes: |r| matches!(r.family(), Family::OAuth | Family::Operator),
        },
        ErrorFamily {
            name: "resource",
            code_enum: "ResourceErrorCode",
            failures: resource_errors()
                .iter()
                .map(ResourceError::failure)
                .chain(account_errors().iter().map(AccountError::bearer_failure))
                .chain([ApiError::UnsupportedMediaType {
                    expected: "application/json",
                }
                .failure()])
                .chain(transport())
                .collect(),
            glue_codes: &[],
            routes: |r| r.family() == Family::Resource,
        },
    ]
}

/// Every response status the operations of the matching routes document.
fn statuses(doc: &Value, routes: fn(&Route) -> bool) -> BTreeSet<u16> {
    TABLE
        .iter()
        .filter(|e| routes(&sample(e)))
        .flat_map(|e| {
            operation_of(doc, e)["responses"]
                .as_object()
                .into_iter()
                .flat_map(|r| r.keys())
                .filter_map(|s| s.parse::<u16>().ok())
        })
        .collect()
}

#[test]
fn every_error_code_is_documented_in_its_envelope() {
    let doc = doc();
    for family in families() {
        let schema = &doc["components"]["schemas"][family.code_enum];
        let documented: BTreeSet<&str> = schema["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no enum", family.code_enum))
            .iter()
            .map(|c| c.as_str().expect("codes are strings"))
            .collect();
        let produced: BTreeSet<&str> = family
            .failures
            .iter()
            .map(|f| &*f.code)
            .chain(family.glue_codes.iter().copied())
            .collect();
        let missing: Vec<_> = produced.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&produced).collect();
        assert!(
            missing.is_empty(),
            "{} envelope: codes missing from {}: {missing:?}",
            family.name,
            family.code_enum
        );
        assert!(
            extra.is_empty(),
            "{} envelope: {} lists codes nothing produces: {extra:?}",
            family.name,
            family.code_enum
        );
        let explained = schema["description"].as_str().unwrap_or_default();
        for code in &documented {
            assert!(
                explained.contains(&format!("`{code}`")),
                "{}: {code} is not explained",
                family.code_enum
            );
        }

        let answered = statuses(&doc, family.routes);
        let responses = &doc["components"]["responses"];
        for f in &family.failures {
            match f.status {
                // Answered for a path's other methods (`x-allow`), never by an operation.
                405 => assert!(responses["MethodNotAllowed"].is_object()),
                status => assert!(
                    answered.contains(&status),
                    "{} envelope: no operation answers {status} ({})",
                    family.name,
                    f.code
                ),
            }
        }
    }
}

#[test]
fn every_error_code_appears_in_the_document() {
    let doc = doc();
    let mut strings = BTreeSet::new();
    fn collect(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("enum", Value::Array(items)) => {
                            out.extend(items.iter().filter_map(Value::as_str).map(str::to_string))
                        }
                        ("description", Value::String(text)) => out.extend(
                            text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                                .map(str::to_string),
                        ),
                        _ => {}
                    }
                    collect(x, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|x| collect(x, out)),
            _ => {}
        }
    }
    collect(&doc, &mut strings);
    for family in families() {
        for f in &family.failures {
            assert!(strings.contains(&*f.code), "{} is not documented", f.code);
        }
    }
}
