//! The audit trail over two D1 databases (`AUDIT_SHARDS = 2`, `AUDIT_DB` and `AUDIT_DB_1`):
//! each account's rows in the shard its id hashes to and nowhere else, and the operator API
//! and webhook routing answering as they do with one.

use std::time::{Duration, Instant};

use app_client::{unix_now, Call, Signing};
use app_tests::flows::{self, Tokens};
use app_tests::{DevWorker, Options, WEBHOOK_SECRET};
use domain::audit_shards::shard_of;
use libtest_mimic::Trial;
use serde_json::{json, Value};

use crate::common::{case, email, unique};
use crate::operator::op_on;

pub fn trials() -> Vec<Trial> {
    vec![case(
        "shards::two_audit_databases_split_accounts_and_answer_as_one",
        two_audit_databases_split_accounts_and_answer_as_one,
    )]
}

/// Polls `f` until it answers `Some`, for at most 20 s (outbox flushes are asynchronous).
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within 20 s");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn count(rows: &[Value]) -> i64 {
    rows.first().and_then(|r| r["n"].as_i64()).unwrap_or(-1)
}

fn two_audit_databases_split_accounts_and_answer_as_one() {
    let mut worker = DevWorker::start(Options {
        audit_shards: 2,
        ..Options::default()
    });
    let p = worker.provider();
    // Accounts until each shard has two (ids are random; the hash decides).
    let mut accounts: Vec<Tokens> = Vec::new();
    while [0, 1].iter().any(|s| {
        accounts
            .iter()
            .filter(|t| shard_of(&t.account, 2) == *s)
            .count()
            < 2
    }) {
        assert!(accounts.len() < 30, "the hash put 30 accounts in one shard");
        accounts.push(flows::new_account(&p, &unique("acctreq_shard_"), &email()).unwrap());
    }

    // Each account's records and row are in its shard only (one query per shard and table:
    // each query is a `wrangler d1 execute`).
    let ids: Vec<&str> = accounts.iter().map(|t| t.account.as_str()).collect();
    let list = ids
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(",");
    let per_account = |shard: u32, table: &str| -> Vec<(String, i64)> {
        let sql = format!(
            "SELECT account_id, count(*) AS n FROM {table} WHERE account_id IN ({list}) GROUP BY account_id"
        );
        worker
            .d1_shard(shard, &sql)
            .iter()
            .map(|r| {
                (
                    r["account_id"].as_str().unwrap().to_string(),
                    count(std::slice::from_ref(r)),
                )
            })
            .collect()
    };
    let placed = |rows: &[(String, i64)], shard: u32, at_least: i64| {
        // Every account of this shard with enough rows, and no row of another account.
        let mut found: Vec<&str> = rows.iter().map(|(a, _)| a.as_str()).collect();
        found.sort();
        let mut want: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|a| shard_of(a, 2) == shard)
            .collect();
        want.sort();
        let enough = rows.iter().all(|(_, n)| *n >= at_least);
        (
            found == want && enough,
            format!("shard {shard}: {rows:?}, want {want:?}"),
        )
    };
    for shard in [0, 1] {
        eventually("each account's records in its shard only", || {
            placed(&per_account(shard, "audit_events"), shard, 4)
                .0
                .then_some(())
        });
        let (ok, why) = placed(&per_account(shard, "accounts"), shard, 1);
        assert!(ok, "{why}");
    }

    // The operator's list merges the shards, in id order, page by page.
    let mut listed: Vec<String> = Vec::new();
    let mut after = String::new();
    loop {
        let path = format!("/v1/accounts?limit=2&starting_after={after}");
        let page = op_on(&p, "GET", &path, None).json();
        for a in page["data"].as_array().unwrap() {
            listed.push(a["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(next) => after = next.to_string(),
            None => break,
        }
    }
    let mut sorted = listed.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(listed, sorted, "in order, once each");
    for t in &accounts {
        assert!(listed.contains(&t.account), "{} listed", t.account);
    }

    // Each account's trail reads and verifies from its shard, and the call is recorded there.
    for t in &accounts {
        let audit = op_on(
            &p,
            "GET",
            &format!("/v1/accounts/{}/audit", t.account),
            None,
        );
        assert_eq!(audit.status, 200, "{}", audit.text());
        assert_eq!(audit.json()["data"][0]["action"], "account.created");
        let verify = op_on(
            &p,
            "GET",
            &format!("/v1/accounts/{}/audit/verify", t.account),
            None,
        )
        .json();
        assert_eq!(verify["ok"], true, "{verify}");
        assert!(verify["records"].as_u64().unwrap() >= 4, "{verify}");
    }
    // Each of those calls was recorded in the account's shard.
    for shard in [0, 1] {
        let sql = format!(
            "SELECT target AS account_id, count(*) AS n FROM operator_events WHERE target IN ({list}) GROUP BY target"
        );
        let rows: Vec<(String, i64)> = worker
            .d1_shard(shard, &sql)
            .iter()
            .map(|r| {
                (
                    r["account_id"].as_str().unwrap().to_string(),
                    count(std::slice::from_ref(r)),
                )
            })
            .collect();
        let (ok, why) = placed(&rows, shard, 2);
        assert!(ok, "{why}");
    }

    // A webhook whose object lacks our metadata finds its account through the Stripe ids
    // recorded in that account's shard, for an account of each shard.
    for shard in [0, 1] {
        let t = accounts
            .iter()
            .find(|t| shard_of(&t.account, 2) == shard)
            .unwrap();
        let token = worker
            .stand_in
            .create_granted_token("usd", 5000, unix_now() + 3600, None);
        let plan = p
            .create_resource(
                &t.access,
                &json!({"service_id": "paid", "project_id": "p",
                    "payment_credentials": {"type": "stripe_payment_token", "stripe_payment_token": token}}),
            )
            .unwrap()
            .json();
        assert_eq!(plan["status"], "complete", "{plan}");
        let sub = worker
            .stand_in
            .subscriptions()
            .into_iter()
            .find(|s| s["metadata"]["resource_id"] == plan["id"])
            .unwrap();
        let sub_id = sub["id"].as_str().unwrap().to_string();
        let mapped =
            format!("SELECT count(*) AS n FROM stripe_objects WHERE stripe_id = '{sub_id}'");
        eventually("the subscription's row in the account's shard", || {
            (count(&worker.d1_shard(shard, &mapped)) == 1).then_some(())
        });
        let event_id = unique("evt_shard_");
        let body = json!({"id": event_id, "object": "event", "api_version": "2026-04-22.preview",
            "created": unix_now(), "livemode": false, "type": "invoice.upcoming",
            "data": {"object": {"id": unique("in_"), "object": "invoice",
                "customer": sub["customer"], "subscription": sub_id}}})
        .to_string();
        let signature =
            domain::signature::sign_header(WEBHOOK_SECRET.as_bytes(), unix_now(), body.as_bytes());
        let reply = p
            .send(
                Call::new("POST", "/webhooks/stripe")
                    .raw_body(body.into_bytes(), "application/json")
                    .signing(Signing::Raw(signature))
                    .api_version(None),
            )
            .unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_ne!(
            reply.json()["outcome"],
            "unknown_account",
            "{}",
            reply.text()
        );
        let row = format!("SELECT account_id FROM webhook_events WHERE id = '{event_id}'");
        let found = eventually("the event's row", || {
            let rows = worker.d1_all(&row);
            (!rows.is_empty()).then_some(rows)
        });
        assert_eq!(found.len(), 1);
        assert_eq!(found[0]["account_id"], t.account.as_str());
        assert_eq!(
            worker.d1_shard(shard, &row).len(),
            1,
            "in the account's shard"
        );
    }
    worker.stop();
}
