use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;
use crate::account::{self, apply, Access, Account, AccountError, Ctx, Draft, Policy};
use crate::audit::{verify_chain, Actor, ActorKind, AuditRecord};
use crate::catalog::{Catalog, Registrar, Scope, DEFAULT_CATALOG};
use crate::ledger::ChargeStatus;
use crate::sealing::KeyRing;
use crate::stripe_api::{GrantedToken, PaymentError};
use crate::tokens::{self, hash, TokenKind};

mod buy_domain;
mod cancel;
mod constraints;
mod credits;
mod interop;
mod metered;
mod operator;
mod paid_operator;
mod refund;
mod subscribe;

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
    // A paid operator service with a fixed monthly price.
    services.push(json!({
        "id": "paid_db", "description": "Managed Postgres, $15/month", "categories": ["database"],
        "kind": "deployable", "pricing": {"type": "paid", "paid": {"type": "freeform", "freeform": "$15/month"}},
        "allowed_updates": [],
        "configuration_schema": {"type": "object", "properties": {"fail": {"type": "string"}}, "additionalProperties": false},
        "provider": {"type": "operator_backend", "url": "https://platform.test/operator/v1/resources",
                     "price": {"amount": 1500, "currency": "usd", "interval": "month", "stripe_price": "price_db_monthly"}}
    }));
    // A paid operator service with a one-time price (quoted, acknowledged, then charged).
    services.push(json!({
        "id": "setup_db", "description": "A database migration service, $49 once", "categories": ["database"],
        "kind": "deployable", "pricing": {"type": "paid", "paid": {"type": "freeform", "freeform": "$49 once"}},
        "allowed_updates": [],
        "configuration_schema": {"type": "object", "properties": {"fail": {"type": "string"}}, "additionalProperties": false},
        "provider": {"type": "operator_backend", "url": "https://platform.test/operator/v1/resources",
                     "price": {"amount": 4900, "currency": "usd"}}
    }));
    // A usage-based operator service (reported usage, billed by a Stripe meter).
    services.push(json!({
        "id": "metered_db", "description": "Serverless Postgres, billed by usage", "categories": ["database"],
        "kind": "deployable", "pricing": {"type": "paid", "paid": {"type": "freeform", "freeform": "$0.10 per GB-hour"}},
        "allowed_updates": [],
        "configuration_schema": {"type": "object", "properties": {"fail": {"type": "string"}}, "additionalProperties": false},
        "provider": {"type": "operator_backend", "url": "https://platform.test/operator/v1/resources",
                     "metered": {"event_name": "db_usage_cents", "stripe_price": "price_db_usage", "currency": "usd"}}
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
        let req = parse_create(
            body.to_string().as_bytes(),
            &self.catalog,
            CreateCall::Create,
            None,
        )?;
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

/// An operator backend's answer with `status`: a database URL when complete, a `quota` error
/// when `error`.
fn operator(status: &str) -> ActionResult {
    ActionResult::Operator {
        status: status.into(),
        access_configuration: Some(BTreeMap::from([(
            "DATABASE_URL".to_string(),
            "postgres://db".to_string(),
        )])),
        retry_after: None,
        error: (status == "error").then(|| ErrorInfo {
            code: "quota".into(),
            message: "over quota".into(),
        }),
        schema: None,
        message: None,
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
        trial_end > Some(w.now + 25 * 86_400),
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
        CreateCall::Create,
        None,
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
    let err = |b: &str| parse_create(b.as_bytes(), &c, CreateCall::Create, None).unwrap_err();
    assert!(matches!(err("{"), ResourceError::InvalidRequest { .. }));
    assert!(matches!(err("[]"), ResourceError::InvalidRequest { .. }));
    // An integer no double holds exactly is refused, not stored rounded.
    let big =
        r#"{"service_id":"api_token","project_id":"p","configuration":{"n":9007199254740993}}"#;
    assert!(
        matches!(err(big), ResourceError::InvalidRequest { message } if message.starts_with("/configuration/n: "))
    );
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
    let r = parse_create(br#"{"service_id":"paid","project_id":"p","payment_credentials":{"type":"crypto","wallet":"x"}}"#, &c, CreateCall::Create, None).unwrap();
    assert_eq!(r.payment_token, None);
    let w = W::new();
    assert_eq!(
        prepare_create(&w.account, &r, &c),
        Err(ResourceError::RequiresPaymentCredentials)
    );
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
    // Job shapes as states written before `replaces`, `subscription` and `keep_current`, as
    // stored: text, the tag first (`crate::tagged`).
    let subscribe: JobState = serde_json::from_str(&format!(
        r#"{{"job": {{"job": "subscribe", "target_service": "paid", "token": "spt_1",
            "amount": 2000, "currency": "usd", "stripe_price": "price_pro_monthly",
            "period_days": 30, "charge_id": "chg_1", "token_checked": true,
            "payment_intent": "pi_1", "payment_method": "pm_1"}},
            "started_at": {T0}, "attempts": 0, "next_at": {T0}, "acknowledged": true}}"#
    ))
    .unwrap();
    assert!(matches!(
        subscribe.job,
        Job::Subscribe {
            replaces: None,
            subscription: None,
            ..
        }
    ));
    let refund: Job = serde_json::from_str(
        r#"{"job": "refund", "payment_intent": "pi_1", "charge_id": "chg_1", "amount": 1200,
            "reason": {"code": "domain_unavailable", "message": "taken"}}"#,
    )
    .unwrap();
    assert!(matches!(
        refund,
        Job::Refund {
            keep_current: false,
            ..
        }
    ));
}
