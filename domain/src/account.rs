//! The account state machine: `(state, command, now) -> new state + audit records`.
//!
//! An account is owned by one Durable Object, which loads the [`Account`], calls [`apply`] with
//! an operation, and writes the new state and the audit records in one storage step.
//!
//! Invariants:
//! - [`apply`] never mutates its input. On `Err` the changes of the operation are discarded,
//!   except when the operation asked to keep them ([`Draft::keep_on_error`]): security
//!   reactions such as revoking tokens on authorization-code or refresh-token reuse persist even
//!   though the request fails.
//! - Every change produces at least one audit record, chained by hash (see `audit`).
//! - Secrets never enter the state: codes, tokens, consent ids and CSRF tokens are stored as
//!   SHA-256 hashes and compared in constant time.
//! - Only an `active` account issues, refreshes or accepts tokens; `suspended` and `closed`
//!   accounts refuse them at once. `closed` is final.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::account_request::Orchestrator;
use crate::audit::{self, Actor, ActorKind, AuditRecord, Authentication, ChainHead, Entry};
use crate::pkce;
use crate::tokens::same_hash;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    Active,
    Suspended,
    Closed,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Suspended => "suspended",
            AccountStatus::Closed => "closed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub email: String,
    pub name: Option<String>,
}

/// Authority given to an orchestrator account to act for the owner, with scopes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub id: String,
    pub orchestrator: Orchestrator,
    pub scopes: Vec<String>,
    pub created_at: i64,
    /// `account_request` (a new account attested by the orchestrator, ToS accepted) or
    /// `consent` (the owner approved on the consent page).
    pub via: String,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthCode {
    pub hash: String,
    pub grant_id: String,
    /// The account request it answers (also the OAuth `state` on consent redirects).
    pub request_id: String,
    pub code_challenge: Option<String>,
    pub issued_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    /// The token family its first use issued, revoked if the code is used again.
    pub family_id: Option<String>,
}

/// An access/refresh token pair and its rotations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenFamily {
    pub id: String,
    pub grant_id: String,
    /// Issued without the orchestrator's signature (PKCE only): refreshes need no signature.
    pub public_client: bool,
    pub access_hash: String,
    pub access_expires_at: i64,
    pub refresh_hash: String,
    pub refresh_expires_at: i64,
    /// Hashes of refresh tokens already rotated out: presenting one revokes the family.
    pub retired_refresh: Vec<String>,
    pub generation: u32,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ConsentState {
    Pending,
    SignedIn { csrf_hash: String, at: i64 },
    Approved { at: i64 },
    Denied { at: i64 },
}

/// An orchestrator's request to link an existing account, awaiting the owner's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    pub hash: String,
    pub request_id: String,
    pub orchestrator: Orchestrator,
    pub scopes: Vec<String>,
    pub code_challenge: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    /// Binds a sign-in assertion to this consent; replaced after each sign-in.
    pub nonce: String,
    pub state: ConsentState,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub status: AccountStatus,
    pub status_reason: Option<String>,
    pub owner: Owner,
    /// The orchestrator that created the account.
    pub orchestrator: Orchestrator,
    pub tos_version: String,
    pub created_at: i64,
    pub grants: Vec<Grant>,
    pub codes: Vec<AuthCode>,
    pub families: Vec<TokenFamily>,
    pub consents: Vec<Consent>,
    pub chain: ChainHead,
    #[serde(default)]
    pub resources: Vec<crate::resources::model::Resource>,
    #[serde(default)]
    pub ledger: crate::ledger::Ledger,
    #[serde(default)]
    pub billing: Billing,
    #[serde(default)]
    pub links: Vec<crate::dashboard::DeepLink>,
    #[serde(default)]
    pub sessions: Vec<crate::dashboard::Session>,
    #[serde(default)]
    pub stripe: crate::stripe_events::state::StripeState,
    /// Set while the account is being closed: its tokens already stopped working.
    #[serde(default)]
    pub closing: Option<String>,
}

impl Account {
    /// True when the account may act: active and not being closed.
    pub fn is_open(&self) -> bool {
        self.status == AccountStatus::Active && self.closing.is_none()
    }

    /// The status to report when it may not act.
    pub fn refusal(&self) -> AccountError {
        match (self.status, &self.closing) {
            (AccountStatus::Active, Some(_)) => AccountError::Inactive {
                status: AccountStatus::Closed,
            },
            (status, _) => AccountError::Inactive { status },
        }
    }
}

/// Stripe objects of the account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Billing {
    pub customer_id: Option<String>,
    /// Replaced subscriptions (paid -> paid) whose cancellation failed in the plan change:
    /// retried from the alarm until Stripe has cancelled them, so only one plan bills.
    #[serde(default)]
    pub cancelling: Vec<crate::resources::model::StaleSubscription>,
}

/// Lifetimes, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub code_ttl: i64,
    pub access_ttl: i64,
    pub refresh_ttl: i64,
    pub consent_ttl: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            code_ttl: 300,
            access_ttl: 3600,
            refresh_ttl: 30 * 86_400,
            consent_ttl: 3600,
        }
    }
}

/// Most live token families per account; issuing more revokes the oldest.
pub const MAX_LIVE_FAMILIES: usize = 50;
/// Most open consents per account; opening more drops the oldest pending one.
pub const MAX_OPEN_CONSENTS: usize = 20;
const MAX_RETIRED_REFRESH: usize = 20;
/// How long used or expired codes, dead families and answered consents are kept for reuse
/// detection before they are pruned (the audit trail keeps the history).
const RETENTION: i64 = 7 * 86_400;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum ConsentError {
    Unknown,
    Expired,
    AlreadyAnswered { approved: bool },
    NotSignedIn,
    WrongOwner,
    BadNonce,
    BadCsrf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AccountError {
    /// No such account (never created, or its object is empty).
    NotFound,
    /// The account is suspended or closed.
    Inactive {
        status: AccountStatus,
    },
    /// RFC 6749 `invalid_grant`: the code or refresh token is unknown, used, expired or revoked.
    InvalidGrant {
        reason: String,
    },
    /// RFC 6749 `invalid_client`: the client did not authenticate as it must.
    InvalidClient {
        reason: String,
    },
    /// The bearer token is unknown, expired or revoked.
    InvalidToken,
    /// A status change that the state machine forbids.
    InvalidTransition {
        from: AccountStatus,
        to: AccountStatus,
    },
    Consent(ConsentError),
    /// Storage failed; nothing was changed. Safe to retry.
    Unavailable,
    /// Too many calls for this account; retry after this many seconds.
    RateLimited {
        retry_after: u64,
    },
}

fn grant_err(reason: &str) -> AccountError {
    AccountError::InvalidGrant {
        reason: reason.to_string(),
    }
}

/// Who is acting, when, and for which request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ctx {
    pub now: i64,
    pub actor: Actor,
    pub request_id: Option<String>,
    pub policy: Policy,
}

/// A copy of the account being changed, plus the records of the change.
pub struct Draft<'a> {
    pub account: Account,
    records: Vec<AuditRecord>,
    ctx: &'a Ctx,
    keep: bool,
    /// Set once the operation verified a stronger authentication than the caller's.
    authentication: Option<Authentication>,
}

impl Draft<'_> {
    pub fn now(&self) -> i64 {
        self.ctx.now
    }

    pub fn policy(&self) -> Policy {
        self.ctx.policy
    }

    /// Appends an audit record of this change.
    pub fn record(
        &mut self,
        action: &'static str,
        consent: Option<String>,
        before: Value,
        after: Value,
    ) {
        let mut actor = self.ctx.actor.clone();
        if self.authentication.is_some() {
            actor.authentication = self.authentication;
        }
        let entry = Entry {
            at: self.ctx.now,
            actor,
            on_behalf_of: Some(self.account.owner.email.clone()),
            action,
            request_id: self.ctx.request_id.clone(),
            consent,
            before,
            after,
        };
        let record = audit::seal(&self.account.id, &mut self.account.chain, entry);
        self.records.push(record);
    }

    /// The operation verified the owner's authentication `how` (a sign-in): the records it
    /// makes from now on say so.
    pub fn authenticate(&mut self, how: Authentication) {
        self.authentication = Some(how);
    }

    /// How the actor of this change authenticated, as its records will say.
    pub fn authentication(&self) -> Option<Authentication> {
        self.authentication.or(self.ctx.actor.authentication)
    }

    /// Keeps this operation's changes even if it returns an error.
    pub fn keep_on_error(&mut self) {
        self.keep = true;
    }

    pub fn require_active(&self) -> Result<(), AccountError> {
        if self.account.is_open() {
            Ok(())
        } else {
            Err(self.account.refusal())
        }
    }
}

/// The outcome of [`apply`]: the state to store, the records to append, and the answer.
#[derive(Debug)]
pub struct Applied<T, E = AccountError> {
    pub account: Account,
    pub records: Vec<AuditRecord>,
    pub result: Result<T, E>,
    /// The account differs from the input (set by [`apply`]).
    pub dirty: bool,
}

impl<T, E> Applied<T, E> {
    /// True when there is something to write.
    pub fn changed(&self) -> bool {
        self.dirty || !self.records.is_empty()
    }
}

/// Runs `op` on a copy of `account`.
pub fn apply<T, E>(
    account: &Account,
    ctx: &Ctx,
    op: impl FnOnce(&mut Draft) -> Result<T, E>,
) -> Applied<T, E> {
    let mut draft = Draft {
        account: account.clone(),
        records: Vec::new(),
        ctx,
        keep: false,
        authentication: None,
    };
    let result = op(&mut draft);
    if result.is_err() && !draft.keep {
        return Applied {
            account: account.clone(),
            records: Vec::new(),
            result,
            dirty: false,
        };
    }
    if !draft.records.is_empty() {
        prune(&mut draft.account, ctx.now);
    }
    let dirty = draft.account != *account;
    Applied {
        account: draft.account,
        records: draft.records,
        result,
        dirty,
    }
}

/// Drops what no longer matters for security checks.
fn prune(a: &mut Account, now: i64) {
    a.ledger.prune(now);
    a.links.retain(|l| l.expires_at + RETENTION > now);
    a.sessions.retain(|s| s.expires_at > now);
    a.codes.retain(|c| c.expires_at + RETENTION > now);
    a.families.retain(|f| {
        f.revoked_at.is_none_or(|t| t + RETENTION > now) && f.refresh_expires_at + RETENTION > now
    });
    a.consents.retain(|c| c.expires_at + RETENTION > now);
}

/// A new authorization code (its hash) to issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCode {
    pub hash: String,
    pub code_challenge: Option<String>,
}

/// A new token pair (their hashes) to issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewFamily {
    pub id: String,
    pub access_hash: String,
    pub refresh_hash: String,
}

/// Everything needed to create an account from an account request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAccount {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub orchestrator: Orchestrator,
    pub tos_version: String,
    pub scopes: Vec<String>,
    pub request_id: String,
    pub grant_id: String,
    pub code: NewCode,
    /// The monthly spending cap the account starts with (cents).
    #[serde(default = "default_cap")]
    pub spending_cap: u64,
    /// The currency the cap is counted in: the catalog's (`usd` when absent).
    #[serde(default)]
    pub currency: Option<String>,
}

fn default_cap() -> u64 {
    crate::ledger::DEFAULT_CAP
}

/// Creates an account (status `active`) with its first grant and code.
pub fn create(new: NewAccount, ctx: &Ctx) -> Applied<()> {
    let account = Account {
        id: new.id.clone(),
        status: AccountStatus::Active,
        status_reason: None,
        owner: Owner {
            email: new.email.clone(),
            name: new.name.clone(),
        },
        orchestrator: new.orchestrator.clone(),
        tos_version: new.tos_version.clone(),
        created_at: ctx.now,
        grants: Vec::new(),
        codes: Vec::new(),
        families: Vec::new(),
        consents: Vec::new(),
        chain: ChainHead::default(),
        resources: Vec::new(),
        ledger: crate::ledger::Ledger {
            cap: new.spending_cap,
            currency: new
                .currency
                .clone()
                .unwrap_or_else(|| crate::catalog::DEFAULT_CURRENCY.into()),
            ..Default::default()
        },
        billing: Billing::default(),
        links: Vec::new(),
        sessions: Vec::new(),
        stripe: Default::default(),
        closing: None,
    };
    apply(&account, ctx, |d| {
        let tos = format!("tos:{}", new.tos_version);
        d.record(
            "account.created",
            Some(tos.clone()),
            Value::Null,
            json!({"status": "active", "email": new.email, "name": new.name,
                   "orchestrator": new.orchestrator, "tos_version": new.tos_version,
                   "scopes": new.scopes}),
        );
        add_grant(
            d,
            &new.grant_id,
            new.orchestrator.clone(),
            new.scopes.clone(),
            "account_request",
            Some(tos),
        );
        add_code(d, &new.grant_id, &new.request_id, new.code.clone());
        Ok(())
    })
}

fn add_grant(
    d: &mut Draft,
    id: &str,
    orchestrator: Orchestrator,
    scopes: Vec<String>,
    via: &str,
    consent: Option<String>,
) {
    d.account.grants.push(Grant {
        id: id.to_string(),
        orchestrator: orchestrator.clone(),
        scopes: scopes.clone(),
        created_at: d.now(),
        via: via.to_string(),
        revoked_at: None,
    });
    d.record(
        "grant.created",
        consent,
        Value::Null,
        json!({"grant_id": id, "orchestrator": orchestrator, "scopes": scopes, "via": via}),
    );
}

fn add_code(d: &mut Draft, grant_id: &str, request_id: &str, code: NewCode) {
    let expires_at = d.now() + d.policy().code_ttl;
    d.account.codes.push(AuthCode {
        hash: code.hash,
        grant_id: grant_id.to_string(),
        request_id: request_id.to_string(),
        code_challenge: code.code_challenge.clone(),
        issued_at: d.now(),
        expires_at,
        used_at: None,
        family_id: None,
    });
    d.record(
        "code.issued",
        Some(format!("grant:{grant_id}")),
        Value::Null,
        json!({"grant_id": grant_id, "account_request": request_id,
               "pkce": code.code_challenge.is_some(), "expires_at": expires_at}),
    );
}

/// State of a code, for idempotent replays of an account request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeStatus {
    Unused,
    Used,
    Expired,
    Unknown,
}

pub fn code_status(a: &Account, code_hash: &str, now: i64) -> CodeStatus {
    match a.codes.iter().find(|c| same_hash(&c.hash, code_hash)) {
        None => CodeStatus::Unknown,
        Some(c) if c.used_at.is_some() => CodeStatus::Used,
        Some(c) if c.expires_at <= now => CodeStatus::Expired,
        Some(_) => CodeStatus::Unused,
    }
}

/// What a successful token exchange or refresh grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issued {
    pub account_id: String,
    pub scopes: Vec<String>,
    pub expires_in: i64,
}

fn revoke_family(d: &mut Draft, index: usize, reason: &str) {
    let now = d.now();
    let family = &mut d.account.families[index];
    if family.revoked_at.is_some() {
        return;
    }
    family.revoked_at = Some(now);
    family.revoked_reason = Some(reason.to_string());
    let (id, grant) = (family.id.clone(), family.grant_id.clone());
    d.record(
        "token.revoked",
        Some(format!("grant:{grant}")),
        json!({"family_id": id, "revoked": false}),
        json!({"family_id": id, "revoked": true, "reason": reason}),
    );
}

fn issue_family(
    d: &mut Draft,
    grant_id: &str,
    public_client: bool,
    new: NewFamily,
) -> Result<Issued, AccountError> {
    let scopes = d
        .account
        .grants
        .iter()
        .find(|g| g.id == grant_id && g.revoked_at.is_none())
        .map(|g| g.scopes.clone())
        .ok_or_else(|| grant_err("the grant behind this code was revoked"))?;
    // Bound the live families: the oldest live one makes room.
    let live: Vec<usize> = (0..d.account.families.len())
        .filter(|&i| d.account.families[i].revoked_at.is_none())
        .collect();
    if live.len() >= MAX_LIVE_FAMILIES {
        revoke_family(d, live[0], "too_many_tokens");
    }
    let p = d.policy();
    let now = d.now();
    d.account.families.push(TokenFamily {
        id: new.id.clone(),
        grant_id: grant_id.to_string(),
        public_client,
        access_hash: new.access_hash,
        access_expires_at: now + p.access_ttl,
        refresh_hash: new.refresh_hash,
        refresh_expires_at: now + p.refresh_ttl,
        retired_refresh: Vec::new(),
        generation: 1,
        created_at: now,
        revoked_at: None,
        revoked_reason: None,
    });
    d.record(
        "token.issued",
        Some(format!("grant:{grant_id}")),
        Value::Null,
        json!({"family_id": new.id, "generation": 1, "scopes": scopes,
               "public_client": public_client, "access_expires_at": now + p.access_ttl}),
    );
    Ok(Issued {
        account_id: d.account.id.clone(),
        scopes,
        expires_in: p.access_ttl,
    })
}

/// `grant_type=authorization_code`. `signed` is true when the orchestrator's signature was
/// verified on the request.
pub fn exchange_code(
    d: &mut Draft,
    code_hash: &str,
    verifier: Option<&str>,
    signed: bool,
    new: NewFamily,
) -> Result<Issued, AccountError> {
    d.require_active()?;
    let now = d.now();
    let index = d
        .account
        .codes
        .iter()
        .position(|c| same_hash(&c.hash, code_hash))
        .ok_or_else(|| grant_err("the authorization code is not valid"))?;
    let code = d.account.codes[index].clone();
    if code.used_at.is_some() {
        // RFC 6749 §4.1.2: a second use fails and revokes what the first use issued.
        d.keep_on_error();
        d.record(
            "code.reused",
            Some(format!("grant:{}", code.grant_id)),
            Value::Null,
            json!({"grant_id": code.grant_id, "family_id": code.family_id}),
        );
        if let Some(fid) = &code.family_id {
            if let Some(fi) = d.account.families.iter().position(|f| &f.id == fid) {
                revoke_family(d, fi, "code_reused");
            }
        }
        return Err(grant_err("the authorization code was already used"));
    }
    if code.expires_at <= now {
        return Err(grant_err("the authorization code has expired"));
    }
    match (&code.code_challenge, verifier) {
        (Some(challenge), Some(v)) => {
            if !pkce::verify(challenge, v) {
                return Err(grant_err("code_verifier does not match the code_challenge"));
            }
        }
        (Some(_), None) => return Err(grant_err("code_verifier is required for this code")),
        (None, Some(_)) => {
            return Err(grant_err(
                "code_verifier was sent but this code has no code_challenge",
            ))
        }
        (None, None) if !signed => {
            return Err(AccountError::InvalidClient {
                reason: "sign the request, or use PKCE".into(),
            })
        }
        (None, None) => {}
    }
    let family_id = new.id.clone();
    let issued = issue_family(d, &code.grant_id, !signed, new)?;
    let c = &mut d.account.codes[index];
    c.used_at = Some(now);
    c.family_id = Some(family_id);
    Ok(issued)
}

/// `grant_type=refresh_token`, with rotation: the presented token stops working.
pub fn refresh(
    d: &mut Draft,
    refresh_hash: &str,
    signed: bool,
    new_access_hash: String,
    new_refresh_hash: String,
) -> Result<Issued, AccountError> {
    d.require_active()?;
    let now = d.now();
    let current = d
        .account
        .families
        .iter()
        .position(|f| f.revoked_at.is_none() && same_hash(&f.refresh_hash, refresh_hash));
    let Some(index) = current else {
        let reused = d
            .account
            .families
            .iter()
            .position(|f| f.retired_refresh.iter().any(|h| same_hash(h, refresh_hash)));
        if let Some(index) = reused {
            // A rotated-out refresh token came back: someone kept a copy. Revoke the family.
            d.keep_on_error();
            let fid = d.account.families[index].id.clone();
            d.record(
                "token.refresh_reused",
                None,
                Value::Null,
                json!({"family_id": fid}),
            );
            revoke_family(d, index, "refresh_token_reused");
            return Err(grant_err(
                "the refresh token was already used; sign in again",
            ));
        }
        return Err(grant_err("the refresh token is not valid"));
    };
    let f = &d.account.families[index];
    if f.refresh_expires_at <= now {
        return Err(grant_err("the refresh token has expired"));
    }
    if !f.public_client && !signed {
        return Err(AccountError::InvalidClient {
            reason: "this refresh token needs the orchestrator's signature".into(),
        });
    }
    let grant_id = f.grant_id.clone();
    let scopes = d
        .account
        .grants
        .iter()
        .find(|g| g.id == grant_id && g.revoked_at.is_none())
        .map(|g| g.scopes.clone())
        .ok_or_else(|| grant_err("the grant behind this token was revoked"))?;
    let p = d.policy();
    let f = &mut d.account.families[index];
    let old = std::mem::replace(&mut f.refresh_hash, new_refresh_hash);
    f.retired_refresh.push(old);
    if f.retired_refresh.len() > MAX_RETIRED_REFRESH {
        f.retired_refresh.remove(0);
    }
    f.access_hash = new_access_hash;
    f.access_expires_at = now + p.access_ttl;
    f.refresh_expires_at = now + p.refresh_ttl;
    f.generation += 1;
    let (fid, generation) = (f.id.clone(), f.generation);
    d.record(
        "token.refreshed",
        Some(format!("grant:{grant_id}")),
        json!({"family_id": fid, "generation": generation - 1}),
        json!({"family_id": fid, "generation": generation, "access_expires_at": now + p.access_ttl}),
    );
    Ok(Issued {
        account_id: d.account.id.clone(),
        scopes,
        expires_in: p.access_ttl,
    })
}

/// What a valid access token allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    pub account_id: String,
    pub family_id: String,
    pub grant_id: String,
    pub scopes: Vec<String>,
    pub orchestrator_account: String,
    pub expires_at: i64,
}

/// Checks a bearer access token (read-only).
pub fn authenticate(a: &Account, access_hash: &str, now: i64) -> Result<Access, AccountError> {
    // The token first: an unknown token learns nothing about the account's status.
    let known = a
        .families
        .iter()
        .any(|f| same_hash(&f.access_hash, access_hash));
    if !known {
        return Err(AccountError::InvalidToken);
    }
    if !a.is_open() {
        return Err(a.refusal());
    }
    let f = a
        .families
        .iter()
        .find(|f| f.revoked_at.is_none() && same_hash(&f.access_hash, access_hash))
        .filter(|f| f.access_expires_at > now)
        .ok_or(AccountError::InvalidToken)?;
    let g = a
        .grants
        .iter()
        .find(|g| g.id == f.grant_id && g.revoked_at.is_none())
        .ok_or(AccountError::InvalidToken)?;
    Ok(Access {
        account_id: a.id.clone(),
        family_id: f.id.clone(),
        grant_id: g.id.clone(),
        scopes: g.scopes.clone(),
        orchestrator_account: g.orchestrator.account.clone(),
        expires_at: f.access_expires_at,
    })
}

/// RFC 7662 view of a token (read-only). Inactive accounts' tokens are inactive.
pub fn introspect(a: &Account, token_hash: &str, now: i64) -> Value {
    let inactive = json!({"active": false});
    if !a.is_open() {
        return inactive;
    }
    for f in a.families.iter().filter(|f| f.revoked_at.is_none()) {
        let (kind, exp) = if same_hash(&f.access_hash, token_hash) {
            ("access_token", f.access_expires_at)
        } else if same_hash(&f.refresh_hash, token_hash) {
            ("refresh_token", f.refresh_expires_at)
        } else {
            continue;
        };
        if exp <= now {
            return inactive;
        }
        let Some(g) = a
            .grants
            .iter()
            .find(|g| g.id == f.grant_id && g.revoked_at.is_none())
        else {
            return inactive;
        };
        return json!({
            "active": true, "token_type": kind, "scope": g.scopes.join(" "),
            "client_id": g.orchestrator.account, "sub": a.id, "exp": exp, "iat": f.created_at,
            "username": a.owner.email,
        });
    }
    inactive
}

/// RFC 7009: revokes the pair that `token_hash` belongs to. Unknown tokens change nothing.
pub fn revoke_token(d: &mut Draft, token_hash: &str) -> Result<bool, AccountError> {
    let index = d.account.families.iter().position(|f| {
        f.revoked_at.is_none()
            && (same_hash(&f.access_hash, token_hash) || same_hash(&f.refresh_hash, token_hash))
    });
    match index {
        Some(i) => {
            revoke_family(d, i, "revoked_by_client");
            Ok(true)
        }
        None => Ok(false),
    }
}

/// An existing-account link request from an account request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenConsent {
    pub hash: String,
    pub request_id: String,
    pub orchestrator: Orchestrator,
    pub scopes: Vec<String>,
    pub code_challenge: Option<String>,
    pub request_expires_at: i64,
    pub nonce: String,
}

/// Opens a consent (idempotent on its hash).
pub fn open_consent(d: &mut Draft, open: OpenConsent) -> Result<i64, AccountError> {
    d.require_active()?;
    if let Some(c) = d
        .account
        .consents
        .iter()
        .find(|c| same_hash(&c.hash, &open.hash))
    {
        return Ok(c.expires_at);
    }
    let now = d.now();
    let open_count = d
        .account
        .consents
        .iter()
        .filter(|c| {
            matches!(
                c.state,
                ConsentState::Pending | ConsentState::SignedIn { .. }
            ) && c.expires_at > now
        })
        .count();
    if open_count >= MAX_OPEN_CONSENTS {
        if let Some(oldest) = d.account.consents.iter().position(|c| {
            matches!(
                c.state,
                ConsentState::Pending | ConsentState::SignedIn { .. }
            )
        }) {
            d.account.consents.remove(oldest);
        }
    }
    let expires_at = open.request_expires_at.min(now + d.policy().consent_ttl);
    d.account.consents.push(Consent {
        hash: open.hash,
        request_id: open.request_id.clone(),
        orchestrator: open.orchestrator.clone(),
        scopes: open.scopes.clone(),
        code_challenge: open.code_challenge,
        created_at: now,
        expires_at,
        nonce: open.nonce,
        state: ConsentState::Pending,
    });
    d.record(
        "consent.requested",
        None,
        Value::Null,
        json!({"account_request": open.request_id, "orchestrator": open.orchestrator,
               "scopes": open.scopes, "expires_at": expires_at}),
    );
    Ok(expires_at)
}

/// What the consent page shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentView {
    pub account_id: String,
    pub email: String,
    pub orchestrator: Orchestrator,
    pub scopes: Vec<String>,
    pub expires_at: i64,
    pub nonce: String,
    pub signed_in: bool,
}

fn find_consent(a: &Account, hash: &str, now: i64) -> Result<usize, AccountError> {
    let i = a
        .consents
        .iter()
        .position(|c| same_hash(&c.hash, hash))
        .ok_or(AccountError::Consent(ConsentError::Unknown))?;
    match a.consents[i].state {
        ConsentState::Approved { .. } => {
            Err(AccountError::Consent(ConsentError::AlreadyAnswered {
                approved: true,
            }))
        }
        ConsentState::Denied { .. } => Err(AccountError::Consent(ConsentError::AlreadyAnswered {
            approved: false,
        })),
        _ if a.consents[i].expires_at <= now => Err(AccountError::Consent(ConsentError::Expired)),
        _ => Ok(i),
    }
}

/// The consent page's content (read-only).
pub fn view_consent(a: &Account, hash: &str, now: i64) -> Result<ConsentView, AccountError> {
    if !a.is_open() {
        return Err(a.refusal());
    }
    let c = &a.consents[find_consent(a, hash, now)?];
    Ok(ConsentView {
        account_id: a.id.clone(),
        email: a.owner.email.clone(),
        orchestrator: c.orchestrator.clone(),
        scopes: c.scopes.clone(),
        expires_at: c.expires_at,
        nonce: c.nonce.clone(),
        signed_in: matches!(c.state, ConsentState::SignedIn { .. }),
    })
}

/// Why an owner sign-in (consent page or dashboard) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInRefusal {
    /// Not the nonce this page handed out (replayed, or from another page).
    BadNonce,
    /// Someone else signed in: the nonce is spent all the same.
    WrongOwner,
}

/// The one check of an owner sign-in, for every page that asks for one: the nonce the page
/// handed out (`expected`, never empty) came back, and the signed-in `email` (normalised) is
/// the owner's.
pub fn check_sign_in(
    a: &Account,
    expected: &str,
    nonce: &str,
    email: &str,
) -> Result<(), SignInRefusal> {
    if expected.is_empty() || !crate::crypto::ct_eq(expected.as_bytes(), nonce.as_bytes()) {
        return Err(SignInRefusal::BadNonce);
    }
    if email != a.owner.email {
        return Err(SignInRefusal::WrongOwner);
    }
    Ok(())
}

/// The owner proved who they are (a verified assertion or the dev form) for this consent.
/// `email` is normalised; `nonce` must be the consent's current nonce, which is then replaced,
/// so a sign-in cannot be replayed.
pub fn sign_in(
    d: &mut Draft,
    consent_hash: &str,
    email: &str,
    nonce: &str,
    next_nonce: String,
    csrf_hash: String,
) -> Result<(), AccountError> {
    d.require_active()?;
    let now = d.now();
    let i = find_consent(&d.account, consent_hash, now)?;
    let checked = check_sign_in(&d.account, &d.account.consents[i].nonce, nonce, email);
    if checked == Err(SignInRefusal::BadNonce) {
        return Err(AccountError::Consent(ConsentError::BadNonce));
    }
    if checked == Err(SignInRefusal::WrongOwner) {
        // Recorded, so the owner can see attempts; the nonce is spent either way.
        d.keep_on_error();
        d.account.consents[i].nonce = next_nonce;
        d.record(
            "consent.sign_in_refused",
            None,
            Value::Null,
            json!({"account_request": d.account.consents[i].request_id.clone(), "reason": "wrong_owner"}),
        );
        return Err(AccountError::Consent(ConsentError::WrongOwner));
    }
    d.authenticate(Authentication::OwnerSignIn);
    let c = &mut d.account.consents[i];
    c.nonce = next_nonce;
    c.state = ConsentState::SignedIn { csrf_hash, at: now };
    let request_id = c.request_id.clone();
    d.record(
        "consent.signed_in",
        None,
        Value::Null,
        json!({"account_request": request_id}),
    );
    Ok(())
}

/// Where to send the owner's browser after a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub request_id: String,
    pub approved: bool,
}

/// The owner's decision on a signed-in consent. Approval creates a grant and a code (given by
/// the caller as `code` and `grant_id`).
pub fn decide(
    d: &mut Draft,
    consent_hash: &str,
    csrf_hash: &str,
    approve: bool,
    grant_id: &str,
    code_hash: String,
) -> Result<Decision, AccountError> {
    d.require_active()?;
    let now = d.now();
    let i = find_consent(&d.account, consent_hash, now)?;
    match &d.account.consents[i].state {
        ConsentState::SignedIn {
            csrf_hash: expected,
            ..
        } => {
            if !same_hash(expected, csrf_hash) {
                return Err(AccountError::Consent(ConsentError::BadCsrf));
            }
            // The CSRF token was issued at the owner's sign-in.
            d.authenticate(Authentication::OwnerSignIn);
        }
        _ => return Err(AccountError::Consent(ConsentError::NotSignedIn)),
    }
    let c = d.account.consents[i].clone();
    let consent_ref = format!("consent:{}", c.request_id);
    if approve {
        d.account.consents[i].state = ConsentState::Approved { at: now };
        d.record(
            "consent.approved",
            Some(consent_ref.clone()),
            json!({"state": "signed_in"}),
            json!({"state": "approved", "account_request": c.request_id, "scopes": c.scopes}),
        );
        add_grant(
            d,
            grant_id,
            c.orchestrator.clone(),
            c.scopes.clone(),
            "consent",
            Some(consent_ref),
        );
        add_code(
            d,
            grant_id,
            &c.request_id,
            NewCode {
                hash: code_hash,
                code_challenge: c.code_challenge.clone(),
            },
        );
    } else {
        d.account.consents[i].state = ConsentState::Denied { at: now };
        d.record(
            "consent.denied",
            Some(consent_ref),
            json!({"state": "signed_in"}),
            json!({"state": "denied", "account_request": c.request_id}),
        );
    }
    Ok(Decision {
        request_id: c.request_id,
        approved: approve,
    })
}

/// `active` -> `suspended`. Suspending a suspended account changes nothing.
pub fn suspend(d: &mut Draft, reason: &str) -> Result<(), AccountError> {
    if d.account.closing.is_some() {
        return Err(AccountError::InvalidTransition {
            from: AccountStatus::Closed,
            to: AccountStatus::Suspended,
        });
    }
    match d.account.status {
        AccountStatus::Active => {
            d.account.status = AccountStatus::Suspended;
            d.account.status_reason = Some(reason.to_string());
            d.record(
                "account.suspended",
                None,
                json!({"status": "active"}),
                json!({"status": "suspended", "reason": reason}),
            );
            Ok(())
        }
        AccountStatus::Suspended => Ok(()),
        AccountStatus::Closed => Err(AccountError::InvalidTransition {
            from: AccountStatus::Closed,
            to: AccountStatus::Suspended,
        }),
    }
}

/// `suspended` -> `active`.
pub fn resume(d: &mut Draft, reason: &str) -> Result<(), AccountError> {
    if d.account.closing.is_some() {
        return Err(AccountError::InvalidTransition {
            from: AccountStatus::Closed,
            to: AccountStatus::Active,
        });
    }
    match d.account.status {
        AccountStatus::Suspended => {
            d.account.status = AccountStatus::Active;
            d.account.status_reason = None;
            d.record(
                "account.resumed",
                None,
                json!({"status": "suspended"}),
                json!({"status": "active", "reason": reason}),
            );
            Ok(())
        }
        from => Err(AccountError::InvalidTransition {
            from,
            to: AccountStatus::Active,
        }),
    }
}

/// Revokes every live token family and grant (closing, closed).
pub fn revoke_everything(d: &mut Draft, reason: &str) {
    let live: Vec<usize> = (0..d.account.families.len())
        .filter(|&i| d.account.families[i].revoked_at.is_none())
        .collect();
    for i in live {
        revoke_family(d, i, reason);
    }
    let now = d.now();
    let mut revoked = Vec::new();
    for g in d
        .account
        .grants
        .iter_mut()
        .filter(|g| g.revoked_at.is_none())
    {
        g.revoked_at = Some(now);
        revoked.push(g.id.clone());
    }
    if !revoked.is_empty() {
        d.record(
            "grant.revoked",
            None,
            Value::Null,
            json!({"grant_ids": revoked, "reason": reason}),
        );
    }
}

/// Any status -> `closed`, revoking every grant and token. Closing a closed account changes
/// nothing. Resources are released by the caller before this step (see the close flow).
pub fn close(d: &mut Draft, reason: &str) -> Result<(), AccountError> {
    if d.account.status == AccountStatus::Closed {
        return Ok(());
    }
    let live: Vec<usize> = (0..d.account.families.len())
        .filter(|&i| d.account.families[i].revoked_at.is_none())
        .collect();
    for i in live {
        revoke_family(d, i, "account_closed");
    }
    let now = d.now();
    let mut revoked = Vec::new();
    for g in d
        .account
        .grants
        .iter_mut()
        .filter(|g| g.revoked_at.is_none())
    {
        g.revoked_at = Some(now);
        revoked.push(g.id.clone());
    }
    if !revoked.is_empty() {
        d.record(
            "grant.revoked",
            None,
            Value::Null,
            json!({"grant_ids": revoked, "reason": "account_closed"}),
        );
    }
    let before = d.account.status;
    d.account.status = AccountStatus::Closed;
    d.account.status_reason = Some(reason.to_string());
    d.record(
        "account.closed",
        None,
        json!({"status": before.as_str()}),
        json!({"status": "closed", "reason": reason}),
    );
    Ok(())
}

/// The orchestrator account behind the code or refresh token presented (a rotated-out refresh
/// token counts), so that token records name who asked. `None` when the token is unknown.
pub fn token_requester(
    a: &Account,
    code_hash: Option<&str>,
    refresh_hash: Option<&str>,
) -> Option<String> {
    let grant_id = match (code_hash, refresh_hash) {
        (Some(h), _) => a
            .codes
            .iter()
            .find(|c| same_hash(&c.hash, h))
            .map(|c| &c.grant_id),
        (None, Some(h)) => a
            .families
            .iter()
            .find(|f| {
                same_hash(&f.refresh_hash, h) || f.retired_refresh.iter().any(|r| same_hash(r, h))
            })
            .map(|f| &f.grant_id),
        (None, None) => None,
    }?;
    a.grants
        .iter()
        .find(|g| &g.id == grant_id)
        .map(|g| g.orchestrator.account.clone())
}

/// Convenience for callers outside a draft: the actor of orchestrator calls.
pub fn orchestrator_actor(account: &str) -> Actor {
    Actor::new(ActorKind::Orchestrator, Some(account))
}

/// The account the other modules' unit tests start from: `acct_aaaaaaaaaaaaaaaa`, owned by
/// dev@example.com, granted to orchestrator `acct_s` with `resources:write` and code `c`.
#[cfg(test)]
pub(crate) fn test_new_account() -> NewAccount {
    NewAccount {
        id: "acct_aaaaaaaaaaaaaaaa".into(),
        email: "dev@example.com".into(),
        name: None,
        orchestrator: crate::account_request::Orchestrator {
            kind: "stripe".into(),
            organisation: None,
            account: "acct_s".into(),
        },
        tos_version: "v1".into(),
        scopes: vec!["resources:write".into()],
        request_id: "r1".into(),
        grant_id: "g1".into(),
        code: NewCode {
            hash: crate::tokens::hash("c"),
            code_challenge: None,
        },
        spending_cap: crate::ledger::DEFAULT_CAP,
        currency: None,
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod wire_tests {
    use super::*;

    #[test]
    fn a_new_account_without_a_currency_counts_in_usd() {
        // The shape directory objects sent before the cap took the catalog's currency.
        let mut v = serde_json::to_value(test_new_account()).unwrap();
        v.as_object_mut().unwrap().remove("currency");
        let old: NewAccount = serde_json::from_value(v).unwrap();
        assert_eq!(old.currency, None);
        let ctx = Ctx {
            now: 1_800_000_000,
            actor: Actor::new(ActorKind::Orchestrator, Some("acct_s")),
            request_id: None,
            policy: Policy::default(),
        };
        assert_eq!(create(old, &ctx).account.ledger.currency, "usd");
        let eur = NewAccount {
            currency: Some("eur".into()),
            ..test_new_account()
        };
        assert_eq!(create(eur, &ctx).account.ledger.currency, "eur");
    }

    #[test]
    fn every_error_survives_the_trip_between_objects() {
        let errors = [
            AccountError::NotFound,
            AccountError::Inactive {
                status: AccountStatus::Suspended,
            },
            AccountError::InvalidGrant { reason: "r".into() },
            AccountError::InvalidClient { reason: "r".into() },
            AccountError::InvalidToken,
            AccountError::InvalidTransition {
                from: AccountStatus::Closed,
                to: AccountStatus::Active,
            },
            AccountError::Consent(ConsentError::AlreadyAnswered { approved: true }),
            AccountError::Consent(ConsentError::BadNonce),
            AccountError::Unavailable,
        ];
        for e in errors {
            let text = serde_json::to_string(&e).unwrap();
            assert_eq!(
                serde_json::from_str::<AccountError>(&text).unwrap(),
                e,
                "{text}"
            );
        }
    }
}
