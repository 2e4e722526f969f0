//! The document against the route table: every route documented once, with its parameters,
//! tags, security, versioning and bodies following the endpoint's family.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::OPENAPI;
use crate::routes::{Endpoint, Family, Param, Route, TABLE};

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
const TAGS: &[&str] = &[
    "provisioning",
    "oauth",
    "resources",
    "pages",
    "webhooks",
    "operator",
    "development",
];

pub(super) fn doc() -> Value {
    serde_json::from_str(OPENAPI).expect("docs/openapi.json is valid JSON")
}

/// A local reference (`#/components/...`) to the value it names.
fn target<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// Follows `$ref` until a value that is not a reference.
fn resolve<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
    for _ in 0..16 {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => v = target(doc, r).unwrap_or_else(|| panic!("{r} does not resolve")),
            None => return v,
        }
    }
    panic!("a $ref chain is too long (a cycle?)")
}

/// Every reference in `v`: `$ref` values and discriminator mappings.
fn references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("$ref", Value::String(s)) => out.push(s.clone()),
                    ("discriminator", d) => out.extend(
                        d["mapping"]
                            .as_object()
                            .into_iter()
                            .flat_map(|m| m.values())
                            .filter_map(Value::as_str)
                            .map(str::to_string),
                    ),
                    _ => {}
                }
                references(x, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|x| references(x, out)),
        _ => {}
    }
}

/// `(method, path template) -> operation` for every operation of the document.
fn operations(doc: &Value) -> BTreeMap<(String, String), &Value> {
    let mut ops = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths is an object") {
        for (key, op) in item.as_object().expect("a path item is an object") {
            if METHODS.contains(&key.as_str()) {
                ops.insert((key.clone(), path.clone()), op);
            }
        }
    }
    ops
}

/// A path that fits the entry's template, for building its [`Route`].
pub(super) fn sample(e: &Endpoint) -> Route {
    let param = match e.param {
        Some(Param::ResourceId) => "res_1",
        Some(Param::AccountId) => "acct_aaaaaaaaaaaaaaaa",
        None => "",
    };
    (e.build)(param.to_string())
}

fn key(e: &Endpoint) -> (String, String) {
    (e.method.to_ascii_lowercase(), e.path.to_string())
}

/// The operation of a route table entry.
pub(super) fn operation_of<'a>(doc: &'a Value, e: &Endpoint) -> &'a Value {
    doc["paths"][e.path]
        .get(e.method.to_ascii_lowercase())
        .unwrap_or_else(|| panic!("{} {} is not documented", e.method, e.path))
}

#[test]
fn the_document_is_openapi_3_1() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "APP provider");
    assert_eq!(doc["info"]["version"], crate::protocol::API_VERSION);
    assert_eq!(doc["servers"][0]["url"], "http://127.0.0.1:8787");
    let schemes = &doc["components"]["securitySchemes"];
    for (name, kind) in [
        ("orchestratorSignature", "apiKey"),
        ("accessToken", "http"),
        ("operatorSecret", "http"),
        ("stripeWebhookSignature", "apiKey"),
    ] {
        assert_eq!(schemes[name]["type"], kind, "{name}");
    }
    assert_eq!(schemes["orchestratorSignature"]["name"], "Stripe-Signature");
    assert_eq!(
        schemes["stripeWebhookSignature"]["name"],
        "Stripe-Signature"
    );
    let version = &doc["components"]["parameters"]["API-Version"];
    assert_eq!(version["in"], "header");
    assert_eq!(version["required"], true);
    assert_eq!(
        version["schema"]["enum"],
        json!(crate::protocol::SUPPORTED_VERSIONS)
    );
    assert!(
        OPENAPI.starts_with("{\n  \"openapi\""),
        "keep the file pretty-printed with a 2-space indent"
    );
}

#[test]
fn every_reference_resolves_inside_the_document() {
    let doc = doc();
    let mut refs = Vec::new();
    references(&doc, &mut refs);
    assert!(refs.len() > 100, "the document uses $ref generously");
    for r in &refs {
        assert!(r.starts_with("#/"), "{r} is not a local reference");
        assert!(target(&doc, r).is_some(), "{r} does not resolve");
    }
}

#[test]
fn the_document_describes_exactly_the_route_table() {
    let doc = doc();
    let documented: BTreeSet<(String, String)> = operations(&doc).into_keys().collect();
    let routed: BTreeSet<(String, String)> = TABLE.iter().map(key).collect();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from docs/openapi.json: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "operations of docs/openapi.json that no route serves: {unrouted:?}"
    );
    assert_eq!(TABLE.len(), documented.len(), "a route is listed twice");
    // A path's other methods answer 405 with `Allow`: `x-allow` says which.
    for e in TABLE {
        assert_eq!(doc["paths"][e.path]["x-allow"], e.allow, "{}", e.path);
    }
}

#[test]
fn path_parameters_match_the_route_table() {
    let doc = doc();
    for e in TABLE {
        let item = &doc["paths"][e.path];
        let params: Vec<&Value> = item["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(
                operation_of(&doc, e)["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten(),
            )
            .map(|p| resolve(&doc, p))
            .filter(|p| p["in"] == "path")
            .collect();
        match e.param {
            None => assert!(params.is_empty(), "{} has no path parameter", e.path),
            Some(kind) => {
                assert_eq!(params.len(), 1, "{}", e.path);
                assert_eq!(params[0]["name"], "id");
                assert_eq!(params[0]["required"], true);
                let example = match kind {
                    Param::ResourceId => "^[A-Za-z0-9_-]{1,64}$",
                    Param::AccountId => "^acct_[a-z2-7]{16}$",
                };
                assert_eq!(params[0]["schema"]["pattern"], example, "{}", e.path);
            }
        }
    }
}

#[test]
fn operations_are_named_tagged_and_answer_2xx_and_4xx_with_request_id() {
    let doc = doc();
    let mut ids = BTreeSet::new();
    for ((method, path), op) in operations(&doc) {
        let what = format!("{method} {path}");
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: operationId"));
        assert!(
            !id.is_empty()
                && id
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
                && !id.starts_with('_'),
            "{what}: operationId {id:?} is not snake_case"
        );
        assert!(
            ids.insert(id.to_string()),
            "{what}: operationId {id} is not unique"
        );
        assert!(
            op["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{what}: summary"
        );
        assert!(
            op["description"].as_str().is_some_and(|s| !s.is_empty()),
            "{what}: description"
        );
        let tags = op["tags"]
            .as_array()
            .unwrap_or_else(|| panic!("{what}: tags"));
        assert!(!tags.is_empty(), "{what}: tags");
        for t in tags {
            assert!(
                t.as_str().is_some_and(|t| TAGS.contains(&t)),
                "{what}: unknown tag {t}"
            );
        }
        assert!(op["security"].is_array(), "{what}: security");
        let responses = op["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{what}: responses"));
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{what}: no 2xx response"
        );
        assert!(
            responses.keys().any(|s| s.starts_with('4')),
            "{what}: no 4xx response"
        );
        for (status, response) in responses {
            assert!(
                status.len() == 3 && status.bytes().all(|c| c.is_ascii_digit()),
                "{what}: response key {status:?}"
            );
            let response = resolve(&doc, response);
            assert!(
                response["description"].is_string(),
                "{what} {status}: description"
            );
            let header = response["headers"]
                .get("Request-Id")
                .unwrap_or_else(|| panic!("{what} {status}: no Request-Id header"));
            let header = resolve(&doc, header);
            assert_eq!(header["required"], true, "{what} {status}: Request-Id");
            assert!(header["schema"].is_object(), "{what} {status}: Request-Id");
        }
    }
}

#[test]
fn operation_ids_are_the_route_names_of_the_logs() {
    let doc = doc();
    for e in TABLE {
        assert_eq!(
            operation_of(&doc, e)["operationId"],
            sample(e).name(),
            "{} {}",
            e.method,
            e.path
        );
    }
}

#[test]
fn security_version_and_bodies_follow_the_endpoint_family() {
    let doc = doc();
    let sig = json!([{"orchestratorSignature": []}]);
    let operator = json!([{"operatorSecret": []}]);
    for e in TABLE {
        let what = format!("{} {}", e.method, e.path);
        let op = operation_of(&doc, e);
        let family = sample(e).family();
        let expected = match family {
            Family::Provisioning => sig.clone(),
            Family::Resource => json!([{"orchestratorSignature": [], "accessToken": []}]),
            Family::OAuth => json!([{"orchestratorSignature": []}, {}]),
            Family::Operator | Family::OperatorApi => operator.clone(),
            Family::Webhook => json!([{"stripeWebhookSignature": []}]),
            Family::Public => json!([]),
        };
        assert_eq!(op["security"], expected, "{what}");

        let versioned = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["$ref"] == "#/components/parameters/API-Version");
        assert_eq!(
            versioned,
            matches!(family, Family::Provisioning | Family::Resource),
            "{what}: API-Version"
        );
        assert_eq!(versioned, e.path.starts_with("/provisioning/"), "{what}");

        let body = op.get("requestBody").map(|b| resolve(&doc, b));
        if e.method == "GET" {
            assert!(body.is_none(), "{what}: a GET has no body");
            continue;
        }
        let types: Vec<&String> = body
            .and_then(|b| b["content"].as_object())
            .unwrap_or_else(|| panic!("{what}: requestBody"))
            .keys()
            .collect();
        let expected = match family {
            Family::OAuth | Family::Operator | Family::Public => {
                "application/x-www-form-urlencoded"
            }
            _ => "application/json",
        };
        assert_eq!(types, [expected], "{what}: request content type");
    }
}

#[test]
fn extensions_are_marked_and_say_so() {
    let doc = doc();
    let mut marked = 0;
    for e in TABLE {
        let op = operation_of(&doc, e);
        let extension = op.get("x-extension") == Some(&Value::Bool(true));
        if extension {
            marked += 1;
            assert!(
                op["description"]
                    .as_str()
                    .is_some_and(|d| d.contains("Extension") || d.contains("extension")),
                "{} {}: an extension says so in its description",
                e.method,
                e.path
            );
        }
        if matches!(
            sample(e),
            Route::OperatorAccounts
                | Route::OperatorAccount(_)
                | Route::OperatorAudit(_)
                | Route::OperatorAuditExport(_)
                | Route::OperatorAuditVerify(_)
                | Route::OperatorAction(..)
                | Route::DevFaults
                | Route::ResourceConfirm(_)
                | Route::OAuthIntrospect
                | Route::OAuthRevoke
                | Route::OAuthMetadata
        ) {
            assert!(extension, "{} {} is an extension", e.method, e.path);
        }
    }
    assert!(marked > 0);
}
