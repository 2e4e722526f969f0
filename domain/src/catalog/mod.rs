//! The service catalog: what the provider offers (docs/PROTOCOL.md §2.2), loaded from `catalog.json`.
//!
//! Each entry is the protocol's service object plus one key of ours, `provider`, which says how
//! the worker implements the service (plan, API token, domain, operator backend). `provider` is
//! never served in discovery.
//!
//! Invariant: a [`Catalog`] exists only after [`Catalog::parse`] accepted every entry, so the
//! rest of the code relies on: unique ids, `allowed_updates` and component parents that name
//! services of the right kind, schemas within the supported subset, and behaviours that fit the
//! service's kind and pricing.
//!
//! Files: this one (the catalog's types and what the rest of the code asks of it), `validate`
//! (parsing and every check of the invariant).

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKind {
    /// An account-wide subscription; at most one is active.
    Plan,
    /// A resource created under a plan.
    Deployable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PaidPricing {
    /// A human-readable price, e.g. "$20/month".
    Freeform { freeform: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ComponentOption {
    Free {
        parent_service_ids: Vec<String>,
    },
    Paid {
        parent_service_ids: Vec<String>,
        paid: PaidPricing,
    },
}

impl ComponentOption {
    pub fn parent_service_ids(&self) -> &[String] {
        match self {
            ComponentOption::Free { parent_service_ids }
            | ComponentOption::Paid {
                parent_service_ids, ..
            } => parent_service_ids,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentPricing {
    pub options: Vec<ComponentOption>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pricing {
    Free,
    Paid { paid: PaidPricing },
    Component { component: ComponentPricing },
}

/// An amount of money in the currency's minor unit (cents for USD).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub amount: u64,
    pub currency: String,
    /// `month` or `year` for recurring prices; absent for one-time purchases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// The Stripe Price (`price_...`) a recurring plan subscribes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stripe_price: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Registrar {
    /// Names under the operator's own zone (`<label>.<ROOT_ZONE>`).
    Builtin,
    /// An HTTP registrar API at `REGISTRAR_API_BASE`.
    Upstream,
}

/// How the worker implements a service (our extension; never served).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Behaviour {
    /// A plan; paid plans carry their recurring price.
    Plan {
        #[serde(default)]
        price: Option<Price>,
    },
    /// A scoped token for the operator's own API.
    ApiToken {
        scopes: Vec<String>,
        /// Lifetime of each token; absent means it lives until rotated or removed.
        #[serde(default)]
        ttl_seconds: Option<u64>,
    },
    /// A domain bought after a quote.
    Domain {
        registrar: Registrar,
        /// Price of one registration year for the builtin registrar.
        #[serde(default)]
        price: Option<Price>,
        #[serde(default = "default_quote_ttl")]
        quote_ttl_seconds: u64,
    },
    /// The operator's own platform at `url`, called with a signed request.
    OperatorBackend {
        url: String,
        #[serde(default)]
        price: Option<Price>,
    },
}

fn default_quote_ttl() -> u64 {
    900
}

/// Which way an `allowed_updates` move goes, as the real orchestrator normalises it. Served
/// for the orchestrator to describe the change; `update_service` does not enforce it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Up,
    Down,
    Any,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
            Direction::Any => "any",
        }
    }
}

/// One entry of `allowed_updates`: served as `{"service", "direction"}` (the real orchestrator's
/// form). `catalog.json` may also write a plain service id; validation then infers the
/// direction (docs/CATALOG.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Value")]
pub struct AllowedUpdate {
    /// The service id the resource may move to.
    pub service: String,
    pub direction: Direction,
    /// Written as a plain id in `catalog.json`: the direction is ours to infer.
    #[serde(skip)]
    pub(crate) plain: bool,
}

/// One service: the protocol's fields, in the protocol's names, plus `provider`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub id: String,
    pub description: String,
    pub categories: Vec<String>,
    pub kind: ServiceKind,
    pub pricing: Pricing,
    pub allowed_updates: Vec<AllowedUpdate>,
    pub configuration_schema: Value,
    #[serde(skip_serializing)]
    pub provider: Behaviour,
}

impl Service {
    /// True when `update_service` may move a resource of this service to `target`.
    pub fn allows_update_to(&self, target: &str) -> bool {
        self.allowed_updates.iter().any(|u| u.service == target)
    }
}

/// A validated catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    services: Vec<Service>,
    /// The one currency of every fixed price (the spending cap's).
    currency: String,
}

/// The cap's currency when the catalog has no fixed price (only free services and upstream
/// domains, which quote their own).
pub const DEFAULT_CURRENCY: &str = "usd";

/// What is wrong with the catalog, naming the entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogError {
    /// `services[3] ("domain")`, or `catalog` for file-level problems.
    pub entry: String,
    pub message: String,
}

impl std::fmt::Display for CatalogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "catalog entry {}: {}", self.entry, self.message)
    }
}

impl std::error::Error for CatalogError {}

impl Catalog {
    /// True when creating or moving to `s` costs money (a paid plan, a paid deployable, or a
    /// component with any paid option).
    pub fn is_paid(&self, s: &Service) -> bool {
        match &s.pricing {
            Pricing::Free => false,
            Pricing::Paid { .. } => true,
            Pricing::Component { component } => component
                .options
                .iter()
                .any(|o| matches!(o, ComponentOption::Paid { .. })),
        }
    }

    /// The currency of the catalog's prices: the spending cap is counted in it (`usd` when
    /// the catalog has no fixed price).
    pub fn currency(&self) -> &str {
        &self.currency
    }

    pub fn services(&self) -> &[Service] {
        &self.services
    }

    pub fn get(&self, id: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.id == id)
    }

    /// The discovery body: `{"data":[service...]}` without our `provider` blocks.
    pub fn discovery(&self) -> Value {
        serde_json::json!({ "data": self.services })
    }
}

/// The catalog shipped with the worker (`catalog.json` at the repository root).
pub const DEFAULT_CATALOG: &str = include_str!("../../../catalog.json");

mod validate;

#[cfg(test)]
mod tests;
