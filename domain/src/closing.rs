//! Closing an account (operator API, our extension): everything it holds is released through
//! its backends, then the account ends `closed` with its audit trail kept.
//!
//! Invariants:
//! - The moment closing starts, every token and grant is revoked: nothing acts for the account
//!   any more, on any endpoint.
//! - Release is resumable: each step removes what can be removed now (deployables before the
//!   plan, resources with work in flight after their work ends), and is repeated by the next
//!   request or by the account's alarm until nothing is left; then the account is `closed`.
//! - A subscription a plan change replaced but could not cancel (kept on the billing state)
//!   is cancelled too: the account is not `closed` while one is left.
//! - Closing a closed account changes nothing.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::account::{self, AccountStatus, Draft};
use crate::audit_action::AuditAction;
use crate::catalog::{Catalog, ServiceKind};
use crate::resources::error::ResourceError;
use crate::resources::jobs::cancel::{hasten_stale, stale_resources};
use crate::resources::lookup::{find, live};
use crate::resources::model::ResourceStatus;
use crate::resources::remove::{mark_removed, remove};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Progress {
    Closed,
    /// Resources whose release is in progress (their jobs need driving).
    Releasing {
        resources: Vec<String>,
    },
}

/// Starts closing (idempotent). Tokens and grants are revoked now.
pub fn begin(d: &mut Draft, reason: &str) {
    if d.account.status == AccountStatus::Closed || d.account.closing.is_some() {
        return;
    }
    let before = d.account.status;
    d.account.closing = Some(reason.to_string());
    d.record(
        AuditAction::AccountClosing,
        None,
        json!({"status": before.as_str()}),
        json!({"status": "closing", "reason": reason}),
    );
    account::revoke_everything(d, "account_closing");
    // Replaced subscriptions still to cancel are tried at once, not after their backoff.
    hasten_stale(d, None);
}

/// Releases what can be released now; closes the account when nothing is left.
pub fn step(d: &mut Draft, catalog: &Catalog) -> Result<Progress, ResourceError> {
    if d.account.status == AccountStatus::Closed {
        return Ok(Progress::Closed);
    }
    let Some(reason) = d.account.closing.clone() else {
        return Ok(Progress::Closed);
    };
    // (id, busy) of what the account still holds of a kind; read again after each pass,
    // since removing changes it.
    let live = |kind: ServiceKind, d: &Draft| -> Vec<(String, bool)> {
        d.account
            .resources
            .iter()
            .filter(|r| r.kind == kind && live(r))
            .map(|r| (r.id.clone(), r.job.is_some()))
            .collect()
    };
    let mut releasing = Vec::new();
    for kind in [ServiceKind::Deployable, ServiceKind::Plan] {
        if kind == ServiceKind::Plan && !live(ServiceKind::Deployable, d).is_empty() {
            break; // the plan goes last
        }
        let items = live(kind, d);
        for (id, busy) in items {
            if busy {
                releasing.push(id);
                continue;
            }
            let errored = find(&d.account, &id).is_ok_and(|r| r.status == ResourceStatus::Errored);
            if errored {
                mark_removed(d, &id);
                continue;
            }
            if !remove(d, &id, catalog)? {
                releasing.push(id);
            }
        }
    }
    // A replaced subscription still billing keeps the account open until it is cancelled
    // (driven like a job, through its plan resource).
    for id in stale_resources(&d.account) {
        if !releasing.contains(&id) {
            releasing.push(id);
        }
    }
    let left = !live(ServiceKind::Deployable, d).is_empty()
        || !live(ServiceKind::Plan, d).is_empty()
        || !d.account.billing.cancelling.is_empty();
    if left {
        return Ok(Progress::Releasing {
            resources: releasing,
        });
    }
    d.account.closing = None;
    account::close(d, &reason).map_err(ResourceError::from)?;
    Ok(Progress::Closed)
}

/// A short summary for the operator.
pub fn describe(p: &Progress) -> Value {
    serde_json::to_value(p).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{apply, authenticate, create, exchange_code, Ctx, NewFamily, Policy};
    use crate::audit::{verify_chain, Actor, ActorKind, AuditRecord};
    use crate::catalog::DEFAULT_CATALOG;
    use crate::resources;
    use crate::resources::{
        apply_outcome, next_action, parse_create, Action, ActionResult, Candidate, ConfirmRequest,
        CreateCall, NewIds, Settings,
    };
    use crate::tokens::hash;

    const T0: i64 = 1_800_000_000;

    fn ctx() -> Ctx {
        Ctx {
            now: T0,
            actor: Actor::new(ActorKind::Operator, None),
            request_id: None,
            policy: Policy::default(),
        }
    }

    fn run<T>(
        a: &mut account::Account,
        log: &mut Vec<AuditRecord>,
        op: impl FnOnce(&mut Draft) -> Result<T, ResourceError>,
    ) -> Result<T, ResourceError> {
        let applied = apply(a, &ctx(), op);
        *a = applied.account;
        log.extend(applied.records);
        applied.result
    }

    #[test]
    fn close_releases_everything_then_closes() {
        let catalog = Catalog::parse(DEFAULT_CATALOG).unwrap();
        let new = crate::account::test_new_account();
        let created = create(new, &ctx());
        let (mut a, mut log) = (created.account, created.records);
        let fam = NewFamily {
            id: "f1".into(),
            access_hash: hash("at"),
            refresh_hash: hash("rt"),
        };
        run(&mut a, &mut log, |d| {
            exchange_code(d, &hash("c"), None, true, fam).map_err(ResourceError::from)
        })
        .unwrap();
        let mk = |a: &mut account::Account,
                  log: &mut Vec<AuditRecord>,
                  body: serde_json::Value,
                  n: u32,
                  cands: Option<Vec<Candidate>>| {
            let req = parse_create(
                body.to_string().as_bytes(),
                &catalog,
                CreateCall::Create,
                None,
            )
            .unwrap();
            let ids = NewIds {
                resource_id: format!("res_{n}"),
                charge_id: format!("ch_{n}"),
                token_hash: Some(hash(&format!("k{n}"))),
                token_sealed: None,
            };
            run(a, log, |d| resources::create(d, &req, &catalog, ids, cands)).unwrap()
        };
        mk(
            &mut a,
            &mut log,
            json!({"service_id": "free", "project_id": "p"}),
            1,
            None,
        );
        mk(
            &mut a,
            &mut log,
            json!({"service_id": "api_token", "project_id": "p"}),
            2,
            None,
        );
        let dom = mk(
            &mut a,
            &mut log,
            json!({"service_id": "domain", "project_id": "p", "configuration": {"domain_query": "acme"},
                                             "payment_credentials": {"type": "stripe_payment_token", "stripe_payment_token": "spt_1"}}),
            3,
            Some(vec![Candidate {
                domain: "acme.z.dev".into(),
                amount: 1200,
                currency: "usd".into(),
                available: true,
            }]),
        );
        let settings = Settings::default();
        run(&mut a, &mut log, |d| {
            resources::confirm_domain(
                d,
                &dom,
                &ConfirmRequest {
                    domain: "acme.z.dev".into(),
                    amount: 1200,
                    payment_token: None,
                },
                "ch_d",
            )
        })
        .unwrap();
        for outcome in [
            ActionResult::Token {
                token: crate::stripe_api::GrantedToken {
                    id: "spt_1".into(),
                    currency: "usd".into(),
                    max_amount: 5000,
                    expires_at: None,
                    amount_captured: 0,
                    deactivated: false,
                },
            },
            ActionResult::Claimed { expires_at: T0 },
            ActionResult::PaymentIntent {
                id: "pi_1".into(),
                payment_method: None,
            },
            ActionResult::Claimed { expires_at: T0 },
        ] {
            run(&mut a, &mut log, |d| {
                apply_outcome(d, &dom, outcome, &settings)
            })
            .unwrap();
        }
        assert!(authenticate(&a, &hash("at"), T0).is_ok());

        run(&mut a, &mut log, |d| {
            begin(d, "owner asked");
            Ok(())
        })
        .unwrap();
        assert_eq!(
            authenticate(&a, &hash("at"), T0),
            Err(crate::account::AccountError::Inactive {
                status: AccountStatus::Closed
            }),
            "tokens stop at once"
        );
        let n = log.len();
        run(&mut a, &mut log, |d| {
            begin(d, "again");
            Ok(())
        })
        .unwrap();
        assert_eq!(log.len(), n, "beginning twice records nothing");

        // First step: the token goes at once, the domain starts its release, the plan waits.
        let p = run(&mut a, &mut log, |d| step(d, &catalog)).unwrap();
        assert_eq!(
            p,
            Progress::Releasing {
                resources: vec![dom.clone()]
            }
        );
        assert_eq!(
            resources::find(&a, "res_2").unwrap().status,
            resources::ResourceStatus::Removed
        );
        assert!(matches!(
            next_action(&a, &dom, T0),
            Some(Action::ReleaseDomain { .. })
        ));
        run(&mut a, &mut log, |d| {
            apply_outcome(d, &dom, ActionResult::Released, &settings)
        })
        .unwrap();
        // Second step: nothing but the plan left; it goes and the account closes.
        assert_eq!(
            run(&mut a, &mut log, |d| step(d, &catalog)).unwrap(),
            Progress::Closed
        );
        assert_eq!(a.status, AccountStatus::Closed);
        assert!(a
            .resources
            .iter()
            .all(|r| r.status == resources::ResourceStatus::Removed));
        assert!(a.families.iter().all(|f| f.revoked_at.is_some()));
        assert_eq!(
            run(&mut a, &mut log, |d| step(d, &catalog)).unwrap(),
            Progress::Closed
        );
        assert_eq!(verify_chain(&log), Ok(()));
        let actions: Vec<&str> = log.iter().map(|r| r.action.as_str()).collect();
        assert!(
            actions.ends_with(&["resource.removed", "account.closed"]),
            "{actions:?}"
        );
    }
}
