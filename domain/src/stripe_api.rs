//! Stripe, as far as the provider needs it (docs/PROTOCOL.md §6.1): the request parameters it sends,
//! the answers it reads, and what each failure means for a purchase.
//!
//! Pure: the glue (`src/stripe.rs`) performs the HTTP calls. Every POST carries an
//! `Idempotency-Key` derived from the account and resource, so a retry after an outage or a lost
//! response never charges twice.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ledger::format_amount;

/// The shared payment granted token, as `GET /v1/shared_payment/granted_tokens/{id}` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantedToken {
    pub id: String,
    pub currency: String,
    pub max_amount: u64,
    pub expires_at: Option<i64>,
    pub amount_captured: u64,
    pub deactivated: bool,
}

impl GrantedToken {
    /// What the token can still pay: its limit less what was captured with it.
    pub fn available(&self) -> u64 {
        self.max_amount.saturating_sub(self.amount_captured)
    }

    /// Reads the Stripe object; `None` when it lacks the fields we rely on.
    pub fn from_stripe(v: &Value) -> Option<GrantedToken> {
        let limits = v.get("usage_limits")?;
        Some(GrantedToken {
            id: v.get("id")?.as_str()?.to_string(),
            currency: limits.get("currency")?.as_str()?.to_string(),
            max_amount: limits.get("max_amount")?.as_u64()?,
            expires_at: limits.get("expires_at").and_then(Value::as_i64),
            amount_captured: v
                .pointer("/usage_details/amount_captured/value")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            deactivated: !v.get("deactivated_at").is_none_or(Value::is_null),
        })
    }
}

/// Why a payment cannot go ahead, as the resource endpoints report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PaymentError {
    /// The token does not exist or was deactivated.
    TokenInvalid {
        message: String,
    },
    TokenExpired,
    /// The token's remaining `max_amount` is below the price.
    TokenInsufficient {
        available: u64,
        amount: u64,
        currency: String,
    },
    TokenCurrency {
        expected: String,
        got: String,
    },
    /// Stripe declined the charge.
    Declined {
        code: String,
        decline_code: Option<String>,
        message: String,
    },
    /// Stripe refused the request for another reason (ours, or the operator's configuration).
    Failed {
        code: String,
        message: String,
    },
}

impl PaymentError {
    /// The stable code and the message a caller (and a failed resource) sees; errors.rs adds
    /// the HTTP status.
    pub fn describe(&self) -> (&'static str, String) {
        match self {
            PaymentError::TokenInvalid { message } => said("payment_token_invalid",
                format!("the payment token cannot be used ({message}); ask the human for a new one"),
            ),
            PaymentError::TokenExpired => said("payment_token_expired",
                "the payment token has expired; ask the human for a new one",
            ),
            PaymentError::TokenInsufficient { available, amount, currency } => said("payment_token_insufficient",
                format!(
                    "the payment token allows {} more but this costs {}; ask for a token with a higher max_amount",
                    format_amount(*available, currency),
                    format_amount(*amount, currency)
                ),
            ),
            PaymentError::TokenCurrency { expected, got } => said("payment_token_currency_mismatch",
                format!("the payment token is in {got} but the price is in {expected}"),
            ),
            PaymentError::Declined { decline_code, message, .. } => said("payment_declined",
                match decline_code {
                    Some(c) => format!("{message} (decline code {c}); try another payment method"),
                    None => format!("{message}; try another payment method"),
                },
            ),
            PaymentError::Failed { code, message } => said("payment_failed",
                format!("the payment failed ({code}): {message}"),
            ),
        }
    }
}

fn said(code: &'static str, message: impl Into<String>) -> (&'static str, String) {
    (code, message.into())
}

/// Checks a granted token against a charge before making it.
pub fn check_token(
    t: &GrantedToken,
    amount: u64,
    currency: &str,
    now: i64,
) -> Result<(), PaymentError> {
    if t.deactivated {
        return Err(PaymentError::TokenInvalid {
            message: "the payment token was deactivated".into(),
        });
    }
    if t.expires_at.is_some_and(|e| e <= now) {
        return Err(PaymentError::TokenExpired);
    }
    if t.currency != currency {
        return Err(PaymentError::TokenCurrency {
            expected: currency.to_string(),
            got: t.currency.clone(),
        });
    }
    let available = t.available();
    if available < amount {
        return Err(PaymentError::TokenInsufficient {
            available,
            amount,
            currency: currency.to_string(),
        });
    }
    Ok(())
}

/// What a failed Stripe call means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StripeFailure {
    /// Definite: do not retry; the purchase fails with this error.
    Refused(PaymentError),
    /// Transient (network, timeout, 429, 5xx): retry later with the same idempotency key.
    Unavailable { message: String },
}

/// Classifies a non-2xx Stripe answer.
pub fn classify(status: u16, body: &Value) -> StripeFailure {
    let e = body.get("error").cloned().unwrap_or(Value::Null);
    let text = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
    let code = text("code").unwrap_or_else(|| "stripe_error".into());
    let message = text("message").unwrap_or_else(|| format!("Stripe answered {status}"));
    match status {
        429 | 500..=599 => StripeFailure::Unavailable { message },
        402 => StripeFailure::Refused(PaymentError::Declined {
            code,
            decline_code: text("decline_code"),
            message,
        }),
        404 if code == "resource_missing" => {
            StripeFailure::Refused(PaymentError::TokenInvalid { message })
        }
        _ => StripeFailure::Refused(PaymentError::Failed { code, message }),
    }
}

/// Form encoding with Stripe's bracketed keys (`metadata[account_id]`), values escaped.
pub fn form(params: &[(&str, String)]) -> String {
    let fields: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    crate::form::encode(&fields)
}

/// Parameters of a confirmed PaymentIntent paid with a shared payment granted token.
pub struct Charge<'a> {
    pub amount: u64,
    pub currency: &'a str,
    pub token: &'a str,
    pub customer: Option<&'a str>,
    /// Keep the (cloned) payment method on the customer for a subscription.
    pub save_for_subscription: bool,
    pub description: &'a str,
    pub account_id: &'a str,
    pub resource_id: &'a str,
}

pub fn payment_intent_params(c: &Charge) -> Vec<(&'static str, String)> {
    let mut p = vec![
        ("amount", c.amount.to_string()),
        ("currency", c.currency.to_string()),
        ("confirm", "true".into()),
        (
            "payment_method_data[shared_payment_granted_token]",
            c.token.to_string(),
        ),
        ("description", c.description.to_string()),
        ("metadata[account_id]", c.account_id.to_string()),
        ("metadata[resource_id]", c.resource_id.to_string()),
    ];
    if let Some(customer) = c.customer {
        p.push(("customer", customer.to_string()));
    }
    if c.save_for_subscription {
        p.push(("setup_future_usage", "off_session".into()));
    }
    p
}

pub fn customer_params(
    account_id: &str,
    email: &str,
    name: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut p = vec![
        ("email", email.to_string()),
        ("metadata[account_id]", account_id.to_string()),
    ];
    if let Some(n) = name {
        p.push(("name", n.to_string()));
    }
    p
}

/// A subscription: one whose first period was already paid by a PaymentIntent starts in trial
/// until that period ends (`trial_end`), so the first invoice is not charged twice; a metered
/// one (`None`) bills from now, in arrears.
pub fn subscription_params(
    customer: &str,
    price: &str,
    payment_method: &str,
    trial_end: Option<i64>,
    account_id: &str,
    resource_id: &str,
) -> Vec<(&'static str, String)> {
    let mut p = vec![
        ("customer", customer.to_string()),
        ("items[0][price]", price.to_string()),
        ("default_payment_method", payment_method.to_string()),
        ("metadata[account_id]", account_id.to_string()),
        ("metadata[resource_id]", resource_id.to_string()),
    ];
    if let Some(t) = trial_end {
        p.insert(3, ("trial_end", t.to_string()));
    }
    p
}

/// A confirmed SetupIntent saving the granted token's payment method on `customer` for
/// off-session use (a metered subscription's invoices), charging nothing.
pub fn setup_intent_params(
    customer: &str,
    token: &str,
    account_id: &str,
    resource_id: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("customer", customer.to_string()),
        ("confirm", "true".into()),
        ("usage", "off_session".into()),
        (
            "payment_method_data[shared_payment_granted_token]",
            token.to_string(),
        ),
        ("metadata[account_id]", account_id.to_string()),
        ("metadata[resource_id]", resource_id.to_string()),
    ]
}

/// A Billing credit grant of `amount` (minor units) on `customer`, for metered prices (the
/// usage invoice), promotional, expiring at `expires_at`.
pub fn credit_grant_params(
    customer: &str,
    amount: u64,
    currency: &str,
    expires_at: i64,
    name: &str,
    account_id: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("customer", customer.to_string()),
        ("amount[type]", "monetary".into()),
        ("amount[monetary][value]", amount.to_string()),
        ("amount[monetary][currency]", currency.to_string()),
        ("applicability_config[scope][price_type]", "metered".into()),
        ("category", "promotional".into()),
        ("expires_at", expires_at.to_string()),
        ("name", name.to_string()),
        ("metadata[account_id]", account_id.to_string()),
    ]
}

/// A Billing meter event: `value` for `customer` under the meter's `event_name`, once per
/// `identifier`.
pub fn meter_event_params(
    event_name: &str,
    customer: &str,
    value: u64,
    identifier: &str,
    timestamp: i64,
) -> Vec<(&'static str, String)> {
    vec![
        ("event_name", event_name.to_string()),
        ("payload[stripe_customer_id]", customer.to_string()),
        ("payload[value]", value.to_string()),
        ("identifier", identifier.to_string()),
        ("timestamp", timestamp.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn token() -> GrantedToken {
        GrantedToken::from_stripe(&json!({
            "id": "spt_1", "object": "shared_payment.granted_token", "deactivated_at": null,
            "usage_limits": {"currency": "usd", "max_amount": 5000, "expires_at": 2000},
            "usage_details": {"amount_captured": {"value": 1000, "currency": "usd"}}
        }))
        .unwrap()
    }

    #[test]
    fn reads_the_granted_token() {
        let t = token();
        assert_eq!(
            (t.max_amount, t.amount_captured, t.expires_at),
            (5000, 1000, Some(2000))
        );
        assert!(!t.deactivated);
        assert!(GrantedToken::from_stripe(&json!({"id": "spt_1"})).is_none());
    }

    #[test]
    fn token_checks() {
        let t = token();
        assert_eq!(check_token(&t, 4000, "usd", 1000), Ok(()));
        assert_eq!(
            check_token(&t, 4001, "usd", 1000),
            Err(PaymentError::TokenInsufficient {
                available: 4000,
                amount: 4001,
                currency: "usd".into()
            })
        );
        assert_eq!(
            check_token(&t, 1, "usd", 2000),
            Err(PaymentError::TokenExpired)
        );
        assert!(matches!(
            check_token(&t, 1, "eur", 1000),
            Err(PaymentError::TokenCurrency { .. })
        ));
        let dead = GrantedToken {
            deactivated: true,
            ..t
        };
        assert!(matches!(
            check_token(&dead, 1, "usd", 1000),
            Err(PaymentError::TokenInvalid { .. })
        ));
    }

    #[test]
    fn classifies_stripe_failures() {
        let declined = json!({"error": {"type": "card_error", "code": "card_declined",
                                         "decline_code": "insufficient_funds", "message": "Your card was declined."}});
        assert_eq!(
            classify(402, &declined),
            StripeFailure::Refused(PaymentError::Declined {
                code: "card_declined".into(),
                decline_code: Some("insufficient_funds".into()),
                message: "Your card was declined.".into()
            })
        );
        assert!(matches!(
            classify(503, &json!({})),
            StripeFailure::Unavailable { .. }
        ));
        assert!(matches!(
            classify(429, &json!({})),
            StripeFailure::Unavailable { .. }
        ));
        let missing = json!({"error": {"type": "invalid_request_error", "code": "resource_missing", "message": "No such token"}});
        assert!(matches!(
            classify(404, &missing),
            StripeFailure::Refused(PaymentError::TokenInvalid { .. })
        ));
        assert!(matches!(
            classify(400, &json!({"error": {"code": "parameter_missing"}})),
            StripeFailure::Refused(PaymentError::Failed { .. })
        ));
    }

    #[test]
    fn payment_intent_parameters_use_the_token() {
        let p = payment_intent_params(&Charge {
            amount: 1200,
            currency: "usd",
            token: "spt_1",
            customer: Some("cus_1"),
            save_for_subscription: true,
            description: "acme.dev",
            account_id: "acct_1",
            resource_id: "res_1",
        });
        let body = form(&p);
        assert!(
            body.contains("payment_method_data%5Bshared_payment_granted_token%5D=spt_1"),
            "{body}"
        );
        assert!(body.contains("confirm=true") && body.contains("amount=1200"));
        assert!(body.contains("setup_future_usage=off_session") && body.contains("customer=cus_1"));
    }
}
