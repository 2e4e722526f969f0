//! Writes audit records from an account's outbox to D1 (`audit_events`).
//!
//! Idempotent by construction: rows are keyed by (account_id, seq) and inserted with
//! `INSERT OR IGNORE`, so a batch retried after an ambiguous failure never duplicates a row.

use domain::audit::AuditRecord;
use worker::wasm_bindgen::JsValue;
use worker::Env;

const INSERT: &str = "INSERT OR IGNORE INTO audit_events \
(account_id, seq, at, actor, actor_id, on_behalf_of, action, request_id, consent, before, after, prev_hash, hash) \
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

fn text(s: &Option<String>) -> JsValue {
    s.as_deref().map(JsValue::from_str).unwrap_or(JsValue::NULL)
}

/// Writes `records` in one D1 batch. `Err` carries the reason, for the log.
pub async fn write(env: &Env, records: &[AuditRecord]) -> Result<(), String> {
    if records.is_empty() {
        return Ok(());
    }
    let db = env
        .d1("AUDIT_DB")
        .map_err(|e| format!("AUDIT_DB binding: {e}"))?;
    let mut statements = Vec::with_capacity(records.len());
    for r in records {
        let values = [
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
        ];
        statements.push(
            db.prepare(INSERT)
                .bind(&values)
                .map_err(|e| e.to_string())?,
        );
    }
    let results = db.batch(statements).await.map_err(|e| e.to_string())?;
    match results.iter().find(|r| !r.success()) {
        Some(failed) => Err(failed.error().unwrap_or_else(|| "D1 batch failed".into())),
        None => Ok(()),
    }
}
