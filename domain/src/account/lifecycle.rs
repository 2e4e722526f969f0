//! The account's life: creation from an account request, suspension, resumption and closing.
//!
//! Invariants:
//! - `active` <-> `suspended`; any status -> `closed`, which is final. While `closing` is set
//!   the account can only go on to `closed`.
//! - Closing revokes every grant and token family before the status changes.

use crate::audit_action::AuditAction;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::AccountError;
use super::grants::{add_code, add_grant, revoke_everything, NewCode};
use super::kernel::{apply, Applied, Ctx, Draft};
use super::model::{Account, AccountStatus, Billing, Owner};
use crate::account_request::Orchestrator;
use crate::audit::ChainHead;

/// Everything needed to create an account from an account request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAccount {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub orchestrator: Orchestrator,
    pub tos_version: String,
    /// When the human accepted the terms (the account request's `terms_accepted_at`).
    #[serde(default)]
    pub terms_accepted_at: Option<i64>,
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
        terms_accepted_at: new.terms_accepted_at,
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
        let mut after = json!({"status": "active", "email": new.email, "name": new.name,
               "orchestrator": new.orchestrator, "tos_version": new.tos_version,
               "scopes": new.scopes});
        // Only when the orchestrator said: records of accounts without it keep their shape.
        if let Some(t) = new.terms_accepted_at {
            after["terms_accepted_at"] = crate::time::format_rfc3339(t).into();
        }
        d.record(
            AuditAction::AccountCreated,
            Some(tos.clone()),
            Value::Null,
            after,
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
                AuditAction::AccountSuspended,
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
                AuditAction::AccountResumed,
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

/// Any status -> `closed`, revoking every grant and token. Closing a closed account changes
/// nothing. Resources are released by the caller before this step (see the close flow).
pub fn close(d: &mut Draft, reason: &str) -> Result<(), AccountError> {
    if d.account.status == AccountStatus::Closed {
        return Ok(());
    }
    revoke_everything(d, "account_closed");
    let before = d.account.status;
    d.account.status = AccountStatus::Closed;
    d.account.status_reason = Some(reason.to_string());
    d.record(
        AuditAction::AccountClosed,
        None,
        json!({"status": before.as_str()}),
        json!({"status": "closed", "reason": reason}),
    );
    Ok(())
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
        terms_accepted_at: None,
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
