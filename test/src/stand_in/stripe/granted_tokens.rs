//! Shared payment granted tokens: create (test helper), read, revoke. A revocation emits
//! `shared_payment.granted_token.deactivated`, once.

use serde_json::{Map, Value};

use crate::stand_in::clock::now;
use crate::stand_in::http::Reply;
use crate::stand_in::state::State;

use super::errors::reject;
use super::events::create_event;
use super::params::{allow, currency, get_hash, metadata, opt_str, req_int, Params, Res};
use super::token::Token;

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

pub(crate) fn create_token_call(st: &mut State, p: &Params) -> Res<Reply> {
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
