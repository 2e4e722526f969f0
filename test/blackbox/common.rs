//! Shared state and assertions for the black-box cases.

use std::sync::{Mutex, OnceLock};

use app_client::{form_encode, Call, Provider, Reply, Signing};
use app_tests::{DevWorker, Options, WorkerHandle};
use libtest_mimic::{Failed, Trial};

static WORKER: OnceLock<Mutex<Option<DevWorker>>> = OnceLock::new();

fn slot() -> &'static Mutex<Option<DevWorker>> {
    WORKER.get_or_init(|| Mutex::new(None))
}

/// Runs `f` with the shared worker, starting it on first use.
pub fn with_worker<T>(f: impl FnOnce(&WorkerHandle) -> T) -> T {
    let mut guard = slot().lock().unwrap_or_else(|p| p.into_inner());
    if guard.is_none() {
        *guard = Some(DevWorker::start(Options::default()));
    }
    let worker = guard.as_ref().expect("worker started");
    // Clone what the case needs and release the lock, so cases run in parallel.
    let snapshot = worker.handle();
    drop(guard);
    f(&snapshot)
}

/// A client signing as the orchestrator.
pub fn provider() -> Provider {
    with_worker(|w| w.provider())
}

/// The orchestrator callback the consent page redirects to.
pub fn callback_url() -> String {
    with_worker(|w| w.callback_url.clone())
}

/// Stops the shared worker, if one was started; keeps its log and state when a case failed.
pub fn shutdown(failed: bool) {
    if let Some(mut worker) = slot().lock().unwrap_or_else(|p| p.into_inner()).take() {
        if failed {
            eprintln!(
                "wrangler log and D1 state kept in {}",
                worker.run_dir.display()
            );
            worker.keep_run_dir();
        }
        worker.stop();
    }
}

/// A trial from a closure that panics on failure.
pub fn case(name: &str, f: fn()) -> Trial {
    Trial::test(name, move || {
        f();
        Ok::<(), Failed>(())
    })
}

/// Asserts the status and the error code of a reply, showing the body when they differ.
#[track_caller]
pub fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(
        (reply.status, reply.error_code().as_deref()),
        (status, Some(code)),
        "body: {}",
        reply.text()
    );
}

/// Asserts a plain protocol error envelope: exactly `{"error":{"code","message"}}`.
#[track_caller]
pub fn assert_plain_error(reply: &Reply, status: u16, code: &str) {
    assert_error(reply, status, code);
    let body = reply.json();
    let error = body["error"].as_object().expect("error object");
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
    assert_eq!(error.len(), 2, "{body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));
}

/// A value unique to this test run and call: `<prefix>-<pid>-<time>-<n>`.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!(
        "{prefix}{}x{}x{n}",
        std::process::id(),
        app_client::unix_now() % 100_000
    )
}

/// A fresh email address.
pub fn email() -> String {
    format!("{}@example.com", unique("dev"))
}

pub use app_tests::flows::{account_request, Tokens};

#[track_caller]
pub fn tokens_of(reply: &Reply) -> Tokens {
    app_tests::flows::tokens(reply).unwrap_or_else(|e| panic!("{e}"))
}

/// Creates a new account for `email` and exchanges its code: the orchestrator's happy path.
pub fn new_account(email: &str) -> Tokens {
    app_tests::flows::new_account(&provider(), &unique("acctreq_"), email)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Audit rows of an account from local D1, in sequence order; waits until `min` rows arrived.
/// Records may wait in the account's outbox (`AUDIT_BATCH_MS`), so each look first has the
/// operator API send them, as an auditor's read does.
pub fn audit_rows(account: &str, min: usize) -> Vec<serde_json::Value> {
    let sql = format!("SELECT * FROM audit_events WHERE account_id = '{account}' ORDER BY seq");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let send = format!("/v1/accounts/{account}/audit?limit=1");
    loop {
        let _ = crate::operator::op_on(&provider(), "GET", &send, None);
        let rows = with_worker(|w| w.d1(&sql));
        if rows.len() >= min || std::time::Instant::now() > deadline {
            return rows;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// D1 rows converted back to audit records, for hash-chain verification.
pub fn as_records(rows: &[serde_json::Value]) -> Vec<domain::audit::AuditRecord> {
    rows.iter()
        .map(|r| {
            let parse = |k: &str| {
                serde_json::from_str(r[k].as_str().unwrap_or("null"))
                    .unwrap_or(serde_json::Value::Null)
            };
            let text = |k: &str| r[k].as_str().map(str::to_string);
            domain::audit::AuditRecord {
                account_id: r["account_id"].as_str().unwrap().to_string(),
                seq: r["seq"].as_u64().unwrap(),
                at: r["at"].as_i64().unwrap(),
                actor: serde_json::from_value(r["actor"].clone()).unwrap(),
                actor_id: text("actor_id"),
                on_behalf_of: text("on_behalf_of"),
                action: r["action"].as_str().unwrap().to_string(),
                request_id: text("request_id"),
                consent: text("consent"),
                authentication: text("authentication"),
                before: parse("before"),
                after: parse("after"),
                prev_hash: r["prev_hash"].as_str().unwrap().to_string(),
                hash: r["hash"].as_str().unwrap().to_string(),
            }
        })
        .collect()
}

/// The value of a hidden or named input in a page: `name="<name>" value="..."`.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\" value=\"");
    let start = html.find(&needle)? + needle.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].replace("&amp;", "&"))
}

/// A browser's GET of a page (consent, dashboard): unsigned, no `API-Version`.
pub fn page(path_and_query: &str) -> Reply {
    provider()
        .send(
            Call::get(path_and_query)
                .signing(Signing::Unsigned)
                .api_version(None),
        )
        .unwrap()
}

/// A browser's form POST to a page.
pub fn post_page_form(path: &str, fields: &[(&str, &str)]) -> Reply {
    provider()
        .send(
            Call::new("POST", path)
                .raw_body(
                    form_encode(fields).into_bytes(),
                    "application/x-www-form-urlencoded",
                )
                .signing(Signing::Unsigned)
                .api_version(None),
        )
        .unwrap()
}
