use crate::account::{Account, Draft};
use crate::audit_action::AuditAction;
use crate::catalog::{Catalog, Service, ServiceKind};
use crate::resources::error::ResourceError;
use crate::resources::model::{Resource, ResourceStatus};
use crate::resources::render::summary;

/// The catalog's service `id`, or `unknown_service`.
pub(crate) fn service<'a>(catalog: &'a Catalog, id: &str) -> Result<&'a Service, ResourceError> {
    catalog
        .get(id)
        .ok_or_else(|| ResourceError::UnknownService {
            service_id: id.to_string(),
        })
}

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

/// The resource as the protocol serves it (GET and every response that renders it): a removed
/// resource answers `resource_not_found`, as other providers do, although the account keeps it
/// (audit, and a repeated `remove` still answers `removed`). One still being removed is served.
pub fn find_served<'a>(a: &'a Account, id: &str) -> Result<&'a Resource, ResourceError> {
    find(a, id).and_then(|r| match r.status {
        ResourceStatus::Removed => Err(ResourceError::NotFound),
        _ => Ok(r),
    })
}

pub(crate) fn index(d: &Draft, id: &str) -> Result<usize, ResourceError> {
    d.account
        .resources
        .iter()
        .position(|r| r.id == id)
        .ok_or(ResourceError::NotFound)
}

impl Draft<'_> {
    pub(crate) fn require_active_account(&self) -> Result<(), ResourceError> {
        self.require_active().map_err(ResourceError::from)
    }

    pub(crate) fn set_status(&mut self, i: usize, status: ResourceStatus, action: AuditAction) {
        let before = summary(&self.account.resources[i]);
        let now = self.now();
        let r = &mut self.account.resources[i];
        r.status = status;
        r.updated_at = now;
        let after = summary(r);
        self.record(action, None, before, after);
    }
}
