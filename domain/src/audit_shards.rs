//! Which D1 database holds an account's audit trail, when it is spread over several.
//!
//! One D1 database runs one query at a time (about 1,000 a second at 1 ms each), and it is the
//! one write path every account shares; `AUDIT_SHARDS = N` spreads the accounts over N
//! databases, bound as `AUDIT_DB` (shard 0, the database of a single-shard deployment) and
//! `AUDIT_DB_1` ... `AUDIT_DB_<N-1>`. An account's rows (its audit records, its `accounts`
//! row, its webhook events and Stripe objects) all live in its shard, so one account's
//! writes stay one batch in one database.
//!
//! The shard is a jump consistent hash (Lamping and Veach, 2014) of the first 8 bytes of
//! SHA-256 of the account id: the same on every platform and in every version, and with one
//! shard every account is in `AUDIT_DB`. Changing N moves accounts: going from N to N+1 moves
//! about 1/(N+1) of them, each to the new shard only; their earlier rows stay where they were
//! until they are copied (docs/STORAGE.md, re-sharding).

use sha2::{Digest, Sha256};

/// The most databases `AUDIT_SHARDS` may name (a Worker may have far more bindings; this
/// keeps a typo from meaning thousands).
pub const MAX_SHARDS: u32 = 64;

/// The binding of shard `i`: `AUDIT_DB` for 0, then `AUDIT_DB_1`, `AUDIT_DB_2`...
pub fn binding(i: u32) -> String {
    match i {
        0 => "AUDIT_DB".to_string(),
        i => format!("AUDIT_DB_{i}"),
    }
}

/// `AUDIT_SHARDS` as configured: unset or empty is 1; otherwise 1 to [`MAX_SHARDS`].
pub fn parse(value: Option<&str>) -> Result<u32, String> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(1);
    };
    v.parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_SHARDS).contains(n))
        .ok_or_else(|| {
            format!(
                "AUDIT_SHARDS is {v:?}: set it to the number of audit databases bound (1-{MAX_SHARDS}: AUDIT_DB, AUDIT_DB_1, ...), or remove it for one"
            )
        })
}

/// The shard (0..`shards`) of `account_id`'s audit trail.
pub fn shard_of(account_id: &str, shards: u32) -> u32 {
    let digest = Sha256::digest(account_id.as_bytes());
    let mut key = [0u8; 8];
    key.copy_from_slice(&digest[..8]);
    jump(u64::from_be_bytes(key), shards.max(1))
}

/// Jump consistent hash: a bucket in 0..`buckets` for `key`.
fn jump(mut key: u64, buckets: u32) -> u32 {
    let (mut b, mut j) = (-1i64, 0i64);
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("acct_{i:016}")).collect()
    }

    #[test]
    fn one_shard_is_the_existing_database() {
        for id in ids(200) {
            assert_eq!(shard_of(&id, 1), 0);
        }
        assert_eq!(binding(0), "AUDIT_DB");
        assert_eq!(binding(1), "AUDIT_DB_1");
        assert_eq!(binding(12), "AUDIT_DB_12");
    }

    #[test]
    fn the_shard_of_an_id_never_changes_between_versions() {
        // Fixed vectors: a change here moves existing accounts' audit trails.
        let got: Vec<u32> = [
            "acct_aaaaaaaaaaaaaaaa",
            "acct_bbbbbbbbbbbbbbbb",
            "acct_local_cli",
        ]
        .iter()
        .map(|id| shard_of(id, 2))
        .collect();
        assert_eq!(got, GOLDEN_2);
        let got: Vec<u32> = [
            "acct_aaaaaaaaaaaaaaaa",
            "acct_bbbbbbbbbbbbbbbb",
            "acct_local_cli",
        ]
        .iter()
        .map(|id| shard_of(id, 8))
        .collect();
        assert_eq!(got, GOLDEN_8);
    }
    const GOLDEN_2: [u32; 3] = [0, 1, 1];
    const GOLDEN_8: [u32; 3] = [4, 1, 2];

    #[test]
    fn accounts_spread_evenly() {
        let ids = ids(8000);
        for n in [2u32, 3, 8] {
            let mut counts = vec![0usize; n as usize];
            for id in &ids {
                let s = shard_of(id, n);
                assert!(s < n);
                counts[s as usize] += 1;
            }
            let even = ids.len() / n as usize;
            for c in counts {
                assert!(c.abs_diff(even) < even / 10, "{n} shards: {c} vs {even}");
            }
        }
    }

    #[test]
    fn one_more_shard_moves_only_its_share_and_only_to_it() {
        let ids = ids(8000);
        for n in 1u32..8 {
            let moved: Vec<&String> = ids
                .iter()
                .filter(|id| shard_of(id, n) != shard_of(id, n + 1))
                .collect();
            assert!(moved.iter().all(|id| shard_of(id, n + 1) == n));
            let share = ids.len() / (n as usize + 1);
            assert!(moved.len().abs_diff(share) < share / 5, "{n} -> {}", n + 1);
        }
    }

    #[test]
    fn the_setting_is_a_count_of_bound_databases() {
        assert_eq!(parse(None), Ok(1));
        assert_eq!(parse(Some("")), Ok(1));
        assert_eq!(parse(Some(" 2 ")), Ok(2));
        assert_eq!(parse(Some("64")), Ok(64));
        for bad in ["0", "65", "-1", "two", "1.5"] {
            let e = parse(Some(bad)).unwrap_err();
            assert!(e.contains("AUDIT_SHARDS"), "{e}");
        }
    }
}
