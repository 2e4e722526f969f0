//! Atomic multi-statement writes in a Durable Object's SQLite storage.
//!
//! workers-rs does not bind `storage.transactionSync`, so this does: every statement inside the
//! closure commits together or not at all (a thrown error rolls them all back).

use std::cell::Cell;

use wasm_bindgen::prelude::wasm_bindgen;
use worker::js_sys::Function;
use worker::wasm_bindgen::closure::Closure;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::worker_sys::DurableObjectStorage;
use worker::{SqlStorageValue, Storage};

#[wasm_bindgen]
extern "C" {
    /// The same JS object as `DurableObjectStorage`, seen through the method we need.
    type SyncStorage;
    #[wasm_bindgen(method, catch, js_name = transactionSync)]
    fn transaction_sync(this: &SyncStorage, f: &Function) -> Result<JsValue, JsValue>;
}

/// Runs `schema` (`CREATE ... IF NOT EXISTS` statements) unless `done` says this object
/// instance already did; `done` is set once they all succeeded. For tables an object creates
/// on first use rather than in its constructor.
pub fn create_once(storage: &Storage, done: &Cell<bool>, schema: &[&str]) -> worker::Result<()> {
    if done.get() {
        return Ok(());
    }
    let sql = storage.sql();
    for statement in schema {
        crate::meter::sql(&sql.exec(statement, None)?);
    }
    done.set(true);
    Ok(())
}

/// One statement and its bindings.
pub type Statement = (&'static str, Vec<SqlStorageValue>);

/// Runs every statement in one transaction.
pub fn atomically(storage: &Storage, statements: Vec<Statement>) -> worker::Result<()> {
    let sql = storage.sql();
    let mut pending = Some(statements);
    let body = Closure::<dyn FnMut() -> Result<JsValue, JsValue>>::new(move || {
        for (query, bindings) in pending.take().unwrap_or_default() {
            let cursor = sql.exec(query, bindings).map_err(JsValue::from)?;
            crate::meter::sql(&cursor);
        }
        Ok(JsValue::UNDEFINED)
    });
    let raw: &DurableObjectStorage = storage.as_raw();
    let raw: &SyncStorage = raw.unchecked_ref();
    raw.transaction_sync(body.as_ref().unchecked_ref())
        .map(|_| ())
        .map_err(worker::Error::from)
}
