use crate::audit_action::AuditAction;
use serde_json::{json, Value};

use crate::account::Draft;
use crate::catalog::{Behaviour, Catalog};
use crate::resources::api_token::NewApiToken;
use crate::resources::create::{start_job, subscribe_job};
use crate::resources::error::{invalid, ResourceError};
use crate::resources::lookup::{index, service};
use crate::resources::model::{Detail, Job, OperatorAction, ResourceStatus};
use crate::resources::render::summary;
use crate::resources::request::UpdateRequest;

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
    if !current.allows_update_to(&target.id) {
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
        d.record(AuditAction::ResourceUpdated, None, before, after);
        return Ok(());
    }
    d.record(
        AuditAction::ResourceUpdateRequested,
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
                AuditAction::ResourceRotated,
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
                    action: OperatorAction::Rotate,
                    url,
                },
                now,
            );
            r.status = ResourceStatus::Pending;
            d.record(
                AuditAction::ResourceRotateRequested,
                None,
                Value::Null,
                json!({"resource_id": id}),
            );
            Ok(())
        }
        _ => Err(ResourceError::RotationNotSupported),
    }
}

pub(crate) fn operator_url(catalog: &Catalog, service_id: &str) -> Result<String, ResourceError> {
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
