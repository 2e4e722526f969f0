//! The shared payment granted token object: data and its Stripe JSON, no state.

use serde_json::{json, Map, Value};

/// A shared payment granted token.
pub(crate) struct Token {
    pub(crate) id: String,
    pub(crate) created: i64,
    pub(crate) currency: String,
    pub(crate) max_amount: u64,
    pub(crate) expires_at: i64,
    pub(crate) amount_captured: u64,
    pub(crate) deactivated: Option<(i64, &'static str)>,
    pub(crate) metadata: Map<String, Value>,
}

impl Token {
    /// When and why it stopped being usable, if it did (expiry counts from `expires_at`).
    pub(crate) fn deactivation(&self, now: i64) -> Option<(i64, &'static str)> {
        self.deactivated
            .or((now > self.expires_at).then_some((self.expires_at, "expired")))
    }

    pub(crate) fn decline_code(&self) -> Option<String> {
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
