//! What real catalogs say about a service and we enforce (docs/CATALOG.md): the `count`
//! constraint per account or per project, component options under any plan, `allowed_updates`
//! naming the other kind or the service itself, and the empty schema `{}`.

use super::*;

/// The test catalog plus a counted token service (`scope` as given), a deployable offered
/// under any plan, and one that takes no configuration and lists the plans and itself.
fn with_constraints(scope: &str, at_most: u32) -> Catalog {
    let mut v: Value = serde_json::from_str(DEFAULT_CATALOG).unwrap();
    let services = v["services"].as_array_mut().unwrap();
    services.push(json!({
        "id": "key", "description": "A counted API key", "categories": ["developer_tools"],
        "kind": "deployable", "scope": scope,
        "constraints": [{"type": "count", "count": {"at_most": at_most}}],
        "pricing": {"type": "component", "component": {"options": [{"type": "free", "parent_service_ids": []}]}},
        "allowed_updates": [{"service": "free", "direction": "any"}, {"service": "paid", "direction": "any"},
                            {"service": "key", "direction": "any"}],
        "configuration_schema": {},
        "provider": {"type": "api_token", "scopes": ["read"]}
    }));
    Catalog::parse(&v.to_string()).unwrap()
}

impl W {
    fn with_catalog(catalog: Catalog) -> W {
        let mut w = W::new();
        w.catalog = catalog;
        w
    }

    fn key(&mut self, project: &str, name: &str) -> Result<String, ResourceError> {
        self.create(
            json!({"service_id": "key", "project_id": project, "orchestrator_resource_id": name}),
            None,
        )
    }
}

#[test]
fn count_at_most_holds_per_project_and_a_repeated_create_is_not_counted() {
    let mut w = W::with_catalog(with_constraints("project", 2));
    w.create(json!({"service_id": "free", "project_id": "p"}), None)
        .unwrap();
    let a = w.key("p", "a").unwrap();
    let b = w.key("p", "b").unwrap();
    assert_ne!(a, b);
    let reached = ResourceError::ResourceLimitReached {
        service_id: "key".into(),
        at_most: 2,
        scope: Scope::Project,
    };
    let limit = Err(reached.clone());
    assert_eq!(w.key("p", "c"), limit);
    // The same names again are the same resources, not new ones.
    assert_eq!(w.key("p", "a"), Ok(a.clone()));
    assert_eq!(
        w.create(json!({"service_id": "key", "project_id": "p"}), None),
        Ok(a.clone()),
        "an unnamed create returns the project's resource"
    );
    // Another project counts on its own; a removed resource no longer counts.
    assert!(w.key("q", "a2").is_ok());
    let cat = w.catalog.clone();
    w.run(|d| remove(d, &a, &cat)).unwrap();
    assert!(w.key("p", "c").is_ok());
    assert_eq!(w.key("p", "d"), limit);
    let (code, message) = reached.describe().unwrap();
    assert_eq!(code, "resource_limit_reached");
    assert!(message.contains("at most 2 per project"), "{message}");
}

#[test]
fn count_at_most_with_account_scope_holds_across_projects() {
    let mut w = W::with_catalog(with_constraints("account", 1));
    w.create(json!({"service_id": "free", "project_id": "p"}), None)
        .unwrap();
    w.key("p", "a").unwrap();
    assert_eq!(
        w.key("q", "b"),
        Err(ResourceError::ResourceLimitReached {
            service_id: "key".into(),
            at_most: 1,
            scope: Scope::Account,
        })
    );
}

#[test]
fn an_option_with_no_parents_is_offered_under_any_plan_but_needs_one() {
    let mut w = W::with_catalog(with_constraints("project", 5));
    assert_eq!(w.key("p", "a"), Err(ResourceError::PlanRequired));
    w.create(paid_plan("spt_1"), None).unwrap();
    // Under the paid plan (still being subscribed) the option applies as under any other.
    assert!(w.key("p", "a").is_ok());
}

#[test]
fn an_empty_schema_takes_no_configuration() {
    let mut w = W::with_catalog(with_constraints("project", 5));
    w.create(json!({"service_id": "free", "project_id": "p"}), None)
        .unwrap();
    assert!(matches!(
        w.create(json!({"service_id": "key", "project_id": "p", "configuration": {"label": "x"}}), None),
        Err(ResourceError::InvalidConfiguration { field, .. }) if field == "configuration/label"
    ));
    assert!(w
        .create(
            json!({"service_id": "key", "project_id": "p", "configuration": {}}),
            None
        )
        .is_ok());
}

#[test]
fn update_service_follows_only_entries_of_the_same_kind() {
    let mut w = W::with_catalog(with_constraints("project", 5));
    w.create(json!({"service_id": "free", "project_id": "p"}), None)
        .unwrap();
    let key = w.key("p", "a").unwrap();
    let cat = w.catalog.clone();
    let to = |service: &str| UpdateRequest {
        service_id: Some(service.into()),
        configuration: None,
        payment_token: None,
    };
    // Listed, but a plan: a resource never changes kind.
    assert_eq!(
        w.run(|d| update_service(d, &key, &to("free"), &cat, "ch")),
        Err(ResourceError::UpdateNotAllowed {
            from: "key".into(),
            to: "free".into()
        })
    );
    // Itself: nothing to move.
    assert_eq!(
        w.run(|d| update_service(d, &key, &to("key"), &cat, "ch")),
        Ok(())
    );
    assert_eq!(w.res(&key).service_id, "key");
}
