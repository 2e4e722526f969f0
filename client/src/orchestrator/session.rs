//! The orchestrator's session with one provider: the protocol flows built from [`Provider`]'s
//! calls (account request, code exchange, refresh, resource calls). Invariants: a state's
//! tokens and code are only ever sent to the provider they belong to (`check_provider`); the
//! state is saved after every change when the session was opened from a file; a bearer call
//! refused with `invalid_token` is refreshed and retried at most once.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::orchestrator::account_request::{AccountOutcome, AccountRequest, Outcome};
use crate::orchestrator::answer::Answer;
use crate::orchestrator::error::Error;
use crate::orchestrator::random::random_hex;
use crate::orchestrator::state::State;
use crate::{unix_now, Provider, Reply, TransportError};
use domain::wire::{AccountRequestOutcome, RemovedAck, TokenResponse};

/// The orchestrator's session with one provider: owns the [`State`] and saves it after every
/// change when it was opened from a file.
pub struct Orchestrator {
    provider: Provider,
    state: State,
    path: Option<PathBuf>,
}

impl Orchestrator {
    /// A session kept in memory only.
    pub fn new(provider: Provider, state: State) -> Self {
        Orchestrator {
            provider,
            state,
            path: None,
        }
    }

    /// A session backed by the state file at `path` (missing: empty state).
    pub fn open(provider: Provider, path: &Path) -> Result<Self, Error> {
        let state = State::load(path)?;
        Ok(Orchestrator {
            provider,
            state,
            path: Some(path.to_path_buf()),
        })
    }

    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn state_mut(&mut self) -> &mut State {
        &mut self.state
    }

    /// Writes the state file (nothing for an in-memory session).
    pub fn save(&self) -> Result<(), Error> {
        match &self.path {
            Some(path) => self.state.save(path),
            None => Ok(()),
        }
    }

    /// Refuses to send this state's tokens or code to another provider than theirs.
    pub fn check_provider(&self) -> Result<(), Error> {
        match &self.state.provider_url {
            Some(url) if url != self.provider.base() => Err(Error::Local(format!(
                "the state{} belongs to {url}, not {}; pass --url {url}, or another --state file",
                self.path
                    .as_ref()
                    .map(|p| format!(" file {}", p.display()))
                    .unwrap_or_default(),
                self.provider.base()
            ))),
            _ => Ok(()),
        }
    }

    /// `GET /provisioning/health`.
    pub fn health(&self) -> Result<Answer, Error> {
        Ok(Answer::from_reply(self.provider.health()?)?)
    }

    /// `GET /provisioning/services`.
    pub fn services(&self) -> Result<Answer, Error> {
        Ok(Answer::from_reply(self.provider.services()?)?)
    }

    /// Sends a fresh account request. A state that belonged to another provider starts over.
    pub fn request_account(&mut self, request: &AccountRequest) -> Result<AccountOutcome, Error> {
        let id = format!("acctreq_{}", random_hex(12));
        let verifier = request.pkce.then(|| random_hex(32));
        let challenge = verifier.as_deref().map(domain::pkce::challenge_for);
        let body = request.body(&id, unix_now(), challenge.as_deref());
        let answer = Answer::from_reply(self.provider.account_request(&body)?)?;
        let outcome = match serde_json::from_value::<AccountRequestOutcome>(answer.json.clone()) {
            Ok(AccountRequestOutcome::Oauth { oauth, .. }) if !oauth.code.is_empty() => {
                Outcome::Code(oauth.code)
            }
            Ok(AccountRequestOutcome::RequiresAuth { requires_auth, .. })
                if !requires_auth.url.is_empty() =>
            {
                Outcome::Consent(requires_auth.url)
            }
            _ => {
                return Err(Error::Local(match answer.json["type"].as_str() {
                    Some("oauth") => "the provider answered type oauth without oauth.code".into(),
                    Some("requires_auth") => {
                        "the provider answered type requires_auth without requires_auth.url".into()
                    }
                    other => format!(
                        "the provider answered an account request of unknown type {}",
                        other.unwrap_or("(none)")
                    ),
                }))
            }
        };
        if self.state.provider_url.as_deref() != Some(self.provider.base()) {
            self.state = State {
                provider_url: Some(self.provider.base().to_string()),
                ..State::default()
            };
        }
        self.state.account_request_id = Some(id.clone());
        self.state.pkce_verifier = verifier;
        self.state.last_code = match &outcome {
            Outcome::Code(code) => Some(code.clone()),
            Outcome::Consent(_) => None,
        };
        self.save()?;
        Ok(AccountOutcome {
            id,
            outcome,
            answer,
        })
    }

    /// Keeps `code` (from the consent callback) as the code to exchange next.
    pub fn set_code(&mut self, code: &str) -> Result<(), Error> {
        self.state.last_code = Some(code.to_string());
        self.save()
    }

    /// Exchanges `code`, or the last one, at `/oauth/token` (signed, with the PKCE verifier
    /// when the request had a challenge) and keeps the tokens.
    pub fn exchange_code(&mut self, code: Option<&str>) -> Result<Answer, Error> {
        self.check_provider()?;
        let code = match code
            .map(str::to_string)
            .or_else(|| self.state.last_code.clone())
        {
            Some(code) => code,
            None => {
                return Err(Error::Local(
                    "no code to exchange: run account-request first, or pass --code".into(),
                ))
            }
        };
        let verifier = self.state.pkce_verifier.clone();
        let answer = Answer::from_reply(self.provider.exchange_code(
            &code,
            verifier.as_deref(),
            true,
        )?)?;
        self.keep_tokens(&answer.json)?;
        self.state.last_code = None;
        self.state.pkce_verifier = None;
        self.save()?;
        Ok(answer)
    }

    /// Rotates the token pair with the refresh token.
    pub fn refresh(&mut self) -> Result<Answer, Error> {
        self.check_provider()?;
        let Some(refresh) = self.state.refresh_token.clone() else {
            return Err(not_logged_in());
        };
        let answer = Answer::from_reply(self.provider.refresh(&refresh, true)?)?;
        self.keep_tokens(&answer.json)?;
        self.save()?;
        Ok(answer)
    }

    fn keep_tokens(&mut self, token: &Value) -> Result<(), Error> {
        let token = serde_json::from_value::<TokenResponse>(token.clone())
            .map_err(|e| Error::Local(format!("the token answer is not a token response: {e}")))?;
        let account = Some(token.account.id);
        if account.is_some() && account != self.state.account_id {
            // Another account: what we knew of the previous one's resources is not its.
            self.state.resources.clear();
        }
        self.state.provider_url = Some(self.provider.base().to_string());
        if account.is_some() {
            self.state.account_id = account;
        }
        self.state.access_token = Some(token.access_token);
        self.state.refresh_token = Some(token.refresh_token);
        self.state.token_expires_at = Some(unix_now() + token.expires_in);
        self.state.scope = Some(token.scope);
        Ok(())
    }

    /// The access token to use now, refreshed first when it expired; and whether it was.
    fn bearer(&mut self) -> Result<(String, bool), Error> {
        self.check_provider()?;
        let Some(access) = self.state.access_token.clone() else {
            return Err(not_logged_in());
        };
        if self.state.token_expired(unix_now()) && self.state.refresh_token.is_some() {
            self.refresh()?;
            let access = self.state.access_token.clone().ok_or_else(not_logged_in)?;
            return Ok((access, true));
        }
        Ok((access, false))
    }

    /// Makes a bearer call; when it answers `401 invalid_token` and the token was not just
    /// refreshed, refreshes once and makes it again.
    pub fn authed(
        &mut self,
        call: impl Fn(&Provider, &str) -> Result<Reply, TransportError>,
    ) -> Result<Answer, Error> {
        let (token, refreshed) = self.bearer()?;
        let mut reply = call(&self.provider, &token)?;
        if reply.status == 401
            && reply.error_code().as_deref() == Some("invalid_token")
            && !refreshed
            && self.state.refresh_token.is_some()
        {
            self.refresh()?;
            let token = self.state.access_token.clone().ok_or_else(not_logged_in)?;
            reply = call(&self.provider, &token)?;
        }
        Ok(Answer::from_reply(reply)?)
    }

    fn resource_call(
        &mut self,
        call: impl Fn(&Provider, &str) -> Result<Reply, TransportError>,
    ) -> Result<Answer, Error> {
        let answer = self.authed(call)?;
        // `remove` answers a bare acknowledgement (no `service_id`), not the resource object.
        let ack = serde_json::from_value::<RemovedAck>(answer.json.clone()).ok();
        if let Some(ack) = ack.filter(|_| answer.json["service_id"].is_null()) {
            self.state.forget_resource(&ack.id);
        } else {
            self.state.record_resource(&answer.json);
        }
        self.save()?;
        Ok(answer)
    }

    /// `POST /provisioning/resources` (body: [`crate::create_resource_body`]).
    pub fn create_resource(&mut self, body: &Value) -> Result<Answer, Error> {
        self.resource_call(|p, t| p.create_resource(t, body))
    }

    /// `GET /provisioning/resources/{id}`.
    pub fn get_resource(&mut self, id: &str) -> Result<Answer, Error> {
        self.resource_call(|p, t| p.get_resource(t, id))
    }

    /// `POST .../update_service`.
    pub fn update_service(
        &mut self,
        id: &str,
        service_id: &str,
        payment_token: Option<&str>,
    ) -> Result<Answer, Error> {
        self.resource_call(|p, t| p.update_service(t, id, service_id, payment_token))
    }

    /// `POST .../rotate_credentials`.
    pub fn rotate_credentials(&mut self, id: &str) -> Result<Answer, Error> {
        self.resource_call(|p, t| p.rotate_credentials(t, id))
    }

    /// `POST .../remove`; the resource is forgotten.
    pub fn remove_resource(&mut self, id: &str) -> Result<Answer, Error> {
        self.resource_call(|p, t| p.remove_resource(t, id))
    }

    /// `POST .../confirm` (extension): buys a quoted domain at its exact quoted amount.
    pub fn confirm(
        &mut self,
        id: &str,
        domain: &str,
        amount: u64,
        payment_token: Option<&str>,
    ) -> Result<Answer, Error> {
        self.resource_call(|p, t| p.confirm(t, id, domain, amount, payment_token))
    }

    /// `POST /provisioning/deep_links` for the dashboard.
    pub fn deep_link(&mut self) -> Result<Answer, Error> {
        self.authed(|p, t| p.deep_link(t))
    }

    /// Polls `GET` every `interval` while the resource is `pending`, for up to `timeout`;
    /// `progress` sees each pending answer. Answers the last answer, pending or not.
    pub fn wait_while_pending(
        &mut self,
        mut answer: Answer,
        interval: Duration,
        timeout: Duration,
        mut progress: impl FnMut(&Answer),
    ) -> Result<Answer, Error> {
        let deadline = Instant::now() + timeout;
        while answer.resource_status() == "pending" {
            progress(&answer);
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            std::thread::sleep(interval.min(deadline - now));
            let Some(id) = answer.json["id"].as_str().map(str::to_string) else {
                break;
            };
            answer = self.get_resource(&id)?;
        }
        Ok(answer)
    }
}

fn not_logged_in() -> Error {
    Error::Local(
        "not logged in: run `appctl account-request --email <e>`, then `appctl token`".into(),
    )
}
