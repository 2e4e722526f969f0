use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalog::Registrar;
use crate::resources::error::ResourceError;
use crate::resources::model::ErrorInfo;
use crate::stripe_api::{GrantedToken, StripeFailure};

/// One external call. Idempotency keys are stable for the logical step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    RetrieveToken {
        token: String,
    },
    CreateCustomer {
        key: String,
        email: String,
        name: Option<String>,
    },
    CreatePaymentIntent {
        key: String,
        amount: u64,
        currency: String,
        token: String,
        customer: Option<String>,
        save: bool,
        description: String,
    },
    /// Saves the token's payment method on the customer without charging (a confirmed
    /// SetupIntent for off-session use).
    CreateSetupIntent {
        key: String,
        token: String,
        customer: String,
    },
    CreateSubscription {
        key: String,
        customer: String,
        price: String,
        payment_method: String,
        /// The paid first period's end (a trial until then); `None` bills from now (a metered
        /// price, invoiced in arrears).
        trial_end: Option<i64>,
    },
    /// Creates the Stripe Billing credit grant that mirrors a credit (metered prices only).
    CreateCreditGrant {
        key: String,
        customer: String,
        amount: u64,
        currency: String,
        expires_at: i64,
        name: String,
    },
    /// Sends one usage report to Stripe as a Billing meter event (`identifier` makes it once).
    ReportMeterEvent {
        identifier: String,
        event_name: String,
        customer: String,
        value: u64,
        timestamp: i64,
    },
    CancelSubscription {
        key: String,
        subscription_id: String,
    },
    ClaimDomain {
        domain: String,
        registrar: Registrar,
        key: String,
        contact_email: String,
    },
    ReleaseDomain {
        domain: String,
        registrar: Registrar,
    },
    Refund {
        key: String,
        payment_intent: String,
        amount: u64,
    },
    CallOperator {
        key: String,
        url: String,
        body: Value,
    },
}

/// The answer to an [`Action`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ActionResult {
    Token {
        token: GrantedToken,
    },
    Customer {
        id: String,
    },
    PaymentIntent {
        id: String,
        payment_method: Option<String>,
    },
    Subscription {
        id: String,
        status: String,
    },
    SetupIntent {
        id: String,
        payment_method: String,
    },
    /// Stripe accepted the meter event.
    MeterEvent,
    CreditGrant {
        id: String,
    },
    Canceled,
    Claimed {
        expires_at: i64,
    },
    Released,
    Refunded {
        id: String,
    },
    /// The operator's backend: `pending` (try again after `retry_after`), `complete`,
    /// `needs_information` (with the `schema` of what it needs, and a `message`) or `error`.
    Operator {
        status: OperatorStatus,
        access_configuration: Option<BTreeMap<String, String>>,
        retry_after: Option<i64>,
        error: Option<ErrorInfo>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        schema: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Definite refusal: the job fails with this error.
    Refused {
        error: ResourceError,
    },
    /// Transient: retry later with the same key.
    Unavailable {
        message: String,
    },
}

/// The `status` an operator backend answers. Anything it says besides `pending`, `complete`,
/// `needs_information` and `removed` is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorStatus {
    Pending,
    Complete,
    NeedsInformation,
    Removed,
    #[serde(other)]
    Error,
}

impl From<&str> for OperatorStatus {
    fn from(status: &str) -> Self {
        match status {
            "pending" => OperatorStatus::Pending,
            "complete" => OperatorStatus::Complete,
            "needs_information" => OperatorStatus::NeedsInformation,
            "removed" => OperatorStatus::Removed,
            _ => OperatorStatus::Error,
        }
    }
}

impl ActionResult {
    pub fn from_stripe_failure(f: StripeFailure) -> ActionResult {
        match f {
            StripeFailure::Refused(error) => ActionResult::Refused {
                error: ResourceError::Payment { error },
            },
            StripeFailure::Unavailable { message } => ActionResult::Unavailable { message },
        }
    }
}
