//! The audit trail's insert into D1 (`audit_events`, migrations/0001 and 0004): its columns,
//! and one statement for several records.
//!
//! Several rows per statement, not one: a D1 database runs one statement at a time, so its
//! throughput counts statements, not rows (BENCHMARKS.md, "The D1 ceiling"). D1 binds at most
//! 100 parameters to a statement, hence [`ROWS_PER_INSERT`]. `INSERT OR IGNORE`: rows are
//! keyed by (account_id, seq), so a batch sent again inserts nothing twice.

/// The columns bound per record, in order.
pub const COLUMNS: [&str; 14] = [
    "account_id",
    "seq",
    "at",
    "actor",
    "actor_id",
    "on_behalf_of",
    "action",
    "request_id",
    "consent",
    "before",
    "after",
    "prev_hash",
    "hash",
    "authentication",
];

/// Most parameters D1 binds to one statement.
pub const D1_MAX_PARAMETERS: usize = 100;

/// Records per statement.
pub const ROWS_PER_INSERT: usize = D1_MAX_PARAMETERS / COLUMNS.len();

/// `INSERT OR IGNORE` of `rows` records (at most [`ROWS_PER_INSERT`]), parameters in
/// [`COLUMNS`] order, record after record.
pub fn insert(rows: usize) -> String {
    let row = format!("({})", ["?"; COLUMNS.len()].join(", "));
    format!(
        "INSERT OR IGNORE INTO audit_events ({}) VALUES {}",
        COLUMNS.join(", "),
        vec![row; rows].join(", ")
    )
}

#[cfg(test)]
mod tests {
    use rusqlite::types::Value as Sql;
    use rusqlite::{params_from_iter, Connection};

    use super::*;

    /// An audit database as `migrations/` makes it.
    fn migrated() -> Connection {
        let db = Connection::open_in_memory().unwrap();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|f| f.unwrap().path())
            .collect();
        files.sort();
        for file in files {
            db.execute_batch(&std::fs::read_to_string(&file).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        }
        db
    }

    fn record(seq: i64) -> Vec<Sql> {
        COLUMNS
            .iter()
            .map(|c| match *c {
                "seq" | "at" => Sql::Integer(seq),
                "actor_id" | "on_behalf_of" | "request_id" | "consent" | "authentication" => {
                    Sql::Null
                }
                c => Sql::Text(format!("{c}-{seq}")),
            })
            .collect()
    }

    /// Inserts records `seqs` as the worker does: [`ROWS_PER_INSERT`] per statement.
    fn insert_all(db: &Connection, seqs: &[i64]) -> usize {
        seqs.chunks(ROWS_PER_INSERT)
            .map(|rows| {
                let values = rows.iter().flat_map(|s| record(*s));
                db.execute(&insert(rows.len()), params_from_iter(values))
                    .unwrap()
            })
            .sum()
    }

    #[test]
    fn a_statement_binds_what_d1_allows() {
        assert_eq!(ROWS_PER_INSERT, 7);
        assert!(ROWS_PER_INSERT * COLUMNS.len() <= D1_MAX_PARAMETERS);
        let sql = insert(ROWS_PER_INSERT);
        assert_eq!(sql.matches('?').count(), ROWS_PER_INSERT * COLUMNS.len());
    }

    #[test]
    fn records_land_in_their_columns_several_per_statement_once() {
        let db = migrated();
        let seqs: Vec<i64> = (1..=16).collect();
        assert_eq!(insert_all(&db, &seqs), 16, "3 statements: 7, 7 and 2 rows");
        assert_eq!(
            insert_all(&db, &seqs[5..9]),
            0,
            "a batch sent again inserts nothing"
        );
        let (count, hash_9, actor_9): (i64, String, String) = db
            .query_row(
                "SELECT (SELECT COUNT(*) FROM audit_events), hash, actor FROM audit_events \
                 WHERE account_id = 'account_id-9' AND seq = 9",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            (count, hash_9.as_str(), actor_9.as_str()),
            (16, "hash-9", "actor-9")
        );
    }
}
