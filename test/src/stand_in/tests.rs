//! The stand-in exercised over real HTTP, as the worker talks to it.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::clock::now;
use super::{Config, Fault, StandIn};

pub(super) const KEY: &str = "sk_test_unit_stand_in_key";
const TOKEN_PARAM: &str = "payment_method_data[shared_payment_granted_token]";

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
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn replayed(&self) -> bool {
        self.header("idempotent-replayed") == Some("true")
    }

    /// `error.code`.
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    fn error_type(&self) -> &str {
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

fn get(si: &StandIn, path: &str) -> Resp {
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

fn customer(si: &StandIn, key: &str) -> String {
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

fn captured(si: &StandIn, token: &str) -> u64 {
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

#[test]
fn granted_token_endpoints() {
    let si = start();
    let expires = now() + 3600;
    let created = post(
        &si,
        "/v1/test_helpers/shared_payment/granted_tokens",
        "t1",
        &[
            ("usage_limits[currency]", "usd"),
            ("usage_limits[max_amount]", "2500"),
            ("usage_limits[expires_at]", &expires.to_string()),
        ],
    );
    assert_eq!(created.status, 200, "{}", created.text);
    let id = created.body["id"].as_str().unwrap_or("").to_string();
    assert!(id.starts_with("spt_"));
    let read = get(&si, &format!("/v1/shared_payment/granted_tokens/{id}"));
    assert_eq!(read.status, 200);
    assert_eq!(read.body["object"], "shared_payment.granted_token");
    assert_eq!(read.body["livemode"], false);
    assert_eq!(read.body["deactivated_at"], Value::Null);
    assert_eq!(read.body["deactivated_reason"], Value::Null);
    assert_eq!(
        read.body["usage_limits"],
        json!({"currency": "usd", "max_amount": 2500, "expires_at": expires})
    );
    assert_eq!(
        read.body["usage_details"],
        json!({"amount_captured": {"value": 0, "currency": "usd"}})
    );
    assert_eq!(read.body["metadata"], json!({}));

    let missing = get(&si, "/v1/shared_payment/granted_tokens/spt_x");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.code(), "resource_missing");
    assert_eq!(missing.body["error"]["param"], "id");
    assert_eq!(
        missing.body["error"]["message"],
        "No such shared_payment.granted_token: 'spt_x'"
    );

    let no_limit = post(
        &si,
        "/v1/test_helpers/shared_payment/granted_tokens",
        "t2",
        &[("usage_limits[currency]", "usd")],
    );
    assert_eq!(no_limit.code(), "parameter_missing");
    assert_eq!(no_limit.body["error"]["param"], "usage_limits[max_amount]");

    let revoked = post(
        &si,
        &format!("/v1/test_helpers/shared_payment/granted_tokens/{id}/revoke"),
        "t3",
        &[],
    );
    assert_eq!(revoked.status, 200);
    assert_eq!(revoked.body["deactivated_reason"], "revoked");
    assert!(revoked.body["deactivated_at"].is_i64());

    let expired = si.create_granted_token("usd", 100, now() - 5, None);
    let shown = get(&si, &format!("/v1/shared_payment/granted_tokens/{expired}"));
    assert_eq!(shown.body["deactivated_reason"], "expired");
}

#[test]
fn payment_intent_succeeds_and_uses_the_token() {
    let si = start();
    let cus = customer(&si, "c1");
    let spt = si.create_granted_token("usd", 5000, now() + 3600, None);
    let paid = pay(
        &si,
        "p1",
        &spt,
        "2000",
        &[
            ("customer", &cus),
            ("setup_future_usage", "off_session"),
            ("description", "Pro plan"),
            ("metadata[account_id]", "acct_1"),
        ],
    );
    assert_eq!(paid.status, 200, "{}", paid.text);
    let pi = &paid.body;
    assert_eq!(pi["object"], "payment_intent");
    assert_eq!(pi["status"], "succeeded");
    assert_eq!(pi["amount"], 2000);
    assert_eq!(pi["amount_received"], 2000);
    assert_eq!(pi["currency"], "usd");
    assert_eq!(pi["customer"], cus.as_str());
    assert_eq!(pi["metadata"], json!({"account_id": "acct_1"}));
    let pm = pi["payment_method"].as_str().unwrap_or("");
    assert!(pm.starts_with("pm_"));
    assert!(pi["latest_charge"]
        .as_str()
        .unwrap_or("")
        .starts_with("ch_"));
    assert_eq!(si.payment_methods()[0]["customer"], cus.as_str());
    assert_eq!(captured(&si, &spt), 2000);

    let read = get(
        &si,
        &format!("/v1/payment_intents/{}", pi["id"].as_str().unwrap_or("")),
    );
    assert_eq!(read.body, paid.body);
    assert_eq!(get(&si, "/v1/payment_intents/pi_nope").status, 404);

    // Without setup_future_usage the payment method stays unattached.
    let second = pay(&si, "p2", &spt, "3000", &[("customer", &cus)]);
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(si.payment_methods()[1]["customer"], Value::Null);
    assert_eq!(captured(&si, &spt), 5000);
    // Spent in full: the token is consumed.
    let token = si.granted_token(&spt).unwrap_or(Value::Null);
    assert_eq!(token["deactivated_reason"], "consumed");
    let third = pay(&si, "p3", &spt, "1", &[]);
    assert_eq!(third.status, 402);
    assert_eq!(third.code(), "shared_payment_token_deactivated");
}

#[test]
fn payment_intent_checks() {
    let si = start();
    let spt = si.create_granted_token("usd", 1000, now() + 3600, None);

    // (fields, expected code, expected param)
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![
                ("currency", "usd"),
                ("confirm", "true"),
                (TOKEN_PARAM, &spt),
            ],
            "parameter_missing",
            "amount",
        ),
        (
            vec![
                ("amount", "12.5"),
                ("currency", "usd"),
                ("confirm", "true"),
                (TOKEN_PARAM, &spt),
            ],
            "parameter_invalid_integer",
            "amount",
        ),
        (
            vec![
                ("amount", "0"),
                ("currency", "usd"),
                ("confirm", "true"),
                (TOKEN_PARAM, &spt),
            ],
            "amount_too_small",
            "amount",
        ),
        (
            vec![("amount", "100"), ("confirm", "true"), (TOKEN_PARAM, &spt)],
            "parameter_missing",
            "currency",
        ),
        (
            vec![("amount", "100"), ("currency", "usd"), ("confirm", "true")],
            "parameter_missing",
            TOKEN_PARAM,
        ),
        (
            vec![
                ("amount", "100"),
                ("currency", "usd"),
                ("confirm", "true"),
                (TOKEN_PARAM, "spt_nope"),
            ],
            "resource_missing",
            TOKEN_PARAM,
        ),
        (
            vec![
                ("amount", "100"),
                ("currency", "usd"),
                ("confirm", "true"),
                (TOKEN_PARAM, &spt),
                ("customer", "cus_nope"),
            ],
            "resource_missing",
            "customer",
        ),
        (
            vec![
                ("amount", "100"),
                ("currency", "usd"),
                ("confirm", "true"),
                ("payment_method_data[type]", "card"),
                (TOKEN_PARAM, &spt),
            ],
            "parameter_unknown",
            "payment_method_data[type]",
        ),
    ];
    for (n, (fields, code, param)) in cases.iter().enumerate() {
        let r = post(&si, "/v1/payment_intents", &format!("bad-{n}"), fields);
        assert_eq!(r.status, 400, "case {n}: {}", r.text);
        assert_eq!(r.error_type(), "invalid_request_error", "case {n}");
        assert_eq!(r.code(), *code, "case {n}: {}", r.text);
        assert_eq!(r.body["error"]["param"], *param, "case {n}");
    }
    assert!(si.payment_intents().is_empty());

    // Currency differs from the token's.
    let eur = post(
        &si,
        "/v1/payment_intents",
        "eur",
        &[
            ("amount", "100"),
            ("currency", "eur"),
            ("confirm", "true"),
            (TOKEN_PARAM, &spt),
        ],
    );
    assert_eq!(eur.status, 400);
    assert_eq!(eur.code(), "currency_mismatch");

    // Over the limit.
    let over = pay(&si, "over", &spt, "1001", &[]);
    assert_eq!(over.status, 402);
    assert_eq!(over.error_type(), "card_error");
    assert_eq!(over.code(), "amount_too_large");
    assert_eq!(
        over.body["error"]["payment_intent"]["status"],
        "requires_payment_method"
    );

    // Expired.
    let old = si.create_granted_token("usd", 1000, now() - 1, None);
    let expired = pay(&si, "expired", &old, "100", &[]);
    assert_eq!(expired.status, 402);
    assert_eq!(expired.error_type(), "card_error");
    assert_eq!(expired.code(), "shared_payment_token_expired");

    // Revoked.
    let revoked_token = si.create_granted_token("usd", 1000, now() + 3600, None);
    si.revoke_granted_token(&revoked_token);
    let revoked = pay(&si, "revoked", &revoked_token, "100", &[]);
    assert_eq!(revoked.status, 402);
    assert_eq!(revoked.code(), "shared_payment_token_deactivated");

    // Scripted decline.
    let declining = si.create_granted_token("usd", 1000, now() + 3600, Some("insufficient_funds"));
    let declined = pay(&si, "declined", &declining, "100", &[]);
    assert_eq!(declined.status, 402);
    let error = &declined.body["error"];
    assert_eq!(error["type"], "card_error");
    assert_eq!(error["code"], "card_declined");
    assert_eq!(error["decline_code"], "insufficient_funds");
    assert_eq!(error["message"], "Your card was declined.");
    assert_eq!(error["payment_intent"]["status"], "requires_payment_method");
    assert_eq!(
        error["payment_intent"]["last_payment_error"]["decline_code"],
        "insufficient_funds"
    );
    // The decline is stored: the retry with the same key replays it.
    let replay = pay(&si, "declined", &declining, "100", &[]);
    assert!(replay.replayed());
    assert_eq!(replay.text, declined.text);

    // Every declined PaymentIntent is recorded, nothing was captured.
    let intents = si.payment_intents();
    assert_eq!(intents.len(), 4);
    assert!(intents
        .iter()
        .all(|pi| pi["status"] == "requires_payment_method"));
    assert_eq!(intents[3]["id"], error["payment_intent"]["id"]);
    assert_eq!(captured(&si, &spt), 0);
    assert_eq!(captured(&si, &declining), 0);

    // confirm must be true.
    let unconfirmed = post(
        &si,
        "/v1/payment_intents",
        "unconfirmed",
        &[
            ("amount", "100"),
            ("currency", "usd"),
            ("confirm", "false"),
            (TOKEN_PARAM, &spt),
        ],
    );
    assert_eq!(unconfirmed.status, 400);
    assert_eq!(unconfirmed.body["error"]["param"], "confirm");
}

#[test]
fn refunds_of_succeeded_payments() {
    let si = start();
    let spt = si.create_granted_token("usd", 5000, now() + 3600, None);
    let paid = pay(&si, "p1", &spt, "2000", &[]);
    let pi = paid.body["id"].as_str().unwrap_or("").to_string();
    let partial = post(
        &si,
        "/v1/refunds",
        "r1",
        &[("payment_intent", &pi), ("amount", "500")],
    );
    assert_eq!(partial.status, 200, "{}", partial.text);
    assert_eq!(partial.body["object"], "refund");
    assert_eq!(partial.body["amount"], 500);
    assert_eq!(partial.body["status"], "succeeded");
    assert_eq!(partial.body["charge"], paid.body["latest_charge"]);
    let too_much = post(
        &si,
        "/v1/refunds",
        "r2",
        &[("payment_intent", &pi), ("amount", "1501")],
    );
    assert_eq!(too_much.status, 400);
    assert_eq!(too_much.body["error"]["param"], "amount");
    let rest = post(&si, "/v1/refunds", "r3", &[("payment_intent", &pi)]);
    assert_eq!(rest.body["amount"], 1500);
    let again = post(&si, "/v1/refunds", "r4", &[("payment_intent", &pi)]);
    assert_eq!(again.code(), "charge_already_refunded");
    let unknown = post(&si, "/v1/refunds", "r5", &[("payment_intent", "pi_nope")]);
    assert_eq!(unknown.code(), "resource_missing");
    let declining = si.create_granted_token("usd", 5000, now() + 3600, Some("do_not_honor"));
    let declined = pay(&si, "p2", &declining, "100", &[]);
    let declined_pi = declined.body["error"]["payment_intent"]["id"]
        .as_str()
        .unwrap_or("");
    let not_paid = post(&si, "/v1/refunds", "r6", &[("payment_intent", declined_pi)]);
    assert_eq!(not_paid.status, 400);
    assert_eq!(si.refunds().len(), 2);
    let id = rest.body["id"].as_str().unwrap_or("");
    assert_eq!(get(&si, &format!("/v1/refunds/{id}")).body, rest.body);
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
fn subscriptions_create_read_and_cancel() {
    let si = start();
    let (cus, pm) = customer_with_pm(&si);
    let trial_end = now() + 14 * 86_400;
    let trial = post(
        &si,
        "/v1/subscriptions",
        "s1",
        &[
            ("customer", &cus),
            ("items[0][price]", "price_pro_monthly"),
            ("default_payment_method", &pm),
            ("trial_end", &trial_end.to_string()),
            ("metadata[account_id]", "acct_1"),
        ],
    );
    assert_eq!(trial.status, 200, "{}", trial.text);
    let sub = &trial.body;
    assert!(sub["id"].as_str().unwrap_or("").starts_with("sub_"));
    assert_eq!(sub["object"], "subscription");
    assert_eq!(sub["status"], "trialing");
    assert_eq!(sub["customer"], cus.as_str());
    assert_eq!(sub["default_payment_method"], pm.as_str());
    assert_eq!(sub["items"]["object"], "list");
    assert_eq!(sub["items"]["data"][0]["price"]["id"], "price_pro_monthly");
    assert_eq!(sub["current_period_end"], trial_end);
    assert_eq!(sub["metadata"], json!({"account_id": "acct_1"}));

    let active = post(
        &si,
        "/v1/subscriptions",
        "s2",
        &[
            ("customer", &cus),
            ("items[0][price]", "price_pro_monthly"),
            ("default_payment_method", &pm),
        ],
    );
    assert_eq!(active.status, 200, "{}", active.text);
    assert_eq!(active.body["status"], "active");
    assert!(active.body["current_period_end"].as_i64().unwrap_or(0) > now());

    // Refusals.
    let other_cus = customer(&si, "other-cus");
    let not_attached = post(
        &si,
        "/v1/subscriptions",
        "s3",
        &[
            ("customer", &other_cus),
            ("items[0][price]", "price_1"),
            ("default_payment_method", &pm),
        ],
    );
    assert_eq!(not_attached.status, 400);
    assert_eq!(not_attached.code(), "resource_missing");
    assert_eq!(
        not_attached.body["error"]["param"],
        "default_payment_method"
    );
    let no_customer = post(
        &si,
        "/v1/subscriptions",
        "s4",
        &[
            ("customer", "cus_nope"),
            ("items[0][price]", "price_1"),
            ("default_payment_method", &pm),
        ],
    );
    assert_eq!(no_customer.code(), "resource_missing");
    assert_eq!(no_customer.body["error"]["param"], "customer");
    let no_items = post(
        &si,
        "/v1/subscriptions",
        "s5",
        &[("customer", &cus), ("default_payment_method", &pm)],
    );
    assert_eq!(no_items.code(), "parameter_missing");
    assert_eq!(no_items.body["error"]["param"], "items[0][price]");
    let past_trial = post(
        &si,
        "/v1/subscriptions",
        "s6",
        &[
            ("customer", &cus),
            ("items[0][price]", "price_1"),
            ("default_payment_method", &pm),
            ("trial_end", &(now() - 10).to_string()),
        ],
    );
    assert_eq!(past_trial.status, 400);
    assert_eq!(past_trial.body["error"]["param"], "trial_end");
    assert_eq!(si.subscriptions().len(), 2);

    // Read and cancel.
    let id = sub["id"].as_str().unwrap_or("").to_string();
    assert_eq!(
        get(&si, &format!("/v1/subscriptions/{id}")).body,
        trial.body
    );
    let canceled = delete(&si, &format!("/v1/subscriptions/{id}"), "d1");
    assert_eq!(canceled.status, 200, "{}", canceled.text);
    assert_eq!(canceled.body["status"], "canceled");
    assert!(canceled.body["canceled_at"].is_i64());
    // The same call again replays; a new one finds no live subscription, as on Stripe.
    let replay = delete(&si, &format!("/v1/subscriptions/{id}"), "d1");
    assert!(replay.replayed());
    assert_eq!(replay.body, canceled.body);
    let twice = delete(&si, &format!("/v1/subscriptions/{id}"), "d2");
    assert_eq!(twice.status, 404, "{}", twice.text);
    assert_eq!(twice.code(), "resource_missing");
    assert_eq!(si.subscriptions()[0]["status"], "canceled");
    assert_eq!(
        si.subscriptions()[0]["canceled_at"],
        canceled.body["canceled_at"]
    );

    let unknown = delete(&si, "/v1/subscriptions/sub_nope", "d3");
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.code(), "resource_missing");
    assert_eq!(get(&si, "/v1/subscriptions/sub_nope").status, 404);
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

fn registrar(
    si: &StandIn,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Resp {
    let mut headers = vec![("Authorization", "Bearer rk_dev_registrar")];
    if let Some(key) = key {
        headers.push(("Idempotency-Key", key));
    }
    let body = body.map(|b| ("application/json", b.to_string().into_bytes()));
    send(&si.base_url, method, path, &headers, body)
}

#[test]
fn registrar_search_register_and_release() {
    let si = start();
    let unauthorized = send(
        &si.base_url,
        "GET",
        "/registrar/v1/search?query=shop",
        &[],
        None,
    );
    assert_eq!(unauthorized.status, 401);

    let search = registrar(&si, "GET", "/registrar/v1/search?query=shop", None, None);
    assert_eq!(search.status, 200, "{}", search.text);
    assert_eq!(
        search.body,
        json!({"candidates": [
            {"domain": "shop.com", "available": true, "price": {"amount": 1299, "currency": "usd"}},
            {"domain": "shop.dev", "available": true, "price": {"amount": 1599, "currency": "usd"}},
            {"domain": "shop.io", "available": true, "price": {"amount": 3999, "currency": "usd"}},
        ]})
    );
    for bad in [
        "",
        "?query=",
        "?query=bad%20label",
        "?query=-shop",
        "?query=shop.com",
    ] {
        let r = registrar(
            &si,
            "GET",
            &format!("/registrar/v1/search{bad}"),
            None,
            None,
        );
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.code(), "invalid_query");
    }

    let order = json!({"domain": "shop.dev", "years": 1, "contact_email": "owner@example.com"});
    let created = registrar(
        &si,
        "POST",
        "/registrar/v1/registrations",
        Some("r1"),
        Some(order.clone()),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().unwrap_or("").to_string();
    assert!(id.starts_with("reg_"));
    assert_eq!(created.body["domain"], "shop.dev");
    let expires = created.body["expires_at"].as_i64().unwrap_or(0);
    assert!((expires - now() - 365 * 86_400).abs() < 60);

    let replay = registrar(
        &si,
        "POST",
        "/registrar/v1/registrations",
        Some("r1"),
        Some(order.clone()),
    );
    assert_eq!(replay.status, 201);
    assert!(replay.replayed());
    assert_eq!(replay.text, created.text);
    let taken = registrar(
        &si,
        "POST",
        "/registrar/v1/registrations",
        Some("r2"),
        Some(order.clone()),
    );
    assert_eq!(taken.status, 409);
    assert_eq!(taken.code(), "domain_unavailable");
    let reused = registrar(
        &si,
        "POST",
        "/registrar/v1/registrations",
        Some("r1"),
        Some(json!({"domain": "shop.io", "years": 1, "contact_email": "owner@example.com"})),
    );
    assert_eq!(reused.status, 400);
    assert_eq!(reused.code(), "idempotency_error");
    let no_key = registrar(
        &si,
        "POST",
        "/registrar/v1/registrations",
        None,
        Some(order.clone()),
    );
    assert_eq!(no_key.code(), "idempotency_key_required");
    for (n, bad) in [
        json!({"domain": "shop.com", "years": 2, "contact_email": "owner@example.com"}),
        json!({"domain": "shop.org", "years": 1, "contact_email": "owner@example.com"}),
        json!({"domain": "shop.com", "years": 1, "contact_email": "nobody"}),
        json!({"domain": "shop.com", "years": 1, "contact_email": "owner@example.com", "x": 1}),
        json!(["shop.com"]),
    ]
    .into_iter()
    .enumerate()
    {
        let r = registrar(
            &si,
            "POST",
            "/registrar/v1/registrations",
            Some(&format!("bad-{n}")),
            Some(bad),
        );
        assert_eq!(r.status, 400, "case {n}: {}", r.text);
    }

    let after = registrar(&si, "GET", "/registrar/v1/search?query=SHOP", None, None);
    assert_eq!(after.body["candidates"][1]["domain"], "shop.dev");
    assert_eq!(after.body["candidates"][1]["available"], false);
    assert_eq!(after.body["candidates"][0]["available"], true);

    let released = registrar(
        &si,
        "DELETE",
        &format!("/registrar/v1/registrations/{id}"),
        None,
        None,
    );
    assert_eq!(released.status, 200, "{}", released.text);
    assert_eq!(released.body["status"], "released");
    let again = registrar(&si, "GET", "/registrar/v1/search?query=shop", None, None);
    assert_eq!(again.body["candidates"][1]["available"], true);
    let unknown = registrar(
        &si,
        "DELETE",
        "/registrar/v1/registrations/reg_nope",
        None,
        None,
    );
    assert_eq!(unknown.status, 404);

    let registrations = si.registrations();
    assert_eq!(registrations.len(), 1);
    assert_eq!(registrations[0]["status"], "released");
    assert_eq!(registrations[0]["contact_email"], "owner@example.com");
    assert_eq!(registrations[0]["idempotency_key"], "r1");
}

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
