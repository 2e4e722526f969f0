//! Stripe events: created once per change (never on an idempotent replay), recorded and
//! handed to the webhook hub for delivery.

use serde_json::{json, Value};

use crate::stand_in::clock::now;
use crate::stand_in::state::State;

/// The `api_version` every event carries.
pub(crate) const API_VERSION: &str = "2026-04-22.preview";

/// Creates an event around `object`, records it and queues its delivery. The event's
/// `request.idempotency_key` is that of the API request being handled, if any.
pub(crate) fn create_event(
    st: &mut State,
    event_type: &str,
    object: Value,
    created: Option<i64>,
) -> Value {
    let event = json!({
        "id": st.id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": created.unwrap_or_else(now),
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": st.request_key},
        "type": event_type,
        "data": {"object": object},
    });
    st.hub.publish(&event);
    event
}
