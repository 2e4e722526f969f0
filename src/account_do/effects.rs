//! The account object's world: the engine's [`Effects`] over the worker's clock,
//! configuration, outbound calls (`external`) and D1 (`audit_sink`).

use domain::account::{Account, AccountError};
use domain::audit::AuditRecord;
use domain::engine::{Effects, Level};
use domain::resources::{Action, ActionResult, Settings};
use serde_json::{json, Value};
use worker::Env;

use crate::http::now_ms;
use crate::{audit_sink, config, external};

pub struct WorkerEffects {
    pub env: Env,
}

/// Logs an internal failure; the caller is told the account is unavailable.
pub fn internal(context: &str, e: impl std::fmt::Display) -> AccountError {
    worker::console_error!(
        "{}",
        json!({"level": "error", "msg": context, "detail": e.to_string()})
    );
    AccountError::Unavailable
}

impl Effects for WorkerEffects {
    fn now_ms(&self) -> i64 {
        now_ms() as i64
    }

    fn audit_batch_ms(&self) -> i64 {
        config::audit_batch_ms(&self.env)
    }

    fn payment_grace(&self) -> i64 {
        config::payment_grace(&self.env)
    }

    fn settings(&self) -> Settings {
        Settings {
            root_zone: config::string(&self.env, "ROOT_ZONE")
                .unwrap_or_else(|| "apps.example.dev".into()),
            ..Settings::default()
        }
    }

    async fn perform(&self, account: &Account, resource_id: &str, action: Action) -> ActionResult {
        external::execute(&self.env, account, resource_id, action).await
    }

    async fn write_audit(&self, records: &[AuditRecord]) -> Result<(), String> {
        audit_sink::write(&self.env, records).await
    }

    fn log(&self, level: Level, line: Value) {
        match level {
            Level::Warn => worker::console_warn!("{line}"),
            Level::Error => worker::console_error!("{line}"),
        }
    }
}
