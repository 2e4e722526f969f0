use crate::audit_action::AuditAction;
use serde_json::Value;

use crate::account::Draft;
use crate::catalog::{Catalog, ServiceKind};
use crate::resources::create::start_job;
use crate::resources::error::{invalid, ResourceError};
use crate::resources::jobs::cancel::hasten_stale;
use crate::resources::jobs::operator::operator_job;
use crate::resources::lookup::{index, live};
use crate::resources::model::{
    Detail, Job, OperatorAction, OperatorBilling, ResourceStatus, UsageBilling,
};
use crate::resources::render::summary;
use crate::resources::update::operator_url;

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
    // What must happen elsewhere before the resource is gone, if anything. A linked resource
    // is only detached: the thing it links to stays.
    let release = match &r.detail {
        // A paid operator service that never became complete (errored, or waiting for
        // information) may still have a live subscription: cancel it.
        Detail::Operator {
            billing:
                Some(OperatorBilling {
                    subscription_id: Some(sub),
                    ..
                }),
            ..
        } if r.status != ResourceStatus::Complete => Some(Job::Unsubscribe {
            target_service: None,
            subscription_id: sub.clone(),
        }),
        Detail::Operator {
            usage: Some(UsageBilling {
                subscription_id, ..
            }),
            ..
        } if r.status != ResourceStatus::Complete => Some(Job::Unsubscribe {
            target_service: None,
            subscription_id: subscription_id.clone(),
        }),
        _ if r.status != ResourceStatus::Complete || r.linked => None,
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
        Detail::Operator { .. } => Some(operator_job(
            d,
            OperatorAction::Remove,
            operator_url(catalog, &r.service_id)?,
            None,
            None,
        )),
        _ => None,
    };
    if let Some(Job::ReleaseDomain {
        domain: released, ..
    }) = &release
    {
        // Links to a domain that is let go would show a name the account no longer holds.
        let links: Vec<usize> = d
            .account
            .resources
            .iter()
            .enumerate()
            .filter(|(_, x)| {
                x.linked
                    && live(x)
                    && matches!(&x.detail, Detail::Domain { domain: Some(n), .. } if n == released)
            })
            .map(|(j, _)| j)
            .collect();
        for j in links {
            d.set_status(j, ResourceStatus::Removed, AuditAction::ResourceRemoved);
        }
    }
    match release {
        Some(job) => {
            d.account.resources[i].job = start_job(job, now);
            d.account.resources[i].status = ResourceStatus::Pending;
            d.record(
                AuditAction::ResourceRemoveRequested,
                None,
                summary(&r),
                Value::Null,
            );
            Ok(false)
        }
        None => {
            let res = &mut d.account.resources[i];
            res.message = None;
            if let Detail::Domain { quote, .. } = &mut res.detail {
                *quote = None;
            }
            d.set_status(i, ResourceStatus::Removed, AuditAction::ResourceRemoved);
            Ok(!stale)
        }
    }
}

/// Marks a resource removed without external work (nothing was provisioned).
pub fn mark_removed(d: &mut Draft, id: &str) {
    if let Ok(i) = index(d, id) {
        d.account.resources[i].job = None;
        d.set_status(i, ResourceStatus::Removed, AuditAction::ResourceRemoved);
    }
}
