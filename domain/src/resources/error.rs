use serde::{Deserialize, Serialize};

use crate::account::AccountError;
use crate::catalog::Scope;
use crate::ledger::format_amount;
use crate::resources::model::ErrorInfo;
use crate::stripe_api::PaymentError;
use crate::text::truncate;

/// What can go wrong on a resource endpoint. [`ResourceError::describe`] says what it means
/// (code and message); errors.rs adds the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ResourceError {
    InvalidRequest {
        message: String,
    },
    UnknownService {
        service_id: String,
    },
    InvalidConfiguration {
        field: String,
        message: String,
    },
    RequiresPaymentCredentials,
    PlanRequired,
    PlanAlreadyActive {
        service_id: String,
    },
    /// The service's `count` constraint: `at_most` live resources per account or per project
    /// (`scope`) already exist.
    ResourceLimitReached {
        service_id: String,
        at_most: u32,
        scope: Scope,
    },
    UpdateNotAllowed {
        from: String,
        to: String,
    },
    NotFound,
    Busy,
    RotationNotSupported,
    InsufficientScope {
        needed: String,
    },
    SpendingCapExceeded {
        spent: u64,
        cap: u64,
        amount: u64,
        currency: String,
    },
    CurrencyNotSupported {
        expected: String,
    },
    Payment {
        error: PaymentError,
    },
    QuoteExpired,
    NotAwaitingConfirmation,
    PriceChanged {
        domain: String,
        amount: u64,
        currency: String,
    },
    DomainUnavailable {
        domain: String,
    },
    NoDomainAvailable,
    Backend {
        code: String,
        message: String,
    },
    /// The operator's backend still answered `pending` after `attempts` checks over `waited`
    /// seconds.
    BackendTimeout {
        attempts: u32,
        waited: i64,
    },
    UnsupportedPurpose {
        purpose: String,
    },
    /// Another body under an `Idempotency-Key` or `orchestrator_resource_id` already used.
    IdempotencyConflict,
    /// `submitted_information` does not match the `needs_information` schema.
    InvalidInformation {
        field: String,
        message: String,
    },
    /// This kind of service cannot be linked (`reason` says what to do instead).
    LinkNotSupported {
        service_id: String,
        reason: String,
    },
    /// What `submitted_information` names is not this account's.
    LinkTargetNotFound {
        message: String,
    },
    /// This kind of resource cannot take a new configuration after it was made.
    ConfigurationNotUpdatable {
        service_id: String,
    },
    Unavailable,
    /// No usable `TOKEN_ENCRYPTION_KEYS` (or key for a sealed token): nothing is minted.
    SecretsUnavailable,
    Account {
        error: AccountError,
    },
}

impl From<AccountError> for ResourceError {
    fn from(error: AccountError) -> Self {
        ResourceError::Account { error }
    }
}

pub(crate) fn invalid(message: impl Into<String>) -> ResourceError {
    ResourceError::InvalidRequest {
        message: message.into(),
    }
}

/// The error code of a resource whose purchase failed and whose charge could not be refunded.
pub const REFUND_FAILED: &str = "refund_failed";

impl ResourceError {
    /// The stable code and the message of a failure of the resource itself (its rules, its
    /// payment, its external work): what the caller sees and what a failed job leaves on the
    /// resource. `None` for failures of the request around it (account, storage, secrets),
    /// which errors.rs maps like any request's.
    pub fn describe(&self) -> Option<(&'static str, String)> {
        Some(match self {
            ResourceError::InvalidRequest { message } => said("invalid_request", message.clone()),
            ResourceError::UnknownService { service_id } => said("unknown_service",
                format!("service {:?} is not in the catalog; see GET /provisioning/services", truncate(service_id, 64)),
            ),
            ResourceError::InvalidConfiguration { field, message } => {
                said("invalid_configuration", format!("{field}: {message}"))
            }
            ResourceError::RequiresPaymentCredentials => said("requires_payment_credentials",
                "this service is paid: send payment_credentials with a stripe_payment_token",
            ),
            ResourceError::PlanRequired => said("plan_required",
                "the account needs a plan this service is offered under; create the plan first",
            ),
            ResourceError::PlanAlreadyActive { service_id } => said("plan_already_active",
                format!("the account already has the {service_id} plan; change it with update_service"),
            ),
            ResourceError::ResourceLimitReached { service_id, at_most, scope } => said("resource_limit_reached",
                format!(
                    "{service_id} allows at most {at_most} per {} (its count constraint in the catalog), and that many exist; remove one or use an existing one",
                    match scope { Scope::Account => "account", Scope::Project => "project" }
                ),
            ),
            ResourceError::UpdateNotAllowed { from, to } => said("update_not_allowed",
                format!("{from} cannot change to {to}; see allowed_updates in the catalog"),
            ),
            ResourceError::NotFound => said("resource_not_found", "no such resource on this account"),
            ResourceError::Busy => said("resource_busy",
                "the resource has work in progress; poll GET until it is no longer pending",
            ),
            ResourceError::RotationNotSupported => said("rotation_not_supported",
                "this resource has no credentials to rotate",
            ),
            ResourceError::InsufficientScope { needed } => said("insufficient_scope",
                format!("the access token lacks the {needed} scope"),
            ),
            ResourceError::SpendingCapExceeded { spent, cap, amount, currency } => said("spending_cap_exceeded",
                format!(
                    "this costs {} but only {} of this month's {} cap is left; the owner can raise the cap on the dashboard (POST /provisioning/deep_links)",
                    format_amount(*amount, currency),
                    format_amount(cap.saturating_sub(*spent), currency),
                    format_amount(*cap, currency)
                ),
            ),
            ResourceError::CurrencyNotSupported { expected } => said("currency_not_supported",
                format!("this provider charges in {expected} only"),
            ),
            ResourceError::QuoteExpired => said("quote_expired",
                "the quote expired; a fresh quote is on the resource: GET it and confirm again",
            ),
            ResourceError::NotAwaitingConfirmation => said("not_awaiting_confirmation",
                "this resource has no quote waiting for confirmation",
            ),
            ResourceError::PriceChanged { domain, amount, currency } => said("price_changed",
                format!("{domain} is quoted at {} ({amount} cents); confirm with that amount", format_amount(*amount, currency)),
            ),
            ResourceError::DomainUnavailable { domain } => said("domain_unavailable",
                format!("{domain} is no longer available; choose another candidate"),
            ),
            ResourceError::NoDomainAvailable => said("no_domain_available",
                "no candidate name is available for this query; try another domain_query",
            ),
            ResourceError::Backend { code, message } => said("backend_error",
                format!("the platform could not do it ({code}): {message}"),
            ),
            ResourceError::BackendTimeout { attempts, waited } => said("backend_timeout",
                format!("the platform was still provisioning it after {attempts} checks over {waited} s; gave up (remove it and create it again)"),
            ),
            ResourceError::UnsupportedPurpose { purpose } => said("unsupported_purpose",
                format!("purpose {:?} is not served; use one of {} (deep_link_purposes in GET /provisioning/health)",
                    truncate(purpose, 64), crate::dashboard::place::purposes().join(", ")),
            ),
            ResourceError::IdempotencyConflict => said("idempotency_conflict",
                "this Idempotency-Key or orchestrator_resource_id was already used with a different body; use a new one",
            ),
            ResourceError::InvalidInformation { field, message } => {
                said("invalid_information", format!("{field}: {message}"))
            }
            ResourceError::LinkNotSupported { service_id, reason } => said("link_not_supported",
                format!("{} cannot be linked: {reason}", truncate(service_id, 64)),
            ),
            ResourceError::LinkTargetNotFound { message } => said("link_target_not_found", message.clone()),
            ResourceError::ConfigurationNotUpdatable { service_id } => said("configuration_not_updatable",
                format!("the configuration of a {} resource cannot change after it is made; create a new one", truncate(service_id, 64)),
            ),
            ResourceError::Payment { error } => return Some(error.describe()),
            // Failures of the request around the resource: errors.rs maps them like any request's.
            ResourceError::Unavailable
            | ResourceError::SecretsUnavailable
            | ResourceError::Account { .. } => return None,
        })
    }
}

fn said(code: &'static str, message: impl Into<String>) -> (&'static str, String) {
    (code, message.into())
}

/// The `{code, message}` a failed job leaves on its resource. A job only fails on its own work
/// (an answer, a payment, the backend), never on the request around it; if one did, it says so
/// generically.
pub fn resource_error_info(e: &ResourceError) -> ErrorInfo {
    let (code, message) = e
        .describe()
        .unwrap_or(("internal_error", "an internal error occurred".to_string()));
    ErrorInfo {
        code: code.to_string(),
        message,
    }
}
