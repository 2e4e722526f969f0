//! The Stripe subset over real HTTP: granted tokens, PaymentIntents, refunds and
//! subscriptions.

use serde_json::{json, Value};

use super::clock::now;
use super::tests::{
    captured, customer, customer_with_pm, delete, get, pay, post, start, TOKEN_PARAM,
};

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
