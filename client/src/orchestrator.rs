//! The orchestrator's session: what it remembers between calls (the state file) and the
//! protocol flows built from [`Provider`]'s calls: account request, code exchange, refresh,
//! and the resource calls with a bearer that is refreshed when it expired or is refused once.
//!
//! Every method answers the provider's JSON as an [`Answer`], or an [`Error`] that keeps the
//! provider's error code, message and `Request-Id`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{unix_now, Call, ProtocolError, Provider, Reply, Signing, TransportError};

/// `orchestrator.stripe.account` when none is given.
pub const DEFAULT_STRIPE_ACCOUNT: &str = "acct_local_cli";
/// Account requests expire this long after they are made (seconds).
pub const ACCOUNT_REQUEST_TTL_SECONDS: i64 = 600;
/// An access token this close to its expiry (seconds) is refreshed before use.
const EXPIRY_MARGIN_SECONDS: i64 = 10;

/// Why a flow stopped.
#[derive(Debug)]
pub enum Error {
    /// The provider answered with an error envelope.
    Protocol(ProtocolError),
    /// The provider could not be reached, or its answer could not be read.
    Transport(TransportError),
    /// Nothing was sent, or the answer made no sense: not logged in, no code, state file...
    Local(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Protocol(e) => write!(f, "{e}"),
            Error::Transport(e) => write!(f, "{e}"),
            Error::Local(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Error::Protocol(e)
    }
}

impl From<TransportError> for Error {
    fn from(e: TransportError) -> Self {
        Error::Transport(e)
    }
}

/// A provider answer that is not an error.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub request_id: Option<String>,
    /// The body (`Value::Null` when it is not JSON).
    pub json: Value,
    /// The body as the provider sent it.
    pub text: String,
}

impl Answer {
    /// The answer, or the error envelope it carries.
    pub fn from_reply(reply: Reply) -> Result<Answer, ProtocolError> {
        if let Some(e) = reply.protocol_error() {
            return Err(e);
        }
        Ok(Answer {
            status: reply.status,
            request_id: reply.request_id().map(str::to_string),
            json: reply.json(),
            text: reply.text(),
        })
    }

    /// `status` of a resource answer (`pending`, `complete`...), or "".
    pub fn resource_status(&self) -> &str {
        self.json["status"].as_str().unwrap_or("")
    }
}

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

/// An account request as the orchestrator sends it (docs/PROTOCOL.md §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRequest {
    pub email: String,
    pub name: Option<String>,
    /// `None` lets the provider pick its default scopes.
    pub scopes: Option<Vec<String>>,
    /// `orchestrator.stripe.account`.
    pub stripe_account: String,
    /// Send a PKCE (S256) challenge and keep the verifier for the exchange.
    pub pkce: bool,
}

impl AccountRequest {
    pub fn new(email: &str) -> Self {
        AccountRequest {
            email: email.to_string(),
            name: None,
            scopes: None,
            stripe_account: DEFAULT_STRIPE_ACCOUNT.to_string(),
            pkce: false,
        }
    }

    /// The JSON body, with id `id`, expiring [`ACCOUNT_REQUEST_TTL_SECONDS`] after `now`.
    pub fn body(&self, id: &str, now: i64, code_challenge: Option<&str>) -> Value {
        let mut body = json!({
            "id": id,
            "object": "account_request",
            "email": self.email,
            "client_capabilities": ["browser"],
            "expires_at": domain::time::format_rfc3339(now + ACCOUNT_REQUEST_TTL_SECONDS),
            "configuration": {},
            "orchestrator": {"type": "stripe", "stripe": {"account": self.stripe_account}},
        });
        if let Some(name) = &self.name {
            body["name"] = json!(name);
        }
        if let Some(scopes) = &self.scopes {
            body["scopes"] = json!(scopes);
        }
        if let Some(challenge) = code_challenge {
            body["code_challenge"] = json!(challenge);
            body["code_challenge_method"] = json!("S256");
        }
        body
    }
}

/// What an account request led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `type: oauth`: a code to exchange.
    Code(String),
    /// `type: requires_auth`: the owner must consent at this URL.
    Consent(String),
}

/// An account request's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountOutcome {
    /// The request id (`acctreq_...`), which the consent callback echoes as `state`.
    pub id: String,
    pub outcome: Outcome,
    pub answer: Answer,
}

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
        let outcome = match answer.json["type"].as_str() {
            Some("oauth") => match answer.json["oauth"]["code"].as_str() {
                Some(code) if !code.is_empty() => Outcome::Code(code.to_string()),
                _ => {
                    return Err(Error::Local(
                        "the provider answered type oauth without oauth.code".into(),
                    ))
                }
            },
            Some("requires_auth") => match answer.json["requires_auth"]["url"].as_str() {
                Some(url) if !url.is_empty() => Outcome::Consent(url.to_string()),
                _ => {
                    return Err(Error::Local(
                        "the provider answered type requires_auth without requires_auth.url".into(),
                    ))
                }
            },
            other => {
                return Err(Error::Local(format!(
                    "the provider answered an account request of unknown type {}",
                    other.unwrap_or("(none)")
                )))
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
        let (Some(access), Some(refresh)) = (
            token["access_token"].as_str(),
            token["refresh_token"].as_str(),
        ) else {
            return Err(Error::Local(
                "the token answer has no access_token or refresh_token".into(),
            ));
        };
        let account = token["account"]["id"].as_str().map(str::to_string);
        if account.is_some() && account != self.state.account_id {
            // Another account: what we knew of the previous one's resources is not its.
            self.state.resources.clear();
        }
        self.state.provider_url = Some(self.provider.base().to_string());
        if account.is_some() {
            self.state.account_id = account;
        }
        self.state.access_token = Some(access.to_string());
        self.state.refresh_token = Some(refresh.to_string());
        self.state.token_expires_at = token["expires_in"].as_i64().map(|s| unix_now() + s);
        self.state.scope = token["scope"].as_str().map(str::to_string);
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
        if answer.json["status"] == "removed" && answer.json["service_id"].is_null() {
            if let Some(id) = answer.json["id"].as_str() {
                self.state.forget_resource(id);
            }
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

/// Creates a test payment token at a local Stripe stand-in
/// (`POST <stand_in>/_stand_in/granted_tokens`): usd, `max_amount` cents, valid for an hour.
/// Answers the `spt_...` id.
/// A test payment token of the stand-in: up to `max_amount` minor units of `currency` (a
/// lowercase ISO 4217 code), valid one hour.
pub fn test_payment_token(
    stand_in: &str,
    max_amount: u64,
    currency: &str,
) -> Result<String, Error> {
    let body = json!({
        "currency": currency,
        "max_amount": max_amount,
        "expires_at": unix_now() + 3600,
    });
    let reply = Provider::new(stand_in, "").send(
        Call::post_json("/_stand_in/granted_tokens", &body)
            .signing(Signing::Unsigned)
            .api_version(None),
    )?;
    let answer = Answer::from_reply(reply)?;
    match answer.json["id"].as_str() {
        Some(id) if id.starts_with("spt_") => Ok(id.to_string()),
        _ => Err(Error::Local(format!(
            "the stand-in at {stand_in} answered no token id: {}",
            answer.json
        ))),
    }
}

/// `n` random bytes as lowercase hex, from the operating system (`/dev/urandom`); where that is
/// missing, from std's randomly keyed hasher mixed with the time.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    let filled = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_ok();
    if !filled {
        use std::collections::hash_map::RandomState;
        use std::hash::{BuildHasher, Hasher};
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (i, chunk) in bytes.chunks_mut(8).enumerate() {
            let mut h = RandomState::new().build_hasher();
            h.write_u128(nanos);
            h.write_usize(i);
            h.write_u32(std::process::id());
            let word = h.finish().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
    domain::crypto::hex(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, service: &str, project: &str, status: &str) -> ResourceRecord {
        ResourceRecord {
            id: id.into(),
            service_id: service.into(),
            project_id: Some(project.into()),
            status: status.into(),
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

    #[test]
    fn account_request_body() {
        let mut r = AccountRequest::new("dev@example.com");
        let body = r.body("acctreq_1", 1_700_000_000, None);
        assert_eq!(body["orchestrator"]["stripe"]["account"], "acct_local_cli");
        assert_eq!(
            body["expires_at"],
            domain::time::format_rfc3339(1_700_000_600)
        );
        assert!(body.get("scopes").is_none() && body.get("name").is_none());
        assert!(body.get("code_challenge").is_none());
        r.name = Some("Dev".into());
        r.scopes = Some(vec!["resources:read".into()]);
        let body = r.body("acctreq_1", 0, Some("chal"));
        assert_eq!(body["name"], "Dev");
        assert_eq!(body["scopes"], json!(["resources:read"]));
        assert_eq!(
            (
                body["code_challenge"].as_str(),
                body["code_challenge_method"].as_str()
            ),
            (Some("chal"), Some("S256"))
        );
    }

    #[test]
    fn randomness() {
        let a = random_hex(32);
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_hex(32));
        // A verifier made of it is a valid PKCE verifier.
        assert!(domain::pkce::valid_verifier(&a));
    }
}
