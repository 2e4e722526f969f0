//! Refund.

use super::*;

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
