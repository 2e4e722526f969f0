//! The operator API and the audit trail: authentication, suspend/resume, close with every
//! backend released, chain verification (and a tampered row found), a D1 outage that loses
//! nothing, and pagination.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use app_client::{Call, Reply, Signing};
use app_tests::OPERATOR_SECRET;
use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::common::*;
use crate::resources::{call, create, get, ok, pay, spt};

pub fn trials() -> Vec<Trial> {
    vec![
        case(
            "operator::refuses_a_missing_or_wrong_secret",
            refuses_a_missing_or_wrong_secret,
        ),
        case("operator::suspend_then_resume", suspend_then_resume),
        case(
            "operator::close_releases_everything_at_every_backend",
            close_releases_everything_at_every_backend,
        ),
        case(
            "operator::verify_passes_then_finds_a_tampered_row",
            verify_passes_then_finds_a_tampered_row,
        ),
        case(
            "operator::a_d1_outage_loses_nothing",
            a_d1_outage_loses_nothing,
        ),
        case(
            "operator::pagination_returns_every_record_once",
            pagination_returns_every_record_once,
        ),
    ]
}

pub fn op(method: &str, path: &str, body: Option<Value>) -> Reply {
    op_on(&provider(), method, path, body)
}

/// An operator API call to the worker behind `p`.
pub fn op_on(p: &app_client::Provider, method: &str, path: &str, body: Option<Value>) -> Reply {
    let mut c = Call::new(method, path)
        .signing(Signing::Unsigned)
        .api_version(None)
        .bearer(OPERATOR_SECRET);
    if let Some(b) = body {
        c = c.raw_body(b.to_string().into_bytes(), "application/json");
    }
    p.send(c).unwrap()
}

fn view(account: &str) -> Value {
    ok(&op("GET", &format!("/v1/accounts/{account}"), None))
}

pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn refuses_a_missing_or_wrong_secret() {
    let p = provider();
    for path in [
        "/v1/accounts",
        "/v1/accounts/acct_aaaaaaaaaaaaaaaa",
        "/v1/accounts/acct_aaaaaaaaaaaaaaaa/audit",
    ] {
        let none = p
            .send(Call::get(path).signing(Signing::Unsigned).api_version(None))
            .unwrap();
        assert_error(&none, 401, "unauthorized");
        let wrong = p
            .send(
                Call::get(path)
                    .signing(Signing::Unsigned)
                    .api_version(None)
                    .bearer("op_wrong"),
            )
            .unwrap();
        assert_error(&wrong, 401, "unauthorized");
        // The orchestrator's signature is not an operator credential.
        let signed = p.send(Call::get(path)).unwrap();
        assert_error(&signed, 401, "unauthorized");
    }
    let reply = p
        .send(
            Call::new("POST", "/v1/accounts/acct_aaaaaaaaaaaaaaaa/close")
                .signing(Signing::Unsigned)
                .api_version(None)
                .bearer("x"),
        )
        .unwrap();
    assert_error(&reply, 401, "unauthorized");
    assert_error(
        &op("GET", "/v1/accounts/acct_doesnotexist000/x", None),
        404,
        "not_found",
    );
    for path in ["", "/audit", "/audit/export", "/audit/verify"] {
        assert_error(
            &op(
                "GET",
                &format!("/v1/accounts/acct_aaaaaaaaaaaaaaaa{path}"),
                None,
            ),
            404,
            "account_not_found",
        );
    }
}

fn suspend_then_resume() {
    let t = new_account(&email());
    let plan = ok(&create(
        &t.access,
        json!({"service_id": "free", "project_id": "p"}),
    ));
    let plan_id = plan["id"].as_str().unwrap().to_string();
    assert_error(
        &op(
            "POST",
            &format!("/v1/accounts/{}/suspend", t.account),
            Some(json!({})),
        ),
        400,
        "invalid_request",
    );
    let v = ok(&op(
        "POST",
        &format!("/v1/accounts/{}/suspend", t.account),
        Some(json!({"reason": "chargeback review"})),
    ));
    assert_eq!(v["status"], "suspended");
    assert_eq!(v["status_reason"], "chargeback review");
    // Its tokens stop at once, on every endpoint.
    assert_error(&get(&t.access, &plan_id), 403, "account_suspended");
    assert_error(
        &provider().refresh(&t.refresh, true).unwrap(),
        400,
        "invalid_grant",
    );
    let info = provider()
        .send(
            Call::post_form("/oauth/introspect", &[("token", &t.access)])
                .api_version(None)
                .signing(Signing::Unsigned)
                .bearer(OPERATOR_SECRET),
        )
        .unwrap()
        .json();
    assert_eq!(info["active"], false);
    // A new account request for that email is told the account is unavailable.
    let email = v["email"].as_str().unwrap().to_string();
    let reply = provider()
        .account_request(&account_request(&unique("acctreq_"), &email))
        .unwrap();
    assert_error(&reply, 403, "account_unavailable");
    // Listed as suspended once the outbox reached D1.
    wait_for("the suspended account in the list", || {
        let list = ok(&op(
            "GET",
            &format!("/v1/accounts?status=suspended&email={email}"),
            None,
        ));
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == t.account.as_str())
    });
    let v = ok(&op(
        "POST",
        &format!("/v1/accounts/{}/resume", t.account),
        Some(json!({"reason": "cleared"})),
    ));
    assert_eq!(v["status"], "active");
    assert_eq!(ok(&get(&t.access, &plan_id))["status"], "complete");
    // Resuming an active account is a refused transition.
    assert_error(
        &op(
            "POST",
            &format!("/v1/accounts/{}/resume", t.account),
            Some(json!({"reason": "again"})),
        ),
        409,
        "invalid_transition",
    );
    let rows = audit_rows(&t.account, 6);
    for action in ["account.suspended", "account.resumed"] {
        let r = rows
            .iter()
            .find(|r| r["action"] == action)
            .unwrap_or_else(|| panic!("{action}"));
        assert_eq!(r["actor"], "operator");
    }
    let events = with_worker(|w| {
        w.d1(&format!(
            "SELECT action FROM operator_events WHERE target = '{}'",
            t.account
        ))
    });
    let actions: Vec<&str> = events.iter().filter_map(|e| e["action"].as_str()).collect();
    // Every call, refused ones included, was recorded before it was served.
    assert!(
        actions.iter().filter(|a| **a == "operator_suspend").count() >= 2,
        "{actions:?}"
    );
    assert!(
        actions.iter().filter(|a| **a == "operator_resume").count() >= 2,
        "{actions:?}"
    );
}

fn close_releases_everything_at_every_backend() {
    let t = new_account(&email());
    let plan = ok(&create(
        &t.access,
        json!({"service_id": "paid", "project_id": "p", "payment_credentials": pay(&spt(10_000))}),
    ));
    assert_eq!(plan["status"], "complete", "{plan}");
    let plan_id = plan["id"].as_str().unwrap().to_string();
    let token = ok(&create(
        &t.access,
        json!({"service_id": "api_token", "project_id": "p"}),
    ));
    let api_token = token["complete"]["access_configuration"]["API_TOKEN"]
        .as_str()
        .unwrap()
        .to_string();
    let label = unique("closing");
    let q = ok(&create(
        &t.access,
        json!({"service_id": "domain", "project_id": "web", "configuration": {"domain_query": label},
                                         "payment_credentials": pay(&spt(10_000))}),
    ));
    let dom_id = q["id"].as_str().unwrap().to_string();
    let name = q["needs_information"]["schema"]["properties"]["domain"]["enum"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        ok(&call(
            &t.access,
            Call::post_json(
                &format!("/provisioning/resources/{dom_id}/confirm"),
                &json!({"domain": name, "amount": 1200})
            )
        ))["status"],
        "complete"
    );

    let v = ok(&op(
        "POST",
        &format!("/v1/accounts/{}/close", t.account),
        Some(json!({"reason": "owner asked"})),
    ));
    assert!(
        matches!(v["status"].as_str(), Some("closed" | "closing")),
        "{v}"
    );
    wait_for("the account to close", || {
        view(&t.account)["status"] == "closed"
    });
    let v = view(&t.account);
    assert!(
        v["resources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "removed"),
        "{v}"
    );
    assert_eq!(v["live_grants"], 0);
    assert_eq!(v["live_token_pairs"], 0);
    // Gone at Stripe: the subscription is canceled.
    let sub = with_worker(|w| w.stand_in.subscriptions())
        .into_iter()
        .find(|s| s["metadata"]["resource_id"] == plan_id.as_str())
        .unwrap();
    assert_eq!(sub["status"], "canceled");
    // Gone at the registry: someone else can get the name.
    let other = crate::resources::account_with_free_plan();
    let q2 = ok(&create(
        &other.access,
        json!({"service_id": "domain", "project_id": "x", "configuration": {"domain_query": label},
                                               "payment_credentials": pay(&spt(10_000))}),
    ));
    assert_eq!(
        q2["needs_information"]["quote"]["candidates"][0]["available"], true,
        "{q2}"
    );
    // Gone for the platform's API and for the orchestrator.
    let info = provider()
        .send(
            Call::post_form("/oauth/introspect", &[("token", &api_token)])
                .api_version(None)
                .signing(Signing::Unsigned)
                .bearer(OPERATOR_SECRET),
        )
        .unwrap()
        .json();
    assert_eq!(info["active"], false);
    assert_error(&get(&t.access, &plan_id), 403, "account_closed");
    // Closing again changes nothing; the audit trail is kept and verifies.
    let before = view(&t.account)["audit"]["next_seq"].clone();
    ok(&op(
        "POST",
        &format!("/v1/accounts/{}/close", t.account),
        Some(json!({"reason": "again"})),
    ));
    assert_eq!(view(&t.account)["audit"]["next_seq"], before);
    wait_for("the chain to be complete in D1", || {
        let r = ok(&op(
            "GET",
            &format!("/v1/accounts/{}/audit/verify", t.account),
            None,
        ));
        r["ok"] == true && r["pending"] == 0
    });
    let rows = audit_rows(&t.account, 20);
    let actions: Vec<&str> = rows.iter().map(|r| r["action"].as_str().unwrap()).collect();
    for a in [
        "account.closing",
        "subscription.canceled",
        "domain.released",
        "resource.removed",
        "account.closed",
    ] {
        assert!(actions.contains(&a), "{a} missing in {actions:?}");
    }
}

fn verify_passes_then_finds_a_tampered_row() {
    let t = new_account(&email());
    ok(&create(
        &t.access,
        json!({"service_id": "free", "project_id": "p"}),
    ));
    provider().refresh(&t.refresh, true).unwrap();
    wait_for("a verified chain", || {
        let r = ok(&op(
            "GET",
            &format!("/v1/accounts/{}/audit/verify", t.account),
            None,
        ));
        r["ok"] == true && r["pending"] == 0 && r["records"].as_u64().unwrap() >= 6
    });
    with_worker(|w| {
        w.d1(&format!("UPDATE audit_events SET after = '{{\"status\":\"closed\"}}' WHERE account_id = '{}' AND seq = 3", t.account))
    });
    let r = ok(&op(
        "GET",
        &format!("/v1/accounts/{}/audit/verify", t.account),
        None,
    ));
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["first_break"]["seq"], 3, "{r}");
    assert!(
        r["first_break"]["reason"]
            .as_str()
            .unwrap()
            .contains("hash"),
        "{r}"
    );
}

fn a_d1_outage_loses_nothing() {
    let t = new_account(&email());
    let account = t.account.clone();
    wait_for("the first records", || {
        ok(&op(
            "GET",
            &format!("/v1/accounts/{account}/audit/verify"),
            None,
        ))["pending"]
            == 0
    });
    let base = ok(&op(
        "GET",
        &format!("/v1/accounts/{account}/audit/verify"),
        None,
    ))["records"]
        .as_u64()
        .unwrap();
    // D1 fails this account's next 3 writes (a development-only switch).
    let f = ok(&op(
        "POST",
        "/dev/faults",
        Some(json!({"d1_write_failures": 3, "account_id": account})),
    ));
    assert_eq!(f["d1_write_failures"], 3);
    // Work goes on: every change is acknowledged while D1 is failing.
    ok(&create(
        &t.access,
        json!({"service_id": "free", "project_id": "p"}),
    ));
    ok(&create(
        &t.access,
        json!({"service_id": "api_token", "project_id": "p"}),
    ));
    let r = ok(&op(
        "GET",
        &format!("/v1/accounts/{account}/audit/verify"),
        None,
    ));
    assert_eq!(
        r["records"].as_u64().unwrap(),
        base,
        "nothing reached D1 yet: {r}"
    );
    let pending = r["pending"].as_u64().unwrap();
    assert!(pending >= 2, "the records wait in the outbox: {r}");
    // No more requests: the account's alarm retries with backoff and the records arrive. D1 is
    // read directly here: the operator API would send the outbox itself.
    let sql = format!("SELECT seq FROM audit_events WHERE account_id = '{account}' ORDER BY seq");
    wait_for("the alarm to deliver the outbox", || {
        with_worker(|w| w.d1(&sql)).len() as u64 >= base + pending
    });
    let rows = with_worker(|w| w.d1(&sql));
    let seqs: Vec<u64> = rows.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "every record, in order, once");
    assert_eq!(
        ok(&op(
            "GET",
            &format!("/v1/accounts/{account}/audit/verify"),
            None
        ))["ok"],
        true
    );
    let log = with_worker(|w| w.log());
    assert!(
        log.contains("audit flush failed; retrying"),
        "the outage was real"
    );
}

fn pagination_returns_every_record_once() {
    let t = new_account(&email());
    ok(&create(
        &t.access,
        json!({"service_id": "free", "project_id": "p"}),
    ));
    for i in 0..3 {
        ok(&create(
            &t.access,
            json!({"service_id": "api_token", "project_id": format!("p{i}")}),
        ));
    }
    wait_for("the outbox to drain", || {
        ok(&op(
            "GET",
            &format!("/v1/accounts/{}/audit/verify", t.account),
            None,
        ))["pending"]
            == 0
    });
    let total = ok(&op(
        "GET",
        &format!("/v1/accounts/{}/audit/verify", t.account),
        None,
    ))["records"]
        .as_u64()
        .unwrap();
    let mut seqs = Vec::new();
    let mut cursor: Option<u64> = None;
    loop {
        let path = match cursor {
            Some(c) => format!(
                "/v1/accounts/{}/audit?limit=4&starting_after={c}",
                t.account
            ),
            None => format!("/v1/accounts/{}/audit?limit=4", t.account),
        };
        let page = ok(&op("GET", &path, None));
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 4);
        seqs.extend(data.iter().map(|r| r["seq"].as_u64().unwrap()));
        if page["has_more"] == false {
            break;
        }
        cursor = page["next_cursor"].as_u64();
    }
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>());
    // The NDJSON export has the same records, one per line, each verifiable.
    let export = op(
        "GET",
        &format!("/v1/accounts/{}/audit/export", t.account),
        None,
    );
    assert_eq!(export.header("content-type"), Some("application/x-ndjson"));
    let records: Vec<domain::audit::AuditRecord> = export
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len() as u64, total);
    assert_eq!(domain::audit::verify_chain(&records), Ok(()));
    // Accounts: pages of 2 return each account once.
    let mine: Vec<String> = (0..3).map(|_| new_account(&email()).account).collect();
    wait_for("the accounts in D1", || {
        let list = ok(&op("GET", "/v1/accounts?limit=100", None));
        let ids: HashSet<String> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect();
        list["has_more"] == true || mine.iter().all(|m| ids.contains(m))
    });
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/accounts?limit=2&starting_after={c}"),
            None => "/v1/accounts?limit=2".to_string(),
        };
        let page = ok(&op("GET", &path, None));
        seen.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["id"].as_str().unwrap().to_string()),
        );
        if page["has_more"] == false {
            break;
        }
        cursor = page["next_cursor"].as_str().map(str::to_string);
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no account twice");
    assert!(mine.iter().all(|m| unique.contains(m)), "every account");
    assert_error(
        &op("GET", "/v1/accounts?limit=0", None),
        400,
        "invalid_request",
    );
    assert_error(
        &op("GET", "/v1/accounts?status=weird", None),
        400,
        "invalid_request",
    );
}
