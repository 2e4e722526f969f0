//! Every statement of `object_sql`, run natively on SQLite: on the tables a new object creates
//! (`WITHOUT ROWID` where keyed by text) and on the rowid tables of objects created before stop
//! 29, which keep them. Each object's life runs the same on both, with the answers it relies on.

use rusqlite::types::Value as Sql;
use rusqlite::{params_from_iter, Connection};

use crate::object_sql::*;

/// What objects created before stop 29 made: the same tables and columns, with rowids.
const ROWID_ACCOUNT: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, record TEXT NOT NULL)",
];
const ROWID_EVENTS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS stripe_events (id TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS stripe_events_by_time ON stripe_events (applied_at)",
];
const ROWID_EMAIL: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS owner (email TEXT PRIMARY KEY, account_id TEXT NOT NULL, created_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS requests (id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, account_id TEXT NOT NULL, outcome TEXT NOT NULL, issued_at INTEGER NOT NULL)",
];
const ROWID_CLAIM: &str = "CREATE TABLE IF NOT EXISTS claim (id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, email TEXT NOT NULL, claimed_at INTEGER NOT NULL)";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Layout {
    /// Created by this version.
    New,
    /// Created before stop 29; this version's `CREATE ... IF NOT EXISTS` then finds the tables.
    Rowid,
}

/// An object's database with `tables`: this version's schema on its own, or the old schema
/// followed by this version's, as an old object opened by this version sees it.
fn open(layout: Layout, new: &[&str], old: &[&str]) -> Connection {
    let db = Connection::open_in_memory().expect("SQLite in memory");
    if layout == Layout::Rowid {
        for s in old {
            db.execute(s, []).expect("old schema");
        }
    }
    for s in new {
        db.execute(s, []).expect("schema");
    }
    db
}

fn text(s: &str) -> Sql {
    Sql::Text(s.to_string())
}

/// Rows changed.
fn run(db: &Connection, sql: &str, params: Vec<Sql>) -> usize {
    db.execute(sql, params_from_iter(params))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn rows(db: &Connection, sql: &str, params: Vec<Sql>) -> Vec<Vec<Sql>> {
    let mut statement = db.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let n = statement.column_count();
    statement
        .query_map(params_from_iter(params), |row| {
            (0..n).map(|i| row.get::<_, Sql>(i)).collect()
        })
        .and_then(|rows| rows.collect())
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Whether `table` has rowids (a `WITHOUT ROWID` table refuses to select one).
fn has_rowid(db: &Connection, table: &str) -> bool {
    db.prepare(&format!("SELECT rowid FROM {table}")).is_ok()
}

#[test]
fn new_objects_key_text_tables_without_rowid_and_old_objects_keep_theirs() {
    let cases: [(&[&str], &[&str], &[&str]); 4] = [
        (ACCOUNT_SCHEMA, ROWID_ACCOUNT, &["kv"]),
        (EVENTS_SCHEMA, ROWID_EVENTS, &["stripe_events"]),
        (EMAIL_SCHEMA, ROWID_EMAIL, &["owner", "requests"]),
        (&[CLAIM_SCHEMA], &[ROWID_CLAIM], &["claim"]),
    ];
    for (new, old, tables) in cases {
        let fresh = open(Layout::New, new, old);
        let kept = open(Layout::Rowid, new, old);
        for table in tables {
            assert!(
                !has_rowid(&fresh, table),
                "{table}: a new object's is WITHOUT ROWID"
            );
            assert!(
                has_rowid(&kept, table),
                "{table}: an old object's keeps its rowids"
            );
        }
    }
    // The outbox is keyed by an integer: its key is the rowid already.
    assert!(has_rowid(&open(Layout::New, ACCOUNT_SCHEMA, &[]), "outbox"));
}

fn account_object(layout: Layout) {
    let db = open(layout, ACCOUNT_SCHEMA, ROWID_ACCOUNT);
    let outbox = |waiting: i64| vec![text("#outbox"), Sql::Integer(waiting)];
    assert_eq!(rows(&db, READ_STATE, vec![]), vec![outbox(0)], "{layout:?}");

    // A large state (values are multi-KB JSON) written, then rewritten in place.
    let first = "x".repeat(200_000);
    assert_eq!(run(&db, UPSERT_KV, vec![text("account"), text(&first)]), 1);
    assert_eq!(
        run(&db, UPSERT_KV, vec![text("account"), text("{\"v\":2}")]),
        1
    );
    assert_eq!(
        rows(&db, SELECT_KV, vec![text("account")]),
        vec![vec![text("{\"v\":2}")]]
    );

    // Rows written before stop 29 hold one record each (as an old object may still have);
    // since, a row holds one change's records.
    let record = |seq: u64| format!("{{\"seq\":{seq}}}");
    for seq in 1..=2 {
        let row = vec![Sql::Integer(seq as i64), text(&record(seq))];
        assert_eq!(run(&db, INSERT_OUTBOX, row), 1);
    }
    let change: Vec<(u64, String)> = (3..=5).map(|seq| (seq, record(seq))).collect();
    let (last, change_row) = outbox_row(&change).expect("records");
    assert_eq!(last, 5, "keyed by its last record");
    let row = vec![Sql::Integer(last as i64), text(&change_row)];
    assert_eq!(
        run(&db, INSERT_OUTBOX, row),
        1,
        "{layout:?}: one row for the change"
    );
    assert_eq!(
        rows(&db, READ_STATE, vec![]),
        vec![vec![text("account"), text("{\"v\":2}")], outbox(1)],
        "{layout:?}"
    );
    let read = |limit: i64| -> Vec<String> {
        let found = rows(&db, SELECT_OUTBOX, vec![Sql::Integer(limit)]);
        let texts: Vec<&str> = found
            .iter()
            .map(|r| match &r[0] {
                Sql::Text(t) => t.as_str(),
                other => panic!("record is {other:?}"),
            })
            .collect();
        outbox_records(texts, limit as usize)
            .into_iter()
            .map(str::to_string)
            .collect()
    };
    let all: Vec<String> = (1..=5).map(record).collect();
    assert_eq!(
        read(2),
        all[..2],
        "{layout:?}: the old rows, one record each"
    );
    assert_eq!(
        read(3),
        all,
        "{layout:?}: a change is read whole, past the limit"
    );
    // A batch that ended inside the change deletes the rows it finished; the change's row
    // stays whole until its last record is sent.
    assert_eq!(run(&db, DELETE_OUTBOX_THROUGH, vec![Sql::Integer(4)]), 2);
    assert_eq!(read(50), all[2..], "{layout:?}");
    assert_eq!(run(&db, DELETE_OUTBOX_THROUGH, vec![Sql::Integer(5)]), 1);
    assert_eq!(rows(&db, READ_STATE, vec![]).last(), Some(&outbox(0)));

    // Flush bookkeeping rows come and go.
    assert_eq!(
        run(&db, UPSERT_KV, vec![text("flush_attempts"), text("1")]),
        1
    );
    assert_eq!(rows(&db, READ_STATE, vec![]).len(), 3);
    assert_eq!(run(&db, DELETE_KV, vec![text("flush_attempts")]), 1);
    assert!(rows(&db, SELECT_KV, vec![text("flush_attempts")]).is_empty());
}

#[test]
fn an_account_objects_life_runs_the_same_on_both_layouts() {
    account_object(Layout::New);
    account_object(Layout::Rowid);
}

fn stripe_events(layout: Layout) {
    let db = open(
        layout,
        &[ACCOUNT_SCHEMA, EVENTS_SCHEMA].concat(),
        &[ROWID_ACCOUNT, ROWID_EVENTS].concat(),
    );
    let applied = |id: &str| !rows(&db, EVENT_APPLIED, vec![text(id)]).is_empty();
    assert!(!applied("evt_1"));
    assert_eq!(
        run(&db, INSERT_EVENT, vec![text("evt_1"), Sql::Integer(100)]),
        1
    );
    assert_eq!(
        run(&db, INSERT_EVENT, vec![text("evt_1"), Sql::Integer(120)]),
        0,
        "{layout:?}: a second time changes nothing"
    );
    assert_eq!(
        run(&db, INSERT_EVENT, vec![text("evt_2"), Sql::Integer(200)]),
        1
    );
    assert!(applied("evt_1"));
    assert_eq!(run(&db, PRUNE_EVENTS, vec![Sql::Integer(150)]), 1);
    assert!(!applied("evt_1"), "{layout:?}: pruned");
    assert!(applied("evt_2"), "{layout:?}: kept");
}

#[test]
fn stripe_event_ids_are_kept_and_pruned_the_same_on_both_layouts() {
    stripe_events(Layout::New);
    stripe_events(Layout::Rowid);
}

fn email_object(layout: Layout) {
    let db = open(layout, EMAIL_SCHEMA, ROWID_EMAIL);
    assert!(rows(&db, SELECT_OWNER, vec![]).is_empty());
    let owner = || vec![text("a@x.example"), text("acct_1"), Sql::Integer(10)];
    assert_eq!(run(&db, INSERT_OWNER, owner()), 1);
    assert!(
        db.execute(INSERT_OWNER, params_from_iter(owner())).is_err(),
        "{layout:?}: one owner row per email"
    );
    let request = |id: &str, outcome: &str| {
        vec![
            text(id),
            text("fp"),
            text("acct_1"),
            text(outcome),
            Sql::Integer(10),
        ]
    };
    assert_eq!(run(&db, INSERT_REQUEST, request("req_1", "oauth")), 1);
    assert_eq!(
        run(&db, INSERT_REQUEST, request("req_2", "requires_auth")),
        1
    );
    assert!(
        db.execute(INSERT_REQUEST, params_from_iter(request("req_1", "oauth")))
            .is_err(),
        "{layout:?}: a request id is answered once"
    );
    assert_eq!(rows(&db, SELECT_OWNER, vec![]), vec![vec![text("acct_1")]]);
    assert_eq!(
        rows(&db, SELECT_REQUEST, vec![text("req_2")]),
        vec![vec![
            text("fp"),
            text("acct_1"),
            text("requires_auth"),
            Sql::Integer(10)
        ]]
    );
    assert_eq!(run(&db, DELETE_OWNER_OF, vec![text("acct_1")]), 1);
    assert_eq!(run(&db, DELETE_REQUESTS_OF, vec![text("acct_1")]), 2);
    assert!(rows(&db, SELECT_OWNER, vec![]).is_empty());
    assert!(rows(&db, SELECT_REQUEST, vec![text("req_1")]).is_empty());
}

#[test]
fn an_email_objects_owner_and_requests_work_the_same_on_both_layouts() {
    email_object(Layout::New);
    email_object(Layout::Rowid);
}

fn claim_object(layout: Layout) {
    let db = open(layout, &[CLAIM_SCHEMA], &[ROWID_CLAIM]);
    assert!(rows(&db, SELECT_CLAIM, vec![text("req_1")]).is_empty());
    let claim = || {
        vec![
            text("req_1"),
            text("fp"),
            text("a@x.example"),
            Sql::Integer(10),
        ]
    };
    assert_eq!(run(&db, INSERT_CLAIM, claim()), 1);
    assert!(
        db.execute(INSERT_CLAIM, params_from_iter(claim())).is_err(),
        "{layout:?}: an id is claimed once"
    );
    assert_eq!(
        rows(&db, SELECT_CLAIM, vec![text("req_1")]),
        vec![vec![text("fp")]]
    );
}

#[test]
fn request_id_claims_work_the_same_on_both_layouts() {
    claim_object(Layout::New);
    claim_object(Layout::Rowid);
}

#[test]
fn a_registry_holds_one_name_until_released() {
    let db = open(Layout::New, &[REGISTRY_SCHEMA], &[]);
    assert!(rows(&db, SELECT_HOLDER, vec![]).is_empty());
    let holder = |a: &str| vec![text(a), text("res_1"), Sql::Integer(10)];
    assert_eq!(run(&db, INSERT_HOLDER, holder("acct_1")), 1);
    assert!(db
        .execute(INSERT_HOLDER, params_from_iter(holder("acct_2")))
        .is_err());
    assert_eq!(
        rows(&db, SELECT_HOLDER, vec![]),
        vec![vec![text("acct_1"), text("res_1")]]
    );
    assert_eq!(run(&db, DELETE_HOLDER, vec![]), 1);
    assert!(rows(&db, SELECT_HOLDER, vec![]).is_empty());
}

#[test]
fn an_outbox_row_holds_a_changes_records_one_per_line() {
    assert_eq!(outbox_row(&[]), None);
    // Compact JSON escapes a line break inside a string, so records never hold a raw one.
    let text = serde_json::to_string(&serde_json::json!({"seq": 1, "note": "a\nb"})).unwrap();
    assert!(!text.contains('\n'));
    let records = [(7, text.clone()), (8, "{\"seq\":8}".to_string())];
    let (last, row) = outbox_row(&records).unwrap();
    assert_eq!(last, 8);
    assert_eq!(
        outbox_records([row.as_str()], 50),
        [text.as_str(), "{\"seq\":8}"]
    );
}
