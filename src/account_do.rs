//! The per-account Durable Object: it owns one account's state and serialises every change.
//!
//! Storage (SQLite, see docs/STORAGE.md):
//! - `kv(key, value)`: `account` -> the account as JSON (domain `account::Account`);
//!   `flush_attempts` -> consecutive failed D1 flushes.
//! - `outbox(seq, record)`: audit records not yet confirmed by D1.
//!
//! Invariants:
//! - A change is computed by the pure domain (`domain::account::apply`) and written, new state
//!   and audit records together, in one transaction before anything is awaited; only then is
//!   the caller answered. So an acknowledged change always has its audit records.
//! - Outbox rows are deleted only after D1 confirmed them; a failed flush is retried by the
//!   alarm with exponential backoff (1 s doubling to 5 min).
//! - The in-memory copy is the stored state: only this object writes it.

use std::cell::{Cell, RefCell};

use domain::account::{self, Account as AccountState, AccountError, Applied, Ctx, NewFamily};
use domain::audit::AuditRecord;
use domain::tokens::{self, TokenKind};
use serde::Serialize;
use serde_json::{json, Value};
use worker::{
    durable_object, DurableObject, Env, Request, Response, Result, SqlStorageValue, State,
};

use crate::http::{new_id, now_ms, random};
use crate::rpc::{answer, AccountCall, AccountOp};
use crate::{audit_sink, config, storage};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, record TEXT NOT NULL)",
];
const FLUSH_BATCH: usize = 50;

#[durable_object]
pub struct Account {
    state: State,
    env: Env,
    cache: RefCell<Option<AccountState>>,
    flushing: Cell<bool>,
}

type Outcome = std::result::Result<Value, AccountError>;

fn internal(context: &str, e: impl std::fmt::Display) -> AccountError {
    worker::console_error!(
        "{}",
        json!({"level": "error", "msg": context, "detail": e.to_string()})
    );
    AccountError::Unavailable
}

impl Account {
    fn load(&self) -> Option<AccountState> {
        if let Some(a) = self.cache.borrow().as_ref() {
            return Some(a.clone());
        }
        let sql = self.state.storage().sql();
        let rows: Vec<Value> = sql
            .exec("SELECT value FROM kv WHERE key = 'account'", None)
            .and_then(|c| c.to_array())
            .unwrap_or_default();
        let text = rows.first()?.get("value")?.as_str()?.to_string();
        let account: AccountState = serde_json::from_str(&text).ok()?;
        *self.cache.borrow_mut() = Some(account.clone());
        Some(account)
    }

    /// Writes the new state and its records in one transaction, then flushes to D1.
    async fn commit<T>(&self, applied: Applied<T>) -> std::result::Result<T, AccountError> {
        if applied.changed() {
            let state_json =
                serde_json::to_string(&applied.account).map_err(|e| internal("encode state", e))?;
            let mut statements: Vec<storage::Statement> = vec![(
                "INSERT OR REPLACE INTO kv (key, value) VALUES ('account', ?)",
                vec![SqlStorageValue::from(state_json)],
            )];
            for r in &applied.records {
                let text = serde_json::to_string(r).map_err(|e| internal("encode record", e))?;
                statements.push((
                    "INSERT INTO outbox (seq, record) VALUES (?, ?)",
                    vec![
                        SqlStorageValue::from(r.seq as i64),
                        SqlStorageValue::from(text),
                    ],
                ));
            }
            storage::atomically(&self.state.storage(), statements)
                .map_err(|e| internal("write state", e))?;
            *self.cache.borrow_mut() = Some(applied.account);
            self.flush().await;
        }
        applied.result
    }

    /// Sends the outbox to D1, oldest first, deleting what D1 confirmed. On failure, arms the
    /// alarm to retry.
    async fn flush(&self) {
        if self.flushing.replace(true) {
            return; // the running flush loops until the outbox is empty
        }
        let sql = self.state.storage().sql();
        loop {
            let rows: Vec<Value> = sql
                .exec(
                    &format!("SELECT record FROM outbox ORDER BY seq LIMIT {FLUSH_BATCH}"),
                    None,
                )
                .and_then(|c| c.to_array())
                .unwrap_or_default();
            let records: Vec<AuditRecord> = rows
                .iter()
                .filter_map(|r| r.get("record")?.as_str())
                .filter_map(|t| serde_json::from_str(t).ok())
                .collect();
            let Some(last) = records.last().map(|r| r.seq) else {
                let _ = sql.exec("DELETE FROM kv WHERE key = 'flush_attempts'", None);
                break;
            };
            match audit_sink::write(&self.env, &records).await {
                Ok(()) => {
                    let _ = sql.exec(
                        "DELETE FROM outbox WHERE seq <= ?",
                        vec![SqlStorageValue::from(last as i64)],
                    );
                }
                Err(reason) => {
                    self.schedule_retry(&reason).await;
                    break;
                }
            }
        }
        self.flushing.set(false);
    }

    async fn schedule_retry(&self, reason: &str) {
        let sql = self.state.storage().sql();
        let attempts: i64 = sql
            .exec("SELECT value FROM kv WHERE key = 'flush_attempts'", None)
            .and_then(|c| c.to_array::<Value>())
            .ok()
            .and_then(|rows| rows.first()?.get("value")?.as_str()?.parse().ok())
            .unwrap_or(0);
        let _ = sql.exec(
            "INSERT OR REPLACE INTO kv (key, value) VALUES ('flush_attempts', ?)",
            vec![SqlStorageValue::from((attempts + 1).to_string())],
        );
        let delay_ms = (1000i64 << attempts.min(9)).min(300_000);
        worker::console_warn!(
            "{}",
            json!({"level": "warn", "msg": "audit flush failed; retrying", "attempt": attempts + 1,
                   "retry_in_ms": delay_ms, "detail": domain::errors::truncate(reason, 300)})
        );
        let _ = self.state.storage().set_alarm(delay_ms).await;
    }

    fn ctx(&self, call: &AccountCall) -> Ctx {
        Ctx {
            now: (now_ms() / 1000) as i64,
            actor: call.actor.clone(),
            request_id: call.request_id.clone(),
            policy: config::policy(&self.env),
        }
    }

    async fn run(&self, call: AccountCall) -> Outcome {
        let ctx = self.ctx(&call);
        let now = ctx.now;
        if let AccountOp::Create { new } = call.op {
            return match self.load() {
                // Idempotent: the same account request creating the same account again.
                Some(a)
                    if a.id == new.id && a.codes.iter().any(|c| c.request_id == new.request_id) =>
                {
                    Ok(Value::Null)
                }
                Some(_) => Err(internal(
                    "create",
                    "account object already holds another account",
                )),
                None => self
                    .commit(account::create(new, &ctx))
                    .await
                    .map(|_| Value::Null),
            };
        }
        let Some(current) = self.load() else {
            return Err(AccountError::NotFound);
        };
        let id = current.id.clone();
        match call.op {
            AccountOp::Create { .. } => Err(AccountError::NotFound),
            AccountOp::CodeStatus { code_hash } => {
                to_value(account::code_status(&current, &code_hash, now))
            }
            AccountOp::ExchangeCode {
                code_hash,
                verifier,
                signed,
            } => {
                let (access, refresh) = (
                    mint(TokenKind::Access, &id)?,
                    mint(TokenKind::Refresh, &id)?,
                );
                let family = NewFamily {
                    id: new_id("fam"),
                    access_hash: access.hash,
                    refresh_hash: refresh.hash,
                };
                let issued = self
                    .commit(account::apply(&current, &ctx, |d| {
                        account::exchange_code(d, &code_hash, verifier.as_deref(), signed, family)
                    }))
                    .await?;
                Ok(
                    json!({"access_token": access.token, "refresh_token": refresh.token, "issued": issued}),
                )
            }
            AccountOp::Refresh {
                refresh_hash,
                signed,
            } => {
                let (access, refresh) = (
                    mint(TokenKind::Access, &id)?,
                    mint(TokenKind::Refresh, &id)?,
                );
                let issued = self
                    .commit(account::apply(&current, &ctx, |d| {
                        account::refresh(d, &refresh_hash, signed, access.hash, refresh.hash)
                    }))
                    .await?;
                Ok(
                    json!({"access_token": access.token, "refresh_token": refresh.token, "issued": issued}),
                )
            }
            AccountOp::Authenticate { access_hash } => {
                to_value(account::authenticate(&current, &access_hash, now)?)
            }
            AccountOp::Introspect { token_hash } => {
                Ok(account::introspect(&current, &token_hash, now))
            }
            AccountOp::Revoke { token_hash } => {
                let revoked = self
                    .commit(account::apply(&current, &ctx, |d| {
                        account::revoke_token(d, &token_hash)
                    }))
                    .await?;
                Ok(json!({ "revoked": revoked }))
            }
            AccountOp::OpenConsent { open } => {
                let expires_at = self
                    .commit(account::apply(&current, &ctx, |d| {
                        account::open_consent(d, open)
                    }))
                    .await?;
                Ok(json!({ "expires_at": expires_at }))
            }
            AccountOp::ViewConsent { consent_hash } => {
                to_value(account::view_consent(&current, &consent_hash, now)?)
            }
            AccountOp::SignIn {
                consent_hash,
                email,
                nonce,
            } => {
                let next_nonce = domain::crypto::base32(
                    &random::<16>().map_err(|_| internal("random", "nonce"))?,
                );
                let csrf = domain::crypto::base32(
                    &random::<20>().map_err(|_| internal("random", "csrf"))?,
                );
                let csrf_hash = tokens::hash(&csrf);
                self.commit(account::apply(&current, &ctx, |d| {
                    account::sign_in(d, &consent_hash, &email, &nonce, next_nonce, csrf_hash)
                }))
                .await?;
                let view = self
                    .load()
                    .ok_or(AccountError::NotFound)
                    .and_then(|a| account::view_consent(&a, &consent_hash, now))?;
                Ok(json!({"csrf": csrf, "view": view}))
            }
            AccountOp::Decide {
                consent_hash,
                csrf,
                approve,
            } => {
                let code = mint(TokenKind::Code, &id)?;
                let grant_id = new_id("grant");
                let decision = self
                    .commit(account::apply(&current, &ctx, |d| {
                        account::decide(
                            d,
                            &consent_hash,
                            &tokens::hash(&csrf),
                            approve,
                            &grant_id,
                            code.hash,
                        )
                    }))
                    .await?;
                let code = decision.approved.then_some(code.token);
                Ok(json!({"decision": decision, "code": code}))
            }
            AccountOp::Suspend { reason } => self
                .commit(account::apply(&current, &ctx, |d| {
                    account::suspend(d, &reason)
                }))
                .await
                .map(|_| Value::Null),
            AccountOp::Resume { reason } => self
                .commit(account::apply(&current, &ctx, |d| {
                    account::resume(d, &reason)
                }))
                .await
                .map(|_| Value::Null),
            AccountOp::Close { reason } => self
                .commit(account::apply(&current, &ctx, |d| {
                    account::close(d, &reason)
                }))
                .await
                .map(|_| Value::Null),
        }
    }
}

fn mint(kind: TokenKind, account: &str) -> std::result::Result<tokens::Minted, AccountError> {
    let bytes = random::<20>().map_err(|_| internal("random", "token"))?;
    Ok(tokens::mint(kind, account, &bytes))
}

fn to_value<T: Serialize>(v: T) -> Outcome {
    serde_json::to_value(v).map_err(|e| internal("encode", e))
}

impl DurableObject for Account {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        for statement in SCHEMA {
            if let Err(e) = sql.exec(statement, None) {
                worker::console_error!("account schema: {e}");
            }
        }
        Account {
            state,
            env,
            cache: RefCell::new(None),
            flushing: Cell::new(false),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let call: AccountCall = match req.json().await {
            Ok(call) => call,
            Err(e) => return Response::error(format!("bad internal call: {e}"), 400),
        };
        answer(self.run(call).await)
    }

    async fn alarm(&self) -> Result<Response> {
        self.flush().await;
        Response::ok("flushed")
    }
}
