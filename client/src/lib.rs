//! An APP client that signs requests exactly as the orchestrator does (PROTOCOL.md §1).
//!
//! The black-box tests drive the worker through it, and the orchestrator CLI is built on it, so
//! both speak the wire format the same way. Every knob a test needs to send a *wrong* request
//! (no signature, another secret, a stale timestamp, a raw header) is a field of [`Call`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
}
