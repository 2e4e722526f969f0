//! The operator backend over real HTTP: signatures, pending creates, rotation, removal.

use serde_json::{json, Value};

use super::clock::now;
use super::tests::{send, start, Resp};
use super::StandIn;

fn operator(si: &StandIn, key: Option<&str>, body: &Value, signature: Option<String>) -> Resp {
    let raw = body.to_string().into_bytes();
    let signature = signature
        .unwrap_or_else(|| domain::signature::sign_header(b"op_backend_dev_secret", now(), &raw));
    let mut headers = vec![("Provider-Signature", signature.as_str())];
    if let Some(key) = key {
        headers.push(("Idempotency-Key", key));
    }
    send(
        &si.base_url,
        "POST",
        "/operator/v1/resources",
        &headers,
        Some(("application/json", raw)),
    )
}

fn resource(action: &str, resource_id: &str, configuration: Value) -> Value {
    json!({
        "action": action,
        "account_id": "acct_1",
        "resource_id": resource_id,
        "service_id": "postgres",
        "project_id": "proj_1",
        "configuration": configuration,
    })
}

#[test]
fn operator_pending_then_complete_rotate_remove() {
    let si = start();
    let create = resource("create", "res_1", json!({"size": "small"}));
    let pending = operator(&si, Some("o1"), &create, None);
    assert_eq!(pending.status, 200, "{}", pending.text);
    assert_eq!(pending.body, json!({"status": "pending", "retry_after": 1}));
    let complete = operator(&si, Some("o1"), &create, None);
    assert_eq!(complete.body["status"], "complete", "{}", complete.text);
    assert!(!complete.replayed());
    let url = complete.body["access_configuration"]["DATABASE_URL"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        url.starts_with("postgres://u:") && url.ends_with("@db.example.test/res_1"),
        "{url}"
    );
    let replay = operator(&si, Some("o1"), &create, None);
    assert!(replay.replayed());
    assert_eq!(replay.text, complete.text);
    let other_key = operator(&si, Some("o2"), &create, None);
    assert_eq!(
        other_key.body["access_configuration"]["DATABASE_URL"],
        url.as_str(),
        "stable"
    );

    let rotated = operator(
        &si,
        Some("o3"),
        &resource("rotate", "res_1", json!({})),
        None,
    );
    assert_eq!(rotated.body["status"], "complete");
    let new_url = rotated.body["access_configuration"]["DATABASE_URL"]
        .as_str()
        .unwrap_or("");
    assert!(new_url.ends_with("@db.example.test/res_1"));
    assert_ne!(new_url, url, "rotation gives a new secret");
    let not_created = operator(
        &si,
        Some("o4"),
        &resource("rotate", "res_none", json!({})),
        None,
    );
    assert_eq!(not_created.status, 404);

    // More pending rounds.
    si.set_operator_pending_calls(3);
    let slow = resource("create", "res_2", json!({}));
    for n in 0..3 {
        let r = operator(&si, Some("o5"), &slow, None);
        assert_eq!(r.body["status"], "pending", "round {n}");
    }
    assert_eq!(
        operator(&si, Some("o5"), &slow, None).body["status"],
        "complete"
    );

    let failing = operator(
        &si,
        Some("o6"),
        &resource("create", "res_3", json!({"fail": "quota_exceeded"})),
        None,
    );
    assert_eq!(failing.status, 200);
    assert_eq!(failing.body["status"], "error");
    assert_eq!(failing.body["error"]["code"], "quota_exceeded");
    assert!(failing.body["error"]["message"].is_string());

    let removed = operator(
        &si,
        Some("o7"),
        &resource("remove", "res_1", json!({})),
        None,
    );
    assert_eq!(removed.body, json!({"status": "removed"}));

    let calls = si.operator_calls();
    assert_eq!(calls.len(), 12);
    assert_eq!(calls[0]["action"], "create");
    assert_eq!(calls[0]["resource_id"], "res_1");
    assert_eq!(calls[0]["idempotency_key"], "o1");
    assert_eq!(calls[0]["result"]["status"], "pending");
}

#[test]
fn operator_refuses_bad_signatures_and_bodies() {
    let si = start();
    let create = resource("create", "res_1", json!({}));
    let raw = create.to_string().into_bytes();
    let signatures = [
        Some(domain::signature::sign_header(
            b"another_secret",
            now(),
            &raw,
        )),
        Some(domain::signature::sign_header(
            b"op_backend_dev_secret",
            now() - 1000,
            &raw,
        )),
        Some("t=1,v1=zz".to_string()),
        Some(String::new()),
    ];
    for signature in signatures {
        let r = operator(&si, Some("o1"), &create, signature);
        assert_eq!(r.status, 401, "{}", r.text);
        assert_eq!(r.code(), "invalid_signature");
    }
    let unsigned = send(
        &si.base_url,
        "POST",
        "/operator/v1/resources",
        &[("Idempotency-Key", "o1")],
        Some(("application/json", raw.clone())),
    );
    assert_eq!(unsigned.status, 401);
    assert_eq!(unsigned.code(), "invalid_signature");
    // A body changed after signing.
    let signature = domain::signature::sign_header(b"op_backend_dev_secret", now(), &raw);
    let tampered = operator(
        &si,
        Some("o1"),
        &resource("create", "res_2", json!({})),
        Some(signature),
    );
    assert_eq!(tampered.status, 401);

    let no_key = operator(&si, None, &create, None);
    assert_eq!(no_key.status, 400);
    assert_eq!(no_key.code(), "idempotency_key_required");
    for bad in [
        json!({"action": "explode", "account_id": "a", "resource_id": "r", "service_id": "s", "project_id": null}),
        json!({"action": "create", "account_id": "", "resource_id": "r", "service_id": "s", "project_id": null}),
        json!({"action": "create", "account_id": "a", "resource_id": "r", "service_id": "s"}),
        json!({"action": "create", "account_id": "a", "resource_id": "r", "service_id": "s", "project_id": null, "configuration": []}),
        json!("create"),
    ] {
        let r = operator(&si, Some("o-bad"), &bad, None);
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert_eq!(r.code(), "invalid_request");
    }
    assert!(si.operator_calls().iter().all(|c| c["status"] != 200));
    assert_eq!(si.operator_calls().len(), 12);
}
