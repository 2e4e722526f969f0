//! The transaction kernel: [`apply`] runs an operation on a [`Draft`] copy of the account and
//! returns what to store as [`Applied`].
//!
//! Invariants:
//! - [`apply`] never mutates its input. On `Err` the draft is discarded unless the operation
//!   called [`Draft::keep_on_error`] (security reactions that must persist).
//! - Records are sealed into the account's audit chain as they are made, so the chain head in
//!   the stored account always matches the last record.
//! - Pruning runs only when the operation recorded something: a read never changes state.

use serde_json::Value;

use super::error::AccountError;
use super::model::{Account, Policy};
use crate::audit::{self, Actor, ActorKind, AuditRecord, Authentication, Entry};
use crate::audit_action::AuditAction;

/// How long used or expired codes, dead families and answered consents are kept for reuse
/// detection before they are pruned (the audit trail keeps the history).
pub(super) const RETENTION: i64 = 7 * 86_400;

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
        action: AuditAction,
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

/// Convenience for callers outside a draft: the actor of orchestrator calls.
pub fn orchestrator_actor(account: &str) -> Actor {
    Actor::new(ActorKind::Orchestrator, Some(account))
}
