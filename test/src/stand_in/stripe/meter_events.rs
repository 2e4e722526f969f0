//! Billing meter events (`POST /v1/billing/meter_events`), as Stripe takes them: `event_name`
//! (1-100 characters) and `payload` with `stripe_customer_id` (an existing customer) and
//! `value` (a whole number as text) are required; `identifier` (at most 100 characters) is
//! unique; `timestamp` must be within the past 35 days and at most 5 minutes ahead. Events
//! are kept for tests to sum (`meter_events` in the state); they emit no webhook.

use serde_json::json;

use crate::stand_in::clock::now;
use crate::stand_in::http::Reply;
use crate::stand_in::state::State;

use super::errors::{fail, reject};
use super::params::{allow, get_hash, integer, opt_str, req_str, Params, Res};

pub(crate) fn create_meter_event(st: &mut State, p: &Params) -> Res<Reply> {
    allow(
        p,
        &["event_name", "payload", "identifier", "timestamp", "expand"],
        "",
    )?;
    let event_name = req_str(p, "event_name", "event_name")?.to_string();
    if event_name.chars().count() > 100 {
        return Err(reject(
            None,
            "event_name must be at most 100 characters.",
            "event_name",
        ));
    }
    let Some(payload) = get_hash(p, "payload", "payload")? else {
        return Err(reject(
            Some("parameter_missing"),
            "Missing required param: payload.",
            "payload",
        ));
    };
    let customer = req_str(payload, "stripe_customer_id", "payload[stripe_customer_id]")?;
    let value = req_str(payload, "value", "payload[value]")?;
    let numeric = integer(value, "payload[value]")?;
    if numeric < 0 {
        return Err(reject(
            None,
            "payload[value] must be 0 or more.",
            "payload[value]",
        ));
    }
    let now = now();
    let identifier = match opt_str(p, "identifier", "identifier")? {
        Some(i) if i.chars().count() > 100 => {
            return Err(reject(
                None,
                "identifier must be at most 100 characters.",
                "identifier",
            ))
        }
        Some(i) => i.to_string(),
        None => st.id("mtrevt"),
    };
    let timestamp = match opt_str(p, "timestamp", "timestamp")? {
        None => now,
        Some(t) => integer(t, "timestamp")?,
    };
    if timestamp < now - 35 * 86_400 || timestamp > now + 300 {
        return Err(reject(
            Some("timestamp_outside_window"),
            "timestamp must be within the past 35 calendar days or up to 5 minutes in the future.",
            "timestamp",
        ));
    }
    if !st.customers.iter().any(|c| c["id"] == customer) {
        return Err(fail(
            400,
            "resource_missing",
            &format!("No such customer: '{customer}'"),
            "payload[stripe_customer_id]",
        ));
    }
    if st
        .meter_events
        .iter()
        .any(|e| e["identifier"] == identifier.as_str())
    {
        return Err(fail(
            400,
            "meter_event_duplicate_identifier",
            &format!("A meter event with identifier '{identifier}' already exists."),
            "identifier",
        ));
    }
    let event = json!({
        "object": "billing.meter_event",
        "created": now,
        "event_name": event_name,
        "identifier": identifier,
        "livemode": false,
        "payload": {"stripe_customer_id": customer, "value": value},
        "timestamp": timestamp,
    });
    st.meter_events.push(event.clone());
    Ok(Reply::json(200, &event))
}
