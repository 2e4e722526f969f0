use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;
use crate::account::{self, apply, Access, Account, AccountError, Ctx, Draft, Policy};
use crate::audit::{verify_chain, Actor, ActorKind, AuditRecord};
use crate::catalog::{Catalog, Registrar, DEFAULT_CATALOG};
use crate::ledger::ChargeStatus;
use crate::sealing::KeyRing;
use crate::stripe_api::{GrantedToken, PaymentError};
use crate::tokens::{self, hash, TokenKind};

const T0: i64 = 1_800_000_000;
/// The key tagging tokens in these tests (`TOKEN_MAC_KEY`).
const MAC_KEY: &[u8] = b"test token mac key";

fn catalog() -> Catalog {
    let mut v: Value = serde_json::from_str(DEFAULT_CATALOG).unwrap();
    let services = v["services"].as_array_mut().unwrap();
    services.push(json!({
        "id": "database", "description": "Managed Postgres", "categories": ["database"],
        "kind": "deployable", "pricing": {"type": "free"}, "allowed_updates": [],
        "configuration_schema": {"type": "object", "properties": {"fail": {"type": "string"}}, "additionalProperties": false},
        "provider": {"type": "operator_backend", "url": "https://platform.test/operator/v1/resources"}
    }));
    services.push(json!({
        "id": "domain_upstream", "description": "Domains from the upstream registrar", "categories": ["domains"],
        "kind": "deployable", "pricing": {"type": "paid", "paid": {"type": "freeform", "freeform": "quoted"}},
        "allowed_updates": [],
        "configuration_schema": {"type": "object", "properties": {"domain_query": {"type": "string", "minLength": 1}},
                                 "required": ["domain_query"], "additionalProperties": false},
        "provider": {"type": "domain", "registrar": "upstream"}
    }));
    // A second paid plan, for paid -> paid changes.
    for s in services.iter_mut() {
        if s["id"] == "paid" {
            s["allowed_updates"] = json!(["free", "team"]);
        }
    }
    services.push(json!({
        "id": "team", "description": "Team plan", "categories": ["hosting"], "kind": "plan",
        "pricing": {"type": "paid", "paid": {"type": "freeform", "freeform": "$50/month"}},
        "allowed_updates": ["free", "paid"],
        "configuration_schema": {"type": "object", "properties": {}, "additionalProperties": false},
        "provider": {"type": "plan", "price": {"amount": 5000, "currency": "usd", "interval": "month", "stripe_price": "price_team_monthly"}}
    }));
    Catalog::parse(&v.to_string()).unwrap()
}

struct W {
    account: Account,
    log: Vec<AuditRecord>,
    catalog: Catalog,
    now: i64,
    n: u32,
}

impl W {
    fn new() -> W {
        let new = crate::account::test_new_account();
        let applied = account::create(new, &ctx(T0));
        W {
            account: applied.account,
            log: applied.records,
            catalog: catalog(),
            now: T0,
            n: 0,
        }
    }

    fn run<T>(
        &mut self,
        op: impl FnOnce(&mut Draft) -> Result<T, ResourceError>,
    ) -> Result<T, ResourceError> {
        let mut out = None;
        let applied = apply(&self.account, &ctx(self.now), |d| match op(d) {
            Ok(v) => Ok(v),
            Err(e) => {
                out = Some(e);
                Err(AccountError::Unavailable)
            }
        });
        self.account = applied.account;
        self.log.extend(applied.records);
        match (applied.result, out) {
            (Ok(v), _) => Ok(v),
            (Err(_), Some(e)) => Err(e),
            (Err(e), None) => Err(ResourceError::Account { error: e }),
        }
    }

    fn ids(&mut self) -> NewIds {
        self.n += 1;
        NewIds {
            resource_id: format!("res_{}", self.n),
            charge_id: format!("ch_{}", self.n),
            token_hash: Some(hash(&format!("tok{}", self.n))),
            token_sealed: None,
        }
    }

    fn create(
        &mut self,
        body: Value,
        candidates: Option<Vec<Candidate>>,
    ) -> Result<String, ResourceError> {
        let req = parse_create(body.to_string().as_bytes(), &self.catalog)?;
        match prepare_create(&self.account, &req, &self.catalog)? {
            Preparation::Existing(id) => Ok(id),
            _ => {
                let ids = self.ids();
                let cat = self.catalog.clone();
                self.run(|d| create(d, &req, &cat, ids, candidates))
            }
        }
    }

    fn feed(&mut self, id: &str, outcome: ActionResult) -> Result<(), ResourceError> {
        let s = Settings::default();
        self.run(|d| apply_outcome(d, id, outcome, &s))
    }

    fn next(&self, id: &str) -> Option<Action> {
        next_action(&self.account, id, self.now)
    }

    fn res(&self, id: &str) -> &Resource {
        find(&self.account, id).unwrap()
    }
}

fn ctx(now: i64) -> Ctx {
    Ctx {
        now,
        actor: Actor::new(ActorKind::Orchestrator, Some("acct_s")),
        request_id: None,
        policy: Policy::default(),
    }
}

fn spt(token: &str, max: u64) -> ActionResult {
    ActionResult::Token {
        token: GrantedToken {
            id: token.into(),
            currency: "usd".into(),
            max_amount: max,
            expires_at: Some(T0 + 3600),
            amount_captured: 0,
            deactivated: false,
        },
    }
}

fn paid_plan(token: &str) -> Value {
    json!({"service_id": "paid", "project_id": "proj_1",
           "payment_credentials": {"type": "stripe_payment_token", "stripe_payment_token": token}})
}

/// Runs a paid plan's job to completion with a cooperative Stripe.
fn subscribe(w: &mut W, id: &str) {
    assert!(matches!(w.next(id), Some(Action::RetrieveToken { .. })));
    w.feed(id, spt("spt_1", 5000)).unwrap();
    assert!(matches!(w.next(id), Some(Action::CreateCustomer { .. })));
    w.feed(id, ActionResult::Customer { id: "cus_1".into() })
        .unwrap();
    let Some(Action::CreatePaymentIntent {
        amount,
        save,
        customer,
        ..
    }) = w.next(id)
    else {
        panic!("{:?}", w.next(id))
    };
    assert_eq!(
        (amount, save, customer.as_deref()),
        (2000, true, Some("cus_1"))
    );
    w.feed(
        id,
        ActionResult::PaymentIntent {
            id: "pi_1".into(),
            payment_method: Some("pm_1".into()),
        },
    )
    .unwrap();
    let Some(Action::CreateSubscription {
        price,
        payment_method,
        trial_end,
        ..
    }) = w.next(id)
    else {
        panic!()
    };
    assert_eq!(
        (price.as_str(), payment_method.as_str()),
        ("price_pro_monthly", "pm_1")
    );
    assert!(
        trial_end > w.now + 25 * 86_400,
        "the first period is already paid"
    );
    w.feed(
        id,
        ActionResult::Subscription {
            id: "sub_1".into(),
            status: "trialing".into(),
        },
    )
    .unwrap();
}

#[test]
fn free_plan_then_api_token() {
    let mut w = W::new();
    assert_eq!(
        w.create(json!({"service_id": "api_token", "project_id": "p"}), None),
        Err(ResourceError::PlanRequired)
    );
    let plan = w
        .create(json!({"service_id": "free", "project_id": "p"}), None)
        .unwrap();
    assert_eq!(w.res(&plan).status, ResourceStatus::Complete);
    // Idempotent: the same plan again is the same resource; another plan is refused.
    assert_eq!(
        w.create(json!({"service_id": "free", "project_id": "other"}), None)
            .unwrap(),
        plan
    );
    assert_eq!(
        w.create(paid_plan("spt_1"), None),
        Err(ResourceError::PlanAlreadyActive {
            service_id: "free".into()
        })
    );

    let tok = w.create(json!({"service_id": "api_token", "project_id": "p", "configuration": {"scopes": ["logs:read"], "label": "ci"}}), None).unwrap();
    let r = w.res(&tok).clone();
    assert_eq!(r.status, ResourceStatus::Complete);
    assert!(
        matches!(&r.detail, Detail::ApiToken { scopes, generation: 1, .. } if scopes == &vec!["logs:read".to_string()])
    );
    assert_eq!(
        w.create(json!({"service_id": "api_token", "project_id": "p"}), None)
            .unwrap(),
        tok,
        "(project, service) is idempotent"
    );
    let mut secrets = BTreeMap::new();
    secrets.insert("API_TOKEN".to_string(), "pvak_x".to_string());
    let v = render(&r, &w.account.id, &secrets);
    assert_eq!(v["complete"]["access_configuration"]["API_TOKEN"], "pvak_x");
    assert_eq!(
        v["complete"]["access_configuration"]["ACCOUNT_ID"],
        "acct_aaaaaaaaaaaaaaaa"
    );

    // Rotate: a new generation, value and hash; remove twice is fine.
    let next = new_api_token(&keys(), MAC_KEY, &w.account.id, &tok, 2, &[4; 20], &[5; 12]);
    w.run(|d| rotate(d, &tok, &catalog(), Some(next.clone())))
        .unwrap();
    assert!(
        matches!(&w.res(&tok).detail, Detail::ApiToken { generation: 2, token_hash, sealed: Some(s), .. }
            if *token_hash == next.minted.hash && *s == next.sealed)
    );
    let cat = w.catalog.clone();
    assert_eq!(w.run(|d| remove(d, &tok, &cat)), Ok(true));
    assert_eq!(w.run(|d| remove(d, &tok, &cat)), Ok(true));
    assert_eq!(w.res(&tok).status, ResourceStatus::Removed);
    assert_eq!(
        w.run(|d| rotate(d, &tok, &cat, Some(next.clone()))),
        Err(ResourceError::NotFound)
    );
    assert_eq!(verify_chain(&w.log), Ok(()));
}

fn keys() -> KeyRing {
    KeyRing::parse("k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=").unwrap()
}

/// Creates an API token resource the way the glue does: random value, sealed, hashed.
fn create_sealed_token(w: &mut W, keys: &KeyRing, random: &[u8; 20]) -> (String, String) {
    if w.account.resources.is_empty() {
        w.create(json!({"service_id": "free", "project_id": "p"}), None)
            .unwrap();
    }
    w.n += 1;
    let id = format!("res_tok{}", w.n);
    let token = new_api_token(
        keys,
        MAC_KEY,
        &w.account.id,
        &id,
        1,
        random,
        &[w.n as u8; 12],
    );
    let ids = NewIds {
        resource_id: id.clone(),
        charge_id: format!("ch_{}", w.n),
        token_hash: Some(token.minted.hash.clone()),
        token_sealed: Some(token.sealed.clone()),
    };
    let req = parse_create(
        json!({"service_id": "api_token", "project_id": format!("p{}", w.n)})
            .to_string()
            .as_bytes(),
        &w.catalog,
    )
    .unwrap();
    let cat = w.catalog.clone();
    w.run(|d| create(d, &req, &cat, ids, None)).unwrap();
    (id, token.minted.token)
}

#[test]
fn api_tokens_are_random_and_sealed_not_derived() {
    let mut w = W::new();
    let ring = keys();
    let (a, token_a) = create_sealed_token(&mut w, &ring, &[1; 20]);
    let (b, token_b) = create_sealed_token(&mut w, &ring, &[2; 20]);
    assert_ne!(token_a, token_b);
    assert_eq!(
        tokens::parse_kind(&token_a, TokenKind::ApiKey),
        Some(w.account.id.as_str())
    );
    let acct = w.account.id.clone();
    let value = |w: &W, id: &str, ring: Option<&KeyRing>, dk: Option<&[u8]>| {
        api_token_value(w.res(id), &acct, ring, dk)
    };
    // Shown again (an idempotent replay, a GET) without DERIVATION_KEY: it plays no part.
    assert_eq!(value(&w, &a, Some(&ring), None), Ok(Some(token_a.clone())));
    assert_ne!(
        token_a,
        tokens::derive_legacy(TokenKind::ApiKey, &acct, b"any", &api_token_context(&a, 1))
    );
    // Verification compares hashes, as before.
    let hash_a = tokens::hash(&token_a);
    assert_eq!(introspect_api_key(&w.account, &hash_a)["resource_id"], a);
    // The state holds the hash and the ciphertext, never the value.
    let stored = serde_json::to_string(&w.account).unwrap();
    assert!(!stored.contains(&token_a[token_a.len() - 32..]));
    assert!(stored.contains(&hash_a) && stored.contains("\"kid\":\"k1\""));

    // Key rotation: a new key in front, the old one kept -> old tokens still open.
    let rotated = KeyRing::parse(&format!(
        "k2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=,{}",
        "k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
    ))
    .unwrap();
    assert_eq!(
        value(&w, &a, Some(&rotated), None),
        Ok(Some(token_a.clone()))
    );
    // The old key dropped too early: refused, never a wrong value.
    let only_new = KeyRing::parse("k2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=").unwrap();
    assert_eq!(
        value(&w, &a, Some(&only_new), None),
        Err(TokenValueError::Open(
            crate::sealing::OpenError::UnknownKid("k1".into())
        ))
    );
    assert_eq!(value(&w, &a, None, None), Err(TokenValueError::NoKeys));

    // A ciphertext copied onto another resource does not open there.
    let sealed_a = match &w.res(&a).detail {
        Detail::ApiToken { sealed, .. } => sealed.clone(),
        _ => unreachable!(),
    };
    let i = w.account.resources.iter().position(|r| r.id == b).unwrap();
    if let Detail::ApiToken { sealed, .. } = &mut w.account.resources[i].detail {
        *sealed = sealed_a;
    }
    assert!(matches!(
        value(&w, &b, Some(&ring), None),
        Err(TokenValueError::Open(crate::sealing::OpenError::Invalid))
    ));

    // Rotation issues a new random value, sealed under the current first key.
    let next = new_api_token(&rotated, MAC_KEY, &acct, &a, 2, &[9; 20], &[9; 12]);
    let cat = w.catalog.clone();
    w.run(|d| rotate(d, &a, &cat, Some(next.clone()))).unwrap();
    let shown = value(&w, &a, Some(&rotated), None).unwrap().unwrap();
    assert_eq!(shown, next.minted.token);
    assert_ne!(shown, token_a);
    assert_eq!(
        introspect_api_key(&w.account, &hash_a),
        json!({"active": false})
    );
    assert!(matches!(&w.res(&a).detail, Detail::ApiToken { sealed: Some(s), .. } if s.kid == "k2"));
}

#[test]
fn tokens_minted_before_sealing_keep_being_derived_until_rotated() {
    // A state written before API tokens were random: `api_token` has no `sealed`, and the
    // value is derived from DERIVATION_KEY, the resource id and the generation.
    let mut w = W::new();
    w.create(json!({"service_id": "free", "project_id": "p"}), None)
        .unwrap();
    let acct = w.account.id.clone();
    let old_key = b"dev_code_derivation_key_0000000000000000";
    let old_token = tokens::derive_legacy(
        TokenKind::ApiKey,
        &acct,
        old_key,
        &api_token_context("res_old", 1),
    );
    // The earlier, untagged format (32 secret characters).
    assert!(tokens::parse(&old_token).is_some_and(|p| p.legacy));
    let old_hash = tokens::hash(&old_token);
    let old_json = format!(
        r#"{{"id":"res_old","service_id":"api_token","project_id":"p","kind":"deployable","status":"complete","created_at":{T0},"updated_at":{T0},"configuration":{{"scopes":["logs:read"]}},"detail":{{"type":"api_token","scopes":["logs:read"],"label":null,"generation":1,"token_hash":"{}"}},"job":null,"error":null,"message":null}}"#,
        old_hash
    );
    let old: Resource = serde_json::from_str(&old_json).unwrap();
    assert!(matches!(
        &old.detail,
        Detail::ApiToken {
            sealed: None,
            generation: 1,
            ..
        }
    ));
    // Written back unchanged: no `sealed` key appears for it.
    assert!(!serde_json::to_string(&old).unwrap().contains("sealed"));
    w.account.resources.push(old);

    let value = |w: &W, ring: Option<&KeyRing>, dk: Option<&[u8]>| {
        api_token_value(w.res("res_old"), &acct, ring, dk)
    };
    assert_eq!(
        value(&w, Some(&keys()), Some(old_key)),
        Ok(Some(old_token.clone()))
    );
    assert_eq!(
        value(&w, Some(&keys()), None),
        Err(TokenValueError::NoDerivationKey)
    );
    // A changed DERIVATION_KEY is refused, never shown as a wrong token.
    assert_eq!(
        value(&w, Some(&keys()), Some(b"another key")),
        Err(TokenValueError::Mismatch)
    );
    assert_eq!(
        introspect_api_key(&w.account, &old_hash)["resource_id"],
        "res_old"
    );

    // Rotation replaces it with a random, sealed one: DERIVATION_KEY no longer matters.
    let next = new_api_token(&keys(), MAC_KEY, &acct, "res_old", 2, &[7; 20], &[7; 12]);
    let cat = w.catalog.clone();
    w.run(|d| rotate(d, "res_old", &cat, Some(next.clone())))
        .unwrap();
    assert_eq!(value(&w, Some(&keys()), None), Ok(Some(next.minted.token)));
    assert_eq!(
        introspect_api_key(&w.account, &old_hash),
        json!({"active": false})
    );
}

#[test]
fn malformed_bodies_name_the_problem() {
    let c = catalog();
    let err = |b: &str| parse_create(b.as_bytes(), &c).unwrap_err();
    assert!(matches!(err("{"), ResourceError::InvalidRequest { .. }));
    assert!(matches!(err("[]"), ResourceError::InvalidRequest { .. }));
    assert_eq!(
        err(r#"{"project_id":"p"}"#),
        ResourceError::InvalidRequest {
            message: "service_id is required".into()
        }
    );
    assert_eq!(
        err(r#"{"service_id":"gold","project_id":"p"}"#),
        ResourceError::UnknownService {
            service_id: "gold".into()
        }
    );
    assert!(
        matches!(err(r#"{"service_id":"free"}"#), ResourceError::InvalidRequest { message } if message.contains("project_id"))
    );
    assert!(matches!(
        err(r#"{"service_id":"free","project_id":"a b"}"#),
        ResourceError::InvalidRequest { .. }
    ));
    assert!(matches!(
        err(r#"{"service_id":"free","project_id":7}"#),
        ResourceError::InvalidRequest { .. }
    ));
    assert_eq!(
        err(r#"{"service_id":"domain","project_id":"p","configuration":{"domain_query":5}}"#),
        ResourceError::InvalidConfiguration {
            field: "configuration/domain_query".into(),
            message: "expected a string, got an integer".into()
        }
    );
    assert!(
        matches!(err(r#"{"service_id":"domain","project_id":"p","configuration":{}}"#), ResourceError::InvalidConfiguration { field, .. } if field == "configuration/domain_query")
    );
    assert!(
        matches!(err(r#"{"service_id":"free","project_id":"p","configuration":{"x":1}}"#), ResourceError::InvalidConfiguration { field, .. } if field == "configuration/x")
    );
    assert!(matches!(
        err(r#"{"service_id":"free","project_id":"p","configuration":[]}"#),
        ResourceError::InvalidRequest { .. }
    ));
    assert!(matches!(
        err(r#"{"service_id":"paid","project_id":"p","payment_credentials":"spt_1"}"#),
        ResourceError::InvalidRequest { .. }
    ));
    assert!(matches!(
        err(
            r#"{"service_id":"paid","project_id":"p","payment_credentials":{"type":"stripe_payment_token","stripe_payment_token":"tok_1"}}"#
        ),
        ResourceError::InvalidRequest { .. }
    ));
    // Unknown payment credential types are ignored.
    let r = parse_create(br#"{"service_id":"paid","project_id":"p","payment_credentials":{"type":"crypto","wallet":"x"}}"#, &c).unwrap();
    assert_eq!(r.payment_token, None);
    let w = W::new();
    assert_eq!(
        prepare_create(&w.account, &r, &c),
        Err(ResourceError::RequiresPaymentCredentials)
    );
}

#[test]
fn paid_plan_reserves_charges_and_subscribes() {
    let mut w = W::new();
    let id = w.create(paid_plan("spt_1"), None).unwrap();
    assert_eq!(w.res(&id).status, ResourceStatus::Pending);
    assert_eq!(
        w.account.ledger.spent(w.now),
        2000,
        "reserved before any call"
    );
    subscribe(&mut w, &id);
    let r = w.res(&id);
    assert_eq!(r.status, ResourceStatus::Complete);
    assert!(matches!(&r.detail, Detail::Plan { subscription_id: Some(s), .. } if s == "sub_1"));
    assert_eq!(w.account.ledger.charges[0].status, ChargeStatus::Charged);
    assert_eq!(w.account.billing.customer_id.as_deref(), Some("cus_1"));
    assert_eq!(w.next(&id), None);
    let actions: Vec<&str> = w.log.iter().map(|r| r.action.as_str()).collect();
    for a in [
        "resource.created",
        "spend.reserved",
        "billing.customer_created",
        "charge.succeeded",
        "resource.completed",
    ] {
        assert!(actions.contains(&a), "{a} not in {actions:?}");
    }
    assert_eq!(verify_chain(&w.log), Ok(()));
}

#[test]
fn an_outage_retries_with_the_same_keys() {
    let mut w = W::new();
    let id = w.create(paid_plan("spt_1"), None).unwrap();
    w.feed(&id, spt("spt_1", 5000)).unwrap();
    w.feed(&id, ActionResult::Customer { id: "cus_1".into() })
        .unwrap();
    let first = w.next(&id).unwrap();
    w.feed(
        &id,
        ActionResult::Unavailable {
            message: "503".into(),
        },
    )
    .unwrap();
    assert_eq!(w.next(&id), None, "backing off");
    assert_eq!(w.res(&id).status, ResourceStatus::Pending);
    assert!(next_wake(&w.account).unwrap() > w.now);
    w.now += 5;
    assert_eq!(
        w.next(&id).unwrap(),
        first,
        "same call, same idempotency key"
    );
    assert_eq!(due(&w.account, w.now), vec![id.clone()]);
}

#[test]
fn a_too_small_token_fails_cleanly() {
    let mut w = W::new();
    let id = w.create(paid_plan("spt_small"), None).unwrap();
    let err = w.feed(&id, spt("spt_small", 1500)).unwrap_err();
    assert!(matches!(
        err,
        ResourceError::Payment {
            error: PaymentError::TokenInsufficient {
                available: 1500,
                amount: 2000,
                ..
            }
        }
    ));
    // Nobody was told it was pending: nothing stays, the money is released.
    assert!(find(&w.account, &id).is_err());
    assert_eq!(w.account.ledger.spent(w.now), 0);
    assert!(w.log.iter().any(|r| r.action == "job.failed"));
    // A new attempt with another token starts afresh.
    let id2 = w.create(paid_plan("spt_big"), None).unwrap();
    assert_ne!(id, id2);
}

#[test]
fn an_acknowledged_purchase_that_fails_later_is_errored() {
    let mut w = W::new();
    let id = w.create(paid_plan("spt_1"), None).unwrap();
    w.run(|d| {
        acknowledge(d, &id);
        Ok(())
    })
    .unwrap();
    let declined = ActionResult::from_stripe_failure(crate::stripe_api::classify(
        402,
        &json!({"error": {"code": "card_declined", "decline_code": "insufficient_funds", "message": "Your card was declined."}}),
    ));
    w.feed(&id, spt("spt_1", 5000)).unwrap();
    w.feed(&id, ActionResult::Customer { id: "cus_1".into() })
        .unwrap();
    assert!(w.feed(&id, declined).is_err());
    let r = w.res(&id);
    assert_eq!(r.status, ResourceStatus::Errored);
    assert_eq!(r.error.as_ref().unwrap().code, "payment_declined");
    assert_eq!(w.account.ledger.spent(w.now), 0);
}

#[test]
fn the_cap_refuses_the_purchase_that_would_cross_it() {
    let mut w = W::new();
    w.account.ledger.cap = 3000;
    w.create(json!({"service_id": "free", "project_id": "p"}), None)
        .unwrap();
    let cand = |d: &str| {
        vec![Candidate {
            domain: d.into(),
            amount: 1200,
            currency: "usd".into(),
            available: true,
        }]
    };
    let a = w.create(json!({"service_id": "domain", "project_id": "a", "configuration": {"domain_query": "a"}}), Some(cand("a.apps.example.dev"))).unwrap();
    let b = w.create(json!({"service_id": "domain", "project_id": "b", "configuration": {"domain_query": "b"}}), Some(cand("b.apps.example.dev"))).unwrap();
    let c = w.create(json!({"service_id": "domain", "project_id": "c", "configuration": {"domain_query": "c"}}), Some(cand("c.apps.example.dev"))).unwrap();
    let confirm = |d: &str| ConfirmRequest {
        domain: d.into(),
        amount: 1200,
        payment_token: Some("spt_1".into()),
    };
    w.run(|d| confirm_domain(d, &a, &confirm("a.apps.example.dev"), "ch_a"))
        .unwrap();
    w.run(|d| confirm_domain(d, &b, &confirm("b.apps.example.dev"), "ch_b"))
        .unwrap();
    // Two reservations (2400) are in flight; the third (3600) would cross 3000.
    let err = w
        .run(|d| confirm_domain(d, &c, &confirm("c.apps.example.dev"), "ch_c"))
        .unwrap_err();
    assert_eq!(
        err,
        ResourceError::SpendingCapExceeded {
            spent: 2400,
            cap: 3000,
            amount: 1200,
            currency: "usd".into()
        }
    );
    assert_eq!(
        w.res(&c).status,
        ResourceStatus::NeedsInformation,
        "nothing changed"
    );
    let alerts: Vec<&AuditRecord> = w.log.iter().filter(|r| r.action == "spend.alert").collect();
    assert_eq!(alerts.len(), 2, "50 % and 80 % crossed");
}

fn domain_world(registrar_service: &str, candidates: Vec<Candidate>) -> (W, String) {
    let mut w = W::new();
    w.create(json!({"service_id": "free", "project_id": "p"}), None)
        .unwrap();
    let id = w
        .create(
            json!({"service_id": registrar_service, "project_id": "p", "configuration": {"domain_query": "Acme"},
                   "payment_credentials": {"type": "stripe_payment_token", "stripe_payment_token": "spt_d"}}),
            Some(candidates),
        )
        .unwrap();
    (w, id)
}

fn builtin_candidates() -> Vec<Candidate> {
    vec![
        Candidate {
            domain: "acme.apps.example.dev".into(),
            amount: 1200,
            currency: "usd".into(),
            available: false,
        },
        Candidate {
            domain: "acme-app.apps.example.dev".into(),
            amount: 1200,
            currency: "usd".into(),
            available: true,
        },
    ]
}

#[test]
fn domain_quote_confirm_purchase() {
    let (mut w, id) = domain_world("domain", builtin_candidates());
    let r = w.res(&id).clone();
    assert_eq!(r.status, ResourceStatus::NeedsInformation);
    assert_eq!(w.account.ledger.spent(w.now), 0, "a quote costs nothing");
    let v = render(&r, "acct_x", &BTreeMap::new());
    assert_eq!(v["status"], "needs_information");
    assert_eq!(
        v["needs_information"]["schema"]["properties"]["domain"]["enum"],
        json!(["acme-app.apps.example.dev"])
    );
    assert_eq!(
        v["needs_information"]["quote"]["candidates"][1]["amount"],
        1200
    );
    assert!(v["needs_information"]["message"]
        .as_str()
        .unwrap()
        .contains("$12.00"));

    let confirm = |d: &str, amount: u64| ConfirmRequest {
        domain: d.into(),
        amount,
        payment_token: None,
    };
    assert_eq!(
        w.run(|d| confirm_domain(d, &id, &confirm("acme.apps.example.dev", 1200), "ch")),
        Err(ResourceError::DomainUnavailable {
            domain: "acme.apps.example.dev".into()
        })
    );
    assert!(matches!(
        w.run(|d| confirm_domain(d, &id, &confirm("acme-app.apps.example.dev", 1000), "ch")),
        Err(ResourceError::PriceChanged { amount: 1200, .. })
    ));
    assert!(matches!(
        w.run(|d| confirm_domain(d, &id, &confirm("other.dev", 1200), "ch")),
        Err(ResourceError::InvalidRequest { .. })
    ));
    w.run(|d| confirm_domain(d, &id, &confirm("acme-app.apps.example.dev", 1200), "ch"))
        .unwrap();
    assert_eq!(w.res(&id).status, ResourceStatus::Pending);
    assert_eq!(
        w.run(|d| confirm_domain(d, &id, &confirm("acme-app.apps.example.dev", 1200), "ch2")),
        Err(ResourceError::NotAwaitingConfirmation)
    );

    assert!(matches!(w.next(&id), Some(Action::RetrieveToken { token }) if token == "spt_d"));
    w.feed(&id, spt("spt_d", 5000)).unwrap();
    assert!(
        matches!(w.next(&id), Some(Action::ClaimDomain { .. })),
        "builtin claims before charging"
    );
    w.feed(
        &id,
        ActionResult::Claimed {
            expires_at: T0 + 365 * 86_400,
        },
    )
    .unwrap();
    assert!(matches!(
        w.next(&id),
        Some(Action::CreatePaymentIntent {
            amount: 1200,
            save: false,
            ..
        })
    ));
    w.feed(
        &id,
        ActionResult::PaymentIntent {
            id: "pi_d".into(),
            payment_method: None,
        },
    )
    .unwrap();
    assert!(matches!(w.next(&id), Some(Action::ClaimDomain { .. })));
    w.feed(
        &id,
        ActionResult::Claimed {
            expires_at: T0 + 365 * 86_400,
        },
    )
    .unwrap();
    let r = w.res(&id).clone();
    assert_eq!(r.status, ResourceStatus::Complete);
    let v = render(&r, "acct_x", &BTreeMap::new());
    assert_eq!(
        v["complete"]["access_configuration"]["DOMAIN"],
        "acme-app.apps.example.dev"
    );
    assert_eq!(w.account.ledger.spent(w.now), 1200);

    // Removing it lets the name go.
    let cat = w.catalog.clone();
    assert_eq!(w.run(|d| remove(d, &id, &cat)), Ok(false));
    assert!(matches!(w.next(&id), Some(Action::ReleaseDomain { .. })));
    w.feed(&id, ActionResult::Released).unwrap();
    assert_eq!(w.res(&id).status, ResourceStatus::Removed);
    assert_eq!(verify_chain(&w.log), Ok(()));
}

#[test]
fn an_expired_quote_is_refused() {
    let (mut w, id) = domain_world("domain", builtin_candidates());
    w.now += 900;
    let r = w.run(|d| {
        confirm_domain(
            d,
            &id,
            &ConfirmRequest {
                domain: "acme-app.apps.example.dev".into(),
                amount: 1200,
                payment_token: None,
            },
            "ch",
        )
    });
    assert_eq!(r, Err(ResourceError::QuoteExpired));
    w.run(|d| refresh_quote(d, &id, builtin_candidates(), 900))
        .unwrap();
    w.run(|d| {
        confirm_domain(
            d,
            &id,
            &ConfirmRequest {
                domain: "acme-app.apps.example.dev".into(),
                amount: 1200,
                payment_token: None,
            },
            "ch",
        )
    })
    .unwrap();
}

#[test]
fn a_declined_domain_charge_goes_back_to_the_quote_and_lets_the_name_go() {
    let (mut w, id) = domain_world("domain", builtin_candidates());
    w.run(|d| {
        confirm_domain(
            d,
            &id,
            &ConfirmRequest {
                domain: "acme-app.apps.example.dev".into(),
                amount: 1200,
                payment_token: None,
            },
            "ch",
        )
    })
    .unwrap();
    w.feed(&id, spt("spt_d", 5000)).unwrap();
    w.feed(&id, ActionResult::Claimed { expires_at: 0 })
        .unwrap();
    let declined = ActionResult::Refused {
        error: ResourceError::Payment {
            error: PaymentError::Declined {
                code: "card_declined".into(),
                decline_code: None,
                message: "Your card was declined.".into(),
            },
        },
    };
    assert!(w.feed(&id, declined).is_err());
    assert_eq!(w.res(&id).status, ResourceStatus::NeedsInformation);
    assert_eq!(w.account.ledger.spent(w.now), 0);
    assert!(matches!(w.next(&id), Some(Action::ReleaseDomain { .. })));
    w.feed(&id, ActionResult::Released).unwrap();
    assert_eq!(
        w.res(&id).status,
        ResourceStatus::NeedsInformation,
        "still quoted, ready for another try"
    );
}

#[test]
fn upstream_registration_failing_after_the_charge_is_refunded() {
    let cands = vec![Candidate {
        domain: "acme.com".into(),
        amount: 1299,
        currency: "usd".into(),
        available: true,
    }];
    let (mut w, id) = domain_world("domain_upstream", cands);
    w.run(|d| {
        confirm_domain(
            d,
            &id,
            &ConfirmRequest {
                domain: "acme.com".into(),
                amount: 1299,
                payment_token: None,
            },
            "ch",
        )
    })
    .unwrap();
    w.feed(&id, spt("spt_d", 5000)).unwrap();
    assert!(
        matches!(w.next(&id), Some(Action::CreatePaymentIntent { .. })),
        "upstream charges first"
    );
    w.feed(
        &id,
        ActionResult::PaymentIntent {
            id: "pi_u".into(),
            payment_method: None,
        },
    )
    .unwrap();
    assert!(matches!(
        w.next(&id),
        Some(Action::ClaimDomain {
            registrar: Registrar::Upstream,
            ..
        })
    ));
    let taken = ActionResult::Refused {
        error: ResourceError::DomainUnavailable {
            domain: "acme.com".into(),
        },
    };
    assert!(w.feed(&id, taken).is_err());
    assert!(
        matches!(w.next(&id), Some(Action::Refund { payment_intent, amount: 1299, .. }) if payment_intent == "pi_u")
    );
    w.feed(&id, ActionResult::Refunded { id: "re_1".into() })
        .unwrap();
    let r = w.res(&id);
    assert_eq!(r.status, ResourceStatus::Errored);
    assert!(r.error.as_ref().unwrap().message.contains("refunded"));
    assert_eq!(w.account.ledger.spent(w.now), 0);
}

#[test]
fn plan_changes_follow_allowed_updates() {
    let mut w = W::new();
    let id = w.create(paid_plan("spt_1"), None).unwrap();
    subscribe(&mut w, &id);
    let cat = w.catalog.clone();
    let up = |s: &str, t: Option<&str>| UpdateRequest {
        service_id: s.into(),
        payment_token: t.map(str::to_string),
    };
    assert_eq!(
        w.run(|d| update_service(d, &id, &up("gold", None), &cat, "c")),
        Err(ResourceError::UnknownService {
            service_id: "gold".into()
        })
    );
    // paid -> free cancels the subscription, then switches.
    w.run(|d| update_service(d, &id, &up("free", None), &cat, "c"))
        .unwrap();
    assert_eq!(w.res(&id).service_id, "paid", "until Stripe confirms");
    assert!(
        matches!(w.next(&id), Some(Action::CancelSubscription { subscription_id, .. }) if subscription_id == "sub_1")
    );
    w.feed(&id, ActionResult::Canceled).unwrap();
    assert_eq!(w.res(&id).service_id, "free");
    assert_eq!(w.res(&id).status, ResourceStatus::Complete);
    // free -> paid needs payment credentials.
    assert_eq!(
        w.run(|d| update_service(d, &id, &up("paid", None), &cat, "c2")),
        Err(ResourceError::RequiresPaymentCredentials)
    );
    w.run(|d| update_service(d, &id, &up("paid", Some("spt_2")), &cat, "c2"))
        .unwrap();
    assert_eq!(w.account.ledger.spent(w.now), 4000);
    // A token too small leaves the free plan in place.
    assert!(w.feed(&id, spt("spt_2", 10)).is_err());
    assert_eq!(w.res(&id).service_id, "free");
    assert_eq!(w.res(&id).status, ResourceStatus::Complete);
    assert_eq!(w.account.ledger.spent(w.now), 2000);
    // A deployable whose allowed_updates is empty cannot change.
    let tok = w
        .create(json!({"service_id": "api_token", "project_id": "p"}), None)
        .unwrap();
    assert_eq!(
        w.run(|d| update_service(d, &tok, &up("domain", None), &cat, "c3")),
        Err(ResourceError::UpdateNotAllowed {
            from: "api_token".into(),
            to: "domain".into()
        })
    );
    // The plan cannot go while the token exists.
    assert!(matches!(
        w.run(|d| remove(d, &id, &cat)),
        Err(ResourceError::InvalidRequest { .. })
    ));
}

#[test]
fn operator_backend_pending_then_complete() {
    let mut w = W::new();
    w.create(json!({"service_id": "free", "project_id": "p"}), None)
        .unwrap();
    let id = w
        .create(json!({"service_id": "database", "project_id": "p"}), None)
        .unwrap();
    assert_eq!(w.res(&id).status, ResourceStatus::Pending);
    let Some(Action::CallOperator { key, body, .. }) = w.next(&id) else {
        panic!()
    };
    assert_eq!(body["action"], "create");
    w.feed(
        &id,
        ActionResult::Operator {
            status: "pending".into(),
            access_configuration: None,
            retry_after: Some(3),
            error: None,
        },
    )
    .unwrap();
    assert_eq!(w.next(&id), None);
    w.now += 3;
    let Some(Action::CallOperator { key: key2, .. }) = w.next(&id) else {
        panic!()
    };
    assert_eq!(key, key2, "the same idempotency key until it completes");
    let mut ac = BTreeMap::new();
    ac.insert("DATABASE_URL".to_string(), "postgres://x".to_string());
    w.feed(
        &id,
        ActionResult::Operator {
            status: "complete".into(),
            access_configuration: Some(ac),
            retry_after: None,
            error: None,
        },
    )
    .unwrap();
    let v = render(w.res(&id), "acct_x", &BTreeMap::new());
    assert_eq!(
        v["complete"]["access_configuration"]["DATABASE_URL"],
        "postgres://x"
    );

    let id2 = w.create(json!({"service_id": "database", "project_id": "q", "configuration": {"fail": "quota"}}), None).unwrap();
    let e = w.feed(
        &id2,
        ActionResult::Operator {
            status: "error".into(),
            access_configuration: None,
            retry_after: None,
            error: Some(ErrorInfo {
                code: "quota".into(),
                message: "over quota".into(),
            }),
        },
    );
    assert!(e.is_err());
    let r = w.res(&id2);
    assert_eq!(r.status, ResourceStatus::Errored);
    assert_eq!(
        render(r, "a", &BTreeMap::new())["error"]["code"],
        "backend_error"
    );
}

#[test]
fn scopes() {
    let access = |s: &[&str]| Access {
        account_id: "a".into(),
        family_id: "f".into(),
        grant_id: "g".into(),
        scopes: s.iter().map(|x| x.to_string()).collect(),
        orchestrator_account: "o".into(),
        expires_at: 0,
    };
    assert_eq!(require_scope(&access(&["resources:read"]), false), Ok(()));
    assert!(require_scope(&access(&["resources:read"]), true).is_err());
    assert_eq!(require_scope(&access(&["resources:write"]), false), Ok(()));
}

#[test]
fn a_new_purchase_never_reuses_an_old_idempotency_key() {
    let mut w = W::new();
    let id = w.create(paid_plan("spt_1"), None).unwrap();
    w.feed(&id, spt("spt_1", 5000)).unwrap();
    w.feed(&id, ActionResult::Customer { id: "cus_1".into() })
        .unwrap();
    let Some(Action::CreatePaymentIntent { key: first, .. }) = w.next(&id) else {
        panic!()
    };
    w.feed(
        &id,
        ActionResult::PaymentIntent {
            id: "pi_1".into(),
            payment_method: Some("pm_1".into()),
        },
    )
    .unwrap();
    w.feed(
        &id,
        ActionResult::Subscription {
            id: "sub_1".into(),
            status: "trialing".into(),
        },
    )
    .unwrap();
    let cat = w.catalog.clone();
    let up = |s: &str, t: Option<&str>| UpdateRequest {
        service_id: s.into(),
        payment_token: t.map(str::to_string),
    };
    w.run(|d| update_service(d, &id, &up("free", None), &cat, "c2"))
        .unwrap();
    w.feed(&id, ActionResult::Canceled).unwrap();
    // Back to paid within the same second: a different charge, so a different key.
    w.run(|d| update_service(d, &id, &up("paid", Some("spt_2")), &cat, "c3"))
        .unwrap();
    w.feed(&id, spt("spt_2", 5000)).unwrap();
    let Some(Action::CreatePaymentIntent { key: second, .. }) = w.next(&id) else {
        panic!()
    };
    assert_ne!(first, second);
}

// ---------------------------------------------------------------------------------------------
// Money: every purchase ends with what was paid for, or with its charge refunded

/// A new paid plan charged (first period), waiting for its subscription.
fn charged_plan(w: &mut W) -> String {
    let id = w.create(paid_plan("spt_1"), None).unwrap();
    w.feed(&id, spt("spt_1", 5000)).unwrap();
    w.feed(&id, ActionResult::Customer { id: "cus_1".into() })
        .unwrap();
    let Some(Action::CreatePaymentIntent { key, .. }) = w.next(&id) else {
        panic!()
    };
    assert_eq!(key, format!("{}:{id}:ch_1:subscribe-pi", w.account.id));
    w.feed(
        &id,
        ActionResult::PaymentIntent {
            id: "pi_1".into(),
            payment_method: Some("pm_1".into()),
        },
    )
    .unwrap();
    assert!(matches!(
        w.next(&id),
        Some(Action::CreateSubscription { .. })
    ));
    id
}

fn stripe_refuses(code: &str) -> ActionResult {
    ActionResult::from_stripe_failure(crate::stripe_api::classify(
        400,
        &json!({"error": {"type": "invalid_request_error", "code": code, "message": "No such price: 'price_pro_monthly'"}}),
    ))
}

fn actions(w: &W) -> Vec<&str> {
    w.log.iter().map(|r| r.action.as_str()).collect()
}

#[test]
fn a_subscription_refused_after_the_charge_is_refunded_and_a_retry_charges_nothing() {
    let mut w = W::new();
    let id = charged_plan(&mut w);
    assert!(w.feed(&id, stripe_refuses("resource_missing")).is_err());
    // Not dropped: its charge is live until refunded.
    let r = w.res(&id);
    assert_eq!(r.status, ResourceStatus::Pending);
    assert!(
        matches!(w.next(&id), Some(Action::Refund { payment_intent, amount: 2000, .. }) if payment_intent == "pi_1")
    );
    // The same create again, while the refund is pending: the same resource, no new charge.
    assert_eq!(w.create(paid_plan("spt_1"), None).unwrap(), id);
    assert_eq!(w.account.ledger.charges.len(), 1);
    // Nothing can be created under a plan that is being refunded.
    assert_eq!(
        w.create(json!({"service_id": "api_token", "project_id": "p"}), None),
        Err(ResourceError::PlanRequired)
    );
    // The refund is recorded in the ledger and the audit trail.
    w.feed(&id, ActionResult::Refunded { id: "re_1".into() })
        .unwrap();
    let r = w.res(&id);
    assert_eq!(r.status, ResourceStatus::Errored);
    let e = r.error.as_ref().unwrap();
    assert_eq!(e.code, "payment_failed");
    assert!(e.message.contains("refunded"), "{}", e.message);
    let c = &w.account.ledger.charges[0];
    assert_eq!(
        (c.status, c.refunded, c.payment_intent.as_deref()),
        (ChargeStatus::Refunded, 2000, Some("pi_1"))
    );
    assert_eq!(w.account.ledger.spent(w.now), 0);
    for a in [
        "charge.succeeded",
        "job.failed",
        "charge.refunded",
        "resource.failed",
    ] {
        assert!(actions(&w).contains(&a), "{a} not in {:?}", actions(&w));
    }
    assert_eq!(verify_chain(&w.log), Ok(()));
    // After the refund a create is a new purchase: a new charge with new keys (Stripe would
    // replay the refunded PaymentIntent under the old key).
    let old_key = format!("{}:{id}:ch_1:subscribe-pi", w.account.id);
    let again = w.create(paid_plan("spt_2"), None).unwrap();
    assert_ne!(again, id);
    w.feed(&again, spt("spt_2", 5000)).unwrap();
    let Some(Action::CreatePaymentIntent { key, .. }) = w.next(&again) else {
        panic!("{:?}", w.next(&again))
    };
    assert_ne!(key, old_key);
    assert_eq!(w.account.ledger.charges.len(), 2);
}

#[test]
fn a_subscription_that_stays_unavailable_is_refunded_too() {
    let mut w = W::new();
    let id = charged_plan(&mut w);
    let s = Settings::default();
    for n in 1..=s.max_attempts {
        let r = w.feed(
            &id,
            ActionResult::Unavailable {
                message: "503".into(),
            },
        );
        assert_eq!(r.is_err(), n == s.max_attempts);
        w.now += 300;
    }
    assert!(matches!(w.next(&id), Some(Action::Refund { .. })));
    w.feed(&id, ActionResult::Refunded { id: "re_1".into() })
        .unwrap();
    assert_eq!(w.res(&id).status, ResourceStatus::Errored);
    assert_eq!(w.account.ledger.spent(w.now), 0);
}

#[test]
fn a_free_to_paid_change_refused_after_the_charge_is_refunded_and_stays_free() {
    let mut w = W::new();
    let id = w
        .create(json!({"service_id": "free", "project_id": "p"}), None)
        .unwrap();
    let cat = w.catalog.clone();
    let up = UpdateRequest {
        service_id: "paid".into(),
        payment_token: Some("spt_1".into()),
    };
    w.run(|d| update_service(d, &id, &up, &cat, "ch_up"))
        .unwrap();
    w.feed(&id, spt("spt_1", 5000)).unwrap();
    w.feed(&id, ActionResult::Customer { id: "cus_1".into() })
        .unwrap();
    w.feed(
        &id,
        ActionResult::PaymentIntent {
            id: "pi_up".into(),
            payment_method: Some("pm_1".into()),
        },
    )
    .unwrap();
    assert!(w.feed(&id, stripe_refuses("resource_missing")).is_err());
    assert_eq!(
        (w.res(&id).status, w.res(&id).service_id.as_str()),
        (ResourceStatus::Complete, "free"),
        "the current plan stays usable while the refund runs"
    );
    assert!(matches!(w.next(&id), Some(Action::Refund { .. })));
    assert_eq!(
        w.run(|d| update_service(d, &id, &up, &cat, "ch_up2")),
        Err(ResourceError::Busy),
        "no second charge while the first is live"
    );
    w.feed(&id, ActionResult::Refunded { id: "re_1".into() })
        .unwrap();
    let r = w.res(&id);
    assert_eq!(
        (r.status, r.service_id.as_str()),
        (ResourceStatus::Complete, "free")
    );
    assert!(r.message.as_deref().unwrap().contains("refunded"));
    assert_eq!(w.account.ledger.charges[0].status, ChargeStatus::Refunded);
    assert_eq!(w.account.ledger.spent(w.now), 0);
    assert!(actions(&w).contains(&"charge.refunded"));
}

#[test]
fn a_refund_stripe_refuses_is_refund_failed_and_still_blocks_a_second_charge() {
    let mut w = W::new();
    let id = charged_plan(&mut w);
    assert!(w.feed(&id, stripe_refuses("resource_missing")).is_err());
    assert!(w.feed(&id, stripe_refuses("charge_disputed")).is_err());
    let r = w.res(&id);
    assert_eq!(r.status, ResourceStatus::Errored);
    assert_eq!(r.error.as_ref().unwrap().code, REFUND_FAILED);
    assert_eq!(w.account.ledger.charges[0].status, ChargeStatus::Charged);
    // The charge is still live: the same create answers this resource, charging nothing.
    assert_eq!(w.create(paid_plan("spt_1"), None).unwrap(), id);
    assert_eq!(w.account.ledger.charges.len(), 1);
}

#[test]
fn a_refund_already_made_counts_as_made() {
    let mut w = W::new();
    let id = charged_plan(&mut w);
    assert!(w.feed(&id, stripe_refuses("resource_missing")).is_err());
    w.feed(&id, stripe_refuses("charge_already_refunded"))
        .unwrap();
    assert_eq!(w.res(&id).status, ResourceStatus::Errored);
    assert_eq!(w.account.ledger.charges[0].status, ChargeStatus::Refunded);
}

#[test]
fn paid_to_paid_cancels_the_old_subscription_in_the_same_saga() {
    let mut w = W::new();
    let id = w.create(paid_plan("spt_1"), None).unwrap();
    subscribe(&mut w, &id);
    let cat = w.catalog.clone();
    let up = UpdateRequest {
        service_id: "team".into(),
        payment_token: Some("spt_2".into()),
    };
    w.run(|d| update_service(d, &id, &up, &cat, "ch_team"))
        .unwrap();
    assert_eq!(w.account.ledger.spent(w.now), 7000, "the whole new period");
    w.feed(&id, spt("spt_2", 5000)).unwrap();
    let Some(Action::CreatePaymentIntent { amount, .. }) = w.next(&id) else {
        panic!("{:?}", w.next(&id))
    };
    assert_eq!(amount, 5000);
    w.feed(
        &id,
        ActionResult::PaymentIntent {
            id: "pi_2".into(),
            payment_method: Some("pm_2".into()),
        },
    )
    .unwrap();
    let Some(Action::CreateSubscription { price, .. }) = w.next(&id) else {
        panic!("{:?}", w.next(&id))
    };
    assert_eq!(price, "price_team_monthly");
    w.feed(
        &id,
        ActionResult::Subscription {
            id: "sub_2".into(),
            status: "trialing".into(),
        },
    )
    .unwrap();
    // The new plan is in place; the old subscription is cancelled next, same saga.
    let r = w.res(&id);
    assert_eq!(
        (r.status, r.service_id.as_str()),
        (ResourceStatus::Complete, "team")
    );
    assert!(matches!(&r.detail, Detail::Plan { subscription_id: Some(s), .. } if s == "sub_2"));
    assert!(
        matches!(w.next(&id), Some(Action::CancelSubscription { subscription_id, .. }) if subscription_id == "sub_1")
    );
    assert_eq!(w.run(|d| remove(d, &id, &cat)), Err(ResourceError::Busy));
    w.feed(&id, ActionResult::Canceled).unwrap();
    assert_eq!(w.next(&id), None);
    assert!(w.res(&id).job.is_none());
    assert!(actions(&w).contains(&"subscription.canceled"));
    // Removing ends the live (new) subscription.
    assert_eq!(w.run(|d| remove(d, &id, &cat)), Ok(false));
    assert!(
        matches!(w.next(&id), Some(Action::CancelSubscription { subscription_id, .. }) if subscription_id == "sub_2")
    );
    w.feed(&id, ActionResult::Canceled).unwrap();
    assert_eq!(w.res(&id).status, ResourceStatus::Removed);
}

#[test]
fn paid_to_paid_whose_new_subscription_is_refused_refunds_and_keeps_the_old_plan() {
    let mut w = W::new();
    let id = w.create(paid_plan("spt_1"), None).unwrap();
    subscribe(&mut w, &id);
    let cat = w.catalog.clone();
    let up = UpdateRequest {
        service_id: "team".into(),
        payment_token: Some("spt_2".into()),
    };
    w.run(|d| update_service(d, &id, &up, &cat, "ch_team"))
        .unwrap();
    w.feed(&id, spt("spt_2", 5000)).unwrap();
    w.feed(
        &id,
        ActionResult::PaymentIntent {
            id: "pi_2".into(),
            payment_method: Some("pm_2".into()),
        },
    )
    .unwrap();
    assert!(w.feed(&id, stripe_refuses("resource_missing")).is_err());
    assert!(
        matches!(w.next(&id), Some(Action::Refund { payment_intent, amount: 5000, .. }) if payment_intent == "pi_2"),
        "the old subscription is not touched: {:?}",
        w.next(&id)
    );
    w.feed(&id, ActionResult::Refunded { id: "re_2".into() })
        .unwrap();
    let r = w.res(&id);
    assert_eq!(
        (r.status, r.service_id.as_str()),
        (ResourceStatus::Complete, "paid")
    );
    assert!(matches!(&r.detail, Detail::Plan { subscription_id: Some(s), .. } if s == "sub_1"));
    assert_eq!(w.account.ledger.spent(w.now), 2000);
}

#[test]
fn paid_to_paid_whose_old_subscription_cannot_be_cancelled_says_so() {
    let mut w = W::new();
    let id = w.create(paid_plan("spt_1"), None).unwrap();
    subscribe(&mut w, &id);
    let cat = w.catalog.clone();
    let up = UpdateRequest {
        service_id: "team".into(),
        payment_token: Some("spt_2".into()),
    };
    w.run(|d| update_service(d, &id, &up, &cat, "ch_team"))
        .unwrap();
    w.feed(&id, spt("spt_2", 5000)).unwrap();
    w.feed(
        &id,
        ActionResult::PaymentIntent {
            id: "pi_2".into(),
            payment_method: Some("pm_2".into()),
        },
    )
    .unwrap();
    w.feed(
        &id,
        ActionResult::Subscription {
            id: "sub_2".into(),
            status: "trialing".into(),
        },
    )
    .unwrap();
    // The change happened: the caller is told it succeeded (the old one is retried).
    assert_eq!(w.feed(&id, stripe_refuses("invalid_request")), Ok(()));
    let r = w.res(&id);
    assert_eq!(
        (r.status, r.service_id.as_str()),
        (ResourceStatus::Complete, "team")
    );
    assert!(r.message.as_deref().unwrap().contains("sub_1"));
    assert!(r.job.is_none());
    assert_eq!(w.account.ledger.charges[1].status, ChargeStatus::Charged);
    assert!(actions(&w).contains(&"subscription.cancel_failed"));
}

#[test]
fn an_operator_backend_pending_forever_is_given_up() {
    let mut w = W::new();
    w.create(json!({"service_id": "free", "project_id": "p"}), None)
        .unwrap();
    let id = w
        .create(json!({"service_id": "database", "project_id": "p"}), None)
        .unwrap();
    let pending = || ActionResult::Operator {
        status: "pending".into(),
        access_configuration: None,
        retry_after: Some(5),
        error: None,
    };
    let max = Settings::default().max_attempts;
    for _ in 1..max {
        w.feed(&id, pending()).unwrap();
        w.now += 5;
        assert!(w.next(&id).is_some());
    }
    let e = w.feed(&id, pending()).unwrap_err();
    assert!(matches!(e, ResourceError::BackendTimeout { attempts, .. } if attempts == max));
    let r = w.res(&id);
    assert_eq!(r.status, ResourceStatus::Errored);
    assert!(r.job.is_none(), "no more polling");
    assert_eq!(w.next(&id), None);
    let v = render(r, "a", &BTreeMap::new());
    assert_eq!(v["error"]["code"], "backend_timeout");
    // Free service: nothing was reserved, nothing to compensate.
    assert!(w.account.ledger.charges.is_empty());
}

#[test]
fn an_all_eur_catalog_sells_in_eur() {
    let mut v: Value = serde_json::from_str(DEFAULT_CATALOG).unwrap();
    for s in v["services"].as_array_mut().unwrap() {
        if let Some(p) = s["provider"].get_mut("price") {
            p["currency"] = json!("eur");
        }
    }
    let eur = Catalog::parse(&v.to_string()).unwrap();
    assert_eq!(eur.currency(), "eur");
    // An account made while the catalog was in usd: its first purchase takes the catalog's.
    let mut w = W::new();
    assert_eq!(w.account.ledger.currency, "usd");
    w.catalog = eur;
    let id = w.create(paid_plan("spt_1"), None).unwrap();
    assert_eq!(w.account.ledger.currency, "eur");
    assert_eq!(w.account.ledger.spent(w.now), 2000);
    assert!(actions(&w).contains(&"spend.currency_set"));
    assert!(matches!(w.next(&id), Some(Action::RetrieveToken { .. })));
}

#[test]
fn jobs_stored_before_the_money_fixes_still_read() {
    // Job shapes as states written before `replaces`, `subscription` and `keep_current`.
    let subscribe: JobState = serde_json::from_value(json!({
        "job": {"job": "subscribe", "target_service": "paid", "token": "spt_1", "amount": 2000,
                "currency": "usd", "stripe_price": "price_pro_monthly", "period_days": 30,
                "charge_id": "chg_1", "token_checked": true, "payment_intent": "pi_1",
                "payment_method": "pm_1"},
        "started_at": T0, "attempts": 0, "next_at": T0, "acknowledged": true
    }))
    .unwrap();
    assert!(matches!(
        subscribe.job,
        Job::Subscribe {
            replaces: None,
            subscription: None,
            ..
        }
    ));
    let refund: Job = serde_json::from_value(json!({
        "job": "refund", "payment_intent": "pi_1", "charge_id": "chg_1", "amount": 1200,
        "reason": {"code": "domain_unavailable", "message": "taken"}
    }))
    .unwrap();
    assert!(matches!(
        refund,
        Job::Refund {
            keep_current: false,
            ..
        }
    ));
}

/// A paid -> paid change (paid -> team) whose cancel of the old subscription `sub_1` Stripe
/// refused for good: the new plan `sub_2` is in place, `sub_1` is still to cancel.
fn stale_world() -> (W, String) {
    let mut w = W::new();
    let id = w.create(paid_plan("spt_1"), None).unwrap();
    subscribe(&mut w, &id);
    let cat = w.catalog.clone();
    let up = UpdateRequest {
        service_id: "team".into(),
        payment_token: Some("spt_2".into()),
    };
    w.run(|d| update_service(d, &id, &up, &cat, "ch_team"))
        .unwrap();
    w.feed(&id, spt("spt_2", 5000)).unwrap();
    w.feed(
        &id,
        ActionResult::PaymentIntent {
            id: "pi_2".into(),
            payment_method: Some("pm_2".into()),
        },
    )
    .unwrap();
    w.feed(
        &id,
        ActionResult::Subscription {
            id: "sub_2".into(),
            status: "trialing".into(),
        },
    )
    .unwrap();
    assert_eq!(w.feed(&id, stripe_refuses("invalid_request")), Ok(()));
    (w, id)
}

fn cancelling(w: &W) -> Vec<&str> {
    w.account
        .billing
        .cancelling
        .iter()
        .map(|s| s.subscription_id.as_str())
        .collect()
}

#[test]
fn a_replaced_subscription_that_cannot_be_cancelled_is_retried_until_it_is() {
    let (mut w, id) = stale_world();
    assert_eq!(cancelling(&w), ["sub_1"], "kept on record");
    let r = w.res(&id);
    assert_eq!(
        (r.status, r.service_id.as_str()),
        (ResourceStatus::Complete, "team")
    );
    let m = r.message.clone().unwrap();
    assert!(
        m.contains("sub_1") && m.contains("still being cancelled"),
        "{m}"
    );
    let v = render(r, "a", &BTreeMap::new());
    assert!(v["complete"]["message"]
        .as_str()
        .unwrap()
        .contains("still being cancelled"));
    // The owner's dashboard and the operator's view say so too.
    let view = crate::dashboard::view(&w.account, w.now);
    assert!(view.plan.unwrap().contains("sub_1"));
    let op = crate::dashboard::operator_view(&w.account, w.now);
    assert_eq!(
        op["subscriptions_cancelling"][0]["subscription_id"],
        "sub_1"
    );

    // Retried from the alarm after a backoff, with the saga's key (the same DELETE).
    assert_eq!(w.next(&id), None);
    let wake = next_wake(&w.account).unwrap();
    assert!(wake > w.now);
    assert!(due(&w.account, w.now).is_empty());
    w.now = wake;
    assert_eq!(due(&w.account, w.now), vec![id.clone()]);
    let key = format!("{}:{id}:sub_1:cancel", w.account.id);
    assert_eq!(
        w.next(&id),
        Some(Action::CancelSubscription {
            key: key.clone(),
            subscription_id: "sub_1".into()
        })
    );
    // Still failing: a longer wait, recorded; the resource stays complete on the new plan.
    w.feed(&id, stripe_refuses("invalid_request")).unwrap();
    assert_eq!(w.account.billing.cancelling[0].attempts, 2);
    assert!(actions(&w).contains(&"subscription.cancel_retry_scheduled"));
    assert_eq!(w.res(&id).status, ResourceStatus::Complete);
    assert_eq!(w.next(&id), None);
    let later = next_wake(&w.account).unwrap();
    assert!(later - w.now > wake - T0 - 1, "backoff grows");
    w.now = later;
    w.feed(&id, ActionResult::Canceled).unwrap();
    assert!(cancelling(&w).is_empty());
    assert_eq!(w.res(&id).message, None);
    assert_eq!(next_wake(&w.account), None);
    assert_eq!(w.next(&id), None);
    let done = w
        .log
        .iter()
        .rev()
        .find(|r| r.action == "subscription.canceled")
        .unwrap();
    assert_eq!(done.after["subscription_id"], "sub_1");
    assert_eq!(done.after["replaced"], true);
    assert_eq!(verify_chain(&w.log), Ok(()));
}

#[test]
fn a_replaced_subscription_waits_for_the_plans_job() {
    let (mut w, id) = stale_world();
    let cat = w.catalog.clone();
    // Moving to free starts a job on the plan: the retry waits for it (no hot alarm).
    let up = UpdateRequest {
        service_id: "free".into(),
        payment_token: None,
    };
    w.run(|d| update_service(d, &id, &up, &cat, "ch_x"))
        .unwrap();
    w.now += 10_000;
    assert!(
        matches!(w.next(&id), Some(Action::CancelSubscription { subscription_id, .. }) if subscription_id == "sub_2")
    );
    assert_eq!(next_wake(&w.account), Some(T0));
    w.feed(&id, ActionResult::Canceled).unwrap();
    assert_eq!(w.res(&id).service_id, "free");
    assert!(w.res(&id).message.as_deref().unwrap().contains("sub_1"));
    assert!(
        matches!(w.next(&id), Some(Action::CancelSubscription { subscription_id, .. }) if subscription_id == "sub_1")
    );
}

#[test]
fn removing_the_plan_cancels_a_replaced_subscription_too() {
    let (mut w, id) = stale_world();
    let cat = w.catalog.clone();
    assert_eq!(w.run(|d| remove(d, &id, &cat)), Ok(false));
    assert!(
        matches!(w.next(&id), Some(Action::CancelSubscription { subscription_id, .. }) if subscription_id == "sub_2")
    );
    w.feed(&id, ActionResult::Canceled).unwrap();
    assert_eq!(w.res(&id).status, ResourceStatus::Removed);
    // At once, not after the backoff: removing made it due.
    assert!(
        matches!(w.next(&id), Some(Action::CancelSubscription { subscription_id, .. }) if subscription_id == "sub_1"),
        "{:?}",
        w.next(&id)
    );
    assert_eq!(due(&w.account, w.now), vec![id.clone()]);
    // Removing again while it is left is not complete either.
    assert_eq!(w.run(|d| remove(d, &id, &cat)), Ok(false));
    w.feed(&id, ActionResult::Canceled).unwrap();
    assert!(cancelling(&w).is_empty());
    assert_eq!(w.run(|d| remove(d, &id, &cat)), Ok(true));
    assert_eq!(next_wake(&w.account), None);
}

#[test]
fn closing_cancels_a_replaced_subscription_before_closed() {
    use crate::closing::{begin, step, Progress};
    let (mut w, id) = stale_world();
    let cat = w.catalog.clone();
    w.run(|d| {
        begin(d, "owner asked");
        Ok(())
    })
    .unwrap();
    let p = w.run(|d| step(d, &cat)).unwrap();
    assert_eq!(
        p,
        Progress::Releasing {
            resources: vec![id.clone()]
        }
    );
    w.feed(&id, ActionResult::Canceled).unwrap(); // sub_2, the live plan
    assert_eq!(w.res(&id).status, ResourceStatus::Removed);
    // The plan is gone, but sub_1 still bills: not closed yet.
    let p = w.run(|d| step(d, &cat)).unwrap();
    assert_eq!(
        p,
        Progress::Releasing {
            resources: vec![id.clone()]
        }
    );
    assert_eq!(w.account.status, crate::account::AccountStatus::Active);
    assert!(
        matches!(w.next(&id), Some(Action::CancelSubscription { subscription_id, .. }) if subscription_id == "sub_1")
    );
    w.feed(
        &id,
        ActionResult::Unavailable {
            message: "503".into(),
        },
    )
    .unwrap();
    assert!(matches!(
        w.run(|d| step(d, &cat)).unwrap(),
        Progress::Releasing { .. }
    ));
    w.now = next_wake(&w.account).unwrap();
    w.feed(&id, ActionResult::Canceled).unwrap();
    assert_eq!(w.run(|d| step(d, &cat)).unwrap(), Progress::Closed);
    assert_eq!(w.account.status, crate::account::AccountStatus::Closed);
    assert!(cancelling(&w).is_empty());
}

#[test]
fn a_replaced_subscription_stripe_reports_canceled_is_done() {
    let (mut w, id) = stale_world();
    w.run(|d| {
        stale_ended(d, "sub_1");
        Ok(())
    })
    .unwrap();
    assert!(cancelling(&w).is_empty());
    assert_eq!(w.res(&id).message, None);
    assert_eq!(next_wake(&w.account), None);
}

#[test]
fn billing_stored_before_the_retry_list_still_reads() {
    let b: crate::account::Billing =
        serde_json::from_value(json!({"customer_id": "cus_1"})).unwrap();
    assert_eq!(b.customer_id.as_deref(), Some("cus_1"));
    assert!(b.cancelling.is_empty());
}
