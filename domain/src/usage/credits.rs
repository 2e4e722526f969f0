//! Credits (our extension; docs/PROTOCOL.md §6.5): the operator grants an account credits
//! (`POST /v1/accounts/{id}/credits`, a startup program), which usage draws on before anything
//! reaches the payment method.
//!
//! Invariants:
//! - A grant is recorded once per (account, `idempotency_key`); the same key with another body
//!   is `idempotency_conflict` and changes nothing.
//! - Usage draws credits first, those expiring first first (`Ledger::draw_credits`); what
//!   credits pay is not the owner's money, so it does not count against the cap.
//! - Stripe applies the same credits to the usage invoice: each grant becomes a Billing credit
//!   grant on the customer, for metered prices (Stripe's mechanism for usage), sent by the
//!   alarm once the account is a Stripe customer and retried through outages. Meter events
//!   keep carrying the whole usage; Stripe takes the credited part from the grant.

use serde_json::{json, Value};

use crate::account::{Account, Draft};
use crate::audit_action::AuditAction;
use crate::ledger::Credit;
use crate::resources::{Action, ActionResult, ResourceError};
use crate::time::{format_rfc3339, parse_rfc3339};
use crate::usage::error::{UsageError, MAX_KEY_LEN};

/// Largest grant: $100,000 in cents (a startup program's credit).
pub const MAX_CREDIT: u64 = 10_000_000;
/// Latest expiry: three years from the grant.
pub const MAX_TERM_SECONDS: i64 = 3 * 366 * 86_400;
/// Most grants one account holds (expired ones are dropped after 13 months).
pub const MAX_GRANTS: usize = 50;

fn invalid(field: &str, message: impl Into<String>) -> UsageError {
    UsageError::InvalidCredit {
        field: field.into(),
        message: message.into(),
    }
}

/// A credit grant, as `POST /v1/accounts/{id}/credits` carries it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CreditGrant {
    pub amount: u64,
    pub currency: String,
    pub expires_at: i64,
    pub reason: String,
    pub idempotency_key: String,
}

impl CreditGrant {
    /// Reads and checks a grant body: every field present, of its type and in range.
    pub fn parse(body: &Value, now: i64) -> Result<CreditGrant, UsageError> {
        let Some(fields) = body.as_object() else {
            return Err(invalid("body", "must be a JSON object"));
        };
        const KNOWN: [&str; 5] = [
            "amount",
            "currency",
            "expires_at",
            "reason",
            "idempotency_key",
        ];
        if let Some(unknown) = fields.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(invalid(unknown, "is not a field of a credit grant"));
        }
        let text = |field: &str| match body.get(field) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.as_str()),
            None | Some(Value::Null) => Err(invalid(field, "is required")),
            Some(_) => Err(invalid(field, "must be a non-empty string")),
        };
        let amount = match body.get("amount").and_then(Value::as_u64) {
            Some(a) if (1..=MAX_CREDIT).contains(&a) => a,
            Some(_) => {
                return Err(invalid(
                    "amount",
                    format!("must be 1 to {MAX_CREDIT} (minor units)"),
                ))
            }
            None => return Err(invalid("amount", "must be a whole number of minor units")),
        };
        let currency = text("currency")?;
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(invalid("currency", "must be a lowercase ISO 4217 code"));
        }
        let expires_at = parse_rfc3339(text("expires_at")?)
            .ok_or_else(|| invalid("expires_at", "must be an RFC 3339 time"))?;
        if expires_at <= now {
            return Err(invalid("expires_at", "is in the past"));
        }
        if expires_at > now + MAX_TERM_SECONDS {
            return Err(invalid("expires_at", "is more than three years away"));
        }
        let reason = text("reason")?;
        if reason.chars().count() > 500 {
            return Err(invalid("reason", "must be at most 500 characters"));
        }
        let key = text("idempotency_key")?;
        if key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "idempotency_key",
                format!("must be 1-{MAX_KEY_LEN} printable ASCII characters"),
            ));
        }
        Ok(CreditGrant {
            amount,
            currency: currency.to_string(),
            expires_at,
            reason: reason.to_string(),
            idempotency_key: key.to_string(),
        })
    }

    fn fingerprint(&self) -> String {
        let identity = json!({"amount": self.amount, "currency": self.currency,
                              "expires_at": self.expires_at, "reason": self.reason});
        crate::crypto::sha256_hex(identity.to_string().as_bytes())
    }
}

/// A grant as the operator API shows it.
pub fn render(c: &Credit, replayed: bool, now: i64) -> Value {
    json!({
        "object": "credit",
        "id": c.id,
        "amount": c.amount,
        "currency": c.currency,
        "used": c.used,
        "left": c.left(now),
        "reason": c.reason,
        "granted_at": format_rfc3339(c.granted_at),
        "expires_at": format_rfc3339(c.expires_at),
        "stripe_credit_grant": c.stripe_grant,
        "stripe_error": c.error,
        "replayed": replayed,
    })
}

/// Records the grant once; answers it and whether it was already there.
pub fn grant(d: &mut Draft, g: &CreditGrant) -> Result<(Credit, bool), UsageError> {
    let now = d.now();
    let fingerprint = g.fingerprint();
    if let Some(c) = d
        .account
        .ledger
        .credits
        .iter()
        .find(|c| c.key == g.idempotency_key)
    {
        return if c.fingerprint == fingerprint {
            Ok((c.clone(), true))
        } else {
            Err(UsageError::IdempotencyConflict)
        };
    }
    if !d.account.is_open() {
        return Err(UsageError::AccountClosed);
    }
    if g.currency != d.account.ledger.currency {
        return Err(invalid(
            "currency",
            format!(
                "must be {} (the account's spending currency)",
                d.account.ledger.currency
            ),
        ));
    }
    if d.account.ledger.credits.len() >= MAX_GRANTS {
        return Err(invalid(
            "idempotency_key",
            format!("the account already holds {MAX_GRANTS} grants"),
        ));
    }
    let digest =
        crate::crypto::sha256_hex(format!("{}\u{0}{}", d.account.id, g.idempotency_key).as_bytes());
    let credit = Credit {
        id: format!("credit_{}", &digest[..24]),
        key: g.idempotency_key.clone(),
        fingerprint,
        amount: g.amount,
        currency: g.currency.clone(),
        reason: g.reason.clone(),
        granted_at: now,
        expires_at: g.expires_at,
        used: 0,
        stripe_grant: None,
        attempts: 0,
        next_at: now,
        error: None,
    };
    d.account.ledger.credits.push(credit.clone());
    d.record(
        AuditAction::CreditGranted,
        None,
        Value::Null,
        json!({"credit_id": credit.id, "amount": credit.amount, "currency": credit.currency,
               "expires_at": credit.expires_at, "reason": credit.reason,
               "credit_left": d.account.ledger.credit_left(now)}),
    );
    Ok((credit, false))
}

/// Grants to create at Stripe now (the account must be a customer first).
pub fn due(a: &Account, now: i64) -> Vec<String> {
    if a.billing.customer_id.is_none() {
        return Vec::new();
    }
    a.ledger
        .credits
        .iter()
        .filter(|c| c.unsynced() && c.next_at <= now && c.expires_at > now)
        .map(|c| c.id.clone())
        .collect()
}

/// When a grant is next due at Stripe.
pub fn next_wake(a: &Account) -> Option<i64> {
    a.billing.customer_id.as_ref()?;
    a.ledger
        .credits
        .iter()
        .filter(|c| c.unsynced())
        .map(|c| c.next_at)
        .min()
}

/// The call that creates grant `id` at Stripe.
pub fn action(a: &Account, id: &str) -> Option<Action> {
    let c = a.ledger.credits.iter().find(|c| c.id == id)?;
    Some(Action::CreateCreditGrant {
        key: format!("{}:{}:grant", a.id, c.id),
        customer: a.billing.customer_id.clone()?,
        amount: c.amount,
        currency: c.currency.clone(),
        expires_at: c.expires_at,
        name: crate::text::truncate(&c.reason, 100).to_string(),
    })
}

/// Records Stripe's answer to creating grant `id`.
pub fn apply(d: &mut Draft, id: &str, outcome: ActionResult) {
    let now = d.now();
    let Some(c) = d.account.ledger.credits.iter_mut().find(|c| c.id == id) else {
        return;
    };
    let (action, detail) = match outcome {
        ActionResult::CreditGrant { id: grant } => {
            c.stripe_grant = Some(grant.clone());
            (
                AuditAction::CreditSynced,
                json!({"credit_id": c.id, "stripe_credit_grant": grant}),
            )
        }
        ActionResult::Unavailable { .. } => {
            c.attempts += 1;
            c.next_at = now + crate::time::backoff(c.attempts);
            return;
        }
        ActionResult::Refused { error } => {
            let message = match error {
                ResourceError::Payment { error } => error.describe().1,
                other => format!("{other:?}"),
            };
            let message = crate::text::truncate(&message, 300).to_string();
            c.error = Some(message.clone());
            (
                AuditAction::CreditSyncFailed,
                json!({"credit_id": c.id, "error": message}),
            )
        }
        other => {
            c.error = Some(format!("unexpected answer: {other:?}"));
            (
                AuditAction::CreditSyncFailed,
                json!({"credit_id": c.id, "error": "unexpected answer"}),
            )
        }
    };
    d.record(action, None, Value::Null, detail);
}
