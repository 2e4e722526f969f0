//! An APP client that signs requests exactly as the orchestrator does (docs/PROTOCOL.md §1).
//!
//! The black-box tests drive the worker through it, and the orchestrator CLI is built on it, so
//! both speak the wire format the same way. Every knob a test needs to send a *wrong* request
//! (no signature, another secret, a stale timestamp, a raw header) is a field of [`Call`].
//!
//! Layers, from the wire up:
//! - [`Provider`]: one signed call per protocol endpoint, answering the raw [`Reply`];
//! - [`orchestrator::Orchestrator`]: a session that owns the orchestrator's state (tokens, the
//!   last code, known resources), refreshes tokens and turns error envelopes into
//!   [`ProtocolError`]s;
//! - [`dotenv`], [`callback`], [`services`]: what the orchestrator CLI does around the calls
//!   (write `.env`, receive the consent redirect, read the catalog's prices);
//! - [`cli`]: the `appctl` command line, a thin argument layer over the above.

pub mod callback;
pub mod cli;
pub mod dotenv;
pub mod orchestrator;
pub mod services;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use domain::form::percent_decode_lossy;
use serde_json::Value;

pub use domain::protocol::API_VERSION;

/// How a call is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signing {
    /// With the client's secret, at the current time.
    Now,
    /// With the client's secret, at the given unix time.
    At(i64),
    /// With another secret, at the current time.
    Secret(String),
    /// This exact header value.
    Raw(String),
    /// No `Stripe-Signature` header.
    Unsigned,
}

/// One HTTP call to the provider.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
    pub content_type: Option<String>,
    pub signing: Signing,
    /// `API-Version` value; `None` leaves the header out.
    pub api_version: Option<String>,
    pub bearer: Option<String>,
    pub headers: Vec<(String, String)>,
}

impl Call {
    pub fn new(method: &str, path: &str) -> Self {
        Call {
            method: method.to_string(),
            path: path.to_string(),
            body: Vec::new(),
            content_type: None,
            signing: Signing::Now,
            api_version: Some(API_VERSION.to_string()),
            bearer: None,
            headers: Vec::new(),
        }
    }

    pub fn get(path: &str) -> Self {
        Call::new("GET", path)
    }

    pub fn post_json(path: &str, body: &Value) -> Self {
        Call::new("POST", path).raw_body(body.to_string().into_bytes(), "application/json")
    }

    /// A form-urlencoded POST (the token endpoint).
    pub fn post_form(path: &str, fields: &[(&str, &str)]) -> Self {
        Call::new("POST", path).raw_body(
            form_encode(fields).into_bytes(),
            "application/x-www-form-urlencoded",
        )
    }

    pub fn raw_body(mut self, body: Vec<u8>, content_type: &str) -> Self {
        self.body = body;
        self.content_type = Some(content_type.to_string());
        self
    }

    pub fn signing(mut self, signing: Signing) -> Self {
        self.signing = signing;
        self
    }

    pub fn api_version(mut self, version: Option<&str>) -> Self {
        self.api_version = version.map(str::to_string);
        self
    }

    pub fn bearer(mut self, token: &str) -> Self {
        self.bearer = Some(token.to_string());
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// The provider's answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON, or `Value::Null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// First value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `Request-Id` the provider gave this call, to find its log line.
    pub fn request_id(&self) -> Option<&str> {
        self.header("request-id")
    }

    /// True for a 2xx answer whose body is not an error envelope.
    pub fn is_success(&self) -> bool {
        self.protocol_error().is_none()
    }

    /// The error this reply carries: any non-2xx status, or a 2xx body that is an error
    /// envelope (`"type":"error"` or `"status":"error"`). Reads every envelope of
    /// docs/PROTOCOL.md §5; a body without one gets the code `http_<status>`.
    pub fn protocol_error(&self) -> Option<ProtocolError> {
        let body = self.json();
        let enveloped = body["type"] == "error" || body["status"] == "error";
        if (200..300).contains(&self.status) && !enveloped {
            return None;
        }
        let (code, message) = match &body["error"] {
            Value::Object(e) => (
                e.get("code").and_then(Value::as_str).map(str::to_string),
                e.get("message").and_then(Value::as_str).map(str::to_string),
            ),
            Value::String(code) => (
                Some(code.clone()),
                body["error_description"].as_str().map(str::to_string),
            ),
            _ => (None, None),
        };
        let text = self.text();
        let message = message.unwrap_or_else(|| {
            let text = text.trim();
            if text.is_empty() || !body.is_null() {
                format!(
                    "the provider answered HTTP {} without an error message",
                    self.status
                )
            } else {
                let cut: String = text.chars().take(200).collect();
                format!("HTTP {}: {cut}", self.status)
            }
        });
        Some(ProtocolError {
            status: self.status,
            code: code.unwrap_or_else(|| format!("http_{}", self.status)),
            message,
            request_id: self.request_id().map(str::to_string),
            body,
        })
    }

    /// `error.code` (protocol envelopes) or `error` (OAuth envelope), when present.
    pub fn error_code(&self) -> Option<String> {
        let body = self.json();
        match &body["error"] {
            Value::String(code) => Some(code.clone()),
            Value::Object(e) => e.get("code").and_then(Value::as_str).map(str::to_string),
            _ => None,
        }
    }
}

/// An answer the provider gave as an error, from any of its envelopes.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtocolError {
    /// HTTP status.
    pub status: u16,
    /// `error.code`, the OAuth `error`, or `http_<status>` when the body had none.
    pub code: String,
    pub message: String,
    /// The `Request-Id` header, to find the provider's log line.
    pub request_id: Option<String>,
    /// The whole body (`Value::Null` when it was not JSON).
    pub body: Value,
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ProtocolError {}

/// Transport failure: the provider could not be reached or answered garbage.
#[derive(Debug)]
pub struct TransportError(pub String);

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for TransportError {}

/// A provider endpoint and the orchestrator secret to sign with.
#[derive(Clone)]
pub struct Provider {
    base: String,
    secret: String,
    agent: ureq::Agent,
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Provider {
    pub fn new(base: &str, secret: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .max_redirects(0)
            .build()
            .new_agent();
        Provider {
            base: base.trim_end_matches('/').to_string(),
            secret: secret.to_string(),
            agent,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The header value the orchestrator would send for `body` at time `t`.
    pub fn sign(&self, t: i64, body: &[u8]) -> String {
        domain::signature::sign_header(self.secret.as_bytes(), t, body)
    }

    pub fn send(&self, call: Call) -> Result<Reply, TransportError> {
        let url = format!("{}{}", self.base, call.path);
        let mut builder = ureq::http::Request::builder()
            .method(call.method.as_str())
            .uri(&url);
        let signature = match &call.signing {
            Signing::Now => Some(self.sign(unix_now(), &call.body)),
            Signing::At(t) => Some(self.sign(*t, &call.body)),
            Signing::Secret(secret) => Some(domain::signature::sign_header(
                secret.as_bytes(),
                unix_now(),
                &call.body,
            )),
            Signing::Raw(header) => Some(header.clone()),
            Signing::Unsigned => None,
        };
        if let Some(signature) = signature {
            builder = builder.header("Stripe-Signature", signature);
        }
        if let Some(version) = &call.api_version {
            builder = builder.header("API-Version", version);
        }
        if let Some(ct) = &call.content_type {
            builder = builder.header("Content-Type", ct);
        }
        if let Some(token) = &call.bearer {
            builder = builder.header("Authorization", format!("Bearer {token}"));
        }
        for (k, v) in &call.headers {
            builder = builder.header(k, v);
        }
        let request = builder
            .body(call.body)
            .map_err(|e| TransportError(format!("bad request {url}: {e}")))?;
        let mut response = self
            .agent
            .run(request)
            .map_err(|e| TransportError(format!("{} {url}: {e}", call.method)))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(16 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| TransportError(format!("reading {url}: {e}")))?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

/// The protocol's calls, as the orchestrator makes them.
impl Provider {
    /// `POST /provisioning/account_requests`.
    pub fn account_request(&self, body: &Value) -> Result<Reply, TransportError> {
        self.send(Call::post_json("/provisioning/account_requests", body))
    }

    /// `POST /oauth/token` with `grant_type=authorization_code`, signed or (PKCE) unsigned.
    pub fn exchange_code(
        &self,
        code: &str,
        verifier: Option<&str>,
        signed: bool,
    ) -> Result<Reply, TransportError> {
        let mut fields = vec![("grant_type", "authorization_code"), ("code", code)];
        if let Some(v) = verifier {
            fields.push(("code_verifier", v));
        }
        self.send(token_call(&fields, signed))
    }

    /// `POST /oauth/token` with `grant_type=refresh_token`.
    pub fn refresh(&self, refresh_token: &str, signed: bool) -> Result<Reply, TransportError> {
        self.send(token_call(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
            signed,
        ))
    }

    /// `GET /provisioning/health`.
    pub fn health(&self) -> Result<Reply, TransportError> {
        self.send(Call::get("/provisioning/health"))
    }

    /// `GET /provisioning/services`: the catalog, `{"data":[service...]}`.
    pub fn services(&self) -> Result<Reply, TransportError> {
        self.send(Call::get("/provisioning/services"))
    }

    /// `POST /provisioning/resources` with `bearer`. `body` is
    /// `{"service_id","project_id","configuration"?,"payment_credentials"?}`
    /// (see [`create_resource_body`]).
    pub fn create_resource(&self, bearer: &str, body: &Value) -> Result<Reply, TransportError> {
        self.send(Call::post_json("/provisioning/resources", body).bearer(bearer))
    }

    /// `POST /provisioning/resources` with the orchestrator's `Idempotency-Key` header: the same
    /// key returns the same resource, so a project may hold several of one service.
    pub fn create_resource_keyed(
        &self,
        bearer: &str,
        key: &str,
        body: &Value,
    ) -> Result<Reply, TransportError> {
        self.send(
            Call::post_json("/provisioning/resources", body)
                .bearer(bearer)
                .header("Idempotency-Key", key),
        )
    }

    /// `POST /provisioning/resources/link` (the CLI's `add --existing`), with an optional
    /// `Idempotency-Key`. The body is a create's; `submitted_information` answers its
    /// `needs_information`.
    pub fn link_resource(
        &self,
        bearer: &str,
        key: Option<&str>,
        body: &Value,
    ) -> Result<Reply, TransportError> {
        let call = Call::post_json("/provisioning/resources/link", body).bearer(bearer);
        self.send(match key {
            Some(key) => call.header("Idempotency-Key", key),
            None => call,
        })
    }

    /// `POST /provisioning/resources/{id}/update_service` with a new `configuration` only.
    pub fn update_configuration(
        &self,
        bearer: &str,
        id: &str,
        configuration: &Value,
    ) -> Result<Reply, TransportError> {
        let body = serde_json::json!({ "configuration": configuration });
        self.send(Call::post_json(&resource_path(id, Some("update_service")), &body).bearer(bearer))
    }

    /// `GET /provisioning/resources/{id}`.
    pub fn get_resource(&self, bearer: &str, id: &str) -> Result<Reply, TransportError> {
        self.send(Call::get(&resource_path(id, None)).bearer(bearer))
    }

    /// `POST /provisioning/resources/{id}/update_service`.
    pub fn update_service(
        &self,
        bearer: &str,
        id: &str,
        service_id: &str,
        payment_token: Option<&str>,
    ) -> Result<Reply, TransportError> {
        let mut body = serde_json::json!({ "service_id": service_id });
        if let Some(token) = payment_token {
            body["payment_credentials"] = payment_credentials(token);
        }
        self.resource_action(bearer, id, "update_service", &body)
    }

    /// `POST /provisioning/resources/{id}/rotate_credentials`.
    pub fn rotate_credentials(&self, bearer: &str, id: &str) -> Result<Reply, TransportError> {
        self.resource_action(bearer, id, "rotate_credentials", &serde_json::json!({}))
    }

    /// `POST /provisioning/resources/{id}/remove`.
    pub fn remove_resource(&self, bearer: &str, id: &str) -> Result<Reply, TransportError> {
        self.resource_action(bearer, id, "remove", &serde_json::json!({}))
    }

    /// `POST /provisioning/resources/{id}/confirm` (extension): buys the quoted `domain`,
    /// acknowledging its exact quoted `amount` in cents.
    pub fn confirm(
        &self,
        bearer: &str,
        id: &str,
        domain: &str,
        amount: u64,
        payment_token: Option<&str>,
    ) -> Result<Reply, TransportError> {
        let mut body = serde_json::json!({ "domain": domain, "amount": amount });
        if let Some(token) = payment_token {
            body["payment_credentials"] = payment_credentials(token);
        }
        self.resource_action(bearer, id, "confirm", &body)
    }

    /// `POST /provisioning/deep_links` `{"purpose":"dashboard"}`.
    pub fn deep_link(&self, bearer: &str) -> Result<Reply, TransportError> {
        self.send(
            Call::post_json(
                "/provisioning/deep_links",
                &serde_json::json!({ "purpose": "dashboard" }),
            )
            .bearer(bearer),
        )
    }

    /// `POST /provisioning/resources/{id}/{action}` with a JSON body.
    pub fn resource_action(
        &self,
        bearer: &str,
        id: &str,
        action: &str,
        body: &Value,
    ) -> Result<Reply, TransportError> {
        self.send(Call::post_json(&resource_path(id, Some(action)), body).bearer(bearer))
    }
}

/// `/provisioning/resources/{id}[/{action}]`, the id percent-encoded as one path segment.
pub fn resource_path(id: &str, action: Option<&str>) -> String {
    let mut path = format!("/provisioning/resources/{}", path_segment(id));
    if let Some(action) = action {
        path.push('/');
        path.push_str(action);
    }
    path
}

/// `{"type":"stripe_payment_token","stripe_payment_token":<token>}`.
pub fn payment_credentials(token: &str) -> Value {
    serde_json::json!({"type": "stripe_payment_token", "stripe_payment_token": token})
}

/// The body of `POST /provisioning/resources`; `configuration` and `payment_credentials` are
/// left out when `None`.
pub fn create_resource_body(
    service_id: &str,
    project_id: &str,
    configuration: Option<&serde_json::Map<String, Value>>,
    payment_token: Option<&str>,
) -> Value {
    let mut body = serde_json::json!({ "service_id": service_id, "project_id": project_id });
    if let Some(configuration) = configuration {
        body["configuration"] = Value::Object(configuration.clone());
    }
    if let Some(token) = payment_token {
        body["payment_credentials"] = payment_credentials(token);
    }
    body
}

fn token_call(fields: &[(&str, &str)], signed: bool) -> Call {
    let call = Call::post_form("/oauth/token", fields).api_version(None);
    if signed {
        call
    } else {
        call.signing(Signing::Unsigned)
    }
}

/// `application/x-www-form-urlencoded` encoding of `fields`.
pub fn form_encode(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Decodes `application/x-www-form-urlencoded` text (a query string) into its pairs, in order.
/// Invalid escapes are kept as they are; invalid UTF-8 is replaced.
pub fn form_decode(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (percent_decode_lossy(k), percent_decode_lossy(v)),
            None => (percent_decode_lossy(pair), String::new()),
        })
        .collect()
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved characters).
pub fn path_segment(s: &str) -> String {
    percent_encode(s).replace('+', "%20")
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding() {
        assert_eq!(
            form_encode(&[("grant_type", "authorization_code"), ("code", "a b&c=d/é")]),
            "grant_type=authorization_code&code=a+b%26c%3Dd%2F%C3%A9"
        );
    }

    #[test]
    fn form_decoding_round_trips() {
        let fields = [("code", "a b&c=d/é"), ("state", "acctreq_1"), ("empty", "")];
        let decoded = form_decode(&form_encode(&fields));
        let expected: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(decoded, expected);
        // Broken escapes are kept, a bare key has an empty value.
        assert_eq!(
            form_decode("a=%zz%4&b"),
            vec![("a".into(), "%zz%4".into()), ("b".into(), String::new())]
        );
        assert_eq!(path_segment("res_1/../x y"), "res_1%2F..%2Fx%20y");
        assert_eq!(
            resource_path("res_1", Some("confirm")),
            "/provisioning/resources/res_1/confirm"
        );
    }

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![("Request-Id".into(), "req_42".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn protocol_errors_from_every_envelope() {
        let plain = reply(
            401,
            r#"{"error":{"code":"invalid_signature","message":"stale"}}"#,
        );
        let e = plain.protocol_error().expect("error");
        assert_eq!(
            (e.status, e.code.as_str(), e.message.as_str()),
            (401, "invalid_signature", "stale")
        );
        assert_eq!(e.request_id.as_deref(), Some("req_42"));
        assert_eq!(e.to_string(), "invalid_signature: stale");

        let resource = reply(
            409,
            r#"{"status":"error","id":null,"error":{"code":"plan_already_active","message":"one plan"}}"#,
        );
        assert_eq!(
            resource.protocol_error().map(|e| e.code),
            Some("plan_already_active".into())
        );

        let account = reply(
            200,
            r#"{"id":"acctreq_1","type":"error","error":{"code":"expired","message":"late"}}"#,
        );
        assert!(!account.is_success());
        assert_eq!(
            account.protocol_error().map(|e| e.message),
            Some("late".into())
        );

        let oauth = reply(
            400,
            r#"{"error":"invalid_grant","error_description":"used twice"}"#,
        );
        let e = oauth.protocol_error().expect("error");
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("invalid_grant", "used twice")
        );

        let html = reply(502, "<html>bad gateway</html>");
        let e = html.protocol_error().expect("error");
        assert_eq!(e.code, "http_502");
        assert!(e.message.contains("bad gateway"), "{}", e.message);

        let empty = reply(500, "");
        assert_eq!(
            empty.protocol_error().map(|e| e.code),
            Some("http_500".into())
        );

        let ok = reply(200, r#"{"status":"complete","id":"res_1"}"#);
        assert!(ok.is_success());
        assert_eq!(ok.protocol_error(), None);
    }
}
