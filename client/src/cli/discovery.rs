//! Discovery commands, which need no session: `health` and `catalog` (and `catalog validate`,
//! which calls nothing).

use domain::catalog::Catalog;
use serde_json::json;

use crate::cli::fail::Fail;
use crate::cli::render;
use crate::cli::session::Cli;
use crate::orchestrator::session::Orchestrator;
use crate::orchestrator::state::State;

impl Cli<'_> {
    /// The provider for calls that need no session (the state file only gives the URL).
    pub(super) fn session_free(&mut self) -> Result<Orchestrator, Fail> {
        let state_url = State::load(&self.state_path())
            .ok()
            .and_then(|s| s.provider_url);
        Ok(Orchestrator::new(
            self.provider(state_url.as_deref())?,
            State::default(),
        ))
    }

    pub(super) fn health(&mut self) -> Result<(), Fail> {
        let orch = self.session_free()?;
        let provider = orch.provider().clone();
        let answer = orch.health()?;
        self.emit(&answer);
        let versions: Vec<String> = answer.json["supported_versions"]
            .as_array()
            .map(|v| {
                v.iter()
                    .map(|x| x.as_str().unwrap_or("?").to_string())
                    .collect()
            })
            .unwrap_or_default();
        self.say(&format!(
            "{}: {} (supported versions: {})",
            provider.base(),
            answer.json["status"].as_str().unwrap_or("?"),
            versions.join(", ")
        ));
        Ok(())
    }

    pub(super) fn catalog(&mut self) -> Result<(), Fail> {
        match self.p.positionals.as_slice() {
            [] => {}
            [verb, file] if verb == "validate" => {
                let file = file.clone();
                return self.validate_catalog(&file);
            }
            _ => {
                return Err(Fail::Usage(
                    "catalog takes no argument, or validate <file>".into(),
                ))
            }
        }
        let answer = self.session_free()?.services()?;
        self.emit(&answer);
        self.say(&render::catalog(&answer.json));
        Ok(())
    }

    /// `catalog validate <file>`: [`Catalog::parse`], the check `build.rs` makes of
    /// `catalog.json` and the worker of its `CATALOG` setting.
    fn validate_catalog(&mut self, file: &str) -> Result<(), Fail> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Fail::InvalidCatalog(format!("{file}: cannot read it: {e}")))?;
        let catalog =
            Catalog::parse(&text).map_err(|e| Fail::InvalidCatalog(format!("{file}: {e}")))?;
        let ids: Vec<&str> = catalog.services().iter().map(|s| s.id.as_str()).collect();
        if self.json {
            let _ = writeln!(
                self.out,
                "{}",
                json!({"ok": true, "file": file, "services": ids})
            );
        } else {
            self.say(&format!(
                "ok: {file}: {} services ({})",
                ids.len(),
                ids.join(", ")
            ));
        }
        Ok(())
    }
}
