//! The per-account Durable Object: it owns one account's state and serialises every change.
//!
//! A thin shell: the state cache, commits (state and audit outbox in one transaction), the
//! outbox flush to D1, the alarm and resource job driving are `domain::engine` (its module
//! docs state the invariants), here over the object's SQLite storage ([`store`], tables in
//! docs/STORAGE.md) and the worker's D1, clock and fetch ([`effects`]). This file keeps the
//! Durable Object, the dispatch of calls (`run`, `account_op`), rate limits and Stripe event
//! dedupe.
//!
//! Invariants: every change goes through [`Account::commit`] (the engine's), so an
//! acknowledged change always has its audit records; the in-memory copy is the stored state
//! (only this object writes it).

mod dashboard_ops;
mod effects;
mod resource_ops;
mod store;
mod usage_ops;

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;

use domain::account::{
    self, Account as AccountState, AccountError, Applied, Ctx, NewAccount, NewFamily, OpenConsent,
};
use domain::audit::{Actor, ActorKind};
use domain::catalog::Catalog;
use domain::closing;
use domain::dashboard;
use domain::engine::{Effects, Engine};
use domain::resources::{self, ResourceError, Settings};
use domain::stripe_events;
use domain::tokens::{self, TokenKind};
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use crate::account_do::effects::{internal, WorkerEffects};
use crate::account_do::store::SqlStore;
use crate::http::{new_id, now_ms, random};
use crate::rpc::account::{
    AccountCall, AccountOp, Body, CheckCode, Close, DashboardCall, DashboardSignIn, Decide,
    Decided, ExchangeCode, FlushAudit, GrantCredits, Introspect, IntrospectApiKey, IssuedTokens,
    OpenDashboard, Opened, OperatorView, OwnerSession, Refresh, Rendered, ReportUsage,
    ResourceCall, Resume, Revoke, SignIn, SignedIn, Suspend, ViewConsent,
};
use crate::rpc::op::{Encoded, Op};
use crate::rpc::transport::respond;
use crate::{config, discovery, meter, storage};

/// The Durable Object. It keeps the name `Account` (the domain's is imported here as
/// `AccountState`): `#[durable_object]` exports the struct's name as the JS class, which
/// wrangler.toml binds (`class_name = "Account"`), and the `impl` the macro generates has no
/// `js_class`, so a `js_name` on a renamed struct would split the class from its methods.
#[durable_object]
pub struct Account {
    env: Env,
    /// The state cache, commits, outbox, alarm and job driving ([`domain::engine`]).
    engine: Engine<SqlStore, WorkerEffects>,
    /// The account's own budget ([`Account::charge_owner`]).
    bucket: RefCell<Option<domain::ratelimit::Bucket>>,
    /// Failed unsigned attempts ([`Account::charge_failure`]).
    failures: RefCell<Option<domain::ratelimit::Bucket>>,
}

/// The encoded answer of an operation whose error is `AccountError` (the error is not encoded
/// yet: `run` does it).
type OpResult = std::result::Result<Encoded, AccountError>;

fn now_s() -> i64 {
    (now_ms() / 1000) as i64
}

impl Account {
    fn load(&self) -> Option<AccountState> {
        self.engine.load()
    }

    /// Whether this account already applied Stripe event `id`.
    fn event_applied(&self, current: &AccountState, id: &str) -> bool {
        self.engine.store().event_applied(current, id)
    }

    /// The statements recording event `id` as applied ([`SqlStore::applied_event`]).
    fn applied_event(&self, id: &str, now: i64) -> Vec<storage::Statement> {
        self.engine.store().applied_event(id, now)
    }

    /// Writes the new state and its records in one transaction ([`Engine::commit`]).
    async fn commit<T, E: From<AccountError>>(
        &self,
        applied: Applied<T, E>,
    ) -> std::result::Result<T, E> {
        self.engine.commit(applied).await
    }

    /// [`Self::commit`], with more statements in the same transaction when the state changed.
    async fn commit_with<T, E: From<AccountError>>(
        &self,
        applied: Applied<T, E>,
        extra: Vec<storage::Statement>,
    ) -> std::result::Result<T, E> {
        self.engine.commit_with(applied, extra).await
    }

    /// Sends the outbox to D1 ([`Engine::flush`]).
    async fn flush(&self) {
        self.engine.flush().await
    }

    /// Sets the alarm to the earliest pending work ([`Engine::reschedule`]).
    async fn reschedule(&self) {
        self.engine.reschedule().await
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
        self.engine.effects().settings()
    }

    /// Runs the job of resource `id` ([`Engine::drive`]).
    async fn drive(&self, id: &str, ctx: &Ctx) -> std::result::Result<(), ResourceError> {
        self.engine.drive(id, ctx).await
    }

    /// Releases what a closing account still holds ([`Engine::continue_closing`]).
    async fn continue_closing(&self, ctx: &Ctx) {
        self.engine
            .continue_closing(ctx, || self.catalog().ok())
            .await
    }

    /// Drives the job of `id` for a request ([`Engine::drive_for_request`]).
    async fn drive_for_request(
        &self,
        id: &str,
        ctx: &Ctx,
    ) -> std::result::Result<(), ResourceError> {
        self.engine.drive_for_request(id, ctx).await
    }

    /// Notes that the caller was told a job is pending ([`Engine::acknowledge`]).
    async fn acknowledge(&self, id: &str, ctx: &Ctx) -> std::result::Result<(), ResourceError> {
        self.engine.acknowledge(id, ctx).await
    }

    fn catalog(&self) -> std::result::Result<&'static Catalog, ResourceError> {
        discovery::catalog(&self.env).map_err(|_| ResourceError::Unavailable)
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
                let rendered = own(self.resource(&access_hash, &public_base, resource, &ctx))
                    .await
                    .map_err(|e| e.failure());
                let body = match rendered {
                    Ok(value) => Ok(Body::of(&value)?),
                    Err(refused) => Err(refused),
                };
                Encoded::answer::<ResourceCall>(body)
            }
            AccountOp::Dashboard(DashboardCall {
                session_hash,
                action,
            }) => {
                let shown = own(self.dashboard(&session_hash, action, &ctx)).await;
                Encoded::answer::<DashboardCall>(shown)
            }
            // Every other operation's error is `AccountError` (`encode`).
            op => match own(self.account_op(op, &ctx)).await {
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
                    alone(async move {
                        // Nothing was ever written here: no failed flush, no alarm.
                        self.engine.assume_empty();
                        self.commit(account::create(new, ctx)).await?;
                        encode::<NewAccount>(())
                    })
                    .await
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
                alone(async move {
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
                            // The session signed in: it lands where its link did.
                            let (view, nonce) = match dashboard::session(&a, &session.hash, now) {
                                Ok(s) => (dashboard::session_view(&a, s, now), s.nonce.clone()),
                                Err(_) => (dashboard::view(&a, now), String::new()),
                            };
                            encode::<DashboardSignIn>(Opened::Session(OwnerSession {
                                session: session.token,
                                view,
                                signed_in: true,
                                nonce,
                            }))
                        }
                        Err(e) => encode::<DashboardSignIn>(Opened::Refused(e)),
                    }
                })
                .await
            }
            AccountOp::CodeStatus(CheckCode { code_hash }) => {
                encode::<CheckCode>(account::code_status(&current, &code_hash, now))
            }
            AccountOp::ExchangeCode(ExchangeCode {
                code_hash,
                verifier,
                signed,
            }) => {
                alone(async move {
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
                })
                .await
            }
            AccountOp::Refresh(Refresh {
                refresh_hash,
                signed,
            }) => {
                alone(async move {
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
                })
                .await
            }
            AccountOp::Introspect(Introspect { token_hash }) => {
                let rendered = account::introspect(&current, &token_hash, now);
                encode::<Introspect>(Body::of(&rendered).map_err(|e| internal("encode", e))?)
            }
            AccountOp::IntrospectApiKey(IntrospectApiKey { token_hash }) => {
                let rendered = resources::introspect_api_key(&current, &token_hash);
                encode::<IntrospectApiKey>(Body::of(&rendered).map_err(|e| internal("encode", e))?)
            }
            AccountOp::Revoke(Revoke { token_hash }) => {
                alone(async move {
                    let revoked = self
                        .commit(account::apply(&current, ctx, |d| {
                            account::revoke_token(d, &token_hash)
                        }))
                        .await?;
                    encode::<Revoke>(revoked)
                })
                .await
            }
            AccountOp::OpenConsent(open) => {
                alone(async move {
                    let expires_at = self
                        .commit(account::apply(&current, ctx, |d| {
                            account::open_consent(d, open)
                        }))
                        .await?;
                    encode::<OpenConsent>(expires_at)
                })
                .await
            }
            AccountOp::ViewConsent(ViewConsent { consent_hash }) => {
                encode::<ViewConsent>(account::view_consent(&current, &consent_hash, now)?)
            }
            AccountOp::SignIn(SignIn {
                consent_hash,
                email,
                nonce,
            }) => {
                alone(async move {
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
                })
                .await
            }
            AccountOp::Decide(Decide {
                consent_hash,
                csrf,
                approve,
            }) => {
                alone(async move {
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
                })
                .await
            }
            AccountOp::OpenDashboard(OpenDashboard { link_hash }) => {
                alone(async move {
                    let session = mint(&self.env, TokenKind::Session, &id)?;
                    let nonce = domain::crypto::base32(
                        &random::<16>().map_err(|_| internal("random", "nonce"))?,
                    );
                    let opened = self
                        .commit(account::apply(&current, ctx, |d| {
                            Ok::<_, AccountError>(dashboard::open(
                                d,
                                &link_hash,
                                session.hash.clone(),
                                nonce.clone(),
                            ))
                        }))
                        .await?;
                    match opened {
                        Ok(()) => {
                            let a = self.load().ok_or(AccountError::NotFound)?;
                            // Where the link lands (its purpose and path).
                            let view = match dashboard::session(&a, &session.hash, now) {
                                Ok(s) => dashboard::session_view(&a, s, now),
                                Err(_) => dashboard::view(&a, now),
                            };
                            encode::<OpenDashboard>(Opened::Session(OwnerSession {
                                session: session.token,
                                view,
                                signed_in: false,
                                nonce,
                            }))
                        }
                        Err(e) => encode::<OpenDashboard>(Opened::Refused(e)),
                    }
                })
                .await
            }
            AccountOp::StripeEvent(event) => {
                alone(async move {
                    if self.event_applied(&current, &event.id) {
                        // A duplicate changes nothing, not even the audit trail.
                        return encode::<stripe_events::StripeEvent>(
                            stripe_events::EventOutcome::Duplicate,
                        );
                    }
                    let settings = self.settings();
                    let in_flight = self.engine.in_flight();
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
                })
                .await
            }
            AccountOp::Suspend(Suspend { reason }) => {
                alone(async move {
                    self.commit(account::apply(&current, ctx, |d| {
                        account::suspend(d, &reason)
                    }))
                    .await?;
                    encode::<Suspend>(())
                })
                .await
            }
            AccountOp::Resume(Resume { reason }) => {
                alone(async move {
                    self.commit(account::apply(&current, ctx, |d| {
                        account::resume(d, &reason)
                    }))
                    .await?;
                    encode::<Resume>(())
                })
                .await
            }
            AccountOp::Close(Close { reason }) => {
                alone(async move {
                    self.commit(account::apply(&current, ctx, |d| {
                        closing::begin(d, &reason);
                        Ok::<(), AccountError>(())
                    }))
                    .await?;
                    self.continue_closing(ctx).await;
                    encode::<Close>(())
                })
                .await
            }
            AccountOp::OperatorView(OperatorView) => {
                encode::<OperatorView>(Rendered(dashboard::operator_view(&current, now)))
            }
            AccountOp::GrantCredits(GrantCredits { grant }) => {
                alone(async move {
                    encode::<GrantCredits>(self.grant_credits(&current, grant, ctx).await)
                })
                .await
            }
            AccountOp::ReportUsage(ReportUsage { report }) => {
                alone(async move {
                    encode::<ReportUsage>(self.report_usage(&current, report, ctx).await)
                })
                .await
            }
            AccountOp::FlushAudit(FlushAudit) => {
                alone(async move {
                    // A flush already running owns the outbox and would make this call return at
                    // once: wait for it to end (at most 2 s: a hanging D1 write must not hang the
                    // operator's read), then send what is left.
                    let limit = worker::Delay::from(std::time::Duration::from_secs(2));
                    futures_util::future::select(self.engine.flush_idle(), limit).await;
                    self.flush().await;
                    encode::<FlushAudit>(())
                })
                .await
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

/// An operation's future on its own (boxed, behind `dyn`), not inlined into the object's
/// `fetch`: V8 compiles each wasm function on its first call, so an object's first call
/// compiles its own family of operations (as `entry::own` does for routes).
fn own<'a, T>(op: impl Future<Output = T> + 'a) -> Pin<Box<dyn Future<Output = T> + 'a>> {
    Box::pin(op)
}

/// One operation's future on its own ([`own`]), so that the object's first call of an
/// operation compiles that operation, not all of them (about 70 KB of wasm together).
fn alone<'a>(
    f: impl Future<Output = OpResult> + 'a,
) -> Pin<Box<dyn Future<Output = OpResult> + 'a>> {
    Box::pin(f)
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
        let effects = WorkerEffects { env: env.clone() };
        Account {
            env,
            engine: Engine::new(SqlStore::open(state), effects),
            bucket: RefCell::new(None),
            failures: RefCell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let started = meter::object_request(&self.env);
        let call: AccountCall = match req.json().await {
            Ok(call) => call,
            Err(e) => return Response::error(format!("bad internal call: {e}"), 400),
        };
        let answer = respond(self.run(call).await);
        meter::object_done(&self.env, started);
        answer
    }

    async fn alarm(&self) -> Result<Response> {
        let started = meter::object_request(&self.env);
        self.run_alarm().await;
        meter::object_done(&self.env, started);
        Response::ok("done")
    }
}

impl Account {
    /// What the alarm does: flush the outbox, enforce grace periods, drive due jobs, continue
    /// a close, and set the next alarm.
    async fn run_alarm(&self) {
        // The runtime clears a fired alarm; read it again rather than trust the copy.
        self.engine.alarm_fired();
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
            // The cap's pause first: the `suspend`/`resume` calls it starts are due below.
            self.engine
                .continue_usage(&ctx, || self.catalog().ok())
                .await;
            let Some(a) = self.load() else {
                return;
            };
            for id in resources::due(&a, ctx.now) {
                let _ = self.drive(&id, &ctx).await;
            }
            if self.load().is_some_and(|a| a.closing.is_some()) {
                self.continue_closing(&ctx).await;
            }
        }
        self.reschedule().await;
    }
}
