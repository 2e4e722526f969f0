//! The development fault switch: makes the next N D1 writes of audit records fail, to prove the
//! outbox loses nothing (`POST /dev/faults`). It exists only when `ENVIRONMENT=development` and
//! `FAULT_INJECTION=enabled`; otherwise the endpoint is a 404 and no write ever asks.
//!
//! The counter lives in one Durable Object (`FAULTS`, name `global`) so every account object
//! sees the same switch.

use serde::{Deserialize, Serialize};
use worker::{
    durable_object, DurableObject, Env, Request, Response, Result, SqlStorageValue, State,
};

use crate::config;

pub fn enabled(env: &Env) -> bool {
    config::is_development(env)
        && config::string(env, "FAULT_INJECTION").as_deref() == Some("enabled")
}

/// Faults are per account (`account_id`), or for every account (`*`).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultOp {
    Set {
        d1_write_failures: u32,
        account_id: String,
    },
    Take {
        account_id: String,
    },
}

#[derive(Serialize, Deserialize)]
pub struct FaultState {
    pub d1_write_failures: u32,
    /// For `take`: whether this write must fail.
    pub fail: bool,
}

async fn call(env: &Env, op: &FaultOp) -> Option<FaultState> {
    let stub = crate::rpc::transport::stub(env, "FAULTS", "global").ok()?;
    let text = crate::rpc::transport::post(stub, op).await.ok()?;
    crate::rpc::transport::decode(&text).ok()
}

/// True when this D1 write of `account_id`'s records must fail (and counts it).
pub async fn take_d1_failure(env: &Env, account_id: &str) -> bool {
    if !enabled(env) {
        return false;
    }
    call(
        env,
        &FaultOp::Take {
            account_id: account_id.to_string(),
        },
    )
    .await
    .is_some_and(|s| s.fail)
}

pub async fn set(env: &Env, failures: u32, account_id: &str) -> Option<FaultState> {
    call(
        env,
        &FaultOp::Set {
            d1_write_failures: failures,
            account_id: account_id.to_string(),
        },
    )
    .await
}

#[durable_object]
pub struct Faults {
    state: State,
}

impl DurableObject for Faults {
    fn new(state: State, _env: Env) -> Self {
        let _ = state.storage().sql().exec(
            "CREATE TABLE IF NOT EXISTS faults (target TEXT PRIMARY KEY, d1_write_failures INTEGER NOT NULL)",
            None,
        );
        Faults { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let op: FaultOp = req.json().await?;
        let sql = self.state.storage().sql();
        #[derive(Deserialize)]
        struct Row {
            d1_write_failures: i64,
        }
        let count = |target: &str| -> Result<u32> {
            Ok(sql
                .exec(
                    "SELECT d1_write_failures FROM faults WHERE target = ?",
                    vec![SqlStorageValue::from(target)],
                )?
                .to_array::<Row>()?
                .first()
                .map(|r| r.d1_write_failures.max(0) as u32)
                .unwrap_or(0))
        };
        let (target, next, fail) = match op {
            FaultOp::Set {
                d1_write_failures,
                account_id,
            } => (account_id, d1_write_failures, false),
            FaultOp::Take { account_id } => {
                // The account's own switch first, then the global one.
                let own = count(&account_id)?;
                if own > 0 {
                    (account_id, own - 1, true)
                } else {
                    let all = count("*")?;
                    ("*".to_string(), all.saturating_sub(1), all > 0)
                }
            }
        };
        sql.exec(
            "INSERT OR REPLACE INTO faults (target, d1_write_failures) VALUES (?, ?)",
            vec![
                SqlStorageValue::from(target),
                SqlStorageValue::from(next as i64),
            ],
        )?;
        Response::from_json(&FaultState {
            d1_write_failures: next,
            fail,
        })
    }
}
