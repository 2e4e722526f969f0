//! SetupIntents confirmed with a shared payment granted token: the token's payment method is
//! saved on the customer for off-session use, nothing is charged (`setup_intent.succeeded`).
//! A deactivated or expired token, or one whose card declines, is refused as Stripe refuses it
//! (`setup_intent_authentication_failure` is not modelled).

use serde_json::{json, Value};

use crate::stand_in::clock::now;
use crate::stand_in::http::Reply;
use crate::stand_in::state::State;

use super::errors::{fail, reject, stripe_error};
use super::events::create_event;
use super::params::{
    allow, granted_token_param, metadata, opt_str, req_str, Params, Res, TOKEN_PARAM,
};

pub(crate) fn create_setup_intent(st: &mut State, p: &Params) -> Res<Reply> {
    allow(
        p,
        &[
            "customer",
            "confirm",
            "usage",
            "payment_method_data",
            "metadata",
            "expand",
        ],
        "",
    )?;
    let customer = req_str(p, "customer", "customer")?.to_string();
    if req_str(p, "confirm", "confirm")? != "true" {
        return Err(reject(
            None,
            "This stand-in only implements confirmed SetupIntents: pass confirm=true.",
            "confirm",
        ));
    }
    let usage = opt_str(p, "usage", "usage")?
        .unwrap_or("off_session")
        .to_string();
    if usage != "off_session" && usage != "on_session" {
        return Err(reject(
            None,
            &format!("Invalid usage: must be one of off_session or on_session (got {usage})."),
            "usage",
        ));
    }
    let token_id = granted_token_param(p)?;
    let metadata = metadata(p)?;
    if !st.customers.iter().any(|c| c["id"] == customer.as_str()) {
        return Err(fail(
            400,
            "resource_missing",
            &format!("No such customer: '{customer}'"),
            "customer",
        ));
    }
    let now = now();
    let Some(token) = st.tokens.iter().find(|t| t.id == token_id) else {
        return Err(fail(
            400,
            "resource_missing",
            &format!("No such shared_payment.granted_token: '{token_id}'"),
            TOKEN_PARAM,
        ));
    };
    if let Some((_, reason)) = token.deactivation(now) {
        let code = if reason == "expired" {
            "shared_payment_token_expired"
        } else {
            "shared_payment_token_deactivated"
        };
        return Err(fail(
            402,
            code,
            &format!("The shared payment granted token cannot be used ({reason})."),
            TOKEN_PARAM,
        ));
    }
    if let Some(decline_code) = token.decline_code() {
        let mut error = stripe_error(
            "card_error",
            Some("card_declined"),
            "Your card was declined.",
            None,
        );
        error.insert("decline_code".into(), decline_code.into());
        return Err(crate::stand_in::idempotency::Outcome::Final(Reply::json(
            402,
            &json!({ "error": error }),
        )));
    }
    let pm_id = st.id("pm");
    st.payment_methods.push(json!({
        "id": pm_id, "object": "payment_method", "type": "card",
        "card": {"brand": "visa", "last4": "4242"}, "customer": customer,
        "created": now, "livemode": false, "metadata": {},
    }));
    let id = st.id("seti");
    let secret = st.random_chars(24);
    let intent = json!({
        "id": id,
        "object": "setup_intent",
        "client_secret": format!("{id}_secret_{secret}"),
        "created": now,
        "customer": customer,
        "livemode": false,
        "metadata": metadata,
        "payment_method": pm_id,
        "payment_method_types": ["card"],
        "status": "succeeded",
        "usage": usage,
        "last_setup_error": Value::Null,
    });
    st.setup_intents.push(intent.clone());
    create_event(st, "setup_intent.succeeded", intent.clone(), None);
    Ok(Reply::json(200, &intent))
}
