//! The orchestrator signature over the wire (docs/PROTOCOL.md §1.1), and compatibility with Stripe's
//! official library in both directions.

use app_client::{unix_now, Call, Signing};
use app_tests::{stripe_js, ORCHESTRATOR_SECRET, ORCHESTRATOR_SECRET_OLD};
use domain::crypto::hex;
use domain::signature::{compute, sign_header, verify};
use libtest_mimic::Trial;
use serde_json::json;

use crate::common::{assert_plain_error, case, provider};

pub fn trials() -> Vec<Trial> {
    vec![
        case(
            "signatures::valid_and_rotated_secrets_pass",
            valid_and_rotated_secrets_pass,
        ),
        case(
            "signatures::several_v1_any_match_passes",
            several_v1_any_match_passes,
        ),
        case("signatures::bad_signatures_are_401", bad_signatures_are_401),
        case(
            "signatures::timestamps_outside_tolerance_are_401",
            timestamps_outside_tolerance_are_401,
        ),
        case(
            "signatures::malformed_headers_are_401",
            malformed_headers_are_401,
        ),
        case(
            "signatures::stripe_library_headers_are_accepted",
            stripe_library_headers_are_accepted,
        ),
        case(
            "signatures::our_headers_pass_stripe_library",
            our_headers_pass_stripe_library,
        ),
    ]
}

fn health(signing: Signing) -> app_client::Reply {
    provider()
        .send(Call::get("/provisioning/health").signing(signing))
        .unwrap()
}

fn valid_and_rotated_secrets_pass() {
    assert_eq!(health(Signing::Now).status, 200);
    // The secret being rotated out is still configured, so it still works.
    assert_eq!(
        health(Signing::Secret(ORCHESTRATOR_SECRET_OLD.into())).status,
        200
    );
}

fn several_v1_any_match_passes() {
    let t = unix_now();
    let good = hex(&compute(ORCHESTRATOR_SECRET.as_bytes(), t, b""));
    let bad = hex(&compute(b"whsec_not_ours", t, b""));
    let reply = health(Signing::Raw(format!("t={t},v1={bad},v1={good}")));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let reply = health(Signing::Raw(format!("t={t},v0={bad},v1={good}")));
    assert_eq!(reply.status, 200, "{}", reply.text());
}

fn bad_signatures_are_401() {
    assert_plain_error(&health(Signing::Unsigned), 401, "invalid_signature");
    assert_plain_error(
        &health(Signing::Secret("whsec_wrong".into())),
        401,
        "invalid_signature",
    );
    // Signed for another body (tampering): the signature covers the exact bytes sent.
    let t = unix_now();
    let tampered = sign_header(ORCHESTRATOR_SECRET.as_bytes(), t, b"{}");
    assert_plain_error(&health(Signing::Raw(tampered)), 401, "invalid_signature");
    // Signed for another timestamp than the one in the header.
    let sig = hex(&compute(ORCHESTRATOR_SECRET.as_bytes(), t - 1, b""));
    assert_plain_error(
        &health(Signing::Raw(format!("t={t},v1={sig}"))),
        401,
        "invalid_signature",
    );
    // The message does not say which secret or signature came close.
    let reply = health(Signing::Secret("whsec_wrong".into()));
    let message = reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!message.contains("whsec"), "{message}");
}

fn timestamps_outside_tolerance_are_401() {
    let now = unix_now();
    assert_eq!(health(Signing::At(now - 240)).status, 200);
    assert_eq!(health(Signing::At(now + 240)).status, 200);
    let stale = health(Signing::At(now - 400));
    assert_plain_error(&stale, 401, "invalid_signature");
    assert!(stale.text().contains("older"), "{}", stale.text());
    let future = health(Signing::At(now + 400));
    assert_plain_error(&future, 401, "invalid_signature");
    assert!(future.text().contains("future"), "{}", future.text());
}

fn malformed_headers_are_401() {
    let t = unix_now();
    let sig = hex(&compute(ORCHESTRATOR_SECRET.as_bytes(), t, b""));
    let cases = [
        format!("v1={sig}"),
        format!("t={t}"),
        format!("t={t},v1=nothex"),
        format!("t={t},t={t},v1={sig}"),
        format!("t=abc,v1={sig}"),
        "".to_string(),
        format!("t={t},v1={sig},pad={}", "a".repeat(4000)),
    ];
    for header in cases {
        let reply = health(Signing::Raw(header.clone()));
        assert_plain_error(&reply, 401, "invalid_signature");
    }
}

fn stripe_library_headers_are_accepted() {
    // Stripe's library signs; our verifier and the worker accept. Stripe's helper refuses empty
    // payloads, so it signs a JSON body, sent here on the GET itself.
    let t = unix_now();
    let payload = r#"{"id":"evt_1","object":"event"}"#;
    let header = stripe_js(
        "sign",
        &json!({"payload": payload, "secret": ORCHESTRATOR_SECRET, "timestamp": t}),
    )
    .expect("stripe library signs");
    assert!(header.starts_with(&format!("t={t},v1=")), "{header}");
    let secrets = [ORCHESTRATOR_SECRET.as_bytes()];
    assert_eq!(
        verify(Some(&header), payload.as_bytes(), &secrets, t, 300),
        Ok(t)
    );
    // Over the wire: the same header on a request with that exact body reaches the version
    // check only if the signature passed (a JSON body on GET is unusual but legal here).
    let reply = provider()
        .send(
            Call::get("/provisioning/health")
                .raw_body(payload.as_bytes().to_vec(), "application/json")
                .signing(Signing::Raw(header.clone()))
                .api_version(None),
        )
        .unwrap();
    assert_plain_error(&reply, 400, "invalid_api_version");
    let reply = provider()
        .send(
            Call::get("/provisioning/health")
                .raw_body(payload.as_bytes().to_vec(), "application/json")
                .signing(Signing::Raw(header)),
        )
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
}

fn our_headers_pass_stripe_library() {
    let t = unix_now();
    let payload = r#"{"id":"acctreq_123","email":"dev@example.com"}"#;
    let ours = provider().sign(t, payload.as_bytes());
    let verdict = stripe_js(
        "verify",
        &json!({"payload": payload, "header": ours, "secret": ORCHESTRATOR_SECRET}),
    );
    assert_eq!(verdict, Ok("ok".to_string()));
    // And the library refuses what we would refuse: a tampered payload.
    let verdict = stripe_js(
        "verify",
        &json!({"payload": format!("{payload} "), "header": ours, "secret": ORCHESTRATOR_SECRET}),
    );
    assert!(verdict.is_err(), "{verdict:?}");
}
