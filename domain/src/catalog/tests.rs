use super::*;
use serde_json::json;
use std::collections::BTreeMap;

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
        Pricing::Paid { paid: Some(PaidPricing::Freeform { freeform, .. }), paid_pricing: None } if !freeform.is_empty()
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
        json!({"type": "object", "properties": {"a": {"type": "string", "pattern": "(?=x)"}}});
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
fn updates_may_name_the_other_kind_and_the_service_itself_and_components_need_plan_parents() {
    // As Cloudflare's Workers services do: a deployable listing the plans and itself.
    let mut token = plan("tok", &["free", "tok"]);
    token["kind"] = json!("deployable");
    token["provider"] = json!({"type":"api_token","scopes":["read"]});
    let c = Catalog::parse(&with_services(json!([
        plan("free", &["tok"]),
        token.clone()
    ])))
    .expect("cross-kind and self entries are accepted");
    let (free, tok) = (c.get("free").unwrap(), c.get("tok").unwrap());
    assert_eq!(
        served_updates(&c, "tok"),
        json!([{"service": "free", "direction": "any"}, {"service": "tok", "direction": "any"}])
    );
    // update_service never changes a resource's kind; naming itself is a configuration change.
    assert!(!tok.allows_update_to(free));
    assert!(!free.allows_update_to(tok));
    assert!(tok.allows_update_to(tok));

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

fn priced_plan(id: &str, amount: u64, updates: Value) -> Value {
    let mut p = plan(id, &[]);
    p["pricing"] = json!({"type": "paid", "paid": {"type": "freeform", "freeform": "$/month"}});
    p["provider"] = json!({"type": "plan", "price": {"amount": amount, "currency": "usd",
                                                      "interval": "month", "stripe_price": format!("price_{id}")}});
    p["allowed_updates"] = updates;
    p
}

fn served_updates(c: &Catalog, id: &str) -> Value {
    let body = c.discovery();
    let s = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap()
        .clone();
    s["allowed_updates"].clone()
}

#[test]
fn allowed_updates_are_served_as_objects_with_the_direction_inferred_from_plan_prices() {
    let c = Catalog::parse(DEFAULT_CATALOG).unwrap();
    // catalog.json writes plain ids; free (no price) -> paid ($20) is up, and back is down.
    assert_eq!(
        served_updates(&c, "free"),
        json!([{"service": "paid", "direction": "up"}])
    );
    assert_eq!(
        served_updates(&c, "paid"),
        json!([{"service": "free", "direction": "down"}])
    );
    assert_eq!(served_updates(&c, "api_token"), json!([]));
    let free = c.get("free").unwrap();
    assert!(free.allows_update_to(c.get("paid").unwrap()));
    assert!(!free.allows_update_to(c.get("domain").unwrap()));

    // Equal prices (and two free plans): any.
    let c = Catalog::parse(&with_services(json!([
        priced_plan("a", 1000, json!(["b", "c"])),
        priced_plan("b", 1000, json!(["a"])),
        plan("c", &["d", "a"]),
        plan("d", &[]),
    ])))
    .unwrap();
    assert_eq!(
        served_updates(&c, "a"),
        json!([{"service": "b", "direction": "any"}, {"service": "c", "direction": "down"}])
    );
    assert_eq!(
        served_updates(&c, "c"),
        json!([{"service": "d", "direction": "any"}, {"service": "a", "direction": "up"}])
    );
}

#[test]
fn allowed_updates_in_the_object_form_keep_their_direction() {
    // Written directions are kept even where prices would say otherwise, and both forms mix.
    let c = Catalog::parse(&with_services(json!([
        priced_plan(
            "cheap",
            500,
            json!([{"service": "dear", "direction": "any"}])
        ),
        priced_plan(
            "dear",
            900,
            json!([{"direction": "up", "service": "cheap"}, "free"])
        ),
        plan("free", &[]),
    ])))
    .unwrap();
    assert_eq!(
        served_updates(&c, "cheap"),
        json!([{"service": "dear", "direction": "any"}])
    );
    assert_eq!(
        served_updates(&c, "dear"),
        json!([{"service": "cheap", "direction": "up"}, {"service": "free", "direction": "down"}])
    );
    let dear = c.get("dear").unwrap();
    assert_eq!(dear.allowed_updates[0].direction, Direction::Up);
    assert!(dear.allows_update_to(c.get("cheap").unwrap()));
    assert!(dear.allows_update_to(c.get("free").unwrap()));
}

#[test]
fn bad_allowed_updates_are_refused_naming_the_entry_and_field() {
    let refused = |updates: Value| {
        let mut p = plan("free", &[]);
        p["allowed_updates"] = updates;
        err_of(json!([p, plan("paid", &[])]))
    };
    let e = refused(json!([{"service": "paid", "direction": "sideways"}]));
    assert_eq!(e.entry, "services[0] (\"free\")");
    assert!(e.message.contains("allowed_updates"), "{e}");
    assert!(e.message.contains("direction \"sideways\""), "{e}");
    let e = refused(json!([{"service": "gold", "direction": "up"}]));
    assert_eq!(e.entry, "services[0] (\"free\")");
    assert!(
        e.message
            .contains("allowed_updates names unknown service \"gold\""),
        "{e}"
    );
    for (bad, says) in [
        (json!([{"service": "paid"}]), "direction"),
        (json!([{"direction": "up"}]), "service"),
        (
            json!([{"service": "paid", "direction": "up", "why": 1}]),
            "unknown field \"why\"",
        ),
        (json!([7]), "allowed_updates"),
        (
            json!(["paid", {"service": "paid", "direction": "up"}]),
            "\"paid\" twice",
        ),
    ] {
        let e = refused(bad.clone());
        assert_eq!(e.entry, "services[0] (\"free\")", "{bad}");
        assert!(e.message.contains(says), "{bad}: {e}");
    }
}

/// The `allowed_updates` of every service of the real orchestrator's catalog
/// (`fixtures/orchestrator_catalog.json`) read with our parser, unchanged when served.
#[test]
fn the_real_orchestrators_allowed_updates_parse() {
    let v: Value =
        serde_json::from_str(include_str!("fixtures/orchestrator_catalog.json")).unwrap();
    let services = v["services"].as_array().unwrap();
    let mut directions = BTreeMap::new();
    let mut unknown = Vec::new();
    for s in services {
        let raw = s["allowed_updates"].as_array().unwrap();
        for entry in raw {
            let u = AllowedUpdate::try_from(entry.clone()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&serde_json::to_value(&u).unwrap(), entry);
            *directions.entry(u.direction.as_str()).or_insert(0) += 1;
            let known = services.iter().any(|t| {
                t["provider_name"] == s["provider_name"] && t["service_id"] == u.service.as_str()
            });
            if !known {
                unknown.push((s["service_id"].clone(), u.service.clone()));
            }
        }
    }
    assert_eq!(services.len(), 161);
    assert_eq!(
        directions,
        BTreeMap::from([("any", 174), ("down", 29), ("up", 33)])
    );
    // One real entry names a service its provider does not list; our validation refuses that
    // in catalog.json.
    assert_eq!(unknown, [(json!("analytics"), "service_ref".to_string())]);
}

/// docs/openapi.json's `AllowedUpdate` is what discovery serves.
#[test]
fn the_openapi_allowed_update_is_the_served_form() {
    let doc: Value = serde_json::from_str(crate::openapi::OPENAPI).unwrap();
    let schema = &doc["components"]["schemas"]["AllowedUpdate"];
    let served: Vec<Value> = [Direction::Up, Direction::Down, Direction::Any]
        .iter()
        .map(|d| {
            assert_eq!(serde_json::to_value(d).unwrap(), d.as_str());
            json!(d.as_str())
        })
        .collect();
    assert_eq!(schema["properties"]["direction"]["enum"], json!(served));
    assert_eq!(schema["required"], json!(["service", "direction"]));
    assert_eq!(
        doc["components"]["schemas"]["Service"]["properties"]["allowed_updates"]["items"]["$ref"],
        "#/components/schemas/AllowedUpdate"
    );
    let c = Catalog::parse(DEFAULT_CATALOG).unwrap();
    for s in c.discovery()["data"].as_array().unwrap() {
        for u in s["allowed_updates"].as_array().unwrap() {
            let keys: Vec<&String> = u.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["direction", "service"], "{u}");
        }
    }
}

/// A deployable with every field real catalogs carry, in each new shape.
fn real_shaped_deployable() -> Value {
    json!({"id": "db", "description": "a database", "categories": ["database"],
           "kind": "deployable", "scope": "account", "llm_context": "https://docs.example.com",
           "constraints": [{"type": "count", "count": {"at_most": 2}}],
           "availability": "available", "group": "postgresql",
           "pricing": {"type": "component", "component": {"options": [
               {"type": "free", "parent_service_ids": [], "is_default": true},
               {"type": "paid", "parent_service_ids": ["free"],
                "paid": {"type": "freeform", "freeform": "$1/GB", "description": "storage"}}]}},
           "allowed_updates": [{"service": "free", "direction": "any"}, {"service": "db", "direction": "any"}],
           "configuration_schema": {"type": "object", "properties": {
               "name": {"type": "string", "pattern": "^[a-z][a-z0-9-]{2,62}$"},
               "size": {"type": "integer", "multipleOf": 4, "default": 12}}},
           "provider": {"type": "domain", "registrar": "upstream"}})
}

fn real_shaped_plan() -> Value {
    let mut p = plan("free", &[]);
    p["allowed_updates"] = json!([{"service": "free", "direction": "any"}]);
    p["scope"] = json!("project");
    p["constraints"] = json!([
        {"type": "mutual_exclusion_allowed_updates", "mutual_exclusion_allowed_updates": true},
        {"type": "count", "count": {"at_most": 1}}]);
    p["configuration_schema"] = json!({});
    p
}

#[test]
fn the_fields_real_catalogs_carry_are_accepted_and_served_as_written() {
    let (db, free) = (real_shaped_deployable(), real_shaped_plan());
    let c = Catalog::parse(&with_services(json!([free.clone(), db.clone()]))).unwrap();
    let served = c.discovery();
    for (written, served) in [free, db].iter().zip(served["data"].as_array().unwrap()) {
        let mut written = written.clone();
        written.as_object_mut().unwrap().remove("provider");
        assert_eq!(&written, served);
    }
    let db = c.get("db").unwrap();
    assert_eq!((db.scope(), db.at_most()), (Scope::Account, Some(2)));
    let free = c.get("free").unwrap();
    assert_eq!((free.scope(), free.at_most()), (Scope::Project, Some(1)));
    assert!(free.takes_no_configuration());
    // Unwritten scope: the account for plans, the project for deployables.
    let d = Catalog::parse(DEFAULT_CATALOG).unwrap();
    assert_eq!(d.get("free").unwrap().scope(), Scope::Account);
    assert_eq!(d.get("api_token").unwrap().scope(), Scope::Project);
    assert_eq!(d.get("api_token").unwrap().at_most(), None);
}

/// Prices by configuration, as Render, Upstash or PlanetScale write them: served as written.
#[test]
fn paid_pricing_is_accepted_and_served_as_written() {
    let mut db = real_shaped_deployable();
    db["pricing"] = json!({"type": "paid",
        "paid": {"type": "free", "description": "512MB RAM"},
        "paid_pricing": [
            {"type": "free", "description": "512MB RAM", "configuration": {"instance_type": "free"}, "is_default": true},
            {"type": "freeform", "freeform": "$7/month", "configuration": {"instance_type": "starter"}}]});
    let c = Catalog::parse(&with_services(json!([real_shaped_plan(), db.clone()]))).unwrap();
    assert_eq!(c.discovery()["data"][1]["pricing"], db["pricing"]);
    assert!(c.is_paid(c.get("db").unwrap()));
}

#[test]
fn an_empty_schema_means_no_configuration() {
    let c = Catalog::parse(&with_services(json!([real_shaped_plan()]))).unwrap();
    let free = c.get("free").unwrap();
    assert_eq!(free.validate_configuration(&json!({})), Ok(()));
    let e = free
        .validate_configuration(&json!({"region": "eu"}))
        .unwrap_err();
    assert_eq!(e.path, "/region");
    assert!(e.message.contains("takes no configuration"), "{e}");
    assert!(free.validate_configuration(&json!([])).is_err());
    // Nested, `{}` is the JSON Schema that accepts any value.
    let mut p = plan("x", &[]);
    p["configuration_schema"] = json!({"type": "object", "properties": {"any": {}}});
    let c = Catalog::parse(&with_services(json!([p]))).unwrap();
    assert_eq!(
        c.get("x")
            .unwrap()
            .validate_configuration(&json!({"any": [1, "two"]})),
        Ok(())
    );
}

#[test]
fn bad_new_fields_are_refused_naming_the_entry_and_field() {
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "scope",
            json!("team"),
            "scope \"team\" is not \"account\" or \"project\"",
        ),
        ("availability", json!("soon"), "availability \"soon\""),
        ("llm_context", json!(" "), "llm_context"),
        ("llm_context", json!("x".repeat(4097)), "llm_context"),
        ("group", json!("Postgres SQL"), "group \"Postgres SQL\""),
        (
            "constraints",
            json!([{"type": "count", "count": {"at_most": 0}}]),
            "count.at_most",
        ),
        (
            "constraints",
            json!([{"type": "count", "count": {"at_least": 1}}]),
            "count.at_least",
        ),
        (
            "constraints",
            json!([{"type": "count"}]),
            "count must be an object",
        ),
        (
            "constraints",
            json!([{"type": "quota"}]),
            "unknown type \"quota\"",
        ),
        (
            "constraints",
            json!([{"count": {"at_most": 1}}]),
            "type is missing",
        ),
        (
            "constraints",
            json!([{"type": "count", "count": {"at_most": 1}, "x": 1}]),
            "unknown field \"x\"",
        ),
        (
            "constraints",
            json!([{"type": "count", "count": {"at_most": 1}},
                               {"type": "count", "count": {"at_most": 2}}]),
            "constraints[1] repeats",
        ),
        (
            "constraints",
            json!([{"type": "mutual_exclusion_allowed_updates"}]),
            "plans only",
        ),
        (
            "constraints",
            json!([{"type": "mutual_exclusion_allowed_updates",
                                "mutual_exclusion_allowed_updates": false}]),
            "must be true",
        ),
        (
            "configuration_schema",
            json!({"title": "x"}),
            "\"type\": \"object\"",
        ),
        (
            "configuration_schema",
            json!({"type": "object", "properties": {"n": {"type": "integer", "multipleOf": 0}}}),
            "configuration_schema/properties/n/multipleOf",
        ),
        (
            "pricing",
            json!({"type": "component", "component": {"options": [
            {"type": "paid", "parent_service_ids": [], "paid": {"type": "freeform", "freeform": "$1", "description": ""}}]}}),
            "pricing.component.options[0].paid.description is empty",
        ),
        (
            "pricing",
            json!({"type": "component", "component": {"options": [
            {"type": "free", "parent_service_ids": [], "is_default": "yes"}]}}),
            "invalid type",
        ),
    ];
    for (field, value, says) in cases {
        let mut db = real_shaped_deployable();
        db[field] = value.clone();
        let e = err_of(json!([real_shaped_plan(), db]));
        assert_eq!(e.entry, "services[1] (\"db\")", "{field}: {value}");
        assert!(e.message.contains(says), "{field}: {value}: {e}");
    }
}

#[test]
fn a_paid_operator_service_needs_a_recurring_price_with_its_stripe_price() {
    let db = |price: Value| {
        json!({"id": "db", "description": "a database", "categories": ["database"],
               "kind": "deployable",
               "pricing": {"type":"paid","paid":{"type":"freeform","freeform":"$15/month"}},
               "allowed_updates": [], "configuration_schema": {},
               "provider": {"type": "operator_backend", "url": "https://ops.example/v1", "price": price}})
    };
    let free = plan("free", &[]);
    for (price, says) in [
        (Value::Null, "usage-based"),
        (
            json!({"amount": 1500, "currency": "usd", "stripe_price": "price_1"}),
            "one-time",
        ),
        (
            json!({"amount": 1500, "currency": "usd", "interval": "week", "stripe_price": "price_1"}),
            "interval",
        ),
        (
            json!({"amount": 1500, "currency": "usd", "interval": "month"}),
            "stripe_price",
        ),
        (
            json!({"amount": 0, "currency": "usd", "interval": "month", "stripe_price": "price_1"}),
            "amount",
        ),
    ] {
        let e = err_of(json!([free.clone(), db(price.clone())]));
        assert_eq!(e.entry, "services[1] (\"db\")", "{price}");
        assert!(e.message.contains(says), "{price}: {e}");
    }
    let c = Catalog::parse(&with_services(json!([
        free,
        db(json!({"amount": 1500, "currency": "usd", "interval": "month", "stripe_price": "price_db"}))
    ])))
    .unwrap();
    assert!(c.is_paid(c.get("db").unwrap()));
    // Its price is in the cap's currency like every other.
    assert_eq!(c.currency(), "usd");
    // A one-time price: an amount, no interval, no Stripe Price.
    Catalog::parse(&with_services(json!([
        plan("free", &[]),
        db(json!({"amount": 4900, "currency": "usd"}))
    ])))
    .unwrap();
}
