//! Sending usage to Stripe: each usage record's Billing meter event, from the alarm, until
//! Stripe accepts it or refuses it for good.
//!
//! Invariants: the event's `identifier` (also the call's idempotency key) is derived from the
//! account and the report's key, so a retry never bills twice; an outage is retried with
//! backoff for as long as Stripe would still take the event (35 days after it occurred), then
//! recorded as failed. A failed event stays in the ledger (the usage still counted against the
//! cap) and in the audit trail, for the operator to bill by hand.

use serde_json::{json, Value};

use crate::account::{Account, Draft};
use crate::audit_action::AuditAction;
use crate::resources::{Action, ActionResult, ResourceError};
use crate::usage::error::MAX_AGE_SECONDS;

/// Most meter events one alarm sends.
pub const BATCH: usize = 25;

/// The meter event's `identifier`: at most 100 characters (Stripe's limit), the same for the
/// same (account, key).
pub fn identifier(account_id: &str, key: &str) -> String {
    let digest = crate::crypto::sha256_hex(format!("{account_id}\u{0}{key}").as_bytes());
    format!("usage_{}", &digest[..48])
}

/// Keys of the records whose meter event is due at `now`, oldest first, at most [`BATCH`].
pub fn due(a: &Account, now: i64) -> Vec<String> {
    let mut due: Vec<_> = a
        .ledger
        .usage
        .iter()
        .filter(|u| u.meter.pending() && u.meter.next_at <= now)
        .collect();
    due.sort_by_key(|u| (u.meter.next_at, u.received_at));
    due.into_iter().take(BATCH).map(|u| u.key.clone()).collect()
}

/// The call that sends record `key`'s meter event, and the resource it is for.
pub fn action(a: &Account, key: &str) -> Option<(String, Action)> {
    let u = a.ledger.usage.iter().find(|u| u.key == key)?;
    if !u.meter.pending() {
        return None;
    }
    let customer = a.billing.customer_id.clone()?;
    Some((
        u.resource_id.clone(),
        Action::ReportMeterEvent {
            identifier: u.meter.identifier.clone(),
            event_name: u.meter.event_name.clone(),
            customer,
            value: u.amount,
            timestamp: u.occurred_at,
        },
    ))
}

fn failed(d: &mut Draft, key: &str, error: String) {
    let now = d.now();
    let Some(u) = d.account.ledger.usage.iter_mut().find(|u| u.key == key) else {
        return;
    };
    u.meter.error = Some(error.clone());
    let detail = json!({"resource_id": u.resource_id, "key": key, "amount": u.amount,
                        "identifier": u.meter.identifier, "error": error, "at": now});
    d.record(AuditAction::UsageBillingFailed, None, Value::Null, detail);
}

/// Records Stripe's answer to record `key`'s meter event.
pub fn apply(d: &mut Draft, key: &str, outcome: ActionResult) {
    let now = d.now();
    let Some(u) = d.account.ledger.usage.iter_mut().find(|u| u.key == key) else {
        return;
    };
    if !u.meter.pending() {
        return;
    }
    match outcome {
        ActionResult::MeterEvent => {
            u.meter.billed_at = Some(now);
            let detail = json!({"resource_id": u.resource_id, "key": key, "amount": u.amount,
                                "identifier": u.meter.identifier, "event_name": u.meter.event_name});
            d.record(AuditAction::UsageBilled, None, Value::Null, detail);
        }
        ActionResult::Unavailable { message } => {
            if u.occurred_at + MAX_AGE_SECONDS <= now {
                let error = format!(
                    "Stripe was unavailable until the event was too old to send: {message}"
                );
                failed(d, key, error);
                return;
            }
            u.meter.attempts += 1;
            u.meter.next_at = now + crate::time::backoff(u.meter.attempts);
        }
        ActionResult::Refused { error } => {
            let message = match error {
                ResourceError::Payment { error } => error.describe().1,
                other => format!("{other:?}"),
            };
            failed(d, key, crate::text::truncate(&message, 300).to_string());
        }
        other => failed(d, key, format!("unexpected answer: {other:?}")),
    }
}
