//! Cancel (replaced subscriptions still to cancel).

use super::*;

/// A paid -> paid change (paid -> team) whose cancel of the old subscription `sub_1` Stripe
/// refused for good: the new plan `sub_2` is in place, `sub_1` is still to cancel.
fn stale_world() -> (W, String) {
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
        service_id: Some("free".into()),
        configuration: None,
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

#[test]
fn a_removed_resource_is_not_found_once_removal_is_complete() {
    let (mut w, id) = stale_world();
    let cat = w.catalog.clone();
    assert_eq!(w.run(|d| remove(d, &id, &cat)), Ok(false));
    // Still being removed: served, so the orchestrator can poll it.
    assert_eq!(
        find_served(&w.account, &id).map(|r| r.id.clone()),
        Ok(id.clone())
    );
    w.feed(&id, ActionResult::Canceled).unwrap();
    assert_eq!(w.res(&id).status, ResourceStatus::Removed);
    assert_eq!(find_served(&w.account, &id), Err(ResourceError::NotFound));
    // The account keeps it (audit, idempotent remove).
    assert_eq!(
        find(&w.account, &id).map(|r| r.status),
        Ok(ResourceStatus::Removed)
    );
    assert_eq!(
        find_served(&w.account, "res_nope"),
        Err(ResourceError::NotFound)
    );
}
