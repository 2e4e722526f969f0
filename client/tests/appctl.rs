//! End-to-end tests of the `appctl` binary against a fake provider started in-process
//! (see `support/`), which checks every call's signature.

mod support;

use serde_json::{json, Value};
use support::{browse, finish, free_port, Sandbox};

const NEW: &str = "Dev@Example.com";

/// True when one line of `text` holds every part, in order, separated by spaces only.
fn has_line(text: &str, parts: &[&str]) -> bool {
    text.lines().any(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        let wanted: Vec<&str> = parts.iter().flat_map(|p| p.split_whitespace()).collect();
        words.windows(wanted.len()).any(|w| w == wanted.as_slice())
    })
}

#[track_caller]
fn all_signed(s: &Sandbox) {
    let world = s.fake.world();
    for seen in world
        .seen
        .iter()
        .filter(|c| !c.path.starts_with("/_stand_in/"))
    {
        assert!(
            seen.signature_ok,
            "unsigned or badly signed: {} {}",
            seen.method, seen.path
        );
    }
}

#[test]
fn health_and_catalog() {
    let s = Sandbox::new();
    let run = s.run(&["health"]).ok();
    assert!(
        run.stdout.contains(": ok (supported versions: 0.1d)"),
        "{run:#?}"
    );
    let run = s.run(&["health", "--json"]).ok();
    assert_eq!(
        run.stdout,
        "{\"status\":\"ok\",\"supported_versions\":[\"0.1d\"]}\n"
    );

    let run = s.run(&["catalog"]).ok();
    for needle in [
        "free       plan        free",
        "paid       plan        $20/month, billed monthly in advance",
        "api_token  deployable  free with free/paid",
        "configuration: label (string), scopes (array of deploy:write|logs:read|projects:read)",
        "domain     deployable  $12 per name per year",
        "configuration: domain_query* (string)",
    ] {
        assert!(run.stdout.contains(needle), "{needle}\n{}", run.stdout);
    }
    let run = s.run(&["--json", "catalog"]).ok();
    assert_eq!(run.json(), support::catalog());

    let world = s.fake.world();
    assert!(world
        .seen
        .iter()
        .all(|c| c.header("api-version") == Some("0.1d")));
    drop(world);
    all_signed(&s);
    // Nothing needed a state file.
    assert!(!s.state_path().exists());
}

#[test]
fn catalog_validate_checks_a_file_with_the_builds_validator() {
    let s = Sandbox::new();
    let good = s.dir.join("good.json");
    std::fs::write(&good, domain::catalog::DEFAULT_CATALOG).unwrap();
    let run = s.run(&["catalog", "validate", "good.json"]).ok();
    assert!(
        run.stdout
            .starts_with("ok: good.json: 4 services (free, paid, api_token, domain)"),
        "{run:#?}"
    );
    let run = s.run(&["--json", "catalog", "validate", "good.json"]).ok();
    assert_eq!(
        run.json(),
        json!({"ok": true, "file": "good.json", "services": ["free", "paid", "api_token", "domain"]})
    );

    let mut bad: Value = serde_json::from_str(domain::catalog::DEFAULT_CATALOG).unwrap();
    bad["services"][2]["constraints"] = json!([{"type": "count", "count": {"at_most": 0}}]);
    std::fs::write(s.dir.join("bad.json"), bad.to_string()).unwrap();
    let run = s.run(&["catalog", "validate", "bad.json"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stdout.is_empty(), "{run:#?}");
    assert_eq!(
        run.stderr,
        "error: bad.json: catalog entry services[2] (\"api_token\"): constraints (count): count.at_most must be an integer from 1 to 10000\n"
    );
    let run = s.run(&["--json", "catalog", "validate", "bad.json"]);
    assert_eq!(run.code, 1);
    assert_eq!(run.json()["error"]["code"], "invalid_catalog");

    let run = s.run(&["catalog", "validate", "missing.json"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .starts_with("error: missing.json: cannot read it"),
        "{run:#?}"
    );
    let run = s.run(&["catalog", "check", "good.json"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("usage: appctl catalog [validate <file>]"),
        "{run:#?}"
    );
    // Nothing was called.
    assert!(s.fake.world().seen.is_empty());
}

#[test]
fn a_wrong_secret_prints_the_error_and_request_id() {
    let s = Sandbox::new();
    let run = s.run(&["health", "--secret", "whsec_wrong"]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.stderr.starts_with(
            "error: invalid_signature: the signature does not match\nrequest id: req_fake_1\nhint: "
        ),
        "{run:#?}"
    );
    assert!(run.stdout.is_empty());

    let run = s.run(&["--json", "health", "--secret=whsec_wrong"]);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.json(),
        json!({"error": {"code": "invalid_signature", "message": "the signature does not match", "status": 401},
               "request_id": "req_fake_2"})
    );
    // The environment variable is used too.
    let mut s = s;
    s.env
        .push(("APP_ORCHESTRATOR_SECRET".into(), "whsec_wrong".into()));
    assert_eq!(s.run(&["health"]).code, 2);
}

#[test]
fn transport_errors_exit_1() {
    let s = Sandbox::new();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let run = s.run(&["health", "--url", &url]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr.starts_with("error: cannot reach the provider: "),
        "{run:#?}"
    );
    let run = s.run(&["health", "--url", &url, "--json"]);
    assert_eq!(run.json()["error"]["code"], "transport_error");
}

#[test]
fn account_request_then_token_then_refresh() {
    let s = Sandbox::new();
    let before = app_client::unix_now();
    let run = s
        .run(&[
            "account-request",
            "--email",
            NEW,
            "--name",
            "Dev",
            "--scopes",
            "resources:read,resources:write",
        ])
        .ok();
    assert!(
        run.stdout
            .contains("new account for Dev@Example.com\ncode: code_"),
        "{run:#?}"
    );
    assert!(run.stdout.contains("next: appctl token"), "{run:#?}");

    let request = s
        .fake
        .wait_for("POST", "/provisioning/account_requests")
        .json();
    let id = request["id"].as_str().expect("id");
    assert!(
        id.starts_with("acctreq_") && id.len() == "acctreq_".len() + 24,
        "{id}"
    );
    assert_eq!(request["object"], "account_request");
    assert_eq!(request["email"], NEW);
    assert_eq!(request["name"], "Dev");
    assert_eq!(
        request["scopes"],
        json!(["resources:read", "resources:write"])
    );
    assert_eq!(
        request["orchestrator"],
        json!({"type": "stripe", "stripe": {"account": "acct_local_cli"}})
    );
    let expires = request["expires_at"]
        .as_str()
        .and_then(domain::time::parse_rfc3339)
        .expect("expires_at");
    assert!(
        (before + 600..=app_client::unix_now() + 600).contains(&expires),
        "{expires}"
    );
    assert!(request.get("code_challenge").is_none());

    // The state file is private and keeps the code.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(s.state_path())
            .expect("state")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let state = s.state();
    assert_eq!(state["provider_url"], s.fake.url.as_str());
    assert_eq!(state["account_request_id"], id);
    let code = state["last_code"].as_str().expect("code").to_string();
    assert!(run.stdout.contains(&code));

    let run = s.run(&["token"]).ok();
    assert!(
        run.stdout.starts_with("logged in: account acct_fake_1, scope resources:read resources:write; access token valid 3600 s"),
        "{run:#?}"
    );
    let exchange = s.fake.wait_for("POST", "/oauth/token");
    let form = exchange.form();
    assert_eq!(
        form.get("grant_type").map(String::as_str),
        Some("authorization_code")
    );
    assert_eq!(form.get("code"), Some(&code));
    assert!(!form.contains_key("code_verifier"));
    assert!(exchange.signature_ok);
    let state = s.state();
    assert_eq!(state["account_id"], "acct_fake_1");
    let (access, refresh) = (
        state["access_token"].clone(),
        state["refresh_token"].clone(),
    );
    assert!(access.is_string() && refresh.is_string());
    assert!(state.get("last_code").is_none(), "a code works once");
    assert!(state["token_expires_at"]
        .as_i64()
        .is_some_and(|t| t >= before + 3600));

    let run = s.run(&["refresh"]).ok();
    assert!(
        run.stdout.starts_with("refreshed: account acct_fake_1"),
        "{run:#?}"
    );
    let form = s.fake.world().calls("POST", "/oauth/token")[1].form();
    assert_eq!(
        form.get("grant_type").map(String::as_str),
        Some("refresh_token")
    );
    assert_eq!(
        form.get("refresh_token").map(String::as_str),
        refresh.as_str()
    );
    let state = s.state();
    assert_ne!(state["access_token"], access);
    assert_ne!(state["refresh_token"], refresh);

    // Nothing left to exchange.
    let run = s.run(&["token"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.starts_with("error: no code to exchange"),
        "{run:#?}"
    );
    // A code used twice is refused by the provider.
    let run = s.run(&["token", "--code", &code]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.starts_with(
            "error: invalid_grant: the authorization code is not valid\nrequest id: req_fake_"
        ),
        "{run:#?}"
    );
    all_signed(&s);
}

#[test]
fn stripe_account_from_flag_or_environment_and_json_answer() {
    let mut s = Sandbox::new();
    s.env
        .push(("APP_STRIPE_ACCOUNT".into(), "acct_from_env".into()));
    let run = s
        .run(&["account-request", "--email", "a@example.com", "--json"])
        .ok();
    let answer = run.json();
    assert_eq!(answer["type"], "oauth");
    let seen = s
        .fake
        .world()
        .calls("POST", "/provisioning/account_requests");
    assert_eq!(
        seen[0].json()["orchestrator"]["stripe"]["account"],
        "acct_from_env"
    );
    // Exactly the provider's answer.
    assert_eq!(answer["id"], seen[0].json()["id"]);
    s.run(&[
        "account-request",
        "--email",
        "b@example.com",
        "--stripe-account",
        "acct_flag",
    ])
    .ok();
    let seen = s
        .fake
        .world()
        .calls("POST", "/provisioning/account_requests");
    assert_eq!(
        seen[1].json()["orchestrator"]["stripe"]["account"],
        "acct_flag"
    );

    let run = s.run(&["account-request"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("account-request needs --email <e>\nusage: appctl account-request"),
        "{run:#?}"
    );
}

#[test]
fn pkce_sends_a_challenge_and_exchanges_with_the_verifier() {
    let s = Sandbox::new();
    let run = s.run(&["account-request", "--email", NEW, "--pkce"]).ok();
    assert!(
        run.stdout.contains("PKCE: the verifier is kept"),
        "{run:#?}"
    );
    let request = s
        .fake
        .wait_for("POST", "/provisioning/account_requests")
        .json();
    let challenge = request["code_challenge"]
        .as_str()
        .expect("challenge")
        .to_string();
    assert_eq!(request["code_challenge_method"], "S256");
    assert!(domain::pkce::valid_challenge(&challenge));
    let verifier = s.state()["pkce_verifier"]
        .as_str()
        .expect("verifier")
        .to_string();

    s.run(&["token"]).ok();
    let form = s.fake.wait_for("POST", "/oauth/token").form();
    assert_eq!(form.get("code_verifier"), Some(&verifier));
    assert!(domain::pkce::verify(&challenge, &verifier));
    assert!(s.state().get("pkce_verifier").is_none());
}

#[test]
fn wait_on_a_new_account_exchanges_the_code_at_once() {
    let s = Sandbox::new();
    let run = s
        .run(&[
            "account-request",
            "--email",
            NEW,
            "--wait",
            "--callback",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .ok();
    assert!(run.stdout.contains("code: code_"), "{run:#?}");
    assert!(
        run.stdout.contains("logged in: account acct_fake_1"),
        "{run:#?}"
    );
    assert_eq!(s.fake.world().calls("POST", "/oauth/token").len(), 1);
    assert!(s.state()["access_token"].is_string());
}

#[test]
fn requires_auth_prints_the_consent_url() {
    let s = Sandbox::new();
    s.fake
        .world()
        .existing
        .insert("owner@example.com".into(), "acct_owner".into());
    let run = s
        .run(&["account-request", "--email", "owner@example.com"])
        .ok();
    assert!(
        run.stdout.contains(
            "already has an account; its owner must approve in a browser:\n  http://127.0.0.1:"
        ),
        "{run:#?}"
    );
    assert!(
        run.stdout.contains("/oauth/authorize?consent=consent_"),
        "{run:#?}"
    );
    assert!(run.stdout.contains("appctl token --code"), "{run:#?}");
    assert!(s.state().get("last_code").is_none());
}

#[test]
fn requires_auth_wait_receives_the_redirect_and_logs_in() {
    let s = Sandbox::new();
    s.fake
        .world()
        .existing
        .insert("owner@example.com".into(), "acct_owner".into());
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let child = s.spawn(&[
        "account-request",
        "--email",
        "owner@example.com",
        "--pkce",
        "--wait",
        "--callback",
        &addr,
        "--timeout",
        "30",
    ]);
    let request = s
        .fake
        .wait_for("POST", "/provisioning/account_requests")
        .json();
    let id = request["id"].as_str().expect("id").to_string();
    // Another page's answer is ignored (its state is not ours), a favicon is not found.
    let other = browse(port, "/oauth/callback?code=evil&state=acctreq_other");
    assert!(other.starts_with("HTTP/1.1 400"), "{other}");
    assert!(browse(port, "/favicon.ico").starts_with("HTTP/1.1 404"));
    let code = s.fake.world().approve(&id);
    let page = browse(port, &format!("/oauth/callback?code={code}&state={id}"));
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        page.contains("text/html") && page.contains("close this tab"),
        "{page}"
    );

    let run = finish(child).ok();
    assert!(run.stdout.contains("/oauth/authorize?consent="), "{run:#?}");
    assert!(
        run.stdout.contains("logged in: account acct_owner"),
        "{run:#?}"
    );
    assert!(
        run.stderr.contains(&format!(
            "waiting up to 30 s for the browser on http://{addr}/oauth/callback"
        )),
        "{run:#?}"
    );
    let form = s.fake.wait_for("POST", "/oauth/token").form();
    assert_eq!(form.get("code"), Some(&code));
    assert!(
        form.contains_key("code_verifier"),
        "the consent code needs the verifier too"
    );
    assert_eq!(s.state()["account_id"], "acct_owner");
    all_signed(&s);
}

#[test]
fn requires_auth_wait_reports_a_denial() {
    let s = Sandbox::new();
    s.fake
        .world()
        .existing
        .insert("owner@example.com".into(), "acct_owner".into());
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let child = s.spawn(&[
        "account-request",
        "--email",
        "owner@example.com",
        "--wait",
        "--callback",
        &addr,
        "--timeout",
        "30",
    ]);
    let id = s
        .fake
        .wait_for("POST", "/provisioning/account_requests")
        .json()["id"]
        .as_str()
        .expect("id")
        .to_string();
    // The dev callback path of .dev.vars.example works as well.
    let page = browse(port, &format!("/callback?error=access_denied&state={id}"));
    assert!(
        page.starts_with("HTTP/1.1 200") && page.contains("Nothing was linked"),
        "{page}"
    );
    let run = finish(child);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.stderr
            .contains("error: access_denied: the owner did not approve"),
        "{run:#?}"
    );
    assert!(s.fake.world().calls("POST", "/oauth/token").is_empty());
}

#[test]
fn add_polls_while_pending() {
    let s = Sandbox::new();
    s.login(NEW);
    let run = s.run(&["add", "slow"]).ok();
    assert!(
        run.stderr
            .contains("pending: provisioning the database (polling every second, up to 60 s)"),
        "{run:#?}"
    );
    assert!(run.stdout.starts_with("resource res_"), "{run:#?}");
    assert!(
        run.stdout.contains("(slow, project proj_local): complete"),
        "{run:#?}"
    );
    assert!(
        run.stdout.contains("SLOW_URL  https://slow.example/db?x=1"),
        "{run:#?}"
    );
    let world = s.fake.world();
    let create = world.calls("POST", "/provisioning/resources");
    assert_eq!(
        create[0].json(),
        json!({"service_id": "slow", "project_id": "proj_local"})
    );
    assert!(create[0]
        .header("authorization")
        .is_some_and(|a| a.starts_with("Bearer at_")));
    let gets = world
        .seen
        .iter()
        .filter(|c| c.method == "GET" && c.path.starts_with("/provisioning/resources/"))
        .count();
    assert_eq!(gets, 2);
    drop(world);
    let state = s.state();
    assert_eq!(state["resources"][0]["service_id"], "slow");
    assert_eq!(state["resources"][0]["status"], "complete");
    all_signed(&s);

    // A timeout of 0 gives up at once.
    let run = s.run(&["add", "slow", "--project", "p2", "--timeout", "0"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr
            .contains("error: still pending after 0 s; look again with `appctl get res_"),
        "{run:#?}"
    );
}

#[test]
fn a_paid_service_needs_confirm_paid() {
    let s = Sandbox::new();
    s.login(NEW);
    // Without --confirm-paid no payment token is sent, so the provider cannot charge: the
    // paid plan is refused (requires_payment_credentials) and the CLI says how to agree.
    let run = s.run(&["add", "paid", "--payment-token", "spt_x"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr.starts_with(
            "error: paid is a paid service: $20/month, billed monthly in advance. Nothing was charged. To add it and agree to this charge, re-run with --confirm-paid"
        ),
        "{run:#?}"
    );
    let run = s.run(&["add", "paid", "--json"]);
    assert_eq!(run.json()["error"]["code"], "confirmation_required");
    let creates = s.fake.world().calls("POST", "/provisioning/resources");
    assert!(!creates.is_empty());
    assert!(
        creates
            .iter()
            .all(|c| c.json().get("payment_credentials").is_none()),
        "no payment token was ever sent without --confirm-paid"
    );

    // A plan change to paid too.
    s.run(&["add", "free"]).ok();
    let run = s.run(&["update", "free", "paid", "--payment-token", "spt_x"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr
            .contains("To move to it and agree to this charge, re-run with --confirm-paid"),
        "{run:#?}"
    );
    assert!(s
        .fake
        .world()
        .paths()
        .iter()
        .all(|p| !p.ends_with("/update_service")));

    // Confirmed, but without a payment token: the provider says what is missing.
    let run = s.run(&["add", "paid", "--project", "p2", "--confirm-paid"]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.stderr.contains("error: requires_payment_credentials: "),
        "{run:#?}"
    );
    assert!(
        run.stderr.contains("hint: pass --payment-token spt_..."),
        "{run:#?}"
    );

    let run = s
        .run(&[
            "update",
            "free",
            "paid",
            "--confirm-paid",
            "--payment-token",
            "spt_x",
        ])
        .ok();
    assert!(
        run.stdout.contains("(paid, project proj_local): complete"),
        "{run:#?}"
    );
    let plan_id = s.state()["resources"][0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let update = s.fake.wait_for(
        "POST",
        &format!("/provisioning/resources/{plan_id}/update_service"),
    );
    assert_eq!(
        update.json(),
        json!({"service_id": "paid", "payment_credentials": {"type": "stripe_payment_token", "stripe_payment_token": "spt_x"}})
    );
    // Back to free: no charge, no flag needed.
    s.run(&["update", "paid", "free"]).ok();
}

#[test]
fn test_payment_tokens_come_from_the_stand_in() {
    let mut s = Sandbox::new();
    let stand_in = s.fake.url.clone();
    s.env.push(("APP_STAND_IN_URL".into(), stand_in.clone()));
    let run = s.run(&["payment-token", "--max", "700"]).ok();
    assert!(run.stdout.starts_with("spt_test_"), "{run:#?}");
    let grant = s.fake.wait_for("POST", "/_stand_in/granted_tokens").json();
    assert_eq!(
        (grant["currency"].as_str(), grant["max_amount"].as_u64()),
        (Some("usd"), Some(700))
    );
    let expires = grant["expires_at"].as_i64().expect("expires_at");
    assert!((expires - app_client::unix_now() - 3600).abs() <= 5);

    s.login(NEW);
    let run = s
        .run(&["add", "paid", "--confirm-paid", "--test-payment"])
        .ok();
    assert!(
        run.stderr.contains("test payment token spt_test_"),
        "{run:#?}"
    );
    assert!(run.stderr.contains("(up to $50.00)"), "{run:#?}");
    let grants = s.fake.world().calls("POST", "/_stand_in/granted_tokens");
    assert_eq!(grants[1].json()["max_amount"], 5000);
    // Another currency is the one asked for, and shown as such.
    let run = s
        .run(&[
            "--json",
            "payment-token",
            "--currency",
            "EUR",
            "--max",
            "900",
        ])
        .ok();
    let out: Value = serde_json::from_str(run.stdout.trim()).expect("json");
    assert_eq!(
        (out["currency"].as_str(), out["max_amount"].as_u64()),
        (Some("eur"), Some(900))
    );
    let grants = s.fake.world().calls("POST", "/_stand_in/granted_tokens");
    assert_eq!(grants[2].json()["currency"], "eur");
    let run = s.run(&["payment-token", "--currency", "euro"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr
            .contains("--currency must be a three-letter ISO 4217 code"),
        "{run:#?}"
    );
    let create = s.fake.wait_for("POST", "/provisioning/resources").json();
    assert_eq!(
        create["payment_credentials"]["type"],
        "stripe_payment_token"
    );
    assert!(create["payment_credentials"]["stripe_payment_token"]
        .as_str()
        .is_some_and(|t| t.starts_with("spt_test_")));
}

#[test]
fn off_loopback_the_dev_secret_is_warned_about_and_test_payments_refused() {
    let s = Sandbox::new();
    // 0.0.0.0 reaches the fake but is not a loopback name.
    let port = s.fake.url.rsplit(':').next().expect("port").to_string();
    let url = format!("http://0.0.0.0:{port}");
    let run = s
        .run(&["--url", &url, "account-request", "--email", NEW])
        .ok();
    assert!(run.stderr.starts_with(&format!(
        "warning: signing with the public development secret against {url}; set --secret or APP_ORCHESTRATOR_SECRET\n"
    )), "{run:#?}");
    s.run(&["--url", &url, "token"]).ok();
    let run = s.run(&[
        "--url",
        &url,
        "add",
        "paid",
        "--confirm-paid",
        "--test-payment",
    ]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr
            .contains("--test-payment only works against a local provider"),
        "{run:#?}"
    );
    // Loopback: no warning.
    let run = s.run(&["health"]).ok();
    assert!(run.stderr.is_empty(), "{run:#?}");
}

#[test]
fn a_domain_quote_is_shown_then_confirmed_at_its_exact_price() {
    let s = Sandbox::new();
    s.login(NEW);
    s.run(&["add", "free"]).ok();
    let run = s.run(&["add", "domain", "--config", "domain_query=acme"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("domain is a paid service: $12 per name per year"),
        "{run:#?}"
    );

    let run = s
        .run(&[
            "add",
            "domain",
            "--config",
            "domain_query=acme",
            "--confirm-paid",
            "--payment-token",
            "spt_domain",
        ])
        .ok();
    assert!(
        has_line(&run.stderr, &["acme.apps.test", "$12.00", "taken"]),
        "{run:#?}"
    );
    assert!(
        has_line(&run.stderr, &["acme-app.apps.test", "$15.00", "available"]),
        "{run:#?}"
    );
    assert!(
        run.stderr.contains("buying acme-app.apps.test at $15.00"),
        "{run:#?}"
    );
    assert!(
        run.stdout
            .contains("(domain, project proj_local): complete"),
        "{run:#?}"
    );
    assert!(
        has_line(&run.stdout, &["DOMAIN", "acme-app.apps.test"]),
        "{run:#?}"
    );
    let create = s.fake.world().calls("POST", "/provisioning/resources")[1].json();
    assert_eq!(create["configuration"], json!({"domain_query": "acme"}));
    let domain_id = s.state()["resources"][1]["id"]
        .as_str()
        .expect("id")
        .to_string();
    // The purchase is the same create again, answering needs_information (protocol §8).
    let creates: Vec<Value> = s
        .fake
        .world()
        .calls("POST", "/provisioning/resources")
        .iter()
        .map(|c| c.json())
        .collect();
    let answered = creates
        .iter()
        .find(|c| c["submitted_information"].is_object())
        .unwrap_or_else(|| panic!("{creates:?}"))
        .clone();
    assert_eq!(
        answered,
        json!({"service_id": "domain", "project_id": "proj_local", "configuration": {"domain_query": "acme"},
               "submitted_information": {"domain": "acme-app.apps.test", "amount": 1500},
               "payment_credentials": {"type": "stripe_payment_token", "stripe_payment_token": "spt_domain"}})
    );
    assert!(s
        .fake
        .world()
        .calls(
            "POST",
            &format!("/provisioning/resources/{domain_id}/confirm")
        )
        .is_empty());

    // A chosen candidate, with --json: the final answer is the provider's.
    let run = s
        .run(&[
            "add",
            "domain",
            "--project",
            "p2",
            "--config",
            "domain_query=zeta",
            "--confirm-paid",
            "--payment-token",
            "spt_domain",
            "--domain",
            "getzeta.apps.test",
            "--json",
        ])
        .ok();
    let answer = run.json();
    assert_eq!(
        answer["complete"]["access_configuration"]["DOMAIN"],
        "getzeta.apps.test"
    );
    let answers: Vec<Value> = s
        .fake
        .world()
        .calls("POST", "/provisioning/resources")
        .iter()
        .map(|c| c.json()["submitted_information"].clone())
        .filter(Value::is_object)
        .collect();
    assert_eq!(
        answers[1],
        json!({"domain": "getzeta.apps.test", "amount": 1200})
    );

    // Not a candidate, or taken: nothing is bought.
    for (name, message) in [
        (
            "nope.apps.test",
            "--domain nope.apps.test is not a quoted candidate",
        ),
        (
            "omega.apps.test",
            "omega.apps.test is not available; nothing bought",
        ),
    ] {
        let run = s.run(&[
            "add",
            "domain",
            "--project",
            "p3",
            "--config",
            "domain_query=omega",
            "--confirm-paid",
            "--payment-token",
            "spt_domain",
            "--domain",
            name,
        ]);
        assert_eq!(run.code, 1, "{run:#?}");
        assert!(run.stderr.contains(message), "{run:#?}");
    }
    // Only the two purchases above sent an answer; the refused ones sent nothing.
    assert_eq!(
        s.fake
            .world()
            .calls("POST", "/provisioning/resources")
            .iter()
            .filter(|c| c.json()["submitted_information"].is_object())
            .count(),
        2
    );
    // The quote is still there to look at.
    let run = s.run(&["get", "domain", "--project", "p3"]).ok();
    assert!(run.stdout.contains("needs_information"), "{run:#?}");
    assert!(
        has_line(&run.stdout, &["getomega.apps.test", "$12.00", "available"]),
        "{run:#?}"
    );
}

#[test]
fn config_values_and_the_env_file() {
    let s = Sandbox::new();
    s.login(NEW);
    s.run(&["add", "free"]).ok();
    s.run(&[
        "add",
        "api_token",
        "--config",
        "scopes=[\"logs:read\"]",
        "--config",
        "label=ci bot",
    ])
    .ok();
    let create = s.fake.world().calls("POST", "/provisioning/resources")[1].json();
    assert_eq!(
        create["configuration"],
        json!({"scopes": ["logs:read"], "label": "ci bot"})
    );
    s.run(&["add", "slow"]).ok();
    s.run(&["add", "failing"]);
    std::fs::write(s.dir.join(".env"), "# mine\nKEEP=1\nAPI_TOKEN=old\n").expect("write .env");

    let run = s.run(&["env"]).ok();
    assert_eq!(
        run.stdout,
        "wrote 6 keys to .env: ACCOUNT_ID, PLAN, API_TOKEN, API_TOKEN_SCOPES, GREETING, SLOW_URL\n",
        "{run:#?}"
    );
    assert!(run.stderr.contains("skipping res_"), "{run:#?}");
    let text = std::fs::read_to_string(s.dir.join(".env")).expect(".env");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "# mine");
    assert_eq!(lines[1], "KEEP=1");
    assert!(lines[2].starts_with("API_TOKEN=pvak_"), "{text}");
    assert!(lines.contains(&"ACCOUNT_ID=acct_fake_1"), "{text}");
    assert!(lines.contains(&"PLAN=free"), "{text}");
    assert!(lines.contains(&"API_TOKEN_SCOPES=logs:read"), "{text}");
    assert!(
        lines.contains(&"SLOW_URL='https://slow.example/db?x=1'"),
        "{text}"
    );
    assert!(
        lines.contains(&"GREETING=\"it's \\\"quoted\\\"\""),
        "{text}"
    );

    // Another file, created private; --json lists the keys.
    let run = s.run(&["env", "--file", "config/app.env", "--json"]).ok();
    let v = run.json();
    assert_eq!(v["file"], "config/app.env");
    assert_eq!(v["keys"].as_array().map(Vec::len), Some(6));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(s.dir.join("config/app.env"))
            .expect("file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Rotation: the next env writes the new value.
    let run = s.run(&["rotate", "api_token"]).ok();
    assert!(run.stdout.contains("run `appctl env`"), "{run:#?}");
    s.run(&["env"]).ok();
    let text = std::fs::read_to_string(s.dir.join(".env")).expect(".env");
    assert!(text.contains("API_TOKEN=pvak_rotated_"), "{text}");
    assert_eq!(text.matches("API_TOKEN=").count(), 1, "{text}");
}

#[test]
fn an_errored_resource_exits_2_with_its_error() {
    let s = Sandbox::new();
    s.login(NEW);
    let run = s.run(&["add", "failing"]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.stderr.contains(
            "): errored\nerror: backend_error: the backend said no\nrequest id: req_fake_"
        ),
        "{run:#?}"
    );
    let run = s.run(&["add", "failing", "--json"]);
    assert_eq!(run.code, 2);
    assert_eq!(run.json()["error"]["code"], "backend_error");
}

#[test]
fn protocol_errors_print_code_message_and_request_id() {
    let s = Sandbox::new();
    s.login(NEW);
    s.fake.fail_next(
        "POST",
        "/provisioning/resources",
        409,
        json!({"status": "error", "id": null, "error": {"code": "plan_already_active", "message": "the account already has a plan; change it with update_service"}}),
    );
    let run = s.run(&["add", "free"]);
    assert_eq!(run.code, 2, "{run:#?}");
    let id = s
        .fake
        .wait_for("POST", "/provisioning/resources")
        .request_id;
    assert_eq!(
        run.stderr,
        format!("error: plan_already_active: the account already has a plan; change it with update_service\nrequest id: {id}\n")
    );
    assert!(run.stdout.is_empty());

    s.fake.fail_next(
        "POST",
        "/provisioning/resources",
        503,
        json!({"error": {"code": "temporarily_unavailable", "message": "try again"}}),
    );
    let run = s.run(&["add", "free", "--json"]);
    assert_eq!(run.code, 2);
    let last = s
        .fake
        .world()
        .calls("POST", "/provisioning/resources")
        .pop()
        .expect("call");
    assert_eq!(
        run.json(),
        json!({"error": {"code": "temporarily_unavailable", "message": "try again", "status": 503},
               "request_id": last.request_id})
    );

    // An unknown resource.
    let run = s.run(&["get", "res_nope"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.starts_with(
            "error: resource_not_found: no such resource on this account\nrequest id: req_fake_"
        ),
        "{run:#?}"
    );
}

#[test]
fn json_output_is_exactly_the_providers_answer() {
    let s = Sandbox::new();
    s.login(NEW);
    let run = s.run(&["add", "free", "--json"]).ok();
    let created = run.json();
    let id = created["id"].as_str().expect("id").to_string();
    let run = s.run(&["--json", "get", &id]).ok();
    assert_eq!(run.json(), created);
    // Byte for byte: the fake's body, then a newline.
    let world = s.fake.world();
    let get = world.calls("GET", &format!("/provisioning/resources/{id}"));
    assert_eq!(get.len(), 1);
    drop(world);
    assert_eq!(run.stdout.trim_end(), created.to_string());
}

#[test]
fn tokens_refresh_when_expired_or_refused() {
    let s = Sandbox::new();
    s.fake.world().expires_in = 0;
    s.login(NEW);
    s.run(&["add", "free"]).ok();
    // Expired: refreshed before the call, once.
    let paths = s.fake.world().paths();
    let tail: Vec<&str> = paths.iter().map(String::as_str).rev().take(3).collect();
    assert_eq!(
        tail,
        vec![
            "POST /provisioning/resources",
            "POST /oauth/token",
            "GET /provisioning/services"
        ]
    );

    // Refused (401 invalid_token): refreshed, then the call made again, once.
    s.fake.world().expires_in = 3600;
    s.run(&["refresh"]).ok();
    s.fake.world().revoke_access();
    let before = s.fake.world().seen.len();
    let run = s.run(&["get", "free"]).ok();
    assert!(run.stdout.contains("complete"), "{run:#?}");
    let paths: Vec<String> = s.fake.world().paths()[before..].to_vec();
    assert_eq!(paths.len(), 3, "{paths:?}");
    assert!(paths[0].starts_with("GET /provisioning/resources/res_"));
    assert_eq!(paths[1], "POST /oauth/token");
    assert_eq!(paths[2], paths[0]);

    // Both tokens dead: the error says to log in again.
    {
        let mut world = s.fake.world();
        world.revoke_access();
        world.refresh.clear();
    }
    let run = s.run(&["get", "free"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.starts_with(
            "error: invalid_grant: the refresh token is not valid\nrequest id: req_fake_"
        ),
        "{run:#?}"
    );
    assert!(run.stderr.contains("hint: log in again"), "{run:#?}");
}

#[test]
fn get_rotate_remove_deep_link_and_status() {
    let s = Sandbox::new();
    let run = s.run(&["status"]).ok();
    assert!(run.stdout.contains("does not exist yet"), "{run:#?}");
    let run = s.run(&["get", "free"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.starts_with("error: not logged in"), "{run:#?}");

    s.login(NEW);
    s.run(&["add", "free"]).ok();
    s.run(&["add", "api_token", "--project", "p1"]).ok();
    s.run(&["add", "api_token", "--project", "p2"]).ok();
    let run = s.run(&["get", "api_token"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("several resources of service api_token"),
        "{run:#?}"
    );
    let run = s.run(&["get", "api_token", "--project", "p2"]).ok();
    assert!(
        run.stdout.contains("(api_token, project p2): complete"),
        "{run:#?}"
    );
    assert!(
        has_line(&run.stdout, &["API_TOKEN", "(hidden;"]),
        "{run:#?}"
    );
    assert!(!run.stdout.contains("pvak_"), "{run:#?}");

    let run = s.run(&["rotate", "free"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("error: rotation_not_supported"),
        "{run:#?}"
    );

    let run = s.run(&["deep-link"]).ok();
    assert!(
        run.stdout
            .starts_with(&format!("{}/dashboard?link=dl_", s.fake.url)),
        "{run:#?}"
    );
    assert!(run.stderr.contains("single use, valid until "), "{run:#?}");
    let link = s.fake.wait_for("POST", "/provisioning/deep_links");
    assert_eq!(link.json(), json!({"purpose": "dashboard"}));

    let run = s.run(&["status"]).ok();
    for needle in [
        "provider:   http://127.0.0.1:",
        "account:    acct_fake_1",
        "tokens:     access token valid 60 more min",
        "refresh token kept",
        "res_",
        "api_token  p2  complete",
    ] {
        assert!(run.stdout.contains(needle), "{needle}\n{}", run.stdout);
    }
    let access = s.state()["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    assert!(
        !run.stdout.contains(&access),
        "no secret in status: {}",
        run.stdout
    );
    let status = s.run(&["status", "--json"]).ok().json();
    assert_eq!(status["access_token"], true);
    assert_eq!(status["resources"].as_array().map(Vec::len), Some(3));

    let run = s.run(&["remove", "api_token", "--project", "p1"]).ok();
    assert!(run.stdout.starts_with("removed res_"), "{run:#?}");
    let status = s.run(&["status", "--json"]).ok().json();
    assert_eq!(status["resources"].as_array().map(Vec::len), Some(2));
    // Now only one api_token is known: the service id names it.
    s.run(&["get", "api_token"]).ok();
    all_signed(&s);
}

#[test]
fn the_state_belongs_to_its_provider() {
    let s = Sandbox::new();
    s.login(NEW);
    let other = support::Fake::start();
    let run = s.run(&["--url", &other.url, "get", "free"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr.contains(&format!("belongs to {}", s.fake.url)),
        "{run:#?}"
    );
    assert!(
        other.world().seen.is_empty(),
        "no token sent to another provider"
    );
    // Without --url or APP_PROVIDER_URL the state's provider is used.
    let mut s = s;
    s.env.clear();
    s.run(&["add", "free"]).ok();
    // An account request elsewhere starts over.
    let run = s
        .run(&["--url", &other.url, "account-request", "--email", NEW])
        .ok();
    assert!(run.stderr.contains("note: the state file knew"), "{run:#?}");
    let state = s.state();
    assert_eq!(state["provider_url"], other.url.as_str());
    assert!(state.get("access_token").is_none());
    assert_eq!(state["resources"], json!([]));
}

#[test]
fn names_make_several_resources_of_one_service_in_one_project() {
    let s = Sandbox::new();
    s.login(NEW);
    s.run(&["add", "free"]).ok();
    // --name: several of one service in one project, each reached by its name.
    s.run(&["add", "api_token", "--project", "p3", "--name", "ci"])
        .ok();
    s.run(&["add", "api_token", "--project", "p3", "--name", "deploy"])
        .ok();
    let sent: Vec<Value> = s
        .fake
        .world()
        .calls("POST", "/provisioning/resources")
        .iter()
        .map(|c| c.json()["orchestrator_resource_id"].clone())
        .filter(Value::is_string)
        .collect();
    assert_eq!(sent, vec![json!("p3/ci"), json!("p3/deploy")]);
    let ids: Vec<Value> = s.state()["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["project_id"] == "p3")
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(ids.len(), 2, "two tokens in project p3");
    assert_ne!(ids[0], ids[1]);
    let run = s.run(&["get", "deploy"]).ok();
    assert!(run.stdout.contains(ids[1].as_str().unwrap()), "{run:#?}");
}

#[test]
fn usage_and_credit_speak_the_operator_api_with_the_operator_secret() {
    let s = Sandbox::new();
    s.login(NEW);
    s.run(&["add", "free"]).ok();
    let run = s
        .run(&["usage", "free", "--amount", "250", "--key", "k1"])
        .ok();
    assert!(
        run.stdout
            .starts_with("recorded 250 (key k1): this month 250 of a 10000 cap"),
        "{run:#?}"
    );
    let seen = s.fake.wait_for("POST", "/v1/usage");
    let body = seen.json();
    assert_eq!(body["account_id"], "acct_fake_1");
    assert!(body["resource_id"].as_str().unwrap().starts_with("res_"));
    assert_eq!(
        (body["amount"].as_u64(), body["quantity"].as_u64()),
        (Some(250), Some(250))
    );
    assert_eq!(body["currency"], "usd");
    assert!(body["occurred_at"].as_str().unwrap().ends_with('Z'));
    let run = s
        .run(&[
            "credit", "--amount", "5000", "--reason", "startup", "--days", "30",
        ])
        .ok();
    assert!(
        run.stdout.starts_with("granted 5000 cents until "),
        "{run:#?}"
    );
    let seen = s.fake.wait_for("POST", "/v1/accounts/acct_fake_1/credits");
    assert_eq!(seen.json()["reason"], "startup");
    let run = s.run(&["usage", "free"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.contains("--amount is required"), "{run:#?}");
}
