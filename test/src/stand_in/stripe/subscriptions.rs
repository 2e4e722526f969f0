//! Subscriptions: create (`customer.subscription.created`), cancel
//! (`customer.subscription.deleted`), and a status change for tests that emits nothing.

use serde_json::{json, Value};

use crate::stand_in::clock::now;
use crate::stand_in::http::Reply;
use crate::stand_in::state::State;

use super::errors::{fail, missing_object, reject};
use super::events::create_event;
use super::params::{allow, integer, metadata, opt_str, req_str, Params, Res};

/// Length of one billing period when there is no trial.
const PERIOD_SECS: i64 = 30 * 86_400;

pub(crate) fn create_subscription(st: &mut State, p: &Params) -> Res<Reply> {
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

/// `DELETE /v1/subscriptions/{id}`.
pub(crate) fn cancel_subscription(st: &mut State, p: &Params, id: &str) -> Res<Reply> {
    allow(p, &["invoice_now", "prorate", "expand"], "")?;
    let now = now();
    // A canceled subscription is gone for this call: Stripe answers "No such
    // subscription" (a retry with the same key replays the first answer instead).
    let Some(sub) = st
        .subscriptions
        .iter_mut()
        .find(|s| s["id"] == id && s["status"] != "canceled")
    else {
        return Err(missing_object("subscription", id));
    };
    sub["status"] = json!("canceled");
    sub["canceled_at"] = json!(now);
    sub["ended_at"] = json!(now);
    let sub = sub.clone();
    create_event(st, "customer.subscription.deleted", sub.clone(), None);
    Ok(Reply::json(200, &sub))
}

/// Sets a stored subscription's status (a `canceled` one also gets `canceled_at` and
/// `ended_at` if it had none) and returns it; emits nothing.
pub(crate) fn set_subscription_status(st: &mut State, id: &str, status: &str) -> Option<Value> {
    let now = now();
    let sub = st.subscriptions.iter_mut().find(|s| s["id"] == id)?;
    sub["status"] = json!(status);
    if status == "canceled" {
        for field in ["canceled_at", "ended_at"] {
            if sub[field].is_null() {
                sub[field] = json!(now);
            }
        }
    }
    Some(sub.clone())
}
