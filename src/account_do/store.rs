//! The account object's storage: the engine's [`Store`] over the object's SQLite.
//!
//! Tables (see docs/STORAGE.md; their SQL is `domain::object_sql`): `kv(key, value)`
//! (`account` -> the account as JSON; `flush_attempts`, `flush_wake` of a failing flush),
//! `outbox(seq, record)` (audit records not yet confirmed by D1, a row per change) and, created
//! on an account's first Stripe event, `stripe_events(id, applied_at)` (applied event ids, for
//! exactly-once delivery within `stripe_events::DEDUPE_WINDOW`; their own table because the
//! state is rewritten on every change).

use std::cell::Cell;

use domain::account::Account;
use domain::audit::AuditRecord;
use domain::engine::outbox::{FLUSH_ATTEMPTS, FLUSH_WAKE};
use domain::engine::{Store, Stored};
use domain::object_sql::{
    outbox_records, outbox_row, ACCOUNT_SCHEMA, DELETE_KV, DELETE_OUTBOX_THROUGH, EVENTS_SCHEMA,
    EVENT_APPLIED, INSERT_EVENT, INSERT_OUTBOX, PRUNE_EVENTS, READ_STATE, SELECT_KV, SELECT_OUTBOX,
    UPSERT_KV,
};
use domain::stripe_events;
use serde_json::Value;
use worker::{SqlStorageValue, State};

use crate::account_do::effects::internal;
use crate::meter;
use crate::rpc::transport::decode;
use crate::storage::{self, Statement};

pub struct SqlStore {
    state: State,
    /// The `stripe_events` table is known to exist.
    events_ready: Cell<bool>,
    /// When this object last deleted expired `stripe_events` ids (unix s; 0: not yet).
    pruned_at: Cell<i64>,
}

impl SqlStore {
    /// Opens the object's storage, creating its tables if needed.
    pub fn open(state: State) -> SqlStore {
        let sql = state.storage().sql();
        for statement in ACCOUNT_SCHEMA {
            match sql.exec(statement, None) {
                Ok(cursor) => meter::sql(&cursor),
                Err(e) => worker::console_error!("account schema: {e}"),
            }
        }
        SqlStore {
            state,
            events_ready: Cell::new(false),
            pruned_at: Cell::new(0),
        }
    }

    /// Makes sure the `stripe_events` table exists: created on an account's first event, so
    /// accounts that never get one (and account creation) do not pay for it.
    fn events_table(&self) -> bool {
        storage::create_once(&self.state.storage(), &self.events_ready, EVENTS_SCHEMA)
            .map_err(|e| internal("events schema", e))
            .is_ok()
    }

    /// Whether this account already applied Stripe event `id`.
    pub fn event_applied(&self, current: &Account, id: &str) -> bool {
        if current.stripe.processed.contains_key(id) {
            return true; // a state written before the table, not moved yet
        }
        if !self.events_table() {
            return false; // the commit below fails the same way: nothing is applied
        }
        !self
            .rows(EVENT_APPLIED, vec![SqlStorageValue::from(id)])
            .is_empty()
    }

    /// The statements recording event `id` as applied, with the deletion of ids past the window
    /// at most once an hour (an id kept a little longer only dedupes a very late replay).
    pub fn applied_event(&self, id: &str, now: i64) -> Vec<Statement> {
        let mut statements = vec![event_row(id, now)];
        if now - self.pruned_at.get() >= 3600 {
            self.pruned_at.set(now);
            statements.push((
                PRUNE_EVENTS,
                vec![SqlStorageValue::from(now - stripe_events::DEDUPE_WINDOW)],
            ));
        }
        statements
    }

    /// The rows `query` selects with `bindings` (none when it fails).
    fn rows(&self, query: &str, bindings: Vec<SqlStorageValue>) -> Vec<Value> {
        self.state
            .storage()
            .sql()
            .exec(query, bindings)
            .and_then(|c| {
                let rows = c.to_array();
                meter::sql(&c);
                rows
            })
            .unwrap_or_default()
    }

    /// States written before the `stripe_events` table kept applied event ids inside the
    /// state; moves them to the table (one transaction). If that fails they stay where they
    /// were, and [`Self::event_applied`] still finds them.
    fn move_legacy_event_ids(&self, account: &mut Account) {
        if !self.events_table() {
            return;
        }
        let ids = std::mem::take(&mut account.stripe.processed);
        let Ok(state_json) = serde_json::to_string(&*account) else {
            account.stripe.processed = ids;
            return;
        };
        let mut statements: Vec<Statement> =
            ids.iter().map(|(id, at)| event_row(id, *at)).collect();
        statements.push(state_row(state_json));
        if let Err(e) = storage::atomically(&self.state.storage(), statements) {
            let _ = internal("move event ids", e);
            account.stripe.processed = ids;
        }
    }
}

impl Store for SqlStore {
    type Extra = Vec<Statement>;

    fn read_state(&self) -> Stored {
        // One statement: the kv rows, and whether any row waits in the outbox (a key no kv row
        // has). A failed read knows nothing: a failed flush is then assumed on record.
        let rows = self.rows(READ_STATE, Vec::new());
        let mut stored = Stored {
            flush_failing: rows.is_empty(),
            ..Stored::default()
        };
        for row in &rows {
            let value = &row["value"];
            match row["key"].as_str() {
                Some("account") => stored.account = value.as_str().and_then(decode_state),
                Some("#outbox") => stored.outbox_empty = value.as_i64() == Some(0),
                Some(FLUSH_ATTEMPTS | FLUSH_WAKE) => stored.flush_failing = true,
                _ => {}
            }
        }
        if let Some(account) = stored.account.as_mut() {
            if !account.stripe.processed.is_empty() {
                self.move_legacy_event_ids(account);
            }
        }
        stored
    }

    fn write(
        &self,
        state_json: String,
        outbox: Vec<(u64, String)>,
        extra: Vec<Statement>,
    ) -> Result<(), String> {
        let mut statements: Vec<Statement> = vec![state_row(state_json)];
        statements.extend(extra);
        if let Some((last, records)) = outbox_row(&outbox) {
            statements.push((
                INSERT_OUTBOX,
                vec![
                    SqlStorageValue::from(last as i64),
                    SqlStorageValue::from(records),
                ],
            ));
        }
        storage::atomically(&self.state.storage(), statements).map_err(|e| e.to_string())
    }

    fn read_outbox(&self, limit: usize) -> Vec<AuditRecord> {
        let rows = self.rows(SELECT_OUTBOX, vec![SqlStorageValue::from(limit as i64)]);
        let rows = rows.iter().filter_map(|r| r.get("record")?.as_str());
        outbox_records(rows, limit)
            .into_iter()
            // serde_json, not `decode`: measured, JSON.parse + serde_wasm_bindgen here took a
            // quarter of code exchange's throughput (BENCHMARKS.md, "Stop 25"); 3.4 KB gzip.
            .filter_map(|record| serde_json::from_str(record).ok())
            .collect()
    }

    fn delete_outbox_through(&self, seq: u64) -> bool {
        let deleted = self.state.storage().sql().exec(
            DELETE_OUTBOX_THROUGH,
            vec![SqlStorageValue::from(seq as i64)],
        );
        match deleted {
            Ok(cursor) => {
                meter::sql(&cursor);
                true
            }
            Err(e) => {
                let _ = internal("delete outbox", e);
                false
            }
        }
    }

    fn kv(&self, key: &str) -> Option<String> {
        let rows = self.rows(SELECT_KV, vec![SqlStorageValue::from(key)]);
        Some(rows.first()?.get("value")?.as_str()?.to_string())
    }

    fn set_kv(&self, key: &str, value: Option<String>) {
        let sql = self.state.storage().sql();
        let done = match value {
            Some(v) => sql.exec(
                UPSERT_KV,
                vec![SqlStorageValue::from(key), SqlStorageValue::from(v)],
            ),
            None => sql.exec(DELETE_KV, vec![SqlStorageValue::from(key)]),
        };
        if let Ok(cursor) = done {
            meter::sql(&cursor);
        }
    }

    async fn alarm(&self) -> Result<Option<i64>, String> {
        self.state
            .storage()
            .get_alarm()
            .await
            .map_err(|e| e.to_string())
    }

    async fn set_alarm(&self, delay_ms: i64) -> Result<(), String> {
        self.state
            .storage()
            .set_alarm(delay_ms)
            .await
            .map_err(|e| e.to_string())
    }

    async fn delete_alarm(&self) -> Result<(), String> {
        self.state
            .storage()
            .delete_alarm()
            .await
            .map_err(|e| e.to_string())
    }
}

/// The stored account, decoded. Not inlined into [`Store::read_state`]: its decoder is the
/// largest function of the object (about 28 KB of wasm), and V8 compiles a function on its first
/// call, so a new account's first request, which finds no state, does not compile it. wasm-opt
/// would merge it back (it inlines single-caller functions) but for `-ocimfs 20` in
/// `scripts/build.sh`.
#[inline(never)]
fn decode_state(text: &str) -> Option<Account> {
    decode(text).ok()
}

/// Writes the account state (JSON).
fn state_row(state_json: String) -> Statement {
    (
        UPSERT_KV,
        vec![
            SqlStorageValue::from("account"),
            SqlStorageValue::from(state_json),
        ],
    )
}

/// Records that event `id` was applied at `at` (unix seconds).
fn event_row(id: &str, at: i64) -> Statement {
    (
        INSERT_EVENT,
        vec![SqlStorageValue::from(id), SqlStorageValue::from(at)],
    )
}
