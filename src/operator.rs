//! The operator API (our extension): cross-account views from D1, per-account state from the
//! account object, the audit trail and its verification, and suspend, resume and close.
//!
//! Invariants: every call needs `Authorization: Bearer <OPERATOR_SECRET>` (constant-time
//! compare) and is recorded in D1 `operator_events` before it is served (if that write fails,
//! the call fails); changes to an account are also audit records of that account with actor
//! `operator`.

use domain::account::AccountError;
use domain::audit::{Actor, ActorKind, AuditRecord};
use domain::errors::{ApiError, Failure};
use domain::form::Form;
use domain::routes::Route;
use serde_json::{json, Value};
use worker::wasm_bindgen::JsValue;
use worker::{Env, Headers, Response};

use crate::http::{self, Incoming, Problem};
use crate::rpc::account::{
    self, AccountCall, AccountOp, Close, FlushAudit, GrantCredits, OperatorView, ReportUsage,
    Resume, Suspend,
};
use crate::rpc::op::{CallError, Op};
use crate::{audit_db, config, faults_do};

fn plain(status: u16, code: &'static str, message: impl Into<String>) -> Problem {
    Problem {
        failure: Failure::new(status, code, message),
        envelope: domain::errors::Envelope::Plain,
    }
}

fn unavailable(request_id: &str, what: &str, e: impl std::fmt::Display) -> Problem {
    http::log_internal(request_id, what, &e.to_string());
    Problem::plain(ApiError::Unavailable("the audit database".into()))
}

fn internal(e: worker::Error) -> Problem {
    worker::console_error!("operator response: {e}");
    Problem::plain(ApiError::Internal)
}

/// A shard of the audit trail, or `internal` (a binding `AUDIT_SHARDS` names is missing).
fn bound<T>(found: Result<T, String>) -> Result<T, Problem> {
    found.map_err(|e| {
        worker::console_error!("audit database: {e}");
        Problem::plain(ApiError::Internal)
    })
}

/// The database of `account`'s rows.
fn db(env: &Env, account: &str) -> Result<worker::D1Database, Problem> {
    bound(audit_db::of_account(env, account))
}

async fn record_call(
    env: &Env,
    request_id: &str,
    action: &str,
    target: Option<&str>,
    detail: &Value,
    now: i64,
) -> Result<(), Problem> {
    // With the account's rows when the call names one, else in the home shard.
    let db = bound(match target {
        Some(account) => audit_db::of_account(env, account),
        None => audit_db::home(env),
    })?;
    db.prepare("INSERT INTO operator_events (at, request_id, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)")
        .bind(&[
            JsValue::from_f64(now as f64),
            JsValue::from_str(request_id),
            JsValue::from_str(action),
            target.map(JsValue::from_str).unwrap_or(JsValue::NULL),
            JsValue::from_str(&detail.to_string()),
        ])
        .map_err(|e| unavailable(request_id, "operator event", e))?
        .run()
        .await
        .map_err(|e| unavailable(request_id, "operator event", e))?;
    Ok(())
}

fn limit(q: &Form, default: u32, max: u32) -> Result<u32, Problem> {
    match q.get("limit") {
        None => Ok(default),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| plain(400, "invalid_request", format!("limit must be 1-{max}"))),
    }
}

/// D1 rows back into audit records (JSON columns parsed).
fn records(rows: &[Value]) -> Vec<AuditRecord> {
    rows.iter()
        .filter_map(|r| {
            let mut r = r.clone();
            for k in ["before", "after"] {
                r[k] = serde_json::from_str(r[k].as_str().unwrap_or("null")).unwrap_or(Value::Null);
            }
            serde_json::from_value(r).ok()
        })
        .collect()
}

async fn audit_page(
    env: &Env,
    account: &str,
    after: i64,
    limit: u32,
) -> Result<Vec<Value>, worker::Error> {
    db(env, account)
        .map_err(|_| worker::Error::RustError("the account's audit database".into()))?
        .prepare(
            "SELECT * FROM audit_events WHERE account_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )
        .bind(&[
            JsValue::from_str(account),
            JsValue::from_f64(after as f64),
            JsValue::from_f64(limit as f64),
        ])?
        .all()
        .await?
        .results::<Value>()
}

async fn all_records(env: &Env, account: &str) -> Result<Vec<Value>, worker::Error> {
    let mut out = Vec::new();
    let mut after = 0i64;
    loop {
        let page = audit_page(env, account, after, 1000).await?;
        let n = page.len();
        after = page.last().and_then(|r| r["seq"].as_i64()).unwrap_or(after);
        out.extend(page);
        if n < 1000 {
            return Ok(out);
        }
    }
}

fn operator_call<O>(request_id: &str, op: O) -> AccountCall<O> {
    AccountCall {
        actor: Actor::new(ActorKind::Operator, Some("operator_api")),
        request_id: Some(request_id.to_string()),
        op,
    }
}

fn account_not_found() -> Problem {
    plain(404, "account_not_found", "no such account")
}

/// Runs `op` on an account's object as the operator; an unknown account is `account_not_found`.
async fn account_op<O>(
    env: &Env,
    request_id: &str,
    account_id: &str,
    op: O,
) -> Result<O::Answer, Problem>
where
    O: Op<Error = AccountError> + Into<AccountOp>,
{
    match account::call(env, account_id, operator_call(request_id, op)).await {
        Ok(answer) => Ok(answer),
        Err(CallError::Refused(AccountError::NotFound)) => Err(account_not_found()),
        Err(CallError::Refused(e)) => Err(Problem {
            failure: e.bearer_failure(),
            envelope: domain::errors::Envelope::Plain,
        }),
        Err(CallError::Transport(e)) => Err(Problem::plain(e)),
    }
}

async fn account_view(env: &Env, request_id: &str, account_id: &str) -> Result<Value, Problem> {
    Ok(account_op(env, request_id, account_id, OperatorView)
        .await?
        .0)
}

/// Asks the account's object to send its outbox to D1 first, so the operator reads every
/// record made so far (records may wait up to `AUDIT_BATCH_MS` otherwise). An unknown account
/// is `account_not_found`; any other trouble leaves D1 as it is, which is still an answer.
async fn send_audit(env: &Env, request_id: &str, account_id: &str) -> Result<(), Problem> {
    let call = operator_call(request_id, FlushAudit);
    match account::call(env, account_id, call).await {
        Err(CallError::Refused(AccountError::NotFound)) => Err(account_not_found()),
        _ => Ok(()),
    }
}

/// Accounts in id order after `after`, at most `limit`, from every shard: each shard's first
/// `limit` merged, since the first `limit` overall are among them.
async fn list_accounts(
    env: &Env,
    status: Option<&str>,
    email: Option<&str>,
    after: &str,
    limit: u32,
) -> Result<Vec<Value>, String> {
    let query = "SELECT account_id AS id, email, status, created_at, updated_at FROM accounts \
                 WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR email = ?2) AND account_id > ?3 \
                 ORDER BY account_id LIMIT ?4";
    let bindings = [
        status.map(JsValue::from_str).unwrap_or(JsValue::NULL),
        email.map(JsValue::from_str).unwrap_or(JsValue::NULL),
        JsValue::from_str(after),
        JsValue::from_f64(limit as f64),
    ];
    let mut rows = audit_db::rows_everywhere(env, query, &bindings).await?;
    rows.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    rows.truncate(limit as usize);
    Ok(rows)
}

pub async fn handle(
    route: &Route,
    inc: &Incoming,
    env: &Env,
    request_id: &str,
) -> Result<Response, Problem> {
    if !http::bearer_matches(inc, config::string(env, "OPERATOR_SECRET")) {
        return Err(plain(
            401,
            "unauthorized",
            "send Authorization: Bearer <OPERATOR_SECRET>",
        ));
    }
    if *route == Route::DevFaults && !faults_do::enabled(env) {
        return Err(Problem::plain(ApiError::NotFound));
    }
    let q = Form::parse(inc.query.as_bytes()).map_err(|m| plain(400, "invalid_request", m))?;
    let body: Value = if inc.body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&inc.body)
            .map_err(|e| plain(400, "invalid_request", format!("the body is not JSON: {e}")))?
    };
    if let Some(message) = domain::schema::inexact_integer(&body) {
        return Err(plain(400, "invalid_request", message));
    }
    let target = match route {
        Route::OperatorAccount(id)
        | Route::OperatorAudit(id)
        | Route::OperatorAuditExport(id)
        | Route::OperatorAuditVerify(id)
        | Route::OperatorAction(id, _)
        | Route::OperatorCredits(id) => Some(id.as_str()),
        _ => None,
    };
    let detail = json!({"query": inc.query, "body": body});
    record_call(env, request_id, route.name(), target, &detail, inc.now).await?;
    let reply = match route {
        Route::OperatorAccounts => {
            let status = q.get("status");
            if status.is_some_and(|s| !["active", "suspended", "closing", "closed"].contains(&s)) {
                return Err(plain(
                    400,
                    "invalid_request",
                    "status must be active, suspended, closing or closed",
                ));
            }
            let email = match q.get("email") {
                Some(e) => Some(
                    domain::email::normalize(e).map_err(|m| plain(400, "invalid_request", m))?,
                ),
                None => None,
            };
            let n = limit(&q, 20, 100)?;
            let after = q.get("starting_after").unwrap_or("");
            let rows = list_accounts(env, status, email.as_deref(), after, n + 1)
                .await
                .map_err(|e| unavailable(request_id, "accounts", e))?;
            let has_more = rows.len() > n as usize;
            let data: Vec<Value> = rows.into_iter().take(n as usize).collect();
            let next = if has_more {
                data.last()
                    .and_then(|r| r["id"].as_str())
                    .map(str::to_string)
            } else {
                None
            };
            json!({"object": "list", "data": data, "has_more": has_more, "next_cursor": next})
        }
        Route::OperatorAccount(id) => account_view(env, request_id, id).await?,
        Route::OperatorAudit(id) => {
            let n = limit(&q, 100, 500)?;
            let after = match q.get("starting_after") {
                Some(v) => v.parse::<i64>().map_err(|_| {
                    plain(
                        400,
                        "invalid_request",
                        "starting_after must be a sequence number",
                    )
                })?,
                None => 0,
            };
            send_audit(env, request_id, id).await?;
            let rows = audit_page(env, id, after, n + 1)
                .await
                .map_err(|e| unavailable(request_id, "audit", e))?;
            let has_more = rows.len() > n as usize;
            let data: Vec<AuditRecord> = records(&rows).into_iter().take(n as usize).collect();
            let next = if has_more {
                data.last().map(|r| r.seq)
            } else {
                None
            };
            json!({"object": "list", "data": data, "has_more": has_more, "next_cursor": next})
        }
        Route::OperatorAuditExport(id) => {
            send_audit(env, request_id, id).await?;
            let rows = all_records(env, id)
                .await
                .map_err(|e| unavailable(request_id, "audit", e))?;
            let mut text = String::new();
            for r in records(&rows) {
                text.push_str(&serde_json::to_string(&r).unwrap_or_default());
                text.push('\n');
            }
            let headers = Headers::new();
            headers
                .set("content-type", "application/x-ndjson")
                .map_err(internal)?;
            return Ok(Response::ok(text).map_err(internal)?.with_headers(headers));
        }
        Route::OperatorAuditVerify(id) => {
            send_audit(env, request_id, id).await?;
            let rows = all_records(env, id)
                .await
                .map_err(|e| unavailable(request_id, "audit", e))?;
            let recs = records(&rows);
            let view = account_view(env, request_id, id).await.ok();
            let next_seq = view.as_ref().and_then(|v| v["audit"]["next_seq"].as_u64());
            let result = domain::audit::verify_chain(&recs);
            json!({
                "ok": result.is_ok(),
                "records": recs.len(),
                "last_hash": recs.last().map(|r| r.hash.clone()),
                "first_break": result.err(),
                // Records the account object made that D1 does not have yet (still in its outbox).
                "pending": next_seq.map(|n| (n as i64 - 1 - recs.len() as i64).max(0)),
            })
        }
        Route::OperatorAction(id, action) => {
            let reason = body["reason"]
                .as_str()
                .filter(|r| !r.trim().is_empty() && r.chars().count() <= 500)
                .ok_or_else(|| {
                    plain(
                        400,
                        "invalid_request",
                        "reason is required: a short text (1-500 characters) saying why",
                    )
                })?
                .to_string();
            match *action {
                "suspend" => account_op(env, request_id, id, Suspend { reason }).await?,
                "resume" => account_op(env, request_id, id, Resume { reason }).await?,
                _ => account_op(env, request_id, id, Close { reason }).await?,
            }
            account_view(env, request_id, id).await?
        }
        Route::OperatorUsage => {
            let report =
                domain::usage::UsageReport::parse(&body, inc.now).map_err(|e| Problem {
                    failure: e.failure(),
                    envelope: domain::errors::Envelope::Plain,
                })?;
            let account_id = report.account_id.clone();
            if !domain::tokens::valid_account_id(&account_id) {
                return Err(account_not_found());
            }
            let answer = account_op(env, request_id, &account_id, ReportUsage { report }).await?;
            return http::json(answer.status, &answer.body).map_err(internal);
        }
        Route::OperatorCredits(id) => {
            let grant =
                domain::usage::credits::CreditGrant::parse(&body, inc.now).map_err(|e| {
                    Problem {
                        failure: e.failure(),
                        envelope: domain::errors::Envelope::Plain,
                    }
                })?;
            let answer = account_op(env, request_id, id, GrantCredits { grant }).await?;
            return http::json(answer.status, &answer.body).map_err(internal);
        }
        Route::DevFaults => {
            let n = body["d1_write_failures"]
                .as_u64()
                .filter(|n| *n <= 1000)
                .ok_or_else(|| plain(400, "invalid_request", "d1_write_failures must be 0-1000"))?;
            let account = match body.get("account_id") {
                None | Some(Value::Null) => "*".to_string(),
                Some(Value::String(a)) if domain::tokens::valid_account_id(a) => a.clone(),
                Some(_) => {
                    return Err(plain(
                        400,
                        "invalid_request",
                        "account_id must be an account id",
                    ))
                }
            };
            let state = faults_do::set(env, n as u32, &account)
                .await
                .ok_or_else(|| Problem::plain(ApiError::Internal))?;
            json!({"d1_write_failures": state.d1_write_failures, "account_id": account})
        }
        _ => return Err(Problem::plain(ApiError::NotFound)),
    };
    http::json(200, &reply).map_err(internal)
}
