//! Usage-based operator services: subscribed to a metered price (nothing charged), created by
//! the backend; usage reported once, counted against the cap, sent as meter events; the cap
//! pauses them (`suspend`) and lifting it resumes them (`resume`).

use super::*;
use crate::audit_action::AuditAction;
use crate::resources::model::UsageBilling;
use crate::usage::{self, UsageError, UsageReport};

/// A usage-based database up to its subscription: token, customer, SetupIntent, metered
/// subscription. Nothing is charged or reserved.
fn subscribed(w: &mut W, configuration: Value) -> String {
    w.create(json!({"service_id": "free", "project_id": "p"}), None)
        .unwrap();
    let id = w
        .create(
            json!({"service_id": "metered_db", "project_id": "p", "configuration": configuration,
                   "payment_credentials": {"type": "stripe_payment_token", "stripe_payment_token": "spt_m"}}),
            None,
        )
        .unwrap();
    assert_eq!(w.res(&id).status, ResourceStatus::Pending);
    assert_eq!(w.account.ledger.spent(w.now), 0, "nothing is reserved");
    assert!(matches!(w.next(&id), Some(Action::RetrieveToken { .. })));
    w.feed(&id, spt("spt_m", 100)).unwrap();
    assert!(matches!(w.next(&id), Some(Action::CreateCustomer { .. })));
    w.feed(&id, ActionResult::Customer { id: "cus_1".into() })
        .unwrap();
    let Some(Action::CreateSetupIntent {
        token, customer, ..
    }) = w.next(&id)
    else {
        panic!("{:?}", w.next(&id))
    };
    assert_eq!((token.as_str(), customer.as_str()), ("spt_m", "cus_1"));
    w.feed(
        &id,
        ActionResult::SetupIntent {
            id: "seti_1".into(),
            payment_method: "pm_1".into(),
        },
    )
    .unwrap();
    let Some(Action::CreateSubscription {
        price,
        payment_method,
        trial_end,
        ..
    }) = w.next(&id)
    else {
        panic!("{:?}", w.next(&id))
    };
    assert_eq!(
        (price.as_str(), payment_method.as_str(), trial_end),
        ("price_db_usage", "pm_1", None),
        "a metered price bills in arrears, from now"
    );
    w.feed(
        &id,
        ActionResult::Subscription {
            id: "sub_m".into(),
            status: "active".into(),
        },
    )
    .unwrap();
    id
}

/// A complete usage-based database.
fn running(w: &mut W) -> String {
    let id = subscribed(w, json!({}));
    let Some(Action::CallOperator { body, .. }) = w.next(&id) else {
        panic!("{:?}", w.next(&id))
    };
    assert_eq!(body["action"], "create");
    w.feed(&id, operator("complete")).unwrap();
    assert_eq!(w.res(&id).status, ResourceStatus::Complete);
    id
}

fn report(id: &str, key: &str, amount: u64, now: i64) -> Value {
    json!({"account_id": "acct_aaaaaaaaaaaaaaaa", "resource_id": id, "quantity": amount * 10,
           "amount": amount, "currency": "usd",
           "occurred_at": crate::time::format_rfc3339(now - 60), "idempotency_key": key})
}

/// Reports usage as `POST /v1/usage` does: parsed, then recorded.
fn send(w: &mut W, body: Value) -> Result<(crate::ledger::UsageRecord, bool), UsageError> {
    let r = UsageReport::parse(&body, w.now)?;
    let cat = w.catalog.clone();
    let mut refused = None;
    let out = w.run(|d| match usage::report(d, &r, &cat) {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            refused = Some(e);
            Err(ResourceError::Unavailable)
        }
    });
    match (out, refused) {
        (Ok(Some(v)), _) => Ok(v),
        (_, Some(e)) => Err(e),
        (other, None) => panic!("{other:?}"),
    }
}

fn hold(w: &W, id: &str) -> crate::resources::model::Hold {
    w.res(id).hold.clone().unwrap_or_default()
}

fn usage_of(w: &W, id: &str) -> UsageBilling {
    match &w.res(id).detail {
        Detail::Operator { usage: Some(u), .. } => u.clone(),
        other => panic!("{other:?}"),
    }
}

fn reconcile(w: &mut W) {
    let cat = w.catalog.clone();
    w.run(|d| {
        usage::reconcile(d, &cat);
        Ok(())
    })
    .unwrap();
}

#[test]
fn subscribed_without_a_charge_then_created_and_cancelled_on_remove() {
    let mut w = W::new();
    let id = running(&mut w);
    let u = usage_of(&w, &id);
    assert_eq!(
        (u.subscription_id.as_str(), u.event_name.as_str()),
        ("sub_m", "db_usage_cents")
    );
    assert!(w.account.ledger.charges.is_empty(), "nothing was charged");
    let cat = w.catalog.clone();
    assert_eq!(w.run(|d| remove(d, &id, &cat)), Ok(false));
    let Some(Action::CallOperator { body, .. }) = w.next(&id) else {
        panic!()
    };
    assert_eq!(body["action"], "remove");
    w.feed(&id, operator("removed")).unwrap();
    let Some(Action::CancelSubscription {
        subscription_id, ..
    }) = w.next(&id)
    else {
        panic!("{:?}", w.next(&id))
    };
    assert_eq!(subscription_id, "sub_m");
    w.feed(&id, ActionResult::Canceled).unwrap();
    assert_eq!(w.res(&id).status, ResourceStatus::Removed);
    // Usage for a removed resource is refused, and changes nothing.
    let before = w.account.clone();
    assert_eq!(
        send(&mut w, report(&id, "late", 5, T0)),
        Err(UsageError::ResourceNotFound)
    );
    assert_eq!(w.account, before);
}

#[test]
fn a_backend_that_cannot_create_it_has_its_subscription_cancelled() {
    let mut w = W::new();
    let id = subscribed(&mut w, json!({"fail": "quota"}));
    w.feed(&id, operator("error")).unwrap_err();
    let Some(Action::CancelSubscription {
        subscription_id, ..
    }) = w.next(&id)
    else {
        panic!("{:?}", w.next(&id))
    };
    assert_eq!(subscription_id, "sub_m");
    w.feed(&id, ActionResult::Canceled).unwrap();
    let r = w.res(&id);
    assert_eq!(r.status, ResourceStatus::Errored);
    assert_eq!(
        r.error.as_ref().map(|e| e.code.as_str()),
        Some("backend_error")
    );
    assert!(r
        .error
        .as_ref()
        .is_some_and(|e| e.message.contains("over quota")));
    assert!(w.account.ledger.charges.is_empty(), "nothing to refund");
}

#[test]
fn a_report_is_recorded_once_and_its_meter_event_sent_once() {
    let mut w = W::new();
    let id = running(&mut w);
    let (first, replayed) = send(&mut w, report(&id, "k1", 250, T0)).unwrap();
    assert!(!replayed);
    assert_eq!(w.account.ledger.spent(w.now), 250);
    // The same key and report: the same record, counted once.
    let (again, replayed) = send(&mut w, report(&id, "k1", 250, T0)).unwrap();
    assert!(replayed);
    assert_eq!(again, first);
    assert_eq!(w.account.ledger.spent(w.now), 250);
    // The same key with another report: refused, nothing changes.
    let before = w.account.clone();
    assert_eq!(
        send(&mut w, report(&id, "k1", 999, T0)),
        Err(UsageError::IdempotencyConflict)
    );
    assert_eq!(w.account, before);
    // Its meter event: due now, named by the key, the amount in cents.
    assert_eq!(usage::meter::due(&w.account, w.now), vec!["k1".to_string()]);
    let (rid, action) = usage::meter::action(&w.account, "k1").unwrap();
    assert_eq!(rid, id);
    let Action::ReportMeterEvent {
        identifier,
        event_name,
        customer,
        value,
        ..
    } = action
    else {
        panic!()
    };
    assert_eq!(
        (event_name.as_str(), customer.as_str(), value),
        ("db_usage_cents", "cus_1", 250)
    );
    assert_eq!(identifier, usage::meter::identifier(&w.account.id, "k1"));
    assert!(identifier.len() <= 100);
    // An outage: retried later with the same identifier.
    w.run(|d| {
        usage::meter::apply(
            d,
            "k1",
            ActionResult::Unavailable {
                message: "503".into(),
            },
        );
        Ok(())
    })
    .unwrap();
    assert!(usage::meter::due(&w.account, w.now).is_empty());
    w.now += 10;
    assert_eq!(usage::meter::due(&w.account, w.now), vec!["k1".to_string()]);
    w.run(|d| {
        usage::meter::apply(d, "k1", ActionResult::MeterEvent);
        Ok(())
    })
    .unwrap();
    assert!(usage::meter::due(&w.account, w.now).is_empty());
    assert!(w.account.ledger.usage[0].meter.billed_at.is_some());
    let actions: Vec<&str> = w.log.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "usage.recorded").count(),
        1
    );
    assert_eq!(actions.iter().filter(|a| **a == "usage.billed").count(), 1);
    assert!(verify_chain(&w.log).is_ok());
}

#[test]
fn a_refused_meter_event_is_kept_as_failed_and_still_counts() {
    let mut w = W::new();
    let id = running(&mut w);
    send(&mut w, report(&id, "k1", 300, T0)).unwrap();
    w.run(|d| {
        usage::meter::apply(
            d,
            "k1",
            ActionResult::Refused {
                error: ResourceError::Payment {
                    error: PaymentError::Failed {
                        code: "resource_missing".into(),
                        message: "No such customer".into(),
                    },
                },
            },
        );
        Ok(())
    })
    .unwrap();
    let u = &w.account.ledger.usage[0];
    assert!(u.meter.error.is_some() && u.meter.billed_at.is_none());
    assert!(
        usage::meter::due(&w.account, w.now + 3600).is_empty(),
        "not retried"
    );
    assert_eq!(w.account.ledger.spent(w.now), 300);
    assert!(w
        .log
        .iter()
        .any(|r| r.action == AuditAction::UsageBillingFailed.as_str()));
}

#[test]
fn the_cap_pauses_usage_at_the_cap_and_raising_it_resumes() {
    let mut w = W::new();
    let id = running(&mut w);
    w.account.ledger.cap = 1_000;
    send(&mut w, report(&id, "a", 600, T0)).unwrap();
    assert!(hold(&w, &id).cap.is_none());
    assert_eq!(
        usage::next_wake(&w.account, w.now),
        Some(w.now),
        "the meter event"
    );
    // Exactly at the cap: paused, and the backend is asked to suspend it.
    let (rec, _) = send(&mut w, report(&id, "b", 400, T0)).unwrap();
    assert!(
        !rec.over_cap,
        "the report that reached the cap was within it"
    );
    let u = hold(&w, &id);
    assert_eq!(
        u.cap.as_ref().map(|p| (p.cap, p.spent)),
        Some((1_000, 1_000))
    );
    assert!(!u.suspended);
    let Some(Action::CallOperator { body, .. }) = w.next(&id) else {
        panic!("{:?}", w.next(&id))
    };
    assert_eq!(body["action"], "suspend");
    w.feed(&id, operator("complete")).unwrap();
    let r = w.res(&id).clone();
    assert_eq!(r.status, ResourceStatus::Complete);
    assert!(hold(&w, &id).suspended);
    let v = render(&r, "acct_x", &BTreeMap::new());
    assert_eq!(v["paused"]["reason"], "spending_cap_reached");
    assert_eq!(v["paused"]["raise_cap"]["purpose"], "billing");
    assert!(v["complete"]["message"]
        .as_str()
        .unwrap()
        .contains("$10.00"));
    // Usage while paused happened: recorded, billed, marked over the cap.
    let (late, _) = send(&mut w, report(&id, "c", 50, T0)).unwrap();
    assert!(late.over_cap);
    assert_eq!(w.account.ledger.spent(w.now), 1_050);
    // Paused: the next wake is the new month (besides the meter events).
    w.account
        .ledger
        .usage
        .iter_mut()
        .for_each(|u| u.meter.billed_at = Some(T0));
    let (_, next_month) = crate::time::month_bounds(w.now);
    assert_eq!(usage::next_wake(&w.account, w.now), Some(next_month));
    // The owner raises the cap: unpaused, then resumed at the backend.
    w.account.ledger.cap = 5_000;
    assert_eq!(usage::next_wake(&w.account, w.now), Some(w.now));
    reconcile(&mut w);
    assert!(hold(&w, &id).cap.is_none());
    let Some(Action::CallOperator { body, .. }) = w.next(&id) else {
        panic!("{:?}", w.next(&id))
    };
    assert_eq!(body["action"], "resume");
    w.feed(&id, operator("complete")).unwrap();
    assert!(!hold(&w, &id).suspended);
    assert_eq!(w.res(&id).message, None);
    assert_eq!(usage::next_wake(&w.account, w.now), None);
    let actions: Vec<&str> = w.log.iter().map(|r| r.action.as_str()).collect();
    for a in [
        "resource.paused",
        "resource.suspended",
        "resource.unpaused",
        "resource.resumed",
    ] {
        assert_eq!(actions.iter().filter(|x| **x == a).count(), 1, "{a}");
    }
}

#[test]
fn a_new_month_resumes_what_the_cap_paused() {
    let mut w = W::new();
    let id = running(&mut w);
    w.account.ledger.cap = 500;
    send(&mut w, report(&id, "a", 500, T0)).unwrap();
    w.feed(&id, operator("complete")).unwrap();
    assert!(hold(&w, &id).suspended);
    let (_, next_month) = crate::time::month_bounds(w.now);
    w.now = next_month;
    reconcile(&mut w);
    let Some(Action::CallOperator { body, .. }) = w.next(&id) else {
        panic!("{:?}", w.next(&id))
    };
    assert_eq!(body["action"], "resume");
}

#[test]
fn a_failed_suspend_is_tried_again_later_not_in_a_loop() {
    let mut w = W::new();
    let id = running(&mut w);
    w.account.ledger.cap = 100;
    send(&mut w, report(&id, "a", 100, T0)).unwrap();
    w.feed(&id, operator("error")).unwrap_err();
    assert_eq!(w.res(&id).status, ResourceStatus::Complete);
    let u = hold(&w, &id);
    assert!(u.cap.is_some() && !u.suspended);
    assert_eq!(
        u.retry_at,
        Some(w.now + crate::resources::model::Hold::RETRY_SECONDS)
    );
    w.account
        .ledger
        .usage
        .iter_mut()
        .for_each(|u| u.meter.billed_at = Some(T0));
    assert_eq!(
        usage::next_wake(&w.account, w.now),
        Some(w.now + crate::resources::model::Hold::RETRY_SECONDS)
    );
    reconcile(&mut w);
    assert!(w.res(&id).job.is_none(), "not before retry_at");
    w.now += crate::resources::model::Hold::RETRY_SECONDS;
    reconcile(&mut w);
    assert!(
        matches!(w.next(&id), Some(Action::CallOperator { body, .. }) if body["action"] == "suspend")
    );
}

#[test]
fn a_usage_based_service_is_not_started_at_the_cap() {
    let mut w = W::new();
    w.create(json!({"service_id": "free", "project_id": "p"}), None)
        .unwrap();
    w.account.ledger.cap = 0;
    let e = w
        .create(
            json!({"service_id": "metered_db", "project_id": "p",
                   "payment_credentials": {"type": "stripe_payment_token", "stripe_payment_token": "spt_m"}}),
            None,
        )
        .unwrap_err();
    assert!(
        matches!(e, ResourceError::SpendingCapExceeded { .. }),
        "{e:?}"
    );
}

#[test]
fn bad_reports_are_refused_precisely_and_change_nothing() {
    let mut w = W::new();
    let id = running(&mut w);
    let free = w
        .create(json!({"service_id": "database", "project_id": "p"}), None)
        .unwrap();
    let before = w.account.clone();
    let good = report(&id, "k", 10, T0);
    let with = |field: &str, v: Value| {
        let mut b = good.clone();
        b[field] = v;
        b
    };
    let cases = [
        (with("quantity", json!(-1)), "quantity"),
        (with("quantity", json!(1.5)), "quantity"),
        (with("amount", json!(usage::MAX_AMOUNT + 1)), "amount"),
        (with("amount", json!("10")), "amount"),
        (with("currency", json!("USD")), "currency"),
        (with("occurred_at", json!("yesterday")), "occurred_at"),
        (
            with("occurred_at", json!(crate::time::format_rfc3339(T0 + 3600))),
            "occurred_at",
        ),
        (
            with(
                "occurred_at",
                json!(crate::time::format_rfc3339(T0 - 40 * 86_400)),
            ),
            "occurred_at",
        ),
        (with("idempotency_key", json!("")), "idempotency_key"),
        (
            with("idempotency_key", json!("x".repeat(256))),
            "idempotency_key",
        ),
        (with("extra", json!(1)), "extra"),
        (with("currency", json!("eur")), "currency"),
    ];
    for (body, field) in cases {
        match send(&mut w, body.clone()) {
            Err(UsageError::Invalid { field: f, .. }) => assert_eq!(f, field, "{body}"),
            other => panic!("{body}: {other:?}"),
        }
    }
    assert_eq!(
        send(&mut w, with("resource_id", json!("res_nope"))),
        Err(UsageError::ResourceNotFound)
    );
    assert!(matches!(
        send(&mut w, with("resource_id", json!(free))),
        Err(UsageError::NotUsageBased { .. })
    ));
    assert_eq!(w.account, before);
    assert!(w.account.ledger.usage.is_empty());
}

fn grant(w: &mut W, body: Value) -> Result<(crate::ledger::Credit, bool), UsageError> {
    let g = usage::credits::CreditGrant::parse(&body, w.now)?;
    let mut refused = None;
    let out = w.run(|d| match usage::credits::grant(d, &g) {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            refused = Some(e);
            Err(ResourceError::Unavailable)
        }
    });
    match (out, refused) {
        (Ok(Some(v)), _) => Ok(v),
        (_, Some(e)) => Err(e),
        (other, None) => panic!("{other:?}"),
    }
}

fn credit_body(key: &str, amount: u64, now: i64) -> Value {
    json!({"amount": amount, "currency": "usd", "reason": "startup program",
           "expires_at": crate::time::format_rfc3339(now + 90 * 86_400), "idempotency_key": key})
}

#[test]
fn credits_pay_usage_first_and_do_not_count_against_the_cap() {
    let mut w = W::new();
    // Granted before the account is a Stripe customer: sent to Stripe once it is one.
    let (c, replayed) = grant(&mut w, credit_body("startup", 1_000, T0)).unwrap();
    assert!(!replayed);
    assert!(
        usage::credits::due(&w.account, w.now).is_empty(),
        "no customer yet"
    );
    assert_eq!(
        grant(&mut w, credit_body("startup", 1_000, T0)).unwrap(),
        (c.clone(), true)
    );
    assert_eq!(
        grant(&mut w, credit_body("startup", 2_000, T0)),
        Err(UsageError::IdempotencyConflict)
    );
    let id = running(&mut w);
    assert_eq!(usage::credits::due(&w.account, w.now), vec![c.id.clone()]);
    let Some(Action::CreateCreditGrant {
        customer, amount, ..
    }) = usage::credits::action(&w.account, &c.id)
    else {
        panic!()
    };
    assert_eq!((customer.as_str(), amount), ("cus_1", 1_000));
    let cid = c.id.clone();
    w.run(|d| {
        usage::credits::apply(
            d,
            &cid,
            ActionResult::CreditGrant {
                id: "credgr_1".into(),
            },
        );
        Ok(())
    })
    .unwrap();
    assert!(usage::credits::due(&w.account, w.now).is_empty());
    // $6 of usage: all credits; $7 more: $4 credits, $3 the owner's.
    w.account.ledger.cap = 500;
    let (a, _) = send(&mut w, report(&id, "a", 600, T0)).unwrap();
    assert_eq!(a.credited, 600);
    assert_eq!(w.account.ledger.spent(w.now), 0);
    let (b, _) = send(&mut w, report(&id, "b", 700, T0)).unwrap();
    assert_eq!(b.credited, 400);
    assert_eq!(w.account.ledger.spent(w.now), 300);
    assert_eq!(w.account.ledger.credit_left(w.now), 0);
    assert!(hold(&w, &id).cap.is_none(), "$3 of a $5 cap");
    // Meter events carry the whole usage: Stripe applies the grant on the invoice.
    let Some((_, Action::ReportMeterEvent { value, .. })) = usage::meter::action(&w.account, "b")
    else {
        panic!()
    };
    assert_eq!(value, 700);
    // Then the cap applies to the owner's money only.
    send(&mut w, report(&id, "c", 200, T0)).unwrap();
    assert!(hold(&w, &id).cap.is_some());
    let granted = w
        .log
        .iter()
        .filter(|r| r.action == "credit.granted")
        .count();
    let synced = w.log.iter().filter(|r| r.action == "credit.synced").count();
    assert_eq!((granted, synced), (1, 1));
}

#[test]
fn expired_credits_pay_nothing_and_bad_grants_change_nothing() {
    let mut w = W::new();
    let id = running(&mut w);
    let mut body = credit_body("short", 1_000, T0);
    body["expires_at"] = json!(crate::time::format_rfc3339(T0 + 60));
    grant(&mut w, body).unwrap();
    w.now += 120;
    let now = w.now;
    let (u, _) = send(&mut w, report(&id, "a", 100, now)).unwrap();
    assert_eq!(u.credited, 0);
    let before = w.account.clone();
    let good = credit_body("k", 100, w.now);
    let with = |field: &str, v: Value| {
        let mut b = good.clone();
        b[field] = v;
        b
    };
    for (body, field) in [
        (with("amount", json!(0)), "amount"),
        (
            with("amount", json!(usage::credits::MAX_CREDIT + 1)),
            "amount",
        ),
        (with("amount", json!(-5)), "amount"),
        (with("currency", json!("eur")), "currency"),
        (
            with("expires_at", json!(crate::time::format_rfc3339(T0 - 1))),
            "expires_at",
        ),
        (
            with(
                "expires_at",
                json!(crate::time::format_rfc3339(T0 + 4 * 366 * 86_400)),
            ),
            "expires_at",
        ),
        (with("reason", json!(" ")), "reason"),
        (with("reason", json!("x".repeat(501))), "reason"),
        (with("idempotency_key", json!(null)), "idempotency_key"),
        (with("bonus", json!(1)), "bonus"),
    ] {
        match grant(&mut w, body.clone()) {
            Err(UsageError::InvalidCredit { field: f, .. }) => assert_eq!(f, field, "{body}"),
            other => panic!("{body}: {other:?}"),
        }
    }
    assert_eq!(w.account, before);
}
