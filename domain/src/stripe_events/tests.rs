use super::*;
use crate::account::{self, apply, Account, Ctx, Policy};
use crate::audit::{Actor, ActorKind};
use crate::resources::{self, Resource, Settings};

const T0: i64 = 1_800_000_000;

fn ctx(now: i64) -> Ctx {
    Ctx {
        now,
        actor: Actor::new(ActorKind::Stripe, None),
        request_id: None,
        policy: Policy::default(),
    }
}

/// An account with a complete paid plan on subscription `sub_1` and a complete domain charged
/// through `pi_dom`.
fn account() -> Account {
    let new = crate::account::test_new_account();
    let mut a = account::create(new, &ctx(T0)).account;
    a.resources.push(Resource {
        id: "res_plan".into(),
        service_id: "paid".into(),
        project_id: "p".into(),
        kind: crate::catalog::ServiceKind::Plan,
        status: ResourceStatus::Complete,
        created_at: T0,
        updated_at: T0,
        configuration: json!({}),
        detail: Detail::Plan {
            subscription_id: Some("sub_1".into()),
            subscription_status: Some("trialing".into()),
            past_due_since: None,
            suspended: false,
        },
        job: None,
        error: None,
        message: None,
        origin: None,
        environment: None,
        linked: false,
        hold: None,
    });
    a.ledger
        .record_charge("chg_dom", "res_dom", 1200, "usd", T0, "domain");
    a.ledger.settle("chg_dom", "pi_dom");
    a
}

fn event(id: &str, kind: &str, created: i64, object: Value) -> StripeEvent {
    StripeEvent {
        id: id.into(),
        kind: kind.into(),
        created,
        object,
    }
}

fn sub(status: &str) -> Value {
    json!({"id": "sub_1", "object": "subscription", "status": status, "metadata": {"account_id": "acct_aaaaaaaaaaaaaaaa"}})
}

fn invoice(id: &str, paid: bool) -> Value {
    json!({"id": id, "object": "invoice", "subscription": "sub_1", "currency": "usd",
           "amount_paid": if paid { 2000 } else { 0 }, "status": if paid { "paid" } else { "open" }})
}

/// Applies events to a fresh set of applied ids; see [`deliver_with`].
fn deliver(a: &Account, events: &[StripeEvent], now: i64) -> (Account, Vec<EventOutcome>) {
    deliver_with(a, &mut std::collections::BTreeSet::new(), events, now)
}

/// Applies events like the account object does: ids in `applied` are duplicates and change
/// nothing; the others are applied and join `applied`.
fn deliver_with(
    a: &Account,
    applied: &mut std::collections::BTreeSet<String>,
    events: &[StripeEvent],
    now: i64,
) -> (Account, Vec<EventOutcome>) {
    let mut a = a.clone();
    let mut outcomes = Vec::new();
    let settings = Settings::default();
    for e in events {
        if applied.contains(&e.id) {
            outcomes.push(EventOutcome::Duplicate);
            continue;
        }
        let next = apply(&a, &ctx(now), |d| {
            Ok::<_, ()>(apply_event(d, e, &settings, &[]))
        });
        applied.insert(e.id.clone());
        a = next.account;
        outcomes.push(next.result.unwrap());
    }
    (a, outcomes)
}

/// The part of the state that events decide (not the audit trail or arrival times).
fn decided(a: &Account) -> Value {
    let mut charges: Vec<Value> = a
        .ledger
        .charges
        .iter()
        .map(|c| json!([c.id, c.amount, c.refunded, c.month]))
        .collect();
    charges.sort_by_key(|v| v.to_string());
    json!({
        "resources": serde_json::to_value(&a.resources).unwrap(),
        "charges": charges,
        "subscriptions": serde_json::to_value(&a.stripe.subscriptions).unwrap(),
        "invoices": serde_json::to_value(&a.stripe.invoices).unwrap(),
    })
}

fn story() -> Vec<StripeEvent> {
    vec![
        event(
            "evt_01",
            "customer.subscription.created",
            T0,
            sub("trialing"),
        ),
        event(
            "evt_02",
            "customer.subscription.updated",
            T0 + 100,
            sub("active"),
        ),
        event(
            "evt_03",
            "invoice.payment_failed",
            T0 + 200,
            invoice("in_1", false),
        ),
        event(
            "evt_04",
            "customer.subscription.updated",
            T0 + 200,
            sub("past_due"),
        ),
        event("evt_05", "invoice.paid", T0 + 300, invoice("in_1", true)),
        event(
            "evt_06",
            "customer.subscription.updated",
            T0 + 300,
            sub("active"),
        ),
        event(
            "evt_07",
            "charge.refunded",
            T0 + 400,
            json!({"id": "ch_1", "object": "charge", "payment_intent": "pi_dom", "amount": 1200, "amount_refunded": 500}),
        ),
        event(
            "evt_08",
            "charge.refunded",
            T0 + 500,
            json!({"id": "ch_1", "object": "charge", "payment_intent": "pi_dom", "amount": 1200, "amount_refunded": 1200}),
        ),
        event(
            "evt_09",
            "charge.dispute.created",
            T0 + 450,
            json!({"id": "dp_1", "object": "dispute", "payment_intent": "pi_dom", "amount": 800}),
        ),
        event(
            "evt_10",
            "customer.created",
            T0,
            json!({"id": "cus_1", "object": "customer"}),
        ),
    ]
}

#[test]
fn parses_events_strictly() {
    let body = json!({"id": "evt_1", "object": "event", "type": "invoice.paid", "created": 5, "data": {"object": {"id": "in_1"}}});
    let e = parse_event(body.to_string().as_bytes()).unwrap();
    assert_eq!(
        (e.id.as_str(), e.kind.as_str(), e.created),
        ("evt_1", "invoice.paid", 5)
    );
    for bad in [
        json!({"type": "x", "created": 1, "data": {"object": {}}}),
        json!({"id": "nope", "type": "x", "created": 1, "data": {"object": {}}}),
        json!({"id": "evt_1", "created": 1, "data": {"object": {}}}),
        json!({"id": "evt_1", "type": "x", "created": "1", "data": {"object": {}}}),
        json!({"id": "evt_1", "type": "x", "created": 1, "data": {}}),
    ] {
        assert!(parse_event(bad.to_string().as_bytes()).is_err(), "{bad}");
    }
    assert!(parse_event(b"{").is_err());
}

#[test]
fn finds_the_account() {
    let e = event(
        "evt_1",
        "invoice.paid",
        1,
        json!({"subscription_details": {"metadata": {"account_id": "acct_aaaaaaaaaaaaaaaa"}}, "customer": "cus_1", "subscription": "sub_1"}),
    );
    assert_eq!(e.account_hint().as_deref(), Some("acct_aaaaaaaaaaaaaaaa"));
    assert_eq!(e.references(), ["cus_1", "sub_1"]);
    let e = event(
        "evt_1",
        "x",
        1,
        json!({"metadata": {"account_id": "not an account"}}),
    );
    assert_eq!(e.account_hint(), None);
}

#[test]
fn the_story_in_order() {
    let (a, outcomes) = deliver(&account(), &story(), T0 + 1000);
    assert!(
        outcomes[..8].iter().all(|o| *o == EventOutcome::Applied),
        "{outcomes:?}"
    );
    // The dispute (800) comes after a full refund (1200): nothing left to correct.
    assert_eq!(outcomes[8], EventOutcome::Stale);
    assert_eq!(outcomes[9], EventOutcome::Ignored);
    let plan = &a.resources[0];
    assert!(
        matches!(&plan.detail, Detail::Plan { subscription_status: Some(s), past_due_since: None, suspended: false, .. } if s == "active")
    );
    let renewal = a.ledger.charges.iter().find(|c| c.id == "in_1").unwrap();
    assert_eq!(renewal.amount, 2000);
    let dom = a.ledger.charges.iter().find(|c| c.id == "chg_dom").unwrap();
    assert_eq!(dom.refunded, 1200, "the larger of refund and dispute");
    assert_eq!(a.ledger.spent(T0 + 1000), 2000);
}

#[test]
fn duplicates_change_nothing_and_are_not_recorded() {
    let events = story();
    let mut applied = std::collections::BTreeSet::new();
    let (a, _) = deliver_with(&account(), &mut applied, &events, T0 + 1000);
    let (b, outcomes) = deliver_with(&a, &mut applied, &events, T0 + 1001);
    assert!(outcomes.iter().all(|o| *o == EventOutcome::Duplicate));
    assert_eq!(a, b, "not even the audit chain moved");
}

#[test]
fn an_older_event_never_undoes_a_newer_one() {
    let events = story();
    // The recovery first, then the failure that preceded it.
    let (a, outcomes) = deliver(
        &account(),
        &[
            events[4].clone(),
            events[5].clone(),
            events[2].clone(),
            events[3].clone(),
        ],
        T0 + 1000,
    );
    assert_eq!(outcomes[2], EventOutcome::Stale);
    assert_eq!(outcomes[3], EventOutcome::Stale);
    assert!(
        matches!(&a.resources[0].detail, Detail::Plan { subscription_status: Some(s), past_due_since: None, .. } if s == "active")
    );
}

/// xorshift64*: a deterministic source for permutations without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn every_permutation_with_duplicates_reaches_the_same_state() {
    let events = story();
    let (expected, _) = deliver(&account(), &events, T0 + 1000);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..500 {
        let mut batch: Vec<StripeEvent> = events.clone();
        // Up to 5 duplicates of random events.
        for _ in 0..(rng.next() % 6) {
            let i = (rng.next() as usize) % events.len();
            batch.push(events[i].clone());
        }
        // Fisher-Yates.
        for i in (1..batch.len()).rev() {
            let j = (rng.next() as usize) % (i + 1);
            batch.swap(i, j);
        }
        let (got, _) = deliver(&account(), &batch, T0 + 1000);
        assert_eq!(
            decided(&got),
            decided(&expected),
            "round {round}: {:?}",
            batch.iter().map(|e| &e.id).collect::<Vec<_>>()
        );
    }
}

#[test]
fn an_unpaid_invoice_suspends_the_plan_after_the_grace_period() {
    let events = story();
    let (a, _) = deliver(&account(), &events[2..3], T0 + 300);
    assert!(
        matches!(a.resources[0].detail, Detail::Plan { past_due_since: Some(s), suspended: false, .. } if s == T0 + 200)
    );
    let grace = 3 * 86_400;
    assert_eq!(next_grace_deadline(&a, grace), Some(T0 + 200 + grace));
    let early = apply(&a, &ctx(T0 + 200 + grace - 1), |d| {
        Ok::<_, ()>(enforce_grace(d, grace))
    });
    assert_eq!(early.result, Ok(0));
    let late = apply(&a, &ctx(T0 + 200 + grace), |d| {
        Ok::<_, ()>(enforce_grace(d, grace))
    });
    assert_eq!(late.result, Ok(1));
    let suspended = late.account;
    let v = resources::render(&suspended.resources[0], &suspended.id, &Default::default());
    assert_eq!(v["status"], "errored");
    assert_eq!(v["error"]["code"], "plan_suspended");
    // Paying resumes it.
    let (resumed, _) = deliver(&suspended, &events[4..5], T0 + 200 + grace + 10);
    assert!(matches!(
        resumed.resources[0].detail,
        Detail::Plan {
            past_due_since: None,
            suspended: false,
            ..
        }
    ));
    assert_eq!(
        resources::render(&resumed.resources[0], "a", &Default::default())["status"],
        "complete"
    );
}

#[test]
fn a_lost_charge_answer_is_completed_by_the_webhook() {
    let mut a = account();
    a.resources.retain(|r| r.id != "res_plan");
    a.billing.customer_id = Some("cus_1".into());
    a.resources.push(Resource {
        id: "res_new".into(),
        service_id: "paid".into(),
        project_id: "p".into(),
        kind: crate::catalog::ServiceKind::Plan,
        status: ResourceStatus::Pending,
        created_at: T0,
        updated_at: T0,
        configuration: json!({}),
        detail: Detail::Plan {
            subscription_id: None,
            subscription_status: None,
            past_due_since: None,
            suspended: false,
        },
        job: Some(resources::JobState {
            job: Job::Subscribe {
                target_service: "paid".into(),
                token: "spt_1".into(),
                amount: 2000,
                currency: "usd".into(),
                stripe_price: "price_x".into(),
                period_days: 30,
                charge_id: "chg_new".into(),
                token_checked: true,
                payment_intent: None,
                payment_method: None,
                replaces: None,
                subscription: None,
                then_operator: None,
            },
            started_at: T0,
            attempts: 1,
            next_at: T0 + 60,
            acknowledged: true,
        }),
        error: None,
        message: None,
        origin: None,
        environment: None,
        linked: false,
        hold: None,
    });
    let pi = json!({"id": "pi_9", "object": "payment_intent", "amount": 2000, "payment_method": "pm_9", "metadata": {"resource_id": "res_new"}});
    // A charge of another amount is not ours to settle.
    let wrong = json!({"id": "pi_8", "object": "payment_intent", "amount": 1, "metadata": {"resource_id": "res_new"}});
    let (a, outcomes) = deliver(
        &a,
        &[
            event("evt_w", "payment_intent.succeeded", T0, wrong),
            event("evt_p", "payment_intent.succeeded", T0, pi),
        ],
        T0 + 5,
    );
    assert_eq!(outcomes, [EventOutcome::Ignored, EventOutcome::Applied]);
    // While the job's own call is in flight, the webhook leaves it to that call.
    let busy = apply(&a, &ctx(T0 + 6), |d| {
        let e = event(
            "evt_q",
            "payment_intent.payment_failed",
            T0,
            json!({"id": "pi_9", "amount": 2000, "metadata": {"resource_id": "res_new"}}),
        );
        Ok::<_, ()>(apply_event(
            d,
            &e,
            &Settings::default(),
            &["res_new".to_string()],
        ))
    });
    assert_eq!(busy.result, Ok(EventOutcome::Ignored));
    assert!(
        matches!(resources::next_action(&a, "res_new", T0 + 5), Some(resources::Action::CreateSubscription { payment_method, .. }) if payment_method == "pm_9")
    );
}

#[test]
fn applied_event_ids_are_not_part_of_the_state() {
    let (a, _) = deliver(&account(), &story(), T0 + 1000);
    let text = serde_json::to_string(&a).unwrap();
    assert!(!text.contains("evt_01"), "{text}");
    // A state written when the ids lived in it still reads, ids included, so the account
    // object can move them to its table.
    // Edited as text: a state is stored as text, its enums' tags first (`crate::tagged`).
    let old_text = text.replacen(
        r#""stripe":{"#,
        &format!(r#""stripe":{{"processed":{{"evt_old":{T0}}},"#),
        1,
    );
    let old: Account = serde_json::from_str(&old_text).unwrap();
    assert_eq!(old.stripe.processed.get("evt_old"), Some(&T0));
}

fn db(a: &Account) -> &Resource {
    a.resources
        .iter()
        .find(|r| r.id == "res_db")
        .expect("res_db")
}

fn with_paid_database(mut a: Account) -> Account {
    a.resources.push(Resource {
        id: "res_db".into(),
        service_id: "paid_db".into(),
        project_id: "p".into(),
        kind: crate::catalog::ServiceKind::Deployable,
        status: ResourceStatus::Complete,
        created_at: T0,
        updated_at: T0,
        configuration: json!({}),
        detail: Detail::Operator {
            access_configuration: None,
            asked: None,
            billing: Some(crate::resources::model::OperatorBilling {
                subscription_id: Some("sub_db".into()),
                payment_intent: "pi_db".into(),
                charge_id: "chg_db".into(),
                amount: 1500,
            }),
            usage: None,
        },
        job: None,
        error: None,
        message: None,
        origin: None,
        environment: None,
        linked: false,
        hold: None,
    });
    a
}

/// A paid operator service's renewal invoice is recorded once, against that resource (its
/// subscription is on the resource's `billing`, not a plan's).
#[test]
fn an_operator_service_renewal_is_attributed_to_its_resource() {
    let a = with_paid_database(account());
    let renewal = json!({"id": "in_db", "object": "invoice", "subscription": "sub_db",
                         "currency": "usd", "amount_paid": 1500, "status": "paid"});
    let (a, outcomes) = deliver(
        &a,
        &[
            event("evt_db1", "invoice.paid", T0 + 10, renewal.clone()),
            event("evt_db2", "invoice.paid", T0 + 11, renewal),
        ],
        T0 + 20,
    );
    assert_eq!(outcomes[0], EventOutcome::Applied);
    let charges: Vec<_> = a
        .ledger
        .charges
        .iter()
        .filter(|c| c.id == "in_db")
        .collect();
    assert_eq!(charges.len(), 1, "recorded once");
    assert_eq!(
        (charges[0].resource_id.as_str(), charges[0].amount),
        ("res_db", 1500)
    );
}

/// A paid operator service whose renewal stays unpaid past the grace period is held stopped
/// (`hold.unpaid`; `usage::reconcile` then asks its backend to suspend it), and let go once the
/// invoice is paid.
#[test]
fn an_unpaid_operator_service_is_held_after_the_grace_period_until_paid() {
    let grace = 3600;
    let a = with_paid_database(account());
    let unpaid = json!({"id": "in_db2", "object": "invoice", "subscription": "sub_db",
                        "currency": "usd", "amount_paid": 0, "status": "open"});
    let (a, _) = deliver(
        &a,
        &[event("evt_f1", "invoice.payment_failed", T0 + 10, unpaid)],
        T0 + 20,
    );
    let h = db(&a).hold.clone().expect("past due");
    assert_eq!((h.past_due_since, h.unpaid), (Some(T0 + 10), false));
    assert_eq!(next_grace_deadline(&a, grace), Some(T0 + 10 + grace));
    // Within the grace period nothing is held.
    let applied = crate::account::apply(&a, &ctx(T0 + 100), |d| {
        Ok::<_, crate::account::AccountError>(enforce_grace(d, grace))
    });
    assert_eq!(applied.result, Ok(0));
    // After it, the resource is held and says why.
    let applied = crate::account::apply(&a, &ctx(T0 + 10 + grace), |d| {
        Ok::<_, crate::account::AccountError>(enforce_grace(d, grace))
    });
    assert_eq!(applied.result, Ok(1));
    let held = applied.account;
    assert!(db(&held)
        .hold
        .as_ref()
        .is_some_and(|h| h.unpaid && !h.suspended));
    let v = resources::render(db(&held), &held.id, &Default::default());
    assert_eq!(v["paused"]["reason"], "invoice_unpaid", "{v}");
    assert_eq!(next_grace_deadline(&held, grace), None);
    // Paid: the hold is lifted (the backend is asked to resume it if it had suspended it).
    let paid = json!({"id": "in_db2", "object": "invoice", "subscription": "sub_db",
                      "currency": "usd", "amount_paid": 1500, "status": "paid"});
    let (after, _) = deliver(
        &held,
        &[event("evt_p1", "invoice.paid", T0 + 20 + grace, paid)],
        T0 + 30 + grace,
    );
    assert_eq!(db(&after).hold, None);
}
