//! PaymentIntents paid with a shared payment granted token, and the payment methods they
//! create: a success emits `payment_intent.succeeded`, every 402 decline
//! `payment_intent.payment_failed`. Only confirmed PaymentIntents exist.

use serde_json::{json, Map, Value};

use crate::stand_in::clock::now;
use crate::stand_in::http::Reply;
use crate::stand_in::idempotency::Outcome;
use crate::stand_in::state::State;

use super::errors::{fail, reject, stripe_error};
use super::events::create_event;
use super::params::{
    allow, currency, granted_token_param, metadata, opt_str, req_int, req_str, Params, Res,
    TOKEN_PARAM,
};

/// What a PaymentIntent request asked for, validated.
struct Intent {
    amount: u64,
    currency: String,
    customer: Option<String>,
    setup_future_usage: Option<String>,
    description: Option<String>,
    receipt_email: Option<String>,
    metadata: Map<String, Value>,
}

pub(crate) fn create_payment_intent(st: &mut State, p: &Params) -> Res<Reply> {
    allow(
        p,
        &[
            "amount",
            "currency",
            "confirm",
            "payment_method_data",
            "customer",
            "setup_future_usage",
            "description",
            "receipt_email",
            "metadata",
            "expand",
        ],
        "",
    )?;
    let amount = req_int(p, "amount", "amount")?;
    if amount <= 0 {
        return Err(reject(
            Some("amount_too_small"),
            "Amount must be at least 1 (in the currency's smallest unit).",
            "amount",
        ));
    }
    let currency = currency(p, "currency", "currency")?;
    match req_str(p, "confirm", "confirm")? {
        "true" => {}
        "false" => {
            return Err(reject(
                None,
                "This stand-in only implements confirmed PaymentIntents: pass confirm=true.",
                "confirm",
            ))
        }
        other => {
            return Err(reject(
                None,
                &format!("Invalid boolean: {other}"),
                "confirm",
            ))
        }
    }
    let token_id = granted_token_param(p)?;
    let customer = opt_str(p, "customer", "customer")?.map(str::to_string);
    let setup_future_usage = opt_str(p, "setup_future_usage", "setup_future_usage")?;
    if let Some(usage) = setup_future_usage {
        if usage != "off_session" && usage != "on_session" {
            return Err(reject(
                None,
                &format!("Invalid setup_future_usage: must be one of off_session or on_session (got {usage})."),
                "setup_future_usage",
            ));
        }
    }
    let intent = Intent {
        amount: amount as u64,
        currency,
        customer,
        setup_future_usage: setup_future_usage.map(str::to_string),
        description: opt_str(p, "description", "description")?.map(str::to_string),
        receipt_email: opt_str(p, "receipt_email", "receipt_email")?.map(str::to_string),
        metadata: metadata(p)?,
    };

    // Business rules, in Stripe's order; their results are stored under the idempotency key.
    if let Some(customer) = &intent.customer {
        if !st.customers.iter().any(|c| c["id"] == customer.as_str()) {
            return Err(fail(
                400,
                "resource_missing",
                &format!("No such customer: '{customer}'"),
                "customer",
            ));
        }
    }
    let now = now();
    let Some(index) = st.tokens.iter().position(|t| t.id == token_id) else {
        return Err(fail(
            400,
            "resource_missing",
            &format!("No such shared_payment.granted_token: '{token_id}'"),
            TOKEN_PARAM,
        ));
    };
    let token = &st.tokens[index];
    if let Some((_, reason)) = token.deactivation(now) {
        let (code, message) = if reason == "expired" {
            (
                "shared_payment_token_expired",
                "The shared payment granted token has expired.".to_string(),
            )
        } else {
            (
                "shared_payment_token_deactivated",
                format!("The shared payment granted token has been deactivated ({reason})."),
            )
        };
        return Err(decline(
            st,
            &intent,
            code,
            None,
            &message,
            Some(TOKEN_PARAM),
            false,
        ));
    }
    if token.currency != intent.currency {
        return Err(fail(
            400,
            "currency_mismatch",
            &format!(
                "The currency {} does not match the shared payment granted token's currency {}.",
                intent.currency, token.currency
            ),
            "currency",
        ));
    }
    if intent.amount.saturating_add(token.amount_captured) > token.max_amount {
        let message = format!(
            "The amount {} exceeds what the shared payment granted token still allows ({} of {} {} already captured).",
            intent.amount, token.amount_captured, token.max_amount, token.currency
        );
        return Err(decline(
            st,
            &intent,
            "amount_too_large",
            None,
            &message,
            Some("amount"),
            false,
        ));
    }
    if let Some(decline_code) = token.decline_code() {
        return Err(decline(
            st,
            &intent,
            "card_declined",
            Some(&decline_code),
            "Your card was declined.",
            None,
            true,
        ));
    }

    let attach = intent.setup_future_usage.is_some() && intent.customer.is_some();
    let pm_id = st.id("pm");
    let payment_method = json!({
        "id": pm_id,
        "object": "payment_method",
        "type": "card",
        "card": {"brand": "visa", "last4": "4242"},
        "customer": if attach { intent.customer.clone() } else { None },
        "created": now,
        "livemode": false,
        "metadata": {},
    });
    st.payment_methods.push(payment_method);
    let charge = st.id("ch");
    let pi = intent_json(
        st,
        &intent,
        "succeeded",
        Some(&pm_id),
        Some(&charge),
        Value::Null,
    );
    let token = &mut st.tokens[index];
    token.amount_captured += intent.amount;
    if token.amount_captured >= token.max_amount {
        token.deactivated = Some((now, "consumed"));
    }
    st.payment_intents.push(pi.clone());
    create_event(st, "payment_intent.succeeded", pi.clone(), None);
    Ok(Reply::json(200, &pi))
}

fn intent_json(
    st: &mut State,
    intent: &Intent,
    status: &str,
    payment_method: Option<&str>,
    charge: Option<&str>,
    last_payment_error: Value,
) -> Value {
    let id = st.id("pi");
    let secret = st.random_chars(24);
    json!({
        "id": id,
        "object": "payment_intent",
        "amount": intent.amount,
        "amount_capturable": 0,
        "amount_received": if status == "succeeded" { intent.amount } else { 0 },
        "capture_method": "automatic",
        "client_secret": format!("{id}_secret_{secret}"),
        "confirmation_method": "automatic",
        "created": now(),
        "currency": intent.currency,
        "customer": intent.customer,
        "description": intent.description,
        "last_payment_error": last_payment_error,
        "latest_charge": charge,
        "livemode": false,
        "metadata": intent.metadata,
        "payment_method": payment_method,
        "payment_method_types": ["card"],
        "receipt_email": intent.receipt_email,
        "setup_future_usage": intent.setup_future_usage,
        "status": status,
    })
}

/// A 402 `card_error` that leaves a PaymentIntent in `requires_payment_method` (recorded).
fn decline(
    st: &mut State,
    intent: &Intent,
    code: &str,
    decline_code: Option<&str>,
    message: &str,
    param: Option<&str>,
    charged: bool,
) -> Outcome {
    let charge = charged.then(|| st.id("ch"));
    let mut error = stripe_error("card_error", Some(code), message, param);
    if let Some(decline_code) = decline_code {
        error.insert("decline_code".into(), decline_code.into());
    }
    if let Some(charge) = &charge {
        error.insert("charge".into(), charge.as_str().into());
    }
    let pi = intent_json(
        st,
        intent,
        "requires_payment_method",
        None,
        charge.as_deref(),
        Value::Object(error.clone()),
    );
    st.payment_intents.push(pi.clone());
    create_event(st, "payment_intent.payment_failed", pi.clone(), None);
    error.insert("payment_intent".into(), pi);
    Outcome::Final(Reply::json(402, &json!({ "error": error })))
}
