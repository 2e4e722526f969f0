//! The hard cap over usage: when the month's spend reaches the cap, the account's usage-based
//! resources are paused (their backend is called with `suspend`); when there is room again
//! (the owner raised the cap, or a new month began) they resume (`resume`).
//!
//! Two fields per resource (`UsageBilling`): `paused` is what the cap wants, `suspended` what
//! the backend confirmed. [`reconcile`] moves `paused` with the spend, and starts the backend
//! call that brings `suspended` in line on every resource that is idle; [`next_wake`] says when
//! it must run again (at once while the two differ, at the next month for a paused resource).

use serde_json::json;

use crate::account::{Account, Draft};
use crate::audit_action::AuditAction;
use crate::catalog::{Behaviour, Catalog};
use crate::ledger::format_amount;
use crate::resources::jobs::operator::operator_job;
use crate::resources::model::{Detail, JobState, OperatorAction, Pause, Resource, ResourceStatus};
use crate::resources::render::summary;
use crate::time::month_bounds;

/// After a `suspend` or `resume` that failed for good, the next try waits this long.
pub const PAUSE_RETRY_SECONDS: i64 = 300;

/// What a paused resource says, and where the owner lifts the pause.
pub fn pause_message(r: &Resource, currency: &str) -> Option<String> {
    let Detail::Operator { usage: Some(u), .. } = &r.detail else {
        return None;
    };
    let p = u.paused.as_ref()?;
    let state = if u.suspended { "paused" } else { "pausing" };
    Some(format!(
        "{state}: this month's spending ({}) reached the account's cap of {}. Usage reported meanwhile is still billed. It resumes when the owner raises the cap on the dashboard (a deep link with purpose \"billing\") or when the next month begins.",
        format_amount(p.spent, currency),
        format_amount(p.cap, currency)
    ))
}

fn backend_url(catalog: &Catalog, service_id: &str) -> Option<String> {
    match &catalog.get(service_id)?.provider {
        Behaviour::OperatorBackend { url, .. } => Some(url.clone()),
        _ => None,
    }
}

/// Whether the cap is reached for the month of `now`.
fn at_cap(a: &Account, now: i64) -> bool {
    a.ledger.spent(now) >= a.ledger.cap
}

/// Moves every usage-based resource's pause with the spend, and starts the `suspend` or
/// `resume` call on those that are idle and not yet where the cap wants them.
pub fn reconcile(d: &mut Draft, catalog: &Catalog) {
    let now = d.now();
    let spent = d.account.ledger.spent(now);
    let cap = d.account.ledger.cap;
    let full = spent >= cap;
    let currency = d.account.ledger.currency.clone();
    let closing = d.account.closing.is_some();
    for i in 0..d.account.resources.len() {
        let r = &d.account.resources[i];
        let Detail::Operator { usage: Some(u), .. } = &r.detail else {
            continue;
        };
        if r.status == ResourceStatus::Removed {
            continue;
        }
        let before = summary(r);
        let moved = match (full, u.paused.is_some()) {
            (true, false) => Some(AuditAction::ResourcePaused),
            (false, true) => Some(AuditAction::ResourceUnpaused),
            _ => None,
        };
        let idle = !closing && r.job.is_none() && r.status == ResourceStatus::Complete;
        let url = backend_url(catalog, &r.service_id);
        let r = &mut d.account.resources[i];
        let Detail::Operator { usage: Some(u), .. } = &mut r.detail else {
            continue;
        };
        if moved.is_some() {
            u.paused = full.then_some(Pause {
                since: now,
                cap,
                spent,
            });
        }
        let call = match (u.paused.is_some(), u.suspended) {
            (true, false) => Some(OperatorAction::Suspend),
            (false, true) => Some(OperatorAction::Resume),
            _ => None,
        };
        let due = u.retry_at.is_none_or(|t| t <= now);
        let start = match (call, url, idle && due) {
            (Some(action), Some(url), true) => {
                u.retry_at = None;
                Some((action, url))
            }
            _ => None,
        };
        if let Some(action) = moved {
            r.message = pause_message(r, &currency);
            r.updated_at = now;
            let after = summary(r);
            d.record(
                action,
                None,
                before,
                json!({"resource": after, "spent_this_month": spent, "cap": cap}),
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

/// When [`reconcile`] must run again for `a` (unix seconds): at once while a usage-based
/// resource's pause and the spend disagree or its backend call is due, at the start of the
/// next month while one is paused, and when an unsent meter event or credit grant is due.
pub fn next_wake(a: &Account, now: i64) -> Option<i64> {
    let meter = a
        .ledger
        .usage
        .iter()
        .filter(|u| u.meter.pending())
        .map(|u| u.meter.next_at)
        .chain(crate::usage::credits::next_wake(a))
        .min();
    let mut usage = a
        .resources
        .iter()
        .filter(|r| r.status != ResourceStatus::Removed)
        .filter_map(|r| match &r.detail {
            Detail::Operator { usage: Some(u), .. } => Some((r, u)),
            _ => None,
        })
        .peekable();
    if usage.peek().is_none() {
        return meter;
    }
    let full = at_cap(a, now);
    let mut wake = meter;
    let mut earliest = |t: i64| wake = Some(wake.map_or(t, |w| w.min(t)));
    for (r, u) in usage {
        if full != u.paused.is_some() {
            earliest(now);
        } else if u.paused.is_some() != u.suspended
            && r.job.is_none()
            && r.status == ResourceStatus::Complete
            && a.closing.is_none()
        {
            earliest(u.retry_at.unwrap_or(now).max(now));
        }
        if u.paused.is_some() {
            earliest(month_bounds(now).1);
        }
    }
    wake
}
