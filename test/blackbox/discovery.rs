//! Signed discovery (docs/PROTOCOL.md §2), routing errors and the request envelope.

use app_client::{Call, Signing};
use domain::catalog::{Catalog, DEFAULT_CATALOG};
use libtest_mimic::Trial;
use serde_json::json;

use crate::common::{assert_plain_error, case, provider, with_worker};

pub fn trials() -> Vec<Trial> {
    vec![
        case(
            "discovery::health_answers_signed_calls",
            health_answers_signed_calls,
        ),
        case(
            "discovery::services_serves_the_catalog",
            services_serves_the_catalog,
        ),
        case(
            "discovery::allowed_updates_are_objects_with_a_direction",
            allowed_updates_are_objects_with_a_direction,
        ),
        case(
            "discovery::api_version_missing_or_unsupported",
            api_version_missing_or_unsupported,
        ),
        case(
            "discovery::signature_is_checked_before_version",
            signature_is_checked_before_version,
        ),
        case(
            "discovery::unknown_paths_are_json_404",
            unknown_paths_are_json_404,
        ),
        case(
            "discovery::wrong_methods_are_405_with_allow",
            wrong_methods_are_405_with_allow,
        ),
        case(
            "discovery::oversized_bodies_are_413",
            oversized_bodies_are_413,
        ),
        case(
            "discovery::logs_are_json_lines_without_secrets",
            logs_are_json_lines_without_secrets,
        ),
        case(
            "discovery::openapi_document_is_served",
            openapi_document_is_served,
        ),
    ]
}

/// `GET /openapi.json` serves the repository's document (compacted at build time, same JSON).
fn openapi_document_is_served() {
    let reply = provider()
        .send(
            Call::get("/openapi.json")
                .signing(Signing::Unsigned)
                .api_version(None),
        )
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let repo: serde_json::Value = serde_json::from_str(domain::openapi::OPENAPI).unwrap();
    assert_eq!(reply.json(), repo);
    assert!(reply.text().len() < domain::openapi::OPENAPI.len());
}

fn health_answers_signed_calls() {
    let reply = provider().send(Call::get("/provisioning/health")).unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({"status": "ok", "supported_versions": ["0.1d"],
               "deep_link_purposes": ["dashboard", "billing"]})
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let id = reply.request_id().expect("request-id header");
    assert!(id.starts_with("req_") && id.len() > 10, "{id}");
}

/// `allowed_updates` come as `{"service", "direction"}`, the form the real orchestrator
/// normalises to, whatever form catalog.json wrote (it writes plain ids; plan prices give the
/// direction: free -> paid ($20) -> team ($50)).
fn allowed_updates_are_objects_with_a_direction() {
    let reply = provider()
        .send(Call::get("/provisioning/services"))
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    let updates = |id: &str| {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("{id} missing"))["allowed_updates"]
            .clone()
    };
    assert_eq!(
        updates("free"),
        json!([{"service": "paid", "direction": "up"}])
    );
    assert_eq!(
        updates("paid"),
        json!([{"service": "free", "direction": "down"}, {"service": "team", "direction": "up"}])
    );
    assert_eq!(
        updates("team"),
        json!([{"service": "free", "direction": "down"}, {"service": "paid", "direction": "down"}])
    );
    assert_eq!(updates("api_token"), json!([]));
    for s in body["data"].as_array().unwrap() {
        for u in s["allowed_updates"].as_array().unwrap() {
            assert!(u["service"].is_string(), "{u}");
            assert!(
                matches!(u["direction"].as_str(), Some("up" | "down" | "any")),
                "{u}"
            );
            assert_eq!(u.as_object().map(|o| o.len()), Some(2), "{u}");
        }
    }
}

fn services_serves_the_catalog() {
    let reply = provider()
        .send(Call::get("/provisioning/services"))
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    // Exactly the configured catalog (the default one plus the test services, through the
    // CATALOG var), minus our `provider` blocks.
    let configured = with_worker(|w| app_tests::test_catalog(&w.stand_in.base_url));
    let catalog = Catalog::parse(&configured).unwrap();
    assert_eq!(body, catalog.discovery());
    let services = body["data"].as_array().unwrap();
    let ids: Vec<&str> = services.iter().filter_map(|s| s["id"].as_str()).collect();
    let defaults: Vec<String> = Catalog::parse(DEFAULT_CATALOG)
        .unwrap()
        .services()
        .iter()
        .map(|s| s.id.clone())
        .collect();
    assert_eq!(defaults, ["free", "paid", "api_token", "domain"]);
    assert_eq!(&ids[..4], ["free", "paid", "api_token", "domain"]);
    for s in services {
        assert!(s.get("provider").is_none(), "internal block leaked: {s}");
        assert!(
            matches!(s["kind"].as_str(), Some("plan" | "deployable")),
            "{s}"
        );
        // `{}`: the service takes no configuration.
        assert!(
            s["configuration_schema"]["type"] == "object" || s["configuration_schema"] == json!({}),
            "{s}"
        );
        assert!(
            s["allowed_updates"].is_array() && s["categories"].is_array(),
            "{s}"
        );
    }
    let paid = &services[1];
    assert_eq!(paid["pricing"]["type"], "paid");
    assert_eq!(paid["pricing"]["paid"]["type"], "freeform");
    assert!(paid["pricing"]["paid"]["freeform"]
        .as_str()
        .unwrap()
        .contains('$'));
    let domain = &services[3];
    assert_eq!(domain["kind"], "deployable");
    assert_eq!(
        domain["configuration_schema"]["required"],
        json!(["domain_query"])
    );
    let token = &services[2];
    assert_eq!(token["pricing"]["type"], "component");
    assert_eq!(
        token["pricing"]["component"]["options"][0]["parent_service_ids"],
        json!(["free", "paid"])
    );
}

fn api_version_missing_or_unsupported() {
    let p = provider();
    for path in ["/provisioning/health", "/provisioning/services"] {
        let reply = p.send(Call::get(path).api_version(None)).unwrap();
        assert_plain_error(&reply, 400, "invalid_api_version");
        for bad in ["0.1c", "0.2", "", "0.1d,0.1c"] {
            let reply = p.send(Call::get(path).api_version(Some(bad))).unwrap();
            assert_plain_error(&reply, 400, "invalid_api_version");
        }
    }
    let reply = p
        .send(Call::get("/provisioning/health").api_version(Some("9.9")))
        .unwrap();
    assert!(reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("0.1d"));
}

fn signature_is_checked_before_version() {
    let reply = provider()
        .send(
            Call::get("/provisioning/health")
                .api_version(None)
                .signing(Signing::Unsigned),
        )
        .unwrap();
    assert_plain_error(&reply, 401, "invalid_signature");
}

fn unknown_paths_are_json_404() {
    let p = provider();
    for path in [
        "/",
        "/provisioning",
        "/provisioning/healthz",
        "/provisioning/health/",
        "/x?y=1",
    ] {
        let reply = p.send(Call::get(path)).unwrap();
        assert_plain_error(&reply, 404, "not_found");
        assert!(reply.request_id().is_some());
    }
    // Unsigned requests to unknown paths also get a 404, not a 401: routing comes first.
    let reply = p
        .send(Call::get("/nope").signing(Signing::Unsigned))
        .unwrap();
    assert_plain_error(&reply, 404, "not_found");
}

fn wrong_methods_are_405_with_allow() {
    let p = provider();
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        for path in ["/provisioning/health", "/provisioning/services"] {
            let reply = p.send(Call::new(method, path)).unwrap();
            assert_plain_error(&reply, 405, "method_not_allowed");
            assert_eq!(reply.header("allow"), Some("GET"), "{method} {path}");
        }
    }
}

fn oversized_bodies_are_413() {
    let p = provider();
    let big = vec![b'x'; 64 * 1024 + 1];
    // Refused from Content-Length, before the signature is even looked at.
    let reply = p
        .send(
            Call::get("/provisioning/health")
                .raw_body(big.clone(), "application/json")
                .signing(Signing::Unsigned),
        )
        .unwrap();
    assert_plain_error(&reply, 413, "payload_too_large");
    assert!(reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("65536"));
    // Exactly at the limit is read (and then fails the signature, since the body is signed).
    let at_limit = vec![b'x'; 64 * 1024];
    let reply = p
        .send(
            Call::get("/provisioning/health")
                .raw_body(at_limit, "application/json")
                .signing(Signing::Unsigned),
        )
        .unwrap();
    assert_plain_error(&reply, 401, "invalid_signature");
}

fn logs_are_json_lines_without_secrets() {
    let p = provider();
    let ok = p.send(Call::get("/provisioning/services")).unwrap();
    let body = b"";
    let signature = p.sign(app_client::unix_now(), body);
    let bad = p
        .send(Call::get("/provisioning/health").api_version(Some("0.0")))
        .unwrap();
    let ok_id = ok.request_id().unwrap().to_string();
    let bad_id = bad.request_id().unwrap().to_string();
    // Lines are written asynchronously by wrangler; give them a moment.
    let mut log = String::new();
    for _ in 0..40 {
        log = with_worker(|w| w.log());
        if log.contains(&ok_id) && log.contains(&bad_id) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let line_for = |id: &str| -> serde_json::Value {
        let line = log
            .lines()
            .find(|l| l.contains(id) && l.trim_start().starts_with('{'))
            .unwrap_or_else(|| panic!("no JSON log line for {id} in:\n{log}"));
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    };
    let ok_line = line_for(&ok_id);
    assert_eq!(ok_line["method"], "GET");
    assert_eq!(ok_line["path"], "/provisioning/services");
    assert_eq!(ok_line["status"], 200);
    assert!(ok_line["duration_ms"].is_u64(), "{ok_line}");
    let bad_line = line_for(&bad_id);
    assert_eq!(bad_line["status"], 400);
    assert_eq!(bad_line["error"], "invalid_api_version");
    // No secret and no signature ever reaches the log.
    for secret in [
        app_tests::ORCHESTRATOR_SECRET,
        app_tests::ORCHESTRATOR_SECRET_OLD,
    ] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
    let v1 = signature.split("v1=").nth(1).unwrap();
    assert!(!log.contains(&v1[..16]), "a signature reached the log");
}
