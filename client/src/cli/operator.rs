//! `audit [--verify]`: the account's audit trail from the operator API, with the operator
//! secret (not the orchestrator's).

use crate::cli::fail::Fail;
use crate::cli::session::Cli;
use crate::orchestrator::answer::Answer;
use crate::orchestrator::error::Error;
use crate::Provider;

/// The operator secret of `.dev.vars.example` (development only).
pub const DEV_OPERATOR_SECRET: &str = "op_dev_operator_secret_000000000000000000";

impl Cli<'_> {
    /// `audit [--verify]`: the account's trail from the operator API.
    pub(super) fn audit(&mut self) -> Result<(), Fail> {
        let secret = self
            .p
            .value("operator-secret")
            .map(str::to_string)
            .or_else(|| self.var("APP_OPERATOR_SECRET"))
            .unwrap_or_else(|| DEV_OPERATOR_SECRET.to_string());
        let orch = self.orchestrator()?;
        let account = orch.state().account_id.clone().ok_or_else(|| {
            Error::Local("no account in the state file: start with appctl account-request".into())
        })?;
        let base = orch.provider().base().to_string();
        let operator = Provider::new(&base, "");
        let get = |path: &str| -> Result<Answer, Fail> {
            let reply = operator
                .send(
                    crate::Call::get(path)
                        .signing(crate::Signing::Unsigned)
                        .api_version(None)
                        .bearer(&secret),
                )
                .map_err(Error::Transport)?;
            Ok(Answer::from_reply(reply)?)
        };
        if self.p.has("verify") {
            let v = get(&format!("/v1/accounts/{account}/audit/verify"))?;
            self.emit(&v);
            if v.json["ok"] == true {
                self.say(&format!(
                    "chain ok: {} records, last hash {}",
                    v.json["records"],
                    v.json["last_hash"].as_str().unwrap_or("-")
                ));
            } else {
                self.say(&format!(
                    "chain broken at record {}: {}",
                    v.json["first_break"]["seq"], v.json["first_break"]["reason"]
                ));
                return Err(Fail::Error(Error::Local(
                    "the audit chain does not verify".into(),
                )));
            }
            return Ok(());
        }
        let page = get(&format!("/v1/accounts/{account}/audit?limit=500"))?;
        self.emit(&page);
        let mut text = String::new();
        for r in page.json["data"].as_array().into_iter().flatten() {
            let actor = match r["actor_id"].as_str() {
                Some(id) => format!("{} {id}", r["actor"].as_str().unwrap_or("")),
                None => r["actor"].as_str().unwrap_or("").to_string(),
            };
            text.push_str(&format!(
                "{:>4}  {:<26} {:<40} {}\n",
                r["seq"].as_u64().unwrap_or(0),
                r["action"].as_str().unwrap_or(""),
                actor,
                r["consent"].as_str().unwrap_or("")
            ));
        }
        self.say(text.trim_end());
        Ok(())
    }
}
