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

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::schema;

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

/// One service: the protocol's fields, in the protocol's names, plus `provider`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub id: String,
    pub description: String,
    pub categories: Vec<String>,
    pub kind: ServiceKind,
    pub pricing: Pricing,
    pub allowed_updates: Vec<String>,
    pub configuration_schema: Value,
    #[serde(skip_serializing)]
    pub provider: Behaviour,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(rename = "$comment", default)]
    _comment: Option<String>,
    services: Vec<Value>,
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

const MAX_SERVICES: usize = 200;

fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|&c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b':' | b'.')
        })
}

/// A Stripe object id as the catalog may name one (Prices may have custom ids, so only the
/// characters are checked).
fn valid_stripe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn valid_currency(c: &str) -> bool {
    c.len() == 3 && c.bytes().all(|b| b.is_ascii_lowercase())
}

impl Catalog {
    /// Parses and validates catalog JSON text.
    pub fn parse(text: &str) -> Result<Catalog, CatalogError> {
        let file: CatalogFile = serde_json::from_str(text).map_err(|e| CatalogError {
            entry: "catalog".into(),
            message: format!("not a valid catalog file: {e}"),
        })?;
        if file.services.is_empty() {
            return Err(CatalogError {
                entry: "catalog".into(),
                message: "\"services\" is empty; list at least one service".into(),
            });
        }
        if file.services.len() > MAX_SERVICES {
            return Err(CatalogError {
                entry: "catalog".into(),
                message: format!("more than {MAX_SERVICES} services"),
            });
        }
        let mut services = Vec::with_capacity(file.services.len());
        for (i, raw) in file.services.into_iter().enumerate() {
            let label = match raw.get("id").and_then(Value::as_str) {
                Some(id) => format!("services[{i}] ({id:?})"),
                None => format!("services[{i}]"),
            };
            let service: Service = serde_json::from_value(raw).map_err(|e| CatalogError {
                entry: label.clone(),
                message: e.to_string(),
            })?;
            services.push(service);
        }
        let mut catalog = Catalog {
            services,
            currency: DEFAULT_CURRENCY.into(),
        };
        for (i, service) in catalog.services.iter().enumerate() {
            catalog
                .check_service(i, service)
                .map_err(|message| CatalogError {
                    entry: format!("services[{i}] ({:?})", service.id),
                    message,
                })?;
        }
        let mut currencies: Vec<(&str, &str)> = catalog
            .services
            .iter()
            .filter_map(|s| match &s.provider {
                Behaviour::Plan { price: Some(p) } | Behaviour::Domain { price: Some(p), .. } => {
                    Some((s.id.as_str(), p.currency.as_str()))
                }
                _ => None,
            })
            .collect();
        currencies.dedup_by(|a, b| a.1 == b.1);
        if currencies.len() > 1 {
            return Err(CatalogError {
                entry: format!("services ({:?})", currencies[1].0),
                message: format!(
                    "every price must be in one currency (the spending cap's); found {} and {}",
                    currencies[0].1, currencies[1].1
                ),
            });
        }
        if let Some((_, c)) = currencies.first() {
            catalog.currency = c.to_string();
        }
        Ok(catalog)
    }

    fn check_service(&self, index: usize, s: &Service) -> Result<(), String> {
        if !valid_id(&s.id) {
            return Err(
                "id must be 1-64 characters of a-z, 0-9, '_', '-', ':' or '.', starting with a letter or digit"
                    .into(),
            );
        }
        if self.services[..index].iter().any(|other| other.id == s.id) {
            return Err(format!("id {:?} is used by an earlier entry", s.id));
        }
        if s.description.trim().is_empty() {
            return Err("description is empty".into());
        }
        if s.categories.iter().any(|c| c.trim().is_empty()) {
            return Err("categories contains an empty string".into());
        }
        for target in &s.allowed_updates {
            let other = self
                .get(target)
                .ok_or_else(|| format!("allowed_updates names unknown service {target:?}"))?;
            if other.id == s.id {
                return Err("allowed_updates names the service itself".into());
            }
            if other.kind != s.kind {
                return Err(format!(
                    "allowed_updates names {target:?}, which is not of the same kind"
                ));
            }
        }
        match &s.pricing {
            Pricing::Free => {}
            Pricing::Paid {
                paid: PaidPricing::Freeform { freeform },
            } => {
                if freeform.trim().is_empty() {
                    return Err("pricing.paid.freeform is empty".into());
                }
            }
            Pricing::Component { component } => {
                if s.kind == ServiceKind::Plan {
                    return Err("a plan cannot have component pricing".into());
                }
                if component.options.is_empty() {
                    return Err("pricing.component.options is empty".into());
                }
                for option in &component.options {
                    if option.parent_service_ids().is_empty() {
                        return Err("a component option has no parent_service_ids".into());
                    }
                    for parent in option.parent_service_ids() {
                        match self.get(parent) {
                            Some(p) if p.kind == ServiceKind::Plan => {}
                            Some(_) => {
                                return Err(format!("component parent {parent:?} is not a plan"))
                            }
                            None => {
                                return Err(format!(
                                    "component parent {parent:?} is not in the catalog"
                                ))
                            }
                        }
                    }
                }
            }
        }
        schema::check_schema(&s.configuration_schema)
            .map_err(|e| format!("configuration_schema{e}"))
            .and_then(
                |_| match s.configuration_schema.get("type").and_then(Value::as_str) {
                    Some("object") => Ok(()),
                    _ => Err("configuration_schema must have \"type\": \"object\"".into()),
                },
            )?;
        self.check_behaviour(s)
    }

    fn check_behaviour(&self, s: &Service) -> Result<(), String> {
        let paid = self.is_paid(s);
        let check_price = |price: &Price| -> Result<(), String> {
            if !valid_currency(&price.currency) {
                return Err(format!(
                    "provider.price.currency {:?} must be a lowercase ISO 4217 code like \"usd\"",
                    price.currency
                ));
            }
            if price.amount == 0 {
                return Err("provider.price.amount must be greater than 0".into());
            }
            Ok(())
        };
        match (&s.provider, s.kind) {
            (Behaviour::Plan { price }, ServiceKind::Plan) => {
                match (price, paid) {
                    (Some(price), true) => {
                        check_price(price)?;
                        match price.interval.as_deref() {
                        Some("month" | "year") => {}
                        _ => return Err("a paid plan's provider.price.interval must be \"month\" or \"year\"".into()),
                    }
                        // The subscription is created with this Price: without it Stripe would
                        // be sent `items[0][price]=` and refuse, after the first period was
                        // charged.
                        match price.stripe_price.as_deref() {
                            Some(id) if valid_stripe_id(id) => Ok(()),
                            Some(id) => Err(format!("provider.price.stripe_price {id:?} must be a Stripe Price id like \"price_...\" (1-255 characters of A-Z, a-z, 0-9, '_' or '-')")),
                            None => Err("a paid plan needs provider.price.stripe_price, the Stripe Price (price_...) its subscription bills".into()),
                        }
                    }
                    (None, true) => {
                        Err("a paid plan needs provider.price (amount, currency, interval)".into())
                    }
                    (Some(_), false) => Err("a free plan cannot have provider.price".into()),
                    (None, false) => Ok(()),
                }
            }
            (Behaviour::Plan { .. }, ServiceKind::Deployable) => {
                Err("provider.type \"plan\" needs kind \"plan\"".into())
            }
            (_, ServiceKind::Plan) => Err("a plan needs provider.type \"plan\"".into()),
            (
                Behaviour::ApiToken {
                    scopes,
                    ttl_seconds,
                },
                _,
            ) => {
                if paid {
                    return Err("api_token services must be free".into());
                }
                if scopes.is_empty() || scopes.iter().any(|x| !valid_id(x)) {
                    return Err(
                        "provider.scopes must list scope names (a-z, 0-9, '_', '-', ':', '.')"
                            .into(),
                    );
                }
                if *ttl_seconds == Some(0) {
                    return Err("provider.ttl_seconds must be greater than 0".into());
                }
                Ok(())
            }
            (
                Behaviour::Domain {
                    registrar,
                    price,
                    quote_ttl_seconds,
                },
                _,
            ) => {
                if !paid {
                    return Err("domain services are paid purchases; use paid pricing".into());
                }
                if !(5..=3600).contains(quote_ttl_seconds) {
                    return Err("provider.quote_ttl_seconds must be between 5 and 3600".into());
                }
                match (registrar, price) {
                    (Registrar::Builtin, Some(price)) => check_price(price),
                    (Registrar::Builtin, None) => {
                        Err("the builtin registrar needs provider.price (per year)".into())
                    }
                    (Registrar::Upstream, Some(_)) => Err(
                        "the upstream registrar quotes its own prices; remove provider.price"
                            .into(),
                    ),
                    (Registrar::Upstream, None) => Ok(()),
                }
            }
            (Behaviour::OperatorBackend { url, price }, _) => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err("provider.url must be an http(s) URL".into());
                }
                match (price, paid) {
                    (_, true) => Err(
                        "operator backends must be free services (paid ones are not supported yet)"
                            .into(),
                    ),
                    (Some(_), false) => Err("a free service cannot have provider.price".into()),
                    (None, false) => Ok(()),
                }
            }
        }
    }

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
pub const DEFAULT_CATALOG: &str = include_str!("../../catalog.json");

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with_services(services: Value) -> String {
        json!({ "services": services }).to_string()
    }

    fn plan(id: &str, updates: &[&str]) -> Value {
        json!({"id": id, "description": "a plan", "categories": ["hosting"], "kind": "plan",
               "pricing": {"type": "free"}, "allowed_updates": updates,
               "configuration_schema": {"type": "object", "properties": {},
                                        "additionalProperties": false},
               "provider": {"type": "plan"}})
    }

    fn err_of(services: Value) -> CatalogError {
        Catalog::parse(&with_services(services)).expect_err("should be refused")
    }

    #[test]
    fn the_default_catalog_is_valid_and_realistic() {
        let c = Catalog::parse(DEFAULT_CATALOG).expect("default catalog");
        let ids: Vec<&str> = c.services().iter().map(|s| s.id.as_str()).collect();
        for id in ["free", "paid", "api_token", "domain"] {
            assert!(ids.contains(&id), "{id} missing from {ids:?}");
        }
        let paid = c.get("paid").unwrap();
        assert_eq!(paid.kind, ServiceKind::Plan);
        assert!(matches!(
            &paid.pricing,
            Pricing::Paid { paid: PaidPricing::Freeform { freeform } } if !freeform.is_empty()
        ));
        let domain = c.get("domain").unwrap();
        assert_eq!(domain.kind, ServiceKind::Deployable);
        assert!(c.is_paid(domain));
        assert!(domain.configuration_schema["properties"]["domain_query"].is_object());
        let token = c.get("api_token").unwrap();
        assert!(!c.is_paid(token));
        match &token.pricing {
            Pricing::Component { component } => {
                let parents: Vec<&String> = component
                    .options
                    .iter()
                    .flat_map(|o| o.parent_service_ids())
                    .collect();
                assert!(parents.contains(&&"free".to_string()));
                assert!(parents.contains(&&"paid".to_string()));
            }
            other => panic!("api_token pricing: {other:?}"),
        }
    }

    #[test]
    fn discovery_hides_the_provider_block() {
        let c = Catalog::parse(DEFAULT_CATALOG).unwrap();
        let body = c.discovery();
        let services = body["data"].as_array().unwrap();
        assert_eq!(services.len(), c.services().len());
        for s in services {
            assert!(s.get("provider").is_none(), "{s}");
            for key in [
                "id",
                "description",
                "categories",
                "kind",
                "pricing",
                "allowed_updates",
                "configuration_schema",
            ] {
                assert!(s.get(key).is_some(), "{key} missing in {s}");
            }
        }
    }

    #[test]
    fn errors_name_the_bad_entry() {
        let e = err_of(json!([plan("free", &[]), plan("free", &[])]));
        assert_eq!(e.entry, "services[1] (\"free\")");
        assert!(e.message.contains("earlier entry"), "{e}");

        let e = err_of(json!([plan("free", &["gold"])]));
        assert!(e.to_string().contains("services[0] (\"free\")"), "{e}");
        assert!(e.message.contains("unknown service \"gold\""), "{e}");

        let mut bad = plan("x", &[]);
        bad["configuration_schema"] =
            json!({"type": "object", "properties": {"a": {"type": "string", "pattern": "x"}}});
        let e = err_of(json!([bad]));
        assert!(e.message.contains("/properties/a/pattern"), "{e}");

        let mut bad = plan("x", &[]);
        bad["kind"] = json!("addon");
        let e = err_of(json!([bad]));
        assert_eq!(e.entry, "services[0] (\"x\")");

        let mut bad = plan("x", &[]);
        bad["colour"] = json!("red");
        let e = err_of(json!([bad]));
        assert!(e.message.contains("colour"), "{e}");
    }

    #[test]
    fn file_level_errors() {
        assert_eq!(Catalog::parse("{").unwrap_err().entry, "catalog");
        assert_eq!(
            Catalog::parse(r#"{"services":[]}"#).unwrap_err().entry,
            "catalog"
        );
        assert_eq!(
            Catalog::parse(r#"{"services":[],"x":1}"#)
                .unwrap_err()
                .entry,
            "catalog"
        );
    }

    #[test]
    fn behaviour_must_fit_kind_and_pricing() {
        let mut paid_without_price = plan("gold", &[]);
        paid_without_price["pricing"] =
            json!({"type":"paid","paid":{"type":"freeform","freeform":"$5"}});
        assert!(err_of(json!([paid_without_price]))
            .message
            .contains("provider.price"));

        let mut free_with_price = plan("free", &[]);
        free_with_price["provider"] =
            json!({"type":"plan","price":{"amount":5,"currency":"usd","interval":"month"}});
        assert!(err_of(json!([free_with_price]))
            .message
            .contains("free plan"));

        let mut token = plan("tok", &[]);
        token["kind"] = json!("deployable");
        token["provider"] = json!({"type":"api_token","scopes":[]});
        assert!(err_of(json!([token])).message.contains("scopes"));

        let mut plan_as_token = plan("p", &[]);
        plan_as_token["provider"] = json!({"type":"api_token","scopes":["read"]});
        assert!(err_of(json!([plan_as_token])).message.contains("plan"));

        let mut free_domain = plan("d", &[]);
        free_domain["kind"] = json!("deployable");
        free_domain["provider"] =
            json!({"type":"domain","registrar":"builtin","price":{"amount":1200,"currency":"usd"}});
        assert!(err_of(json!([free_domain])).message.contains("paid"));

        let mut bad_currency = plan("gold", &[]);
        bad_currency["pricing"] = json!({"type":"paid","paid":{"type":"freeform","freeform":"$5"}});
        bad_currency["provider"] =
            json!({"type":"plan","price":{"amount":500,"currency":"USD","interval":"month"}});
        assert!(err_of(json!([bad_currency])).message.contains("currency"));
    }

    fn paid_plan(id: &str, price: Value) -> Value {
        let mut p = plan(id, &[]);
        p["pricing"] = json!({"type":"paid","paid":{"type":"freeform","freeform":"20/month"}});
        p["provider"] = json!({"type": "plan", "price": price});
        p
    }

    #[test]
    fn a_paid_plan_needs_its_stripe_price() {
        // Without it the worker charged the first period, then sent `items[0][price]=`.
        let e = err_of(json!([paid_plan(
            "gold",
            json!({"amount": 2000, "currency": "usd", "interval": "month"})
        )]));
        assert_eq!(e.entry, "services[0] (\"gold\")");
        assert!(e.message.contains("stripe_price"), "{e}");
        for bad in ["", "price 1", "price_\u{e9}"] {
            let e = err_of(json!([paid_plan(
                "gold",
                json!({"amount": 2000, "currency": "usd", "interval": "month", "stripe_price": bad})
            )]));
            assert!(e.message.contains("stripe_price"), "{bad:?}: {e}");
        }
        Catalog::parse(&with_services(json!([paid_plan(
            "gold",
            json!({"amount": 2000, "currency": "usd", "interval": "month", "stripe_price": "price_1Gold"})
        )])))
        .unwrap();
    }

    #[test]
    fn the_cap_currency_is_the_catalogs() {
        let eur = |id: &str| {
            paid_plan(
                id,
                json!({"amount": 1900, "currency": "eur", "interval": "month", "stripe_price": "price_eur"}),
            )
        };
        let c = Catalog::parse(&with_services(json!([plan("free", &[]), eur("pro")]))).unwrap();
        assert_eq!(c.currency(), "eur");
        assert_eq!(
            Catalog::parse(&with_services(json!([plan("free", &[])])))
                .unwrap()
                .currency(),
            DEFAULT_CURRENCY
        );
        assert_eq!(Catalog::parse(DEFAULT_CATALOG).unwrap().currency(), "usd");
        // Mixed currencies are refused, wherever the odd one is.
        let usd = paid_plan(
            "usd_plan",
            json!({"amount": 2000, "currency": "usd", "interval": "month", "stripe_price": "price_usd"}),
        );
        for services in [
            json!([eur("a"), usd.clone()]),
            json!([usd.clone(), eur("a"), eur("b")]),
            json!([eur("a"), eur("b"), usd]),
        ] {
            let e = err_of(services);
            assert!(e.message.contains("one currency"), "{e}");
        }
    }

    #[test]
    fn updates_must_stay_within_a_kind_and_components_need_plan_parents() {
        let mut token = plan("tok", &["free"]);
        token["kind"] = json!("deployable");
        token["provider"] = json!({"type":"api_token","scopes":["read"]});
        assert!(err_of(json!([plan("free", &[]), token.clone()]))
            .message
            .contains("same kind"));

        token["allowed_updates"] = json!([]);
        token["pricing"] = json!({"type":"component","component":{"options":[{"type":"free","parent_service_ids":["tok"]}]}});
        assert!(err_of(json!([token.clone()]))
            .message
            .contains("not a plan"));
        token["pricing"] = json!({"type":"component","component":{"options":[{"type":"free","parent_service_ids":["nope"]}]}});
        assert!(err_of(json!([token]))
            .message
            .contains("not in the catalog"));
    }
}
