//! Refunds of succeeded PaymentIntents, in full or in parts; each emits `charge.refunded`
//! with the charge as it stands after it.

use serde_json::{json, Value};

use crate::stand_in::clock::now;
use crate::stand_in::http::Reply;
use crate::stand_in::state::State;

use super::errors::{fail, reject};
use super::events::create_event;
use super::params::{allow, integer, metadata, opt_str, req_str, Params, Res};

pub(crate) fn create_refund(st: &mut State, p: &Params) -> Res<Reply> {
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
