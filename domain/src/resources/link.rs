//! Linking an existing resource (`POST /provisioning/resources/link`, protocol §8; the CLI's
//! `add --existing`): the account already has the thing, and the project wants to use it.
//!
//! What linking means per kind of service:
//! - a **plan** links to the account's current plan of that service (answered as it is);
//! - an **API token** cannot be linked (its value was shown to whoever made it): create one;
//! - a **domain** links to a domain this account registered here: `needs_information` asks
//!   for its name, then the linked resource shows it;
//! - an **operator service** asks the operator's backend (`action: "link"`), which answers
//!   `needs_information` with what identifies the existing resource, then verifies with the
//!   `submitted_information` that the account owns it and answers its access configuration.
//!
//! Invariants: a linked resource is marked `linked`; removing it detaches it from the project
//! and deletes, releases or cancels nothing; its configuration cannot change. A link is
//! matched on retry like a create: by its names, else by (project, service) among links.

use serde_json::Value;

use crate::account::{Account, Draft};
use crate::audit_action::AuditAction;
use crate::catalog::{Behaviour, Catalog, ServiceKind};
use crate::resources::create::{named, origin_of, start_job, Preparation};
use crate::resources::error::ResourceError;
use crate::resources::jobs::operator::operator_job;
use crate::resources::lookup::{current_plan, live, service};
use crate::resources::model::{Detail, OperatorAction, Resource, ResourceStatus};
use crate::resources::render::summary;
use crate::resources::request::{CreateCall, CreateRequest};

/// Read-only checks before a link: the resource an earlier link made, the plan it links to,
/// or `Ready` for [`link`]. Refuses what cannot be linked.
pub fn prepare_link(
    a: &Account,
    req: &CreateRequest,
    catalog: &Catalog,
) -> Result<Preparation, ResourceError> {
    let service = service(catalog, &req.service_id)?;
    if let Some(r) = named(a, req, CreateCall::Link)? {
        return Ok(Preparation::Existing(r.id.clone()));
    }
    match &service.provider {
        Behaviour::Plan { .. } => {
            return match current_plan(a).filter(|p| p.service_id == service.id) {
                Some(plan) => Ok(Preparation::Existing(plan.id.clone())),
                None => Err(ResourceError::LinkTargetNotFound {
                    message: format!(
                        "this account has no {} plan to link; create it (POST /provisioning/resources)",
                        service.id
                    ),
                }),
            }
        }
        Behaviour::ApiToken { .. } => {
            return Err(ResourceError::LinkNotSupported {
                service_id: service.id.clone(),
                reason: "an API token's value is shown only to whoever made it; create a new one (POST /provisioning/resources)".into(),
            })
        }
        Behaviour::Domain { .. } | Behaviour::OperatorBackend { .. } => {}
    }
    if let Some(r) = a.resources.iter().find(|r| {
        !req.named()
            && live(r)
            && r.linked
            && r.status != ResourceStatus::Errored
            && r.service_id == req.service_id
            && r.project_id == req.project_id
    }) {
        return Ok(Preparation::Existing(r.id.clone()));
    }
    if service.kind == ServiceKind::Deployable && current_plan(a).is_none() {
        return Err(ResourceError::PlanRequired);
    }
    Ok(Preparation::Ready)
}

/// Makes the linked resource after [`prepare_link`] said `Ready`: a domain waits for its name
/// (`needs_information`); an operator service asks its backend.
pub fn link(
    d: &mut Draft,
    req: &CreateRequest,
    catalog: &Catalog,
    resource_id: &str,
) -> Result<String, ResourceError> {
    d.require_active_account()?;
    let service = service(catalog, &req.service_id)?;
    let now = d.now();
    let (status, detail, job, message) = match &service.provider {
        Behaviour::Domain { registrar, .. } => (
            ResourceStatus::NeedsInformation,
            Detail::Domain {
                query: String::new(),
                registrar: *registrar,
                quote: None,
                payment_token: None,
                domain: None,
                expires_at: None,
            },
            None,
            "name the domain of this account to link".to_string(),
        ),
        Behaviour::OperatorBackend { url, .. } => (
            ResourceStatus::Pending,
            Detail::Operator {
                access_configuration: None,
                asked: None,
                billing: None,
                usage: None,
            },
            start_job(
                operator_job(d, OperatorAction::Link, url.clone(), None, None),
                now,
            ),
            "the platform is looking for the existing resource".to_string(),
        ),
        _ => {
            return Err(ResourceError::LinkNotSupported {
                service_id: service.id.clone(),
                reason: "only domains and the platform's services can be linked".into(),
            })
        }
    };
    let resource = Resource {
        id: resource_id.to_string(),
        service_id: service.id.clone(),
        project_id: req.project_id.clone(),
        kind: service.kind,
        status,
        created_at: now,
        updated_at: now,
        configuration: req.configuration.clone(),
        detail,
        job,
        error: None,
        message: Some(message),
        origin: origin_of(req, CreateCall::Link),
        environment: req.environment.clone(),
        linked: true,
        hold: None,
    };
    let after = summary(&resource);
    d.account.resources.push(resource);
    d.record(AuditAction::ResourceLinkRequested, None, Value::Null, after);
    Ok(resource_id.to_string())
}

/// Identifies a linked domain resource `i` by `name`: a domain this account registered here
/// (a complete domain resource of its own, not itself a link).
pub(crate) fn link_domain(d: &mut Draft, i: usize, name: &str) -> Result<(), ResourceError> {
    let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
    let owned = d.account.resources.iter().find_map(|r| match &r.detail {
        Detail::Domain {
            domain: Some(dn),
            expires_at,
            registrar,
            ..
        } if !r.linked && r.status == ResourceStatus::Complete && *dn == name => {
            Some((*expires_at, *registrar))
        }
        _ => None,
    });
    let Some((expires_at, registrar)) = owned else {
        return Err(ResourceError::LinkTargetNotFound {
            message: format!("{name} is not a domain this account registered here"),
        });
    };
    let now = d.now();
    let before = summary(&d.account.resources[i]);
    let r = &mut d.account.resources[i];
    r.detail = Detail::Domain {
        query: name.clone(),
        registrar,
        quote: None,
        payment_token: None,
        domain: Some(name),
        expires_at,
    };
    r.status = ResourceStatus::Complete;
    r.message = None;
    r.updated_at = now;
    let after = summary(r);
    d.record(AuditAction::ResourceLinked, None, before, after);
    Ok(())
}
