use serde_json::json;

use super::kernel::RETENTION;
use super::*;
use crate::account_request::Orchestrator;
use crate::audit::{verify_chain, Actor, ActorKind, AuditRecord};
use crate::pkce;
use crate::tokens::hash;

const T0: i64 = 1_800_000_000;
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn orch(account: &str) -> Orchestrator {
    Orchestrator {
        kind: "stripe".into(),
        organisation: Some("org_1".into()),
        account: account.into(),
    }
}

fn ctx(now: i64, kind: ActorKind) -> Ctx {
    Ctx {
        now,
        actor: Actor::new(kind, Some("acct_stripe_1")),
        request_id: Some("req_test".into()),
        policy: Policy::default(),
    }
}

/// Keeps the account and every record, like the Durable Object does.
struct World {
    account: Account,
    log: Vec<AuditRecord>,
}

impl World {
    fn new(challenge: Option<&str>) -> World {
        let new = NewAccount {
            id: "acct_aaaaaaaaaaaaaaaa".into(),
            email: "dev@example.com".into(),
            name: Some("Dev".into()),
            orchestrator: orch("acct_stripe_1"),
            tos_version: "2026-11-01".into(),
            terms_accepted_at: None,
            scopes: vec!["resources:read".into(), "resources:write".into()],
            request_id: "acctreq_1".into(),
            grant_id: "grant_1".into(),
            code: NewCode {
                hash: hash("code-1"),
                code_challenge: challenge.map(str::to_string),
            },
            spending_cap: crate::ledger::DEFAULT_CAP,
            currency: None,
        };
        let applied = create(new, &ctx(T0, ActorKind::Orchestrator));
        assert!(applied.result.is_ok());
        World {
            account: applied.account,
            log: applied.records,
        }
    }

    fn run<T>(
        &mut self,
        now: i64,
        kind: ActorKind,
        op: impl FnOnce(&mut Draft) -> Result<T, AccountError>,
    ) -> Result<T, AccountError> {
        let applied = apply(&self.account, &ctx(now, kind), op);
        self.account = applied.account;
        self.log.extend(applied.records);
        applied.result
    }

    fn actions(&self) -> Vec<&str> {
        self.log.iter().map(|r| r.action.as_str()).collect()
    }

    fn exchange(
        &mut self,
        now: i64,
        code: &str,
        verifier: Option<&str>,
        signed: bool,
        n: u32,
    ) -> Result<Issued, AccountError> {
        let fam = NewFamily {
            id: format!("fam_{n}"),
            access_hash: hash(&format!("at-{n}")),
            refresh_hash: hash(&format!("rt-{n}")),
        };
        self.run(now, ActorKind::Orchestrator, |d| {
            exchange_code(d, &hash(code), verifier, signed, fam)
        })
    }

    fn refresh(
        &mut self,
        now: i64,
        old: &str,
        n: u32,
        signed: bool,
    ) -> Result<Issued, AccountError> {
        self.run(now, ActorKind::Orchestrator, |d| {
            refresh(
                d,
                &hash(old),
                signed,
                hash(&format!("at-{n}")),
                hash(&format!("rt-{n}")),
            )
        })
    }
}

#[test]
fn creation_records_the_account_grant_and_code() {
    let w = World::new(None);
    assert_eq!(w.account.status, AccountStatus::Active);
    assert_eq!(w.account.tos_version, "2026-11-01");
    assert_eq!(
        w.actions(),
        ["account.created", "grant.created", "code.issued"]
    );
    assert_eq!(w.log[0].consent.as_deref(), Some("tos:2026-11-01"));
    assert_eq!(w.log[0].on_behalf_of.as_deref(), Some("dev@example.com"));
    assert_eq!(w.log[0].actor_id.as_deref(), Some("acct_stripe_1"));
    assert_eq!(verify_chain(&w.log), Ok(()));
    assert_eq!(
        code_status(&w.account, &hash("code-1"), T0),
        CodeStatus::Unused
    );
    assert_eq!(
        code_status(&w.account, &hash("code-1"), T0 + 300),
        CodeStatus::Expired
    );
    assert_eq!(
        code_status(&w.account, &hash("nope"), T0),
        CodeStatus::Unknown
    );
    // No secret in the state: only hashes.
    let text = serde_json::to_string(&w.account).unwrap();
    assert!(!text.contains("code-1"));
}

#[test]
fn signed_exchange_then_refresh_rotation() {
    let mut w = World::new(None);
    let issued = w.exchange(T0 + 10, "code-1", None, true, 1).unwrap();
    assert_eq!(issued.expires_in, 3600);
    assert_eq!(issued.scopes, ["resources:read", "resources:write"]);
    assert_eq!(
        code_status(&w.account, &hash("code-1"), T0 + 10),
        CodeStatus::Used
    );
    let access = authenticate(&w.account, &hash("at-1"), T0 + 20).unwrap();
    assert_eq!(access.family_id, "fam_1");

    w.refresh(T0 + 100, "rt-1", 2, true).unwrap();
    // The old pair is dead at once; the new one works.
    assert_eq!(
        authenticate(&w.account, &hash("at-1"), T0 + 101),
        Err(AccountError::InvalidToken)
    );
    assert!(authenticate(&w.account, &hash("at-2"), T0 + 101).is_ok());
    // A refresh without the signature is refused for a confidential family (and changes nothing).
    assert!(matches!(
        w.refresh(T0 + 102, "rt-2", 3, false),
        Err(AccountError::InvalidClient { .. })
    ));
    assert!(authenticate(&w.account, &hash("at-2"), T0 + 103).is_ok());
    assert_eq!(verify_chain(&w.log), Ok(()));
}

#[test]
fn token_calls_name_the_orchestrator_of_their_grant() {
    let mut w = World::new(None);
    let who = |w: &World, code: Option<&str>, refresh: Option<&str>| {
        token_requester(
            &w.account,
            code.map(hash).as_deref(),
            refresh.map(hash).as_deref(),
        )
    };
    assert_eq!(
        who(&w, Some("code-1"), None).as_deref(),
        Some("acct_stripe_1")
    );
    assert_eq!(who(&w, Some("code-x"), None), None);
    w.exchange(T0 + 10, "code-1", None, true, 1).unwrap();
    assert_eq!(
        who(&w, None, Some("rt-1")).as_deref(),
        Some("acct_stripe_1")
    );
    w.refresh(T0 + 100, "rt-1", 2, true).unwrap();
    // The rotated-out token still names its grant (its reuse is recorded against it).
    assert_eq!(
        who(&w, None, Some("rt-1")).as_deref(),
        Some("acct_stripe_1")
    );
    assert_eq!(
        who(&w, None, Some("rt-2")).as_deref(),
        Some("acct_stripe_1")
    );
    assert_eq!(who(&w, None, Some("rt-x")), None);
    assert_eq!(who(&w, None, None), None);
}

#[test]
fn access_tokens_expire() {
    let mut w = World::new(None);
    w.exchange(T0, "code-1", None, true, 1).unwrap();
    assert!(authenticate(&w.account, &hash("at-1"), T0 + 3599).is_ok());
    assert_eq!(
        authenticate(&w.account, &hash("at-1"), T0 + 3600),
        Err(AccountError::InvalidToken)
    );
    assert_eq!(
        introspect(&w.account, &hash("at-1"), T0 + 3600)["active"],
        false
    );
    assert_eq!(
        introspect(&w.account, &hash("rt-1"), T0 + 3600)["active"],
        true
    );
}

#[test]
fn refresh_by_possession_only_when_the_policy_allows_it() {
    let mut w = World::new(None);
    w.exchange(T0 + 10, "code-1", None, true, 1).unwrap();
    // The strict default refuses, and says what to do.
    match w.refresh(T0 + 20, "rt-1", 2, false) {
        Err(AccountError::InvalidClient { reason }) => {
            assert!(reason.contains("Stripe-Signature"), "{reason}");
            assert!(reason.contains("REFRESH_REQUIRES_SIGNATURE"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let lenient = Ctx {
        policy: Policy {
            refresh_requires_signature: false,
            ..Policy::default()
        },
        ..ctx(T0 + 30, ActorKind::Orchestrator)
    };
    let applied = apply(&w.account, &lenient, |d| {
        refresh(d, &hash("rt-1"), false, hash("at-2"), hash("rt-2"))
    });
    assert!(applied.result.is_ok());
    assert!(authenticate(&applied.account, &hash("at-2"), T0 + 31).is_ok());
    assert_eq!(
        authenticate(&applied.account, &hash("at-1"), T0 + 31),
        Err(AccountError::InvalidToken)
    );
}

#[test]
fn reused_refresh_token_revokes_the_family() {
    let mut w = World::new(None);
    w.exchange(T0, "code-1", None, true, 1).unwrap();
    w.refresh(T0 + 1, "rt-1", 2, true).unwrap();
    let err = w.refresh(T0 + 2, "rt-1", 3, true).unwrap_err();
    assert!(matches!(err, AccountError::InvalidGrant { .. }));
    // The legitimate current pair is revoked too: the family is compromised.
    assert_eq!(
        authenticate(&w.account, &hash("at-2"), T0 + 3),
        Err(AccountError::InvalidToken)
    );
    assert!(w.refresh(T0 + 3, "rt-2", 4, true).is_err());
    assert!(w.actions().contains(&"token.refresh_reused"));
    assert_eq!(verify_chain(&w.log), Ok(()));
}

#[test]
fn code_reuse_fails_and_revokes_what_the_first_use_issued() {
    let mut w = World::new(None);
    w.exchange(T0, "code-1", None, true, 1).unwrap();
    let err = w.exchange(T0 + 1, "code-1", None, true, 2).unwrap_err();
    assert_eq!(
        err,
        AccountError::InvalidGrant {
            reason: "the authorization code was already used".into()
        }
    );
    assert_eq!(
        authenticate(&w.account, &hash("at-1"), T0 + 2),
        Err(AccountError::InvalidToken)
    );
    assert!(authenticate(&w.account, &hash("at-2"), T0 + 2).is_err());
    let actions = w.actions();
    assert!(
        actions.ends_with(&["code.reused", "token.revoked"]),
        "{actions:?}"
    );
}

#[test]
fn expired_and_unknown_codes() {
    let mut w = World::new(None);
    assert!(matches!(
        w.exchange(T0 + 300, "code-1", None, true, 1),
        Err(AccountError::InvalidGrant { .. })
    ));
    assert!(matches!(
        w.exchange(T0, "code-2", None, true, 1),
        Err(AccountError::InvalidGrant { .. })
    ));
    // Failures without a security reaction record nothing and change nothing.
    assert_eq!(w.log.len(), 3);
    assert_eq!(
        code_status(&w.account, &hash("code-1"), T0),
        CodeStatus::Unused
    );
}

#[test]
fn pkce_rules() {
    let challenge = pkce::challenge_for(VERIFIER);
    let mut w = World::new(Some(&challenge));
    assert!(matches!(
        w.exchange(T0, "code-1", None, true, 1),
        Err(AccountError::InvalidGrant { .. })
    ));
    let wrong = "x".repeat(43);
    assert!(matches!(
        w.exchange(T0, "code-1", Some(&wrong), false, 1),
        Err(AccountError::InvalidGrant { .. })
    ));
    // A public client (no signature) with the right verifier succeeds, and its refreshes need
    // no signature.
    w.exchange(T0, "code-1", Some(VERIFIER), false, 1).unwrap();
    w.refresh(T0 + 5, "rt-1", 2, false).unwrap();

    let mut w = World::new(None);
    assert!(matches!(
        w.exchange(T0, "code-1", Some(VERIFIER), true, 1),
        Err(AccountError::InvalidGrant { .. })
    ));
    // Without a challenge, an unsigned exchange is not authenticated at all.
    assert!(matches!(
        w.exchange(T0, "code-1", None, false, 1),
        Err(AccountError::InvalidClient { .. })
    ));
}

#[test]
fn inactive_accounts_refuse_tokens_at_once() {
    let mut w = World::new(None);
    w.exchange(T0, "code-1", None, true, 1).unwrap();
    w.run(T0 + 1, ActorKind::Operator, |d| suspend(d, "fraud review"))
        .unwrap();
    assert_eq!(
        authenticate(&w.account, &hash("at-1"), T0 + 2),
        Err(AccountError::Inactive {
            status: AccountStatus::Suspended
        })
    );
    assert_eq!(
        introspect(&w.account, &hash("at-1"), T0 + 2),
        json!({"active": false})
    );
    assert!(matches!(
        w.refresh(T0 + 2, "rt-1", 2, true),
        Err(AccountError::Inactive { .. })
    ));
    w.run(T0 + 3, ActorKind::Operator, |d| resume(d, "cleared"))
        .unwrap();
    assert!(authenticate(&w.account, &hash("at-1"), T0 + 4).is_ok());
}

#[test]
fn every_forbidden_transition_is_refused_and_changes_nothing() {
    let mut w = World::new(None);
    let before = w.log.len();
    assert_eq!(
        w.run(T0, ActorKind::Operator, |d| resume(d, "x")),
        Err(AccountError::InvalidTransition {
            from: AccountStatus::Active,
            to: AccountStatus::Active
        })
    );
    assert_eq!(w.log.len(), before);
    w.run(T0, ActorKind::Operator, |d| suspend(d, "x")).unwrap();
    // Suspending twice is a no-op, not a second record.
    let n = w.log.len();
    w.run(T0, ActorKind::Operator, |d| suspend(d, "x")).unwrap();
    assert_eq!(w.log.len(), n);
    w.run(T0, ActorKind::Operator, |d| close(d, "owner asked"))
        .unwrap();
    assert_eq!(w.account.status, AccountStatus::Closed);
    for (name, result) in [
        (
            "suspend",
            w.run(T0, ActorKind::Operator, |d| suspend(d, "x")),
        ),
        ("resume", w.run(T0, ActorKind::Operator, |d| resume(d, "x"))),
    ] {
        assert!(
            matches!(
                result,
                Err(AccountError::InvalidTransition {
                    from: AccountStatus::Closed,
                    ..
                })
            ),
            "{name}"
        );
    }
    let n = w.log.len();
    w.run(T0, ActorKind::Operator, |d| close(d, "again"))
        .unwrap();
    assert_eq!(w.log.len(), n, "closing twice records nothing");
    assert!(matches!(
        w.exchange(T0, "code-1", None, true, 1),
        Err(AccountError::Inactive {
            status: AccountStatus::Closed
        })
    ));
    assert_eq!(verify_chain(&w.log), Ok(()));
}

#[test]
fn close_revokes_every_token_and_grant() {
    let mut w = World::new(None);
    w.exchange(T0, "code-1", None, true, 1).unwrap();
    w.run(T0 + 1, ActorKind::Operator, |d| close(d, "done"))
        .unwrap();
    assert!(w.account.families.iter().all(|f| f.revoked_at.is_some()));
    assert!(w.account.grants.iter().all(|g| g.revoked_at.is_some()));
    assert!(w
        .actions()
        .ends_with(&["token.revoked", "grant.revoked", "account.closed"]));
}

#[test]
fn revocation_kills_the_pair_and_ignores_unknown_tokens() {
    let mut w = World::new(None);
    w.exchange(T0, "code-1", None, true, 1).unwrap();
    assert_eq!(
        w.run(T0, ActorKind::Orchestrator, |d| revoke_token(
            d,
            &hash("unknown")
        )),
        Ok(false)
    );
    assert_eq!(
        w.run(T0, ActorKind::Orchestrator, |d| revoke_token(
            d,
            &hash("rt-1")
        )),
        Ok(true)
    );
    assert!(authenticate(&w.account, &hash("at-1"), T0).is_err());
    assert_eq!(
        w.run(T0, ActorKind::Orchestrator, |d| revoke_token(
            d,
            &hash("rt-1")
        )),
        Ok(false)
    );
}

#[test]
fn introspection_shape() {
    let mut w = World::new(None);
    w.exchange(T0, "code-1", None, true, 1).unwrap();
    let v = introspect(&w.account, &hash("at-1"), T0 + 1);
    assert_eq!(v["active"], true);
    assert_eq!(v["token_type"], "access_token");
    assert_eq!(v["scope"], "resources:read resources:write");
    assert_eq!(v["sub"], "acct_aaaaaaaaaaaaaaaa");
    assert_eq!(v["client_id"], "acct_stripe_1");
    assert_eq!(v["exp"], T0 + 3600);
    assert_eq!(
        introspect(&w.account, &hash("zzz"), T0),
        json!({"active": false})
    );
}

fn open(w: &mut World, n: u32, challenge: Option<String>) {
    let o = OpenConsent {
        hash: hash(&format!("consent-{n}")),
        request_id: format!("acctreq_c{n}"),
        orchestrator: orch("acct_stripe_2"),
        scopes: vec!["resources:write".into()],
        code_challenge: challenge,
        request_expires_at: Some(T0 + 7200),
        nonce: format!("nonce-{n}"),
    };
    w.run(T0, ActorKind::Orchestrator, |d| open_consent(d, o))
        .unwrap();
}

#[test]
fn consent_approve_issues_a_grant_and_a_code() {
    let mut w = World::new(None);
    open(&mut w, 1, Some(pkce::challenge_for(VERIFIER)));
    let view = view_consent(&w.account, &hash("consent-1"), T0 + 1).unwrap();
    assert_eq!(view.email, "dev@example.com");
    assert_eq!(view.orchestrator.account, "acct_stripe_2");
    assert_eq!(view.expires_at, T0 + 3600, "capped by the consent lifetime");
    assert!(!view.signed_in);

    // Deciding before signing in is refused.
    let r = w.run(T0 + 2, ActorKind::Owner, |d| {
        decide(
            d,
            &hash("consent-1"),
            &hash("csrf"),
            true,
            "grant_2",
            hash("code-2"),
        )
    });
    assert_eq!(r, Err(AccountError::Consent(ConsentError::NotSignedIn)));
    // A wrong nonce is refused; a wrong owner is refused and recorded, and spends the nonce.
    let r = w.run(T0 + 2, ActorKind::Owner, |d| {
        sign_in(
            d,
            &hash("consent-1"),
            "dev@example.com",
            "bad",
            "n2".into(),
            hash("csrf"),
        )
    });
    assert_eq!(r, Err(AccountError::Consent(ConsentError::BadNonce)));
    let r = w.run(T0 + 2, ActorKind::Owner, |d| {
        sign_in(
            d,
            &hash("consent-1"),
            "eve@example.com",
            "nonce-1",
            "n2".into(),
            hash("csrf"),
        )
    });
    assert_eq!(r, Err(AccountError::Consent(ConsentError::WrongOwner)));
    assert_eq!(w.actions().last(), Some(&"consent.sign_in_refused"));
    let r = w.run(T0 + 2, ActorKind::Owner, |d| {
        sign_in(
            d,
            &hash("consent-1"),
            "dev@example.com",
            "nonce-1",
            "n3".into(),
            hash("csrf"),
        )
    });
    assert_eq!(
        r,
        Err(AccountError::Consent(ConsentError::BadNonce)),
        "the refused sign-in spent the nonce"
    );
    w.run(T0 + 3, ActorKind::Owner, |d| {
        sign_in(
            d,
            &hash("consent-1"),
            "dev@example.com",
            "n2",
            "n3".into(),
            hash("csrf"),
        )
    })
    .unwrap();
    assert_eq!(w.log.last().unwrap().action, "consent.signed_in");
    assert_eq!(
        w.log.last().unwrap().authentication.as_deref(),
        Some("owner_sign_in"),
        "the record says the owner signed in"
    );
    assert!(
        view_consent(&w.account, &hash("consent-1"), T0 + 3)
            .unwrap()
            .signed_in
    );

    let r = w.run(T0 + 4, ActorKind::Owner, |d| {
        decide(
            d,
            &hash("consent-1"),
            &hash("wrong"),
            true,
            "grant_2",
            hash("code-2"),
        )
    });
    assert_eq!(r, Err(AccountError::Consent(ConsentError::BadCsrf)));
    let decision = w
        .run(T0 + 4, ActorKind::Owner, |d| {
            decide(
                d,
                &hash("consent-1"),
                &hash("csrf"),
                true,
                "grant_2",
                hash("code-2"),
            )
        })
        .unwrap();
    assert_eq!(
        decision,
        Decision {
            request_id: "acctreq_c1".into(),
            approved: true
        }
    );
    assert!(w
        .actions()
        .ends_with(&["consent.approved", "grant.created", "code.issued"]));

    // The code carries the consent's PKCE challenge and the new grant's scopes.
    assert!(w.exchange(T0 + 5, "code-2", None, true, 7).is_err());
    let issued = w
        .exchange(T0 + 5, "code-2", Some(VERIFIER), true, 7)
        .unwrap();
    assert_eq!(issued.scopes, ["resources:write"]);
    assert_eq!(
        authenticate(&w.account, &hash("at-7"), T0 + 6)
            .unwrap()
            .orchestrator_account,
        "acct_stripe_2"
    );

    // Replaying the decision changes nothing.
    let r = w.run(T0 + 6, ActorKind::Owner, |d| {
        decide(
            d,
            &hash("consent-1"),
            &hash("csrf"),
            false,
            "grant_3",
            hash("code-3"),
        )
    });
    assert_eq!(
        r,
        Err(AccountError::Consent(ConsentError::AlreadyAnswered {
            approved: true
        }))
    );
    assert_eq!(verify_chain(&w.log), Ok(()));
}

#[test]
fn consent_deny_and_expiry() {
    let mut w = World::new(None);
    open(&mut w, 1, None);
    w.run(T0 + 1, ActorKind::Owner, |d| {
        sign_in(
            d,
            &hash("consent-1"),
            "dev@example.com",
            "nonce-1",
            "n2".into(),
            hash("csrf"),
        )
    })
    .unwrap();
    let decision = w
        .run(T0 + 2, ActorKind::Owner, |d| {
            decide(d, &hash("consent-1"), &hash("csrf"), false, "g", hash("c"))
        })
        .unwrap();
    assert!(!decision.approved);
    assert!(w.account.grants.iter().all(|g| g.id != "g"));
    assert_eq!(
        view_consent(&w.account, &hash("consent-1"), T0 + 3),
        Err(AccountError::Consent(ConsentError::AlreadyAnswered {
            approved: false
        }))
    );

    open(&mut w, 2, None);
    assert_eq!(
        view_consent(&w.account, &hash("consent-2"), T0 + 3600),
        Err(AccountError::Consent(ConsentError::Expired))
    );
    let r = w.run(T0 + 3600, ActorKind::Owner, |d| {
        sign_in(
            d,
            &hash("consent-2"),
            "dev@example.com",
            "nonce-2",
            "x".into(),
            hash("c"),
        )
    });
    assert_eq!(r, Err(AccountError::Consent(ConsentError::Expired)));
    assert_eq!(
        view_consent(&w.account, &hash("consent-9"), T0),
        Err(AccountError::Consent(ConsentError::Unknown))
    );
}

#[test]
fn opening_the_same_consent_twice_is_idempotent() {
    let mut w = World::new(None);
    open(&mut w, 1, None);
    let n = w.log.len();
    open(&mut w, 1, None);
    assert_eq!(w.log.len(), n);
    assert_eq!(w.account.consents.len(), 1);
}

#[test]
fn live_families_are_bounded() {
    let mut w = World::new(None);
    w.exchange(T0, "code-1", None, true, 0).unwrap();
    for n in 1..=MAX_LIVE_FAMILIES as u32 {
        // Each consent approval yields a code; exchanging it makes a family.
        open(&mut w, n, None);
        let c = hash(&format!("consent-{n}"));
        w.run(T0, ActorKind::Owner, |d| {
            sign_in(
                d,
                &c,
                "dev@example.com",
                &format!("nonce-{n}"),
                "x".into(),
                hash("csrf"),
            )
        })
        .unwrap();
        let code = format!("code-c{n}");
        w.run(T0, ActorKind::Owner, |d| {
            decide(d, &c, &hash("csrf"), true, &format!("g{n}"), hash(&code))
        })
        .unwrap();
        w.exchange(T0, &code, None, true, n).unwrap();
    }
    let live = w
        .account
        .families
        .iter()
        .filter(|f| f.revoked_at.is_none())
        .count();
    assert_eq!(live, MAX_LIVE_FAMILIES);
    assert!(
        authenticate(&w.account, &hash("at-0"), T0).is_err(),
        "the oldest made room"
    );
}

#[test]
fn old_entries_are_pruned_after_retention() {
    let mut w = World::new(None);
    w.exchange(T0, "code-1", None, true, 1).unwrap();
    w.run(T0 + 1, ActorKind::Orchestrator, |d| {
        revoke_token(d, &hash("at-1"))
    })
    .unwrap();
    open(&mut w, 1, None);
    let later = T0 + RETENTION + 4000;
    w.run(later, ActorKind::Operator, |d| suspend(d, "x"))
        .unwrap();
    assert!(w.account.codes.is_empty());
    assert!(w.account.families.is_empty());
    assert!(w.account.consents.is_empty());
}

// Moved from account.rs's wire_tests.

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

#[test]
fn terms_accepted_at_is_recorded_on_the_account_and_in_its_creation_record() {
    let ctx = ctx(T0, ActorKind::Orchestrator);
    let with_terms = NewAccount {
        terms_accepted_at: Some(1_795_860_000),
        ..test_new_account()
    };
    let applied = create(with_terms, &ctx);
    assert_eq!(applied.account.terms_accepted_at, Some(1_795_860_000));
    assert_eq!(
        applied.records[0].after["terms_accepted_at"],
        "2026-11-28T10:00:00Z"
    );
    assert_eq!(applied.records[0].after["tos_version"], "v1");
    // Not sent: neither the account's JSON nor the record mention it (their old shape).
    let applied = create(test_new_account(), &ctx);
    assert_eq!(applied.account.terms_accepted_at, None);
    assert!(applied.records[0].after.get("terms_accepted_at").is_none());
    let stored = serde_json::to_value(&applied.account).unwrap();
    assert!(stored.get("terms_accepted_at").is_none());
}

#[test]
fn accounts_and_new_accounts_stored_before_terms_accepted_at_still_read() {
    let mut account =
        serde_json::to_value(create(test_new_account(), &ctx(T0, ActorKind::Orchestrator)).account)
            .unwrap();
    account.as_object_mut().unwrap().remove("terms_accepted_at");
    let old: Account = serde_json::from_value(account).unwrap();
    assert_eq!(old.terms_accepted_at, None);
    let mut new = serde_json::to_value(test_new_account()).unwrap();
    new.as_object_mut().unwrap().remove("terms_accepted_at");
    let old: NewAccount = serde_json::from_value(new).unwrap();
    assert_eq!(old.terms_accepted_at, None);
}

#[test]
fn a_consent_of_a_request_without_expiry_lasts_the_consent_ttl() {
    let mut w = World::new(None);
    let o = |n: u32, request_expires_at| OpenConsent {
        hash: hash(&format!("consent-{n}")),
        request_id: format!("acctreq_c{n}"),
        orchestrator: orch("acct_stripe_2"),
        scopes: vec!["resources:write".into()],
        code_challenge: None,
        request_expires_at,
        nonce: format!("nonce-{n}"),
    };
    let ttl = Policy::default().consent_ttl;
    let open = w.run(T0, ActorKind::Orchestrator, |d| open_consent(d, o(1, None)));
    assert_eq!(open, Ok(T0 + ttl));
    let sooner = w.run(T0, ActorKind::Orchestrator, |d| {
        open_consent(d, o(2, Some(T0 + 60)))
    });
    assert_eq!(sooner, Ok(T0 + 60));
    // The message's shape before request_expires_at was optional still reads; without the
    // field it is a request without expiry.
    let mut v = serde_json::to_value(o(3, Some(T0 + 60))).unwrap();
    assert_eq!(v["request_expires_at"], T0 + 60);
    v.as_object_mut().unwrap().remove("request_expires_at");
    let old: OpenConsent = serde_json::from_value(v).unwrap();
    assert_eq!(old.request_expires_at, None);
}
