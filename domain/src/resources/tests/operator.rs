//! Operator backend.

use super::*;

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
            schema: None,
            message: None,
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
            schema: None,
            message: None,
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
            schema: None,
            message: None,
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
        schema: None,
        message: None,
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
