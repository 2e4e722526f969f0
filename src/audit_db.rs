//! The D1 databases of the audit trail: `AUDIT_SHARDS` of them (1 unless configured), bound
//! as `AUDIT_DB`, `AUDIT_DB_1`, ...; an account's rows live in the one
//! `domain::audit_shards::shard_of` names. Rows of no account (webhook events that matched
//! none, operator calls that name none) go to `AUDIT_DB`, the home shard.

use domain::audit_shards;
use worker::{D1Database, Env};

use crate::config;

/// How many databases the trail is spread over; `Err` names a setting that does not parse.
pub fn shards(env: &Env) -> Result<u32, String> {
    audit_shards::parse(config::string(env, "AUDIT_SHARDS").as_deref())
}

fn bound(env: &Env, shard: u32) -> Result<D1Database, String> {
    let name = audit_shards::binding(shard);
    env.d1(&name).map_err(|e| format!("{name} binding: {e}"))
}

/// The database of `account_id`'s rows.
pub fn of_account(env: &Env, account_id: &str) -> Result<D1Database, String> {
    bound(env, audit_shards::shard_of(account_id, shards(env)?))
}

/// The home shard (`AUDIT_DB`), for rows of no account.
pub fn home(env: &Env) -> Result<D1Database, String> {
    bound(env, 0)
}

/// Every shard, in order (reads that cannot know the account: lists, Stripe id lookups).
pub fn all(env: &Env) -> Result<Vec<D1Database>, String> {
    (0..shards(env)?).map(|s| bound(env, s)).collect()
}
