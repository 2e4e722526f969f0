//! The operator API's commands, with the operator secret (not the orchestrator's): `audit
//! [--verify]` (the account's audit trail), and, standing in for the operator's platform in
//! local development, `usage` (a usage report) and `credit` (a credit grant).

use crate::cli::fail::Fail;
use crate::cli::session::Cli;
use crate::orchestrator::answer::Answer;
use crate::orchestrator::error::Error;
use crate::Provider;
use serde_json::{json, Value};

/// A fresh key for a report or grant sent without `--key`.
fn new_key() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("appctl-{nanos}")
}

/// RFC 3339 for unix seconds (UTC).
fn domain_time(t: i64) -> String {
    domain::time::format_rfc3339(t)
}

/// The operator secret of `.dev.vars.example` (development only).
pub const DEV_OPERATOR_SECRET: &str = "op_dev_operator_secret_000000000000000000";

impl Cli<'_> {
    fn operator_secret(&self) -> String {
        self.p
            .value("operator-secret")
            .map(str::to_string)
            .or_else(|| self.var("APP_OPERATOR_SECRET"))
            .unwrap_or_else(|| DEV_OPERATOR_SECRET.to_string())
    }

    /// POSTs `body` to the operator API at `path`.
    fn operator_post(&mut self, base: &str, path: &str, body: &Value) -> Result<Answer, Fail> {
        let secret = self.operator_secret();
        let reply = Provider::new(base, "")
            .send(
                crate::Call::post_json(path, body)
                    .signing(crate::Signing::Unsigned)
                    .api_version(None)
                    .bearer(&secret),
            )
            .map_err(Error::Transport)?;
        Ok(Answer::from_reply(reply)?)
    }

    fn cents(&self, flag: &str) -> Result<u64, Fail> {
        let v = self
            .p
            .value(flag)
            .ok_or_else(|| Fail::Usage(format!("--{flag} is required")))?;
        v.parse::<u64>()
            .map_err(|_| Fail::Usage(format!("--{flag} must be a whole number, got {v:?}")))
    }

    /// `usage <id|service_id> --amount <cents>`: a usage report, as the platform sends it.
    pub(super) fn usage(&mut self) -> Result<(), Fail> {
        let amount = self.cents("amount")?;
        let quantity = match self.p.value("quantity") {
            Some(_) => self.cents("quantity")?,
            None => amount,
        };
        let orch = self.orchestrator()?;
        let id = self.target(&orch)?;
        let account = orch.state().account_id.clone().ok_or_else(|| {
            Error::Local("no account in the state file: start with appctl account-request".into())
        })?;
        let key = self
            .p
            .value("key")
            .map(str::to_string)
            .unwrap_or_else(new_key);
        let now = crate::unix_now();
        let body = json!({"account_id": account, "resource_id": id, "quantity": quantity,
                          "amount": amount, "currency": self.p.value("currency").unwrap_or("usd"),
                          "idempotency_key": key,
                          "occurred_at": domain_time(now)});
        let base = orch.provider().base().to_string();
        let answer = self.operator_post(&base, "/v1/usage", &body)?;
        self.emit(&answer);
        let r = &answer.json;
        self.say(&format!(
            "recorded {} (key {}){}: this month {} of a {} cap{}",
            r["amount"],
            r["id"].as_str().unwrap_or(""),
            if r["replayed"] == true { " again" } else { "" },
            r["spent_this_month"],
            r["cap"],
            if r["paused"] == true {
                "; the resource is paused by the cap"
            } else {
                ""
            }
        ));
        Ok(())
    }

    /// `credit --amount <cents> --reason <text>`: a credit grant, as the operator makes it.
    pub(super) fn credit(&mut self) -> Result<(), Fail> {
        let amount = self.cents("amount")?;
        let reason = self
            .p
            .value("reason")
            .ok_or_else(|| Fail::Usage("--reason is required".into()))?
            .to_string();
        let days = match self.p.value("days") {
            Some(_) => self.cents("days")?,
            None => 90,
        };
        let orch = self.orchestrator()?;
        let account = orch.state().account_id.clone().ok_or_else(|| {
            Error::Local("no account in the state file: start with appctl account-request".into())
        })?;
        let key = self
            .p
            .value("key")
            .map(str::to_string)
            .unwrap_or_else(new_key);
        let expires = domain_time(crate::unix_now() + days as i64 * 86_400);
        let body = json!({"amount": amount, "currency": self.p.value("currency").unwrap_or("usd"),
                          "expires_at": expires,
                          "reason": reason, "idempotency_key": key});
        let base = orch.provider().base().to_string();
        let answer =
            self.operator_post(&base, &format!("/v1/accounts/{account}/credits"), &body)?;
        self.emit(&answer);
        self.say(&format!(
            "granted {} cents until {} ({})",
            answer.json["amount"],
            answer.json["expires_at"].as_str().unwrap_or(""),
            answer.json["id"].as_str().unwrap_or("")
        ));
        Ok(())
    }

    /// `audit [--verify]`: the account's trail from the operator API.
    pub(super) fn audit(&mut self) -> Result<(), Fail> {
        let secret = self.operator_secret();
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
