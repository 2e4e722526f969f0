//! Reading Stripe form parameters (decoded by `form.rs` into JSON) strictly: unknown,
//! missing and mistyped parameters are rejected as Stripe rejects them, and rejections are not
//! stored under the idempotency key.

use serde_json::{Map, Value};

use crate::stand_in::idempotency::Outcome;

use super::errors::reject;

pub(crate) type Res<T> = Result<T, Outcome>;
pub(crate) type Params = Map<String, Value>;

fn name(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}[{key}]")
    }
}

/// Refuses parameters outside `allowed` (`parameter_unknown`).
pub(crate) fn allow(params: &Params, allowed: &[&str], prefix: &str) -> Res<()> {
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

pub(crate) fn req_str<'a>(params: &'a Params, key: &str, param: &str) -> Res<&'a str> {
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
pub(crate) fn opt_str<'a>(params: &'a Params, key: &str, param: &str) -> Res<Option<&'a str>> {
    Ok(get_str(params, key, param)?.filter(|s| !s.is_empty()))
}

pub(crate) fn integer(text: &str, param: &str) -> Res<i64> {
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

pub(crate) fn req_int(params: &Params, key: &str, param: &str) -> Res<i64> {
    integer(req_str(params, key, param)?, param)
}

/// A hash parameter (`a[b]=…`); `None` when absent.
pub(crate) fn get_hash<'a>(params: &'a Params, key: &str, param: &str) -> Res<Option<&'a Params>> {
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
pub(crate) fn metadata(params: &Params) -> Res<Map<String, Value>> {
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
pub(crate) fn currency(params: &Params, key: &str, param: &str) -> Res<String> {
    let code = req_str(params, key, param)?;
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(reject(None, &format!("Invalid currency: {code}."), param));
    }
    Ok(code.to_ascii_lowercase())
}

pub(crate) fn email(params: &Params) -> Res<Option<String>> {
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

/// Where a granted token is passed.
pub(crate) const TOKEN_PARAM: &str = "payment_method_data[shared_payment_granted_token]";

/// `payment_method_data[shared_payment_granted_token]`, required, with nothing else in
/// `payment_method_data` (PaymentIntents and SetupIntents paid with a granted token).
pub(crate) fn granted_token_param(p: &Params) -> Res<String> {
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
    Ok(req_str(pm_data, "shared_payment_granted_token", TOKEN_PARAM)?.to_string())
}
