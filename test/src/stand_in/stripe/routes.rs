//! The Stripe API's front door: routing, API-key check, form decoding, required idempotency
//! keys, then the operation through the idempotency layer.

use serde_json::{Map, Value};

use crate::stand_in::clock::now;
use crate::stand_in::form;
use crate::stand_in::http::{Handled, Incoming, Reply};
use crate::stand_in::idempotency::{run, Api, Call, Outcome};
use crate::stand_in::state::State;

use super::credit_grants::create_credit_grant;
use super::customers::create_customer;
use super::errors::{invalid, missing_object, unrecognized};
use super::granted_tokens::{create_token_call, revoke_token};
use super::meter_events::create_meter_event;
use super::params::{allow, Params, Res};
use super::payment_intents::create_payment_intent;
use super::refunds::create_refund;
use super::setup_intents::create_setup_intent;
use super::subscriptions::{cancel_subscription, create_subscription};

/// Longest idempotency key Stripe accepts.
const MAX_KEY_LEN: usize = 255;

enum Route {
    GetToken(String),
    CreateToken,
    RevokeToken(String),
    CreateCustomer,
    GetCustomer(String),
    CreatePaymentIntent,
    GetPaymentIntent(String),
    CreateSubscription,
    GetSubscription(String),
    CancelSubscription(String),
    CreateRefund,
    GetRefund(String),
    CreateSetupIntent,
    CreateMeterEvent,
    CreateCreditGrant,
}

fn route(method: &str, path: &str) -> Option<Route> {
    let segments: Vec<&str> = path.strip_prefix("/v1/")?.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return None;
    }
    let id = |s: &str| s.to_string();
    Some(match (method, segments.as_slice()) {
        ("GET", ["shared_payment", "granted_tokens", t]) => Route::GetToken(id(t)),
        ("POST", ["test_helpers", "shared_payment", "granted_tokens"]) => Route::CreateToken,
        ("POST", ["test_helpers", "shared_payment", "granted_tokens", t, "revoke"]) => {
            Route::RevokeToken(id(t))
        }
        ("POST", ["customers"]) => Route::CreateCustomer,
        ("GET", ["customers", c]) => Route::GetCustomer(id(c)),
        ("POST", ["payment_intents"]) => Route::CreatePaymentIntent,
        ("GET", ["payment_intents", p]) => Route::GetPaymentIntent(id(p)),
        ("POST", ["subscriptions"]) => Route::CreateSubscription,
        ("GET", ["subscriptions", s]) => Route::GetSubscription(id(s)),
        ("DELETE", ["subscriptions", s]) => Route::CancelSubscription(id(s)),
        ("POST", ["refunds"]) => Route::CreateRefund,
        ("GET", ["refunds", r]) => Route::GetRefund(id(r)),
        ("POST", ["setup_intents"]) => Route::CreateSetupIntent,
        ("POST", ["billing", "meter_events"]) => Route::CreateMeterEvent,
        ("POST", ["billing", "credit_grants"]) => Route::CreateCreditGrant,
        _ => return None,
    })
}

/// Query parameters, and for POST (and a DELETE with a form body) the body's.
fn read_params(incoming: &Incoming) -> Result<Value, String> {
    let mut params = form::parse(incoming.query.as_bytes())?;
    let form_body = incoming.media_type() == "application/x-www-form-urlencoded";
    if incoming.method == "POST" || (form_body && !incoming.body.is_empty()) {
        // Stripe reads POST parameters from the body only.
        params = if form_body {
            form::parse(&incoming.body)?
        } else {
            Value::Object(Map::new())
        };
    }
    Ok(params)
}

fn redact(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 12 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..8].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 12))
}

pub(crate) fn handle(st: &mut State, incoming: &Incoming) -> Handled {
    let parsed = read_params(incoming);
    let logged = parsed.clone().unwrap_or(Value::Null);
    let done = |reply: Reply| Handled {
        reply,
        params: logged.clone(),
        replayed: false,
    };
    match incoming.bearer() {
        None => {
            return done(invalid(
                401,
                None,
                "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
                None,
            ))
        }
        Some(key) if key != st.config.api_key => {
            return done(invalid(
                401,
                None,
                &format!("Invalid API Key provided: {}", redact(key)),
                None,
            ))
        }
        Some(_) => {}
    }
    let Some(route) = route(&incoming.method, &incoming.path) else {
        return done(unrecognized(incoming));
    };
    let writes = incoming.method != "GET";
    if incoming.method == "POST" && incoming.media_type() != "application/x-www-form-urlencoded" {
        return done(invalid(
            400,
            None,
            "Invalid request: POST bodies must be application/x-www-form-urlencoded (Stripe's form encoding).",
            None,
        ));
    }
    let params = match parsed {
        Ok(params) => params,
        Err(message) => return done(invalid(400, None, &message, None)),
    };
    let key = incoming.idempotency_key();
    if writes {
        match key {
            None => {
                return done(invalid(
                    400,
                    Some("idempotency_key_required"),
                    "This stand-in requires an Idempotency-Key header on every POST and DELETE request.",
                    None,
                ))
            }
            Some(k) if k.len() > MAX_KEY_LEN => {
                return done(invalid(
                    400,
                    None,
                    &format!("Idempotency-Key must be at most {MAX_KEY_LEN} characters long."),
                    None,
                ))
            }
            Some(_) => {}
        }
    }
    let scope = format!("stripe\u{0}{}", st.config.api_key);
    let empty = Map::new();
    let map = params.as_object().unwrap_or(&empty);
    let (mut reply, replayed) = run(
        st,
        Call {
            api: Api::Stripe,
            scope: &scope,
            key: if writes { key } else { None },
            method: &incoming.method,
            path: &incoming.path,
            params: &params,
        },
        |st| perform(st, &route, map).unwrap_or_else(|outcome| outcome),
    );
    if let (true, Some(key)) = (writes, key) {
        reply = reply.with_header("Idempotency-Key", key);
    }
    Handled {
        reply,
        params,
        replayed,
    }
}

fn perform(st: &mut State, route: &Route, p: &Params) -> Res<Outcome> {
    let now = now();
    let reply = match route {
        Route::GetToken(id) => {
            allow(p, &["expand"], "")?;
            let token = st.tokens.iter().find(|t| t.id == *id);
            match token {
                Some(t) => Reply::json(200, &t.to_json(now)),
                None => return Err(missing_object("shared_payment.granted_token", id)),
            }
        }
        Route::CreateToken => create_token_call(st, p)?,
        Route::RevokeToken(id) => {
            allow(p, &["expand"], "")?;
            match revoke_token(st, id) {
                Some(token) => Reply::json(200, &token),
                None => return Err(missing_object("shared_payment.granted_token", id)),
            }
        }
        Route::CreateCustomer => create_customer(st, p)?,
        Route::GetCustomer(id) => get_object(p, &st.customers, "customer", id)?,
        Route::CreatePaymentIntent => create_payment_intent(st, p)?,
        Route::GetPaymentIntent(id) => get_object(p, &st.payment_intents, "payment_intent", id)?,
        Route::CreateSubscription => create_subscription(st, p)?,
        Route::GetSubscription(id) => get_object(p, &st.subscriptions, "subscription", id)?,
        Route::CancelSubscription(id) => cancel_subscription(st, p, id)?,
        Route::CreateRefund => create_refund(st, p)?,
        Route::GetRefund(id) => get_object(p, &st.refunds, "refund", id)?,
        Route::CreateSetupIntent => create_setup_intent(st, p)?,
        Route::CreateMeterEvent => create_meter_event(st, p)?,
        Route::CreateCreditGrant => create_credit_grant(st, p)?,
    };
    Ok(Outcome::Final(reply))
}

fn get_object(p: &Params, objects: &[Value], kind: &str, id: &str) -> Res<Reply> {
    allow(p, &["expand"], "")?;
    objects
        .iter()
        .find(|o| o["id"] == id)
        .map(|o| Reply::json(200, o))
        .ok_or_else(|| missing_object(kind, id))
}
