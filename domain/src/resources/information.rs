//! The `needs_information` round trip (protocol §8): a resource that needs something from the
//! human answers `needs_information` with a JSON Schema of it; the orchestrator sends the same
//! create (or link) again carrying `submitted_information`, which is checked against that very
//! schema and then acts: a domain quote is confirmed (the purchase starts), an operator backend
//! is called again with it, a linked domain is identified.
//!
//! Invariants: what is submitted is validated before anything changes; a submission to a
//! resource that no longer needs information (a retried call that was already answered) changes
//! nothing and answers the resource as it is.

use serde_json::{json, Map, Value};

use crate::account::Draft;
use crate::audit_action::AuditAction;
use crate::catalog::Catalog;
use crate::resources::asked::information_schema;
use crate::resources::confirm::confirm_domain;
use crate::resources::create::{reserve, start_job};
use crate::resources::error::ResourceError;
use crate::resources::jobs::operator::operator_job;
use crate::resources::link::link_domain;
use crate::resources::lookup::index;
use crate::resources::model::{Detail, InformationAsked, Job, ResourceStatus};
use crate::resources::request::ConfirmRequest;
use crate::resources::update::operator_url;
use crate::schema;

/// Applies `submitted_information` to resource `id` (see the module doc). `payment_token` is
/// the repeated call's, if it carried one; `charge_id` is drawn for a purchase it may start.
pub fn submit_information(
    d: &mut Draft,
    id: &str,
    info: &Map<String, Value>,
    payment_token: Option<String>,
    catalog: &Catalog,
    charge_id: &str,
) -> Result<(), ResourceError> {
    d.require_active_account()?;
    let i = index(d, id)?;
    let r = d.account.resources[i].clone();
    let Some(schema) = information_schema(&r).filter(|_| r.job.is_none()) else {
        // Already answered: a retry of the call that answered it.
        return Ok(());
    };
    let submitted = Value::Object(info.clone());
    schema::validate(&schema, &submitted).map_err(|e| ResourceError::InvalidInformation {
        field: format!("submitted_information{}", e.path),
        message: e.message,
    })?;
    match &r.detail {
        Detail::Domain { .. } if r.linked => {
            let name = info
                .get("domain")
                .and_then(Value::as_str)
                .unwrap_or_default();
            link_domain(d, i, name)
        }
        Detail::Domain { .. } => {
            let req = ConfirmRequest {
                domain: info
                    .get("domain")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                amount: info
                    .get("amount")
                    .and_then(Value::as_u64)
                    .unwrap_or_default(),
                payment_token,
            };
            confirm_domain(d, id, &req, charge_id)
        }
        Detail::Operator {
            asked: Some(InformationAsked {
                purchase: Some(p), ..
            }),
            ..
        } => {
            // The one-time price acknowledged: reserve it against the cap, then charge it and
            // have the backend create the resource (`Purchase`).
            let token = payment_token
                .or_else(|| p.payment_token.clone())
                .ok_or(ResourceError::RequiresPaymentCredentials)?;
            let url = operator_url(catalog, &r.service_id)?;
            // Credits pay first; `card` is what is left for the payment method.
            let card = reserve(d, charge_id, id, p.amount, &p.currency, &r.service_id)?;
            let now = d.now();
            let res = &mut d.account.resources[i];
            res.status = ResourceStatus::Pending;
            res.message = Some("charging the one-time price".into());
            res.job = start_job(
                Job::Purchase {
                    amount: card,
                    currency: p.currency.clone(),
                    token,
                    charge_id: charge_id.to_string(),
                    token_checked: false,
                    payment_intent: None,
                    then_operator: url,
                },
                now,
            );
            d.record(
                AuditAction::ResourceInformationSubmitted,
                None,
                json!({"status": "needs_information"}),
                json!({"resource_id": id, "acknowledged_amount": p.amount, "currency": p.currency}),
            );
            Ok(())
        }
        Detail::Operator {
            asked: Some(asked), ..
        } => {
            let url = operator_url(catalog, &r.service_id)?;
            let now = d.now();
            let job = operator_job(d, asked.action, url, Some(submitted), None);
            let res = &mut d.account.resources[i];
            res.status = ResourceStatus::Pending;
            res.message = Some("the platform is checking what was submitted".into());
            res.job = start_job(job, now);
            // The audit record names what was submitted, not its values (they may be secret).
            let fields: Vec<&String> = info.keys().collect();
            d.record(
                AuditAction::ResourceInformationSubmitted,
                None,
                json!({"status": "needs_information"}),
                json!({"resource_id": id, "action": asked.action, "fields": fields}),
            );
            Ok(())
        }
        _ => Ok(()),
    }
}
