//! The catalog the black-box worker runs with: one entry of each shape this gateway serves.

use serde_json::Value;

/// The catalog the black-box worker runs with (`CATALOG` var): the default catalog plus an
/// operator-backed `database` (free), `paid_database` ($15 a month), `setup_database` ($49
/// once) and `metered_database` (usage-based), a `domain_upstream` sold by the upstream registrar, a
/// `domain_short` whose quotes expire after 5 seconds, and a second paid plan `team` that
/// `paid` may change to (paid -> paid). One entry of each shape real catalogs write (issue 16):
/// `team` carries `scope` and both constraint types, `domain_upstream` prices by configuration
/// (`paid_pricing`), `counted_token` is a token limited to one per project (`count`), offered
/// under any plan, listing a plan and itself, with `pattern` and `multipleOf`, and `sandbox`
/// takes no configuration (`{}`).
pub fn test_catalog(stand_in: &str) -> String {
    let mut v: Value =
        serde_json::from_str(domain::catalog::DEFAULT_CATALOG).expect("default catalog");
    let services = v["services"].as_array_mut().expect("services");
    for s in services.iter_mut() {
        if s["id"] == "paid" {
            s["allowed_updates"] = serde_json::json!(["free", "team"]);
        }
    }
    services.push(serde_json::json!({
        "id": "team", "description": "Team plan: the Pro plan for five people (tests: paid -> paid).",
        "categories": ["hosting"], "kind": "plan", "scope": "account",
        "constraints": [{"type": "mutual_exclusion_allowed_updates", "mutual_exclusion_allowed_updates": true},
                        {"type": "count", "count": {"at_most": 1}}],
        "pricing": {"type": "paid", "paid": {"type": "freeform", "freeform": "$50/month"}},
        "allowed_updates": ["free", "paid"],
        "configuration_schema": {"type": "object", "properties": {}, "additionalProperties": false},
        "provider": {"type": "plan", "price": {"amount": 5000, "currency": "usd", "interval": "month", "stripe_price": "price_team_monthly"}}
    }));
    let domain_schema = serde_json::json!({"type": "object",
        "properties": {"domain_query": {"type": "string", "minLength": 1, "maxLength": 63}},
        "required": ["domain_query"], "additionalProperties": false});
    services.push(serde_json::json!({
        "id": "database", "description": "Managed Postgres, provisioned by the platform's own backend.",
        "categories": ["database"], "kind": "deployable",
        "pricing": {"type": "component", "component": {"options": [{"type": "free", "parent_service_ids": ["free", "paid"]}]}},
        "allowed_updates": [],
        "configuration_schema": {"type": "object", "properties": {"fail": {"type": "string"}, "ask": {"type": "string", "enum": ["region"]}}, "additionalProperties": false},
        "provider": {"type": "operator_backend", "url": format!("{stand_in}/operator/v1/resources")}
    }));
    services.push(serde_json::json!({
        "id": "paid_database", "description": "Managed Postgres with a fixed monthly price, from the platform's own backend.",
        "categories": ["database"], "kind": "deployable",
        "pricing": {"type": "paid", "paid": {"type": "freeform", "freeform": "$15/month"}},
        "allowed_updates": [],
        "configuration_schema": {"type": "object", "properties": {"fail": {"type": "string"}}, "additionalProperties": false},
        "provider": {"type": "operator_backend", "url": format!("{stand_in}/operator/v1/resources"),
                     "price": {"amount": 1500, "currency": "usd", "interval": "month", "stripe_price": "price_db_monthly"}}
    }));
    services.push(serde_json::json!({
        "id": "setup_database", "description": "A database set up by the platform, $49 once.",
        "categories": ["database"], "kind": "deployable",
        "pricing": {"type": "paid", "paid": {"type": "freeform", "freeform": "$49 once"}},
        "allowed_updates": [],
        "configuration_schema": {"type": "object", "properties": {"fail": {"type": "string"}}, "additionalProperties": false},
        "provider": {"type": "operator_backend", "url": format!("{stand_in}/operator/v1/resources"),
                     "price": {"amount": 4900, "currency": "usd"}}
    }));
    services.push(serde_json::json!({
        "id": "metered_database", "description": "Serverless Postgres billed by usage (tests: usage-based, the hard cap).",
        "categories": ["database"], "kind": "deployable",
        "pricing": {"type": "paid", "paid": {"type": "freeform", "freeform": "$0.10 per GB-hour"}},
        "allowed_updates": [],
        "configuration_schema": {"type": "object", "properties": {"fail": {"type": "string"}}, "additionalProperties": false},
        "provider": {"type": "operator_backend", "url": format!("{stand_in}/operator/v1/resources"),
                     "metered": {"event_name": "db_usage_cents", "stripe_price": "price_db_usage", "currency": "usd"}}
    }));
    services.push(serde_json::json!({
        "id": "domain_upstream", "description": "Domains from the upstream registrar.",
        "categories": ["domains"], "kind": "deployable",
        "pricing": {"type": "paid", "paid": {"type": "freeform", "freeform": "quoted per name", "description": "the registrar's price"},
                    "paid_pricing": [
                        {"type": "freeform", "freeform": "quoted per name", "configuration": {"tld": "com"}, "is_default": true},
                        {"type": "free", "description": "test names", "configuration": {"tld": "test"}}]},
        "allowed_updates": [], "configuration_schema": domain_schema.clone(),
        "provider": {"type": "domain", "registrar": "upstream"}
    }));
    services.push(serde_json::json!({
        "id": "domain_short", "description": "Builtin domains with 5-second quotes (tests).",
        "categories": ["domains"], "kind": "deployable",
        "pricing": {"type": "paid", "paid": {"type": "freeform", "freeform": "$12 per name"}},
        "allowed_updates": [], "configuration_schema": domain_schema,
        "provider": {"type": "domain", "registrar": "builtin", "price": {"amount": 1200, "currency": "usd"}, "quote_ttl_seconds": 5}
    }));
    services.push(serde_json::json!({
        "id": "counted_token", "description": "An API token, one per project (tests: count).",
        "categories": ["developer_tools"], "kind": "deployable", "scope": "project",
        "llm_context": "https://docs.example.com/tokens", "availability": "available", "group": "tokens",
        "constraints": [{"type": "count", "count": {"at_most": 1}}],
        "pricing": {"type": "component", "component": {"options": [{"type": "free", "parent_service_ids": [], "is_default": true}]}},
        "allowed_updates": [{"service": "free", "direction": "any"}, {"service": "counted_token", "direction": "any"}],
        "configuration_schema": {"type": "object", "properties": {
            "label": {"type": "string", "pattern": "^[a-z][a-z0-9-]{2,62}$"},
            "size": {"type": "integer", "multipleOf": 4, "default": 12}}, "additionalProperties": false},
        "provider": {"type": "api_token", "scopes": ["logs:read"]}
    }));
    services.push(serde_json::json!({
        "id": "sandbox", "description": "A sandbox that takes no configuration (tests: {}).",
        "categories": ["compute"], "kind": "deployable", "scope": "account",
        "pricing": {"type": "free"}, "allowed_updates": [], "configuration_schema": {},
        "provider": {"type": "operator_backend", "url": format!("{stand_in}/operator/v1/resources")}
    }));
    v.to_string()
}
