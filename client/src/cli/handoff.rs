//! What the developer takes from the session: `deep-link` (a single-use dashboard link),
//! `env` (the complete resources' access configuration as a `.env` file) and `status` (the
//! state file, read locally; nothing is sent).

use std::path::PathBuf;

use domain::wire::ResourceStatus;
use serde_json::json;

use crate::cli::fail::Fail;
use crate::cli::render;
use crate::cli::session::Cli;
use crate::orchestrator::error::Error;
use crate::orchestrator::state::State;
use crate::unix_now;

impl Cli<'_> {
    pub(super) fn deep_link(&mut self) -> Result<(), Fail> {
        let mut orch = self.orchestrator()?;
        let answer = orch.deep_link()?;
        self.emit(&answer);
        let url = answer.json["url"].as_str().unwrap_or("").to_string();
        self.say(&url);
        if let Some(at) = answer.json["expires_at"].as_str() {
            self.note(&format!("single use, valid until {at}"));
        }
        Ok(())
    }

    pub(super) fn env_file(&mut self) -> Result<(), Fail> {
        let file = PathBuf::from(self.p.value("file").unwrap_or(".env"));
        let mut orch = self.orchestrator()?;
        let records = orch.state().resources.clone();
        let mut vars: Vec<(String, String)> = Vec::new();
        let mut origin: Vec<String> = Vec::new();
        let mut sources = Vec::new();
        for record in &records {
            let answer = match orch.get_resource(&record.id) {
                Ok(a) => a,
                Err(Error::Protocol(e)) if e.code == "resource_not_found" => {
                    self.note(&format!(
                        "warning: {} is gone from the provider; forgotten",
                        record.id
                    ));
                    orch.state_mut().forget_resource(&record.id);
                    orch.save()?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let status = answer.resource_status().to_string();
            let complete = answer
                .resource()
                .filter(|r| r.status == ResourceStatus::Complete)
                .and_then(|r| r.complete);
            let Some(complete) = complete else {
                self.note(&format!(
                    "skipping {} ({}): {status}",
                    record.id, record.service_id
                ));
                continue;
            };
            sources.push(record.id.clone());
            for (key, value) in complete.access_configuration {
                if !crate::dotenv::valid_key(&key) {
                    self.note(&format!(
                        "warning: skipping {key:?} of {}: not a variable name",
                        record.id
                    ));
                    continue;
                }
                match vars.iter().position(|(k, _)| *k == key) {
                    Some(i) if vars[i].1 != value => self.note(&format!(
                        "warning: {key} of {} differs from {}'s; kept the first",
                        record.id, origin[i]
                    )),
                    Some(_) => {}
                    None => {
                        vars.push((key, value));
                        origin.push(record.id.clone());
                    }
                }
            }
        }
        let keys: Vec<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
        if self.json {
            let _ = writeln!(
                self.out,
                "{}",
                json!({"file": file.display().to_string(), "keys": keys, "resources": sources})
            );
        }
        if vars.is_empty() {
            self.say("no complete resource: nothing written");
            return Ok(());
        }
        crate::dotenv::write_file(&file, &vars)
            .map_err(|e| Error::Local(format!("writing {}: {e}", file.display())))?;
        let text = format!(
            "wrote {} keys to {}: {}",
            keys.len(),
            file.display(),
            keys.join(", ")
        );
        self.say(&text);
        Ok(())
    }

    pub(super) fn status(&mut self) -> Result<(), Fail> {
        let path = self.state_path();
        let exists = path.exists();
        let state = State::load(&path)?;
        if self.json {
            let _ = writeln!(self.out, "{}", render::state_json(&state));
            return Ok(());
        }
        if !exists {
            self.say(&format!(
                "state file {} does not exist yet: nothing known (start with appctl account-request)",
                path.display()
            ));
            return Ok(());
        }
        self.say(&render::state(
            &state,
            &path.display().to_string(),
            unix_now(),
        ));
        Ok(())
    }
}
