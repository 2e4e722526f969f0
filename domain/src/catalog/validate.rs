//! Validation of a catalog file: [`Catalog::parse`] is the only way to a [`Catalog`], so every
//! check the module invariant lists is made here, once, naming the bad entry.

use serde::Deserialize;
use serde_json::Value;

use super::{
    AllowedUpdate, Availability, Behaviour, Catalog, CatalogError, ComponentOption, Constraint,
    Count, Direction, Metered, PaidPricing, Price, PriceOption, Pricing, Registrar, Scope, Service,
    ServiceKind, DEFAULT_CURRENCY,
};
use crate::schema;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(rename = "$comment", default)]
    _comment: Option<String>,
    services: Vec<Value>,
}

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

/// An `allowed_updates` entry: a plain service id, or `{"service", "direction"}` with a direction
/// of `up`, `down` or `any` (the real orchestrator's form).
impl TryFrom<Value> for AllowedUpdate {
    type Error = String;

    fn try_from(v: Value) -> Result<AllowedUpdate, String> {
        const FORM: &str = "an allowed_updates entry is a service id or {\"service\": <id>, \"direction\": \"up\"|\"down\"|\"any\"}";
        match v {
            Value::String(service) => Ok(AllowedUpdate {
                service,
                direction: Direction::Any,
                plain: true,
            }),
            Value::Object(o) => {
                if let Some(k) = o
                    .keys()
                    .find(|k| !matches!(k.as_str(), "service" | "direction"))
                {
                    return Err(format!("allowed_updates: unknown field {k:?}; {FORM}"));
                }
                let service = match o.get("service") {
                    Some(Value::String(s)) => s.clone(),
                    _ => {
                        return Err(format!(
                            "allowed_updates: service is missing or not a string; {FORM}"
                        ))
                    }
                };
                let direction = match o.get("direction").and_then(Value::as_str) {
                    Some("up") => Direction::Up,
                    Some("down") => Direction::Down,
                    Some("any") => Direction::Any,
                    Some(other) => {
                        return Err(format!(
                            "allowed_updates: direction {other:?} (to {service:?}) is not \"up\", \"down\" or \"any\""
                        ))
                    }
                    None => {
                        return Err(format!(
                            "allowed_updates: direction (to {service:?}) is missing or not a string; {FORM}"
                        ))
                    }
                };
                Ok(AllowedUpdate {
                    service,
                    direction,
                    plain: false,
                })
            }
            _ => Err(format!("allowed_updates: {v} is neither; {FORM}")),
        }
    }
}

impl TryFrom<String> for Scope {
    type Error = String;

    fn try_from(s: String) -> Result<Scope, String> {
        match s.as_str() {
            "account" => Ok(Scope::Account),
            "project" => Ok(Scope::Project),
            _ => Err(format!("scope {s:?} is not \"account\" or \"project\"")),
        }
    }
}

impl TryFrom<String> for Availability {
    type Error = String;

    fn try_from(s: String) -> Result<Availability, String> {
        match s.as_str() {
            "available" => Ok(Availability::Available),
            _ => Err(format!(
                "availability {s:?} is not supported; the only value is \"available\""
            )),
        }
    }
}

/// Largest `count.at_most`.
const MAX_AT_MOST: u64 = 10_000;

/// A `constraints` entry: `{"type":"count","count":{"at_most":n}}` or
/// `{"type":"mutual_exclusion_allowed_updates"}` (optionally with
/// `"mutual_exclusion_allowed_updates": true`, as the real catalog writes it).
impl TryFrom<Value> for Constraint {
    type Error = String;

    fn try_from(v: Value) -> Result<Constraint, String> {
        const TYPES: &str = "\"count\" or \"mutual_exclusion_allowed_updates\"";
        let o = v
            .as_object()
            .ok_or_else(|| format!("constraints: {v} is not an object with a type ({TYPES})"))?;
        let ty = o
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("constraints: type is missing or not a string; use {TYPES}"))?;
        let only = |allowed: &[&str]| match o.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(format!("constraints ({ty}): unknown field {k:?}")),
            None => Ok(()),
        };
        match ty {
            "count" => {
                only(&["type", "count"])?;
                let count = o
                    .get("count")
                    .and_then(Value::as_object)
                    .ok_or("constraints (count): count must be an object {\"at_most\": n}")?;
                if let Some(k) = count.keys().find(|k| *k != "at_most") {
                    return Err(format!("constraints (count): unknown field count.{k}"));
                }
                match count.get("at_most").and_then(Value::as_u64) {
                    Some(n @ 1..=MAX_AT_MOST) => Ok(Constraint::Count {
                        count: Count { at_most: n as u32 },
                    }),
                    _ => Err(format!(
                        "constraints (count): count.at_most must be an integer from 1 to {MAX_AT_MOST}"
                    )),
                }
            }
            "mutual_exclusion_allowed_updates" => {
                only(&["type", "mutual_exclusion_allowed_updates"])?;
                match o.get("mutual_exclusion_allowed_updates") {
                    None => Ok(None),
                    Some(Value::Bool(true)) => Ok(Some(true)),
                    Some(_) => Err("constraints (mutual_exclusion_allowed_updates): mutual_exclusion_allowed_updates must be true (or absent)".to_string()),
                }
                .map(|flag| Constraint::MutualExclusionAllowedUpdates {
                    mutual_exclusion_allowed_updates: flag,
                })
            }
            other => Err(format!("constraints: unknown type {other:?}; use {TYPES}")),
        }
    }
}

/// Longest `llm_context`, in characters.
const MAX_LLM_CONTEXT: usize = 4096;

/// A plan's price per interval as the catalog knows it: 0 for a free plan, the `provider`
/// price for a paid one; none for a deployable.
fn plan_amount(s: &Service) -> Option<u64> {
    match (&s.kind, &s.pricing, &s.provider) {
        (ServiceKind::Plan, Pricing::Free, _) => Some(0),
        (ServiceKind::Plan, _, Behaviour::Plan { price: Some(p) }) => Some(p.amount),
        _ => None,
    }
}

/// Most entries of `paid_pricing` (the real catalog's longest has 133).
const MAX_PRICE_OPTIONS: usize = 500;

/// A paid price as written: a non-empty `freeform`, and a `description` that says something.
fn check_paid(paid: &PaidPricing, field: &str) -> Result<(), String> {
    let (freeform, description) = match paid {
        PaidPricing::Freeform {
            freeform,
            description,
        } => (Some(freeform), description),
        PaidPricing::Free { description } => (None, description),
    };
    check_price_text(freeform, description.as_ref(), field)
}

/// A recurring price (`what`: a paid plan, a paid operator service): `month` or `year`, and the
/// Stripe Price its subscription bills. Without that Price Stripe would be sent
/// `items[0][price]=` and refuse, after the first period was charged.
/// A usage-based service's meter: a Stripe meter event name (1-100 characters, as Stripe
/// allows), a Stripe Price id, and a currency.
fn check_metered(m: &Metered) -> Result<(), String> {
    if m.event_name.is_empty()
        || m.event_name.len() > 100
        || m.event_name.chars().any(|c| c.is_control())
    {
        return Err(
            "provider.metered.event_name must be the Stripe meter's event name (1-100 characters)"
                .into(),
        );
    }
    if !valid_stripe_id(&m.stripe_price) {
        return Err(format!(
            "provider.metered.stripe_price {:?} must be a Stripe Price id like \"price_...\"",
            m.stripe_price
        ));
    }
    if !valid_currency(&m.currency) {
        return Err(format!(
            "provider.metered.currency {:?} must be a lowercase ISO 4217 code",
            m.currency
        ));
    }
    Ok(())
}

fn check_recurring(price: &Price, what: &str) -> Result<(), String> {
    match price.interval.as_deref() {
        Some("month" | "year") => {}
        _ => {
            return Err(format!(
                "{what}'s provider.price.interval must be \"month\" or \"year\""
            ))
        }
    }
    match price.stripe_price.as_deref() {
        Some(id) if valid_stripe_id(id) => Ok(()),
        Some(id) => Err(format!("provider.price.stripe_price {id:?} must be a Stripe Price id like \"price_...\" (1-255 characters of A-Z, a-z, 0-9, '_' or '-')")),
        None => Err(format!("{what} needs provider.price.stripe_price, the Stripe Price (price_...) its subscription bills")),
    }
}

fn check_price_text(
    freeform: Option<&String>,
    description: Option<&String>,
    field: &str,
) -> Result<(), String> {
    if freeform.is_some_and(|f| f.trim().is_empty()) {
        return Err(format!("{field}.freeform is empty"));
    }
    if description.is_some_and(|d| d.trim().is_empty()) {
        return Err(format!("{field}.description is empty"));
    }
    Ok(())
}

/// `paid_pricing`: texts that say something, a `configuration` naming at least one value, at
/// most one default.
fn check_price_options(options: &[PriceOption]) -> Result<(), String> {
    if options.len() > MAX_PRICE_OPTIONS {
        return Err(format!(
            "pricing.paid_pricing has more than {MAX_PRICE_OPTIONS} entries"
        ));
    }
    let mut defaults = 0;
    for (j, o) in options.iter().enumerate() {
        let field = format!("pricing.paid_pricing[{j}]");
        let (freeform, description, configuration, is_default) = match o {
            PriceOption::Freeform {
                freeform,
                description,
                configuration,
                is_default,
            } => (Some(freeform), description, configuration, is_default),
            PriceOption::Free {
                description,
                configuration,
                is_default,
            } => (None, description, configuration, is_default),
        };
        check_price_text(freeform, description.as_ref(), &field)?;
        if configuration.as_ref().is_some_and(|c| c.is_empty()) {
            return Err(format!(
                "{field}.configuration is empty; name the configuration values this price is for, or leave it out"
            ));
        }
        if *is_default == Some(true) {
            defaults += 1;
            if defaults > 1 {
                return Err(format!(
                    "{field}: a second is_default; at most one price is the default"
                ));
            }
        }
    }
    Ok(())
}

impl Catalog {
    /// The direction of a plain-id entry from `from` to `to`: between plans whose prices the
    /// catalog knows, a higher price is `up` and a lower one `down`; otherwise `any`.
    fn inferred_direction(&self, from: &Service, to: &str) -> Direction {
        let to = self.get(to).and_then(plan_amount);
        match (plan_amount(from), to) {
            (Some(a), Some(b)) if b > a => Direction::Up,
            (Some(a), Some(b)) if b < a => Direction::Down,
            _ => Direction::Any,
        }
    }

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
        // Every target exists now: give plain-id entries their direction.
        let inferred: Vec<Vec<Direction>> = catalog
            .services
            .iter()
            .map(|s| {
                s.allowed_updates
                    .iter()
                    .map(|u| match u.plain {
                        true => catalog.inferred_direction(s, &u.service),
                        false => u.direction,
                    })
                    .collect()
            })
            .collect();
        for (s, directions) in catalog.services.iter_mut().zip(inferred) {
            for (u, d) in s.allowed_updates.iter_mut().zip(directions) {
                u.direction = d;
            }
        }
        let mut currencies: Vec<(&str, &str)> = catalog
            .services
            .iter()
            .filter_map(|s| match &s.provider {
                Behaviour::Plan { price: Some(p) }
                | Behaviour::Domain { price: Some(p), .. }
                | Behaviour::OperatorBackend { price: Some(p), .. } => {
                    Some((s.id.as_str(), p.currency.as_str()))
                }
                Behaviour::OperatorBackend {
                    metered: Some(m), ..
                } => Some((s.id.as_str(), m.currency.as_str())),
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
        for (j, update) in s.allowed_updates.iter().enumerate() {
            let target = &update.service;
            if s.allowed_updates[..j].iter().any(|u| u.service == *target) {
                return Err(format!("allowed_updates names {target:?} twice"));
            }
            // The service itself (a configuration change) and services of the other kind (a
            // deployable naming the plans it follows) are accepted as the real catalog writes
            // them; `Service::allows_update_to` says what update_service makes of them.
            if self.get(target).is_none() {
                return Err(format!("allowed_updates names unknown service {target:?}"));
            }
        }
        self.check_annotations(s)?;
        match &s.pricing {
            Pricing::Free => {}
            Pricing::Paid { paid, paid_pricing } => {
                if let Some(paid) = paid {
                    check_paid(paid, "pricing.paid")?;
                }
                let options = paid_pricing.as_deref().unwrap_or_default();
                if paid.is_none() && options.is_empty() {
                    return Err("paid pricing needs pricing.paid or pricing.paid_pricing".into());
                }
                check_price_options(options)?;
            }
            Pricing::Component { component } => {
                if s.kind == ServiceKind::Plan {
                    return Err("a plan cannot have component pricing".into());
                }
                if component.options.is_empty() {
                    return Err("pricing.component.options is empty".into());
                }
                for (j, option) in component.options.iter().enumerate() {
                    // An empty list offers the option under any plan (ComponentOption::offered_under).
                    if let ComponentOption::Paid { paid, .. } = option {
                        check_paid(paid, &format!("pricing.component.options[{j}].paid"))?;
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
        if !s.takes_no_configuration() {
            schema::check_schema(&s.configuration_schema)
                .map_err(|e| format!("configuration_schema{e}"))
                .and_then(
                    |_| match s.configuration_schema.get("type").and_then(Value::as_str) {
                        Some("object") => Ok(()),
                        _ => Err("configuration_schema must have \"type\": \"object\" (or be {}, no configuration)".into()),
                    },
                )?;
        }
        self.check_behaviour(s)
    }

    /// `llm_context`, `group` and `constraints` (`scope` and `availability` are checked as
    /// they are read).
    fn check_annotations(&self, s: &Service) -> Result<(), String> {
        if let Some(text) = &s.llm_context {
            if text.trim().is_empty() || text.chars().count() > MAX_LLM_CONTEXT {
                return Err(format!(
                    "llm_context must be a URL or text of 1-{MAX_LLM_CONTEXT} characters"
                ));
            }
        }
        if let Some(group) = &s.group {
            if !valid_id(group) {
                return Err(format!(
                    "group {group:?} must be 1-64 characters of a-z, 0-9, '_', '-', ':' or '.'"
                ));
            }
        }
        let constraints = s.constraints.as_deref().unwrap_or_default();
        for (j, c) in constraints.iter().enumerate() {
            let same = |d: &Constraint| std::mem::discriminant(d) == std::mem::discriminant(c);
            if constraints[..j].iter().any(same) {
                return Err(format!("constraints[{j}] repeats a constraint type"));
            }
            if matches!(c, Constraint::MutualExclusionAllowedUpdates { .. })
                && s.kind != ServiceKind::Plan
            {
                // Plans already exclude one another (one per account); for deployables the
                // rule is not enforced yet, so it is refused rather than ignored.
                return Err(format!(
                    "constraints[{j}]: mutual_exclusion_allowed_updates is supported on plans only"
                ));
            }
        }
        Ok(())
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
            (Behaviour::Plan { price }, ServiceKind::Plan) => match (price, paid) {
                (Some(price), true) => {
                    check_price(price)?;
                    check_recurring(price, "a paid plan")
                }
                (None, true) => {
                    Err("a paid plan needs provider.price (amount, currency, interval)".into())
                }
                (Some(_), false) => Err("a free plan cannot have provider.price".into()),
                (None, false) => Ok(()),
            },
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
            (
                Behaviour::OperatorBackend {
                    url,
                    price,
                    metered,
                },
                _,
            ) => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err("provider.url must be an http(s) URL".into());
                }
                match (price, metered, paid) {
                    (Some(_), Some(_), _) => Err(
                        "provider.price and provider.metered exclude each other: a fixed price, or usage-based".into(),
                    ),
                    // A fixed recurring price: the first period is charged, then a Stripe
                    // Subscription bills it, as for a paid plan.
                    (Some(price), None, true) if price.interval.is_some() => {
                        check_price(price)?;
                        check_recurring(price, "a paid operator service")
                    }
                    // A one-time price: quoted, acknowledged, charged, then created.
                    (Some(price), None, true) => {
                        check_price(price)?;
                        match price.stripe_price {
                            Some(_) => Err("a one-time price (no interval) is charged by amount; remove provider.price.stripe_price, or give interval for a subscription".into()),
                            None => Ok(()),
                        }
                    }
                    // Usage-based: reported by the platform, billed by a Stripe meter.
                    (None, Some(m), true) => check_metered(m),
                    (None, None, true) => Err(
                        "a paid operator service needs provider.price (fixed) or provider.metered (usage-based)"
                            .into(),
                    ),
                    (_, _, false) => match (price, metered) {
                        (None, None) => Ok(()),
                        _ => Err("a free service cannot have provider.price or provider.metered".into()),
                    },
                }
            }
        }
    }
}
