//! Holding operator resources stopped at their backend (`Resource.hold`): the hard cap pauses
//! an account's usage-based resources when the month's spend reaches the cap, and lets them go
//! when there is room again (the owner raised the cap, or a new month began); an unpaid invoice
//! past the grace period stops a paid operator service until it is paid (`stripe_events`).
//!
//! The hold's `cap` and `unpaid` say why a resource should be stopped; `suspended` is what the
//! backend confirmed. [`reconcile`] moves `cap` with the spend and starts the backend's
//! `suspend` or `resume` on every idle resource whose two disagree; [`next_wake`] says when it
//! must run again (at once while they disagree, at the next month while the cap holds one).

use serde_json::json;

use crate::account::{Account, Draft};
use crate::audit_action::AuditAction;
use crate::catalog::{Behaviour, Catalog};
use crate::resources::jobs::operator::operator_job;
use crate::resources::model::{
    Detail, Hold, JobState, OperatorAction, Pause, Resource, ResourceStatus,
};
use crate::resources::render::summary;
use crate::time::month_bounds;

fn backend_url(catalog: &Catalog, service_id: &str) -> Option<String> {
    match &catalog.get(service_id)?.provider {
        Behaviour::OperatorBackend { url, .. } => Some(url.clone()),
        _ => None,
    }
}

/// Whether `r` is an operator resource the hold applies to (usage-based or paid) and is live.
fn holdable(r: &Resource) -> bool {
    r.status != ResourceStatus::Removed
        && matches!(&r.detail, Detail::Operator { usage, billing, .. } if usage.is_some() || billing.is_some())
}

/// Moves the cap's pause of every usage-based resource with the spend, and starts the
/// `suspend` or `resume` call on the idle operator resources whose hold is not yet applied.
pub fn reconcile(d: &mut Draft, catalog: &Catalog) {
    let now = d.now();
    let spent = d.account.ledger.spent(now);
    let cap = d.account.ledger.cap;
    let full = spent >= cap;
    let currency = d.account.ledger.currency.clone();
    let closing = d.account.closing.is_some();
    for i in 0..d.account.resources.len() {
        let r = &d.account.resources[i];
        if !holdable(r) {
            continue;
        }
        let usage_based = matches!(&r.detail, Detail::Operator { usage: Some(_), .. });
        let mut hold = r.hold.clone().unwrap_or_default();
        let moved = match (usage_based && full, hold.cap.is_some()) {
            (true, false) => Some(AuditAction::ResourcePaused),
            (false, true) => Some(AuditAction::ResourceUnpaused),
            _ => None,
        };
        let before = moved.map(|_| summary(r));
        if moved.is_some() {
            hold.cap = (usage_based && full).then_some(Pause {
                since: now,
                cap,
                spent,
            });
        }
        let idle = !closing && r.job.is_none() && r.status == ResourceStatus::Complete;
        let call = match (hold.wanted(), hold.suspended) {
            (true, false) => Some(OperatorAction::Suspend),
            (false, true) => Some(OperatorAction::Resume),
            _ => None,
        };
        let due = hold.retry_at.is_none_or(|t| t <= now);
        let start = match (call, backend_url(catalog, &r.service_id), idle && due) {
            (Some(action), Some(url), true) => {
                hold.retry_at = None;
                Some((action, url))
            }
            _ => None,
        };
        let r = &mut d.account.resources[i];
        r.hold = (!hold.is_clear()).then_some(hold);
        if let (Some(action), Some(before)) = (moved, before) {
            r.message = r.hold.as_ref().and_then(|h| h.message(&currency));
            r.updated_at = now;
            let after = summary(r);
            d.record(
                action,
                None,
                before,
                json!({"resource": after, "reason": "spending_cap", "spent_this_month": spent, "cap": cap}),
            );
        }
        if let Some((action, url)) = start {
            let job = operator_job(d, action, url, None, None);
            let r = &mut d.account.resources[i];
            // Nobody waits on it: a failure leaves the resource as it was (`operator::fail`).
            r.job = Some(JobState {
                job,
                started_at: now,
                attempts: 0,
                next_at: now,
                acknowledged: true,
            });
        }
    }
}

/// When [`reconcile`] must run again for `a` (unix seconds): at once while a resource's hold
/// and the spend disagree or its backend call is due, at the start of the next month while the
/// cap holds one, and when an unsent meter event or credit grant is due.
pub fn next_wake(a: &Account, now: i64) -> Option<i64> {
    let mut wake = a
        .ledger
        .usage
        .iter()
        .filter(|u| u.meter.pending())
        .map(|u| u.meter.next_at)
        .chain(crate::usage::credits::next_wake(a))
        .min();
    let mut held = a.resources.iter().filter(|r| holdable(r)).peekable();
    if held.peek().is_none() {
        return wake;
    }
    let full = a.ledger.spent(now) >= a.ledger.cap;
    let mut earliest = |t: i64| wake = Some(wake.map_or(t, |w| w.min(t)));
    for r in held {
        let usage_based = matches!(&r.detail, Detail::Operator { usage: Some(_), .. });
        let hold = r.hold.clone().unwrap_or_else(Hold::default);
        if (usage_based && full) != hold.cap.is_some() {
            earliest(now);
        } else if hold.wanted() != hold.suspended
            && r.job.is_none()
            && r.status == ResourceStatus::Complete
            && a.closing.is_none()
        {
            earliest(hold.retry_at.unwrap_or(now).max(now));
        }
        if hold.cap.is_some() {
            earliest(month_bounds(now).1);
        }
    }
    wake
}
