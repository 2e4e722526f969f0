//! Catalogs as real providers write them (docs/CATALOG.md), over the wire: the test catalog's
//! entries of each shape are served as written, and what is a rule is enforced: `count`
//! per project, `pattern`, `multipleOf`, `{}` (no configuration), options under any plan.

use app_client::Call;
use serde_json::{json, Value};

use crate::common::*;
use crate::resources::{account_with_free_plan, create, ok};

pub fn trials() -> Vec<libtest_mimic::Trial> {
    vec![
        case(
            "catalog::real_catalog_shapes_are_served_as_written",
            real_catalog_shapes_are_served_as_written,
        ),
        case(
            "catalog::count_at_most_is_enforced_per_project",
            count_at_most_is_enforced_per_project,
        ),
        case(
            "catalog::schemas_and_no_configuration_are_enforced",
            schemas_and_no_configuration_are_enforced,
        ),
    ]
}

fn served(id: &str) -> Value {
    let reply = provider()
        .send(Call::get("/provisioning/services"))
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("{id} is not served"))
        .clone()
}

fn real_catalog_shapes_are_served_as_written() {
    let configured: Value = serde_json::from_str(&with_worker(|w| {
        app_tests::test_catalog(&w.stand_in.base_url)
    }))
    .unwrap();
    for id in [
        "team",
        "domain_upstream",
        "counted_token",
        "sandbox",
        "paid_database",
        "setup_database",
        "metered_database",
    ] {
        let mut written = configured["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap()
            .clone();
        written.as_object_mut().unwrap().remove("provider");
        let mut served = served(id);
        // A plain id in allowed_updates is served as an object (discovery::allowed_updates_...).
        if written["allowed_updates"]
            .as_array()
            .unwrap()
            .iter()
            .any(Value::is_string)
        {
            written.as_object_mut().unwrap().remove("allowed_updates");
            served.as_object_mut().unwrap().remove("allowed_updates");
        }
        assert_eq!(served, written, "{id}");
    }
    let token = served("counted_token");
    assert_eq!(
        token["constraints"],
        json!([{"type": "count", "count": {"at_most": 1}}])
    );
    assert_eq!(token["scope"], "project");
    assert_eq!(
        token["pricing"]["component"]["options"][0]["parent_service_ids"],
        json!([])
    );
    assert_eq!(served("sandbox")["configuration_schema"], json!({}));
    assert_eq!(
        served("domain_upstream")["pricing"]["paid_pricing"][1]["type"],
        "free"
    );
}

fn count_at_most_is_enforced_per_project() {
    let t = account_with_free_plan();
    let named = |project: &str, name: &str| {
        create(
            &t.access,
            json!({"service_id": "counted_token", "project_id": project,
                   "orchestrator_resource_id": name}),
        )
    };
    let first = ok(&named("p1", "a"));
    assert_eq!(first["status"], "complete", "{first}");
    // The same create again is the same resource, not a second one.
    assert_eq!(ok(&named("p1", "a"))["id"], first["id"]);
    let reply = named("p1", "b");
    assert_error(&reply, 409, "resource_limit_reached");
    let message = reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("counted_token allows at most 1 per project"),
        "{message}"
    );
    // Another project has its own count.
    assert_eq!(ok(&named("p2", "b"))["status"], "complete");
    // Removing the first makes room.
    let id = first["id"].as_str().unwrap();
    ok(&crate::resources::post(&t.access, id, "remove", json!({})));
    assert_eq!(ok(&named("p1", "c"))["status"], "complete");
}

fn schemas_and_no_configuration_are_enforced() {
    let t = account_with_free_plan();
    let token = |configuration: Value| {
        create(
            &t.access,
            json!({"service_id": "counted_token", "project_id": unique("p"),
                   "configuration": configuration}),
        )
    };
    let reply = token(json!({"label": "Not Valid"}));
    assert_error(&reply, 400, "invalid_configuration");
    let message = reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.starts_with("configuration/label: must match the pattern ^[a-z]"),
        "{message}"
    );
    let reply = token(json!({"size": 10}));
    assert_error(&reply, 400, "invalid_configuration");
    assert!(
        reply
            .text()
            .contains("configuration/size: must be a multiple of 4"),
        "{}",
        reply.text()
    );
    assert_eq!(
        ok(&token(json!({"label": "ci-token", "size": 12})))["status"],
        "complete"
    );

    let reply = create(
        &t.access,
        json!({"service_id": "sandbox", "project_id": "p", "configuration": {"region": "eu"}}),
    );
    assert_error(&reply, 400, "invalid_configuration");
    assert!(
        reply.text().contains("takes no configuration"),
        "{}",
        reply.text()
    );
}
