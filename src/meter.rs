//! Counts of billable work for the cost benchmark (issue 17): invocations, Durable Object
//! requests and storage rows, D1 queries and rows, outbound calls.
//!
//! Development only: on with `COST_METER=enabled` and `ENVIRONMENT=development`, read once per
//! isolate. When on, every invocation (a fetch, an object's fetch or alarm) ends with one log
//! line `{"cost_meter":{...},"isolate":...}` carrying this isolate's running totals; the
//! benchmark sums the last line of each isolate. When off, counting is a few integer adds.

use std::cell::{Cell, RefCell};

use domain::cost::Meter;
use worker::js_sys::Reflect;
use worker::wasm_bindgen::JsValue;
use worker::worker_sys::D1Result;
use worker::{Env, SqlCursor};

thread_local! {
    static ON: Cell<Option<bool>> = const { Cell::new(None) };
    static TOTALS: RefCell<Meter> = RefCell::new(Meter::default());
    static ISOLATE: Cell<u64> = const { Cell::new(0) };
}

/// Whether the meter is on in this isolate (decided on the first call).
pub fn on(env: &Env) -> bool {
    ON.with(|on| match on.get() {
        Some(v) => v,
        None => {
            let v = crate::config::is_development(env)
                && crate::config::string(env, "COST_METER").as_deref() == Some("enabled");
            on.set(Some(v));
            if v {
                ISOLATE.with(|i| i.set((worker::js_sys::Math::random() * 1e15) as u64));
            }
            v
        }
    })
}

/// Whether an earlier [`on`] found the meter on (no environment at hand here).
fn counting() -> bool {
    ON.with(|on| on.get() == Some(true))
}

fn add(f: impl FnOnce(&mut Meter)) {
    TOTALS.with(|t| f(&mut t.borrow_mut()));
}

/// One Worker invocation began.
pub fn invocation(env: &Env) {
    if on(env) {
        add(|m| m.invocations += 1);
    }
}

/// One Durable Object request (a fetch or an alarm) began; pass what this answers (its start,
/// ms) to [`object_done`] when it ends.
pub fn object_request(env: &Env) -> u64 {
    if !on(env) {
        return 0;
    }
    add(|m| m.do_requests += 1);
    crate::http::now_ms()
}

/// The object request that began at `started_ms` ended.
pub fn object_done(env: &Env, started_ms: u64) {
    if !on(env) {
        return;
    }
    let spent = crate::http::now_ms().saturating_sub(started_ms);
    add(|m| m.do_active_ms += spent);
    report(env);
}

/// The rows a statement of an object's SQLite storage read and wrote (read once consumed).
pub fn sql(cursor: &SqlCursor) {
    if !counting() {
        return;
    }
    let (read, written) = (cursor.rows_read() as u64, cursor.rows_written() as u64);
    add(|m| {
        m.do_rows_read += read;
        m.do_rows_written += written;
    });
}

/// A number in a D1 answer's `meta` (0 when absent).
fn meta_number(meta: &JsValue, name: &str) -> u64 {
    Reflect::get(meta, &JsValue::from_str(name))
        .ok()
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0) as u64
}

/// One D1 round trip and its statements' answers.
pub fn d1(results: &[D1Result]) {
    if !counting() {
        return;
    }
    let mut read = 0;
    let mut written = 0;
    let mut size = 0;
    for r in results {
        if let Ok(meta) = r.meta() {
            read += meta_number(&meta, "rows_read");
            written += meta_number(&meta, "rows_written");
            size = size.max(meta_number(&meta, "size_after"));
        }
    }
    add(|m| {
        m.d1_bytes = m.d1_bytes.max(size);
        m.d1_round_trips += 1;
        m.d1_queries += results.len() as u64;
        m.d1_rows_read += read;
        m.d1_rows_written += written;
    });
}

/// One outbound HTTP call.
pub fn subrequest() {
    if counting() {
        add(|m| m.subrequests += 1);
    }
}

/// Logs this isolate's totals, when the meter is on.
pub fn report(env: &Env) {
    if !on(env) {
        return;
    }
    let m = TOTALS.with(|t| *t.borrow());
    let isolate = ISOLATE.with(Cell::get);
    worker::console_log!("{}", m.log_line(isolate));
}
