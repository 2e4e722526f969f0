//! Renewal invoices, built on demand for tests (the stand-in has no billing cycle): nothing
//! is stored or emitted.

use serde_json::{json, Map, Value};

use crate::stand_in::clock::now;
use crate::stand_in::state::State;

/// A Stripe invoice for a renewal of `subscription_id`: paid, or open after a failed attempt.
/// Customer, metadata and periods come from the stored subscription (null, empty and now when
/// there is none).
pub(crate) fn invoice_object(
    st: &mut State,
    subscription_id: &str,
    paid: bool,
    amount: u64,
) -> Value {
    let now = now();
    let sub = st
        .subscriptions
        .iter()
        .find(|s| s["id"] == subscription_id)
        .cloned()
        .unwrap_or(Value::Null);
    let customer = sub["customer"].clone();
    let metadata = match &sub["metadata"] {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    // Stripe's renewal invoice covers the period that just ended; its line, the next one.
    let period_start = sub["current_period_start"].as_i64().unwrap_or(now);
    let period_end = sub["current_period_end"].as_i64().unwrap_or(now);
    let line_end = period_end + (period_end - period_start).max(0);
    let price = sub["items"]["data"][0]["price"].clone();
    let id = st.id("in");
    let line_id = st.id("il");
    let number = st.random_chars(8).to_ascii_uppercase();
    json!({
        "id": id,
        "object": "invoice",
        "account_country": "US",
        "amount_due": amount,
        "amount_paid": if paid { amount } else { 0 },
        "amount_remaining": if paid { 0 } else { amount },
        "attempt_count": 1,
        "attempted": true,
        "auto_advance": !paid,
        "billing_reason": "subscription_cycle",
        "collection_method": "charge_automatically",
        "created": now,
        "currency": "usd",
        "customer": customer,
        "description": null,
        "hosted_invoice_url": null,
        "lines": {
            "object": "list",
            "data": [{
                "id": line_id,
                "object": "line_item",
                "amount": amount,
                "currency": "usd",
                "description": null,
                "invoice": id,
                "livemode": false,
                "metadata": metadata,
                "period": {"start": period_end, "end": line_end},
                "pricing": {"type": "price_details", "price_details": {"price": price["id"]}},
                "quantity": 1,
                "subscription": subscription_id,
            }],
            "has_more": false,
            "total_count": 1,
            "url": format!("/v1/invoices/{id}/lines"),
        },
        "livemode": false,
        "metadata": {},
        "next_payment_attempt": if paid { Value::Null } else { json!(now + 86_400) },
        "number": number,
        "paid": paid,
        "parent": {
            "type": "subscription_details",
            "quote_details": null,
            "subscription_details": {"subscription": subscription_id, "metadata": metadata},
        },
        "period_start": period_start,
        "period_end": period_end,
        "status": if paid { "paid" } else { "open" },
        "status_transitions": {
            "finalized_at": now,
            "paid_at": if paid { json!(now) } else { Value::Null },
            "voided_at": null,
            "marked_uncollectible_at": null,
        },
        "subscription": subscription_id,
        "subscription_details": {"metadata": metadata},
        "subtotal": amount,
        "total": amount,
    })
}
