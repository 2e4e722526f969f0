use crate::audit_action::AuditAction;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::account::{Account, Draft};
use crate::catalog::{Behaviour, Catalog, Price, Registrar, Scope, Service, ServiceKind};
use crate::domain_names;
use crate::ledger::CapError;
use crate::resources::error::{invalid, ResourceError, REFUND_FAILED};
use crate::resources::jobs::operator::operator_job;
use crate::resources::lookup::{current_plan, live, service};
use crate::resources::model::{
    Candidate, Detail, InformationAsked, Job, JobState, OneTimePurchase, OperatorAction, Origin,
    Quote, Resource, ResourceStatus,
};
use crate::resources::render::summary;
use crate::resources::request::{CreateCall, CreateRequest};
use crate::sealing::Sealed;

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

/// The resource an earlier call with the same names made (protocol §8: the `Idempotency-Key`
/// header or `orchestrator_resource_id`), whatever its state short of removed; another body
/// under the same names is `idempotency_conflict`. `None` when the call names nothing.
pub(crate) fn named<'a>(
    a: &'a Account,
    req: &CreateRequest,
    call: CreateCall,
) -> Result<Option<&'a Resource>, ResourceError> {
    if !req.named() {
        return Ok(None);
    }
    let same = |mine: &Option<String>, theirs: &Option<String>| mine.is_some() && mine == theirs;
    let found = a.resources.iter().filter(|r| live(r)).find(|r| {
        r.origin.as_ref().is_some_and(|o| {
            same(&req.idempotency_key, &o.idempotency_key)
                || same(&req.orchestrator_resource_id, &o.orchestrator_resource_id)
        })
    });
    match found {
        Some(r)
            if r.origin
                .as_ref()
                .is_some_and(|o| o.fingerprint != req.fingerprint(call == CreateCall::Link)) =>
        {
            Err(ResourceError::IdempotencyConflict)
        }
        found => Ok(found),
    }
}

/// What a new resource records of the call that made it (`None` for an unnamed call).
pub(crate) fn origin_of(req: &CreateRequest, call: CreateCall) -> Option<Origin> {
    req.named().then(|| Origin {
        idempotency_key: req.idempotency_key.clone(),
        orchestrator_resource_id: req.orchestrator_resource_id.clone(),
        fingerprint: req.fingerprint(call == CreateCall::Link),
    })
}

/// Read-only checks before a create (idempotency, plan rules, the service's `count`
/// constraint, payment credentials).
///
/// A call the orchestrator named returns the resource made under those names; one it did not
/// name returns the live resource of the same project and service (one per pair). Either way
/// plans stay at most one per account. Those repeats return before the count is checked, so a
/// repeated create never counts as a new resource.
pub fn prepare_create(
    a: &Account,
    req: &CreateRequest,
    catalog: &Catalog,
) -> Result<Preparation, ResourceError> {
    let service = service(catalog, &req.service_id)?;
    if let Some(r) = named(a, req, CreateCall::Create)? {
        return Ok(Preparation::Existing(r.id.clone()));
    }
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
        !req.named()
            && live(r)
            && !r.linked
            && r.status != ResourceStatus::Errored
            && r.service_id == req.service_id
            && r.project_id == req.project_id
    }) {
        return Ok(Preparation::Existing(r.id.clone()));
    }
    if let Some(at_most) = service.at_most() {
        let held = a
            .resources
            .iter()
            .filter(|r| {
                live(r)
                    && r.status != ResourceStatus::Errored
                    && r.service_id == service.id
                    && (service.scope() == Scope::Account || r.project_id == req.project_id)
            })
            .count();
        if held >= at_most as usize {
            return Err(ResourceError::ResourceLimitReached {
                service_id: service.id.clone(),
                at_most,
                scope: service.scope(),
            });
        }
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
                .any(|o| o.offered_under(&plan.service_id));
            if !allowed {
                return Err(ResourceError::PlanRequired);
            }
        }
    }
    // A domain and a one-time price are quoted first: their payment comes with the answer.
    let quoted_first = match &service.provider {
        Behaviour::Domain { .. } => true,
        Behaviour::OperatorBackend { price: Some(p), .. } => p.interval.is_none(),
        _ => false,
    };
    let needs_payment_now = catalog.is_paid(service) && !quoted_first;
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

pub(crate) fn reserve(
    d: &mut Draft,
    charge_id: &str,
    resource_id: &str,
    amount: u64,
    currency: &str,
    description: &str,
) -> Result<u64, ResourceError> {
    let now = d.now();
    // Prices are in the catalog's one currency, which the cap counts in (README).
    if let Some(previous) = d.account.ledger.adopt_currency(currency, now) {
        d.record(
            AuditAction::SpendCurrencySet,
            None,
            json!({"currency": previous}),
            json!({"currency": currency, "cap": d.account.ledger.cap}),
        );
    }
    let card = d
        .account
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
        AuditAction::SpendReserved,
        None,
        Value::Null,
        json!({"charge_id": charge_id, "resource_id": resource_id, "amount": amount,
               "currency": currency, "credited": amount - card, "payment_method": card,
               "spent_this_month": spent, "cap": cap}),
    );
    for threshold in d.account.ledger.new_alerts(now) {
        d.record(
            AuditAction::SpendAlert,
            None,
            Value::Null,
            json!({"threshold_percent": threshold, "spent_this_month": spent, "cap": cap}),
        );
    }
    Ok(card)
}

/// The recurring price a subscription bills: a paid plan's, or a paid operator service's.
pub(crate) fn recurring_price(service: &Service) -> Option<&Price> {
    match &service.provider {
        Behaviour::Plan { price } => price.as_ref(),
        Behaviour::OperatorBackend { price, .. } => price.as_ref().filter(|p| p.interval.is_some()),
        _ => None,
    }
}

pub(crate) fn period_days(price: &Price) -> i64 {
    match price.interval.as_deref() {
        Some("year") => 365,
        _ => 30,
    }
}

pub(crate) fn subscribe_job(
    d: &mut Draft,
    service: &Service,
    resource_id: &str,
    token: String,
    charge_id: &str,
    replaces: Option<String>,
) -> Result<Job, ResourceError> {
    let price =
        recurring_price(service).ok_or_else(|| invalid("this service has no price configured"))?;
    // The catalog refuses a paid plan without one; checked again before any money moves.
    let stripe_price = price
        .stripe_price
        .clone()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| invalid("this plan has no Stripe price configured"))?;
    // A paid operator service: once subscribed, its backend is asked to create it.
    let then_operator = match &service.provider {
        Behaviour::OperatorBackend { url, .. } => Some(url.clone()),
        _ => None,
    };
    let description = match then_operator {
        Some(_) => service.id.clone(),
        None => format!("{} plan", service.id),
    };
    // Credits pay first; `card` is what is left for the payment method.
    let card = reserve(
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
        amount: card,
        currency: price.currency.clone(),
        stripe_price,
        period_days: period_days(price),
        charge_id: charge_id.to_string(),
        token_checked: false,
        payment_intent: None,
        payment_method: None,
        replaces,
        subscription: None,
        then_operator,
    })
}

/// The scopes an API token gets: those its configuration asks for (all offered ones when it
/// names none) that the service offers, sorted, once each.
pub(crate) fn granted_scopes(configuration: &Value, offered: &[String]) -> Vec<String> {
    let mut granted: Vec<String> = match configuration.get("scopes").and_then(Value::as_array) {
        Some(asked) => asked
            .iter()
            .filter_map(Value::as_str)
            .filter(|s| offered.iter().any(|o| o == s))
            .map(str::to_string)
            .collect(),
        None => offered.to_vec(),
    };
    granted.sort();
    granted.dedup();
    granted
}

pub(crate) fn start_job(job: Job, now: i64) -> Option<JobState> {
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
        origin: origin_of(req, CreateCall::Create),
        environment: req.environment.clone(),
        linked: false,
        hold: None,
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
            resource.detail = Detail::ApiToken {
                scopes: granted_scopes(&req.configuration, scopes),
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
                asked: None,
                billing: None,
                usage: None,
            };
            let one_time = match &service.provider {
                Behaviour::OperatorBackend { price: Some(p), .. } if p.interval.is_none() => {
                    Some(p)
                }
                _ => None,
            };
            if let (Some(price), true) = (one_time, catalog.is_paid(service)) {
                // A one-time price: quoted, nothing charged until the orchestrator acknowledges
                // it (`submitted_information` `{"amount"}`, `information`).
                resource.status = ResourceStatus::NeedsInformation;
                resource.detail = Detail::Operator {
                    access_configuration: None,
                    asked: Some(InformationAsked {
                        action: OperatorAction::Create,
                        schema: json!({
                            "type": "object",
                            "properties": {"amount": {"type": "integer", "const": price.amount,
                                "description": "the one-time price in minor units (cents), to acknowledge it"}},
                            "required": ["amount"],
                            "additionalProperties": false
                        }),
                        purchase: Some(OneTimePurchase {
                            amount: price.amount,
                            currency: price.currency.clone(),
                            payment_token: req.payment_token.clone(),
                        }),
                    }),
                    billing: None,
                    usage: None,
                };
                resource.message = Some(format!(
                    "{} is a one-time, non-refundable charge of {}: nothing is charged until you acknowledge it (send the create again with submitted_information {{\"amount\": {}}})",
                    service.id,
                    crate::ledger::format_amount(price.amount, &price.currency),
                    price.amount
                ));
            } else if let (
                Behaviour::OperatorBackend {
                    metered: Some(m), ..
                },
                true,
            ) = (&service.provider, catalog.is_paid(service))
            {
                // Usage-based: subscribed to the metered price (nothing charged now), then the
                // backend creates it; reported usage counts against the cap from then on.
                let token = req
                    .payment_token
                    .clone()
                    .ok_or(ResourceError::RequiresPaymentCredentials)?;
                let ledger = &mut d.account.ledger;
                ledger.adopt_currency(&m.currency, now);
                let spent = ledger.spent(now);
                if spent >= ledger.cap {
                    // It would only start paused: say so before anything is set up.
                    return Err(ResourceError::SpendingCapExceeded {
                        spent,
                        cap: ledger.cap,
                        amount: 0,
                        currency: ledger.currency.clone(),
                    });
                }
                resource.message = Some("setting up usage-based billing".into());
                resource.job = start_job(
                    Job::StartMetered {
                        token,
                        currency: m.currency.clone(),
                        stripe_price: m.stripe_price.clone(),
                        event_name: m.event_name.clone(),
                        key: ids.charge_id.clone(),
                        token_checked: false,
                        payment_method: None,
                        then_operator: url.clone(),
                    },
                    now,
                );
            } else if catalog.is_paid(service) {
                // Paid by a recurring price: the first period is charged and the subscription
                // started first (`Subscribe`), then the backend creates it.
                let token = req
                    .payment_token
                    .clone()
                    .ok_or(ResourceError::RequiresPaymentCredentials)?;
                let job = subscribe_job(d, service, &ids.resource_id, token, &ids.charge_id, None)?;
                resource.message = Some("starting the subscription".into());
                resource.job = start_job(job, now);
            } else {
                resource.message = Some("the platform is provisioning it".into());
                resource.job = start_job(
                    // Information the orchestrator already has goes with the first call.
                    operator_job(
                        d,
                        OperatorAction::Create,
                        url.clone(),
                        req.submitted_information.clone().map(Value::Object),
                        None,
                    ),
                    now,
                );
            }
        }
    }
    let after = summary(&resource);
    d.account.resources.push(resource);
    d.record(AuditAction::ResourceCreated, None, Value::Null, after);
    Ok(ids.resource_id)
}
