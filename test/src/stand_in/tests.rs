//! The stand-in exercised over real HTTP, as the worker talks to it: the helpers the other
//! `*_tests.rs` files share, and what is common to every API (auth, envelopes, idempotency,
//! faults, control routes, concurrency, shutdown).

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::clock::now;
use super::{Config, Fault, StandIn};

pub(super) const KEY: &str = "sk_test_unit_stand_in_key";
pub(super) const TOKEN_PARAM: &str = "payment_method_data[shared_payment_granted_token]";

pub(super) fn start() -> StandIn {
    StandIn::start(Config {
        api_key: KEY.into(),
        ..Config::default()
    })
}

pub(super) struct Resp {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) text: String,
    pub(super) body: Value,
}

impl Resp {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn replayed(&self) -> bool {
        self.header("idempotent-replayed") == Some("true")
    }

    /// `error.code`.
    pub(super) fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub(super) fn error_type(&self) -> &str {
        self.body["error"]["type"].as_str().unwrap_or("")
    }
}

pub(super) fn send(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, Vec<u8>)>,
) -> Resp {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .max_redirects(0)
        .build()
        .new_agent();
    let mut builder = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"));
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let bytes = match body {
        Some((content_type, bytes)) => {
            builder = builder.header("Content-Type", content_type);
            bytes
        }
        None => Vec::new(),
    };
    let request = builder.body(bytes).expect("request");
    let mut response = agent.run(request).expect("transport");
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    let text = response.body_mut().read_to_string().expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        text,
        body,
    }
}

fn form(fields: &[(&str, &str)]) -> Vec<u8> {
    app_client::form_encode(fields).into_bytes()
}

const FORM: &str = "application/x-www-form-urlencoded";
const BEARER: &str = "Bearer sk_test_unit_stand_in_key";

pub(super) fn post(si: &StandIn, path: &str, key: &str, fields: &[(&str, &str)]) -> Resp {
    send(
        &si.base_url,
        "POST",
        path,
        &[("Authorization", BEARER), ("Idempotency-Key", key)],
        Some((FORM, form(fields))),
    )
}

pub(super) fn get(si: &StandIn, path: &str) -> Resp {
    send(
        &si.base_url,
        "GET",
        path,
        &[("Authorization", BEARER)],
        None,
    )
}

pub(super) fn delete(si: &StandIn, path: &str, key: &str) -> Resp {
    send(
        &si.base_url,
        "DELETE",
        path,
        &[("Authorization", BEARER), ("Idempotency-Key", key)],
        None,
    )
}

pub(super) fn customer(si: &StandIn, key: &str) -> String {
    let r = post(si, "/v1/customers", key, &[("email", "a@example.com")]);
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["id"].as_str().expect("customer id").to_string()
}

pub(super) fn pay(
    si: &StandIn,
    key: &str,
    token: &str,
    amount: &str,
    extra: &[(&str, &str)],
) -> Resp {
    let mut fields = vec![
        ("amount", amount),
        ("currency", "usd"),
        ("confirm", "true"),
        (TOKEN_PARAM, token),
    ];
    fields.extend_from_slice(extra);
    post(si, "/v1/payment_intents", key, &fields)
}

pub(super) fn captured(si: &StandIn, token: &str) -> u64 {
    si.granted_token(token).expect("token")["usage_details"]["amount_captured"]["value"]
        .as_u64()
        .expect("captured")
}

#[test]
fn defaults_are_the_dev_values() {
    let c = Config::default();
    assert_eq!(c.api_key, "sk_test_dev_stand_in");
    assert_eq!(c.operator_secret, "op_backend_dev_secret");
    assert_eq!(c.registrar_key, "rk_dev_registrar");
    assert_eq!(c.port, 0);
}

#[test]
fn refuses_bad_auth_and_envelopes() {
    let si = start();
    let none = send(&si.base_url, "GET", "/v1/customers/cus_1", &[], None);
    assert_eq!(none.status, 401);
    assert_eq!(none.error_type(), "invalid_request_error");

    let wrong = send(
        &si.base_url,
        "GET",
        "/v1/customers/cus_1",
        &[("Authorization", "Bearer sk_test_wrong_key_123456")],
        None,
    );
    assert_eq!(wrong.status, 401);
    let message = wrong.body["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with("Invalid API Key provided: sk_test_"),
        "{message}"
    );
    assert!(
        !message.contains("sk_test_wrong_key_123456"),
        "the key is echoed: {message}"
    );

    let no_key = send(
        &si.base_url,
        "POST",
        "/v1/customers",
        &[("Authorization", BEARER)],
        Some((FORM, form(&[("email", "a@example.com")]))),
    );
    assert_eq!(no_key.status, 400);
    assert_eq!(no_key.code(), "idempotency_key_required");

    let json_body = send(
        &si.base_url,
        "POST",
        "/v1/customers",
        &[("Authorization", BEARER), ("Idempotency-Key", "k-json")],
        Some(("application/json", br#"{"email":"a@example.com"}"#.to_vec())),
    );
    assert_eq!(json_body.status, 400);
    assert_eq!(json_body.error_type(), "invalid_request_error");

    let no_delete_key = send(
        &si.base_url,
        "DELETE",
        "/v1/subscriptions/sub_1",
        &[("Authorization", BEARER)],
        None,
    );
    assert_eq!(no_delete_key.code(), "idempotency_key_required");

    for bad in [
        &b"metadata[x=1"[..],
        b"email=%zz",
        b"email=a&email=b",
        b"\xff\xfe=1",
    ] {
        let r = send(
            &si.base_url,
            "POST",
            "/v1/customers",
            &[("Authorization", BEARER), ("Idempotency-Key", "k-bad")],
            Some((FORM, bad.to_vec())),
        );
        assert_eq!(
            r.status,
            400,
            "{:?}: {}",
            String::from_utf8_lossy(bad),
            r.text
        );
        assert_eq!(r.error_type(), "invalid_request_error");
    }

    let unknown = post(
        &si,
        "/v1/customers",
        "k-unknown",
        &[("emial", "a@example.com")],
    );
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.code(), "parameter_unknown");
    assert_eq!(unknown.body["error"]["param"], "emial");

    let bad_email = post(
        &si,
        "/v1/customers",
        "k-email",
        &[("email", "not-an-email")],
    );
    assert_eq!(bad_email.code(), "email_invalid");

    let route = get(&si, "/v1/charges");
    assert_eq!(route.status, 404);
    assert_eq!(route.error_type(), "invalid_request_error");
    let outside = send(&si.base_url, "GET", "/elsewhere", &[], None);
    assert_eq!(outside.status, 404);

    assert!(si.customers().is_empty());
    let log = si.requests();
    assert_eq!(log[0]["status"], 401);
    assert_eq!(log[0]["method"], "GET");
    assert_eq!(log[0]["path"], "/v1/customers/cus_1");
    assert!(log.iter().all(|e| e["replayed"] == false));
    assert!(none
        .header("request-id")
        .is_some_and(|id| id.starts_with("req_")));
}

#[test]
fn idempotent_replay_and_conflict() {
    let si = start();
    let fields = [
        ("email", "buyer@example.com"),
        ("name", "Buyer"),
        ("metadata[account_id]", "acct_1"),
    ];
    let first = post(&si, "/v1/customers", "k1", &fields);
    assert_eq!(first.status, 200, "{}", first.text);
    assert!(!first.replayed());
    assert_eq!(first.body["object"], "customer");
    assert_eq!(first.body["metadata"], json!({"account_id": "acct_1"}));
    assert_eq!(first.header("idempotency-key"), Some("k1"));

    let again = post(&si, "/v1/customers", "k1", &fields);
    assert_eq!(again.status, 200);
    assert!(again.replayed());
    assert_eq!(again.text, first.text, "a replay is byte for byte");
    assert_eq!(again.header("request-id"), first.header("request-id"));
    assert_eq!(si.customers().len(), 1);

    let conflict = post(
        &si,
        "/v1/customers",
        "k1",
        &[("email", "other@example.com")],
    );
    assert_eq!(conflict.status, 400);
    assert_eq!(conflict.error_type(), "idempotency_error");
    assert!(conflict.body["error"]["message"]
        .as_str()
        .unwrap_or("")
        .starts_with("Keys for idempotent requests can only be used with the same parameters"));

    // Same key on another endpoint is a conflict too.
    let elsewhere = post(&si, "/v1/subscriptions", "k1", &fields);
    assert_eq!(elsewhere.error_type(), "idempotency_error");

    // A validation failure is not stored: the corrected request may reuse its key.
    let invalid = post(&si, "/v1/customers", "k2", &[("email", "nope")]);
    assert_eq!(invalid.status, 400);
    let fixed = post(&si, "/v1/customers", "k2", &[("email", "ok@example.com")]);
    assert_eq!(fixed.status, 200);
    assert!(!fixed.replayed());
    assert_eq!(si.customers().len(), 2);

    let log = si.requests();
    assert_eq!(log[1]["replayed"], true);
    assert_eq!(log[1]["idempotency_key"], "k1");
    assert_eq!(
        log[0]["params"],
        json!({"email": "buyer@example.com", "name": "Buyer", "metadata": {"account_id": "acct_1"}})
    );
}

/// A customer with a payment method attached by an off-session payment.
pub(super) fn customer_with_pm(si: &StandIn) -> (String, String) {
    let cus = customer(si, "setup-cus");
    let spt = si.create_granted_token("usd", 10_000, now() + 3600, None);
    let paid = pay(
        si,
        "setup-pay",
        &spt,
        "2000",
        &[("customer", &cus), ("setup_future_usage", "off_session")],
    );
    assert_eq!(paid.status, 200, "{}", paid.text);
    let pm = paid.body["payment_method"]
        .as_str()
        .unwrap_or("")
        .to_string();
    (cus, pm)
}

#[test]
fn faults_before_and_after_with_replay() {
    let si = start();
    let spt = si.create_granted_token("usd", 10_000, now() + 3600, None);

    // Before: nothing happens, the retry performs the payment.
    si.fail_next(Fault::new("/v1/payment_intents", 1, 500));
    let failed = pay(&si, "f1", &spt, "1000", &[]);
    assert_eq!(failed.status, 500);
    assert_eq!(failed.error_type(), "api_error");
    assert_eq!(failed.body["error"]["message"], "stand-in injected fault");
    assert!(si.payment_intents().is_empty());
    let retried = pay(&si, "f1", &spt, "1000", &[]);
    assert_eq!(retried.status, 200, "{}", retried.text);
    assert!(!retried.replayed());
    assert_eq!(captured(&si, &spt), 1000);

    // After: the payment happens, the response is lost; the retry replays the success.
    si.fail_next(Fault::new("/v1/payment_intents", 1, 502).after());
    let lost = pay(&si, "f2", &spt, "2000", &[]);
    assert_eq!(lost.status, 502);
    assert_eq!(si.payment_intents().len(), 2);
    assert_eq!(captured(&si, &spt), 3000);
    let replayed = pay(&si, "f2", &spt, "2000", &[]);
    assert_eq!(replayed.status, 200, "{}", replayed.text);
    assert!(replayed.replayed());
    assert_eq!(replayed.body["status"], "succeeded");
    assert_eq!(replayed.body["id"], si.payment_intents()[1]["id"]);
    assert_eq!(
        si.payment_intents().len(),
        2,
        "the replay performed nothing"
    );
    assert_eq!(captured(&si, &spt), 3000);

    // Counted faults on another prefix; others paths are untouched.
    si.fail_next(Fault::new("/v1/customers", 2, 429));
    assert_eq!(post(&si, "/v1/customers", "c1", &[]).status, 429);
    assert_eq!(get(&si, "/v1/payment_intents/pi_nope").status, 404);
    assert_eq!(post(&si, "/v1/customers", "c1", &[]).status, 429);
    assert_eq!(post(&si, "/v1/customers", "c1", &[]).status, 200);
}

#[test]
fn a_fault_can_target_idempotency_keys_by_prefix() {
    let si = start();
    si.fail_next(Fault::new("/v1/customers", 1, 503).key_prefix("acct_a:"));
    // Another caller's key is not taken.
    assert_eq!(post(&si, "/v1/customers", "acct_b:1", &[]).status, 200);
    assert_eq!(post(&si, "/v1/customers", "acct_a:1", &[]).status, 503);
    assert_eq!(post(&si, "/v1/customers", "acct_a:1", &[]).status, 200);
}

#[test]
fn a_slow_fault_performs_the_call_and_answers_late_without_blocking_others() {
    let si = start();
    let spt = si.create_granted_token("usd", 10_000, now() + 3600, None);
    si.fail_next(Fault::new("/v1/payment_intents", 1, 500).slow(1500));
    std::thread::scope(|scope| {
        let slow = scope.spawn(|| {
            let started = std::time::Instant::now();
            (pay(&si, "s1", &spt, "1000", &[]).status, started.elapsed())
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        // Meanwhile the stand-in answers others, and the slow call is already performed.
        let started = std::time::Instant::now();
        assert_eq!(get(&si, "/v1/payment_intents/pi_nope").status, 404);
        assert!(started.elapsed() < std::time::Duration::from_millis(1000));
        assert_eq!(captured(&si, &spt), 1000);
        let (status, elapsed) = slow.join().unwrap();
        assert_eq!(status, 200, "the real answer, not the fault's status");
        assert!(
            elapsed >= std::time::Duration::from_millis(1500),
            "{elapsed:?}"
        );
    });
}

#[test]
fn control_routes_over_http() {
    let si = start();
    let token = send(
        &si.base_url,
        "POST",
        "/_stand_in/granted_tokens",
        &[],
        Some((
            "application/json",
            json!({"currency": "usd", "max_amount": 700, "expires_at": now() + 60, "decline_code": "lost_card"})
                .to_string()
                .into_bytes(),
        )),
    );
    assert_eq!(token.status, 200, "{}", token.text);
    let spt = token.body["id"].as_str().unwrap_or("").to_string();
    assert!(spt.starts_with("spt_"));
    assert_eq!(token.body["usage_limits"]["max_amount"], 700);

    let fault = send(
        &si.base_url,
        "POST",
        "/_stand_in/faults",
        &[],
        Some((
            "application/json",
            br#"{"path_prefix":"/v1/customers","count":1,"status":503,"after":false}"#.to_vec(),
        )),
    );
    assert_eq!(fault.status, 200, "{}", fault.text);
    assert_eq!(post(&si, "/v1/customers", "c1", &[]).status, 503);
    let bad_fault = send(
        &si.base_url,
        "POST",
        "/_stand_in/faults",
        &[],
        Some(("application/json", b"{\"count\":1".to_vec())),
    );
    assert_eq!(bad_fault.status, 400);

    let declined = pay(&si, "p1", &spt, "100", &[]);
    assert_eq!(declined.body["error"]["decline_code"], "lost_card");

    let state = send(&si.base_url, "GET", "/_stand_in/state", &[], None);
    assert_eq!(state.status, 200);
    assert_eq!(state.body["granted_tokens"][0]["id"], spt.as_str());
    assert_eq!(
        state.body["payment_intents"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(state.body["requests"].as_array().map(Vec::len), Some(2));

    let reset = send(&si.base_url, "POST", "/_stand_in/reset", &[], None);
    assert_eq!(reset.status, 200);
    let state = send(&si.base_url, "GET", "/_stand_in/state", &[], None);
    assert_eq!(state.body["granted_tokens"], json!([]));
    assert_eq!(state.body["requests"], json!([]));
    assert!(si.payment_intents().is_empty());
}

#[test]
fn serves_concurrent_requests() {
    let si = start();
    // Clients that announce a large body and never send it each hold a worker (tiny_http
    // reads bodies over 1 KiB lazily, in the worker)...
    let stalled: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut stream = TcpStream::connect(("127.0.0.1", si.port())).expect("connect");
            stream
                .write_all(
                    b"POST /v1/customers HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n",
                )
                .expect("write");
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // ...while others are served in parallel.
    let base = si.base_url.clone();
    let threads: Vec<_> = (0..12)
        .map(|n| {
            let base = base.clone();
            std::thread::spawn(move || {
                send(
                    &base,
                    "POST",
                    "/v1/customers",
                    &[
                        ("Authorization", BEARER),
                        ("Idempotency-Key", &format!("c{n}")),
                    ],
                    Some((FORM, form(&[("email", "a@example.com")]))),
                )
                .status
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().expect("thread"), 200);
    }
    assert_eq!(si.customers().len(), 12);
    drop(stalled);
}

#[test]
fn stops_when_dropped() {
    let si = start();
    let port = si.port();
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    drop(si);
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "still listening after drop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn malformed_requests_get_errors_not_panics() {
    let si = start();
    let auth = ("Authorization", BEARER);
    let key = ("Idempotency-Key", "k");
    // (method, path, headers, body)
    type Case<'a> = (
        &'a str,
        &'a str,
        Vec<(&'a str, &'a str)>,
        Option<(&'a str, Vec<u8>)>,
    );
    let cases: Vec<Case> = vec![
        ("GET", "/v1/", vec![auth], None),
        ("GET", "/v1//customers", vec![auth], None),
        ("GET", "/v1/customers/cus_1?expand[=x", vec![auth], None),
        ("GET", "/v1/customers/cus_1?a=%zz", vec![auth], None),
        (
            "GET",
            "/v1/customers/cus_1",
            vec![("Authorization", "Bearer")],
            None,
        ),
        (
            "GET",
            "/v1/customers/cus_1",
            vec![("Authorization", "Basic abc")],
            None,
        ),
        (
            "PUT",
            "/v1/customers",
            vec![auth, key],
            Some((FORM, b"a=1".to_vec())),
        ),
        (
            "POST",
            "/v1/customers",
            vec![auth, key],
            Some((FORM, b"metadata=x".to_vec())),
        ),
        (
            "POST",
            "/v1/customers",
            vec![auth, key],
            Some((FORM, b"metadata[a][b]=x".to_vec())),
        ),
        (
            "POST",
            "/v1/customers",
            vec![auth, key],
            Some((FORM, b"email[]=x".to_vec())),
        ),
        (
            "POST",
            "/v1/payment_intents",
            vec![auth, key],
            Some((FORM, b"amount=99999999999999999999999".to_vec())),
        ),
        (
            "POST",
            "/v1/payment_intents",
            vec![auth, key],
            Some((FORM, b"amount=-5".to_vec())),
        ),
        (
            "POST",
            "/v1/payment_intents",
            vec![auth, key],
            Some((
                FORM,
                b"payment_method_data=spt_1&amount=1&currency=usd&confirm=true".to_vec(),
            )),
        ),
        (
            "POST",
            "/v1/subscriptions",
            vec![auth, key],
            Some((FORM, b"customer=c&items=x".to_vec())),
        ),
        (
            "POST",
            "/v1/subscriptions",
            vec![auth, key],
            Some((FORM, b"customer=c&items[0]=x".to_vec())),
        ),
        (
            "POST",
            "/v1/subscriptions",
            vec![auth, key],
            Some((
                FORM,
                b"customer=c&items[0][price]=p&items[0][quantity]=0&default_payment_method=pm"
                    .to_vec(),
            )),
        ),
        (
            "DELETE",
            "/v1/subscriptions/sub_1",
            vec![auth, key],
            Some((FORM, b"%%%".to_vec())),
        ),
        (
            "POST",
            "/registrar/v1/registrations",
            vec![("Authorization", "Bearer rk_dev_registrar"), key],
            Some(("application/json", b"{not json".to_vec())),
        ),
        (
            "GET",
            "/registrar/v1/search?query=%ff",
            vec![("Authorization", "Bearer rk_dev_registrar")],
            None,
        ),
        (
            "GET",
            "/registrar/v1/",
            vec![("Authorization", "Bearer rk_dev_registrar")],
            None,
        ),
        (
            "POST",
            "/_stand_in/granted_tokens",
            vec![],
            Some(("application/json", b"[1]".to_vec())),
        ),
        (
            "POST",
            "/_stand_in/faults",
            vec![],
            Some((
                "application/json",
                br#"{"path_prefix":"/v1","status":99}"#.to_vec(),
            )),
        ),
        (
            "POST",
            "/_stand_in/granted_tokens/spt_x/revoke",
            vec![],
            None,
        ),
        ("GET", "/_stand_in/nothing", vec![], None),
    ];
    for (method, path, headers, body) in cases {
        let r = send(&si.base_url, method, path, &headers, body);
        assert!(
            (400..500).contains(&r.status),
            "{method} {path}: {} {}",
            r.status,
            r.text
        );
        assert!(
            r.body["error"]["message"].is_string(),
            "{method} {path}: {}",
            r.text
        );
    }
    // An operator body that is signed but not JSON.
    let raw = b"not json".to_vec();
    let signature = domain::signature::sign_header(b"op_backend_dev_secret", now(), &raw);
    let r = send(
        &si.base_url,
        "POST",
        "/operator/v1/resources",
        &[("Provider-Signature", &signature), ("Idempotency-Key", "o")],
        Some(("application/json", raw)),
    );
    assert_eq!(r.status, 400);
    // Too large a body.
    let big = vec![b'a'; (1 << 20) + 10];
    let r = send(
        &si.base_url,
        "POST",
        "/v1/customers",
        &[auth, key],
        Some((FORM, big)),
    );
    assert_eq!(r.status, 413);
    assert!(si.customers().is_empty());
}
