//! Resources (docs/PROTOCOL.md §4): plans, API tokens, domains and operator-backed services, with
//! payments that survive outages and a hard spending cap.
//!
//! A resource's external work (Stripe, the registrar, the operator's backend) is a *job*: a
//! small saga stored on the resource. [`next_action`] says which external call comes next (with
//! its idempotency key); the glue performs it and feeds the answer to [`apply_outcome`], which
//! records it and moves on. Each step is committed before the next call, so a crash or an
//! outage resumes where it stopped, and a repeated call carries the same idempotency key.
//!
//! Invariants:
//! - (project_id, service_id) identifies a deployable; an account has at most one plan. A
//!   retried create returns the existing resource and starts nothing.
//! - Money is reserved in the ledger (cap checked) before the first external call; a definite
//!   failure before the charge releases it; success settles it; a definite failure after the
//!   charge refunds it (a `Refund` job, recorded in the ledger and the audit trail). A purchase
//!   ends with what was paid for in place, or with its money back.
//! - A purchase that fails definitively before its create call was answered, and before any
//!   money moved, leaves no resource behind; one that fails later, or after the charge, leaves
//!   the resource `errored` with the reason (after the refund). A resource whose charge is
//!   live is never dropped, so a retried create finds it and never charges again.
//! - API tokens are random (bytes from the glue); each is stored sealed (AES-256-GCM under
//!   `TOKEN_ENCRYPTION_KEYS`, [`crate::sealing`]) so a replay or a GET can show it, and as its
//!   hash, which is all verification uses. Tokens minted before that (no sealed copy) are
//!   derived from `DERIVATION_KEY`, the resource id and the generation, until rotated.
//!   Operator backends' access configuration is stored as the backend returned it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::account::{Access, Account, AccountError, Draft};
use crate::catalog::{Behaviour, Catalog, Price, Registrar, Service, ServiceKind};
use crate::ledger::{format_amount, CapError};
use crate::sealing::{KeyRing, OpenError, Sealed};
use crate::stripe_api::{self, GrantedToken, PaymentError, StripeFailure};
use crate::time::format_rfc3339;
use crate::tokens::{self, Minted, TokenKind};
use crate::{domain_names, schema};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceStatus {
    Pending,
    NeedsInformation,
    Complete,
    Errored,
    Removed,
}

impl ResourceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceStatus::Pending => "pending",
            ResourceStatus::NeedsInformation => "needs_information",
            ResourceStatus::Complete => "complete",
            ResourceStatus::Errored => "errored",
            ResourceStatus::Removed => "removed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub domain: String,
    pub amount: u64,
    pub currency: String,
    pub available: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    pub candidates: Vec<Candidate>,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Detail {
    Plan {
        subscription_id: Option<String>,
        /// Stripe's view of the subscription (`active`, `trialing`, `past_due`...).
        #[serde(default)]
        subscription_status: Option<String>,
        /// When the latest invoice payment failed (cleared when one is paid).
        #[serde(default)]
        past_due_since: Option<i64>,
        /// Suspended after the grace period of an unpaid invoice.
        #[serde(default)]
        suspended: bool,
    },
    ApiToken {
        scopes: Vec<String>,
        label: Option<String>,
        generation: u32,
        token_hash: String,
        /// The value of the current generation, sealed under `TOKEN_ENCRYPTION_KEYS`. Absent
        /// in states written before tokens were random: those are derived until rotated.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sealed: Option<Sealed>,
    },
    Domain {
        query: String,
        registrar: Registrar,
        quote: Option<Quote>,
        /// The payment token given at create, used when the purchase is confirmed.
        payment_token: Option<String>,
        domain: Option<String>,
        expires_at: Option<i64>,
    },
    Operator {
        access_configuration: Option<BTreeMap<String, String>>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub code: String,
    pub message: String,
}

/// External work in progress on a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum Job {
    /// Start a paid plan: check the token, customer, first period, subscription; when it
    /// replaces a paid plan, then cancel that plan's subscription.
    Subscribe {
        target_service: String,
        token: String,
        amount: u64,
        currency: String,
        stripe_price: String,
        period_days: i64,
        charge_id: String,
        token_checked: bool,
        payment_intent: Option<String>,
        payment_method: Option<String>,
        /// The subscription of the paid plan this one replaces (paid -> paid): cancelled once
        /// the new one exists, in the same saga, so exactly one bills.
        #[serde(default)]
        replaces: Option<String>,
        /// The new subscription, once Stripe created it (only kept while `replaces` is
        /// cancelled).
        #[serde(default)]
        subscription: Option<String>,
    },
    /// Leave a paid plan: cancel the subscription, then move to `target_service` or remove.
    Unsubscribe {
        target_service: Option<String>,
        subscription_id: String,
    },
    /// Buy a confirmed domain: check the token, claim the name, charge, register.
    BuyDomain {
        domain: String,
        amount: u64,
        currency: String,
        token: String,
        charge_id: String,
        token_checked: bool,
        claimed: bool,
        payment_intent: Option<String>,
    },
    /// Let a domain go: on removal (`then_remove`), or after a failed purchase that had claimed
    /// the name (the resource goes back to its quote).
    ReleaseDomain { domain: String, then_remove: bool },
    /// Refund a charge whose purchase could not be completed.
    Refund {
        payment_intent: String,
        charge_id: String,
        amount: u64,
        reason: ErrorInfo,
        /// The resource keeps what it had (a plan change whose new plan could not start stays
        /// on the current plan) instead of ending `errored`.
        #[serde(default)]
        keep_current: bool,
    },
    /// Call the operator's backend (`create`, `rotate` or `remove`) until it is done.
    Operator { action: String, url: String },
}

/// A subscription a paid -> paid change replaced whose cancellation failed for good in that
/// saga (kept on the account's billing state). Retried from the alarm with backoff, outside
/// the resource's job, until Stripe cancels it or says it is gone; remove and close cancel it
/// too, and a closing account is not `closed` while one is left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleSubscription {
    pub subscription_id: String,
    /// The plan resource whose change replaced it (its alarm work drives the retries).
    pub resource_id: String,
    pub since: i64,
    /// Failed cancellations so far (the saga's counts as the first).
    pub attempts: u32,
    pub next_at: i64,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobState {
    pub job: Job,
    pub started_at: i64,
    pub attempts: u32,
    pub next_at: i64,
    /// The request that started it was answered while it was pending (so a later definite
    /// failure leaves the resource `errored` instead of removing it).
    pub acknowledged: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    pub id: String,
    pub service_id: String,
    pub project_id: String,
    pub kind: ServiceKind,
    pub status: ResourceStatus,
    pub created_at: i64,
    pub updated_at: i64,
    pub configuration: Value,
    pub detail: Detail,
    pub job: Option<JobState>,
    pub error: Option<ErrorInfo>,
    /// Progress or advice for `pending` and `needs_information`.
    pub message: Option<String>,
}

impl Resource {
    /// The registrar of a domain resource (`builtin` for anything else).
    fn registrar(&self) -> Registrar {
        match &self.detail {
            Detail::Domain { registrar, .. } => *registrar,
            _ => Registrar::Builtin,
        }
    }
}

/// What can go wrong on a resource endpoint; errors.rs maps each to a status and a code.
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

/// The catalog's service `id`, or `unknown_service`.
fn service<'a>(catalog: &'a Catalog, id: &str) -> Result<&'a Service, ResourceError> {
    catalog
        .get(id)
        .ok_or_else(|| ResourceError::UnknownService {
            service_id: id.to_string(),
        })
}

fn invalid(message: impl Into<String>) -> ResourceError {
    ResourceError::InvalidRequest {
        message: message.into(),
    }
}

/// Server settings the rules need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Zone of the builtin registrar: names are `<label>.<root_zone>`.
    pub root_zone: String,
    /// Attempts of a job step before it is given up: outages (retried with backoff), and an
    /// operator backend answering `pending`.
    pub max_attempts: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            root_zone: "apps.example.dev".into(),
            max_attempts: 40,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Request bodies

fn object(body: &[u8]) -> Result<Map<String, Value>, ResourceError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("the body is not valid JSON: {e}")))?;
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(invalid("the body must be a JSON object")),
    }
}

fn text_field(
    m: &Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<Option<String>, ResourceError> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => {
            Err(invalid(format!("{field} must not be empty")))
        }
        Some(Value::String(s)) if s.chars().count() > max => {
            Err(invalid(format!("{field} is longer than {max} characters")))
        }
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(format!("{field} must be a string"))),
    }
}

/// `payment_credentials`: a Stripe shared payment token, or nothing. Unknown types are ignored.
fn payment_token(m: &Map<String, Value>) -> Result<Option<String>, ResourceError> {
    let Some(pc) = m.get("payment_credentials") else {
        return Ok(None);
    };
    if pc.is_null() {
        return Ok(None);
    }
    let pc = pc
        .as_object()
        .ok_or_else(|| invalid("payment_credentials must be an object"))?;
    match pc.get("type").and_then(Value::as_str) {
        Some("stripe_payment_token") => match pc.get("stripe_payment_token") {
            Some(Value::String(t))
                if t.starts_with("spt_")
                    && t.len() <= 255
                    && t.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') =>
            {
                Ok(Some(t.clone()))
            }
            _ => Err(invalid(
                "payment_credentials.stripe_payment_token must be a token like spt_...",
            )),
        },
        Some(_) => Ok(None),
        None => Err(invalid("payment_credentials.type is required")),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRequest {
    pub service_id: String,
    pub project_id: String,
    pub configuration: Value,
    pub payment_token: Option<String>,
}

/// Parses and validates `POST /provisioning/resources`.
pub fn parse_create(body: &[u8], catalog: &Catalog) -> Result<CreateRequest, ResourceError> {
    let m = object(body)?;
    let service_id =
        text_field(&m, "service_id", 64)?.ok_or_else(|| invalid("service_id is required"))?;
    let service = service(catalog, &service_id)?;
    let project_id =
        text_field(&m, "project_id", 128)?.ok_or_else(|| invalid("project_id is required"))?;
    if !project_id
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b':'))
    {
        return Err(invalid(
            "project_id may contain only A-Z, a-z, 0-9, '_', '-', '.' and ':'",
        ));
    }
    let configuration = match m.get("configuration") {
        None | Some(Value::Null) => json!({}),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => return Err(invalid("configuration must be an object")),
    };
    schema::validate(&service.configuration_schema, &configuration).map_err(|e| {
        ResourceError::InvalidConfiguration {
            field: if e.path.is_empty() {
                "configuration".into()
            } else {
                format!("configuration{}", e.path)
            },
            message: e.message,
        }
    })?;
    Ok(CreateRequest {
        service_id,
        project_id,
        configuration,
        payment_token: payment_token(&m)?,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateRequest {
    pub service_id: String,
    pub payment_token: Option<String>,
}

pub fn parse_update(body: &[u8]) -> Result<UpdateRequest, ResourceError> {
    let m = object(body)?;
    let service_id =
        text_field(&m, "service_id", 64)?.ok_or_else(|| invalid("service_id is required"))?;
    Ok(UpdateRequest {
        service_id,
        payment_token: payment_token(&m)?,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmRequest {
    pub domain: String,
    pub amount: u64,
    pub payment_token: Option<String>,
}

/// `POST /provisioning/resources/{id}/confirm` (extension): which candidate, at which price.
pub fn parse_confirm(body: &[u8]) -> Result<ConfirmRequest, ResourceError> {
    let m = object(body)?;
    let domain = text_field(&m, "domain", 253)?
        .ok_or_else(|| invalid("domain is required: one of the quoted candidates"))?;
    let amount = match m.get("amount") {
        Some(v) => v
            .as_u64()
            .ok_or_else(|| invalid("amount must be the quoted price in cents, an integer"))?,
        None => {
            return Err(invalid(
                "amount is required: the quoted price in cents, to acknowledge it",
            ))
        }
    };
    Ok(ConfirmRequest {
        domain,
        amount,
        payment_token: payment_token(&m)?,
    })
}

/// Parses an empty or `{}` body (rotate, remove).
pub fn parse_empty(body: &[u8]) -> Result<(), ResourceError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    object(body).map(|_| ())
}

/// `POST /provisioning/deep_links`: `{"purpose":"dashboard"}`.
pub fn parse_deep_link(body: &[u8]) -> Result<String, ResourceError> {
    let m = object(body)?;
    let purpose = text_field(&m, "purpose", 64)?.ok_or_else(|| invalid("purpose is required"))?;
    if purpose != "dashboard" {
        return Err(ResourceError::UnsupportedPurpose { purpose });
    }
    Ok(purpose)
}

/// The scope a call needs.
pub fn require_scope(access: &Access, write: bool) -> Result<(), ResourceError> {
    let ok = access.scopes.iter().any(|s| s == "resources:write")
        || (!write && access.scopes.iter().any(|s| s == "resources:read"));
    if ok {
        Ok(())
    } else {
        Err(ResourceError::InsufficientScope {
            needed: if write {
                "resources:write"
            } else {
                "resources:read"
            }
            .into(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Lookups

/// Not removed: still held by the account (whatever its state).
pub fn live(r: &Resource) -> bool {
    r.status != ResourceStatus::Removed
}

/// The account's plan, if it has one.
pub fn current_plan(a: &Account) -> Option<&Resource> {
    a.resources
        .iter()
        .find(|r| r.kind == ServiceKind::Plan && live(r) && r.status != ResourceStatus::Errored)
}

pub fn find<'a>(a: &'a Account, id: &str) -> Result<&'a Resource, ResourceError> {
    a.resources
        .iter()
        .find(|r| r.id == id)
        .ok_or(ResourceError::NotFound)
}

fn index(d: &Draft, id: &str) -> Result<usize, ResourceError> {
    d.account
        .resources
        .iter()
        .position(|r| r.id == id)
        .ok_or(ResourceError::NotFound)
}

/// What creating needs before it can be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preparation {
    /// The same (project, service) already exists: return it, start nothing.
    Existing(String),
    /// A domain: search these candidates first, then call [`create`] with the results.
    Search { label: String, registrar: Registrar },
    /// Ready for [`create`].
    Ready,
}

/// Read-only checks before a create (idempotency, plan rules, payment credentials).
pub fn prepare_create(
    a: &Account,
    req: &CreateRequest,
    catalog: &Catalog,
) -> Result<Preparation, ResourceError> {
    let service = service(catalog, &req.service_id)?;
    if service.kind == ServiceKind::Plan {
        // A plan whose charge is live (being refunded: still `pending`) or could not be
        // refunded (`refund_failed`) answers a retried create, so the retry carries that
        // purchase's charge id and idempotency keys: never a second charge for it. Once the
        // refund is made the plan is `errored` and a create is a new purchase with a new
        // charge id: reusing the old key would make Stripe replay the refunded PaymentIntent,
        // and the new plan would look paid with the money already returned.
        let unrefunded = || {
            a.resources.iter().find(|r| {
                r.kind == ServiceKind::Plan
                    && r.status == ResourceStatus::Errored
                    && r.error.as_ref().is_some_and(|e| e.code == REFUND_FAILED)
            })
        };
        if let Some(plan) = current_plan(a).or_else(unrefunded) {
            if plan.service_id == req.service_id || plan.job.as_ref().is_some_and(|j| matches!(&j.job, Job::Subscribe { target_service, .. } if *target_service == req.service_id)) {
                return Ok(Preparation::Existing(plan.id.clone()));
            }
            return Err(ResourceError::PlanAlreadyActive {
                service_id: plan.service_id.clone(),
            });
        }
    } else if let Some(r) = a.resources.iter().find(|r| {
        live(r)
            && r.status != ResourceStatus::Errored
            && r.service_id == req.service_id
            && r.project_id == req.project_id
    }) {
        return Ok(Preparation::Existing(r.id.clone()));
    }
    if service.kind == ServiceKind::Deployable {
        // A new plan being refunded (its subscription failed) will not be there.
        let plan = current_plan(a).filter(|p| {
            p.status == ResourceStatus::Complete
                || p.job
                    .as_ref()
                    .is_some_and(|j| !matches!(j.job, Job::Refund { .. }))
        });
        let Some(plan) = plan else {
            return Err(ResourceError::PlanRequired);
        };
        if let crate::catalog::Pricing::Component { component } = &service.pricing {
            let allowed = component
                .options
                .iter()
                .any(|o| o.parent_service_ids().contains(&plan.service_id));
            if !allowed {
                return Err(ResourceError::PlanRequired);
            }
        }
    }
    let needs_payment_now =
        catalog.is_paid(service) && !matches!(service.provider, Behaviour::Domain { .. });
    if needs_payment_now && req.payment_token.is_none() {
        return Err(ResourceError::RequiresPaymentCredentials);
    }
    match &service.provider {
        Behaviour::Domain { registrar, .. } => {
            let query = req
                .configuration
                .get("domain_query")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let label =
                domain_names::label(query).map_err(|m| ResourceError::InvalidConfiguration {
                    field: "configuration/domain_query".into(),
                    message: m.into(),
                })?;
            Ok(Preparation::Search {
                label,
                registrar: *registrar,
            })
        }
        _ => Ok(Preparation::Ready),
    }
}

/// Fresh identifiers the glue draws for a create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewIds {
    pub resource_id: String,
    pub charge_id: String,
    /// SHA-256 of the API token for generation 1 (minted by the glue, [`new_api_token`]).
    pub token_hash: Option<String>,
    /// The same token sealed for storage.
    #[serde(default)]
    pub token_sealed: Option<Sealed>,
}

fn reserve(
    d: &mut Draft,
    charge_id: &str,
    resource_id: &str,
    amount: u64,
    currency: &str,
    description: &str,
) -> Result<(), ResourceError> {
    let now = d.now();
    // Prices are in the catalog's one currency, which the cap counts in (README).
    if let Some(previous) = d.account.ledger.adopt_currency(currency, now) {
        d.record(
            "spend.currency_set",
            None,
            json!({"currency": previous}),
            json!({"currency": currency, "cap": d.account.ledger.cap}),
        );
    }
    d.account
        .ledger
        .reserve(charge_id, resource_id, amount, currency, description, now)
        .map_err(|e| match e {
            CapError::Exceeded { spent, cap, amount } => ResourceError::SpendingCapExceeded {
                spent,
                cap,
                amount,
                currency: currency.to_string(),
            },
            CapError::Currency { expected } => ResourceError::CurrencyNotSupported { expected },
        })?;
    let spent = d.account.ledger.spent(now);
    let cap = d.account.ledger.cap;
    d.record(
        "spend.reserved",
        None,
        Value::Null,
        json!({"charge_id": charge_id, "resource_id": resource_id, "amount": amount,
               "currency": currency, "spent_this_month": spent, "cap": cap}),
    );
    for threshold in d.account.ledger.new_alerts(now) {
        d.record(
            "spend.alert",
            None,
            Value::Null,
            json!({"threshold_percent": threshold, "spent_this_month": spent, "cap": cap}),
        );
    }
    Ok(())
}

fn plan_price(service: &Service) -> Option<&Price> {
    match &service.provider {
        Behaviour::Plan { price } => price.as_ref(),
        _ => None,
    }
}

fn period_days(price: &Price) -> i64 {
    match price.interval.as_deref() {
        Some("year") => 365,
        _ => 30,
    }
}

fn subscribe_job(
    d: &mut Draft,
    service: &Service,
    resource_id: &str,
    token: String,
    charge_id: &str,
    replaces: Option<String>,
) -> Result<Job, ResourceError> {
    let price = plan_price(service).ok_or_else(|| invalid("this plan has no price configured"))?;
    // The catalog refuses a paid plan without one; checked again before any money moves.
    let stripe_price = price
        .stripe_price
        .clone()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| invalid("this plan has no Stripe price configured"))?;
    let description = format!("{} plan", service.id);
    reserve(
        d,
        charge_id,
        resource_id,
        price.amount,
        &price.currency,
        &description,
    )?;
    Ok(Job::Subscribe {
        target_service: service.id.clone(),
        token,
        amount: price.amount,
        currency: price.currency.clone(),
        stripe_price,
        period_days: period_days(price),
        charge_id: charge_id.to_string(),
        token_checked: false,
        payment_intent: None,
        payment_method: None,
        replaces,
        subscription: None,
    })
}

fn start_job(job: Job, now: i64) -> Option<JobState> {
    Some(JobState {
        job,
        started_at: now,
        attempts: 0,
        next_at: now,
        acknowledged: false,
    })
}

/// Creates a resource after [`prepare_create`] said `Ready` (or `Search`, with `candidates`).
pub fn create(
    d: &mut Draft,
    req: &CreateRequest,
    catalog: &Catalog,
    ids: NewIds,
    candidates: Option<Vec<Candidate>>,
) -> Result<String, ResourceError> {
    d.require_active_account()?;
    let service = service(catalog, &req.service_id)?;
    let now = d.now();
    let mut resource = Resource {
        id: ids.resource_id.clone(),
        service_id: service.id.clone(),
        project_id: req.project_id.clone(),
        kind: service.kind,
        status: ResourceStatus::Complete,
        created_at: now,
        updated_at: now,
        configuration: req.configuration.clone(),
        detail: Detail::Plan {
            subscription_id: None,
            subscription_status: None,
            past_due_since: None,
            suspended: false,
        },
        job: None,
        error: None,
        message: None,
    };
    match &service.provider {
        Behaviour::Plan { .. } => {
            if catalog.is_paid(service) {
                let token = req
                    .payment_token
                    .clone()
                    .ok_or(ResourceError::RequiresPaymentCredentials)?;
                let job = subscribe_job(d, service, &ids.resource_id, token, &ids.charge_id, None)?;
                resource.status = ResourceStatus::Pending;
                resource.message = Some("starting the subscription".into());
                resource.job = start_job(job, now);
            }
        }
        Behaviour::ApiToken { scopes, .. } => {
            let requested: Vec<String> = req
                .configuration
                .get("scopes")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_else(|| scopes.clone());
            let mut granted: Vec<String> = requested
                .into_iter()
                .filter(|s| scopes.contains(s))
                .collect();
            granted.sort();
            granted.dedup();
            resource.detail = Detail::ApiToken {
                scopes: granted,
                label: req
                    .configuration
                    .get("label")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                generation: 1,
                token_hash: ids
                    .token_hash
                    .clone()
                    .ok_or_else(|| invalid("internal: no token"))?,
                sealed: ids.token_sealed.clone(),
            };
        }
        Behaviour::Domain {
            registrar,
            quote_ttl_seconds,
            ..
        } => {
            let candidates = candidates.unwrap_or_default();
            if !candidates.iter().any(|c| c.available) {
                return Err(ResourceError::NoDomainAvailable);
            }
            resource.status = ResourceStatus::NeedsInformation;
            resource.detail = Detail::Domain {
                query: req
                    .configuration
                    .get("domain_query")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                registrar: *registrar,
                quote: Some(Quote {
                    candidates,
                    expires_at: now + *quote_ttl_seconds as i64,
                }),
                payment_token: req.payment_token.clone(),
                domain: None,
                expires_at: None,
            };
            resource.message = Some(
                "choose one candidate and confirm its exact price; nothing is bought until you do"
                    .into(),
            );
        }
        Behaviour::OperatorBackend { url, .. } => {
            resource.status = ResourceStatus::Pending;
            resource.detail = Detail::Operator {
                access_configuration: None,
            };
            resource.message = Some("the platform is provisioning it".into());
            resource.job = start_job(
                Job::Operator {
                    action: "create".into(),
                    url: url.clone(),
                },
                now,
            );
        }
    }
    let after = summary(&resource);
    d.account.resources.push(resource);
    d.record("resource.created", None, Value::Null, after);
    Ok(ids.resource_id)
}

/// A one-time or first-period charge went through: the ledger entry is settled and recorded.
fn settled(d: &mut Draft, id: &str, charge_id: &str, pi: &str, amount: u64, currency: &str) {
    d.account.ledger.settle(charge_id, pi);
    d.record(
        "charge.succeeded",
        None,
        Value::Null,
        json!({"resource_id": id, "charge_id": charge_id, "payment_intent": pi, "amount": amount, "currency": currency}),
    );
}

/// A small, secret-free summary of a resource for audit records.
pub fn summary(r: &Resource) -> Value {
    let mut v = json!({"resource_id": r.id, "service_id": r.service_id, "project_id": r.project_id,
                       "status": r.status.as_str()});
    match &r.detail {
        Detail::Domain {
            domain: Some(name), ..
        } => v["domain"] = json!(name),
        Detail::ApiToken {
            scopes, generation, ..
        } => {
            v["scopes"] = json!(scopes);
            v["generation"] = json!(generation);
        }
        Detail::Plan {
            subscription_id: Some(s),
            ..
        } => v["subscription_id"] = json!(s),
        _ => {}
    }
    v
}

impl Draft<'_> {
    fn require_active_account(&self) -> Result<(), ResourceError> {
        self.require_active().map_err(ResourceError::from)
    }

    fn set_status(&mut self, i: usize, status: ResourceStatus, action: &'static str) {
        let before = summary(&self.account.resources[i]);
        let now = self.now();
        let r = &mut self.account.resources[i];
        r.status = status;
        r.updated_at = now;
        let after = summary(r);
        self.record(action, None, before, after);
    }
}

/// `update_service`: move a plan along `allowed_updates`.
pub fn update_service(
    d: &mut Draft,
    id: &str,
    req: &UpdateRequest,
    catalog: &Catalog,
    charge_id: &str,
) -> Result<(), ResourceError> {
    d.require_active_account()?;
    let i = index(d, id)?;
    let r = d.account.resources[i].clone();
    if r.status == ResourceStatus::Removed {
        return Err(ResourceError::NotFound);
    }
    if r.job.is_some() {
        return Err(ResourceError::Busy);
    }
    if r.service_id == req.service_id {
        return Ok(());
    }
    let current = service(catalog, &r.service_id)?;
    let target = service(catalog, &req.service_id)?;
    if !current.allowed_updates.contains(&target.id) {
        return Err(ResourceError::UpdateNotAllowed {
            from: r.service_id.clone(),
            to: target.id.clone(),
        });
    }
    let now = d.now();
    if catalog.is_paid(target) {
        let token = req
            .payment_token
            .clone()
            .ok_or(ResourceError::RequiresPaymentCredentials)?;
        // paid -> paid: the current subscription is cancelled in the same saga once the new
        // one exists (a failure before that refunds the new charge and keeps the current plan).
        let replaces = match &r.detail {
            Detail::Plan {
                subscription_id, ..
            } => subscription_id.clone(),
            _ => None,
        };
        let job = subscribe_job(d, target, id, token, charge_id, replaces)?;
        let r = &mut d.account.resources[i];
        r.job = start_job(job, now);
        r.message = Some(format!("moving to {}", target.id));
    } else if let Detail::Plan {
        subscription_id: Some(sub),
        ..
    } = &r.detail
    {
        let r = &mut d.account.resources[i];
        r.job = start_job(
            Job::Unsubscribe {
                target_service: Some(target.id.clone()),
                subscription_id: sub.clone(),
            },
            now,
        );
        r.message = Some(format!("moving to {}", target.id));
    } else {
        let before = summary(&r);
        let r = &mut d.account.resources[i];
        r.service_id = target.id.clone();
        r.updated_at = now;
        let after = summary(r);
        d.record("resource.updated", None, before, after);
        return Ok(());
    }
    d.record(
        "resource.update_requested",
        None,
        summary(&r),
        json!({"target_service": target.id}),
    );
    Ok(())
}

/// `rotate_credentials`: API tokens get a new generation with a new random value (the old
/// value dies at once); operator services are asked to rotate.
pub fn rotate(
    d: &mut Draft,
    id: &str,
    catalog: &Catalog,
    new_token: Option<NewApiToken>,
) -> Result<(), ResourceError> {
    d.require_active_account()?;
    let i = index(d, id)?;
    let now = d.now();
    let r = &mut d.account.resources[i];
    if r.status == ResourceStatus::Removed {
        return Err(ResourceError::NotFound);
    }
    if r.job.is_some() {
        return Err(ResourceError::Busy);
    }
    match &mut r.detail {
        Detail::ApiToken {
            generation,
            token_hash,
            sealed,
            ..
        } => {
            let new = new_token.ok_or_else(|| invalid("internal: no token"))?;
            *generation += 1;
            *token_hash = new.minted.hash;
            *sealed = Some(new.sealed);
            r.updated_at = now;
            let g = *generation;
            d.record(
                "resource.rotated",
                None,
                json!({"resource_id": id, "generation": g - 1}),
                json!({"resource_id": id, "generation": g}),
            );
            Ok(())
        }
        Detail::Operator { .. } if r.status == ResourceStatus::Complete => {
            let url = operator_url(catalog, &r.service_id)?;
            r.job = start_job(
                Job::Operator {
                    action: "rotate".into(),
                    url,
                },
                now,
            );
            r.status = ResourceStatus::Pending;
            d.record(
                "resource.rotate_requested",
                None,
                Value::Null,
                json!({"resource_id": id}),
            );
            Ok(())
        }
        _ => Err(ResourceError::RotationNotSupported),
    }
}

fn operator_url(catalog: &Catalog, service_id: &str) -> Result<String, ResourceError> {
    catalog
        .get(service_id)
        .and_then(|s| match &s.provider {
            Behaviour::OperatorBackend { url, .. } => Some(url.clone()),
            _ => None,
        })
        .ok_or_else(|| ResourceError::UnknownService {
            service_id: service_id.to_string(),
        })
}

/// `remove`: releases the resource and revokes its credentials. Removing twice is fine.
/// Returns true when the removal is complete (false: pending external work).
pub fn remove(d: &mut Draft, id: &str, catalog: &Catalog) -> Result<bool, ResourceError> {
    let i = index(d, id)?;
    let r = d.account.resources[i].clone();
    // A replaced subscription still billing is cancelled now too, not after its backoff.
    hasten_stale(d, Some(id));
    let stale = d
        .account
        .billing
        .cancelling
        .iter()
        .any(|s| s.resource_id == id);
    if r.status == ResourceStatus::Removed {
        return Ok(!stale);
    }
    let now = d.now();
    if r.job.is_some() {
        // Paid or external work in flight is finished first (a quote has no job: it can go).
        return Err(ResourceError::Busy);
    }
    if r.kind == ServiceKind::Plan {
        let deployables = d
            .account
            .resources
            .iter()
            .filter(|x| x.kind == ServiceKind::Deployable && live(x))
            .count();
        if deployables > 0 {
            return Err(invalid(format!(
                "remove the account's {deployables} other resource(s) before its plan"
            )));
        }
    }
    // What must happen elsewhere before the resource is gone, if anything.
    let release = match &r.detail {
        _ if r.status != ResourceStatus::Complete => None,
        Detail::Plan {
            subscription_id: Some(sub),
            ..
        } => Some(Job::Unsubscribe {
            target_service: None,
            subscription_id: sub.clone(),
        }),
        Detail::Domain {
            domain: Some(name), ..
        } => Some(Job::ReleaseDomain {
            domain: name.clone(),
            then_remove: true,
        }),
        Detail::Operator { .. } => Some(Job::Operator {
            action: "remove".into(),
            url: operator_url(catalog, &r.service_id)?,
        }),
        _ => None,
    };
    match release {
        Some(job) => {
            d.account.resources[i].job = start_job(job, now);
            d.account.resources[i].status = ResourceStatus::Pending;
            d.record("resource.remove_requested", None, summary(&r), Value::Null);
            Ok(false)
        }
        None => {
            let res = &mut d.account.resources[i];
            res.message = None;
            if let Detail::Domain { quote, .. } = &mut res.detail {
                *quote = None;
            }
            d.set_status(i, ResourceStatus::Removed, "resource.removed");
            Ok(!stale)
        }
    }
}

/// Marks a resource removed without external work (nothing was provisioned).
pub fn mark_removed(d: &mut Draft, id: &str) {
    if let Ok(i) = index(d, id) {
        d.account.resources[i].job = None;
        d.set_status(i, ResourceStatus::Removed, "resource.removed");
    }
}

/// Confirms a quoted domain: checks the quote and the acknowledged price, reserves the money
/// and starts the purchase.
pub fn confirm_domain(
    d: &mut Draft,
    id: &str,
    req: &ConfirmRequest,
    charge_id: &str,
) -> Result<(), ResourceError> {
    d.require_active_account()?;
    let i = index(d, id)?;
    let now = d.now();
    let r = d.account.resources[i].clone();
    let Detail::Domain {
        quote,
        payment_token,
        ..
    } = &r.detail
    else {
        return Err(ResourceError::NotAwaitingConfirmation);
    };
    if r.status != ResourceStatus::NeedsInformation || r.job.is_some() {
        return Err(ResourceError::NotAwaitingConfirmation);
    }
    let quote = quote
        .as_ref()
        .ok_or(ResourceError::NotAwaitingConfirmation)?;
    if quote.expires_at <= now {
        return Err(ResourceError::QuoteExpired);
    }
    let candidate = quote
        .candidates
        .iter()
        .find(|c| c.domain == req.domain)
        .ok_or_else(|| {
            invalid(format!(
                "{} is not one of the quoted candidates",
                req.domain
            ))
        })?;
    if !candidate.available {
        return Err(ResourceError::DomainUnavailable {
            domain: candidate.domain.clone(),
        });
    }
    if candidate.amount != req.amount {
        return Err(ResourceError::PriceChanged {
            domain: candidate.domain.clone(),
            amount: candidate.amount,
            currency: candidate.currency.clone(),
        });
    }
    let token = req
        .payment_token
        .clone()
        .or_else(|| payment_token.clone())
        .ok_or(ResourceError::RequiresPaymentCredentials)?;
    let candidate = candidate.clone();
    reserve(
        d,
        charge_id,
        id,
        candidate.amount,
        &candidate.currency,
        &candidate.domain,
    )?;
    let res = &mut d.account.resources[i];
    res.status = ResourceStatus::Pending;
    res.message = Some(format!("buying {}", candidate.domain));
    res.job = start_job(
        Job::BuyDomain {
            domain: candidate.domain.clone(),
            amount: candidate.amount,
            currency: candidate.currency.clone(),
            token,
            charge_id: charge_id.to_string(),
            token_checked: false,
            claimed: false,
            payment_intent: None,
        },
        now,
    );
    d.record(
        "domain.confirmed",
        None,
        json!({"status": "needs_information"}),
        json!({"resource_id": id, "domain": candidate.domain, "amount": candidate.amount,
               "currency": candidate.currency}),
    );
    Ok(())
}

/// Replaces an expired quote with fresh candidates.
pub fn refresh_quote(
    d: &mut Draft,
    id: &str,
    candidates: Vec<Candidate>,
    ttl: i64,
) -> Result<(), ResourceError> {
    let i = index(d, id)?;
    let now = d.now();
    let r = &mut d.account.resources[i];
    if let Detail::Domain { quote, .. } = &mut r.detail {
        *quote = Some(Quote {
            candidates,
            expires_at: now + ttl,
        });
        r.updated_at = now;
        d.record(
            "quote.refreshed",
            None,
            Value::Null,
            json!({"resource_id": id, "expires_at": now + ttl}),
        );
    }
    Ok(())
}

/// Marks the answer of the request that started a job as sent while the job is pending.
pub fn acknowledge(d: &mut Draft, id: &str) {
    if let Ok(i) = index(d, id) {
        if let Some(j) = &mut d.account.resources[i].job {
            j.acknowledged = true;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Jobs: the next external call, and what its answer does

/// One external call. Idempotency keys are stable for the logical step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    RetrieveToken {
        token: String,
    },
    CreateCustomer {
        key: String,
        email: String,
        name: Option<String>,
    },
    CreatePaymentIntent {
        key: String,
        amount: u64,
        currency: String,
        token: String,
        customer: Option<String>,
        save: bool,
        description: String,
    },
    CreateSubscription {
        key: String,
        customer: String,
        price: String,
        payment_method: String,
        trial_end: i64,
    },
    CancelSubscription {
        key: String,
        subscription_id: String,
    },
    ClaimDomain {
        domain: String,
        registrar: Registrar,
        key: String,
        contact_email: String,
    },
    ReleaseDomain {
        domain: String,
        registrar: Registrar,
    },
    Refund {
        key: String,
        payment_intent: String,
        amount: u64,
    },
    CallOperator {
        key: String,
        url: String,
        body: Value,
    },
}

/// The answer to an [`Action`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ActionResult {
    Token {
        token: GrantedToken,
    },
    Customer {
        id: String,
    },
    PaymentIntent {
        id: String,
        payment_method: Option<String>,
    },
    Subscription {
        id: String,
        status: String,
    },
    Canceled,
    Claimed {
        expires_at: i64,
    },
    Released,
    Refunded {
        id: String,
    },
    /// The operator's backend: `pending` (try again after `retry_after`), `complete` or `error`.
    Operator {
        status: String,
        access_configuration: Option<BTreeMap<String, String>>,
        retry_after: Option<i64>,
        error: Option<ErrorInfo>,
    },
    /// Definite refusal: the job fails with this error.
    Refused {
        error: ResourceError,
    },
    /// Transient: retry later with the same key.
    Unavailable {
        message: String,
    },
}

impl ActionResult {
    pub fn from_stripe_failure(f: StripeFailure) -> ActionResult {
        match f {
            StripeFailure::Refused(error) => ActionResult::Refused {
                error: ResourceError::Payment { error },
            },
            StripeFailure::Unavailable { message } => ActionResult::Unavailable { message },
        }
    }
}

/// The next external call for `id`, if its job has one due at `now`.
pub fn next_action(a: &Account, id: &str, now: i64) -> Option<Action> {
    let r = find(a, id).ok()?;
    // Idempotency keys: payments are keyed by their charge (unique per purchase), other steps
    // by what they act on, so a retry repeats the key and a new purchase never does.
    let key = |scope: &str, step: &str| format!("{}:{}:{scope}:{step}", a.id, r.id);
    let Some(js) = r.job.as_ref() else {
        // No job: a replaced subscription still to cancel, if one is due (same key as the
        // saga's cancel: the same DELETE).
        return stale_due(a, id, now).map(|s| Action::CancelSubscription {
            key: key(&s.subscription_id, "cancel"),
            subscription_id: s.subscription_id.clone(),
        });
    };
    if js.next_at > now {
        return None;
    }
    Some(match &js.job {
        Job::Subscribe {
            token,
            token_checked,
            payment_intent,
            payment_method,
            amount,
            currency,
            stripe_price,
            period_days,
            target_service,
            charge_id,
            replaces,
            subscription,
            ..
        } => {
            if !token_checked {
                Action::RetrieveToken {
                    token: token.clone(),
                }
            } else if a.billing.customer_id.is_none() {
                Action::CreateCustomer {
                    key: format!("{}:customer", a.id),
                    email: a.owner.email.clone(),
                    name: a.owner.name.clone(),
                }
            } else if payment_intent.is_none() {
                Action::CreatePaymentIntent {
                    key: key(charge_id, "subscribe-pi"),
                    amount: *amount,
                    currency: currency.clone(),
                    token: token.clone(),
                    customer: a.billing.customer_id.clone(),
                    save: true,
                    description: format!("{target_service} plan, first period"),
                }
            } else if let (Some(_), Some(old)) = (subscription, replaces) {
                // Same key as an Unsubscribe of that subscription: the same DELETE.
                Action::CancelSubscription {
                    key: key(old, "cancel"),
                    subscription_id: old.clone(),
                }
            } else {
                Action::CreateSubscription {
                    key: key(charge_id, "subscribe-sub"),
                    customer: a.billing.customer_id.clone().unwrap_or_default(),
                    price: stripe_price.clone(),
                    payment_method: payment_method.clone().unwrap_or_default(),
                    trial_end: js.started_at + period_days * 86_400,
                }
            }
        }
        Job::Unsubscribe {
            subscription_id, ..
        } => Action::CancelSubscription {
            key: key(subscription_id, "cancel"),
            subscription_id: subscription_id.clone(),
        },
        Job::BuyDomain {
            domain,
            amount,
            currency,
            token,
            token_checked,
            claimed,
            payment_intent,
            charge_id,
        } => {
            let registrar = r.registrar();
            // Builtin: hold the name before charging, so the money never pays for a name
            // someone else got in between. Upstream: charge, then register.
            let claim_first = registrar == Registrar::Builtin && !claimed;
            if !token_checked {
                Action::RetrieveToken {
                    token: token.clone(),
                }
            } else if payment_intent.is_none() && !claim_first {
                Action::CreatePaymentIntent {
                    key: key(charge_id, "domain-pi"),
                    amount: *amount,
                    currency: currency.clone(),
                    token: token.clone(),
                    customer: None,
                    save: false,
                    description: format!("Domain registration: {domain} (1 year)"),
                }
            } else {
                Action::ClaimDomain {
                    domain: domain.clone(),
                    registrar,
                    key: key(charge_id, "register"),
                    contact_email: a.owner.email.clone(),
                }
            }
        }
        Job::ReleaseDomain { domain, .. } => Action::ReleaseDomain {
            domain: domain.clone(),
            registrar: r.registrar(),
        },
        Job::Refund {
            payment_intent,
            amount,
            ..
        } => Action::Refund {
            key: key(payment_intent, "refund"),
            payment_intent: payment_intent.clone(),
            amount: *amount,
        },
        Job::Operator { action, url } => Action::CallOperator {
            key: key(&js.started_at.to_string(), &format!("operator-{action}")),
            url: url.clone(),
            body: json!({"action": action, "account_id": a.id, "resource_id": r.id,
                         "service_id": r.service_id, "project_id": r.project_id,
                         "configuration": r.configuration}),
        },
    })
}

/// Earliest time a job of this account wants to run (or a replaced subscription's
/// cancellation is retried).
pub fn next_wake(a: &Account) -> Option<i64> {
    let stale = a.billing.cancelling.iter().filter_map(|s| {
        let r = find(a, &s.resource_id).ok()?;
        // While the resource has a job, the retry waits for it (and the job's wake counts).
        r.job.is_none().then_some(s.next_at)
    });
    a.resources
        .iter()
        .filter_map(|r| r.job.as_ref().map(|j| j.next_at))
        .chain(stale)
        .min()
}

/// Ids of resources with a job (or a replaced subscription's cancellation) due at `now`.
pub fn due(a: &Account, now: i64) -> Vec<String> {
    a.resources
        .iter()
        .filter(|r| {
            r.job.as_ref().is_some_and(|j| j.next_at <= now)
                || (r.job.is_none() && stale_due(a, &r.id, now).is_some())
        })
        .map(|r| r.id.clone())
        .collect()
}

/// The replaced subscription of resource `id` to cancel next, if one is due at `now`: the
/// earliest due (the first of equals), so the same one is chosen until it is answered.
fn stale_due<'a>(a: &'a Account, id: &str, now: i64) -> Option<&'a StaleSubscription> {
    a.billing
        .cancelling
        .iter()
        .filter(|s| s.resource_id == id && s.next_at <= now)
        .min_by_key(|s| s.next_at)
}

/// Resources with a replaced subscription still to cancel (closing waits for them).
pub fn stale_resources(a: &Account) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for s in &a.billing.cancelling {
        if !ids.contains(&s.resource_id) {
            ids.push(s.resource_id.clone());
        }
    }
    ids
}

/// Makes the replaced subscriptions of resource `id` (all, with `None`) due now: removing the
/// plan or closing the account tries them at once instead of after their backoff.
pub fn hasten_stale(d: &mut Draft, id: Option<&str>) {
    let now = d.now();
    for s in &mut d.account.billing.cancelling {
        if id.is_none_or(|id| s.resource_id == id) {
            s.next_at = s.next_at.min(now);
        }
    }
}

/// Backoff of a replaced subscription's cancellation: doubling, at most an hour (it is retried
/// until it succeeds; the audit trail and the owner's views show it meanwhile).
fn stale_backoff(attempts: u32) -> i64 {
    (1i64 << attempts.min(12)).min(3600)
}

/// For the owner's dashboard: the replaced subscriptions still being cancelled, if any.
pub fn stale_note(a: &Account) -> Option<String> {
    if a.billing.cancelling.is_empty() {
        return None;
    }
    let ids: Vec<&str> = a
        .billing
        .cancelling
        .iter()
        .map(|s| s.subscription_id.as_str())
        .collect();
    Some(format!(
        "a previous subscription ({}) is still being cancelled; retrying automatically",
        ids.join(", ")
    ))
}

/// What the plan resource says while a replaced subscription is still to cancel.
fn stale_message(a: &Account, id: &str) -> Option<String> {
    let left: Vec<&StaleSubscription> = a
        .billing
        .cancelling
        .iter()
        .filter(|s| s.resource_id == id)
        .collect();
    let s = left.first()?;
    Some(format!(
        "a previous subscription ({}) is still being cancelled: attempt {} failed ({}); retrying automatically, next try at {}",
        left.iter().map(|s| s.subscription_id.as_str()).collect::<Vec<_>>().join(", "),
        s.attempts,
        s.last_error.as_deref().unwrap_or("unknown error"),
        format_rfc3339(s.next_at)
    ))
}

/// Stripe reports `subscription` canceled: if it was a replaced subscription still to cancel,
/// it is done.
pub fn stale_ended(d: &mut Draft, subscription: &str) {
    let Some(k) = d
        .account
        .billing
        .cancelling
        .iter()
        .position(|s| s.subscription_id == subscription)
    else {
        return;
    };
    let s = d.account.billing.cancelling.remove(k);
    d.record(
        "subscription.canceled",
        None,
        Value::Null,
        json!({"subscription_id": s.subscription_id, "resource_id": s.resource_id, "replaced": true, "by": "stripe_event"}),
    );
    let message = stale_message(&d.account, &s.resource_id);
    if let Ok(i) = index(d, &s.resource_id) {
        d.account.resources[i].message = message;
    }
}

/// The answer to cancelling a replaced subscription (a resource with no job): cancelled (or
/// already gone) drops it; anything else schedules the next try. Never fails the resource.
fn apply_stale_outcome(
    d: &mut Draft,
    i: usize,
    outcome: ActionResult,
) -> Result<(), ResourceError> {
    let now = d.now();
    let id = d.account.resources[i].id.clone();
    let Some(sub) = stale_due(&d.account, &id, i64::MAX).map(|s| s.subscription_id.clone()) else {
        return Ok(());
    };
    let Some(k) = d
        .account
        .billing
        .cancelling
        .iter()
        .position(|s| s.resource_id == id && s.subscription_id == sub)
    else {
        return Ok(());
    };
    let reason = match outcome {
        ActionResult::Canceled => {
            let s = d.account.billing.cancelling.remove(k);
            d.record(
                "subscription.canceled",
                None,
                Value::Null,
                json!({"subscription_id": s.subscription_id, "resource_id": id, "replaced": true, "attempts": s.attempts + 1}),
            );
            let message = stale_message(&d.account, &id);
            let r = &mut d.account.resources[i];
            r.message = message;
            r.updated_at = now;
            return Ok(());
        }
        ActionResult::Unavailable { message } => message,
        ActionResult::Refused { error } => crate::errors::resource_error_info(&error).message,
        other => format!("unexpected answer {other:?}"),
    };
    let reason = crate::text::truncate(&reason, 200).to_string();
    let s = &mut d.account.billing.cancelling[k];
    s.attempts += 1;
    s.next_at = now + stale_backoff(s.attempts);
    s.last_error = Some(reason.clone());
    let (attempt, retry_at) = (s.attempts, s.next_at);
    d.record(
        "subscription.cancel_retry_scheduled",
        None,
        Value::Null,
        json!({"subscription_id": sub, "resource_id": id, "attempt": attempt,
               "retry_at": format_rfc3339(retry_at), "reason": reason}),
    );
    let message = stale_message(&d.account, &id);
    d.account.resources[i].message = message;
    Ok(())
}

fn backoff(attempts: u32) -> i64 {
    (1i64 << attempts.min(8)).min(300)
}

/// Records the answer to the resource's current action. `Err` when the job failed for good
/// (the changes that say so are kept).
pub fn apply_outcome(
    d: &mut Draft,
    id: &str,
    outcome: ActionResult,
    settings: &Settings,
) -> Result<(), ResourceError> {
    let i = index(d, id)?;
    let now = d.now();
    let Some(mut js) = d.account.resources[i].job.clone() else {
        return apply_stale_outcome(d, i, outcome);
    };
    match outcome {
        ActionResult::Unavailable { message } => {
            js.attempts += 1;
            if js.attempts >= settings.max_attempts {
                return fail_job(
                    d,
                    i,
                    ResourceError::Backend {
                        code: "unavailable".into(),
                        message: format!("gave up after {} attempts: {message}", js.attempts),
                    },
                );
            }
            js.next_at = now + backoff(js.attempts);
            let attempts = js.attempts;
            d.account.resources[i].job = Some(js);
            d.account.resources[i].message = Some(format!(
                "waiting for a dependency (attempt {attempts}); retrying"
            ));
            d.record("job.retry_scheduled", None, Value::Null, json!({"resource_id": id, "attempt": attempts, "reason": crate::text::truncate(&message, 200)}));
            Ok(())
        }
        // Stripe refuses to refund what is already refunded (by a webhook-reported refund, or
        // from the dashboard): the compensation is done.
        ActionResult::Refused {
            error:
                ResourceError::Payment {
                    error: PaymentError::Failed { code, .. },
                },
        } if code == "charge_already_refunded" && matches!(js.job, Job::Refund { .. }) => {
            let refund = "already_refunded".to_string();
            advance(d, i, js, ActionResult::Refunded { id: refund }, settings)
        }
        ActionResult::Refused { error } => fail_job(d, i, error),
        outcome => advance(d, i, js, outcome, settings),
    }
}

fn advance(
    d: &mut Draft,
    i: usize,
    mut js: JobState,
    outcome: ActionResult,
    settings: &Settings,
) -> Result<(), ResourceError> {
    let now = d.now();
    let id = d.account.resources[i].id.clone();
    js.attempts = 0;
    js.next_at = now;
    match (&mut js.job, outcome) {
        (
            Job::Subscribe {
                token_checked,
                amount,
                currency,
                ..
            }
            | Job::BuyDomain {
                token_checked,
                amount,
                currency,
                ..
            },
            ActionResult::Token { token },
        ) => {
            if let Err(error) = stripe_api::check_token(&token, *amount, currency, now) {
                return fail_job(d, i, ResourceError::Payment { error });
            }
            *token_checked = true;
            let available = token.available();
            d.record(
                "payment.token_verified",
                None,
                Value::Null,
                json!({"resource_id": id, "currency": token.currency, "available": available, "expires_at": token.expires_at}),
            );
        }
        (Job::Subscribe { .. }, ActionResult::Customer { id: customer }) => {
            d.account.billing.customer_id = Some(customer.clone());
            d.record(
                "billing.customer_created",
                None,
                Value::Null,
                json!({"customer": customer}),
            );
        }
        (
            Job::Subscribe {
                payment_intent,
                payment_method,
                charge_id,
                amount,
                currency,
                ..
            },
            ActionResult::PaymentIntent {
                id: pi,
                payment_method: pm,
            },
        ) => {
            *payment_intent = Some(pi.clone());
            *payment_method = pm;
            settled(d, &id, charge_id, &pi, *amount, currency);
        }
        (
            Job::Subscribe {
                target_service,
                replaces,
                subscription,
                ..
            },
            ActionResult::Subscription { id: sub, status },
        ) => {
            let target = target_service.clone();
            // paid -> paid: the new plan is in place now; the old subscription is cancelled
            // next, in this job (the resource stays busy until it is).
            let old = replaces.clone();
            *subscription = Some(sub.clone());
            let before = summary(&d.account.resources[i]);
            let r = &mut d.account.resources[i];
            r.service_id = target;
            r.detail = Detail::Plan {
                subscription_id: Some(sub),
                subscription_status: Some(status),
                past_due_since: None,
                suspended: false,
            };
            r.status = ResourceStatus::Complete;
            r.job = None;
            r.message = None;
            r.error = None;
            r.updated_at = now;
            let after = summary(r);
            d.record("resource.completed", None, before, after);
            if let Some(old) = old {
                d.account.resources[i].message =
                    Some(format!("cancelling the previous subscription {old}"));
                d.account.resources[i].job = Some(js);
            }
            return Ok(());
        }
        (
            Job::Subscribe {
                replaces: Some(old),
                subscription: Some(_),
                ..
            },
            ActionResult::Canceled,
        ) => {
            let old = old.clone();
            let r = &mut d.account.resources[i];
            r.job = None;
            r.message = None;
            r.updated_at = now;
            let new = summary(r)["subscription_id"].clone();
            d.record(
                "subscription.canceled",
                None,
                Value::Null,
                json!({"subscription_id": old, "replaced_by": new}),
            );
            return Ok(());
        }
        (
            Job::Unsubscribe {
                target_service,
                subscription_id,
            },
            ActionResult::Canceled,
        ) => {
            let (target, sub) = (target_service.clone(), subscription_id.clone());
            let before = summary(&d.account.resources[i]);
            let message = stale_message(&d.account, &id);
            let r = &mut d.account.resources[i];
            r.job = None;
            r.message = message;
            r.updated_at = now;
            r.detail = Detail::Plan {
                subscription_id: None,
                subscription_status: Some("canceled".into()),
                past_due_since: None,
                suspended: false,
            };
            let action = match target {
                Some(t) => {
                    r.service_id = t;
                    r.status = ResourceStatus::Complete;
                    "resource.updated"
                }
                None => {
                    r.status = ResourceStatus::Removed;
                    "resource.removed"
                }
            };
            let after = summary(r);
            d.record(
                "subscription.canceled",
                None,
                Value::Null,
                json!({"subscription_id": sub}),
            );
            d.record(action, None, before, after);
            return Ok(());
        }
        (
            Job::BuyDomain {
                claimed,
                payment_intent,
                domain,
                ..
            },
            ActionResult::Claimed { expires_at },
        ) => {
            if payment_intent.is_some() {
                // Charged and registered: done.
                let name = domain.clone();
                let before = summary(&d.account.resources[i]);
                let r = &mut d.account.resources[i];
                if let Detail::Domain {
                    domain,
                    expires_at: e,
                    quote,
                    ..
                } = &mut r.detail
                {
                    *domain = Some(name.clone());
                    *e = Some(expires_at);
                    *quote = None;
                }
                r.status = ResourceStatus::Complete;
                r.job = None;
                r.message = None;
                r.updated_at = now;
                let after = summary(r);
                d.record(
                    "domain.registered",
                    None,
                    Value::Null,
                    json!({"domain": name, "expires_at": expires_at}),
                );
                d.record("resource.completed", None, before, after);
                return Ok(());
            }
            *claimed = true;
        }
        (
            Job::BuyDomain {
                payment_intent,
                charge_id,
                amount,
                currency,
                ..
            },
            ActionResult::PaymentIntent { id: pi, .. },
        ) => {
            *payment_intent = Some(pi.clone());
            settled(d, &id, charge_id, &pi, *amount, currency);
        }
        (
            Job::ReleaseDomain {
                domain,
                then_remove,
            },
            ActionResult::Released,
        ) => {
            let (name, then_remove) = (domain.clone(), *then_remove);
            let r = &mut d.account.resources[i];
            r.job = None;
            d.record(
                "domain.released",
                None,
                Value::Null,
                json!({"domain": name}),
            );
            if then_remove {
                d.account.resources[i].message = None;
                d.set_status(i, ResourceStatus::Removed, "resource.removed");
            }
            return Ok(());
        }
        (
            Job::Refund {
                charge_id,
                amount,
                reason,
                keep_current,
                ..
            },
            ActionResult::Refunded { id: refund },
        ) => {
            let (cid, amount, reason) = (charge_id.clone(), *amount, reason.clone());
            let keep_current = *keep_current;
            if let Some(c) = d.account.ledger.get_mut(&cid) {
                c.refunded = amount;
                c.status = crate::ledger::ChargeStatus::Refunded;
            }
            d.record(
                "charge.refunded",
                None,
                Value::Null,
                json!({"charge_id": cid, "refund": refund, "amount": amount}),
            );
            let r = &mut d.account.resources[i];
            r.job = None;
            r.message = None;
            if keep_current {
                // The plan change failed: the current plan stays as it was.
                r.updated_at = now;
                r.message = Some(format!(
                    "the plan change failed: {} The charge was refunded.",
                    reason.message
                ));
                return Ok(());
            }
            r.error = Some(ErrorInfo {
                code: reason.code,
                message: format!("{} The charge was refunded.", reason.message),
            });
            d.set_status(i, ResourceStatus::Errored, "resource.failed");
            return Ok(());
        }
        (
            Job::Operator { action, .. },
            ActionResult::Operator {
                status,
                access_configuration,
                retry_after,
                error,
            },
        ) => {
            let action = action.clone();
            match status.as_str() {
                "pending" => {
                    js.attempts = d.account.resources[i]
                        .job
                        .as_ref()
                        .map(|j| j.attempts + 1)
                        .unwrap_or(1);
                    // Bounded like an outage: a backend that stays `pending` is given up on.
                    // Operator backends are free services (the catalog refuses paid ones), so
                    // there is no charge to refund; `fail_job` releases nothing else.
                    if js.attempts >= settings.max_attempts {
                        return fail_job(
                            d,
                            i,
                            ResourceError::BackendTimeout {
                                attempts: js.attempts,
                                waited: now - js.started_at,
                            },
                        );
                    }
                    js.next_at = now + retry_after.unwrap_or(2).clamp(1, 300);
                    d.account.resources[i].job = Some(js);
                    d.account.resources[i].message =
                        Some("the platform is still provisioning it".into());
                    return Ok(());
                }
                "complete" | "removed" => {
                    let before = summary(&d.account.resources[i]);
                    let r = &mut d.account.resources[i];
                    r.job = None;
                    r.message = None;
                    r.updated_at = now;
                    if action == "remove" {
                        r.detail = Detail::Operator {
                            access_configuration: None,
                        };
                        r.status = ResourceStatus::Removed;
                        let after = summary(r);
                        d.record("resource.removed", None, before, after);
                    } else {
                        r.detail = Detail::Operator {
                            access_configuration,
                        };
                        r.status = ResourceStatus::Complete;
                        let after = summary(r);
                        d.record(
                            if action == "rotate" {
                                "resource.rotated"
                            } else {
                                "resource.completed"
                            },
                            None,
                            before,
                            after,
                        );
                    }
                    return Ok(());
                }
                _ => {
                    let e = error.unwrap_or(ErrorInfo {
                        code: "backend_error".into(),
                        message: "the platform reported an error".into(),
                    });
                    return fail_job(
                        d,
                        i,
                        ResourceError::Backend {
                            code: e.code,
                            message: e.message,
                        },
                    );
                }
            }
        }
        (_, other) => {
            return fail_job(
                d,
                i,
                ResourceError::Backend {
                    code: "unexpected_answer".into(),
                    message: format!("unexpected answer {other:?}"),
                },
            );
        }
    }
    d.account.resources[i].job = Some(js);
    Ok(())
}

/// A job failed for good: release the money, let go of claimed names, refund what was charged,
/// then leave the resource where the human or agent can act on it. Every purchase ends with
/// what was paid for in place, or with its charge refunded (a `Refund` follow-up).
fn fail_job(d: &mut Draft, i: usize, error: ResourceError) -> Result<(), ResourceError> {
    d.keep_on_error();
    let now = d.now();
    let r = d.account.resources[i].clone();
    let Some(js) = r.job.clone() else {
        return Err(error);
    };
    let info = crate::errors::resource_error_info(&error);
    if let Job::Subscribe {
        charge_id,
        payment_intent: None,
        ..
    }
    | Job::BuyDomain {
        charge_id,
        payment_intent: None,
        ..
    } = &js.job
    {
        let cid = charge_id.clone();
        d.account.ledger.release(&cid);
        d.record(
            "spend.released",
            None,
            Value::Null,
            json!({"charge_id": cid}),
        );
    }
    d.record(
        "job.failed",
        None,
        summary(&r),
        json!({"resource_id": r.id, "code": info.code, "message": info.message}),
    );
    if let Job::Subscribe {
        replaces: Some(old),
        subscription: Some(_),
        ..
    } = &js.job
    {
        // Kept on record and retried from the alarm: two subscriptions never both bill
        // silently, and remove/close cancel it too.
        let retry_at = now + stale_backoff(1);
        d.account.billing.cancelling.push(StaleSubscription {
            subscription_id: old.clone(),
            resource_id: r.id.clone(),
            since: now,
            attempts: 1,
            next_at: retry_at,
            last_error: Some(crate::text::truncate(&info.message, 200).to_string()),
        });
        d.record(
            "subscription.cancel_failed",
            None,
            Value::Null,
            json!({"resource_id": r.id, "subscription_id": old, "code": info.code,
                   "retry_at": format_rfc3339(retry_at)}),
        );
    }
    let stale = stale_message(&d.account, &r.id);
    let follow_up = |job: Job| {
        Some(JobState {
            job,
            started_at: now,
            attempts: 0,
            next_at: now,
            acknowledged: true,
        })
    };
    let res = &mut d.account.resources[i];
    res.job = None;
    res.updated_at = now;
    match js.job {
        // paid -> paid: the new plan is paid for and in place; only cancelling the old
        // subscription failed. Nothing to refund; it is retried (see above) and said so. The
        // change itself succeeded, so the caller is not told it failed.
        Job::Subscribe {
            replaces: Some(_),
            subscription: Some(_),
            ..
        } => {
            res.message = stale;
            return Ok(());
        }
        // Charged, but the subscription could not be started: refund it. A plan change keeps
        // the current plan; a new plan stays `pending` until the refund, then ends `errored`
        // (it is never dropped while its charge is live: a retried create finds it).
        Job::Subscribe {
            payment_intent: Some(pi),
            charge_id,
            amount,
            ..
        } => {
            let keep_current = r.status == ResourceStatus::Complete;
            if !keep_current {
                res.status = ResourceStatus::Pending;
            }
            res.message =
                Some("the subscription could not be started; refunding the charge".into());
            res.job = follow_up(Job::Refund {
                payment_intent: pi,
                charge_id,
                amount,
                reason: info,
                keep_current,
            });
        }
        // A failed plan change leaves the current plan in place.
        Job::Subscribe { .. } if r.status == ResourceStatus::Complete => {
            res.message = Some(format!("the plan change failed: {}", info.message));
        }
        Job::Unsubscribe { .. }
        | Job::ReleaseDomain {
            then_remove: true, ..
        } => {
            res.status = ResourceStatus::Complete;
            res.message = Some(format!("the change failed: {}", info.message));
        }
        // A new plan whose purchase failed before anyone was told it was pending, and before
        // any money moved: nothing stays.
        Job::Subscribe { .. } if !js.acknowledged => {
            d.account.resources.remove(i);
        }
        // Charged but not registered: refund, then report.
        Job::BuyDomain {
            payment_intent: Some(pi),
            charge_id,
            amount,
            ..
        } => {
            res.status = ResourceStatus::Pending;
            res.message = Some("the registration failed; refunding the charge".into());
            res.job = follow_up(Job::Refund {
                payment_intent: pi,
                charge_id,
                amount,
                reason: info,
                keep_current: false,
            });
        }
        // Not charged: back to the quote, letting go of a claimed name first.
        Job::BuyDomain {
            claimed, domain, ..
        } => {
            res.status = ResourceStatus::NeedsInformation;
            res.message = Some(format!("the purchase failed: {}", info.message));
            if claimed {
                res.job = follow_up(Job::ReleaseDomain {
                    domain,
                    then_remove: false,
                });
            }
        }
        Job::Operator { action, .. } if action != "create" => {
            res.status = ResourceStatus::Complete;
            res.message = Some(format!("the {action} failed: {}", info.message));
        }
        // The refund itself was refused: the money is still with us. A plan change keeps
        // its (working) current plan; anything else ends `errored` with `refund_failed`,
        // which also keeps a retried create from charging again (`prepare_create`).
        Job::Refund {
            keep_current: true,
            reason,
            ..
        } => {
            res.message = Some(format!(
                "the plan change failed ({}) and its charge could not be refunded ({}); the operator must refund it",
                reason.message, info.message
            ));
        }
        Job::Refund { reason, .. } => {
            res.status = ResourceStatus::Errored;
            res.error = Some(ErrorInfo {
                code: REFUND_FAILED.into(),
                message: format!(
                    "{} The charge could not be refunded ({}); the operator must refund it.",
                    reason.message, info.message
                ),
            });
        }
        _ => {
            res.status = ResourceStatus::Errored;
            res.error = Some(info);
        }
    }
    Err(error)
}

/// The error code of a resource whose purchase failed and whose charge could not be refunded.
pub const REFUND_FAILED: &str = "refund_failed";

/// RFC 7662 view of a provisioned API token (`pvak_`), for the operator's own API.
pub fn introspect_api_key(a: &Account, token_hash: &str) -> Value {
    if !a.is_open() {
        return json!({"active": false});
    }
    for r in a
        .resources
        .iter()
        .filter(|r| r.status == ResourceStatus::Complete)
    {
        if let Detail::ApiToken {
            scopes,
            token_hash: h,
            generation,
            ..
        } = &r.detail
        {
            if crate::tokens::same_hash(h, token_hash) {
                return json!({"active": true, "token_type": "api_token", "scope": scopes.join(" "),
                              "sub": a.id, "resource_id": r.id, "project_id": r.project_id,
                              "generation": generation, "iat": r.updated_at});
            }
        }
    }
    json!({"active": false})
}

/// The context string an API token of `generation` was derived from (tokens minted before
/// they were random; see [`api_token_value`]).
pub fn api_token_context(resource_id: &str, generation: u32) -> String {
    format!("{resource_id}|{generation}")
}

/// A new API token: its value and hash, and the value sealed for storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiToken {
    pub minted: Minted,
    pub sealed: Sealed,
}

/// The associated data of a sealed API token: the account, resource and generation it belongs
/// to, so a ciphertext copied to another resource or generation does not open.
fn api_token_aad(account_id: &str, resource_id: &str, generation: u32) -> String {
    format!("pvak|{account_id}|{resource_id}|{generation}")
}

/// Mints the API token of `generation` of resource `resource_id` from 20 random bytes and
/// seals it with the ring's first key under a fresh 12-byte `nonce` (both from the glue's
/// CSPRNG).
pub fn new_api_token(
    keys: &KeyRing,
    mac_key: &[u8],
    account_id: &str,
    resource_id: &str,
    generation: u32,
    random: &[u8; 20],
    nonce: &[u8; 12],
) -> NewApiToken {
    let minted = tokens::mint(TokenKind::ApiKey, account_id, mac_key, random);
    let aad = api_token_aad(account_id, resource_id, generation);
    let sealed = keys.seal(minted.token.as_bytes(), aad.as_bytes(), nonce);
    NewApiToken { minted, sealed }
}

/// Why the value of an API token cannot be shown. Never carries key material or the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenValueError {
    /// A sealed token and no (valid) `TOKEN_ENCRYPTION_KEYS`.
    NoKeys,
    /// A derived (older) token and no `DERIVATION_KEY`.
    NoDerivationKey,
    Open(OpenError),
    /// What was opened or derived is not the token whose hash is stored (e.g. `DERIVATION_KEY`
    /// changed while older tokens live).
    Mismatch,
}

impl std::fmt::Display for TokenValueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenValueError::NoKeys => write!(
                f,
                "{} is not set or invalid; a sealed API token cannot be opened",
                crate::sealing::KEYS_SETTING
            ),
            TokenValueError::NoDerivationKey => {
                write!(
                    f,
                    "DERIVATION_KEY is not set; an older API token cannot be derived"
                )
            }
            TokenValueError::Open(OpenError::UnknownKid(kid)) => write!(
                f,
                "no key {kid:?} in {}; keep a key while tokens sealed under it live",
                crate::sealing::KEYS_SETTING
            ),
            TokenValueError::Open(OpenError::Invalid) => {
                write!(
                    f,
                    "a sealed API token does not open (wrong key bytes for its id?)"
                )
            }
            TokenValueError::Mismatch => write!(
                f,
                "an API token's value does not match its stored hash (DERIVATION_KEY changed?)"
            ),
        }
    }
}

/// The value of an API token resource's current generation, for the resource object (`None`
/// for other resources): opened from its sealed copy, or, for tokens minted before they were
/// random (no sealed copy), derived from `DERIVATION_KEY` as then. Checked against the stored
/// hash, so a wrong key never shows a wrong token.
pub fn api_token_value(
    r: &Resource,
    account_id: &str,
    keys: Option<&KeyRing>,
    derivation_key: Option<&[u8]>,
) -> Result<Option<String>, TokenValueError> {
    let Detail::ApiToken {
        generation,
        token_hash,
        sealed,
        ..
    } = &r.detail
    else {
        return Ok(None);
    };
    let value = match sealed {
        Some(sealed) => {
            let aad = api_token_aad(account_id, &r.id, *generation);
            let bytes = keys
                .ok_or(TokenValueError::NoKeys)?
                .open(sealed, aad.as_bytes())
                .map_err(TokenValueError::Open)?;
            String::from_utf8(bytes).map_err(|_| TokenValueError::Mismatch)?
        }
        None => {
            let key = derivation_key.ok_or(TokenValueError::NoDerivationKey)?;
            let context = api_token_context(&r.id, *generation);
            tokens::derive_legacy(TokenKind::ApiKey, account_id, key, &context)
        }
    };
    if !tokens::same_hash(&tokens::hash(&value), token_hash) {
        return Err(TokenValueError::Mismatch);
    }
    Ok(Some(value))
}

// ---------------------------------------------------------------------------------------------
// The resource object on the wire

/// The protocol's resource object. `secrets` holds values the glue opened or derived (the API
/// token of the current generation, [`api_token_value`]).
pub fn render(r: &Resource, account_id: &str, secrets: &BTreeMap<String, String>) -> Value {
    let mut v = json!({"id": r.id, "object": "resource", "service_id": r.service_id,
                       "project_id": r.project_id, "status": r.status.as_str(),
                       "created_at": format_rfc3339(r.created_at)});
    if let Detail::Plan {
        suspended: true, ..
    } = &r.detail
    {
        v["status"] = json!("errored");
        v["error"] = json!({"code": "plan_suspended",
            "message": "the plan's invoice is unpaid past the grace period; the owner must update the payment method (see the dashboard)"});
        return v;
    }
    match r.status {
        ResourceStatus::Complete => {
            let mut ac = BTreeMap::new();
            ac.insert("ACCOUNT_ID".to_string(), account_id.to_string());
            match &r.detail {
                Detail::Plan { .. } => {
                    ac.insert("PLAN".into(), r.service_id.clone());
                }
                Detail::ApiToken { scopes, .. } => {
                    if let Some(t) = secrets.get("API_TOKEN") {
                        ac.insert("API_TOKEN".into(), t.clone());
                    }
                    ac.insert("API_TOKEN_SCOPES".into(), scopes.join(" "));
                }
                Detail::Domain {
                    domain: Some(d),
                    expires_at,
                    ..
                } => {
                    ac.insert("DOMAIN".into(), d.clone());
                    if let Some(e) = expires_at {
                        ac.insert("DOMAIN_EXPIRES_AT".into(), format_rfc3339(*e));
                    }
                }
                Detail::Domain { .. } => {}
                Detail::Operator {
                    access_configuration,
                } => {
                    for (k, val) in access_configuration.iter().flatten() {
                        ac.insert(k.clone(), val.clone());
                    }
                }
            }
            v["complete"] = json!({ "access_configuration": ac });
            if let Detail::Plan {
                past_due_since: Some(since),
                ..
            } = &r.detail
            {
                v["complete"]["message"] = json!(format!(
                    "the latest invoice is unpaid since {}; the plan is suspended if it stays unpaid past the grace period",
                    format_rfc3339(*since)
                ));
            }
            if let Some(m) = &r.message {
                v["complete"]["message"] = json!(m);
            }
        }
        ResourceStatus::Pending => {
            v["pending"] =
                json!({"message": r.message.clone().unwrap_or_else(|| "in progress".into())});
        }
        ResourceStatus::NeedsInformation => {
            if let Detail::Domain { quote: Some(q), .. } = &r.detail {
                let available: Vec<&Candidate> =
                    q.candidates.iter().filter(|c| c.available).collect();
                let names: Vec<&str> = available.iter().map(|c| c.domain.as_str()).collect();
                let prices: Vec<String> = available
                    .iter()
                    .map(|c| format!("{} {}", c.domain, format_amount(c.amount, &c.currency)))
                    .collect();
                v["needs_information"] = json!({
                    "message": format!(
                        "{}. Candidates: {}. Confirm one with its exact amount before {}; each is a one-time, non-refundable charge.",
                        r.message.clone().unwrap_or_default().trim_end_matches('.'), prices.join(", "), format_rfc3339(q.expires_at)
                    ),
                    "schema": {
                        "type": "object",
                        "properties": {
                            "domain": {"type": "string", "enum": names, "description": "the candidate to buy"},
                            "amount": {"type": "integer", "minimum": 0, "description": "its quoted price in cents, to acknowledge it"}
                        },
                        "required": ["domain", "amount"],
                        "additionalProperties": false
                    },
                    "quote": {"expires_at": format_rfc3339(q.expires_at), "candidates": q.candidates},
                    "confirm": {"method": "POST", "path": format!("/provisioning/resources/{}/confirm", r.id)}
                });
            }
        }
        ResourceStatus::Errored => {
            v["error"] = json!(r.error.clone().unwrap_or(ErrorInfo {
                code: "errored".into(),
                message: "the resource failed".into()
            }));
        }
        ResourceStatus::Removed => {}
    }
    v
}

#[cfg(test)]
mod tests;
