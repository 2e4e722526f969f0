//! What the orchestrator remembers between commands: the state file. It holds tokens, so it is
//! written atomically and readable by its owner only (0600); unknown fields are ignored so an
//! older appctl reads a newer file.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::orchestrator::error::Error;

/// An access token this close to its expiry (seconds) is refreshed before use.
const EXPIRY_MARGIN_SECONDS: i64 = 10;

/// A resource as the state file remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceRecord {
    pub id: String,
    pub service_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// The last status the provider gave.
    #[serde(default)]
    pub status: String,
    /// The `--name` it was added with (the last part of its `orchestrator_resource_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// What the orchestrator remembers between commands (the CLI's state file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The provider these tokens and resources belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_request_id: Option<String>,
    /// The last authorization code not yet exchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_code: Option<String>,
    /// The PKCE verifier of the last account request, when it had a challenge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkce_verifier: Option<String>,
    #[serde(default)]
    pub resources: Vec<ResourceRecord>,
}

impl State {
    /// Parses a state file's text.
    pub fn parse(text: &str) -> Result<State, Error> {
        serde_json::from_str(text).map_err(|e| Error::Local(format!("unreadable state: {e}")))
    }

    /// The state as the file holds it (pretty JSON, ending with a newline).
    pub fn to_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into());
        text.push('\n');
        text
    }

    /// Reads `path`; a missing file is an empty state.
    pub fn load(path: &Path) -> Result<State, Error> {
        match std::fs::read_to_string(path) {
            Ok(text) => State::parse(&text).map_err(|e| {
                Error::Local(format!(
                    "{}: {e}; move it away to start over",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(Error::Local(format!("reading {}: {e}", path.display()))),
        }
    }

    /// Writes `path` atomically, readable by its owner only (0600): it holds tokens.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        crate::dotenv::write_atomically(path, self.to_text().as_bytes(), 0o600)
            .map_err(|e| Error::Local(format!("writing {}: {e}", path.display())))
    }

    /// True when the access token is known to expire within the margin.
    pub fn token_expired(&self, now: i64) -> bool {
        self.token_expires_at
            .is_some_and(|at| now >= at - EXPIRY_MARGIN_SECONDS)
    }

    /// Remembers (or updates) the resource a provider answer describes.
    pub fn record_resource(&mut self, resource: &Value) {
        let (Some(id), Some(service_id)) =
            (resource["id"].as_str(), resource["service_id"].as_str())
        else {
            return;
        };
        let record = ResourceRecord {
            id: id.to_string(),
            service_id: service_id.to_string(),
            project_id: resource["project_id"].as_str().map(str::to_string),
            status: resource["status"].as_str().unwrap_or("").to_string(),
            name: resource["orchestrator_resource_id"]
                .as_str()
                .and_then(|o| o.rsplit('/').next())
                .map(str::to_string),
        };
        match self.resources.iter_mut().find(|r| r.id == id) {
            Some(existing) => {
                if record.project_id.is_none() {
                    let project = existing.project_id.take();
                    *existing = ResourceRecord {
                        project_id: project,
                        ..record
                    };
                } else {
                    *existing = record;
                }
            }
            None => self.resources.push(record),
        }
    }

    pub fn forget_resource(&mut self, id: &str) {
        self.resources.retain(|r| r.id != id);
    }

    /// The resource id `target` names: a known id, else the one known resource of that service
    /// (in `project` when given), else `target` itself (the provider will say if it is unknown).
    pub fn resolve(&self, target: &str, project: Option<&str>) -> Result<String, Error> {
        if self.resources.iter().any(|r| r.id == target) {
            return Ok(target.to_string());
        }
        let named: Vec<&ResourceRecord> = self
            .resources
            .iter()
            .filter(|r| r.name.as_deref() == Some(target))
            .filter(|r| project.is_none() || r.project_id.as_deref() == project)
            .collect();
        if let [one] = named.as_slice() {
            return Ok(one.id.clone());
        }
        let matches: Vec<&ResourceRecord> = self
            .resources
            .iter()
            .filter(|r| r.service_id == target)
            .filter(|r| project.is_none() || r.project_id.as_deref() == project)
            .collect();
        match matches.as_slice() {
            [] => Ok(target.to_string()),
            [one] => Ok(one.id.clone()),
            many => Err(Error::Local(format!(
                "several resources of service {target}: {}; name one by id or pass --project",
                many.iter()
                    .map(|r| format!(
                        "{} (project {})",
                        r.id,
                        r.project_id.as_deref().unwrap_or("?")
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The account's plan as far as this state knows: a live resource of a `plan` service.
    pub fn current_plan(&self, catalog: &Value) -> Option<String> {
        self.resources
            .iter()
            .filter(|r| r.status != "removed" && r.status != "errored")
            .find(|r| {
                crate::services::find(catalog, &r.service_id)
                    .is_some_and(|s| crate::services::kind(s) == "plan")
            })
            .map(|r| r.service_id.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(id: &str, service: &str, project: &str, status: &str) -> ResourceRecord {
        ResourceRecord {
            id: id.into(),
            service_id: service.into(),
            project_id: Some(project.into()),
            status: status.into(),
            name: None,
        }
    }

    #[test]
    fn state_round_trip() {
        let state = State {
            provider_url: Some("http://127.0.0.1:8787".into()),
            account_id: Some("acct_1".into()),
            access_token: Some("at".into()),
            refresh_token: Some("rt".into()),
            token_expires_at: Some(1_900_000_000),
            scope: Some("resources:read resources:write".into()),
            account_request_id: Some("acctreq_1".into()),
            last_code: Some("code".into()),
            pkce_verifier: Some("v".repeat(43)),
            resources: vec![record("res_1", "free", "proj_local", "complete")],
        };
        assert_eq!(State::parse(&state.to_text()).expect("parse"), state);
        // Unknown fields (a newer appctl) are ignored; an empty object is an empty state.
        assert_eq!(State::parse("{\"x\":1}").expect("parse"), State::default());
        assert_eq!(State::default().to_text(), "{\n  \"resources\": []\n}\n");
        assert!(State::parse("[").is_err());

        let dir = std::env::temp_dir().join(format!("appctl-state-{}", std::process::id()));
        let path = dir.join(".appctl").join("state.json");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(State::load(&path).expect("missing"), State::default());
        state.save(&path).expect("save");
        assert_eq!(State::load(&path).expect("load"), state);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "not json").expect("write");
        let err = State::load(&path).expect_err("bad file");
        assert!(err.to_string().contains("start over"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn resources_are_recorded_and_resolved() {
        let mut s = State::default();
        s.record_resource(
            &json!({"id": "res_1", "service_id": "free", "project_id": "p1", "status": "complete"}),
        );
        s.record_resource(&json!({"id": "res_2", "service_id": "api_token", "project_id": "p1", "status": "pending"}));
        s.record_resource(&json!({"id": "res_3", "service_id": "api_token", "project_id": "p2", "status": "complete"}));
        // An answer without project keeps the known one.
        s.record_resource(&json!({"id": "res_2", "service_id": "api_token", "status": "complete"}));
        s.record_resource(&json!({"status": "removed"}));
        assert_eq!(s.resources.len(), 3);
        assert_eq!(
            s.resources[1],
            record("res_2", "api_token", "p1", "complete")
        );

        assert_eq!(s.resolve("res_3", None).expect("id"), "res_3");
        assert_eq!(s.resolve("free", None).expect("service"), "res_1");
        assert_eq!(
            s.resolve("api_token", Some("p2")).expect("project"),
            "res_3"
        );
        let err = s.resolve("api_token", None).expect_err("ambiguous");
        assert!(err.to_string().contains("res_2 (project p1)"), "{err}");
        assert_eq!(
            s.resolve("res_unknown", None).expect("pass through"),
            "res_unknown"
        );

        let catalog = json!({"data": [{"id": "free", "kind": "plan"}, {"id": "api_token", "kind": "deployable"}]});
        assert_eq!(s.current_plan(&catalog).as_deref(), Some("free"));
        s.forget_resource("res_1");
        assert_eq!(s.current_plan(&catalog), None);
    }

    #[test]
    fn token_expiry() {
        let mut s = State::default();
        assert!(!s.token_expired(100));
        s.token_expires_at = Some(1000);
        assert!(!s.token_expired(989));
        assert!(s.token_expired(990));
    }
}
