//! The D1 databases of the audit trail: `AUDIT_SHARDS` of them (1 unless configured), bound
//! as `AUDIT_DB`, `AUDIT_DB_1`, ...; an account's rows live in the one
//! `domain::audit_shards::shard_of` names. Rows of no account (webhook events that matched
//! none, operator calls that name none) go to `AUDIT_DB`, the home shard.

use domain::audit_shards;
use serde_json::Value;
use worker::js_sys::{Array, JSON};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::worker_sys::{D1Database as RawDatabase, D1Result as RawResult};
use worker::{D1Database, D1PreparedStatement, Env};

use crate::config;

/// How many databases the trail is spread over; `Err` names a setting that does not parse.
pub fn shards(env: &Env) -> Result<u32, String> {
    audit_shards::parse(config::string(env, "AUDIT_SHARDS").as_deref())
}

fn bound(env: &Env, shard: u32) -> Result<D1Database, String> {
    let name = audit_shards::binding(shard);
    env.d1(&name).map_err(|e| format!("{name} binding: {e}"))
}

/// The database of `account_id`'s rows.
pub fn of_account(env: &Env, account_id: &str) -> Result<D1Database, String> {
    bound(env, audit_shards::shard_of(account_id, shards(env)?))
}

/// The home shard (`AUDIT_DB`), for rows of no account.
pub fn home(env: &Env) -> Result<D1Database, String> {
    bound(env, 0)
}

/// Every shard, in order (reads that cannot know the account: lists, Stripe id lookups).
pub fn all(env: &Env) -> Result<Vec<D1Database>, String> {
    (0..shards(env)?).map(|s| bound(env, s)).collect()
}

/// The reason in a JavaScript error.
fn js_error(e: JsValue) -> String {
    worker::Error::from(e).to_string()
}

/// Runs `statements` on `db` as one batch (one transaction); `Err` carries the reason. Through
/// the runtime's own objects: `worker`'s batch decodes each answer's `meta` with serde, and only
/// the meter reads it.
pub async fn batch(db: &D1Database, statements: &[D1PreparedStatement]) -> Result<(), String> {
    let raw: &RawDatabase = db.as_ref().unchecked_ref();
    let list: Array = statements.iter().map(|s| s.inner()).collect();
    let answers = JsFuture::from(raw.batch(list).map_err(js_error)?)
        .await
        .map_err(js_error)?;
    let answers: Array = answers
        .dyn_into()
        .map_err(|_| "D1 answered a batch with no list".to_string())?;
    let results: Vec<RawResult> = answers.iter().map(JsCast::unchecked_into).collect();
    crate::meter::d1(&results);
    match results.iter().find(|r| !r.success().unwrap_or(false)) {
        Some(failed) => Err(failed
            .error()
            .ok()
            .flatten()
            .unwrap_or_else(|| "D1 batch failed".into())),
        None => Ok(()),
    }
}

/// The rows `sql` with `bindings` selects on every shard, shard after shard. The queries run at
/// once: each one's promise is started before any is awaited.
pub async fn rows_everywhere(
    env: &Env,
    sql: &str,
    bindings: &[JsValue],
) -> Result<Vec<Value>, String> {
    let mut started = Vec::new();
    for db in all(env)? {
        let statement = db.prepare(sql).bind(bindings).map_err(|e| e.to_string())?;
        started.push(JsFuture::from(statement.inner().all().map_err(js_error)?));
    }
    let mut rows = Vec::new();
    for answer in started {
        let answer: RawResult = answer.await.map_err(js_error)?.unchecked_into();
        crate::meter::d1(std::slice::from_ref(&answer));
        if let Some(found) = answer.results().map_err(js_error)? {
            let text = JSON::stringify(&found)
                .map_err(js_error)?
                .as_string()
                .unwrap_or_default();
            rows.extend(serde_json::from_str::<Vec<Value>>(&text).map_err(|e| e.to_string())?);
        }
    }
    Ok(rows)
}
