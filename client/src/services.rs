//! Reading the provider's catalog (`GET /provisioning/services`, docs/PROTOCOL.md §2.2) the way the
//! orchestrator shows it to a human: what each service costs and what it can be configured with.
//!
//! The catalog is read as loose JSON, so a provider with fields or pricing types this client does
//! not know still lists; an unknown pricing type counts as paid, so a human is asked first.

use serde_json::Value;

/// The services of a catalog answer (`{"data":[...]}`).
pub fn list(catalog: &Value) -> &[Value] {
    catalog["data"].as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// The service `id` of a catalog answer.
pub fn find<'a>(catalog: &'a Value, id: &str) -> Option<&'a Value> {
    list(catalog).iter().find(|s| s["id"] == id)
}

/// `kind` (`plan` or `deployable`), or `?`.
pub fn kind(service: &Value) -> &str {
    service["kind"].as_str().unwrap_or("?")
}

fn freeform(paid: &Value) -> String {
    match paid["freeform"].as_str() {
        Some(text) if !text.trim().is_empty() => text.trim().to_string(),
        _ => "paid (the provider gives no price text)".to_string(),
    }
}

/// What creating `service` would be charged, as the catalog's freeform text, or `None` when it
/// is free. `plan` is the account's current plan: a `component` price depends on it (when it is
/// unknown, any paid option counts).
pub fn charge(service: &Value, plan: Option<&str>) -> Option<String> {
    let pricing = &service["pricing"];
    match pricing["type"].as_str() {
        Some("free") => None,
        Some("paid") => Some(freeform(&pricing["paid"])),
        Some("component") => {
            let options = pricing["component"]["options"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            // An empty parent list offers the option under any plan.
            let applies = |o: &&Value| match plan {
                Some(plan) => o["parent_service_ids"]
                    .as_array()
                    .is_some_and(|ids| ids.is_empty() || ids.iter().any(|id| id == plan)),
                None => true,
            };
            let applicable: Vec<&Value> = options.iter().filter(applies).collect();
            // No option for this plan: the provider refuses it, and nothing is charged.
            applicable
                .iter()
                .find(|o| o["type"] != "free")
                .map(|o| freeform(&o["paid"]))
        }
        other => Some(format!(
            "unknown pricing type {}",
            other.map_or_else(|| "(none)".to_string(), |t| format!("{t:?}"))
        )),
    }
}

/// One line about the price: `free`, the freeform text, or the component options.
pub fn pricing_summary(service: &Value) -> String {
    let pricing = &service["pricing"];
    match pricing["type"].as_str() {
        Some("free") => "free".to_string(),
        Some("paid") => freeform(&pricing["paid"]),
        Some("component") => {
            let options = pricing["component"]["options"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            if options.is_empty() {
                return "component (no options)".to_string();
            }
            options
                .iter()
                .map(|o| {
                    let price = if o["type"] == "free" {
                        "free".to_string()
                    } else {
                        freeform(&o["paid"])
                    };
                    let parents: Vec<&str> = o["parent_service_ids"]
                        .as_array()
                        .map(|ids| ids.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    match parents.is_empty() {
                        true => format!("{price} with any plan"),
                        false => format!("{price} with {}", parents.join("/")),
                    }
                })
                .collect::<Vec<_>>()
                .join("; ")
        }
        Some(other) => format!("{other} pricing"),
        None => "no pricing".to_string(),
    }
}

/// One line about `configuration_schema`: each property with its type (enum values, array
/// items), `*` marking the required ones; or `no configuration`.
pub fn schema_summary(service: &Value) -> String {
    let schema = &service["configuration_schema"];
    let Some(props) = schema["properties"].as_object().filter(|p| !p.is_empty()) else {
        return "no configuration".to_string();
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    props
        .iter()
        .map(|(name, prop)| {
            let star = if required.contains(&name.as_str()) {
                "*"
            } else {
                ""
            };
            format!("{name}{star} ({})", type_summary(prop))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn type_summary(prop: &Value) -> String {
    if let Some(values) = prop["enum"].as_array() {
        return values
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join("|");
    }
    match prop["type"].as_str() {
        Some("array") => format!("array of {}", type_summary(&prop["items"])),
        Some(t) => t.to_string(),
        None => "any".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn catalog() -> Value {
        json!({"data": [
            {"id": "free", "kind": "plan", "pricing": {"type": "free"},
             "configuration_schema": {"type": "object", "properties": {}}},
            {"id": "paid", "kind": "plan",
             "pricing": {"type": "paid", "paid": {"type": "freeform", "freeform": "$20/month"}}},
            {"id": "api_token", "kind": "deployable",
             "pricing": {"type": "component", "component": {"options": [
                 {"type": "free", "parent_service_ids": ["paid"]},
                 {"type": "paid", "parent_service_ids": ["free"], "paid": {"type": "freeform", "freeform": "$1/token"}}
             ]}},
             "configuration_schema": {"type": "object", "required": ["label"], "properties": {
                 "scopes": {"type": "array", "items": {"type": "string", "enum": ["deploy:write", "logs:read"]}},
                 "label": {"type": "string"}
             }}},
            {"id": "odd", "kind": "deployable", "pricing": {"type": "metered"}},
            {"id": "any", "kind": "deployable", "pricing": {"type": "component", "component": {"options": [
                 {"type": "paid", "parent_service_ids": [], "paid": {"type": "freeform", "freeform": "$2"}}]}}}
        ]})
    }

    #[test]
    fn charges() {
        let c = catalog();
        let get = |id| find(&c, id).expect("service");
        assert_eq!(charge(get("free"), None), None);
        assert_eq!(charge(get("paid"), None).as_deref(), Some("$20/month"));
        assert_eq!(charge(get("api_token"), Some("paid")), None);
        assert_eq!(
            charge(get("api_token"), Some("free")).as_deref(),
            Some("$1/token")
        );
        // Plan unknown: any paid option counts.
        assert_eq!(charge(get("api_token"), None).as_deref(), Some("$1/token"));
        assert!(charge(get("odd"), None).is_some_and(|t| t.contains("metered")));
        // No parents: under any plan.
        assert_eq!(charge(get("any"), Some("free")).as_deref(), Some("$2"));
        assert!(find(&c, "nope").is_none());
        assert!(list(&json!({"data": 3})).is_empty());
    }

    #[test]
    fn summaries() {
        let c = catalog();
        let get = |id| find(&c, id).expect("service");
        assert_eq!(pricing_summary(get("free")), "free");
        assert_eq!(pricing_summary(get("paid")), "$20/month");
        assert_eq!(
            pricing_summary(get("api_token")),
            "free with paid; $1/token with free"
        );
        assert_eq!(pricing_summary(get("any")), "$2 with any plan");
        assert_eq!(schema_summary(get("free")), "no configuration");
        assert_eq!(schema_summary(get("paid")), "no configuration");
        assert_eq!(
            schema_summary(get("api_token")),
            "label* (string), scopes (array of deploy:write|logs:read)"
        );
        assert_eq!(kind(get("paid")), "plan");
    }
}
