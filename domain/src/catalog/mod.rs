//! The service catalog: what the provider offers (docs/PROTOCOL.md §2.2), loaded from `catalog.json`.
//!
//! Each entry is the protocol's service object plus one key of ours, `provider`, which says how
//! the worker implements the service (plan, API token, domain, operator backend). `provider` is
//! never served in discovery.
//!
//! Invariant: a [`Catalog`] exists only after [`Catalog::parse`] accepted every entry, so the
//! rest of the code relies on: unique ids, `allowed_updates` that name services of the catalog,
//! component parents that are plans, schemas within the supported subset (or `{}`: no
//! configuration), constraints of known types, and behaviours that fit the service's kind and
//! pricing.
//!
//! Files: this one (the catalog's types and what the rest of the code asks of it), `validate`
//! (parsing and every check of the invariant).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::schema::{self, SchemaError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKind {
    /// An account-wide subscription; at most one is active.
    Plan,
    /// A resource created under a plan.
    Deployable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "snake_case", deny_unknown_fields)]
pub enum PaidPricing {
    /// A human-readable price, e.g. "$20/month", with an optional longer `description` (the
    /// real catalog carries one on some services).
    Freeform {
        freeform: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
    /// No charge: the real catalog writes a paid service's free tier this way.
    Free {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
}
crate::internally_tagged!(PaidPricing, "type", any_order);

/// One entry of `paid_pricing`: a price of a paid service and the `configuration` values it
/// applies to (`{"plan": "pro"}`, `{"region": "eu"}`). Informational, served as written: what
/// this provider charges is `provider.price`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "snake_case", deny_unknown_fields)]
pub enum PriceOption {
    Freeform {
        freeform: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        configuration: Option<serde_json::Map<String, Value>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_default: Option<bool>,
    },
    Free {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        configuration: Option<serde_json::Map<String, Value>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_default: Option<bool>,
    },
}
crate::internally_tagged!(PriceOption, "type", any_order);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "snake_case", deny_unknown_fields)]
pub enum ComponentOption {
    Free {
        parent_service_ids: Vec<String>,
        /// The option the orchestrator shows first (informational, served as written).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_default: Option<bool>,
    },
    Paid {
        parent_service_ids: Vec<String>,
        paid: PaidPricing,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_default: Option<bool>,
    },
}
crate::internally_tagged!(ComponentOption, "type", any_order);

impl ComponentOption {
    /// The plans this option prices the deployable under; empty means under any plan.
    pub fn parent_service_ids(&self) -> &[String] {
        match self {
            ComponentOption::Free {
                parent_service_ids, ..
            }
            | ComponentOption::Paid {
                parent_service_ids, ..
            } => parent_service_ids,
        }
    }

    /// True when this option is offered under the plan `plan` (an empty parent list offers it
    /// under any plan the account has).
    pub fn offered_under(&self, plan: &str) -> bool {
        let parents = self.parent_service_ids();
        parents.is_empty() || parents.iter().any(|p| p == plan)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentPricing {
    pub options: Vec<ComponentOption>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pricing {
    Free,
    /// `paid`, the price shown, and/or `paid_pricing`, the prices by configuration (at least
    /// one of them).
    Paid {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        paid: Option<PaidPricing>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        paid_pricing: Option<Vec<PriceOption>>,
    },
    Component {
        component: ComponentPricing,
    },
}
crate::internally_tagged!(Pricing, "type", any_order);

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
#[serde(remote = "Self", rename_all = "snake_case", deny_unknown_fields)]
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
        /// Usage-based pricing (paid, no `price`): the platform reports usage
        /// (`POST /v1/usage`), billed through this Stripe meter and metered price.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metered: Option<Metered>,
    },
}
crate::internally_tagged!(Behaviour, "type", any_order);

/// A usage-based operator service's Stripe billing: meter events named `event_name` carry
/// each report's amount in the smallest currency unit, and `stripe_price` (a metered price
/// on that meter, one unit = one cent) turns their sum into the invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metered {
    pub event_name: String,
    pub stripe_price: String,
    pub currency: String,
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

/// Where a service's resources live, and so where `constraints` count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum Scope {
    Account,
    Project,
}

/// Whether the service can be ordered. The real catalog has only `available`; any other
/// value is refused until we know what it should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum Availability {
    Available,
}

/// `{"at_most": n}` of a `count` constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Count {
    pub at_most: u32,
}

/// One entry of `constraints`, served as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", try_from = "Value")]
pub enum Constraint {
    /// At most `count.at_most` live resources of the service per account or per project, as
    /// its `scope` says (enforced on create).
    Count { count: Count },
    /// The service and the targets of its `allowed_updates` exclude one another: plans only,
    /// where the one-plan-per-account rule already enforces it. The real catalog writes the
    /// flag again inside (`true`), which we serve back when written.
    MutualExclusionAllowedUpdates {
        #[serde(skip_serializing_if = "Option::is_none")]
        mutual_exclusion_allowed_updates: Option<bool>,
    },
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
    /// JSON Schema for `configuration`; `{}` means the service takes none.
    pub configuration_schema: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// A URL or text for agents about the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_context: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<Vec<Constraint>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<Availability>,
    /// A name the orchestrator groups services by (e.g. `postgresql`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing)]
    pub provider: Behaviour,
}

impl Service {
    /// True when `update_service` may move a resource of this service to `target`: listed, and
    /// of the same kind (an entry naming a service of the other kind tells the orchestrator
    /// the two are related; a resource never changes kind). Naming itself allows a
    /// configuration change, which `update_service` allows anyway.
    pub fn allows_update_to(&self, target: &Service) -> bool {
        self.allowed_updates.iter().any(|u| u.service == target.id) && target.kind == self.kind
    }

    /// Where its resources are counted: `scope` as written, else the account for a plan and the
    /// project for a deployable.
    pub fn scope(&self) -> Scope {
        self.scope.unwrap_or(match self.kind {
            ServiceKind::Plan => Scope::Account,
            ServiceKind::Deployable => Scope::Project,
        })
    }

    /// The `count` constraint's `at_most`, if any.
    pub fn at_most(&self) -> Option<u32> {
        self.constraints.iter().flatten().find_map(|c| match c {
            Constraint::Count { count } => Some(count.at_most),
            _ => None,
        })
    }

    /// True when `configuration_schema` is `{}`: the service takes no configuration.
    pub fn takes_no_configuration(&self) -> bool {
        self.configuration_schema
            .as_object()
            .is_some_and(|o| o.is_empty())
    }

    /// Validates a create's or update's `configuration` (an object) against the service: the
    /// schema, or for `{}` nothing but an empty object (absent is sent as `{}`).
    pub fn validate_configuration(&self, configuration: &Value) -> Result<(), SchemaError> {
        if self.takes_no_configuration() {
            return match configuration.as_object() {
                Some(o) if o.is_empty() => Ok(()),
                Some(o) => Err(SchemaError {
                    path: o
                        .keys()
                        .next()
                        .map(|k| format!("/{}", k.replace('~', "~0").replace('/', "~1")))
                        .unwrap_or_default(),
                    message: "is not accepted: this service takes no configuration".into(),
                }),
                None => Err(SchemaError {
                    path: String::new(),
                    message: "expected an empty object: this service takes no configuration".into(),
                }),
            };
        }
        schema::validate(&self.configuration_schema, configuration)
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
mod orchestrator_tests;
#[cfg(test)]
mod tests;
