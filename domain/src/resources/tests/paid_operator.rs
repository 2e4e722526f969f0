//! Paid operator services with a fixed recurring price: charged and subscribed like a paid
//! plan, then created by the backend; refunded and cancelled if the backend cannot create it;
//! cancelled on remove.

use super::*;

/// A paid database up to its subscription (token, customer, first period, subscription).
fn subscribed(w: &mut W, configuration: Value) -> String {
    w.create(json!({"service_id": "free", "project_id": "p"}), None)
        .unwrap();
    let id = w
        .create(
            json!({"service_id": "paid_db", "project_id": "p", "configuration": configuration,
                   "payment_credentials": {"type": "stripe_payment_token", "stripe_payment_token": "spt_db"}}),
            None,
        )
        .unwrap();
    assert_eq!(w.res(&id).status, ResourceStatus::Pending);
    assert_eq!(
        w.account.ledger.spent(w.now),
        1500,
        "the first period is reserved against the cap before any call"
    );
    assert!(matches!(w.next(&id), Some(Action::RetrieveToken { .. })));
    w.feed(&id, spt("spt_db", 5000)).unwrap();
    assert!(matches!(w.next(&id), Some(Action::CreateCustomer { .. })));
    w.feed(&id, ActionResult::Customer { id: "cus_1".into() })
        .unwrap();
    let Some(Action::CreatePaymentIntent { amount, .. }) = w.next(&id) else {
        panic!("{:?}", w.next(&id))
    };
    assert_eq!(amount, 1500);
    w.feed(
        &id,
        ActionResult::PaymentIntent {
            id: "pi_db".into(),
            payment_method: Some("pm_1".into()),
        },
    )
    .unwrap();
    let Some(Action::CreateSubscription { price, .. }) = w.next(&id) else {
        panic!("{:?}", w.next(&id))
    };
    assert_eq!(price, "price_db_monthly");
    w.feed(
        &id,
        ActionResult::Subscription {
            id: "sub_db".into(),
            status: "trialing".into(),
        },
    )
    .unwrap();
    id
}

#[test]
fn charged_and_subscribed_then_created_by_the_backend_and_cancelled_on_remove() {
    let mut w = W::new();
    let id = subscribed(&mut w, json!({}));
    // Subscribed: still pending, the backend is asked next.
    assert_eq!(w.res(&id).status, ResourceStatus::Pending);
    let Some(Action::CallOperator { body, .. }) = w.next(&id) else {
        panic!("{:?}", w.next(&id))
    };
    assert_eq!(body["action"], "create");
    w.feed(&id, operator("complete")).unwrap();
    let r = w.res(&id).clone();
    assert_eq!(r.status, ResourceStatus::Complete);
    assert!(matches!(
        &r.detail,
        Detail::Operator { billing: Some(b), .. } if b.subscription_id.as_deref() == Some("sub_db")
    ));
    let v = render(&r, "acct_x", &BTreeMap::new());
    assert_eq!(
        v["complete"]["access_configuration"]["DATABASE_URL"],
        "postgres://db"
    );
    // A retried create is the same resource: no second charge.
    let again = w
        .create(
            json!({"service_id": "paid_db", "project_id": "p",
                   "payment_credentials": {"type": "stripe_payment_token", "stripe_payment_token": "spt_db"}}),
            None,
        )
        .unwrap();
    assert_eq!(again, id);
    assert_eq!(w.account.ledger.spent(w.now), 1500);
    // Remove: the backend removes it, then the subscription is cancelled, then it is removed.
    let cat = w.catalog.clone();
    assert_eq!(w.run(|d| remove(d, &id, &cat)), Ok(false));
    let Some(Action::CallOperator { body, .. }) = w.next(&id) else {
        panic!()
    };
    assert_eq!(body["action"], "remove");
    w.feed(&id, operator("removed")).unwrap();
    assert_eq!(w.res(&id).status, ResourceStatus::Pending);
    let Some(Action::CancelSubscription {
        subscription_id, ..
    }) = w.next(&id)
    else {
        panic!("{:?}", w.next(&id))
    };
    assert_eq!(subscription_id, "sub_db");
    w.feed(&id, ActionResult::Canceled).unwrap();
    assert_eq!(w.res(&id).status, ResourceStatus::Removed);
    assert!(matches!(
        &w.res(&id).detail,
        Detail::Operator { billing: None, .. }
    ));
    let actions: Vec<&str> = w.log.iter().map(|r| r.action.as_str()).collect();
    for a in [
        "subscription.started",
        "resource.completed",
        "subscription.canceled",
        "resource.removed",
    ] {
        assert!(actions.contains(&a), "{a}: {actions:?}");
    }
}

#[test]
fn a_backend_that_cannot_create_it_cancels_the_subscription_and_refunds() {
    let mut w = W::new();
    let id = subscribed(&mut w, json!({"fail": "quota"}));
    assert!(matches!(w.next(&id), Some(Action::CallOperator { .. })));
    assert!(w.feed(&id, operator("error")).is_err());
    // Cancel first (nothing may go on billing), then refund the first period.
    assert_eq!(w.res(&id).status, ResourceStatus::Pending);
    let Some(Action::CancelSubscription {
        subscription_id, ..
    }) = w.next(&id)
    else {
        panic!("{:?}", w.next(&id))
    };
    assert_eq!(subscription_id, "sub_db");
    // Stripe no longer has it: cancelled all the same.
    w.feed(
        &id,
        ActionResult::Refused {
            error: ResourceError::Payment {
                error: PaymentError::Failed {
                    code: "resource_missing".into(),
                    message: "No such subscription".into(),
                },
            },
        },
    )
    .unwrap();
    let Some(Action::Refund {
        payment_intent,
        amount,
        ..
    }) = w.next(&id)
    else {
        panic!("{:?}", w.next(&id))
    };
    assert_eq!((payment_intent.as_str(), amount), ("pi_db", 1500));
    w.feed(&id, ActionResult::Refunded { id: "re_1".into() })
        .unwrap();
    let r = w.res(&id).clone();
    assert_eq!(r.status, ResourceStatus::Errored);
    assert!(r.error.unwrap().message.contains("The charge was refunded"));
    assert!(matches!(&r.detail, Detail::Operator { billing: None, .. }));
    assert_eq!(w.account.ledger.spent(w.now), 0, "refunded: nothing spent");
    // Removing the errored resource calls nothing more.
    let cat = w.catalog.clone();
    assert_eq!(w.run(|d| remove(d, &id, &cat)), Ok(true));
}

#[test]
fn the_cap_refuses_a_paid_service_before_any_call() {
    let mut w = W::new();
    w.account.ledger.cap = 1000;
    w.create(json!({"service_id": "free", "project_id": "p"}), None)
        .unwrap();
    let before = w.account.clone();
    assert!(matches!(
        w.create(
            json!({"service_id": "paid_db", "project_id": "p",
                   "payment_credentials": {"type": "stripe_payment_token", "stripe_payment_token": "spt_db"}}),
            None,
        ),
        Err(ResourceError::SpendingCapExceeded { amount: 1500, .. })
    ));
    assert_eq!(w.account, before);
    assert_eq!(
        w.create(json!({"service_id": "paid_db", "project_id": "p"}), None),
        Err(ResourceError::RequiresPaymentCredentials)
    );
}

impl W {
    /// The same create again, with the orchestrator's answer to its `needs_information`.
    pub(super) fn answer(
        &mut self,
        id: &str,
        info: Value,
        token: Option<&str>,
    ) -> Result<(), ResourceError> {
        let info = info.as_object().cloned().unwrap();
        let cat = self.catalog.clone();
        let token = token.map(str::to_string);
        self.run(|d| submit_information(d, id, &info, token, &cat, "ch_once"))
    }
}

#[test]
fn a_one_time_price_is_quoted_acknowledged_charged_then_created() {
    let mut w = W::new();
    w.create(json!({"service_id": "free", "project_id": "p"}), None)
        .unwrap();
    // No payment token is needed for the quote: nothing is charged yet.
    let id = w
        .create(json!({"service_id": "setup_db", "project_id": "p"}), None)
        .unwrap();
    let r = w.res(&id).clone();
    assert_eq!(r.status, ResourceStatus::NeedsInformation);
    assert!(r.job.is_none());
    assert_eq!(w.account.ledger.spent(w.now), 0);
    let v = render(&r, "acct_x", &BTreeMap::new());
    assert_eq!(
        v["needs_information"]["schema"]["properties"]["amount"]["const"],
        4900
    );
    assert!(v["needs_information"]["message"]
        .as_str()
        .unwrap()
        .contains("$49.00"));
    // A wrong amount is not an acknowledgement; without a token nothing can be charged.
    let before = w.account.clone();
    assert!(matches!(
        w.answer(&id, json!({"amount": 100}), Some("spt_once")),
        Err(ResourceError::InvalidInformation { .. })
    ));
    assert_eq!(
        w.answer(&id, json!({"amount": 4900}), None),
        Err(ResourceError::RequiresPaymentCredentials)
    );
    assert_eq!(w.account, before);
    // Acknowledged: reserved against the cap, then token, charge, backend.
    w.answer(&id, json!({"amount": 4900}), Some("spt_once"))
        .unwrap();
    assert_eq!(w.res(&id).status, ResourceStatus::Pending);
    assert_eq!(w.account.ledger.spent(w.now), 4900);
    assert!(matches!(w.next(&id), Some(Action::RetrieveToken { .. })));
    w.feed(&id, spt("spt_once", 10_000)).unwrap();
    let Some(Action::CreatePaymentIntent {
        amount, customer, ..
    }) = w.next(&id)
    else {
        panic!("{:?}", w.next(&id))
    };
    assert_eq!((amount, customer), (4900, None));
    w.feed(
        &id,
        ActionResult::PaymentIntent {
            id: "pi_once".into(),
            payment_method: None,
        },
    )
    .unwrap();
    let Some(Action::CallOperator { body, .. }) = w.next(&id) else {
        panic!("{:?}", w.next(&id))
    };
    assert_eq!(body["action"], "create");
    // The same answer again (a retry) changes nothing: one charge.
    let during = w.account.clone();
    w.answer(&id, json!({"amount": 4900}), Some("spt_once"))
        .unwrap();
    assert_eq!(w.account, during);
    // The backend cannot create it: the charge is refunded (no subscription to cancel).
    assert!(w.feed(&id, operator("error")).is_err());
    let Some(Action::Refund {
        payment_intent,
        amount,
        ..
    }) = w.next(&id)
    else {
        panic!("{:?}", w.next(&id))
    };
    assert_eq!((payment_intent.as_str(), amount), ("pi_once", 4900));
    w.feed(&id, ActionResult::Refunded { id: "re_1".into() })
        .unwrap();
    assert_eq!(w.res(&id).status, ResourceStatus::Errored);
    assert_eq!(w.account.ledger.spent(w.now), 0);
}

#[test]
fn a_declined_one_time_charge_puts_the_quote_back() {
    let mut w = W::new();
    w.create(json!({"service_id": "free", "project_id": "p"}), None)
        .unwrap();
    let id = w
        .create(
            json!({"service_id": "setup_db", "project_id": "p",
                   "payment_credentials": {"type": "stripe_payment_token", "stripe_payment_token": "spt_low"}}),
            None,
        )
        .unwrap();
    // The create's token is used when the answer carries none.
    w.answer(&id, json!({"amount": 4900}), None).unwrap();
    assert!(matches!(
        w.next(&id),
        Some(Action::RetrieveToken { token }) if token == "spt_low"
    ));
    // The token cannot cover it: nothing charged, the money released, the quote back.
    assert!(w.feed(&id, spt("spt_low", 1000)).is_err());
    let r = w.res(&id).clone();
    assert_eq!(r.status, ResourceStatus::NeedsInformation);
    assert!(r.message.unwrap().contains("nothing was charged"));
    assert_eq!(w.account.ledger.spent(w.now), 0);
    assert!(information_schema(w.res(&id)).is_some());
}

/// An invoice unpaid past the grace period holds the service (`stripe_events::enforce_grace`
/// sets `hold.unpaid`): the backend is asked to suspend it, and to resume it once paid.
#[test]
fn an_unpaid_service_is_suspended_at_its_backend_and_resumed_when_paid() {
    let mut w = W::new();
    let id = subscribed(&mut w, json!({}));
    w.feed(&id, operator("complete")).unwrap();
    let cat = w.catalog.clone();
    let reconcile = |w: &mut W| {
        w.run(|d| {
            crate::usage::reconcile(d, &cat);
            Ok(())
        })
        .unwrap()
    };
    reconcile(&mut w);
    assert!(w.res(&id).job.is_none(), "nothing to hold");
    let i = w.account.resources.iter().position(|r| r.id == id).unwrap();
    w.account.resources[i].hold = Some(crate::resources::model::Hold {
        past_due_since: Some(T0),
        unpaid: true,
        ..Default::default()
    });
    assert_eq!(crate::usage::next_wake(&w.account, w.now), Some(w.now));
    reconcile(&mut w);
    let Some(Action::CallOperator { body, .. }) = w.next(&id) else {
        panic!("{:?}", w.next(&id))
    };
    assert_eq!(body["action"], "suspend");
    w.feed(&id, operator("complete")).unwrap();
    let h = w.res(&id).hold.clone().unwrap();
    assert!(h.unpaid && h.suspended);
    assert!(w
        .res(&id)
        .message
        .as_deref()
        .unwrap()
        .contains("invoice is unpaid"));
    // The cap does not hold a fixed-price service.
    w.account.ledger.cap = 0;
    reconcile(&mut w);
    assert!(w.res(&id).hold.as_ref().unwrap().cap.is_none());
    // Paid (the webhook clears `unpaid`): resumed.
    w.account.resources[i].hold.as_mut().unwrap().unpaid = false;
    w.account.resources[i].hold.as_mut().unwrap().past_due_since = None;
    reconcile(&mut w);
    let Some(Action::CallOperator { body, .. }) = w.next(&id) else {
        panic!("{:?}", w.next(&id))
    };
    assert_eq!(body["action"], "resume");
    w.feed(&id, operator("complete")).unwrap();
    assert_eq!(w.res(&id).hold, None);
    assert_eq!(w.res(&id).message, None);
}
