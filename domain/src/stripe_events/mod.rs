//! Stripe webhooks applied to an account (docs/PROTOCOL.md §6.3): exactly once, in any order.
//!
//! Invariants:
//! - An event id is applied at most once: the caller keeps the ids it applied for
//!   [`DEDUPE_WINDOW`] (30 days, which covers Stripe's 3 days of retries) and does not call
//!   [`apply_event`] again for one of them. The account object keeps them in their own table,
//!   not in the account state, so an account's thousandth event costs what its first did.
//! - Order never matters. Registers that Stripe overwrites (a subscription's status, whether
//!   the latest invoice was paid) keep the event with the greatest key `(created, rank, id)`,
//!   so an older event never undoes a newer one and every permutation ends in the same state.
//!   Effects that add up (an invoice paid, a refund) are keyed by their Stripe object and take
//!   the maximum, so duplicates and reordering change nothing.
//! - Every applied event leaves a `stripe.event` audit record (actor `stripe`, the event id)
//!   next to its effects; unknown types are recorded and otherwise ignored.

pub mod state;

pub use state::StripeState;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::account::Draft;
use crate::audit_action::AuditAction;
use crate::ledger::ChargeStatus;
use crate::resources::action::{Action, ActionResult};
use crate::resources::error::ResourceError;
use crate::resources::jobs::cancel::stale_ended;
use crate::resources::lookup::find;
use crate::resources::model::{Detail, Job, ResourceStatus, Settings};
use crate::resources::render::summary;
use crate::resources::saga::{apply_outcome, next_action};
use crate::stripe_api::PaymentError;
use crate::stripe_events::state::EventKey;

/// How long applied event ids are kept for deduplication.
pub const DEDUPE_WINDOW: i64 = 30 * 86_400;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StripeEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub created: i64,
    pub object: Value,
}

/// Reads an event; `Err` names what is missing.
pub fn parse_event(body: &[u8]) -> Result<StripeEvent, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let id = v["id"]
        .as_str()
        .filter(|s| s.starts_with("evt_") && s.len() <= 255)
        .ok_or("id must be an event id (evt_...)")?;
    let kind = v["type"]
        .as_str()
        .filter(|s| !s.is_empty() && s.len() <= 128)
        .ok_or("type is required")?;
    let created = v["created"].as_i64().ok_or("created must be a unix time")?;
    let object = v["data"]["object"].clone();
    if !object.is_object() {
        return Err("data.object must be an object".into());
    }
    Ok(StripeEvent {
        id: id.to_string(),
        kind: kind.to_string(),
        created,
        object,
    })
}

impl StripeEvent {
    /// What the audit records of this event's effects cite as their authority.
    pub fn consent(&self) -> Option<String> {
        Some(format!("stripe:{}", self.id))
    }

    /// The account id our objects carry in their metadata.
    pub fn account_hint(&self) -> Option<String> {
        let o = &self.object;
        [
            o.pointer("/metadata/account_id"),
            o.pointer("/subscription_details/metadata/account_id"),
            o.pointer("/parent/subscription_details/metadata/account_id"),
        ]
        .into_iter()
        .flatten()
        .find_map(|v| v.as_str())
        .filter(|a| crate::tokens::valid_account_id(a))
        .map(str::to_string)
    }

    /// Stripe ids that may map to an account when the metadata is missing.
    pub fn references(&self) -> Vec<String> {
        let o = &self.object;
        let mut refs = Vec::new();
        for key in ["customer", "subscription"] {
            if let Some(id) = o.get(key).and_then(Value::as_str) {
                refs.push(id.to_string());
            }
        }
        if o["object"] == "customer" || o["object"] == "subscription" {
            if let Some(id) = o["id"].as_str() {
                refs.push(id.to_string());
            }
        }
        refs
    }

    fn subscription_id(&self) -> Option<String> {
        let o = &self.object;
        match o["object"].as_str() {
            Some("subscription") => o["id"].as_str().map(str::to_string),
            _ => o
                .get("subscription")
                .and_then(Value::as_str)
                .or_else(|| {
                    o.pointer("/parent/subscription_details/subscription")
                        .and_then(Value::as_str)
                })
                .map(str::to_string),
        }
    }
}

fn key(e: &StripeEvent) -> EventKey {
    let rank = match e.kind.as_str() {
        "customer.subscription.created" => 1,
        "customer.subscription.updated" => 2,
        "customer.subscription.deleted" => 3,
        "invoice.payment_failed" => 1,
        "invoice.paid" => 2,
        _ => 0,
    };
    EventKey {
        created: e.created,
        rank,
        id: e.id.clone(),
    }
}

/// What happened to an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventOutcome {
    Applied,
    Duplicate,
    /// Older than what the account already knows: recorded, no effect.
    Stale,
    /// A type or object we do not act on: recorded.
    Ignored,
}

impl EventOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            EventOutcome::Applied => "applied",
            EventOutcome::Duplicate => "duplicate",
            EventOutcome::Stale => "stale",
            EventOutcome::Ignored => "ignored",
        }
    }
}

/// Applies one verified event. Call only for an event id not applied before (a duplicate must
/// change nothing, not even the audit trail). `in_flight` lists resources whose job is being
/// driven right now: their own call will get Stripe's answer, so the event leaves them alone.
pub fn apply_event(
    d: &mut Draft,
    e: &StripeEvent,
    settings: &Settings,
    in_flight: &[String],
) -> EventOutcome {
    let outcome = effects(d, e, settings, in_flight);
    d.record(
        AuditAction::StripeEvent,
        e.consent(),
        Value::Null,
        json!({"event_id": e.id, "type": e.kind, "created": e.created, "outcome": outcome.as_str()}),
    );
    outcome
}

fn effects(
    d: &mut Draft,
    e: &StripeEvent,
    settings: &Settings,
    in_flight: &[String],
) -> EventOutcome {
    match e.kind.as_str() {
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted" => subscription(d, e),
        "invoice.paid" | "invoice.payment_failed" => invoice(d, e),
        "payment_intent.succeeded" | "payment_intent.payment_failed" => {
            payment_intent(d, e, settings, in_flight)
        }
        "shared_payment.granted_token.deactivated" => token_deactivated(d, e, settings, in_flight),
        "charge.refunded" => refunded(d, e),
        "charge.dispute.created" => disputed(d, e),
        _ => EventOutcome::Ignored,
    }
}

/// The live resource a subscription bills: a paid plan, or a paid operator service.
fn billed_index(d: &Draft, subscription: &str) -> Option<usize> {
    plan_index(d, subscription).or_else(|| {
        d.account.resources.iter().position(|r| {
            matches!(&r.detail, Detail::Operator { billing: Some(b), .. }
                if b.subscription_id.as_deref() == Some(subscription))
                && r.status != ResourceStatus::Removed
        })
    })
}

/// The live operator resource (paid or usage-based) whose subscription this is.
fn operator_index(d: &Draft, subscription: &str) -> Option<usize> {
    d.account.resources.iter().position(|r| {
        let billed = match &r.detail {
            Detail::Operator { billing, usage, .. } => {
                billing
                    .as_ref()
                    .is_some_and(|b| b.subscription_id.as_deref() == Some(subscription))
                    || usage
                        .as_ref()
                        .is_some_and(|u| u.subscription_id == subscription)
            }
            _ => false,
        };
        billed && r.status != ResourceStatus::Removed
    })
}

/// An operator resource's invoice failed (it is past due from then) or was paid (the hold
/// for it is lifted; `usage::reconcile` resumes it at the backend).
fn operator_invoice(d: &mut Draft, i: usize, e: &StripeEvent, sub: &str, failed: bool) {
    let before = summary(&d.account.resources[i]);
    let r = &mut d.account.resources[i];
    let mut hold = r.hold.clone().unwrap_or_default();
    let action = if failed {
        if hold.past_due_since.is_some() {
            return;
        }
        hold.past_due_since = Some(e.created);
        AuditAction::ResourcePastDue
    } else {
        if hold.past_due_since.is_none() && !hold.unpaid {
            return;
        }
        hold.past_due_since = None;
        hold.unpaid = false;
        AuditAction::ResourcePaid
    };
    r.hold = (!hold.is_clear()).then_some(hold);
    let after = json!({"resource_id": r.id, "subscription_id": sub, "since": e.created});
    d.record(action, e.consent(), before, after);
}

fn plan_index(d: &Draft, subscription: &str) -> Option<usize> {
    d.account.resources.iter().position(|r| {
        matches!(&r.detail, Detail::Plan { subscription_id: Some(s), .. } if s == subscription)
            && r.status != ResourceStatus::Removed
    })
}

fn subscription(d: &mut Draft, e: &StripeEvent) -> EventOutcome {
    let (Some(sub), Some(status)) = (e.subscription_id(), e.object["status"].as_str()) else {
        return EventOutcome::Ignored;
    };
    let k = key(e);
    if d.account
        .stripe
        .subscriptions
        .get(&sub)
        .is_some_and(|(known, _)| *known >= k)
    {
        return EventOutcome::Stale;
    }
    d.account
        .stripe
        .subscriptions
        .insert(sub.clone(), (k, status.to_string()));
    if status == "canceled" {
        // A replaced subscription still to cancel that ended otherwise (from Stripe's
        // dashboard): nothing is left to retry.
        stale_ended(d, &sub);
    }
    if let Some(i) = plan_index(d, &sub) {
        let before = summary(&d.account.resources[i]);
        if let Detail::Plan {
            subscription_status,
            ..
        } = &mut d.account.resources[i].detail
        {
            *subscription_status = Some(status.to_string());
        }
        d.record(
            AuditAction::SubscriptionStatus,
            e.consent(),
            before,
            json!({"subscription_id": sub, "status": status}),
        );
    }
    EventOutcome::Applied
}

fn invoice(d: &mut Draft, e: &StripeEvent) -> EventOutcome {
    let Some(sub) = e.subscription_id() else {
        return EventOutcome::Ignored;
    };
    let failed = e.kind == "invoice.payment_failed";
    let plan = plan_index(d, &sub);
    // A paid invoice is money in, whatever the order: recorded once, keyed by the invoice.
    if !failed {
        let amount = e.object["amount_paid"].as_u64().unwrap_or(0);
        let currency = e.object["currency"].as_str().unwrap_or("usd").to_string();
        let invoice_id = e.object["id"].as_str().unwrap_or(&e.id).to_string();
        // A renewal counts against the month's spend, attributed to what it pays for.
        let resource = billed_index(d, &sub)
            .map(|i| d.account.resources[i].id.clone())
            .unwrap_or_default();
        if amount > 0
            && d.account.ledger.record_charge(
                &invoice_id,
                &resource,
                amount,
                &currency,
                e.created,
                "subscription renewal",
            )
        {
            d.record(AuditAction::ChargeSucceeded, e.consent(), Value::Null,
                     json!({"invoice": invoice_id, "subscription_id": sub, "amount": amount, "currency": currency}));
        }
    }
    let k = key(e);
    if d.account
        .stripe
        .invoices
        .get(&sub)
        .is_some_and(|(known, _)| *known >= k)
    {
        return EventOutcome::Stale;
    }
    d.account.stripe.invoices.insert(sub.clone(), (k, failed));
    let Some(i) = plan else {
        if let Some(i) = operator_index(d, &sub) {
            operator_invoice(d, i, e, &sub, failed);
        }
        return EventOutcome::Applied;
    };
    let before = summary(&d.account.resources[i]);
    let Detail::Plan {
        past_due_since,
        suspended,
        ..
    } = &mut d.account.resources[i].detail
    else {
        return EventOutcome::Applied;
    };
    let consent = e.consent();
    if failed {
        *past_due_since = Some(e.created);
        d.record(
            AuditAction::PlanPastDue,
            consent,
            before,
            json!({"subscription_id": sub, "since": e.created}),
        );
    } else {
        let was_suspended = *suspended;
        *past_due_since = None;
        *suspended = false;
        let action = if was_suspended {
            AuditAction::PlanResumed
        } else {
            AuditAction::PlanPaid
        };
        d.record(action, consent, before, json!({"subscription_id": sub}));
    }
    EventOutcome::Applied
}

/// Suspends plans, and holds operator resources stopped, whose invoice stayed unpaid past the
/// grace period. Returns how many.
pub fn enforce_grace(d: &mut Draft, grace: i64) -> usize {
    let now = d.now();
    let currency = d.account.ledger.currency.clone();
    let held: Vec<usize> = (0..d.account.resources.len())
        .filter(|&i| {
            d.account.resources[i]
                .hold
                .as_ref()
                .is_some_and(|h| !h.unpaid && h.past_due_since.is_some_and(|t| t + grace <= now))
        })
        .collect();
    for &i in &held {
        let before = summary(&d.account.resources[i]);
        let r = &mut d.account.resources[i];
        if let Some(h) = r.hold.as_mut() {
            h.unpaid = true;
        }
        r.message = r.hold.as_ref().and_then(|h| h.message(&currency));
        let id = r.id.clone();
        d.record(
            AuditAction::ResourcePaused,
            None,
            before,
            json!({"resource_id": id, "reason": "invoice unpaid after the grace period"}),
        );
    }
    let due: Vec<usize> = (0..d.account.resources.len())
        .filter(|&i| {
            matches!(d.account.resources[i].detail, Detail::Plan { past_due_since: Some(since), suspended: false, .. } if since + grace <= now)
        })
        .collect();
    for &i in &due {
        let before = summary(&d.account.resources[i]);
        if let Detail::Plan { suspended, .. } = &mut d.account.resources[i].detail {
            *suspended = true;
        }
        let id = d.account.resources[i].id.clone();
        d.record(
            AuditAction::PlanSuspended,
            None,
            before,
            json!({"resource_id": id, "reason": "invoice unpaid after the grace period"}),
        );
    }
    due.len() + held.len()
}

/// When the next grace period ends.
pub fn next_grace_deadline(a: &crate::account::Account, grace: i64) -> Option<i64> {
    a.resources
        .iter()
        .filter_map(|r| match r.detail {
            Detail::Plan {
                past_due_since: Some(since),
                suspended: false,
                ..
            } => Some(since + grace),
            _ => r
                .hold
                .as_ref()
                .filter(|h| !h.unpaid)
                .and_then(|h| h.past_due_since)
                .map(|since| since + grace),
        })
        .min()
}

/// A one-time purchase whose charge Stripe confirms (or declines) while our own call's answer
/// was lost: the waiting job takes the webhook's answer.
fn payment_intent(
    d: &mut Draft,
    e: &StripeEvent,
    settings: &Settings,
    in_flight: &[String],
) -> EventOutcome {
    let Some(resource_id) = e
        .object
        .pointer("/metadata/resource_id")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return EventOutcome::Ignored;
    };
    if in_flight.contains(&resource_id) {
        return EventOutcome::Ignored;
    }
    let Ok(r) = find(&d.account, &resource_id) else {
        return EventOutcome::Ignored;
    };
    let waiting_for_charge = matches!(
        next_action(&d.account, &resource_id, i64::MAX),
        Some(Action::CreatePaymentIntent { .. })
    );
    let amount_matches = match r.job.as_ref().map(|j| &j.job) {
        Some(Job::Subscribe { amount, .. } | Job::BuyDomain { amount, .. }) => {
            e.object["amount"].as_u64() == Some(*amount)
        }
        _ => false,
    };
    if !waiting_for_charge || !amount_matches {
        return EventOutcome::Ignored;
    }
    let outcome = if e.kind == "payment_intent.succeeded" {
        ActionResult::PaymentIntent {
            id: e.object["id"].as_str().unwrap_or_default().to_string(),
            payment_method: e.object["payment_method"].as_str().map(str::to_string),
        }
    } else {
        let err = &e.object["last_payment_error"];
        ActionResult::Refused {
            error: ResourceError::Payment {
                error: PaymentError::Declined {
                    code: err["code"].as_str().unwrap_or("card_declined").to_string(),
                    decline_code: err["decline_code"].as_str().map(str::to_string),
                    message: err["message"]
                        .as_str()
                        .unwrap_or("the payment was declined")
                        .to_string(),
                },
            },
        }
    };
    let _ = apply_outcome(d, &resource_id, outcome, settings);
    EventOutcome::Applied
}

fn token_deactivated(
    d: &mut Draft,
    e: &StripeEvent,
    settings: &Settings,
    in_flight: &[String],
) -> EventOutcome {
    let Some(token) = e.object["id"].as_str() else {
        return EventOutcome::Ignored;
    };
    let waiting: Vec<String> = d
        .account
        .resources
        .iter()
        .filter(|r| !in_flight.contains(&r.id))
        .filter(|r| match r.job.as_ref().map(|j| &j.job) {
            Some(
                Job::Subscribe {
                    token: t,
                    payment_intent: None,
                    ..
                }
                | Job::BuyDomain {
                    token: t,
                    payment_intent: None,
                    ..
                },
            ) => t == token,
            _ => false,
        })
        .map(|r| r.id.clone())
        .collect();
    for id in &waiting {
        let error = ResourceError::Payment {
            error: PaymentError::TokenInvalid {
                message: "the payment token was deactivated".into(),
            },
        };
        let _ = apply_outcome(d, id, ActionResult::Refused { error }, settings);
    }
    EventOutcome::Applied
}

fn correct(d: &mut Draft, e: &StripeEvent, amount: u64, action: AuditAction) -> EventOutcome {
    let Some(pi) = e.object["payment_intent"].as_str() else {
        return EventOutcome::Ignored;
    };
    let charge = d
        .account
        .ledger
        .charges
        .iter_mut()
        .find(|c| c.payment_intent.as_deref() == Some(pi));
    let Some(c) = charge else {
        return EventOutcome::Ignored;
    };
    let cid = c.id.clone();
    if amount <= c.refunded {
        return EventOutcome::Stale;
    }
    let before = c.refunded;
    c.refunded = amount.min(c.amount);
    c.status = ChargeStatus::Refunded;
    let after = c.refunded;
    d.record(
        action,
        e.consent(),
        json!({"charge_id": cid, "refunded": before}),
        json!({"charge_id": cid, "refunded": after}),
    );
    EventOutcome::Applied
}

fn refunded(d: &mut Draft, e: &StripeEvent) -> EventOutcome {
    let amount = e.object["amount_refunded"].as_u64().unwrap_or(0);
    correct(d, e, amount, AuditAction::ChargeRefunded)
}

fn disputed(d: &mut Draft, e: &StripeEvent) -> EventOutcome {
    // A disputed amount is held back from us: it no longer counts as spent.
    let amount = e.object["amount"].as_u64().unwrap_or(0);
    correct(d, e, amount, AuditAction::ChargeDisputed)
}

#[cfg(test)]
mod tests;
