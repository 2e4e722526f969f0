//! Discovery commands, which need no session: `health` and `catalog`.

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
        let answer = self.session_free()?.services()?;
        self.emit(&answer);
        self.say(&render::catalog(&answer.json));
        Ok(())
    }
}
