//! What the real orchestrator does (docs/PROTOCOL.md §4, protocol §8), from its side with the
//! `client/` library: named creates (`Idempotency-Key`, `orchestrator_resource_id`) and
//! `environment`, the `needs_information` round trip with `submitted_information`, linking
//! existing resources, and configuration-only updates.

use serde_json::{json, Value};

use crate::common::*;
use crate::resources::{account_with_free_plan, create, get, ok, pay, post, settle, spt};

pub fn trials() -> Vec<libtest_mimic::Trial> {
    vec![
        case(
            "interop::two_resources_of_one_service_in_one_project",
            two_resources_of_one_service_in_one_project,
        ),
        case(
            "interop::a_domain_is_bought_through_submitted_information",
            a_domain_is_bought_through_submitted_information,
        ),
        case(
            "interop::an_operator_backend_asks_and_gets_its_answer",
            an_operator_backend_asks_and_gets_its_answer,
        ),
        case(
            "interop::linking_existing_resources",
            linking_existing_resources,
        ),
        case(
            "interop::configuration_only_updates",
            configuration_only_updates,
        ),
    ]
}

fn keyed(access: &str, key: &str, body: &Value) -> app_client::Reply {
    provider().create_resource_keyed(access, key, body).unwrap()
}

fn link(access: &str, key: Option<&str>, body: &Value) -> app_client::Reply {
    provider().link_resource(access, key, body).unwrap()
}

fn audit_actions(account: &str, min: usize) -> Vec<String> {
    audit_rows(account, min)
        .iter()
        .filter_map(|r| r["action"].as_str().map(str::to_string))
        .collect()
}

fn two_resources_of_one_service_in_one_project() {
    let t = account_with_free_plan();
    let token = |label: &str| {
        json!({"service_id": "api_token", "project_id": "p", "environment": "prod",
               "configuration": {"label": label}})
    };
    let (ka, kb) = (unique("key-a"), unique("key-b"));
    let a = ok(&keyed(&t.access, &ka, &token("ci")));
    let b = ok(&keyed(&t.access, &kb, &token("deploy")));
    assert_ne!(a["id"], b["id"], "two keys, two tokens in one project");
    assert_eq!(a["environment"], "prod", "{a}");
    assert_ne!(
        a["complete"]["access_configuration"]["API_TOKEN"],
        b["complete"]["access_configuration"]["API_TOKEN"]
    );
    // The same key and body: the same resource, the same token.
    let again = ok(&keyed(&t.access, &ka, &token("ci")));
    assert_eq!(again["id"], a["id"]);
    assert_eq!(
        again["complete"]["access_configuration"]["API_TOKEN"],
        a["complete"]["access_configuration"]["API_TOKEN"]
    );
    // The same key, another body: 409, and nothing was made.
    let created = |actions: &[String]| {
        actions
            .iter()
            .filter(|a| a.as_str() == "resource.created")
            .count()
    };
    let before = created(&audit_actions(&t.account, 1));
    assert_error(
        &keyed(&t.access, &ka, &token("other")),
        409,
        "idempotency_conflict",
    );
    assert_eq!(created(&audit_actions(&t.account, 1)), before);
    // orchestrator_resource_id names a resource across keys, and is echoed.
    let named =
        json!({"service_id": "api_token", "project_id": "p", "orchestrator_resource_id": "orr_7"});
    let n1 = ok(&keyed(&t.access, &unique("k"), &named));
    let n2 = ok(&keyed(&t.access, &unique("k"), &named));
    assert_eq!(n1["id"], n2["id"]);
    assert_eq!(n1["orchestrator_resource_id"], "orr_7");
    assert_ne!(n1["id"], a["id"]);
    // A malformed key is refused before anything happens.
    assert_error(
        &keyed(&t.access, "a key with spaces", &token("x")),
        400,
        "invalid_request",
    );
    // Unnamed, the old rule: one per (project, service).
    let unnamed = ok(&create(
        &t.access,
        json!({"service_id": "api_token", "project_id": "q"}),
    ));
    let unnamed2 = ok(&create(
        &t.access,
        json!({"service_id": "api_token", "project_id": "q"}),
    ));
    assert_eq!(unnamed["id"], unnamed2["id"]);
}

fn a_domain_is_bought_through_submitted_information() {
    let t = account_with_free_plan();
    let key = unique("dom");
    let label = unique("shop");
    let body = |info: Value| {
        json!({"service_id": "domain", "project_id": "p", "configuration": {"domain_query": label},
               "payment_credentials": pay(&spt(10_000)), "submitted_information": info})
    };
    let quoted = ok(&keyed(&t.access, &key, &body(Value::Null)));
    assert_eq!(quoted["status"], "needs_information", "{quoted}");
    let id = quoted["id"].as_str().unwrap().to_string();
    let schema = &quoted["needs_information"]["schema"];
    let name = schema["properties"]["domain"]["enum"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(schema["required"], json!(["domain", "amount"]));
    let charged = || {
        with_worker(|w| w.stand_in.payment_intents())
            .into_iter()
            .filter(|pi| pi["metadata"]["resource_id"] == id.as_str())
            .count()
    };
    // Not what the schema asks: 400 naming the field; a wrong price: 409. Nothing is bought.
    let bad = keyed(&t.access, &key, &body(json!({"domain": name})));
    assert_error(&bad, 400, "invalid_information");
    assert!(
        bad.text().contains("submitted_information/amount"),
        "{}",
        bad.text()
    );
    assert_error(
        &keyed(
            &t.access,
            &key,
            &body(json!({"domain": "evil.example.com", "amount": 1200})),
        ),
        400,
        "invalid_information",
    );
    assert_error(
        &keyed(
            &t.access,
            &key,
            &body(json!({"domain": name, "amount": 1000})),
        ),
        409,
        "price_changed",
    );
    assert_eq!(charged(), 0);
    assert_eq!(ok(&get(&t.access, &id))["status"], "needs_information");
    // The answer the schema asked for buys it, once.
    let info = json!({"domain": name, "amount": 1200});
    let bought = ok(&keyed(&t.access, &key, &body(info.clone())));
    assert_eq!(bought["id"], id.as_str());
    let done = settle(&t.access, &id);
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(
        done["complete"]["access_configuration"]["DOMAIN"],
        name.as_str()
    );
    let again = ok(&keyed(&t.access, &key, &body(info)));
    assert_eq!(again["status"], "complete");
    assert_eq!(
        charged(),
        1,
        "one purchase however often the answer is sent"
    );
    let actions = audit_actions(&t.account, 1);
    assert!(
        actions.iter().any(|a| a == "domain.confirmed"),
        "{actions:?}"
    );
}

fn an_operator_backend_asks_and_gets_its_answer() {
    let t = account_with_free_plan();
    let key = unique("db");
    let body = |info: Value| {
        json!({"service_id": "database", "project_id": "p", "environment": "prod",
               "configuration": {"ask": "region"}, "submitted_information": info})
    };
    let first = ok(&keyed(&t.access, &key, &body(Value::Null)));
    let id = first["id"].as_str().unwrap().to_string();
    let asked = settle(&t.access, &id);
    let first_key = with_worker(|w| w.stand_in.operator_calls())
        .into_iter()
        .find(|c| c["resource_id"] == id.as_str())
        .map(|c| c["idempotency_key"].clone())
        .unwrap();
    assert_eq!(asked["status"], "needs_information", "{asked}");
    assert_eq!(
        asked["needs_information"]["schema"]["properties"]["region"]["enum"],
        json!(["eu", "us"])
    );
    assert!(asked["needs_information"]["message"]
        .as_str()
        .unwrap()
        .contains("region"));
    assert_error(
        &keyed(&t.access, &key, &body(json!({"region": "mars"}))),
        400,
        "invalid_information",
    );
    ok(&keyed(&t.access, &key, &body(json!({"region": "eu"}))));
    let done = settle(&t.access, &id);
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(done["complete"]["access_configuration"]["REGION"], "eu");
    assert_eq!(done["environment"], "prod");
    let calls: Vec<Value> = with_worker(|w| w.stand_in.operator_calls())
        .into_iter()
        .filter(|c| c["resource_id"] == id.as_str())
        .collect();
    let answered = calls
        .iter()
        .find(|c| c["submitted_information"]["region"] == "eu" && c["environment"] == "prod")
        .unwrap_or_else(|| panic!("{calls:?}"));
    // The call with the answer is a new call (a new key), however soon it came.
    assert_ne!(answered["idempotency_key"], first_key);
    let actions = audit_actions(&t.account, 1);
    for a in [
        "resource.information_requested",
        "resource.information_submitted",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a}: {actions:?}");
    }
}

fn linking_existing_resources() {
    let t = account_with_free_plan();
    // An API token cannot be linked; the plan links to the account's plan.
    assert_error(
        &link(
            &t.access,
            None,
            &json!({"service_id": "api_token", "project_id": "q"}),
        ),
        400,
        "link_not_supported",
    );
    let plan = ok(&link(
        &t.access,
        None,
        &json!({"service_id": "free", "project_id": "q"}),
    ));
    assert_eq!(plan["complete"]["access_configuration"]["PLAN"], "free");
    assert_error(
        &link(
            &t.access,
            None,
            &json!({"service_id": "paid", "project_id": "q"}),
        ),
        404,
        "link_target_not_found",
    );
    // A domain: which one? Only one this account registered here.
    let lkey = unique("link");
    let asks = ok(&link(
        &t.access,
        Some(&lkey),
        &json!({"service_id": "domain", "project_id": "q"}),
    ));
    assert_eq!(asks["status"], "needs_information", "{asks}");
    assert_eq!(asks["linked"], true);
    let lid = asks["id"].as_str().unwrap().to_string();
    let named = |d: &str| json!({"service_id": "domain", "project_id": "q", "submitted_information": {"domain": d}});
    assert_error(
        &link(&t.access, Some(&lkey), &named("not-mine.example.com")),
        404,
        "link_target_not_found",
    );
    // Buy one in project p, then link it into q.
    let dkey = unique("buy");
    let label = unique("linked");
    let buy = |info: Value| {
        json!({"service_id": "domain", "project_id": "p", "configuration": {"domain_query": label},
               "payment_credentials": pay(&spt(10_000)), "submitted_information": info})
    };
    let quoted = ok(&keyed(&t.access, &dkey, &buy(Value::Null)));
    let name = quoted["needs_information"]["schema"]["properties"]["domain"]["enum"][0]
        .as_str()
        .unwrap()
        .to_string();
    let bought = ok(&keyed(
        &t.access,
        &dkey,
        &buy(json!({"domain": name, "amount": 1200})),
    ));
    let bought_id = bought["id"].as_str().unwrap().to_string();
    assert_eq!(settle(&t.access, &bought_id)["status"], "complete");
    let linked = ok(&link(&t.access, Some(&lkey), &named(&name)));
    assert_eq!(linked["id"], lid.as_str());
    assert_eq!(linked["status"], "complete", "{linked}");
    assert_eq!(
        linked["complete"]["access_configuration"]["DOMAIN"],
        name.as_str()
    );
    // Removing the link detaches it; the domain stays registered.
    let removed = ok(&post(&t.access, &lid, "remove", json!({})));
    assert_eq!(removed["status"], "removed", "{removed}");
    assert_error(&get(&t.access, &lid), 404, "resource_not_found");
    assert_eq!(ok(&get(&t.access, &bought_id))["status"], "complete");

    // An operator service: the backend asks which, then checks that it is this account's.
    let db = ok(&create(
        &t.access,
        json!({"service_id": "database", "project_id": "p"}),
    ));
    let db_id = db["id"].as_str().unwrap().to_string();
    let db = settle(&t.access, &db_id);
    let okey = unique("link-db");
    let body = |info: Value| json!({"service_id": "database", "project_id": "q", "submitted_information": info});
    let first = ok(&link(&t.access, Some(&okey), &body(Value::Null)));
    let link_id = first["id"].as_str().unwrap().to_string();
    let asked = settle(&t.access, &link_id);
    assert_eq!(asked["status"], "needs_information", "{asked}");
    assert_eq!(
        asked["needs_information"]["schema"]["required"],
        json!(["resource_id"])
    );
    ok(&link(
        &t.access,
        Some(&okey),
        &body(json!({"resource_id": db_id})),
    ));
    let linked_db = settle(&t.access, &link_id);
    assert_eq!(linked_db["status"], "complete", "{linked_db}");
    assert_eq!(
        linked_db["complete"]["access_configuration"]["DATABASE_URL"],
        db["complete"]["access_configuration"]["DATABASE_URL"]
    );
    // Another account cannot link it.
    let other = account_with_free_plan();
    let theirs = ok(&link(&other.access, None, &body(Value::Null)));
    let theirs_id = theirs["id"].as_str().unwrap().to_string();
    settle(&other.access, &theirs_id);
    // The backend's refusal is the answer: the link ends errored with it.
    let no = ok(&link(
        &other.access,
        None,
        &body(json!({"resource_id": db_id})),
    ));
    assert_eq!(no["status"], "errored", "{no}");
    assert_eq!(no["error"]["code"], "backend_error", "{no}");
    let refused = settle(&other.access, &theirs_id);
    assert_eq!(refused["status"], "errored", "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not_owned"),
        "{refused}"
    );
    // Removing the linked database calls no backend removal; the database stays.
    let removed = ok(&post(&t.access, &link_id, "remove", json!({})));
    assert_eq!(removed["status"], "removed", "{removed}");
    let removals = with_worker(|w| w.stand_in.operator_calls())
        .into_iter()
        .filter(|c| {
            c["action"] == "remove"
                && (c["resource_id"] == db_id.as_str() || c["resource_id"] == link_id.as_str())
        })
        .count();
    assert_eq!(removals, 0);
    assert_eq!(ok(&get(&t.access, &db_id))["status"], "complete");
    let actions = audit_actions(&t.account, 1);
    assert!(
        actions
            .iter()
            .filter(|a| a.as_str() == "resource.linked")
            .count()
            >= 2,
        "{actions:?}"
    );
}

fn configuration_only_updates() {
    let t = account_with_free_plan();
    let update = |id: &str, c: Value| provider().update_configuration(&t.access, id, &c).unwrap();
    // An API token: new scopes at once, the same value.
    let tok = ok(&create(
        &t.access,
        json!({"service_id": "api_token", "project_id": "p", "configuration": {"scopes": ["logs:read", "deploy:write"]}}),
    ));
    let tid = tok["id"].as_str().unwrap().to_string();
    let narrowed = ok(&update(&tid, json!({"scopes": ["logs:read"]})));
    assert_eq!(
        narrowed["complete"]["access_configuration"]["API_TOKEN_SCOPES"], "logs:read",
        "{narrowed}"
    );
    assert_eq!(
        narrowed["complete"]["access_configuration"]["API_TOKEN"],
        tok["complete"]["access_configuration"]["API_TOKEN"]
    );
    assert_error(
        &update(&tid, json!({"scopes": "all"})),
        400,
        "invalid_configuration",
    );
    // An empty update says what to send.
    assert_error(
        &post(&t.access, &tid, "update_service", json!({})),
        400,
        "invalid_request",
    );
    // An operator service: the backend applies it (action "update").
    let db = ok(&create(
        &t.access,
        json!({"service_id": "database", "project_id": "p"}),
    ));
    let db_id = db["id"].as_str().unwrap().to_string();
    let url = settle(&t.access, &db_id)["complete"]["access_configuration"]["DATABASE_URL"].clone();
    // Refused by the backend: the call says why, and the resource keeps what works.
    let refused = update(&db_id, json!({"fail": "too_big"}));
    assert_error(&refused, 502, "backend_error");
    assert!(refused.text().contains("too_big"), "{}", refused.text());
    let kept = settle(&t.access, &db_id);
    assert_eq!(
        kept["status"], "complete",
        "a failed update keeps what works: {kept}"
    );
    assert_eq!(
        kept["complete"]["access_configuration"]["DATABASE_URL"],
        url
    );
    // Accepted: applied (the backend got action "update" with the new configuration).
    let applied = ok(&update(&db_id, json!({"ask": "region"})));
    assert_eq!(applied["status"], "complete", "{applied}");
    let calls: Vec<Value> = with_worker(|w| w.stand_in.operator_calls())
        .into_iter()
        .filter(|c| c["resource_id"] == db_id.as_str() && c["action"] == "update")
        .map(|c| c["configuration"].clone())
        .collect();
    assert_eq!(
        calls,
        vec![json!({"fail": "too_big"}), json!({"ask": "region"})]
    );
    // A domain's query is what was bought.
    let quoted = ok(&create(
        &t.access,
        json!({"service_id": "domain", "project_id": unique("p"), "configuration": {"domain_query": unique("cfg")},
               "payment_credentials": pay(&spt(10_000))}),
    ));
    assert_error(
        &update(
            quoted["id"].as_str().unwrap(),
            json!({"domain_query": "other"}),
        ),
        400,
        "configuration_not_updatable",
    );
}
