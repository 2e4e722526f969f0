//! The SQL of the Durable Objects' own storage (docs/STORAGE.md): each object's tables and
//! every statement the worker runs on them, in one place, so they can be run natively against
//! SQLite (`object_sql_tests.rs`). The development-only faults object keeps its own.
//!
//! Invariants:
//! - Tables are created on first use with `CREATE ... IF NOT EXISTS`, never altered: an object
//!   keeps the tables it was created with for life.
//! - Tables keyed by text are `WITHOUT ROWID` (since stop 29): the key is the table's own
//!   B-tree, so a row inserted or deleted writes 1 row, not 2 (the row and its key's index),
//!   and Cloudflare bills rows written. Objects created before keep rowid tables of the same
//!   columns; every statement here reads and writes both alike, which the tests check on both.
//! - Every statement names its columns: none depends on a table's column order or rowid.

/// The account object: the account's state and flush bookkeeping (`kv`), and audit records
/// not yet confirmed by D1 (`outbox`: a row per change, [`outbox_row`]).
pub const ACCOUNT_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, record TEXT NOT NULL)",
];

/// The account object's applied Stripe event ids, created with the account's first event.
pub const EVENTS_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS stripe_events (id TEXT PRIMARY KEY, applied_at INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS stripe_events_by_time ON stripe_events (applied_at)",
];

/// Every `kv` row, and a `#outbox` row whose value is 1 when any outbox row waits (no `kv` key
/// starts with `#`).
pub const READ_STATE: &str =
    "SELECT key, value FROM kv UNION ALL SELECT '#outbox', EXISTS (SELECT 1 FROM outbox)";
/// Writes a `kv` row (key, value). An upsert, not `INSERT OR REPLACE`: replacing deletes the row
/// and inserts it again, two rows written where updating the value in place is one.
pub const UPSERT_KV: &str =
    "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value";
/// A `kv` row's value (key).
pub const SELECT_KV: &str = "SELECT value FROM kv WHERE key = ?";
/// Deletes a `kv` row (key).
pub const DELETE_KV: &str = "DELETE FROM kv WHERE key = ?";

/// Adds a change's audit records to the outbox: one row ([`outbox_row`]).
pub const INSERT_OUTBOX: &str = "INSERT INTO outbox (seq, record) VALUES (?, ?)";
/// The oldest outbox rows (limit): each holds at least one record.
pub const SELECT_OUTBOX: &str = "SELECT record FROM outbox ORDER BY seq LIMIT ?";
/// Deletes the rows whose records D1 all confirmed (seq, inclusive: a row's key is its last
/// record's).
pub const DELETE_OUTBOX_THROUGH: &str = "DELETE FROM outbox WHERE seq <= ?";

/// The outbox row of one change's records `(seq, record JSON)`, in `seq` order: keyed by the
/// last record's `seq`, the records one per line (compact JSON holds no raw line break). One
/// row written for the change and one deleted once D1 confirmed it, whatever its number of
/// records (since stop 29; before, a row per record: a row of one record, which reads the same).
/// `None` for no records.
pub fn outbox_row(records: &[(u64, String)]) -> Option<(u64, String)> {
    let last = records.last()?.0;
    let lines: Vec<&str> = records.iter().map(|(_, text)| text.as_str()).collect();
    Some((last, lines.join("\n")))
}

/// The records of outbox rows read oldest first: whole rows, until at least `limit` records.
/// A row is never split: [`DELETE_OUTBOX_THROUGH`] the last record sent then always removes
/// every row read, so a flush that reads its batch from storage cannot read the same rows
/// forever. A batch may therefore hold more than `limit` records (one change's).
pub fn outbox_records<'a>(rows: impl IntoIterator<Item = &'a str>, limit: usize) -> Vec<&'a str> {
    let mut records = Vec::new();
    for row in rows {
        if records.len() >= limit {
            break;
        }
        records.extend(row.split('\n').filter(|line| !line.is_empty()));
    }
    records
}

/// One row when the event was applied (id).
pub const EVENT_APPLIED: &str = "SELECT 1 AS applied FROM stripe_events WHERE id = ?";
/// Records an applied event (id, applied_at); a second time changes nothing.
pub const INSERT_EVENT: &str = "INSERT OR IGNORE INTO stripe_events (id, applied_at) VALUES (?, ?)";
/// Forgets events applied at or before a time (applied_at).
pub const PRUNE_EVENTS: &str = "DELETE FROM stripe_events WHERE applied_at <= ?";

/// An email object (`email:<hash>`): the email's account (`owner`, at most one row) and the
/// account requests answered for it (`requests`, by request id). Created on the object's first
/// account request: a claim object never holds an owner.
pub const EMAIL_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS owner (email TEXT PRIMARY KEY, account_id TEXT NOT NULL, created_at INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS requests (id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, account_id TEXT NOT NULL, outcome TEXT NOT NULL, issued_at INTEGER NOT NULL) WITHOUT ROWID",
];
/// The email's account, if any.
pub const SELECT_OWNER: &str = "SELECT account_id FROM owner LIMIT 1";
/// Records the email's account (email, account_id, created_at).
pub const INSERT_OWNER: &str = "INSERT INTO owner (email, account_id, created_at) VALUES (?, ?, ?)";
/// An answered request (id).
pub const SELECT_REQUEST: &str =
    "SELECT fingerprint, account_id, outcome, issued_at FROM requests WHERE id = ?";
/// Records an answered request (id, fingerprint, account_id, outcome, issued_at).
pub const INSERT_REQUEST: &str =
    "INSERT INTO requests (id, fingerprint, account_id, outcome, issued_at) VALUES (?, ?, ?, ?, ?)";
/// Forgets an account that was never created (account_id), both tables.
pub const DELETE_OWNER_OF: &str = "DELETE FROM owner WHERE account_id = ?";
pub const DELETE_REQUESTS_OF: &str = "DELETE FROM requests WHERE account_id = ?";

/// A claim object (`claims:<hh>`): account request ids and the request each was first used for.
pub const CLAIM_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS claim (id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, email TEXT NOT NULL, claimed_at INTEGER NOT NULL) WITHOUT ROWID";
/// A claimed id's request fingerprint (id).
pub const SELECT_CLAIM: &str = "SELECT fingerprint FROM claim WHERE id = ?";
/// Claims an id (id, fingerprint, email, claimed_at).
pub const INSERT_CLAIM: &str =
    "INSERT INTO claim (id, fingerprint, email, claimed_at) VALUES (?, ?, ?, ?)";

/// A registry object (one per registered domain name): the one resource holding the name.
pub const REGISTRY_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS claim (id INTEGER PRIMARY KEY CHECK (id = 1), account_id TEXT NOT NULL, resource_id TEXT NOT NULL, claimed_at INTEGER NOT NULL)";
/// The name's holder, if any.
pub const SELECT_HOLDER: &str = "SELECT account_id, resource_id FROM claim WHERE id = 1";
/// Records the holder (account_id, resource_id, claimed_at).
pub const INSERT_HOLDER: &str =
    "INSERT INTO claim (id, account_id, resource_id, claimed_at) VALUES (1, ?, ?, ?)";
/// Releases the name.
pub const DELETE_HOLDER: &str = "DELETE FROM claim WHERE id = 1";
