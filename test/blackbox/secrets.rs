//! Secrets (issue 18, items 9 and 10), each on its own `wrangler dev`: API tokens sealed under
//! `TOKEN_ENCRYPTION_KEYS` survive a key rotation and are refused, not weakened, without a key;
//! a deployment outside development refuses to serve with development settings.

use std::sync::Arc;

use app_client::{Call, Provider, Reply, Signing};
use app_tests::{flows, DevWorker, Options, OPERATOR_SECRET, TOKEN_KEY, TOKEN_KEY_2};
use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::common::*;

pub fn trials() -> Vec<Trial> {
    vec![
        case(
            "secrets::production_refuses_development_settings",
            production_refuses_development_settings,
        ),
        case(
            "secrets::a_production_configuration_serves",
            a_production_configuration_serves,
        ),
        case(
            "secrets::api_tokens_survive_a_key_rotation_and_need_a_key_to_mint",
            api_tokens_survive_a_key_rotation_and_need_a_key_to_mint,
        ),
    ]
}

/// The value `.dev.vars.example` publishes for `name`.
fn published(name: &str) -> String {
    Options::dev_vars()
        .vars
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("{name} is not in .dev.vars.example"))
}

fn health(p: &Provider, signing: Signing) -> Reply {
    p.send(Call::get("/provisioning/health").signing(signing))
        .unwrap()
}

fn production_refuses_development_settings() {
    // Production, signed with the published orchestrator secret; the harness points Stripe and
    // the registrar at its http:// stand-in, and PUBLIC_BASE_URL is not set.
    let secret = published("ORCHESTRATOR_SECRETS");
    let options = Options::default()
        .set("ENVIRONMENT", "production")
        .set("ORCHESTRATOR_SECRETS", &secret);
    let worker = DevWorker::start(options);
    let p = Provider::new(&worker.base_url, &secret);

    // Health names every setting and its fix, signed or not (nothing is authenticated first).
    for signing in [Signing::Unsigned, Signing::Now] {
        let reply = health(&p, signing);
        assert_plain_error(&reply, 503, "misconfigured");
        let message = reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_string();
        for setting in [
            "ORCHESTRATOR_SECRETS: has a value published in .dev.vars.example",
            "STRIPE_API_BASE: is http://",
            "REGISTRAR_API_BASE: is http://",
            "PUBLIC_BASE_URL: is not set",
        ] {
            assert!(message.contains(setting), "{setting} not in {message}");
        }
        assert!(!message.contains(&secret), "never the value: {message}");
    }
    // Every other route: 503 temporarily_unavailable, in its own envelope.
    assert_plain_error(
        &p.send(Call::get("/provisioning/services")).unwrap(),
        503,
        "temporarily_unavailable",
    );
    let reply = p
        .account_request(&flows::account_request(&unique("acctreq_"), &email()))
        .unwrap();
    assert_error(&reply, 503, "temporarily_unavailable");
    assert_eq!(reply.json()["type"], "error", "{}", reply.text());
    let reply = p
        .send(Call::post_form("/oauth/token", &[("grant_type", "refresh_token")]).api_version(None))
        .unwrap();
    assert_error(&reply, 503, "temporarily_unavailable");
    assert!(reply.json()["error_description"].is_string());
    assert_error(
        &p.send(Call::get("/provisioning/resources/res_x").bearer("pvat_x"))
            .unwrap(),
        503,
        "temporarily_unavailable",
    );
    assert_error(
        &p.send(
            Call::get("/v1/accounts")
                .api_version(None)
                .signing(Signing::Unsigned)
                .bearer(OPERATOR_SECRET),
        )
        .unwrap(),
        503,
        "temporarily_unavailable",
    );
    // The log says what to fix, once for the isolate rather than once per request (wrangler
    // writes the worker's console output with a delay: wait for the request lines).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut log = worker.log();
    while log.matches("\"msg\":\"request\"").count() < 7 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
        log = worker.log();
    }
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"msg\":\"misconfigured\""))
        .collect();
    assert!(!lines.is_empty(), "no log line; log:\n{log}");
    assert!(lines.len() < 4, "logged per request: {lines:?}");
    assert!(
        lines[0].contains("ORCHESTRATOR_SECRETS") && lines[0].contains("PUBLIC_BASE_URL"),
        "{}",
        lines[0]
    );
}

fn a_production_configuration_serves() {
    // The same harness, production, with fresh secrets (the harness's own), https:// bases
    // (never called here) and a public origin.
    let options = Options::default()
        .set("ENVIRONMENT", "production")
        .set("STRIPE_API_BASE", "https://api.stripe.com")
        .set("REGISTRAR_API_BASE", "https://registrar.invalid/v1")
        .set("PUBLIC_BASE_URL", "https://provider.test")
        .set("STRIPE_SECRET_KEY", "sk_test_not_the_published_one")
        .set("REGISTRAR_API_KEY", "rk_not_the_published_one")
        .set(
            "OPERATOR_BACKEND_SECRET",
            "op_backend_not_the_published_one",
        );
    let worker = DevWorker::start(options);
    let p = worker.provider();
    assert_plain_error(&health(&p, Signing::Unsigned), 401, "invalid_signature");
    let reply = health(&p, Signing::Now);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["status"], "ok");
    let t = flows::new_account(&p, &unique("acctreq_prod_"), &email()).unwrap();
    flows::create_complete(
        &p,
        &t.access,
        &json!({"service_id": "free", "project_id": "p"}),
    )
    .unwrap();
    flows::create_complete(
        &p,
        &t.access,
        &json!({"service_id": "api_token", "project_id": "p"}),
    )
    .unwrap();
    assert!(
        !worker.log().contains("\"msg\":\"misconfigured\""),
        "{}",
        worker.log_tail(40)
    );
}

fn introspect(p: &Provider, token: &str) -> Value {
    p.send(
        Call::post_form("/oauth/introspect", &[("token", token)])
            .api_version(None)
            .signing(Signing::Unsigned)
            .bearer(OPERATOR_SECRET),
    )
    .unwrap()
    .json()
}

fn api_token_of(reply: &Reply) -> String {
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["complete"]["access_configuration"]["API_TOKEN"]
        .as_str()
        .unwrap_or_else(|| panic!("no API_TOKEN: {}", reply.text()))
        .to_string()
}

fn api_tokens_survive_a_key_rotation_and_need_a_key_to_mint() {
    let run = std::env::temp_dir().join(unique("app-secrets-"));
    let persist = run.join("state");
    std::fs::create_dir_all(&persist).unwrap();
    let stand_in = Arc::new(app_tests::stand_in::StandIn::start(
        app_tests::stand_in::Config {
            webhook_secret: app_tests::WEBHOOK_SECRET.to_string(),
            ..Default::default()
        },
    ));
    let options = |keys: Option<&str>| {
        let o = Options {
            persist_to: Some(persist.clone()),
            stand_in: Some(stand_in.clone()),
            ..Options::default()
        };
        match keys {
            Some(k) => o.set("TOKEN_ENCRYPTION_KEYS", k),
            None => o.unset("TOKEN_ENCRYPTION_KEYS"),
        }
    };
    let body = json!({"service_id": "api_token", "project_id": "p", "configuration": {"scopes": ["logs:read"]}});

    // Sealed under t1.
    let first = DevWorker::start(options(Some(TOKEN_KEY)));
    let p = first.provider();
    let t = flows::new_account(&p, &unique("acctreq_keys_"), &email()).unwrap();
    flows::create_complete(
        &p,
        &t.access,
        &json!({"service_id": "free", "project_id": "p"}),
    )
    .unwrap();
    let created = p.create_resource(&t.access, &body).unwrap();
    let token = api_token_of(&created);
    let id = created.json()["id"].as_str().unwrap().to_string();
    drop(first);

    // t2 in front, t1 kept, and DERIVATION_KEY changed too (it once derived API tokens, so
    // changing it silently changed every shown token): the same token is shown and verifies;
    // rotation mints a new one.
    let second = DevWorker::start(
        options(Some(&format!("{TOKEN_KEY_2},{TOKEN_KEY}")))
            .set("DERIVATION_KEY", "test_code_derivation_key_rotated_0000"),
    );
    let p = second.provider();
    assert_eq!(
        api_token_of(&p.get_resource(&t.access, &id).unwrap()),
        token
    );
    assert_eq!(
        api_token_of(&p.create_resource(&t.access, &body).unwrap()),
        token,
        "an idempotent replay shows the same token"
    );
    assert_eq!(introspect(&p, &token)["active"], true);
    let rotated = api_token_of(&p.rotate_credentials(&t.access, &id).unwrap());
    assert_ne!(rotated, token);
    assert_eq!(introspect(&p, &token)["active"], false);
    assert_eq!(
        api_token_of(&p.get_resource(&t.access, &id).unwrap()),
        rotated
    );
    drop(second);

    // No key at all: nothing is minted or shown, but verification (hashes only) goes on and
    // what needs no secret still works.
    let third = DevWorker::start(options(None));
    let p = third.provider();
    assert_error(
        &p.get_resource(&t.access, &id).unwrap(),
        503,
        "temporarily_unavailable",
    );
    let refused = p
        .create_resource(
            &t.access,
            &json!({"service_id": "api_token", "project_id": "other"}),
        )
        .unwrap();
    assert_error(&refused, 503, "temporarily_unavailable");
    assert!(
        refused.text().contains("API token encryption"),
        "{}",
        refused.text()
    );
    assert_eq!(introspect(&p, &rotated)["active"], true);
    let view = p
        .send(
            Call::get(&format!("/v1/accounts/{}", t.account))
                .api_version(None)
                .signing(Signing::Unsigned)
                .bearer(OPERATOR_SECRET),
        )
        .unwrap()
        .json();
    let tokens = view["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["service_id"] == "api_token")
        .count();
    assert_eq!(tokens, 1, "the refused create left nothing: {view}");
    // wrangler writes the worker's console output with a delay: wait for the line.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut log = third.log();
    while !log.contains("TOKEN_ENCRYPTION_KEYS is not set") && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(200));
        log = third.log();
    }
    assert!(
        log.contains("TOKEN_ENCRYPTION_KEYS is not set"),
        "no log line saying what to fix; log:\n{log}"
    );
    drop(third);
    let _ = std::fs::remove_dir_all(&run);
}
