use crate::audit_action::AuditAction;
use serde_json::{json, Value};

use crate::account::Draft;
use crate::catalog::{Behaviour, Catalog};
use crate::resources::api_token::NewApiToken;
use crate::resources::create::{granted_scopes, start_job, subscribe_job};
use crate::resources::error::{invalid, ResourceError};
use crate::resources::jobs::operator::operator_job;
use crate::resources::lookup::{index, service};
use crate::resources::model::{Detail, Job, OperatorAction, ResourceStatus};
use crate::resources::render::summary;
use crate::resources::request::UpdateRequest;

/// `update_service`: move a plan along `allowed_updates`, and/or apply a new configuration
/// (protocol §8: `configuration` alone, or with the resource's own `service_id`, is a
/// configuration change).
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
    let target_id = req.service_id.as_deref().unwrap_or(&r.service_id);
    if let Some(configuration) = &req.configuration {
        // Checked against the service the resource is moving to, before anything changes.
        let target = service(catalog, target_id)?;
        target.validate_configuration(configuration).map_err(|e| {
            ResourceError::InvalidConfiguration {
                field: format!("configuration{}", e.path),
                message: e.message,
            }
        })?;
        if target_id == r.service_id {
            return update_configuration(d, i, configuration, catalog);
        }
        if *configuration != r.configuration {
            // A plan change and a new configuration in one call would be two jobs; say so
            // rather than apply half.
            return Err(invalid(
                "change the service and the configuration in two calls: first service_id, then configuration",
            ));
        }
    }
    if target_id == r.service_id {
        return Ok(());
    }
    let current = service(catalog, &r.service_id)?;
    let target = service(catalog, target_id)?;
    if !current.allows_update_to(target) {
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

/// A configuration change of resource `i` (already validated): API tokens take their new
/// scopes and label at once (the value stays); operator services ask their backend
/// (`action: "update"`) and keep the old configuration until it answers `complete`; plans
/// store it. A domain's query is what was bought: it cannot change.
fn update_configuration(
    d: &mut Draft,
    i: usize,
    configuration: &Value,
    catalog: &Catalog,
) -> Result<(), ResourceError> {
    let now = d.now();
    let r = d.account.resources[i].clone();
    if *configuration == r.configuration {
        return Ok(());
    }
    let before = summary(&r);
    match &r.detail {
        Detail::Domain { .. } => Err(ResourceError::ConfigurationNotUpdatable {
            service_id: r.service_id.clone(),
        }),
        Detail::Operator { .. } if r.linked => Err(ResourceError::ConfigurationNotUpdatable {
            service_id: r.service_id.clone(),
        }),
        Detail::Operator { .. } => {
            if r.status != ResourceStatus::Complete {
                return Err(ResourceError::Busy);
            }
            let url = operator_url(catalog, &r.service_id)?;
            let job = operator_job(
                d,
                OperatorAction::Update,
                url,
                None,
                Some(configuration.clone()),
            );
            let res = &mut d.account.resources[i];
            res.job = start_job(job, now);
            res.status = ResourceStatus::Pending;
            res.message = Some("the platform is applying the new configuration".into());
            d.record(
                AuditAction::ResourceUpdateRequested,
                None,
                before,
                json!({"resource_id": r.id, "configuration": configuration}),
            );
            Ok(())
        }
        Detail::ApiToken { .. } | Detail::Plan { .. } => {
            let service = service(catalog, &r.service_id)?;
            let res = &mut d.account.resources[i];
            if let (
                Detail::ApiToken { scopes, label, .. },
                Behaviour::ApiToken {
                    scopes: offered, ..
                },
            ) = (&mut res.detail, &service.provider)
            {
                *scopes = granted_scopes(configuration, offered);
                *label = configuration
                    .get("label")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
            res.configuration = configuration.clone();
            res.updated_at = now;
            let after = summary(res);
            d.record(AuditAction::ResourceUpdated, None, before, after);
            Ok(())
        }
    }
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
    // Made before the resource is borrowed; used only by an operator rotation.
    let call = operator_url(catalog, &d.account.resources[i].service_id)
        .map(|url| operator_job(d, OperatorAction::Rotate, url, None, None));
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
        Detail::Operator { .. } if r.status == ResourceStatus::Complete && !r.linked => {
            r.job = start_job(call?, now);
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
