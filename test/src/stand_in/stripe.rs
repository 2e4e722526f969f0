//! The Stripe subset, with Stripe's wire format and error bodies.
//!
//! | Route | Operation |
//! |---|---|
//! | `GET /v1/shared_payment/granted_tokens/{id}` | read a granted token |
//! | `POST /v1/test_helpers/shared_payment/granted_tokens` | create one (test helper) |
//! | `POST /v1/test_helpers/shared_payment/granted_tokens/{id}/revoke` | revoke it |
//! | `POST /v1/customers`, `GET /v1/customers/{id}` | customers |
//! | `POST /v1/payment_intents`, `GET /v1/payment_intents/{id}` | confirmed payments with a granted token |
//! | `POST /v1/subscriptions`, `GET`/`DELETE /v1/subscriptions/{id}` | subscriptions |
//! | `POST /v1/refunds`, `GET /v1/refunds/{id}` | refunds of succeeded PaymentIntents |
//!
//! Operations that change something emit their event (`webhooks.rs`): a payment
//! `payment_intent.succeeded` or `payment_intent.payment_failed` (every 402 decline), a
//! subscription `customer.subscription.created` / `customer.subscription.deleted`, a refund
//! `charge.refunded`, a revocation `shared_payment.granted_token.deactivated`. Idempotent
//! replays perform nothing, so they emit nothing.

use serde_json::{json, Map, Value};

use super::webhooks::create_event;
use super::{form, now, run, Api, Call, Handled, Incoming, Outcome, Reply, State};

/// Longest idempotency key Stripe accepts.
const MAX_KEY_LEN: usize = 255;
/// Length of one billing period when there is no trial.
const PERIOD_SECS: i64 = 30 * 86_400;

/// A shared payment granted token.
pub(crate) struct Token {
    pub(crate) id: String,
    created: i64,
    currency: String,
    max_amount: u64,
    expires_at: i64,
    amount_captured: u64,
    deactivated: Option<(i64, &'static str)>,
    metadata: Map<String, Value>,
}

impl Token {
    /// When and why it stopped being usable, if it did (expiry counts from `expires_at`).
    fn deactivation(&self, now: i64) -> Option<(i64, &'static str)> {
        self.deactivated
            .or((now > self.expires_at).then_some((self.expires_at, "expired")))
    }

    fn decline_code(&self) -> Option<String> {
        self.metadata
            .get("decline_code")
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    pub(crate) fn to_json(&self, now: i64) -> Value {
        let deactivation = self.deactivation(now);
        json!({
            "id": self.id,
            "object": "shared_payment.granted_token",
            "created": self.created,
            "livemode": false,
            "deactivated_at": deactivation.map(|(at, _)| at),
            "deactivated_reason": deactivation.map(|(_, why)| why),
            "usage_limits": {
                "currency": self.currency,
                "max_amount": self.max_amount,
                "expires_at": self.expires_at,
            },
            "usage_details": {
                "amount_captured": {"value": self.amount_captured, "currency": self.currency},
            },
            "metadata": self.metadata,
        })
    }
}

/// A granted token as Stripe shows it (`null` when unknown).
pub(crate) fn token_json(st: &State, id: &str) -> Value {
    st.tokens
        .iter()
        .find(|t| t.id == id)
        .map(|t| t.to_json(now()))
        .unwrap_or(Value::Null)
}

/// Creates a token and returns its id. `metadata.decline_code` scripts a decline.
pub(crate) fn create_token(
    st: &mut State,
    currency: &str,
    max_amount: u64,
    expires_at: i64,
    metadata: Map<String, Value>,
) -> String {
    let id = st.id("spt");
    st.tokens.push(Token {
        id: id.clone(),
        created: now(),
        currency: currency.to_string(),
        max_amount,
        expires_at,
        amount_captured: 0,
        deactivated: None,
        metadata,
    });
    id
}

/// Revokes a token (a deactivated one keeps its first reason); returns it, or `None`.
/// Emits `shared_payment.granted_token.deactivated` when it was still usable.
pub(crate) fn revoke_token(st: &mut State, id: &str) -> Option<Value> {
    let now = now();
    let token = st.tokens.iter_mut().find(|t| t.id == id)?;
    let revoked = token.deactivation(now).is_none();
    if revoked {
        token.deactivated = Some((now, "revoked"));
    }
    let token = token.to_json(now);
    if revoked {
        create_event(
            st,
            "shared_payment.granted_token.deactivated",
            token.clone(),
            None,
        );
    }
    Some(token)
}

// ---------------------------------------------------------------------------------------------
// Errors

/// A Stripe error body with every optional field.
fn stripe_error(
    kind: &str,
    code: Option<&str>,
    message: &str,
    param: Option<&str>,
) -> Map<String, Value> {
    let mut error = Map::new();
    error.insert("type".into(), kind.into());
    if let Some(code) = code {
        error.insert("code".into(), code.into());
    }
    error.insert("message".into(), message.into());
    if let Some(param) = param {
        error.insert("param".into(), param.into());
    }
    error
}

fn invalid(status: u16, code: Option<&str>, message: &str, param: Option<&str>) -> Reply {
    let error = stripe_error("invalid_request_error", code, message, param);
    Reply::json(status, &json!({ "error": error }))
}

/// A parameter-validation failure: 400, not stored under the idempotency key.
fn reject(code: Option<&str>, message: &str, param: &str) -> Outcome {
    Outcome::Rejected(invalid(400, code, message, Some(param)))
}

/// A stored failure such as `resource_missing`.
fn fail(status: u16, code: &str, message: &str, param: &str) -> Outcome {
    Outcome::Final(invalid(status, Some(code), message, Some(param)))
}

/// `404 Unrecognized request URL`, as Stripe answers unknown routes.
pub(crate) fn unrecognized(incoming: &Incoming) -> Reply {
    invalid(
        404,
        None,
        &format!(
            "Unrecognized request URL ({}: {}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.",
            incoming.method, incoming.path
        ),
        None,
    )
}

fn missing_object(kind: &str, id: &str) -> Outcome {
    fail(
        404,
        "resource_missing",
        &format!("No such {kind}: '{id}'"),
        "id",
    )
}

// ---------------------------------------------------------------------------------------------
// Parameters

type Res<T> = Result<T, Outcome>;
type Params = Map<String, Value>;

fn name(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}[{key}]")
    }
}

/// Refuses parameters outside `allowed` (`parameter_unknown`).
fn allow(params: &Params, allowed: &[&str], prefix: &str) -> Res<()> {
    match params.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => {
            let param = name(prefix, unknown);
            Err(reject(
                Some("parameter_unknown"),
                &format!("Received unknown parameter: {param}"),
                &param,
            ))
        }
        None => Ok(()),
    }
}

/// A string parameter: `None` when absent, `Some("")` when empty.
fn get_str<'a>(params: &'a Params, key: &str, param: &str) -> Res<Option<&'a str>> {
    match params.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(reject(
            None,
            &format!("Invalid string: {param} must be a string"),
            param,
        )),
    }
}

fn req_str<'a>(params: &'a Params, key: &str, param: &str) -> Res<&'a str> {
    match get_str(params, key, param)? {
        None => Err(reject(
            Some("parameter_missing"),
            &format!("Missing required param: {param}."),
            param,
        )),
        Some("") => Err(reject(
            Some("parameter_invalid_empty"),
            &format!("You passed an empty string for '{param}'. We assume empty values are an attempt to unset a parameter; however '{param}' cannot be unset. You should remove '{param}' from your request or supply a non-empty value."),
            param,
        )),
        Some(s) => Ok(s),
    }
}

/// An optional string; empty counts as absent.
fn opt_str<'a>(params: &'a Params, key: &str, param: &str) -> Res<Option<&'a str>> {
    Ok(get_str(params, key, param)?.filter(|s| !s.is_empty()))
}

fn integer(text: &str, param: &str) -> Res<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(reject(
            Some("parameter_invalid_integer"),
            &format!("Invalid integer: {text}"),
            param,
        ));
    }
    text.parse().map_err(|_| {
        reject(
            Some("parameter_invalid_integer"),
            &format!("Invalid integer: {text}"),
            param,
        )
    })
}

fn req_int(params: &Params, key: &str, param: &str) -> Res<i64> {
    integer(req_str(params, key, param)?, param)
}

/// A hash parameter (`a[b]=…`); `None` when absent.
fn get_hash<'a>(params: &'a Params, key: &str, param: &str) -> Res<Option<&'a Params>> {
    match params.get(key) {
        None => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(reject(
            None,
            &format!("Invalid hash: {param} must be given as {param}[key]=value"),
            param,
        )),
    }
}

/// `metadata[...]`: at most 50 string values, keys up to 40 and values up to 500 characters;
/// empty values are dropped (Stripe reads them as "unset").
fn metadata(params: &Params) -> Res<Map<String, Value>> {
    let entries: Vec<(String, Value)> = match params.get("metadata") {
        None => return Ok(Map::new()),
        Some(Value::String(s)) if s.is_empty() => return Ok(Map::new()),
        Some(Value::Object(map)) => map.clone().into_iter().collect(),
        // `metadata[0]=x` was read as a list; for metadata those are plain keys.
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v.clone()))
            .collect(),
        Some(_) => {
            return Err(reject(
                None,
                "Invalid hash: metadata must be given as metadata[key]=value",
                "metadata",
            ))
        }
    };
    if entries.len() > 50 {
        return Err(reject(
            None,
            "Metadata can have at most 50 keys.",
            "metadata",
        ));
    }
    let mut out = Map::new();
    for (key, value) in entries {
        let param = format!("metadata[{key}]");
        let Value::String(value) = value else {
            return Err(reject(
                None,
                &format!("Invalid string: {param} must be a string"),
                &param,
            ));
        };
        if key.chars().count() > 40 {
            return Err(reject(
                None,
                "Metadata keys can have at most 40 characters.",
                &param,
            ));
        }
        if value.chars().count() > 500 {
            return Err(reject(
                None,
                "Metadata values can have at most 500 characters.",
                &param,
            ));
        }
        if !value.is_empty() {
            out.insert(key, Value::String(value));
        }
    }
    Ok(out)
}

/// A three-letter currency code, lowercased as Stripe stores it.
fn currency(params: &Params, key: &str, param: &str) -> Res<String> {
    let code = req_str(params, key, param)?;
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(reject(None, &format!("Invalid currency: {code}."), param));
    }
    Ok(code.to_ascii_lowercase())
}

fn email(params: &Params) -> Res<Option<String>> {
    let Some(email) = opt_str(params, "email", "email")? else {
        return Ok(None);
    };
    let valid = match email.split_once('@') {
        Some((local, host)) => {
            !local.is_empty()
                && host.contains('.')
                && !host.starts_with('.')
                && !host.ends_with('.')
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
                && !host.contains('@')
                && email.len() <= 512
        }
        None => false,
    };
    if !valid {
        return Err(reject(
            Some("email_invalid"),
            &format!("Invalid email address: {email}"),
            "email",
        ));
    }
    Ok(Some(email.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Routing

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
        Route::CancelSubscription(id) => {
            allow(p, &["invoice_now", "prorate", "expand"], "")?;
            // A canceled subscription is gone for this call: Stripe answers "No such
            // subscription" (a retry with the same key replays the first answer instead).
            let Some(sub) = st
                .subscriptions
                .iter_mut()
                .find(|s| s["id"] == id.as_str() && s["status"] != "canceled")
            else {
                return Err(missing_object("subscription", id));
            };
            sub["status"] = json!("canceled");
            sub["canceled_at"] = json!(now);
            sub["ended_at"] = json!(now);
            let sub = sub.clone();
            create_event(st, "customer.subscription.deleted", sub.clone(), None);
            Reply::json(200, &sub)
        }
        Route::CreateRefund => create_refund(st, p)?,
        Route::GetRefund(id) => get_object(p, &st.refunds, "refund", id)?,
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

fn create_token_call(st: &mut State, p: &Params) -> Res<Reply> {
    allow(
        p,
        &["usage_limits", "metadata", "payment_method", "expand"],
        "",
    )?;
    let limits_param = "usage_limits[currency]";
    let Some(limits) = get_hash(p, "usage_limits", "usage_limits")? else {
        return Err(reject(
            Some("parameter_missing"),
            &format!("Missing required param: {limits_param}."),
            limits_param,
        ));
    };
    allow(
        limits,
        &["currency", "max_amount", "expires_at"],
        "usage_limits",
    )?;
    let currency = currency(limits, "currency", limits_param)?;
    let max_amount = req_int(limits, "max_amount", "usage_limits[max_amount]")?;
    if max_amount <= 0 {
        return Err(reject(
            None,
            "usage_limits[max_amount] must be greater than 0.",
            "usage_limits[max_amount]",
        ));
    }
    let expires_at = req_int(limits, "expires_at", "usage_limits[expires_at]")?;
    opt_str(p, "payment_method", "payment_method")?;
    let metadata = metadata(p)?;
    let id = create_token(st, &currency, max_amount as u64, expires_at, metadata);
    Ok(Reply::json(200, &token_json(st, &id)))
}

fn create_customer(st: &mut State, p: &Params) -> Res<Reply> {
    allow(
        p,
        &[
            "email",
            "name",
            "description",
            "phone",
            "metadata",
            "expand",
        ],
        "",
    )?;
    let email = email(p)?;
    let name = opt_str(p, "name", "name")?;
    let description = opt_str(p, "description", "description")?;
    let phone = opt_str(p, "phone", "phone")?;
    let metadata = metadata(p)?;
    let customer = json!({
        "id": st.id("cus"),
        "object": "customer",
        "created": now(),
        "livemode": false,
        "email": email,
        "name": name,
        "description": description,
        "phone": phone,
        "metadata": metadata,
        "balance": 0,
        "currency": null,
        "delinquent": false,
        "invoice_settings": {"default_payment_method": null},
    });
    st.customers.push(customer.clone());
    Ok(Reply::json(200, &customer))
}

// ---------------------------------------------------------------------------------------------
// PaymentIntents

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

const TOKEN_PARAM: &str = "payment_method_data[shared_payment_granted_token]";

fn create_payment_intent(st: &mut State, p: &Params) -> Res<Reply> {
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
    let Some(pm_data) = get_hash(p, "payment_method_data", "payment_method_data")? else {
        return Err(reject(
            Some("parameter_missing"),
            &format!("Missing required param: {TOKEN_PARAM}."),
            TOKEN_PARAM,
        ));
    };
    allow(
        pm_data,
        &["shared_payment_granted_token"],
        "payment_method_data",
    )?;
    let token_id = req_str(pm_data, "shared_payment_granted_token", TOKEN_PARAM)?.to_string();
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

// ---------------------------------------------------------------------------------------------
// Subscriptions

fn create_subscription(st: &mut State, p: &Params) -> Res<Reply> {
    allow(
        p,
        &[
            "customer",
            "items",
            "default_payment_method",
            "trial_end",
            "metadata",
            "expand",
        ],
        "",
    )?;
    let customer = req_str(p, "customer", "customer")?.to_string();
    let items = match p.get("items") {
        None => {
            return Err(reject(
                Some("parameter_missing"),
                "Missing required param: items[0][price].",
                "items[0][price]",
            ))
        }
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(reject(
                None,
                "Invalid array: items must be given as items[0][price]=…",
                "items",
            ))
        }
    };
    let mut prices = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let prefix = format!("items[{i}]");
        let Value::Object(item) = item else {
            return Err(reject(None, &format!("Invalid hash: {prefix}"), &prefix));
        };
        allow(item, &["price", "quantity"], &prefix)?;
        let price = req_str(item, "price", &format!("{prefix}[price]"))?.to_string();
        let quantity = match opt_str(item, "quantity", &format!("{prefix}[quantity]"))? {
            None => 1,
            Some(q) => {
                let param = format!("{prefix}[quantity]");
                let q = integer(q, &param)?;
                if q < 1 {
                    return Err(reject(None, "Quantity must be at least 1.", &param));
                }
                q
            }
        };
        prices.push((price, quantity));
    }
    let pm = req_str(p, "default_payment_method", "default_payment_method")?.to_string();
    let now = now();
    let trial_end = match opt_str(p, "trial_end", "trial_end")? {
        None | Some("now") => None,
        Some(t) => {
            let t = integer(t, "trial_end")?;
            if t <= now {
                return Err(reject(
                    None,
                    "Invalid timestamp: must be an integer Unix timestamp in the future.",
                    "trial_end",
                ));
            }
            Some(t)
        }
    };
    let metadata = metadata(p)?;

    if !st.customers.iter().any(|c| c["id"] == customer.as_str()) {
        return Err(fail(
            400,
            "resource_missing",
            &format!("No such customer: '{customer}'"),
            "customer",
        ));
    }
    let attached = st
        .payment_methods
        .iter()
        .any(|m| m["id"] == pm.as_str() && m["customer"] == customer.as_str());
    if !attached {
        return Err(fail(
            400,
            "resource_missing",
            &format!("The customer does not have a payment method with the ID {pm}. The payment method must be attached to the customer."),
            "default_payment_method",
        ));
    }
    let id = st.id("sub");
    let period_end = trial_end.unwrap_or(now + PERIOD_SECS);
    let mut data = Vec::new();
    for (price, quantity) in &prices {
        data.push(json!({
            "id": st.id("si"),
            "object": "subscription_item",
            "price": {"id": price, "object": "price"},
            "quantity": quantity,
            "current_period_start": now,
            "current_period_end": period_end,
        }));
    }
    let subscription = json!({
        "id": id,
        "object": "subscription",
        "status": if trial_end.is_some() { "trialing" } else { "active" },
        "customer": customer,
        "default_payment_method": pm,
        "items": {
            "object": "list",
            "data": data,
            "has_more": false,
            "total_count": prices.len(),
            "url": format!("/v1/subscription_items?subscription={id}"),
        },
        "created": now,
        "start_date": now,
        "current_period_start": now,
        "current_period_end": period_end,
        "trial_start": trial_end.map(|_| now),
        "trial_end": trial_end,
        "cancel_at_period_end": false,
        "canceled_at": null,
        "ended_at": null,
        "livemode": false,
        "metadata": metadata,
    });
    st.subscriptions.push(subscription.clone());
    create_event(
        st,
        "customer.subscription.created",
        subscription.clone(),
        None,
    );
    Ok(Reply::json(200, &subscription))
}

// ---------------------------------------------------------------------------------------------
// Refunds

fn create_refund(st: &mut State, p: &Params) -> Res<Reply> {
    allow(
        p,
        &["payment_intent", "amount", "reason", "metadata", "expand"],
        "",
    )?;
    let pi_id = req_str(p, "payment_intent", "payment_intent")?.to_string();
    let amount = match opt_str(p, "amount", "amount")? {
        None => None,
        Some(text) => {
            let amount = integer(text, "amount")?;
            if amount <= 0 {
                return Err(reject(
                    Some("amount_too_small"),
                    "Refund amount must be at least 1.",
                    "amount",
                ));
            }
            Some(amount as u64)
        }
    };
    let reason = opt_str(p, "reason", "reason")?;
    if let Some(reason) = reason {
        if !["duplicate", "fraudulent", "requested_by_customer"].contains(&reason) {
            return Err(reject(
                None,
                &format!("Invalid reason: must be one of duplicate, fraudulent or requested_by_customer (got {reason})."),
                "reason",
            ));
        }
    }
    let metadata = metadata(p)?;

    let Some(pi) = st
        .payment_intents
        .iter()
        .find(|pi| pi["id"] == pi_id.as_str())
        .cloned()
    else {
        return Err(fail(
            400,
            "resource_missing",
            &format!("No such payment_intent: '{pi_id}'"),
            "payment_intent",
        ));
    };
    if pi["status"] != "succeeded" {
        return Err(fail(
            400,
            "payment_intent_unexpected_state",
            &format!("PaymentIntent {pi_id} has no successful charge to refund."),
            "payment_intent",
        ));
    }
    let received = pi["amount_received"].as_u64().unwrap_or(0);
    let currency = pi["currency"].clone();
    let charge = pi["latest_charge"].clone();
    let refunded: u64 = st
        .refunds
        .iter()
        .filter(|r| r["payment_intent"] == pi_id.as_str())
        .filter_map(|r| r["amount"].as_u64())
        .sum();
    let remaining = received.saturating_sub(refunded);
    if remaining == 0 {
        return Err(fail(
            400,
            "charge_already_refunded",
            &format!(
                "Charge {} has already been refunded.",
                charge.as_str().unwrap_or("")
            ),
            "payment_intent",
        ));
    }
    let amount = amount.unwrap_or(remaining);
    if amount > remaining {
        return Err(fail(
            400,
            "amount_too_large",
            &format!("Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})."),
            "amount",
        ));
    }
    let refund = json!({
        "id": st.id("re"),
        "object": "refund",
        "amount": amount,
        "currency": currency,
        "charge": charge,
        "payment_intent": pi_id,
        "reason": reason,
        "status": "succeeded",
        "created": now(),
        "metadata": metadata,
    });
    st.refunds.push(refund.clone());
    let charge = charge_json(&pi, refunded + amount);
    create_event(st, "charge.refunded", charge, None);
    Ok(Reply::json(200, &refund))
}

/// The charge of a succeeded PaymentIntent, `amount_refunded` of it refunded (`refunded` is
/// true once all of it is, as on Stripe).
fn charge_json(pi: &Value, amount_refunded: u64) -> Value {
    let amount = pi["amount_received"].as_u64().unwrap_or(0);
    json!({
        "id": pi["latest_charge"],
        "object": "charge",
        "amount": pi["amount"],
        "amount_captured": amount,
        "amount_refunded": amount_refunded,
        "balance_transaction": null,
        "captured": true,
        "created": pi["created"],
        "currency": pi["currency"],
        "customer": pi["customer"],
        "description": pi["description"],
        "disputed": false,
        "livemode": false,
        "metadata": pi["metadata"],
        "paid": true,
        "payment_intent": pi["id"],
        "payment_method": pi["payment_method"],
        "receipt_email": pi["receipt_email"],
        "refunded": amount_refunded >= amount,
        "status": "succeeded",
    })
}
