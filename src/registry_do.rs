//! The registry Durable Object of the builtin registrar: one per domain name, so claiming a
//! name is atomic. The first claim wins; the same (account, resource) claiming again is a no-op;
//! only the holder can release it.
//!
//! Storage (SQLite): `claim(id = 1, account_id, resource_id, claimed_at)`: at most one row.

use domain::object_sql::{DELETE_HOLDER, INSERT_HOLDER, REGISTRY_SCHEMA, SELECT_HOLDER};
use serde::Deserialize;
use worker::{
    durable_object, DurableObject, Env, Request, Response, Result, SqlStorageValue, State,
};

use crate::http::now_ms;
use crate::meter;
use crate::rpc::registry::{RegistryAnswer, RegistryOp};

#[durable_object]
pub struct Registry {
    state: State,
    env: Env,
}

#[derive(Deserialize)]
struct Row {
    account_id: String,
    resource_id: String,
}

impl Registry {
    fn holder(&self) -> Option<Row> {
        self.state
            .storage()
            .sql()
            .exec(SELECT_HOLDER, None)
            .and_then(|c| {
                let rows = c.to_array::<Row>();
                meter::sql(&c);
                rows
            })
            .ok()?
            .into_iter()
            .next()
    }
}

impl DurableObject for Registry {
    fn new(state: State, env: Env) -> Self {
        let _ = state.storage().sql().exec(REGISTRY_SCHEMA, None);
        Registry { state, env }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let started = meter::object_request(&self.env);
        let answer = self.serve(req).await;
        meter::object_done(&self.env, started);
        answer
    }
}

impl Registry {
    async fn serve(&self, mut req: Request) -> Result<Response> {
        let op: RegistryOp = match req.json().await {
            Ok(op) => op,
            Err(e) => return Response::error(format!("bad internal call: {e}"), 400),
        };
        let sql = self.state.storage().sql();
        let holder = self.holder();
        let is = |a: &str, r: &str| {
            holder
                .as_ref()
                .is_some_and(|h| h.account_id == a && h.resource_id == r)
        };
        let answer = match op {
            RegistryOp::Status => RegistryAnswer {
                taken: holder.is_some(),
                owned: false,
            },
            RegistryOp::Claim {
                account_id,
                resource_id,
            } => {
                if holder.is_none() {
                    meter::sql(&sql.exec(
                        INSERT_HOLDER,
                        vec![
                            SqlStorageValue::from(account_id.as_str()),
                            SqlStorageValue::from(resource_id.as_str()),
                            SqlStorageValue::from((now_ms() / 1000) as i64),
                        ],
                    )?);
                    RegistryAnswer {
                        taken: true,
                        owned: true,
                    }
                } else {
                    RegistryAnswer {
                        taken: true,
                        owned: is(&account_id, &resource_id),
                    }
                }
            }
            RegistryOp::Release {
                account_id,
                resource_id,
            } => {
                if is(&account_id, &resource_id) {
                    meter::sql(&sql.exec(DELETE_HOLDER, None)?);
                    RegistryAnswer {
                        taken: false,
                        owned: false,
                    }
                } else {
                    RegistryAnswer {
                        taken: holder.is_some(),
                        owned: false,
                    }
                }
            }
        };
        Response::from_json(&answer)
    }
}
