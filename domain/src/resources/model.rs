use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalog::{Registrar, ServiceKind};
use crate::sealing::Sealed;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceStatus {
    Pending,
    NeedsInformation,
    Complete,
    Errored,
    Removed,
}

impl ResourceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceStatus::Pending => "pending",
            ResourceStatus::NeedsInformation => "needs_information",
            ResourceStatus::Complete => "complete",
            ResourceStatus::Errored => "errored",
            ResourceStatus::Removed => "removed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub domain: String,
    pub amount: u64,
    pub currency: String,
    pub available: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    pub candidates: Vec<Candidate>,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "snake_case")]
pub enum Detail {
    Plan {
        subscription_id: Option<String>,
        /// Stripe's view of the subscription (`active`, `trialing`, `past_due`...).
        #[serde(default)]
        subscription_status: Option<String>,
        /// When the latest invoice payment failed (cleared when one is paid).
        #[serde(default)]
        past_due_since: Option<i64>,
        /// Suspended after the grace period of an unpaid invoice.
        #[serde(default)]
        suspended: bool,
    },
    ApiToken {
        scopes: Vec<String>,
        label: Option<String>,
        generation: u32,
        token_hash: String,
        /// The value of the current generation, sealed under `TOKEN_ENCRYPTION_KEYS`. Absent
        /// in states written before tokens were random: those are derived until rotated.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sealed: Option<Sealed>,
    },
    Domain {
        query: String,
        registrar: Registrar,
        quote: Option<Quote>,
        /// The payment token given at create, used when the purchase is confirmed.
        payment_token: Option<String>,
        domain: Option<String>,
        expires_at: Option<i64>,
    },
    Operator {
        access_configuration: Option<BTreeMap<String, String>>,
        /// What the backend asked for (`needs_information`), until the orchestrator submits it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        asked: Option<InformationAsked>,
        /// A paid service's subscription and first-period charge, while the subscription is
        /// live (cancelled on remove and close; refunded with it if the backend cannot create
        /// the resource).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        billing: Option<OperatorBilling>,
        /// A usage-based service's metered subscription and pause state (absent otherwise).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<UsageBilling>,
    },
}
crate::internally_tagged!(Detail, "type");

/// A usage-based operator service's billing: the subscription on its metered price (Stripe
/// invoices the month's meter events) and the meter its reports are sent under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageBilling {
    pub subscription_id: String,
    /// The Stripe meter's event name its reports are sent under.
    pub event_name: String,
}

/// An operator resource held stopped at its backend (our extension): by the hard cap (a
/// usage-based service of an account whose month reached its cap), or by its subscription's
/// invoice unpaid past the grace period (a paid service, like a paid plan).
///
/// `cap` and `unpaid` say why it should be stopped; `suspended` is what the backend confirmed.
/// They differ only while a `suspend` or `resume` call is under way (`usage::reconcile`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<Pause>,
    /// The subscription's latest invoice is unpaid since then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub past_due_since: Option<i64>,
    /// ...past the grace period (`PAYMENT_GRACE_SECONDS`): stopped until it is paid.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unpaid: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspended: bool,
    /// After a `suspend` or `resume` that failed for good, the next try waits until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<i64>,
}

impl Hold {
    /// After a `suspend` or `resume` that failed for good, the next try waits this long.
    pub const RETRY_SECONDS: i64 = 300;

    /// What a held resource says, and how the owner lifts the hold (`None`: not held).
    pub fn message(&self, currency: &str) -> Option<String> {
        use crate::ledger::format_amount;
        if !self.wanted() {
            return None;
        }
        let state = if self.suspended { "paused" } else { "pausing" };
        Some(match (&self.cap, self.past_due_since) {
            (Some(p), _) => format!(
                "{state}: this month's spending ({}) reached the account's cap of {}. Usage reported meanwhile is still billed. It resumes when the owner raises the cap on the dashboard (a deep link with purpose \"billing\") or when the next month begins.",
                format_amount(p.spent, currency),
                format_amount(p.cap, currency)
            ),
            (None, since) => format!(
                "{state}: its subscription's invoice is unpaid{} past the grace period. It resumes once the invoice is paid (the owner can update the payment method).",
                since
                    .map(|t| format!(" since {}", crate::time::format_rfc3339(t)))
                    .unwrap_or_default()
            ),
        })
    }

    /// Whether the resource should be stopped.
    pub fn wanted(&self) -> bool {
        self.cap.is_some() || self.unpaid
    }

    /// Nothing to remember: the resource holds no `hold`.
    pub fn is_clear(&self) -> bool {
        *self == Hold::default()
    }
}

/// Why a usage-based resource is paused: the month's spend reached the cap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    pub since: i64,
    /// The cap and the spend when it paused.
    pub cap: u64,
    pub spent: u64,
}

/// A paid operator service's first charge (a recurring price's first period, or a one-time
/// price) and, for a recurring price, its Stripe subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorBilling {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    pub payment_intent: String,
    pub charge_id: String,
    pub amount: u64,
}

/// An operator backend's `needs_information`: the schema it asked with, and the call to repeat
/// with the `submitted_information` once the orchestrator sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InformationAsked {
    pub action: OperatorAction,
    pub schema: Value,
    /// A one-time price to acknowledge (`submitted_information` `{"amount"}`) before it is
    /// charged and the backend creates the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase: Option<OneTimePurchase>,
}

/// A one-time price quoted on a paid operator service, and the payment token its create carried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OneTimePurchase {
    pub amount: u64,
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub code: String,
    pub message: String,
}

/// External work in progress on a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "snake_case")]
pub enum Job {
    /// Start a paid plan: check the token, customer, first period, subscription; when it
    /// replaces a paid plan, then cancel that plan's subscription.
    Subscribe {
        target_service: String,
        token: String,
        amount: u64,
        currency: String,
        stripe_price: String,
        period_days: i64,
        charge_id: String,
        token_checked: bool,
        payment_intent: Option<String>,
        payment_method: Option<String>,
        /// The subscription of the paid plan this one replaces (paid -> paid): cancelled once
        /// the new one exists, in the same saga, so exactly one bills.
        #[serde(default)]
        replaces: Option<String>,
        /// The new subscription, once Stripe created it (only kept while `replaces` is
        /// cancelled).
        #[serde(default)]
        subscription: Option<String>,
        /// A paid operator service (not a plan): once the subscription exists, its backend at
        /// this URL is asked to create the resource.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        then_operator: Option<String>,
    },
    /// Leave a paid plan: cancel the subscription, then move to `target_service` or remove.
    Unsubscribe {
        target_service: Option<String>,
        subscription_id: String,
    },
    /// Buy a confirmed domain: check the token, claim the name, charge, register.
    BuyDomain {
        domain: String,
        amount: u64,
        currency: String,
        token: String,
        charge_id: String,
        token_checked: bool,
        claimed: bool,
        payment_intent: Option<String>,
    },
    /// Let a domain go: on removal (`then_remove`), or after a failed purchase that had claimed
    /// the name (the resource goes back to its quote).
    ReleaseDomain { domain: String, then_remove: bool },
    /// Refund a charge whose purchase could not be completed.
    Refund {
        payment_intent: String,
        charge_id: String,
        amount: u64,
        reason: ErrorInfo,
        /// The resource keeps what it had (a plan change whose new plan could not start stays
        /// on the current plan) instead of ending `errored`.
        #[serde(default)]
        keep_current: bool,
        /// A subscription to cancel before the refund (a paid operator service whose backend
        /// could not create it: nothing may go on billing).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cancel_subscription: Option<String>,
    },
    /// Charge an acknowledged one-time price (token check, PaymentIntent), then have the
    /// operator's backend at `then_operator` create the resource.
    Purchase {
        amount: u64,
        currency: String,
        token: String,
        charge_id: String,
        token_checked: bool,
        payment_intent: Option<String>,
        then_operator: String,
    },
    /// Start a usage-based operator service: check the token, make sure the account is a
    /// Stripe customer, save the token's payment method (a SetupIntent: nothing is charged
    /// now), subscribe it to the metered price, then have the backend at `then_operator` create
    /// the resource. Stripe invoices the month's meter events at the period's end.
    StartMetered {
        token: String,
        currency: String,
        stripe_price: String,
        event_name: String,
        /// Names this start's Stripe calls (their idempotency keys).
        key: String,
        token_checked: bool,
        payment_method: Option<String>,
        then_operator: String,
    },
    /// Call the operator's backend (`create`, `link`, `update`, `rotate`, `remove`, `suspend`
    /// or `resume`) until it is done.
    Operator {
        action: OperatorAction,
        url: String,
        /// The orchestrator's answer to the backend's `needs_information`, sent with the call.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        submitted_information: Option<Value>,
        /// An `update`'s new configuration: sent instead of the resource's, and the resource's
        /// once the backend applied it (a failed update keeps the old one).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        configuration: Option<Value>,
        /// The account's audit sequence when the call started: part of its idempotency key, so
        /// two calls started within one second (a `needs_information` answered at once, two
        /// rotations) never share a key. Absent in jobs stored before (their keys unchanged).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call: Option<u64>,
    },
}
crate::internally_tagged!(Job, "job");

/// What an operator backend is asked to do (the `action` of its request body, and of the
/// stored `Operator` job).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorAction {
    Create,
    /// Verify that the account owns an existing resource and answer its access configuration
    /// (`POST /provisioning/resources/link`).
    Link,
    /// Apply a new configuration (`update_service` with `configuration`).
    Update,
    Rotate,
    Remove,
    /// Stop the resource's usage (the hard cap was reached); it keeps its data.
    Suspend,
    /// Let a suspended resource run again (the cap was raised, or a new month began).
    Resume,
}

impl OperatorAction {
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorAction::Create => "create",
            OperatorAction::Link => "link",
            OperatorAction::Update => "update",
            OperatorAction::Rotate => "rotate",
            OperatorAction::Remove => "remove",
            OperatorAction::Suspend => "suspend",
            OperatorAction::Resume => "resume",
        }
    }
}

/// A subscription a paid -> paid change replaced whose cancellation failed for good in that
/// saga (kept on the account's billing state). Retried from the alarm with backoff, outside
/// the resource's job, until Stripe cancels it or says it is gone; remove and close cancel it
/// too, and a closing account is not `closed` while one is left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleSubscription {
    pub subscription_id: String,
    /// The plan resource whose change replaced it (its alarm work drives the retries).
    pub resource_id: String,
    pub since: i64,
    /// Failed cancellations so far (the saga's counts as the first).
    pub attempts: u32,
    pub next_at: i64,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobState {
    pub job: Job,
    pub started_at: i64,
    pub attempts: u32,
    pub next_at: i64,
    /// The request that started it was answered while it was pending (so a later definite
    /// failure leaves the resource `errored` instead of removing it).
    pub acknowledged: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    pub id: String,
    pub service_id: String,
    pub project_id: String,
    pub kind: ServiceKind,
    pub status: ResourceStatus,
    pub created_at: i64,
    pub updated_at: i64,
    pub configuration: Value,
    pub detail: Detail,
    pub job: Option<JobState>,
    pub error: Option<ErrorInfo>,
    /// Progress or advice for `pending` and `needs_information`.
    pub message: Option<String>,
    /// How the orchestrator named the call that made it (protocol §8): what a repeated create
    /// or link is matched by. Absent on resources made before (matched by project and service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// The orchestrator's `environment` (e.g. `prod`), echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Made by `link` (an existing resource of the account): removing it detaches it and
    /// deletes, releases or cancels nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub linked: bool,
    /// Held stopped at its operator backend, or on the way there or back (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
}

/// The names a create or link call carried, and the fingerprint of its body: the same key or
/// `orchestrator_resource_id` returns the same resource; another body under it is
/// `idempotency_conflict`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orchestrator_resource_id: Option<String>,
    /// SHA-256 (hex) of the call's identifying fields ([`crate::resources::request::CreateRequest::fingerprint`]).
    pub fingerprint: String,
}

impl Resource {
    /// The registrar of a domain resource (`builtin` for anything else).
    pub(crate) fn registrar(&self) -> Registrar {
        match &self.detail {
            Detail::Domain { registrar, .. } => *registrar,
            _ => Registrar::Builtin,
        }
    }
}

/// Server settings the rules need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Zone of the builtin registrar: names are `<label>.<root_zone>`.
    pub root_zone: String,
    /// Attempts of a job step before it is given up: outages (retried with backoff), and an
    /// operator backend answering `pending`.
    pub max_attempts: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            root_zone: "apps.example.dev".into(),
            max_attempts: 40,
        }
    }
}
