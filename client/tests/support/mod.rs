//! A fake APP provider, in-process (tiny_http): it checks every call's `Stripe-Signature` with
//! `domain::signature::verify` and `API-Version`, answers canned protocol responses from a small
//! state (accounts, codes, tokens, resources, quotes), records what it saw, and can be told to
//! answer the next matching call with a given error. It also plays the Stripe stand-in's
//! `/_stand_in/granted_tokens`. Its protocol answers are built from `domain::wire` types, so they
//! have the shapes the worker emits; tests can still inject any raw JSON with an override.
//!
//! And a sandbox: a temporary folder to run the real `appctl` binary in, pointed at the fake.

#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use domain::wire::{
    self, AccountRequestErrorEnvelope, AccountRequestOutcome, Candidate, Complete, ConfirmCall,
    ConsentUrl, DeepLink, ErrorInfo, ErrorMark, Health, NeedsInformation, OAuthErrorEnvelope,
    OauthCode, Pending, PlainErrorEnvelope, QuoteAnswer, RemovedAck, ResourceAnswer,
    ResourceErrorEnvelope, ResourceStatus, TokenAccount, TokenResponse,
};
use serde_json::{json, Value};

pub const SECRET: &str = "whsec_dev_orchestrator_0000000000000000";

/// One call the fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub signature_ok: bool,
    pub request_id: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn form(&self) -> BTreeMap<String, String> {
        app_client::form_decode(&String::from_utf8_lossy(&self.body))
            .into_iter()
            .collect()
    }

    pub fn is(&self, method: &str, path: &str) -> bool {
        self.method == method && self.path == path
    }
}

struct Code {
    account: String,
    challenge: Option<String>,
}

struct FakeResource {
    account: String,
    value: ResourceAnswer,
    polls_left: u32,
}

/// The fake's state; tests reach it through [`Fake::world`].
pub struct World {
    pub base: String,
    pub seen: Vec<Seen>,
    /// Emails that already have an account (their requests need consent).
    pub existing: BTreeMap<String, String>,
    /// Account request id -> (account, challenge) awaiting the owner's consent.
    consents: BTreeMap<String, (String, Option<String>)>,
    codes: BTreeMap<String, Code>,
    pub access: BTreeMap<String, String>,
    pub refresh: BTreeMap<String, String>,
    /// `expires_in` of issued access tokens.
    pub expires_in: i64,
    resources: Vec<FakeResource>,
    overrides: VecDeque<(String, String, u16, Value)>,
    n: u64,
}

impl World {
    fn new(base: &str) -> Self {
        World {
            base: base.to_string(),
            seen: Vec::new(),
            existing: BTreeMap::new(),
            consents: BTreeMap::new(),
            codes: BTreeMap::new(),
            access: BTreeMap::new(),
            refresh: BTreeMap::new(),
            expires_in: 3600,
            resources: Vec::new(),
            overrides: VecDeque::new(),
            n: 0,
        }
    }

    fn next(&mut self) -> u64 {
        self.n += 1;
        self.n
    }

    /// The owner approves account request `id`: answers the code the callback gets.
    pub fn approve(&mut self, id: &str) -> String {
        let (account, challenge) = self.consents.remove(id).expect("a consent for this id");
        let code = format!("code_consent_{}", self.next());
        self.codes.insert(code.clone(), Code { account, challenge });
        code
    }

    /// Forgets every access token (as if they expired on the provider's side).
    pub fn revoke_access(&mut self) {
        self.access.clear();
    }

    pub fn calls(&self, method: &str, path: &str) -> Vec<Seen> {
        self.seen
            .iter()
            .filter(|s| s.is(method, path))
            .cloned()
            .collect()
    }

    pub fn paths(&self) -> Vec<String> {
        self.seen
            .iter()
            .map(|s| format!("{} {}", s.method, s.path))
            .collect()
    }

    fn handle(&mut self, mut seen: Seen) -> (u16, Value) {
        const OPERATOR_BEARER: &str = "Bearer op_dev_operator_secret_000000000000000000";
        let now = app_client::unix_now();
        seen.signature_ok = domain::signature::verify(
            seen.header("stripe-signature"),
            &seen.body,
            &[SECRET.as_bytes()],
            now,
            300,
        )
        .is_ok();
        self.seen.push(seen.clone());
        if seen.path.starts_with("/_stand_in/") {
            return self.stand_in(&seen);
        }
        // The operator API is not signed: it takes the operator secret.
        if seen.path.starts_with("/v1/") {
            if seen.header("authorization") != Some(OPERATOR_BEARER) {
                return plain(
                    401,
                    "unauthorized",
                    "send Authorization: Bearer <OPERATOR_SECRET>",
                );
            }
        } else if !seen.signature_ok {
            return plain(401, "invalid_signature", "the signature does not match");
        }
        if seen.path.starts_with("/provisioning/") && seen.header("api-version") != Some("0.1d") {
            return plain(400, "invalid_api_version", "send API-Version: 0.1d");
        }
        if let Some(i) = self
            .overrides
            .iter()
            .position(|(m, p, _, _)| *m == seen.method && *p == seen.path)
        {
            if let Some((_, _, status, body)) = self.overrides.remove(i) {
                return (status, body);
            }
        }
        let method = seen.method.as_str();
        let path = seen.path.as_str();
        match (method, path) {
            ("GET", "/provisioning/health") => {
                let health = Health {
                    status: "ok".into(),
                    supported_versions: vec!["0.1d".into()],
                    deep_link_purposes: vec![],
                };
                (200, wire::to_value(&health))
            }
            ("GET", "/provisioning/services") => (200, catalog()),
            ("POST", "/provisioning/account_requests") => self.account_request(&seen.json(), now),
            ("POST", "/oauth/token") => self.token(&seen.form()),
            // The operator API's usage reports and credit grants: echoed as records.
            ("POST", "/v1/usage") => {
                let b = seen.json();
                (
                    201,
                    serde_json::json!({"object": "usage_record", "id": b["idempotency_key"],
                    "amount": b["amount"], "replayed": false, "paused": false,
                    "spent_this_month": b["amount"], "cap": 10000}),
                )
            }
            ("POST", p) if p.starts_with("/v1/accounts/") && p.ends_with("/credits") => {
                let b = seen.json();
                (
                    201,
                    serde_json::json!({"object": "credit", "id": "credit_1",
                    "amount": b["amount"], "expires_at": b["expires_at"], "replayed": false}),
                )
            }
            _ if path.starts_with("/provisioning/resources")
                || path == "/provisioning/deep_links" =>
            {
                let bearer = seen
                    .header("authorization")
                    .and_then(|h| h.strip_prefix("Bearer "))
                    .and_then(|t| self.access.get(t))
                    .cloned();
                let Some(account) = bearer else {
                    return resource_error(401, "invalid_token", "the access token is not valid");
                };
                self.resources_route(method, path, &seen.json(), &account, now)
            }
            _ => plain(404, "not_found", "no such path"),
        }
    }

    fn stand_in(&mut self, seen: &Seen) -> (u16, Value) {
        if seen.is("POST", "/_stand_in/granted_tokens") {
            let body = seen.json();
            let id = format!("spt_test_{}", self.next());
            return (
                200,
                json!({"id": id, "object": "shared_payment.granted_token",
                       "usage_limits": {"currency": body["currency"], "max_amount": body["max_amount"], "expires_at": body["expires_at"]}}),
            );
        }
        (404, json!({"error": {"message": "unknown control route"}}))
    }

    fn account_request(&mut self, body: &Value, now: i64) -> (u16, Value) {
        let id = body["id"].as_str().unwrap_or("").to_string();
        let fail = |code: &str, message: &str| {
            let envelope = AccountRequestErrorEnvelope {
                id: Some(id.clone()),
                kind: ErrorMark::Error,
                error: error_info(code, message),
            };
            (400, wire::to_value(&envelope))
        };
        if !id.starts_with("acctreq_") {
            return fail("invalid_request", "id must start with acctreq_");
        }
        if body["orchestrator"]["stripe"]["account"].as_str().is_none() {
            return fail("invalid_request", "orchestrator.stripe.account is required");
        }
        match body["expires_at"]
            .as_str()
            .and_then(domain::time::parse_rfc3339)
        {
            Some(t) if t > now => {}
            _ => return fail("expired", "the account request has expired"),
        }
        let Some(email) = body["email"].as_str().map(|e| e.trim().to_lowercase()) else {
            return fail("invalid_email", "email is required");
        };
        let challenge = body["code_challenge"].as_str().map(str::to_string);
        if let Some(account) = self.existing.get(&email).cloned() {
            self.consents.insert(id.clone(), (account, challenge));
            let n = self.next();
            let url = format!("{}/oauth/authorize?consent=consent_{n}", self.base);
            let outcome = AccountRequestOutcome::RequiresAuth {
                id: Some(id),
                requires_auth: ConsentUrl { url },
            };
            return (200, wire::to_value(&outcome));
        }
        let account = format!("acct_fake_{}", self.next());
        self.existing.insert(email, account.clone());
        let code = format!("code_{}", self.next());
        self.codes.insert(code.clone(), Code { account, challenge });
        let outcome = AccountRequestOutcome::Oauth {
            id: Some(id),
            oauth: OauthCode { code },
        };
        (200, wire::to_value(&outcome))
    }

    fn token(&mut self, form: &BTreeMap<String, String>) -> (u16, Value) {
        let grant = |d: &str| oauth_error("invalid_grant", d);
        let account = match form.get("grant_type").map(String::as_str) {
            Some("authorization_code") => {
                let Some(code) = form.get("code").and_then(|c| self.codes.remove(c)) else {
                    return grant("the authorization code is not valid");
                };
                match (&code.challenge, form.get("code_verifier")) {
                    (Some(ch), Some(v)) if domain::pkce::verify(ch, v) => {}
                    (Some(_), Some(_)) => {
                        return grant("code_verifier does not match the code_challenge")
                    }
                    (Some(_), None) => return grant("code_verifier is required for this code"),
                    (None, Some(_)) => {
                        return grant("code_verifier was sent but this code has no code_challenge")
                    }
                    (None, None) => {}
                }
                code.account
            }
            Some("refresh_token") => {
                match form
                    .get("refresh_token")
                    .and_then(|r| self.refresh.remove(r))
                {
                    Some(account) => account,
                    None => return grant("the refresh token is not valid"),
                }
            }
            _ => {
                return oauth_error(
                    "unsupported_grant_type",
                    "grant_type must be authorization_code or refresh_token",
                )
            }
        };
        let n = self.next();
        let (access, refresh) = (format!("at_{n}"), format!("rt_{n}"));
        self.access.insert(access.clone(), account.clone());
        self.refresh.insert(refresh.clone(), account.clone());
        let token = TokenResponse {
            token_type: "bearer".into(),
            access_token: access,
            refresh_token: refresh,
            expires_in: self.expires_in,
            scope: "resources:read resources:write".into(),
            account: TokenAccount {
                id: account,
                payment_credentials: "orchestrator".into(),
            },
        };
        (200, wire::to_value(&token))
    }

    fn find(&mut self, account: &str, id: &str) -> Option<&mut FakeResource> {
        self.resources
            .iter_mut()
            .find(|r| r.account == account && r.value.id == id)
    }

    fn resources_route(
        &mut self,
        method: &str,
        path: &str,
        body: &Value,
        account: &str,
        now: i64,
    ) -> (u16, Value) {
        if path == "/provisioning/deep_links" {
            let n = self.next();
            let link = DeepLink {
                purpose: "dashboard".into(),
                url: format!("{}/dashboard?link=dl_{n}", self.base),
                expires_at: domain::time::format_rfc3339(now + 600),
                path: None,
            };
            return (200, wire::to_value(&link));
        }
        if method == "POST" && path == "/provisioning/resources" {
            return self.create(body, account, now);
        }
        let rest = path.strip_prefix("/provisioning/resources/").unwrap_or("");
        let (id, action) = match rest.split_once('/') {
            Some((id, action)) => (id.to_string(), Some(action.to_string())),
            None => (rest.to_string(), None),
        };
        let n = self.next();
        let Some(r) = self.find(account, &id) else {
            return resource_error(
                404,
                "resource_not_found",
                "no such resource on this account",
            );
        };
        let v = &mut r.value;
        match (method, action.as_deref()) {
            ("GET", None) => {
                if v.status == ResourceStatus::Pending {
                    r.polls_left = r.polls_left.saturating_sub(1);
                    if r.polls_left == 0 {
                        complete(
                            v,
                            &[
                                ("SLOW_URL", "https://slow.example/db?x=1"),
                                ("GREETING", "it's \"quoted\""),
                            ],
                        );
                    }
                }
                (200, wire::to_value(&r.value))
            }
            ("POST", Some("confirm")) => answer_quote(v, body, now),
            ("POST", Some("update_service")) => {
                let target = body["service_id"].as_str().unwrap_or("");
                let allowed = matches!(
                    (v.service_id.as_str(), target),
                    ("free", "paid") | ("paid", "free")
                );
                if !allowed {
                    return resource_error(400, "update_not_allowed", "not in allowed_updates");
                }
                if target == "paid" && body["payment_credentials"]["stripe_payment_token"].is_null()
                {
                    return resource_error(
                        400,
                        "requires_payment_credentials",
                        "paid needs payment_credentials",
                    );
                }
                v.service_id = target.to_string();
                if let Some(c) = v.complete.as_mut() {
                    c.access_configuration.insert("PLAN".into(), target.into());
                }
                (200, wire::to_value(v))
            }
            ("POST", Some("rotate_credentials")) => {
                if v.service_id != "api_token" {
                    return resource_error(400, "rotation_not_supported", "nothing to rotate");
                }
                if let Some(c) = v.complete.as_mut() {
                    c.access_configuration
                        .insert("API_TOKEN".into(), format!("pvak_rotated_{n}"));
                }
                (200, wire::to_value(v))
            }
            ("POST", Some("remove")) => {
                v.status = ResourceStatus::Removed;
                v.complete = None;
                let ack = RemovedAck {
                    status: ResourceStatus::Removed,
                    id,
                };
                (200, wire::to_value(&ack))
            }
            _ => plain(405, "method_not_allowed", "wrong method"),
        }
    }

    fn create(&mut self, body: &Value, account: &str, now: i64) -> (u16, Value) {
        let service = body["service_id"].as_str().unwrap_or("").to_string();
        let project = body["project_id"].as_str().unwrap_or("").to_string();
        // Named by the orchestrator: matched by that name; else by (project, service).
        let named = body["orchestrator_resource_id"]
            .as_str()
            .map(str::to_string);
        if let Some(existing) = self.resources.iter_mut().find(|r| {
            r.account == account
                && r.value.service_id == service
                && r.value.project_id == project
                && r.value.orchestrator_resource_id == named
                && r.value.status != ResourceStatus::Removed
        }) {
            // The same create again with the answer to its needs_information (protocol §8).
            if body["submitted_information"].is_object()
                && existing.value.status == ResourceStatus::NeedsInformation
            {
                return answer_quote(&mut existing.value, &body["submitted_information"], now);
            }
            return (200, wire::to_value(&existing.value));
        }
        let known = ["free", "paid", "api_token", "slow", "domain", "failing"];
        if !known.contains(&service.as_str()) {
            return resource_error(400, "unknown_service", "no such service in the catalog");
        }
        let paid = service == "paid" || service == "domain";
        if paid && body["payment_credentials"]["stripe_payment_token"].is_null() {
            return resource_error(
                400,
                "requires_payment_credentials",
                "this service is paid: send payment_credentials",
            );
        }
        let n = self.next();
        let mut v = ResourceAnswer {
            id: format!("res_{n}"),
            object: "resource".into(),
            service_id: service.clone(),
            project_id: project,
            status: ResourceStatus::Pending,
            created_at: domain::time::format_rfc3339(now),
            environment: None,
            orchestrator_resource_id: None,
            linked: None,
            pending: None,
            needs_information: None,
            complete: None,
            error: None,
        };
        let mut polls_left = 0;
        match service.as_str() {
            "free" | "paid" => complete(&mut v, &[("ACCOUNT_ID", account), ("PLAN", &service)]),
            "api_token" => {
                let scopes = body["configuration"]["scopes"]
                    .as_array()
                    .map(|s| {
                        s.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_else(|| "deploy:write logs:read projects:read".into());
                let token = format!("pvak_{n}");
                complete(
                    &mut v,
                    &[
                        ("API_TOKEN", &token),
                        ("ACCOUNT_ID", account),
                        ("API_TOKEN_SCOPES", &scopes),
                    ],
                )
            }
            "slow" => {
                v.pending = Some(Pending {
                    message: "provisioning the database".into(),
                });
                polls_left = 2;
            }
            "domain" => {
                let q = body["configuration"]["domain_query"]
                    .as_str()
                    .unwrap_or("x");
                let candidate = |domain: String, amount, available| Candidate {
                    domain,
                    amount,
                    currency: "usd".into(),
                    available,
                };
                v.status = ResourceStatus::NeedsInformation;
                v.needs_information = Some(NeedsInformation {
                    message: "Pick a name.".into(),
                    schema: json!({"type": "object", "required": ["domain", "amount"]}),
                    quote: Some(QuoteAnswer {
                        expires_at: domain::time::format_rfc3339(now + 900),
                        candidates: vec![
                            candidate(format!("{q}.apps.test"), 1200, false),
                            candidate(format!("{q}-app.apps.test"), 1500, true),
                            candidate(format!("get{q}.apps.test"), 1200, true),
                        ],
                    }),
                    confirm: Some(ConfirmCall {
                        method: "POST".into(),
                        path: format!("/provisioning/resources/res_{n}/confirm"),
                    }),
                });
            }
            _ => {
                v.status = ResourceStatus::Errored;
                v.error = Some(error_info("backend_error", "the backend said no"));
            }
        }
        v.orchestrator_resource_id = named;
        let answer = wire::to_value(&v);
        self.resources.push(FakeResource {
            account: account.to_string(),
            value: v,
            polls_left,
        });
        (200, answer)
    }
}

fn complete(v: &mut ResourceAnswer, access_configuration: &[(&str, &str)]) {
    v.status = ResourceStatus::Complete;
    v.pending = None;
    v.complete = Some(Complete {
        access_configuration: access_configuration
            .iter()
            .map(|(k, val)| (k.to_string(), val.to_string()))
            .collect(),
        message: None,
    });
}

fn error_info(code: &str, message: &str) -> ErrorInfo {
    ErrorInfo {
        code: code.into(),
        message: message.into(),
    }
}

fn plain(status: u16, code: &str, message: &str) -> (u16, Value) {
    let envelope = PlainErrorEnvelope {
        error: error_info(code, message),
    };
    (status, wire::to_value(&envelope))
}

fn resource_error(status: u16, code: &str, message: &str) -> (u16, Value) {
    let envelope = ResourceErrorEnvelope {
        status: ErrorMark::Error,
        id: None,
        error: error_info(code, message),
    };
    (status, wire::to_value(&envelope))
}

fn oauth_error(code: &str, description: &str) -> (u16, Value) {
    let envelope = OAuthErrorEnvelope {
        error: code.into(),
        error_description: description.into(),
    };
    (400, wire::to_value(&envelope))
}

/// The catalog the fake serves.
pub fn catalog() -> Value {
    json!({"data": [
        {"id": "free", "description": "Hobby plan.", "categories": ["hosting"], "kind": "plan",
         "pricing": {"type": "free"}, "allowed_updates": [{"service": "paid", "direction": "up"}],
         "configuration_schema": {"type": "object", "properties": {}, "additionalProperties": false}},
        {"id": "paid", "description": "Pro plan.", "categories": ["hosting"], "kind": "plan",
         "pricing": {"type": "paid", "paid": {"type": "freeform", "freeform": "$20/month, billed monthly in advance"}},
         "allowed_updates": [{"service": "free", "direction": "down"}],
         "configuration_schema": {"type": "object", "properties": {}, "additionalProperties": false}},
        {"id": "api_token", "description": "A scoped API token.", "categories": ["developer_tools"], "kind": "deployable",
         "pricing": {"type": "component", "component": {"options": [{"type": "free", "parent_service_ids": ["free", "paid"]}]}},
         "allowed_updates": [],
         "configuration_schema": {"type": "object", "properties": {
             "scopes": {"type": "array", "items": {"type": "string", "enum": ["deploy:write", "logs:read", "projects:read"]}},
             "label": {"type": "string"}}, "additionalProperties": false}},
        {"id": "slow", "description": "A database that takes a moment.", "categories": ["databases"], "kind": "deployable",
         "pricing": {"type": "free"}, "allowed_updates": [],
         "configuration_schema": {"type": "object", "properties": {}}},
        {"id": "domain", "description": "Domain registration.", "categories": ["domains"], "kind": "deployable",
         "pricing": {"type": "paid", "paid": {"type": "freeform", "freeform": "$12 per name per year, quoted exactly before purchase"}},
         "allowed_updates": [],
         "configuration_schema": {"type": "object", "required": ["domain_query"], "properties": {"domain_query": {"type": "string"}}}},
        {"id": "failing", "description": "Always fails.", "categories": [], "kind": "deployable",
         "pricing": {"type": "free"}, "allowed_updates": [],
         "configuration_schema": {"type": "object", "properties": {}}}
    ]})
}

/// A running fake provider.
pub struct Fake {
    pub url: String,
    world: Arc<Mutex<World>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl Fake {
    pub fn start() -> Fake {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind the fake"));
        let port = server
            .server_addr()
            .to_ip()
            .map(|a| a.port())
            .expect("an ip address");
        let url = format!("http://127.0.0.1:{port}");
        let world = Arc::new(Mutex::new(World::new(&url)));
        let (s, w) = (server.clone(), world.clone());
        let thread = std::thread::spawn(move || {
            for mut request in s.incoming_requests() {
                let mut body = Vec::new();
                let _ = request.as_reader().read_to_end(&mut body);
                let url = request.url().to_string();
                let path = url.split('?').next().unwrap_or("").to_string();
                let headers = request
                    .headers()
                    .iter()
                    .map(|h| {
                        (
                            h.field.as_str().as_str().to_string(),
                            h.value.as_str().to_string(),
                        )
                    })
                    .collect();
                let (status, answer, request_id) = {
                    let mut world = w.lock().unwrap_or_else(|p| p.into_inner());
                    let request_id = format!("req_fake_{}", world.seen.len() + 1);
                    let (status, answer) = world.handle(Seen {
                        method: request.method().as_str().to_string(),
                        path,
                        headers,
                        body,
                        signature_ok: false,
                        request_id: request_id.clone(),
                    });
                    (status, answer, request_id)
                };
                let response = tiny_http::Response::from_string(answer.to_string())
                    .with_status_code(status)
                    .with_header(
                        tiny_http::Header::from_bytes("Content-Type", "application/json")
                            .expect("header"),
                    )
                    .with_header(
                        tiny_http::Header::from_bytes("Request-Id", request_id.as_str())
                            .expect("header"),
                    );
                let _ = request.respond(response);
            }
        });
        Fake {
            url,
            world,
            server,
            thread: Some(thread),
        }
    }

    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next `method path` call answers `status` with `body`.
    pub fn fail_next(&self, method: &str, path: &str, status: u16, body: Value) {
        self.world()
            .overrides
            .push_back((method.into(), path.into(), status, body));
    }

    /// Waits until a call matches, and answers it.
    pub fn wait_for(&self, method: &str, path: &str) -> Seen {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.world().calls(method, path).pop() {
                return s;
            }
            assert!(Instant::now() < deadline, "no {method} {path} within 20 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a run of `appctl` did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "{self:#?}");
        self
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {self:#?}"))
    }
}

/// A temporary folder with a fake provider; `appctl` runs in it (its default state file is
/// `.appctl/state.json` there) with `APP_PROVIDER_URL` pointing at the fake.
pub struct Sandbox {
    pub dir: PathBuf,
    pub fake: Fake,
    pub env: Vec<(String, String)>,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "appctl-e2e-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("sandbox dir");
        let fake = Fake::start();
        let env = vec![("APP_PROVIDER_URL".to_string(), fake.url.clone())];
        Sandbox { dir, fake, env }
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.join(".appctl").join("state.json")
    }

    pub fn state(&self) -> Value {
        let text = std::fs::read_to_string(self.state_path()).expect("state file");
        serde_json::from_str(&text).expect("state json")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_appctl"));
        c.args(args).current_dir(&self.dir);
        for var in [
            "APP_PROVIDER_URL",
            "APP_ORCHESTRATOR_SECRET",
            "APP_CLI_STATE",
            "APP_STRIPE_ACCOUNT",
            "APP_STAND_IN_URL",
        ] {
            c.env_remove(var);
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Runs `appctl args` to the end.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("run appctl"))
    }

    /// Starts `appctl args` in the background.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn appctl")
    }

    /// A new account, logged in (`account-request` + `token`).
    pub fn login(&self, email: &str) -> Run {
        self.run(&["account-request", "--email", email]).ok();
        self.run(&["token"]).ok()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits for a child with a deadline.
pub fn finish(child: Child) -> Run {
    Run::from(child.wait_with_output().expect("appctl output"))
}

/// A free local port (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `GET path` on 127.0.0.1:port as a browser would, retrying the connection for a while;
/// answers the raw HTTP response.
pub fn browse(port: u16, path: &str) -> String {
    use std::io::Write;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(mut s) => {
                write!(s, "GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n").expect("write");
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer);
                return answer;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "callback never listened: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Buys a quoted candidate: `answer` is `{"domain","amount"}` (a confirm body, or a create's
/// `submitted_information`).
fn answer_quote(v: &mut ResourceAnswer, answer: &Value, now: i64) -> (u16, Value) {
    let needs = v
        .needs_information
        .clone()
        .filter(|_| v.status == ResourceStatus::NeedsInformation);
    let Some(needs) = needs else {
        return resource_error(409, "not_awaiting_confirmation", "nothing to confirm");
    };
    let Some(c) = needs
        .quote
        .iter()
        .flat_map(|q| q.candidates.iter())
        .find(|c| answer["domain"] == c.domain.as_str())
    else {
        return resource_error(400, "invalid_request", "not a quoted candidate");
    };
    if answer["amount"] != c.amount {
        return resource_error(409, "price_changed", "the quoted amount differs");
    }
    v.needs_information = None;
    let expires = domain::time::format_rfc3339(now + 365 * 86400);
    complete(v, &[("DOMAIN", &c.domain), ("DOMAIN_EXPIRES_AT", &expires)]);
    (200, wire::to_value(v))
}
