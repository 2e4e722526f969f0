//! Every service of the real orchestrator's catalog (`fixtures/orchestrator_catalog.json`, the
//! output of `stripe projects catalog` on 2026-06-13: 161 services of 48 providers), turned
//! back into what its provider would write in our `catalog.json`, one catalog per provider:
//! our validator accepts them and discovery serves them back as written.
//!
//! The fixture is the orchestrator's normalised form; [`as_written`] undoes it: `service_id`
//! is the id (`id` is the orchestrator's own), the fields it adds (`object`, `provider_*`,
//! `updateable_to`, `livemode`, `created`, `development`) go, `null` means absent,
//! `parent_services` is `parent_service_ids` again, and an empty `paid_pricing` is absent. Our
//! `provider` block, never served, is chosen by kind and price (a stand-in where ours cannot be
//! the real one, see [`provider`]).
//!
//! The fixture is trimmed (its `$comment` says how): the orchestrator's
//! `provider_configuration_schema` is dropped and `paid_pricing` lists are cut to two entries.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::Catalog;

const FIXTURE: &str = include_str!("fixtures/orchestrator_catalog.json");

/// Services our validator refuses, with why: (provider, service, the refusal).
const EXCLUDED: &[(&str, &str, &str)] = &[(
    "PostHog",
    "analytics",
    // A defect of the real catalog: a placeholder left in allowed_updates. Served, it would
    // offer the orchestrator a move to nothing; we refuse unknown targets on purpose.
    "allowed_updates names unknown service \"service_ref\"",
)];

fn services() -> Vec<Value> {
    let v: Value = serde_json::from_str(FIXTURE).expect("fixture is JSON");
    v["services"].as_array().expect("services").clone()
}

/// `null` is how the orchestrator writes an absent optional field.
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, x)| (k.clone(), without_nulls(x)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// The service as its provider would write it in our catalog, without `provider`.
fn as_written(orchestrator: &Value) -> Value {
    let mut s: Map<String, Value> = without_nulls(orchestrator)
        .as_object()
        .expect("a service is an object")
        .clone();
    for added in [
        "id",
        "object",
        "provider_id",
        "provider_name",
        "updateable_to",
        "livemode",
        "created",
        "development",
    ] {
        s.remove(added);
    }
    let id = s.remove("service_id").expect("service_id");
    s.insert("id".into(), id);
    let pricing = s
        .get_mut("pricing")
        .and_then(Value::as_object_mut)
        .expect("pricing");
    if pricing.get("paid_pricing") == Some(&json!([])) {
        pricing.remove("paid_pricing");
    }
    if let Some(options) = pricing
        .get_mut("component")
        .and_then(|c| c.get_mut("options"))
        .and_then(Value::as_array_mut)
    {
        for o in options {
            let o = o.as_object_mut().expect("an option is an object");
            let parents = o.remove("parent_services").expect("parent_services");
            o.insert("parent_service_ids".into(), parents);
        }
    }
    Value::Object(s)
}

/// Our `provider` block for a service as written. Plans are plans (a paid one with a price of
/// ours: the real one is not in the catalog). Free deployables are operator backends. Paid
/// deployables would be paid operator backends, which are issue 16 part 2: until then the
/// upstream domain registrar stands in, the one paid deployable behaviour we have; it is
/// never served, so what discovery serves is the same.
fn provider(s: &Value) -> Value {
    let paid = match s["pricing"]["type"].as_str() {
        Some("paid") => true,
        Some("component") => s["pricing"]["component"]["options"]
            .as_array()
            .is_some_and(|o| o.iter().any(|o| o["type"] == "paid")),
        _ => false,
    };
    match (s["kind"].as_str(), paid) {
        (Some("plan"), false) => json!({"type": "plan"}),
        (Some("plan"), true) => json!({"type": "plan", "price": {"amount": 100, "currency": "usd",
            "interval": "month", "stripe_price": "price_test"}}),
        (_, false) => json!({"type": "operator_backend", "url": "https://platform.test/operator"}),
        (_, true) => json!({"type": "domain", "registrar": "upstream"}),
    }
}

fn with_providers(written: &[Value]) -> String {
    let services: Vec<Value> = written
        .iter()
        .map(|w| {
            let mut w = w.clone();
            w["provider"] = provider(&w);
            w
        })
        .collect();
    json!({ "services": services }).to_string()
}

#[test]
fn every_real_service_is_accepted_and_served_as_written() {
    let all = services();
    assert_eq!(all.len(), 161);
    let mut by_provider: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for s in &all {
        let name = s["provider_name"].as_str().expect("provider_name");
        by_provider
            .entry(name.to_string())
            .or_default()
            .push(as_written(s));
    }
    assert_eq!(by_provider.len(), 48);
    let mut accepted = 0;
    for (name, written) in &by_provider {
        let excluded = |w: &Value| {
            EXCLUDED
                .iter()
                .find(|(p, id, _)| p == name && w["id"] == *id)
        };
        // Each exclusion is refused for the reason listed, naming the entry.
        for (j, w) in written.iter().enumerate() {
            if let Some((_, id, why)) = excluded(w) {
                let e = Catalog::parse(&with_providers(written)).expect_err(id);
                assert_eq!(e.entry, format!("services[{j}] ({id:?})"), "{name}");
                assert!(e.message.contains(why), "{name}: {e}");
            }
        }
        let kept: Vec<Value> = written
            .iter()
            .filter(|w| excluded(w).is_none())
            .cloned()
            .collect();
        let c = Catalog::parse(&with_providers(&kept)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            c.discovery()["data"],
            json!(kept),
            "{name}: served as written"
        );
        accepted += kept.len();
    }
    assert_eq!(accepted, 161 - EXCLUDED.len());
    // What each new shape looks like in the real catalog, counted so that a trimmed fixture or
    // a converter that drops a field fails here.
    let count =
        |f: &dyn Fn(&Value) -> bool| by_provider.values().flatten().filter(|s| f(s)).count();
    assert_eq!(count(&|s| s.get("scope").is_some()), 161);
    assert_eq!(count(&|s| s.get("llm_context").is_some()), 9);
    assert_eq!(count(&|s| s.get("group").is_some()), 28);
    assert_eq!(
        count(&|s| s["constraints"].as_array().is_some_and(|c| !c.is_empty())),
        28
    );
    assert_eq!(count(&|s| s["configuration_schema"] == json!({})), 89);
    assert_eq!(count(&|s| s["pricing"].get("paid_pricing").is_some()), 88);
    let text = |s: &Value| s["configuration_schema"].to_string();
    assert_eq!(count(&|s| text(s).contains("\"pattern\"")), 7);
    assert_eq!(count(&|s| text(s).contains("\"multipleOf\"")), 1);
}

/// Cloudflare's Workers services list the plans and themselves in `allowed_updates`; served as
/// objects, they never let update_service change a resource's kind.
#[test]
fn cloudflares_deployables_list_the_plans() {
    let written: Vec<Value> = services()
        .iter()
        .filter(|s| s["provider_name"] == "Cloudflare")
        .map(as_written)
        .collect();
    let c = Catalog::parse(&with_providers(&written)).unwrap();
    let workers = c.get("workers").unwrap();
    let plans: Vec<&str> = workers
        .allowed_updates
        .iter()
        .map(|u| u.service.as_str())
        .collect();
    assert!(
        plans.contains(&"workers:paid") && plans.contains(&"workers:free"),
        "{plans:?}"
    );
    for u in &workers.allowed_updates {
        let target = c.get(&u.service).unwrap();
        assert_eq!(
            workers.allows_update_to(target),
            target.kind == workers.kind
        );
    }
}

/// The real schemas' `multipleOf` and `pattern` are enforced on configuration.
#[test]
fn real_schemas_are_enforced() {
    let written: Vec<Value> = services()
        .iter()
        .filter(|s| s["provider_name"] == "ClickHouse")
        .map(as_written)
        .collect();
    let c = Catalog::parse(&with_providers(&written)).unwrap();
    let ch = c.get("clickhouse").unwrap();
    let config = |min: u32| {
        json!({"name": "db", "region": "aws-us-east-1", "minReplicaMemoryGb": min,
               "maxReplicaMemoryGb": 16})
    };
    assert_eq!(ch.validate_configuration(&config(12)), Ok(()));
    let e = ch.validate_configuration(&config(10)).unwrap_err();
    assert_eq!(
        (e.path.as_str(), e.message.as_str()),
        ("/minReplicaMemoryGb", "must be a multiple of 4")
    );

    let patterned: Vec<(String, Value)> = services()
        .iter()
        .map(as_written)
        .flat_map(|s| {
            let props = s["configuration_schema"]["properties"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            props
                .into_iter()
                .filter(|(_, p)| p.get("pattern").is_some())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(patterned.len(), 7);
    for (name, p) in patterned {
        let e = crate::schema::validate(&p, &json!("Not Valid!")).expect_err(&name);
        assert!(
            e.message.starts_with("must match the pattern "),
            "{name}: {e}"
        );
    }
}
