//! Credits paying fixed prices: a one-time price, a domain and a plan's first period draw on
//! the account's credits before the payment method; what they pay is not reserved against the
//! cap; a purchase that is not delivered gives them back.

use super::*;
use crate::ledger::Credit;

fn credits(w: &mut W, amount: u64) {
    w.account.ledger.credits.push(Credit {
        id: "credit_1".into(),
        key: "k".into(),
        fingerprint: String::new(),
        amount,
        currency: "usd".into(),
        reason: "startup".into(),
        granted_at: T0,
        expires_at: T0 + 86_400 * 30,
        used: 0,
        stripe_grant: None,
        attempts: 0,
        next_at: T0,
        error: None,
    });
}

fn charge<'a>(w: &'a W, id: &str) -> &'a crate::ledger::Charge {
    w.account
        .ledger
        .charges
        .iter()
        .find(|c| c.id == id)
        .unwrap()
}

#[test]
fn credits_pay_a_one_time_price_in_full_then_come_back_if_it_is_not_delivered() {
    let mut w = W::new();
    w.create(json!({"service_id": "free", "project_id": "p"}), None)
        .unwrap();
    credits(&mut w, 10_000);
    let id = w
        .create(json!({"service_id": "setup_db", "project_id": "p"}), None)
        .unwrap();
    w.answer(&id, json!({"amount": 4900}), Some("spt_once"))
        .unwrap();
    assert_eq!(
        w.account.ledger.spent(w.now),
        0,
        "credits are not the owner's money"
    );
    assert_eq!(w.account.ledger.credit_left(w.now), 5_100);
    // The token is still checked; then no charge: the backend is asked at once.
    assert!(matches!(w.next(&id), Some(Action::RetrieveToken { .. })));
    w.feed(&id, spt("spt_once", 10_000)).unwrap();
    let Some(Action::CallOperator { body, .. }) = w.next(&id) else {
        panic!("{:?}", w.next(&id))
    };
    assert_eq!(body["action"], "create");
    let c = charge(&w, "ch_once");
    assert_eq!(
        (c.amount, c.credited, c.status),
        (0, 4900, ChargeStatus::Charged)
    );
    // The backend cannot create it: the credits come back, nothing to refund.
    assert!(w.feed(&id, operator("error")).is_err());
    assert_eq!(w.res(&id).status, ResourceStatus::Errored);
    assert!(w.next(&id).is_none());
    assert_eq!(w.account.ledger.credit_left(w.now), 10_000);
    assert_eq!(charge(&w, "ch_once").status, ChargeStatus::Refunded);
}

#[test]
fn credits_pay_part_of_a_one_time_price_and_the_card_the_rest() {
    let mut w = W::new();
    w.create(json!({"service_id": "free", "project_id": "p"}), None)
        .unwrap();
    credits(&mut w, 1_000);
    let id = w
        .create(json!({"service_id": "setup_db", "project_id": "p"}), None)
        .unwrap();
    w.answer(&id, json!({"amount": 4900}), Some("spt_once"))
        .unwrap();
    assert_eq!(w.account.ledger.spent(w.now), 3_900);
    w.feed(&id, spt("spt_once", 10_000)).unwrap();
    let Some(Action::CreatePaymentIntent { amount, .. }) = w.next(&id) else {
        panic!("{:?}", w.next(&id))
    };
    assert_eq!(amount, 3_900, "the card pays what credits did not");
    w.feed(
        &id,
        ActionResult::PaymentIntent {
            id: "pi_once".into(),
            payment_method: None,
        },
    )
    .unwrap();
    // Not delivered: the card's part is refunded and the credits given back.
    assert!(w.feed(&id, operator("error")).is_err());
    let Some(Action::Refund { amount, .. }) = w.next(&id) else {
        panic!("{:?}", w.next(&id))
    };
    assert_eq!(amount, 3_900);
    w.feed(&id, ActionResult::Refunded { id: "re_1".into() })
        .unwrap();
    assert_eq!(w.account.ledger.credit_left(w.now), 1_000);
    assert_eq!(w.account.ledger.spent(w.now), 0);
}

#[test]
fn credits_pay_a_builtin_domain_in_full() {
    let (mut w, id) =
        super::buy_domain::domain_world("domain", super::buy_domain::builtin_candidates());
    credits(&mut w, 5_000);
    let req = ConfirmRequest {
        domain: "acme-app.apps.example.dev".into(),
        amount: 1200,
        payment_token: None,
    };
    w.run(|d| confirm_domain(d, &id, &req, "ch_dom")).unwrap();
    assert!(matches!(w.next(&id), Some(Action::RetrieveToken { .. })));
    w.feed(&id, spt("spt_d", 5_000)).unwrap();
    // Held first, then registered: no PaymentIntent in between.
    assert!(matches!(w.next(&id), Some(Action::ClaimDomain { .. })));
    w.feed(
        &id,
        ActionResult::Claimed {
            expires_at: T0 + 365 * 86_400,
        },
    )
    .unwrap();
    assert!(
        matches!(w.next(&id), Some(Action::ClaimDomain { .. })),
        "{:?}",
        w.next(&id)
    );
    w.feed(
        &id,
        ActionResult::Claimed {
            expires_at: T0 + 365 * 86_400,
        },
    )
    .unwrap();
    assert_eq!(w.res(&id).status, ResourceStatus::Complete);
    let c = charge(&w, "ch_dom");
    assert_eq!(
        (c.amount, c.credited, c.status),
        (0, 1200, ChargeStatus::Charged)
    );
    assert_eq!(w.account.ledger.credit_left(w.now), 3_800);
    assert_eq!(w.account.ledger.spent(w.now), 0);
}

#[test]
fn credits_pay_a_plans_first_period_and_its_card_is_saved_for_the_next() {
    let mut w = W::new();
    credits(&mut w, 5_000);
    let id = w
        .create(
            json!({"service_id": "paid", "project_id": "p",
                   "payment_credentials": {"type": "stripe_payment_token", "stripe_payment_token": "spt_p"}}),
            None,
        )
        .unwrap();
    assert_eq!(w.account.ledger.spent(w.now), 0);
    w.feed(&id, spt("spt_p", 5_000)).unwrap();
    w.feed(&id, ActionResult::Customer { id: "cus_1".into() })
        .unwrap();
    let Some(Action::CreateSetupIntent { token, .. }) = w.next(&id) else {
        panic!("{:?}", w.next(&id))
    };
    assert_eq!(token, "spt_p");
    w.feed(
        &id,
        ActionResult::SetupIntent {
            id: "seti_1".into(),
            payment_method: "pm_1".into(),
        },
    )
    .unwrap();
    let Some(Action::CreateSubscription {
        payment_method,
        trial_end,
        ..
    }) = w.next(&id)
    else {
        panic!("{:?}", w.next(&id))
    };
    assert_eq!(payment_method, "pm_1");
    assert!(trial_end.is_some(), "the paid first period is the trial");
    w.feed(
        &id,
        ActionResult::Subscription {
            id: "sub_1".into(),
            status: "trialing".into(),
        },
    )
    .unwrap();
    assert_eq!(w.res(&id).status, ResourceStatus::Complete);
    let c = w.account.ledger.charges.last().unwrap();
    assert_eq!(
        (c.amount, c.credited, c.status),
        (0, 2000, ChargeStatus::Charged)
    );
    assert_eq!(w.account.ledger.credit_left(w.now), 3_000);
}

#[test]
fn a_plan_whose_subscription_fails_gives_its_credits_back() {
    let mut w = W::new();
    credits(&mut w, 5_000);
    let id = w
        .create(
            json!({"service_id": "paid", "project_id": "p",
                   "payment_credentials": {"type": "stripe_payment_token", "stripe_payment_token": "spt_p"}}),
            None,
        )
        .unwrap();
    assert_eq!(w.account.ledger.credit_left(w.now), 3_000);
    w.feed(&id, spt("spt_p", 5_000)).unwrap();
    w.feed(&id, ActionResult::Customer { id: "cus_1".into() })
        .unwrap();
    w.feed(
        &id,
        ActionResult::SetupIntent {
            id: "seti_1".into(),
            payment_method: "pm_1".into(),
        },
    )
    .unwrap();
    let refused = ActionResult::Refused {
        error: ResourceError::Payment {
            error: PaymentError::Failed {
                code: "resource_missing".into(),
                message: "No such price".into(),
            },
        },
    };
    assert!(w.feed(&id, refused).is_err());
    assert_eq!(w.account.ledger.credit_left(w.now), 5_000, "given back");
    assert!(w
        .account
        .ledger
        .charges
        .iter()
        .all(|c| c.status == ChargeStatus::Released));
}
