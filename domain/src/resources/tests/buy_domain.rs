//! Buy domain (quote, confirm, claim, charge, register).

use super::*;

pub(super) fn domain_world(registrar_service: &str, candidates: Vec<Candidate>) -> (W, String) {
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

pub(super) fn builtin_candidates() -> Vec<Candidate> {
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
