//! Writes audit records from an account's outbox to D1 (`audit_events`).
//!
//! An account's records go to its shard of the trail (`audit_db`), with the rows derived from
//! them, in one batch: several records per statement (`domain::audit_sql`).
//!
//! Idempotent by construction: rows are keyed by (account_id, seq) and inserted with
//! `INSERT OR IGNORE`, so a batch retried after an ambiguous failure never duplicates a row.

use domain::audit::{AuditAction, AuditRecord};
use domain::audit_sql;
use worker::wasm_bindgen::JsValue;
use worker::Env;

use crate::audit_db;

/// A record's values, in [`audit_sql::COLUMNS`] order.
fn row_values(r: &AuditRecord) -> [JsValue; audit_sql::COLUMNS.len()] {
    [
        JsValue::from_str(&r.account_id),
        JsValue::from_f64(r.seq as f64),
        JsValue::from_f64(r.at as f64),
        JsValue::from_str(r.actor.as_str()),
        text(&r.actor_id),
        text(&r.on_behalf_of),
        JsValue::from_str(&r.action),
        text(&r.request_id),
        text(&r.consent),
        JsValue::from_str(&r.before.to_string()),
        JsValue::from_str(&r.after.to_string()),
        JsValue::from_str(&r.prev_hash),
        JsValue::from_str(&r.hash),
        text(&r.authentication),
    ]
}

fn text(s: &Option<String>) -> JsValue {
    s.as_deref().map(JsValue::from_str).unwrap_or(JsValue::NULL)
}

const WEBHOOK: &str =
    "INSERT OR IGNORE INTO webhook_events (id, type, created, account_id, outcome, received_at) \
VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
const STRIPE_OBJECT: &str =
    "INSERT OR IGNORE INTO stripe_objects (stripe_id, account_id) VALUES (?1, ?2)";

const ACCOUNT_CREATED: &str =
    "INSERT OR IGNORE INTO accounts (account_id, email, status, created_at, updated_at) \
VALUES (?1, ?2, 'active', ?3, ?3)";
const ACCOUNT_STATUS: &str =
    "UPDATE accounts SET status = ?1, updated_at = ?2 WHERE account_id = ?3";

/// Rows that derive from an audit record besides its own: the webhook event it records, and
/// the Stripe objects it created (for routing events that lack our metadata).
fn derived(
    db: &worker::D1Database,
    r: &AuditRecord,
) -> Result<Vec<worker::D1PreparedStatement>, String> {
    let mut out = Vec::new();
    if r.action == AuditAction::StripeEvent.as_str() {
        let a = &r.after;
        out.push(
            db.prepare(WEBHOOK)
                .bind(&[
                    JsValue::from_str(a["event_id"].as_str().unwrap_or_default()),
                    JsValue::from_str(a["type"].as_str().unwrap_or_default()),
                    JsValue::from_f64(a["created"].as_i64().unwrap_or(0) as f64),
                    JsValue::from_str(&r.account_id),
                    JsValue::from_str(a["outcome"].as_str().unwrap_or_default()),
                    JsValue::from_f64(r.at as f64),
                ])
                .map_err(|e| e.to_string())?,
        );
    }
    let status = domain::audit::account_status_after(&r.action);
    if r.action == AuditAction::AccountCreated.as_str() {
        out.push(
            db.prepare(ACCOUNT_CREATED)
                .bind(&[
                    JsValue::from_str(&r.account_id),
                    JsValue::from_str(r.after["email"].as_str().unwrap_or_default()),
                    JsValue::from_f64(r.at as f64),
                ])
                .map_err(|e| e.to_string())?,
        );
    }
    if let Some(status) = status {
        out.push(
            db.prepare(ACCOUNT_STATUS)
                .bind(&[
                    JsValue::from_str(status),
                    JsValue::from_f64(r.at as f64),
                    JsValue::from_str(&r.account_id),
                ])
                .map_err(|e| e.to_string())?,
        );
    }
    for key in domain::audit::STRIPE_ID_FIELDS {
        if let Some(id) = r.after.get(key).and_then(|v| v.as_str()) {
            out.push(
                db.prepare(STRIPE_OBJECT)
                    .bind(&[JsValue::from_str(id), JsValue::from_str(&r.account_id)])
                    .map_err(|e| e.to_string())?,
            );
        }
    }
    Ok(out)
}

/// Writes `records` in one D1 batch. `Err` carries the reason, for the log.
pub async fn write(env: &Env, records: &[AuditRecord]) -> Result<(), String> {
    if records.is_empty() {
        return Ok(());
    }
    if crate::faults_do::take_d1_failure(env, &records[0].account_id).await {
        return Err("D1 write failed (injected by the development fault switch)".into());
    }
    let db = audit_db::of_account(env, &records[0].account_id)?;
    let mut statements = Vec::new();
    for rows in records.chunks(audit_sql::ROWS_PER_INSERT) {
        let values: Vec<JsValue> = rows.iter().flat_map(row_values).collect();
        statements.push(
            db.prepare(audit_sql::insert(rows.len()))
                .bind(&values)
                .map_err(|e| e.to_string())?,
        );
    }
    // The derived rows after every record's own, in the records' order (an account's status
    // update follows its creation). The batch is one transaction: all of it or none.
    for r in records {
        statements.extend(derived(&db, r)?);
    }
    audit_db::batch(&db, &statements).await
}

/// Records a webhook event that matched no account (written directly: there is no outbox).
pub async fn unknown_account_event(
    env: &Env,
    id: &str,
    kind: &str,
    created: i64,
    now: i64,
) -> Result<(), String> {
    let db = audit_db::home(env)?;
    db.prepare(WEBHOOK)
        .bind(&[
            JsValue::from_str(id),
            JsValue::from_str(kind),
            JsValue::from_f64(created as f64),
            JsValue::NULL,
            JsValue::from_str("unknown_account"),
            JsValue::from_f64(now as f64),
        ])
        .map_err(|e| e.to_string())?
        .run()
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The account a Stripe object belongs to, from `stripe_objects`: the first of `stripe_ids`
/// any shard knows. Its row is in the account's shard, which the ids do not name, so every
/// shard is asked (at once; one query each).
pub async fn account_of(env: &Env, stripe_ids: &[String]) -> Result<Option<String>, String> {
    if stripe_ids.is_empty() {
        return Ok(None);
    }
    let placeholders: Vec<String> = (1..=stripe_ids.len()).map(|i| format!("?{i}")).collect();
    let query = format!(
        "SELECT stripe_id, account_id FROM stripe_objects WHERE stripe_id IN ({})",
        placeholders.join(", ")
    );
    let ids: Vec<JsValue> = stripe_ids.iter().map(|id| JsValue::from_str(id)).collect();
    let mut found: Vec<(String, String)> = Vec::new();
    for row in audit_db::rows_everywhere(env, &query, &ids).await? {
        if let (Some(s), Some(a)) = (row["stripe_id"].as_str(), row["account_id"].as_str()) {
            found.push((s.to_string(), a.to_string()));
        }
    }
    Ok(stripe_ids
        .iter()
        .find_map(|id| found.iter().find(|(s, _)| s == id).map(|(_, a)| a.clone())))
}
