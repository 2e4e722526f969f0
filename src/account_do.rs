//! The per-account Durable Object: it owns one account's state and serialises every change.
//!
//! Storage (SQLite, see docs/STORAGE.md):
//! - `kv(key, value)`: `account` -> the account as JSON (domain `account::Account`);
//!   `flush_attempts` -> consecutive failed D1 flushes; `flush_wake` -> when to retry (ms).
//! - `outbox(seq, record)`: audit records not yet confirmed by D1.
//!
//! Invariants:
//! - A change is computed by the pure domain (`domain::account::apply`) and written, new state
//!   and audit records together, in one transaction before anything is awaited; only then is
//!   the caller answered. So an acknowledged change always has its audit records.
//! - Records go to D1 by the alarm `AUDIT_BATCH_MS` after the change (several changes in one
//!   write), or right after the change when other requests read their rows
//!   (`domain::audit::needed_at_once`), or when the operator API asks (`FlushAudit`).
//! - Outbox rows are deleted only after D1 confirmed them; a failed flush is retried by the
//!   alarm with exponential backoff (1 s doubling to 5 min). The alarm is armed before records
//!   are written, so records survive a crash between the write and the flush and are sent; it is
//!   deleted once nothing is due. A busy account sets it once per batch, not once per change.
//! - External work of resources (Stripe, registrar, operator backends) runs one step at a time:
//!   each answer is committed before the next call. A resource's job is driven by one caller at
//!   a time (`running`); what is not finished in the request is finished by the alarm.
//! - The in-memory copy is the stored state: only this object writes it.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use domain::account::{
    self, Account as AccountState, AccountError, Applied, Ctx, NewAccount, NewFamily, OpenConsent,
};
use domain::audit::{Actor, ActorKind, AuditRecord};
use domain::catalog::{Behaviour, Catalog};
use domain::closing;
use domain::dashboard::{self, DashboardError};
use domain::resources::{
    self, Detail, NewIds, Preparation, ResourceError, ResourceStatus, Settings,
};
use domain::stripe_events;
use domain::tokens::{self, TokenKind};
use serde_json::{json, Value};
use worker::{
    durable_object, DurableObject, Env, Request, Response, Result, SqlStorageValue, State,
};

use crate::http::{new_id, now_ms, random};
use crate::rpc::account::{
    AccountCall, AccountOp, CheckCode, Close, DashboardAction, DashboardCall, DashboardFailure,
    DashboardSignIn, Decide, Decided, ExchangeCode, FlushAudit, Introspect, IntrospectApiKey,
    IssuedTokens, OpenDashboard, Opened, OperatorView, OwnerSession, Refresh, Rendered,
    ResourceCall, ResourceOp, Resume, Revoke, Shown, SignIn, SignedIn, Suspend, ViewConsent,
};
use crate::rpc::op::{Encoded, Op};
use crate::rpc::transport::respond;
use crate::{audit_sink, config, discovery, external, storage};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, record TEXT NOT NULL)",
];
/// Stripe event ids this account applied, for exactly-once delivery (`stripe_events::DEDUPE_WINDOW`).
/// Their own table, not the state: the state is rewritten on every change.
const EVENTS_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS stripe_events (id TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS stripe_events_by_time ON stripe_events (applied_at)",
];
const FLUSH_BATCH: usize = 50;
/// How long after a change the alarm sends its audit records if the flush never confirmed.
const FLUSH_SAFETY_MS: i64 = 10_000;
/// Most external calls one drive makes for one resource.
const MAX_STEPS: usize = 12;

#[durable_object]
pub struct Account {
    state: State,
    env: Env,
    cache: RefCell<Option<AccountState>>,
    flushing: Cell<bool>,
    /// Tasks waiting for the running flush to end ([`FlushIdle`]).
    flush_waiters: RefCell<Vec<Waker>>,
    /// Counts commits that wrote outbox rows; with `sent_through`, tells the flush and the
    /// rescheduler whether the outbox is known to be empty without reading it.
    written: Cell<u64>,
    /// `Some(n)`: every record of the first `n` commits reached D1 and the outbox was empty then.
    sent_through: Cell<Option<u64>>,
    /// `Some(false)`: no failed flush is recorded in `kv` (known from memory; `None`: unknown).
    flush_failing: Cell<Option<bool>>,
    running: RefCell<HashSet<String>>,
    /// The account's own budget ([`Account::charge_owner`]).
    bucket: RefCell<Option<domain::ratelimit::Bucket>>,
    /// Failed unsigned attempts ([`Account::charge_failure`]).
    failures: RefCell<Option<domain::ratelimit::Bucket>>,
    /// The alarm as last read or set by this object (`None`: not known yet). Only this object
    /// sets its alarm, so the copy stays true; it saves a storage read on every change.
    alarm_at: Cell<Option<Option<i64>>>,
    /// The `stripe_events` table is known to exist.
    events_ready: Cell<bool>,
    /// When this object last deleted expired `stripe_events` ids (unix s; 0: not yet).
    pruned_at: Cell<i64>,
}

/// The encoded answer of an operation whose error is `AccountError` (the error is not encoded
/// yet: `run` does it).
type OpResult = std::result::Result<Encoded, AccountError>;

/// Ready when no flush is running; the flush that ends wakes its waiters.
struct FlushIdle<'a>(&'a Account);

impl Future for FlushIdle<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if !self.0.flushing.get() {
            return Poll::Ready(());
        }
        self.0.flush_waiters.borrow_mut().push(cx.waker().clone());
        Poll::Pending
    }
}

fn internal(context: &str, e: impl std::fmt::Display) -> AccountError {
    worker::console_error!(
        "{}",
        json!({"level": "error", "msg": context, "detail": e.to_string()})
    );
    AccountError::Unavailable
}

fn now_s() -> i64 {
    (now_ms() / 1000) as i64
}

impl Account {
    fn load(&self) -> Option<AccountState> {
        if let Some(a) = self.cache.borrow().as_ref() {
            return Some(a.clone());
        }
        let text = self.kv("account")?;
        let mut account: AccountState = serde_json::from_str(&text).ok()?;
        if !account.stripe.processed.is_empty() {
            self.move_legacy_event_ids(&mut account);
        }
        *self.cache.borrow_mut() = Some(account.clone());
        Some(account)
    }

    /// Reads the account's state in place (no copy), loading it first if needed.
    fn peek<R>(&self, f: impl FnOnce(&AccountState) -> R) -> Option<R> {
        if self.cache.borrow().is_none() {
            self.load()?;
        }
        self.cache.borrow().as_ref().map(f)
    }

    /// Makes sure the `stripe_events` table exists: created on an account's first event, so
    /// accounts that never get one (and account creation) do not pay for it.
    fn events_table(&self) -> bool {
        if self.events_ready.get() {
            return true;
        }
        let sql = self.state.storage().sql();
        let ready = EVENTS_SCHEMA.iter().all(|statement| {
            sql.exec(statement, None)
                .map_err(|e| internal("events schema", e))
                .is_ok()
        });
        self.events_ready.set(ready);
        ready
    }

    /// Whether this account already applied Stripe event `id`.
    fn event_applied(&self, current: &AccountState, id: &str) -> bool {
        if current.stripe.processed.contains_key(id) {
            return true; // a state written before the table, not moved yet
        }
        if !self.events_table() {
            return false; // the commit below fails the same way: nothing is applied
        }
        !self
            .rows("SELECT 1 AS applied FROM stripe_events WHERE id = ?", id)
            .is_empty()
    }

    /// The statements recording event `id` as applied, with the deletion of ids past the window
    /// at most once an hour (an id kept a little longer only dedupes a very late replay).
    fn applied_event(&self, id: &str, now: i64) -> Vec<storage::Statement> {
        let mut statements = vec![event_row(id, now)];
        if now - self.pruned_at.get() >= 3600 {
            self.pruned_at.set(now);
            statements.push((
                "DELETE FROM stripe_events WHERE applied_at <= ?",
                vec![SqlStorageValue::from(now - stripe_events::DEDUPE_WINDOW)],
            ));
        }
        statements
    }

    /// The rows `query` selects with `key` as its one binding (none when it fails).
    fn rows(&self, query: &str, key: &str) -> Vec<Value> {
        self.state
            .storage()
            .sql()
            .exec(query, vec![SqlStorageValue::from(key)])
            .and_then(|c| c.to_array())
            .unwrap_or_default()
    }

    /// States written before the `stripe_events` table kept applied event ids inside the
    /// state; moves them to the table (one transaction). If that fails they stay where they
    /// were, and [`Self::event_applied`] still finds them.
    fn move_legacy_event_ids(&self, account: &mut AccountState) {
        if !self.events_table() {
            return;
        }
        let ids = std::mem::take(&mut account.stripe.processed);
        let Ok(state_json) = serde_json::to_string(&*account) else {
            account.stripe.processed = ids;
            return;
        };
        let mut statements: Vec<storage::Statement> =
            ids.iter().map(|(id, at)| event_row(id, *at)).collect();
        statements.push(state_row(state_json));
        if let Err(e) = storage::atomically(&self.state.storage(), statements) {
            let _ = internal("move event ids", e);
            account.stripe.processed = ids;
        }
    }

    fn kv(&self, key: &str) -> Option<String> {
        let rows = self.rows("SELECT value FROM kv WHERE key = ?", key);
        Some(rows.first()?.get("value")?.as_str()?.to_string())
    }

    fn set_kv(&self, key: &str, value: Option<String>) {
        let sql = self.state.storage().sql();
        let _ = match value {
            Some(v) => sql.exec(
                "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)",
                vec![SqlStorageValue::from(key), SqlStorageValue::from(v)],
            ),
            None => sql.exec(
                "DELETE FROM kv WHERE key = ?",
                vec![SqlStorageValue::from(key)],
            ),
        };
    }

    /// Writes the new state and its records in one transaction; then sends them to D1 at once
    /// when other requests read their rows (or `AUDIT_BATCH_MS` is 0), else leaves them to the
    /// alarm, which sends every record waiting by then in one write.
    async fn commit<T, E: From<AccountError>>(
        &self,
        applied: Applied<T, E>,
    ) -> std::result::Result<T, E> {
        self.commit_with(applied, Vec::new()).await
    }

    /// [`Self::commit`], with more statements in the same transaction when the state changed.
    async fn commit_with<T, E: From<AccountError>>(
        &self,
        applied: Applied<T, E>,
        extra: Vec<storage::Statement>,
    ) -> std::result::Result<T, E> {
        if applied.changed() {
            let state_json =
                serde_json::to_string(&applied.account).map_err(|e| internal("encode state", e))?;
            let mut statements: Vec<storage::Statement> = vec![state_row(state_json)];
            statements.extend(extra);
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
            let batch_ms = config::audit_batch_ms(&self.env);
            let at_once =
                batch_ms == 0 || applied.records.iter().any(domain::audit::needed_at_once);
            if !applied.records.is_empty() {
                // Armed before the write: if this object dies before the records are sent, the
                // alarm still sends them.
                let wait = if at_once { FLUSH_SAFETY_MS } else { batch_ms };
                self.arm(now_ms() as i64 + wait).await;
            }
            storage::atomically(&self.state.storage(), statements)
                .map_err(|e| internal("write state", e))?;
            if !applied.records.is_empty() {
                self.written.set(self.written.get() + 1);
            }
            *self.cache.borrow_mut() = Some(applied.account);
            if at_once {
                self.flush().await;
            }
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
            // Commits can only interleave while the write below is awaited.
            let mark = self.written.get();
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
                self.flushed(mark);
                break;
            };
            match audit_sink::write(&self.env, &records).await {
                Ok(()) => {
                    let _ = sql.exec(
                        "DELETE FROM outbox WHERE seq <= ?",
                        vec![SqlStorageValue::from(last as i64)],
                    );
                    // A short batch and no commit meanwhile: the outbox is empty now.
                    if records.len() < FLUSH_BATCH && self.written.get() == mark {
                        self.flushed(mark);
                        break;
                    }
                }
                Err(reason) => {
                    let attempts: i64 = self
                        .kv("flush_attempts")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0)
                        + 1;
                    let delay_ms = (1000i64 << (attempts - 1).min(9)).min(300_000);
                    self.set_kv("flush_attempts", Some(attempts.to_string()));
                    self.set_kv("flush_wake", Some((now_ms() as i64 + delay_ms).to_string()));
                    self.flush_failing.set(Some(true));
                    worker::console_warn!(
                        "{}",
                        json!({"level": "warn", "msg": "audit flush failed; retrying", "attempt": attempts,
                               "retry_in_ms": delay_ms, "detail": domain::text::truncate(&reason, 300)})
                    );
                    break;
                }
            }
        }
        self.flushing.set(false);
        for waiter in self.flush_waiters.take() {
            waiter.wake();
        }
        self.reschedule().await;
    }

    /// Notes that the outbox was emptied with every record of the first `mark` commits.
    fn flushed(&self, mark: u64) {
        if self.flush_failing.get() != Some(false) {
            self.set_kv("flush_attempts", None);
            self.set_kv("flush_wake", None);
            self.flush_failing.set(Some(false));
        }
        self.sent_through.set(Some(mark));
    }

    /// Sets the alarm to the earliest pending work: a failed flush, a resource job, a grace
    /// deadline, a closing account, or records still in the outbox.
    async fn reschedule(&self) {
        let flush = match self.flush_failing.get() {
            Some(false) => None,
            _ => self.kv("flush_wake").and_then(|v| v.parse::<i64>().ok()),
        };
        let grace = config::payment_grace(&self.env);
        let now = now_ms() as i64;
        let wants = self
            .peek(|a| {
                [
                    resources::next_wake(a).map(|s| s * 1000),
                    stripe_events::next_grace_deadline(a, grace).map(|s| s * 1000),
                    a.closing.as_ref().map(|_| now + 5_000),
                ]
            })
            .unwrap_or_default();
        // Records possibly still in the outbox keep the net. Not knowing costs at worst an alarm
        // that finds the outbox empty; looking would cost a read after every change.
        let unsent =
            (self.sent_through.get() != Some(self.written.get())).then_some(now + FLUSH_SAFETY_MS);
        match wants.into_iter().chain([flush, unsent]).flatten().min() {
            Some(at) => self.arm(at).await,
            None => {
                if self.current_alarm().await.is_some() {
                    let storage = self.state.storage();
                    // Unknown after a failed delete: read again next time.
                    let known = storage.delete_alarm().await.is_ok().then_some(None);
                    self.alarm_at.set(known);
                }
            }
        }
    }

    /// When the alarm is set to fire (unix ms), from memory when known.
    async fn current_alarm(&self) -> Option<i64> {
        if let Some(known) = self.alarm_at.get() {
            return known;
        }
        match self.state.storage().get_alarm().await {
            Ok(at) => {
                self.alarm_at.set(Some(at));
                at
            }
            Err(_) => None,
        }
    }

    /// Makes sure the alarm fires at `at` (unix ms) or earlier.
    async fn arm(&self, at: i64) {
        if self.current_alarm().await.is_none_or(|c| c > at) {
            let delay = (at - now_ms() as i64).max(10);
            let set = self.state.storage().set_alarm(delay).await.is_ok();
            self.alarm_at
                .set(set.then_some(Some(now_ms() as i64 + delay)));
        }
    }

    fn ctx(&self, call: &AccountCall) -> Ctx {
        Ctx {
            now: now_s(),
            actor: call.actor.clone(),
            request_id: call.request_id.clone(),
            policy: config::policy(&self.env),
        }
    }

    fn system_ctx(&self) -> Ctx {
        Ctx {
            now: now_s(),
            actor: Actor::new(ActorKind::System, None),
            request_id: None,
            policy: config::policy(&self.env),
        }
    }

    fn settings(&self) -> Settings {
        Settings {
            root_zone: config::string(&self.env, "ROOT_ZONE")
                .unwrap_or_else(|| "apps.example.dev".into()),
            ..Settings::default()
        }
    }

    /// Runs the job of resource `id` until it is done, waiting, or failed for good.
    async fn drive(&self, id: &str, ctx: &Ctx) -> std::result::Result<(), ResourceError> {
        if !self.running.borrow_mut().insert(id.to_string()) {
            return Ok(()); // another caller is driving it
        }
        let settings = self.settings();
        // Bounded: a job has a handful of steps; waiting (a retry, or a backend still working)
        // ends the loop and is left to the alarm.
        let mut steps = 0;
        // A definite failure may leave a follow-up job (a refund, a name to let go): it is
        // driven on in the same loop, and the failure is what the caller is told.
        let mut failed: Option<ResourceError> = None;
        let result = loop {
            steps += 1;
            let Some(current) = self.load() else {
                break Ok(());
            };
            let waiting = resources::find(&current, id)
                .ok()
                .and_then(|r| r.job.as_ref())
                .is_some_and(|j| j.attempts > 0);
            if steps > MAX_STEPS || (waiting && steps > 1) {
                break Ok(());
            }
            let Some(action) = resources::next_action(&current, id, now_s()) else {
                break Ok(());
            };
            let outcome = external::execute(&self.env, &current, id, action.clone()).await;
            let Some(current) = self.load() else {
                break Ok(());
            };
            // While we awaited, another event (a webhook) may have moved the job on: an answer
            // to a step that is no longer the current one is dropped.
            if resources::next_action(&current, id, i64::MAX).as_ref() != Some(&action) {
                continue;
            }
            let step_ctx = Ctx {
                now: now_s(),
                ..ctx.clone()
            };
            let applied = account::apply(&current, &step_ctx, |d| {
                resources::apply_outcome(d, id, outcome, &settings)
            });
            if let Err(e) = self.commit(applied).await {
                let follow_up = self.load().is_some_and(|a| {
                    resources::find(&a, id)
                        .ok()
                        .and_then(|r| r.job.as_ref())
                        .is_some_and(|j| j.attempts == 0)
                });
                if !follow_up || matches!(e, ResourceError::Unavailable) {
                    break Err(e);
                }
                failed.get_or_insert(e);
            }
        };
        let result = match failed {
            Some(e) => Err(e),
            None => result,
        };
        self.running.borrow_mut().remove(id);
        self.reschedule().await;
        result
    }

    /// A new random API token for the given resource generation, sealed for storage. Without
    /// a usable `TOKEN_ENCRYPTION_KEYS` nothing is minted.
    fn new_api_token(
        &self,
        account_id: &str,
        resource_id: &str,
        generation: u32,
    ) -> std::result::Result<resources::NewApiToken, ResourceError> {
        let keys = config::sealing_keys(&self.env).ok_or(ResourceError::SecretsUnavailable)?;
        let mac_key = config::token_mac_key(&self.env).ok_or(ResourceError::SecretsUnavailable)?;
        let bytes = random::<20>().map_err(|_| ResourceError::SecretsUnavailable)?;
        let nonce = random::<12>().map_err(|_| ResourceError::SecretsUnavailable)?;
        Ok(resources::new_api_token(
            &keys,
            &mac_key,
            account_id,
            resource_id,
            generation,
            &bytes,
            &nonce,
        ))
    }

    fn render(&self, id: &str) -> std::result::Result<Value, ResourceError> {
        let a = self.load().ok_or(ResourceError::NotFound)?;
        let r = resources::find(&a, id)?;
        let mut secrets = BTreeMap::new();
        if matches!(r.detail, Detail::ApiToken { .. }) && r.status == ResourceStatus::Complete {
            let keys = config::sealing_keys(&self.env);
            let derivation_key = config::code_key(&self.env);
            let value = resources::api_token_value(
                r,
                &a.id,
                keys.as_ref(),
                derivation_key.as_deref().map(str::as_bytes),
            )
            .map_err(|e| {
                worker::console_error!(
                    "{}",
                    json!({"level": "error", "msg": "api_token", "resource_id": id, "detail": e.to_string()})
                );
                ResourceError::SecretsUnavailable
            })?;
            if let Some(value) = value {
                secrets.insert("API_TOKEN".to_string(), value);
            }
        }
        Ok(resources::render(r, &a.id, &secrets))
    }

    /// Releases what a closing account still holds, step by step; finishes the close when
    /// nothing is left. Whatever waits on a backend is finished by the alarm.
    async fn continue_closing(&self, ctx: &Ctx) {
        for _ in 0..8 {
            let Some(current) = self.load() else { return };
            if current.closing.is_none() {
                return;
            }
            let Ok(catalog) = self.catalog() else { return };
            let progress = self
                .commit(account::apply(&current, ctx, |d| closing::step(d, catalog)))
                .await;
            match progress {
                Ok(closing::Progress::Releasing { resources }) => {
                    if resources.is_empty() {
                        continue;
                    }
                    for id in resources {
                        let _ = self.drive(&id, ctx).await;
                    }
                }
                Ok(closing::Progress::Closed) | Err(_) => {
                    self.reschedule().await;
                    return;
                }
            }
        }
        self.reschedule().await;
    }

    /// Drives the job of `id` for a request: a definite failure that left the resource
    /// `errored` is answered with the resource (it exists and says why); any other failure is
    /// answered as an error.
    async fn drive_for_request(
        &self,
        id: &str,
        ctx: &Ctx,
    ) -> std::result::Result<(), ResourceError> {
        match self.drive(id, ctx).await {
            Err(e) => {
                let errored = self
                    .load()
                    .and_then(|a| {
                        resources::find(&a, id)
                            .ok()
                            .map(|r| r.status == ResourceStatus::Errored)
                    })
                    .unwrap_or(false);
                if errored {
                    Ok(())
                } else {
                    Err(e)
                }
            }
            ok => ok,
        }
    }

    /// After a request drove a job as far as it could: if it is still pending, note that the
    /// caller was told so (a later failure then leaves the resource `errored`).
    async fn acknowledge(&self, id: &str, ctx: &Ctx) -> std::result::Result<(), ResourceError> {
        let Some(current) = self.load() else {
            return Ok(());
        };
        let pending = resources::find(&current, id)
            .is_ok_and(|r| r.job.as_ref().is_some_and(|j| !j.acknowledged));
        if pending {
            self.commit(account::apply(&current, ctx, |d| {
                resources::acknowledge(d, id);
                d.record(
                    "resource.pending",
                    None,
                    Value::Null,
                    json!({"resource_id": id}),
                );
                Ok::<(), ResourceError>(())
            }))
            .await?;
        }
        Ok(())
    }

    fn catalog(&self) -> std::result::Result<&'static Catalog, ResourceError> {
        discovery::catalog(&self.env).map_err(|_| ResourceError::Unavailable)
    }

    async fn resource(
        &self,
        access_hash: &str,
        public_base: &str,
        op: ResourceOp,
        ctx: &Ctx,
    ) -> std::result::Result<Value, ResourceError> {
        let current = self.load().ok_or(ResourceError::Account {
            error: AccountError::InvalidToken,
        })?;
        let access = account::authenticate(&current, access_hash, ctx.now)?;
        // Signed by the orchestrator (checked by the worker) with a valid access token: only
        // now does the call take from the account's budget.
        self.charge_owner()?;
        // Audit records name the orchestrator account the token was granted to.
        let ctx = &Ctx {
            actor: Actor::new(ActorKind::Orchestrator, Some(&access.orchestrator_account)),
            ..ctx.clone()
        };
        let catalog = self.catalog()?;
        let write = !matches!(op, ResourceOp::Get { .. });
        resources::require_scope(&access, write)?;
        match op {
            ResourceOp::Get { id } => self.render(&id),
            ResourceOp::Create { req } => {
                let id = match resources::prepare_create(&current, &req, catalog)? {
                    Preparation::Existing(id) => return self.render(&id),
                    Preparation::Search { label, registrar } => {
                        let price = catalog
                            .get(&req.service_id)
                            .and_then(|s| match &s.provider {
                                Behaviour::Domain { price: Some(p), .. } => {
                                    Some((p.amount, p.currency.clone()))
                                }
                                _ => None,
                            });
                        let candidates =
                            external::search(&self.env, &label, registrar, price).await?;
                        // The search awaited: check again before creating.
                        let fresh = self.load().ok_or(ResourceError::NotFound)?;
                        match resources::prepare_create(&fresh, &req, catalog)? {
                            Preparation::Existing(id) => return self.render(&id),
                            _ => {
                                self.create(&fresh, &req, catalog, Some(candidates), ctx)
                                    .await?
                            }
                        }
                    }
                    Preparation::Ready => self.create(&current, &req, catalog, None, ctx).await?,
                };
                self.drive_for_request(&id, ctx).await?;
                self.acknowledge(&id, ctx).await?;
                self.render(&id)
            }
            ResourceOp::Update { id, req } => {
                let charge_id = new_id("chg");
                self.commit(account::apply(&current, ctx, |d| {
                    resources::update_service(d, &id, &req, catalog, &charge_id)
                }))
                .await?;
                self.drive_for_request(&id, ctx).await?;
                self.acknowledge(&id, ctx).await?;
                self.render(&id)
            }
            ResourceOp::Rotate { id } => {
                let r = resources::find(&current, &id)?;
                let next = match &r.detail {
                    Detail::ApiToken { generation, .. } => {
                        Some(self.new_api_token(&current.id, &id, generation + 1)?)
                    }
                    _ => None,
                };
                self.commit(account::apply(&current, ctx, |d| {
                    resources::rotate(d, &id, catalog, next)
                }))
                .await?;
                self.drive_for_request(&id, ctx).await?;
                self.acknowledge(&id, ctx).await?;
                self.render(&id)
            }
            ResourceOp::Remove { id } => {
                self.commit(account::apply(&current, ctx, |d| {
                    resources::remove(d, &id, catalog)
                }))
                .await?;
                self.drive_for_request(&id, ctx).await?;
                self.acknowledge(&id, ctx).await?;
                let a = self.load().ok_or(ResourceError::NotFound)?;
                match resources::find(&a, &id)?.status {
                    ResourceStatus::Removed => Ok(json!({"status": "removed", "id": id})),
                    _ => self.render(&id),
                }
            }
            ResourceOp::Confirm { id, req } => {
                let charge_id = new_id("chg");
                let confirmed = self
                    .commit(account::apply(&current, ctx, |d| {
                        resources::confirm_domain(d, &id, &req, &charge_id)
                    }))
                    .await;
                if let Err(ResourceError::QuoteExpired) = confirmed {
                    self.requote(&id, catalog, ctx).await?;
                    return Err(ResourceError::QuoteExpired);
                }
                confirmed?;
                self.drive_for_request(&id, ctx).await?;
                self.acknowledge(&id, ctx).await?;
                self.render(&id)
            }
            ResourceOp::DeepLink { purpose } => {
                let link = mint(&self.env, TokenKind::DeepLink, &current.id)
                    .map_err(ResourceError::from)?;
                let expires_at = self
                    .commit(account::apply(&current, ctx, |d| {
                        Ok::<i64, ResourceError>(dashboard::create_link(d, link.hash, &purpose))
                    }))
                    .await?;
                Ok(
                    json!({"purpose": purpose, "url": format!("{public_base}/dashboard?{}", domain::form::encode(&[("link", &link.token)])),
                          "expires_at": domain::time::format_rfc3339(expires_at)}),
                )
            }
        }
    }

    async fn create(
        &self,
        current: &AccountState,
        req: &resources::CreateRequest,
        catalog: &Catalog,
        candidates: Option<Vec<resources::Candidate>>,
        ctx: &Ctx,
    ) -> std::result::Result<String, ResourceError> {
        let resource_id = new_id("res");
        // Only API tokens mint a secret: a missing key refuses those and nothing else.
        let is_api_token = catalog
            .get(&req.service_id)
            .is_some_and(|s| matches!(s.provider, Behaviour::ApiToken { .. }));
        let token = if is_api_token {
            Some(self.new_api_token(&current.id, &resource_id, 1)?)
        } else {
            None
        };
        let ids = NewIds {
            resource_id,
            charge_id: new_id("chg"),
            token_hash: token.as_ref().map(|t| t.minted.hash.clone()),
            token_sealed: token.map(|t| t.sealed),
        };
        self.commit(account::apply(current, ctx, |d| {
            resources::create(d, req, catalog, ids, candidates)
        }))
        .await
    }

    /// Replaces an expired quote with a fresh search.
    async fn requote(
        &self,
        id: &str,
        catalog: &Catalog,
        ctx: &Ctx,
    ) -> std::result::Result<(), ResourceError> {
        let current = self.load().ok_or(ResourceError::NotFound)?;
        let r = resources::find(&current, id)?;
        let (
            Detail::Domain {
                query, registrar, ..
            },
            Some(service),
        ) = (&r.detail, catalog.get(&r.service_id))
        else {
            return Ok(());
        };
        let (price, ttl) = match &service.provider {
            Behaviour::Domain {
                price,
                quote_ttl_seconds,
                ..
            } => (
                price.as_ref().map(|p| (p.amount, p.currency.clone())),
                *quote_ttl_seconds as i64,
            ),
            _ => return Ok(()),
        };
        let label = domain::domain_names::label(query).unwrap_or_default();
        let candidates = external::search(&self.env, &label, *registrar, price).await?;
        let current = self.load().ok_or(ResourceError::NotFound)?;
        self.commit(account::apply(&current, ctx, |d| {
            resources::refresh_quote(d, id, candidates, ttl)
        }))
        .await
    }

    async fn dashboard(
        &self,
        session_hash: &str,
        action: DashboardAction,
        ctx: &Ctx,
    ) -> std::result::Result<Shown, DashboardFailure> {
        let current = self
            .load()
            .ok_or(DashboardFailure::Page(DashboardError::SessionExpired))?;
        // Viewing and lowering the cap take the link's session; raising it and buying, the
        // owner's sign-in; nothing changes on an account that is not open.
        let change = match &action {
            DashboardAction::View => dashboard::Change::None,
            DashboardAction::SetCap { cap } if *cap <= current.ledger.cap => {
                dashboard::Change::Narrow
            }
            DashboardAction::SetCap { .. } | DashboardAction::Confirm { .. } => {
                dashboard::Change::Widen
            }
        };
        let how = match dashboard::authorize(&current, session_hash, ctx.now, change) {
            Ok(how) => how,
            Err(DashboardError::SignInRequired) => {
                let what = match action {
                    DashboardAction::Confirm { .. } => "Buying",
                    _ => "Raising the cap",
                };
                let notice = format!(
                    "{what} needs the owner's sign-in: sign in below, then try again. Nothing was changed."
                );
                return self.shown(session_hash, Some(notice), Some(403));
            }
            Err(e) => return Err(DashboardFailure::Page(e)),
        };
        let ctx = &Ctx {
            actor: domain::audit::Actor::owner(how),
            ..ctx.clone()
        };
        let mut notice = None;
        match action {
            DashboardAction::View => {}
            DashboardAction::SetCap { cap } => {
                let result = self
                    .commit(account::apply(&current, ctx, |d| {
                        dashboard::set_cap(d, session_hash, cap).map_err(DashboardFailure::Page)
                    }))
                    .await;
                match result {
                    Ok(()) => {
                        notice = Some(format!(
                            "The monthly cap is now {}.",
                            domain::ledger::format_amount(cap, &current.ledger.currency)
                        ))
                    }
                    Err(DashboardFailure::Page(DashboardError::InvalidCap)) => {
                        notice = Some("That cap is not valid: enter 0 to 10000 dollars.".into())
                    }
                    Err(e) => return Err(e),
                }
            }
            DashboardAction::Confirm {
                resource_id,
                domain: name,
                amount,
            } => {
                let req = resources::ConfirmRequest {
                    domain: name.clone(),
                    amount,
                    payment_token: None,
                };
                let charge_id = new_id("chg");
                let result = self
                    .commit(account::apply(&current, ctx, |d| {
                        resources::confirm_domain(d, &resource_id, &req, &charge_id)
                    }))
                    .await;
                let result = match result {
                    Ok(()) => {
                        let driven = self.drive(&resource_id, ctx).await;
                        let _ = self.acknowledge(&resource_id, ctx).await;
                        driven
                    }
                    Err(e) => Err(e),
                };
                notice = Some(match result {
                    Ok(()) => format!("Purchase of {name} confirmed."),
                    Err(e) => format!("The purchase did not go through: {}", e.failure().message),
                });
            }
        }
        self.shown(session_hash, notice, None)
    }

    /// The dashboard as a session sees it now, with a notice (and the page's status if not 200).
    fn shown(
        &self,
        session_hash: &str,
        notice: Option<String>,
        status: Option<u16>,
    ) -> std::result::Result<Shown, DashboardFailure> {
        let a = self
            .load()
            .ok_or(DashboardFailure::Page(DashboardError::SessionExpired))?;
        let now = now_s();
        let s = dashboard::session(&a, session_hash, now).map_err(DashboardFailure::Page)?;
        Ok(Shown {
            view: dashboard::view(&a, now),
            notice,
            status,
            signed_in: s.signed_in_at.is_some(),
            nonce: s.nonce.clone(),
        })
    }

    /// Takes a token of the account's own budget (`ACCOUNT_RATE_LIMIT`). Only calls that proved
    /// they belong to this account (the orchestrator's signature and a valid credential of the
    /// account) take from it, after the credential is checked: nobody else can spend it.
    fn charge_owner(&self) -> std::result::Result<(), AccountError> {
        take(&self.bucket, crate::limits::account_limit(&self.env))
    }

    /// Takes a token of the bucket of failed unsigned attempts (`ACCOUNT_FAILURE_RATE_LIMIT`):
    /// when it is empty, such attempts are answered `429` instead of their error. It is not the
    /// owner's budget: valid credentials are served whatever its level.
    fn charge_failure(&self) -> std::result::Result<(), AccountError> {
        take(&self.failures, crate::limits::failure_limit(&self.env))
    }

    /// The limit of a token call whose credential checked out (`ok`) or not: a signed valid call
    /// takes from the owner's budget, an unsigned failed one from the failures' bucket.
    fn token_call_limit(&self, ok: bool, signed: bool) -> std::result::Result<(), AccountError> {
        match (ok, signed) {
            (true, true) => self.charge_owner(),
            (false, false) => self.charge_failure(),
            _ => Ok(()),
        }
    }

    /// Commits a token call's change unless the owner's budget refused it, and answers the
    /// limit's refusal in place of a failure ([`Self::token_call_limit`]).
    async fn commit_token_call<T>(
        &self,
        applied: Applied<T>,
        signed: bool,
    ) -> std::result::Result<T, AccountError> {
        let limit = self.token_call_limit(applied.result.is_ok(), signed);
        if applied.result.is_ok() {
            // Nothing is written for a refused valid call: the credential still works.
            limit?;
            return self.commit(applied).await;
        }
        // A failure may still change state (a reused refresh token revokes its family): keep it.
        let result = self.commit(applied).await;
        limit?;
        result
    }

    /// Runs one call; its answer (or refusal) encoded as the operation's own types.
    async fn run(&self, call: AccountCall) -> serde_json::Result<Encoded> {
        let ctx = self.ctx(&call);
        match call.op {
            AccountOp::Resource(ResourceCall {
                access_hash,
                public_base,
                resource,
            }) => {
                let rendered = self
                    .resource(&access_hash, &public_base, resource, &ctx)
                    .await
                    .map(Rendered);
                Encoded::answer::<ResourceCall>(rendered)
            }
            AccountOp::Dashboard(DashboardCall {
                session_hash,
                action,
            }) => {
                let shown = self.dashboard(&session_hash, action, &ctx).await;
                Encoded::answer::<DashboardCall>(shown)
            }
            // Every other operation's error is `AccountError` (`encode`).
            op => match self.account_op(op, &ctx).await {
                Ok(encoded) => Ok(encoded),
                Err(e) => Encoded::refusal(e),
            },
        }
    }

    async fn account_op(&self, op: AccountOp, ctx: &Ctx) -> OpResult {
        let now = ctx.now;
        if let AccountOp::Create(new) = op {
            return match self.load() {
                // Idempotent: the same account request creating the same account again.
                Some(a)
                    if a.id == new.id && a.codes.iter().any(|c| c.request_id == new.request_id) =>
                {
                    encode::<NewAccount>(())
                }
                Some(_) => Err(internal(
                    "create",
                    "account object already holds another account",
                )),
                None => {
                    // Nothing was ever written here, so no failed flush is on record either,
                    // and no alarm is set (at worst one armed by a create whose write then
                    // failed: `arm` replaces it). Saves a storage read on every new account.
                    self.flush_failing.set(Some(false));
                    if self.alarm_at.get().is_none() {
                        self.alarm_at.set(Some(None));
                    }
                    self.commit(account::create(new, ctx)).await?;
                    encode::<NewAccount>(())
                }
            };
        }
        let Some(current) = self.load() else {
            return Err(AccountError::NotFound);
        };
        let id = current.id.clone();
        match op {
            AccountOp::Create(_) | AccountOp::Resource(_) | AccountOp::Dashboard(_) => {
                Err(AccountError::NotFound)
            }
            AccountOp::DashboardSignIn(DashboardSignIn {
                session_hash,
                nonce,
                email,
            }) => {
                let session = mint(&self.env, TokenKind::Session, &id)?;
                let next_nonce = domain::crypto::base32(
                    &random::<16>().map_err(|_| internal("random", "nonce"))?,
                );
                let signed = self
                    .commit(account::apply(&current, ctx, |d| {
                        // The refusals are answers (a page), not failures of the call.
                        Ok::<_, AccountError>(dashboard::sign_in(
                            d,
                            session_hash.as_deref(),
                            &nonce,
                            &email,
                            session.hash.clone(),
                            next_nonce,
                        ))
                    }))
                    .await?;
                match signed {
                    Ok(()) => {
                        let a = self.load().ok_or(AccountError::NotFound)?;
                        let nonce = dashboard::session(&a, &session.hash, now)
                            .map(|s| s.nonce.clone())
                            .unwrap_or_default();
                        encode::<DashboardSignIn>(Opened::Session(OwnerSession {
                            session: session.token,
                            view: dashboard::view(&a, now),
                            signed_in: true,
                            nonce,
                        }))
                    }
                    Err(e) => encode::<DashboardSignIn>(Opened::Refused(e)),
                }
            }
            AccountOp::CodeStatus(CheckCode { code_hash }) => {
                encode::<CheckCode>(account::code_status(&current, &code_hash, now))
            }
            AccountOp::ExchangeCode(ExchangeCode {
                code_hash,
                verifier,
                signed,
            }) => {
                let ctx = &requester_ctx(&current, ctx, Some(&code_hash), None);
                let (access, refresh) = (
                    mint(&self.env, TokenKind::Access, &id)?,
                    mint(&self.env, TokenKind::Refresh, &id)?,
                );
                let family = NewFamily {
                    id: new_id("fam"),
                    access_hash: access.hash,
                    refresh_hash: refresh.hash,
                };
                let applied = account::apply(&current, ctx, |d| {
                    account::exchange_code(d, &code_hash, verifier.as_deref(), signed, family)
                });
                let issued = self.commit_token_call(applied, signed).await?;
                encode::<ExchangeCode>(IssuedTokens {
                    access_token: access.token,
                    refresh_token: refresh.token,
                    issued,
                })
            }
            AccountOp::Refresh(Refresh {
                refresh_hash,
                signed,
            }) => {
                let ctx = &requester_ctx(&current, ctx, None, Some(&refresh_hash));
                let (access, refresh) = (
                    mint(&self.env, TokenKind::Access, &id)?,
                    mint(&self.env, TokenKind::Refresh, &id)?,
                );
                let applied = account::apply(&current, ctx, |d| {
                    account::refresh(d, &refresh_hash, signed, access.hash, refresh.hash)
                });
                let issued = self.commit_token_call(applied, signed).await?;
                encode::<Refresh>(IssuedTokens {
                    access_token: access.token,
                    refresh_token: refresh.token,
                    issued,
                })
            }
            AccountOp::Introspect(Introspect { token_hash }) => {
                encode::<Introspect>(Rendered(account::introspect(&current, &token_hash, now)))
            }
            AccountOp::IntrospectApiKey(IntrospectApiKey { token_hash }) => {
                let rendered = resources::introspect_api_key(&current, &token_hash);
                encode::<IntrospectApiKey>(Rendered(rendered))
            }
            AccountOp::Revoke(Revoke { token_hash }) => {
                let revoked = self
                    .commit(account::apply(&current, ctx, |d| {
                        account::revoke_token(d, &token_hash)
                    }))
                    .await?;
                encode::<Revoke>(revoked)
            }
            AccountOp::OpenConsent(open) => {
                let expires_at = self
                    .commit(account::apply(&current, ctx, |d| {
                        account::open_consent(d, open)
                    }))
                    .await?;
                encode::<OpenConsent>(expires_at)
            }
            AccountOp::ViewConsent(ViewConsent { consent_hash }) => {
                encode::<ViewConsent>(account::view_consent(&current, &consent_hash, now)?)
            }
            AccountOp::SignIn(SignIn {
                consent_hash,
                email,
                nonce,
            }) => {
                let next_nonce = domain::crypto::base32(
                    &random::<16>().map_err(|_| internal("random", "nonce"))?,
                );
                let csrf = domain::crypto::base32(
                    &random::<20>().map_err(|_| internal("random", "csrf"))?,
                );
                let csrf_hash = tokens::hash(&csrf);
                self.commit(account::apply(&current, ctx, |d| {
                    account::sign_in(d, &consent_hash, &email, &nonce, next_nonce, csrf_hash)
                }))
                .await?;
                let view = self
                    .load()
                    .ok_or(AccountError::NotFound)
                    .and_then(|a| account::view_consent(&a, &consent_hash, now))?;
                encode::<SignIn>(SignedIn { csrf, view })
            }
            AccountOp::Decide(Decide {
                consent_hash,
                csrf,
                approve,
            }) => {
                let code = mint(&self.env, TokenKind::Code, &id)?;
                let grant_id = new_id("grant");
                let decision = self
                    .commit(account::apply(&current, ctx, |d| {
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
                encode::<Decide>(Decided { decision, code })
            }
            AccountOp::OpenDashboard(OpenDashboard { link_hash }) => {
                let session = mint(&self.env, TokenKind::Session, &id)?;
                let nonce = domain::crypto::base32(
                    &random::<16>().map_err(|_| internal("random", "nonce"))?,
                );
                let opened = self
                    .commit(account::apply(&current, ctx, |d| {
                        Ok::<_, AccountError>(dashboard::open(
                            d,
                            &link_hash,
                            session.hash,
                            nonce.clone(),
                        ))
                    }))
                    .await?;
                match opened {
                    Ok(()) => {
                        let a = self.load().ok_or(AccountError::NotFound)?;
                        encode::<OpenDashboard>(Opened::Session(OwnerSession {
                            session: session.token,
                            view: dashboard::view(&a, now),
                            signed_in: false,
                            nonce,
                        }))
                    }
                    Err(e) => encode::<OpenDashboard>(Opened::Refused(e)),
                }
            }
            AccountOp::StripeEvent(event) => {
                if self.event_applied(&current, &event.id) {
                    // A duplicate changes nothing, not even the audit trail.
                    return encode::<stripe_events::StripeEvent>(
                        stripe_events::EventOutcome::Duplicate,
                    );
                }
                let settings = self.settings();
                let in_flight: Vec<String> = self.running.borrow().iter().cloned().collect();
                let applied = account::apply(&current, ctx, |d| {
                    Ok::<_, AccountError>(stripe_events::apply_event(
                        d, &event, &settings, &in_flight,
                    ))
                });
                let outcome = self
                    .commit_with(applied, self.applied_event(&event.id, now))
                    .await?;
                // A job the event unblocked, or a grace period, continues in the alarm.
                self.reschedule().await;
                encode::<stripe_events::StripeEvent>(outcome)
            }
            AccountOp::Suspend(Suspend { reason }) => {
                self.commit(account::apply(&current, ctx, |d| {
                    account::suspend(d, &reason)
                }))
                .await?;
                encode::<Suspend>(())
            }
            AccountOp::Resume(Resume { reason }) => {
                self.commit(account::apply(&current, ctx, |d| {
                    account::resume(d, &reason)
                }))
                .await?;
                encode::<Resume>(())
            }
            AccountOp::Close(Close { reason }) => {
                self.commit(account::apply(&current, ctx, |d| {
                    closing::begin(d, &reason);
                    Ok::<(), AccountError>(())
                }))
                .await?;
                self.continue_closing(ctx).await;
                encode::<Close>(())
            }
            AccountOp::OperatorView(OperatorView) => {
                encode::<OperatorView>(Rendered(dashboard::operator_view(&current, now)))
            }
            AccountOp::FlushAudit(FlushAudit) => {
                // A flush already running owns the outbox and would make this call return at
                // once: wait for it to end (at most 2 s: a hanging D1 write must not hang the
                // operator's read), then send what is left.
                let limit = worker::Delay::from(std::time::Duration::from_secs(2));
                futures_util::future::select(FlushIdle(self), limit).await;
                self.flush().await;
                encode::<FlushAudit>(())
            }
        }
    }
}

fn mint(
    env: &Env,
    kind: TokenKind,
    account: &str,
) -> std::result::Result<tokens::Minted, AccountError> {
    let key = config::token_mac_key(env).ok_or(AccountError::Unavailable)?;
    let bytes = random::<20>().map_err(|_| internal("random", "token"))?;
    Ok(tokens::mint(kind, account, &key, &bytes))
}

/// Token calls arrive without a verified caller id: their records name the orchestrator
/// account of the grant behind the code or refresh token.
fn requester_ctx(
    current: &AccountState,
    ctx: &Ctx,
    code_hash: Option<&str>,
    refresh_hash: Option<&str>,
) -> Ctx {
    let mut ctx = ctx.clone();
    if let Some(who) = account::token_requester(current, code_hash, refresh_hash) {
        ctx.actor = Actor::new(ActorKind::Orchestrator, Some(&who));
    }
    ctx
}

/// Writes the account state (JSON).
fn state_row(state_json: String) -> storage::Statement {
    (
        "INSERT OR REPLACE INTO kv (key, value) VALUES ('account', ?)",
        vec![SqlStorageValue::from(state_json)],
    )
}

/// Records that event `id` was applied at `at` (unix seconds).
fn event_row(id: &str, at: i64) -> storage::Statement {
    (
        "INSERT OR IGNORE INTO stripe_events (id, applied_at) VALUES (?, ?)",
        vec![SqlStorageValue::from(id), SqlStorageValue::from(at)],
    )
}

/// Takes one token of `bucket` (filled on first use).
fn take(
    bucket: &RefCell<Option<domain::ratelimit::Bucket>>,
    limit: domain::ratelimit::Limit,
) -> std::result::Result<(), AccountError> {
    let now = now_ms();
    let mut bucket = bucket.borrow_mut();
    let b = bucket.get_or_insert_with(|| domain::ratelimit::Bucket::full(limit, now));
    b.take(limit, now)
        .map_err(|retry_after| AccountError::RateLimited { retry_after })
}

/// The answer of operation `O`, encoded.
fn encode<O: Op<Error = AccountError>>(answer: O::Answer) -> OpResult {
    Encoded::answer::<O>(Ok(answer)).map_err(|e| internal("encode", e))
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
            flush_waiters: RefCell::new(Vec::new()),
            written: Cell::new(0),
            sent_through: Cell::new(None),
            flush_failing: Cell::new(None),
            running: RefCell::new(HashSet::new()),
            bucket: RefCell::new(None),
            failures: RefCell::new(None),
            alarm_at: Cell::new(None),
            events_ready: Cell::new(false),
            pruned_at: Cell::new(0),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let call: AccountCall = match req.json().await {
            Ok(call) => call,
            Err(e) => return Response::error(format!("bad internal call: {e}"), 400),
        };
        respond(self.run(call).await)
    }

    async fn alarm(&self) -> Result<Response> {
        // The runtime clears a fired alarm; read it again rather than trust the copy.
        self.alarm_at.set(None);
        self.flush().await;
        if let Some(a) = self.load() {
            let ctx = self.system_ctx();
            let grace = config::payment_grace(&self.env);
            if stripe_events::next_grace_deadline(&a, grace).is_some_and(|t| t <= ctx.now) {
                let _ = self
                    .commit(account::apply(&a, &ctx, |d| {
                        Ok::<_, AccountError>(stripe_events::enforce_grace(d, grace))
                    }))
                    .await;
            }
            let Some(a) = self.load() else {
                return Response::ok("done");
            };
            for id in resources::due(&a, ctx.now) {
                let _ = self.drive(&id, &ctx).await;
            }
            if self.load().is_some_and(|a| a.closing.is_some()) {
                self.continue_closing(&ctx).await;
            }
        }
        self.reschedule().await;
        Response::ok("done")
    }
}
