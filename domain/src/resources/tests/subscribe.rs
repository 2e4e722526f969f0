//! Subscribe (paid plans, plan changes, paid -> paid).

use super::*;

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
fn plan_changes_follow_allowed_updates() {
    let mut w = W::new();
    let id = w.create(paid_plan("spt_1"), None).unwrap();
    subscribe(&mut w, &id);
    let cat = w.catalog.clone();
    let up = |s: &str, t: Option<&str>| UpdateRequest {
        service_id: Some(s.into()),
        configuration: None,
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
        service_id: Some(s.into()),
        configuration: None,
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
        service_id: Some("paid".into()),
        configuration: None,
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
fn paid_to_paid_cancels_the_old_subscription_in_the_same_saga() {
    let mut w = W::new();
    let id = w.create(paid_plan("spt_1"), None).unwrap();
    subscribe(&mut w, &id);
    let cat = w.catalog.clone();
    let up = UpdateRequest {
        service_id: Some("team".into()),
        configuration: None,
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
        service_id: Some("team".into()),
        configuration: None,
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
        service_id: Some("team".into()),
        configuration: None,
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
