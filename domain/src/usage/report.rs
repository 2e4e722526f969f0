//! Recording a usage report once (`POST /v1/usage`): parsing, idempotency, the ledger record
//! and its meter event, then the cap's pause in the same step.

use serde_json::{json, Value};

use crate::account::Draft;
use crate::audit_action::AuditAction;
use crate::ledger::{MeterDelivery, UsageRecord};
use crate::resources::{Detail, ResourceStatus};
use crate::time::{format_rfc3339, month_bounds, parse_rfc3339};
use crate::usage::cap::reconcile;
use crate::usage::error::{
    invalid, UsageError, MAX_AGE_SECONDS, MAX_AHEAD_SECONDS, MAX_AMOUNT, MAX_KEY_LEN, MAX_QUANTITY,
};
use crate::usage::meter;

/// A usage report, as `POST /v1/usage` carries it (see docs/openapi.json, `UsageReport`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UsageReport {
    pub account_id: String,
    pub resource_id: String,
    pub quantity: u64,
    pub amount: u64,
    pub currency: String,
    pub occurred_at: i64,
    pub idempotency_key: String,
}

fn text<'a>(body: &'a Value, field: &str) -> Result<&'a str, UsageError> {
    match body.get(field) {
        None | Some(Value::Null) => Err(invalid(field, "is required")),
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(invalid(field, "must be a non-empty string")),
    }
}

fn whole(body: &Value, field: &str, max: u64) -> Result<u64, UsageError> {
    match body.get(field) {
        None | Some(Value::Null) => Err(invalid(field, "is required")),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) if v <= max => Ok(v),
            Some(_) => Err(invalid(field, format!("must be at most {max}"))),
            None => Err(invalid(field, "must be a whole number, 0 or more")),
        },
        Some(_) => Err(invalid(field, "must be a whole number, 0 or more")),
    }
}

impl UsageReport {
    /// Reads and checks a report body: every field present, of its type and in range, nothing
    /// else. `occurred_at` must be within Stripe's window for meter events around `now`.
    pub fn parse(body: &Value, now: i64) -> Result<UsageReport, UsageError> {
        let Some(fields) = body.as_object() else {
            return Err(invalid("body", "must be a JSON object"));
        };
        const KNOWN: [&str; 7] = [
            "account_id",
            "resource_id",
            "quantity",
            "amount",
            "currency",
            "occurred_at",
            "idempotency_key",
        ];
        if let Some(unknown) = fields.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(invalid(unknown, "is not a field of a usage report"));
        }
        let account_id = text(body, "account_id")?.to_string();
        let resource_id = text(body, "resource_id")?.to_string();
        let quantity = whole(body, "quantity", MAX_QUANTITY)?;
        let amount = whole(body, "amount", MAX_AMOUNT)?;
        let currency = text(body, "currency")?;
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(invalid("currency", "must be a lowercase ISO 4217 code"));
        }
        let occurred_at = parse_rfc3339(text(body, "occurred_at")?)
            .ok_or_else(|| invalid("occurred_at", "must be an RFC 3339 time"))?;
        if occurred_at > now + MAX_AHEAD_SECONDS {
            return Err(invalid("occurred_at", "is in the future"));
        }
        if occurred_at < now - MAX_AGE_SECONDS {
            return Err(invalid(
                "occurred_at",
                "is more than 35 days ago (Stripe bills no older usage)",
            ));
        }
        let key = text(body, "idempotency_key")?;
        if key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "idempotency_key",
                format!("must be 1-{MAX_KEY_LEN} printable ASCII characters"),
            ));
        }
        Ok(UsageReport {
            account_id,
            resource_id,
            quantity,
            amount,
            currency: currency.to_string(),
            occurred_at,
            idempotency_key: key.to_string(),
        })
    }

    /// What a repeated key must match.
    fn fingerprint(&self) -> String {
        let identity = json!({"resource_id": self.resource_id, "quantity": self.quantity,
            "amount": self.amount, "currency": self.currency, "occurred_at": self.occurred_at});
        crate::crypto::sha256_hex(identity.to_string().as_bytes())
    }
}

/// A recorded report, as `POST /v1/usage` answers it.
pub fn render(a: &crate::account::Account, u: &UsageRecord, replayed: bool, now: i64) -> Value {
    let billing = match (&u.meter.billed_at, &u.meter.error) {
        (Some(_), _) => "billed",
        (None, Some(_)) => "failed",
        (None, None) => "pending",
    };
    let paused = a
        .resources
        .iter()
        .any(|r| r.id == u.resource_id && r.hold.as_ref().is_some_and(|h| h.wanted()));
    json!({
        "object": "usage_record",
        "id": u.key,
        "resource_id": u.resource_id,
        "quantity": u.quantity,
        "amount": u.amount,
        "currency": u.currency,
        "occurred_at": format_rfc3339(u.occurred_at),
        "recorded_at": format_rfc3339(u.received_at),
        "over_cap": u.over_cap,
        "credited": u.credited,
        "billing": billing,
        "billing_error": u.meter.error,
        "replayed": replayed,
        "paused": paused,
        "spent_this_month": a.ledger.spent(now),
        "cap": a.ledger.cap,
    })
}

/// Records `report` once; answers the record and whether it was already there. The cap's
/// pause is applied in the same step (`cap::reconcile`), with `catalog` naming the backends.
pub fn report(
    d: &mut Draft,
    report: &UsageReport,
    catalog: &crate::catalog::Catalog,
) -> Result<(UsageRecord, bool), UsageError> {
    let now = d.now();
    let fingerprint = report.fingerprint();
    if let Some(u) = d
        .account
        .ledger
        .usage
        .iter()
        .find(|u| u.key == report.idempotency_key)
    {
        return if u.fingerprint == fingerprint {
            Ok((u.clone(), true))
        } else {
            Err(UsageError::IdempotencyConflict)
        };
    }
    if d.account.closing.is_some() || d.account.status == crate::account::AccountStatus::Closed {
        return Err(UsageError::AccountClosed);
    }
    let r = d
        .account
        .resources
        .iter()
        .find(|r| r.id == report.resource_id && r.status != ResourceStatus::Removed)
        .ok_or(UsageError::ResourceNotFound)?;
    let Detail::Operator {
        usage: Some(billing),
        ..
    } = &r.detail
    else {
        return Err(UsageError::NotUsageBased {
            service_id: r.service_id.clone(),
        });
    };
    if report.currency != d.account.ledger.currency {
        return Err(invalid(
            "currency",
            format!(
                "must be {} (the account's spending currency)",
                d.account.ledger.currency
            ),
        ));
    }
    let month = month_bounds(report.occurred_at).0;
    let event_name = billing.event_name.clone();
    let resource_id = r.id.clone();
    let spent_before = d.account.ledger.spent(report.occurred_at);
    // Credits pay first: what they cover is not the owner's money, so not against the cap.
    let credited = d.account.ledger.draw_credits(report.amount, now);
    let ledger = &d.account.ledger;
    let record = UsageRecord {
        key: report.idempotency_key.clone(),
        fingerprint,
        resource_id,
        quantity: report.quantity,
        amount: report.amount,
        currency: report.currency.clone(),
        occurred_at: report.occurred_at,
        month,
        received_at: now,
        over_cap: spent_before >= ledger.cap && credited < report.amount,
        credited,
        meter: MeterDelivery {
            identifier: meter::identifier(&d.account.id, &report.idempotency_key),
            event_name,
            billed_at: None,
            attempts: 0,
            next_at: now,
            error: None,
        },
    };
    d.account.ledger.usage.push(record.clone());
    let spent = d.account.ledger.spent(now);
    let cap = d.account.ledger.cap;
    d.record(
        AuditAction::UsageRecorded,
        None,
        Value::Null,
        json!({"resource_id": record.resource_id, "key": record.key, "quantity": record.quantity,
               "amount": record.amount, "currency": record.currency,
               "occurred_at": record.occurred_at, "over_cap": record.over_cap,
               "credited": record.credited, "credit_left": d.account.ledger.credit_left(now),
               "spent_this_month": spent, "cap": cap}),
    );
    for threshold in d.account.ledger.new_alerts(now) {
        d.record(
            AuditAction::SpendAlert,
            None,
            Value::Null,
            json!({"threshold_percent": threshold, "spent_this_month": spent, "cap": cap}),
        );
    }
    reconcile(d, catalog);
    Ok((record, false))
}
