//! Shared state and assertions for the black-box cases.

use std::sync::{Mutex, OnceLock};

use app_client::{Provider, Reply};
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
