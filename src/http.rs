//! Request reading, response building and per-request logging.
//!
//! Invariants: a body is read at most once, as bytes, and never beyond [`MAX_BODY_BYTES`]
//! (refused with 413 from `Content-Length` before reading, then read in one piece; without
//! `Content-Length`, refused as soon as the stream passes the limit); every response carries `Request-Id`, `Cache-Control: no-store` and
//! `X-Content-Type-Options: nosniff`; log lines never contain query strings, bodies, secrets or
//! signatures.

use domain::errors::{ApiError, Envelope, Failure};
use futures_util::StreamExt;
use serde_json::Value;
use worker::{Headers, Request, Response};

/// Largest request body accepted, in bytes. Protocol bodies are a few KB; webhooks from Stripe
/// stay well under this.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A request as the handlers see it: headers, query, the whole body, and the time.
pub struct Incoming {
    pub headers: Headers,
    /// The query string without `?` (never logged).
    pub query: String,
    /// `scheme://host[:port]` of the request URL.
    pub origin: String,
    pub body: Vec<u8>,
    /// Unix seconds at arrival.
    pub now: i64,
}

impl Incoming {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).ok().flatten()
    }
}

/// A failure plus the envelope it is rendered in.
#[derive(Debug)]
pub struct Problem {
    pub failure: Failure,
    pub envelope: Envelope,
}

impl Problem {
    pub fn plain(error: ApiError) -> Self {
        Problem {
            failure: error.failure(),
            envelope: Envelope::Plain,
        }
    }
}

impl From<ApiError> for Problem {
    fn from(e: ApiError) -> Self {
        Problem::plain(e)
    }
}

/// Largest Stripe webhook accepted (events carry whole objects such as invoices).
pub const MAX_WEBHOOK_BYTES: usize = 256 * 1024;

/// Reads the body of `req` up to `limit` bytes.
pub async fn read_body(req: &mut Request, limit: usize) -> Result<Vec<u8>, ApiError> {
    let too_large = ApiError::PayloadTooLarge { limit };
    let unreadable = || ApiError::InvalidRequest("the request body could not be read".into());
    let declared = match req.headers().get("content-length").ok().flatten() {
        None => None,
        Some(length) => match length.trim().parse::<u64>() {
            Ok(n) if n > limit as u64 => return Err(too_large),
            Ok(n) => Some(n),
            Err(_) => {
                return Err(ApiError::InvalidRequest(
                    "the Content-Length header is not a number".into(),
                ))
            }
        },
    };
    if req.inner().body().is_none() {
        return Ok(Vec::new());
    }
    if declared.is_some() {
        // The runtime delivers exactly Content-Length bytes: one read, no chunk loop.
        return req.bytes().await.map_err(|_| unreadable());
    }
    let mut stream = req.stream().map_err(|_| ApiError::Internal)?;
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| unreadable())?;
        if body.len() + chunk.len() > limit {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A JSON response with the given status.
pub fn json(status: u16, value: &Value) -> worker::Result<Response> {
    let bytes = serde_json::to_vec(value).map_err(|e| worker::Error::RustError(e.to_string()))?;
    json_bytes(status, bytes)
}

/// A response whose body is JSON already serialised.
pub fn json_bytes(status: u16, bytes: Vec<u8>) -> worker::Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    Ok(Response::from_bytes(bytes)?
        .with_status(status)
        .with_headers(headers))
}

/// The response for a problem: its status, its envelope, and `Retry-After` when it has one.
pub fn problem_response(problem: &Problem, allow: Option<&str>) -> worker::Result<Response> {
    let mut response = json(
        problem.failure.status,
        &problem.failure.render(&problem.envelope),
    )?;
    if let Some(seconds) = problem.failure.retry_after {
        response
            .headers_mut()
            .set("retry-after", &seconds.to_string())?;
    }
    if let Some(allow) = allow {
        response.headers_mut().set("allow", allow)?;
    }
    Ok(response)
}

/// Headers every response carries.
pub fn finish(response: &mut Response, request_id: &str) -> worker::Result<()> {
    let headers = response.headers_mut();
    headers.set("request-id", request_id)?;
    if !headers.has("cache-control")? {
        headers.set("cache-control", "no-store")?;
    }
    headers.set("x-content-type-options", "nosniff")?;
    Ok(())
}

/// Current time in milliseconds since the epoch.
pub fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}

/// `n` random bytes from the platform's CSPRNG.
pub fn random<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|_| ApiError::Internal)?;
    Ok(buf)
}

/// A fresh identifier `<prefix>_<base32 of 10 random bytes>`.
pub fn new_id(prefix: &str) -> String {
    let bytes = random::<10>().unwrap_or_else(|_| {
        // The CSPRNG does not fail on Workers; a time-based id keeps logs usable if it ever does.
        let t = now_ms().to_be_bytes();
        [t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], 0, 0]
    });
    format!("{prefix}_{}", domain::crypto::base32(&bytes))
}

/// One structured log line per request.
pub struct LogLine<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub duration_ms: u64,
    pub error_code: Option<&'a str>,
}

impl LogLine<'_> {
    pub fn emit(&self) {
        let line = serde_json::json!({
            "level": if self.status >= 500 { "error" } else { "info" },
            "msg": "request",
            "request_id": self.request_id,
            "method": self.method,
            // Paths carry ids, never secrets; query strings are not logged.
            "path": domain::text::truncate(self.path, 200),
            "route": self.route,
            "status": self.status,
            "duration_ms": self.duration_ms,
            "error": self.error_code,
        });
        worker::console_log!("{line}");
    }
}

/// Logs an internal error with its detail, tied to the request id; the caller sees only
/// `internal_error`.
pub fn log_internal(request_id: &str, context: &str, detail: &str) {
    let line = serde_json::json!({
        "level": "error",
        "msg": context,
        "request_id": request_id,
        "detail": domain::text::truncate(detail, 500),
    });
    worker::console_error!("{line}");
}

/// Whether the request's `Content-Type` (without parameters) is `expected`.
pub fn has_content_type(inc: &Incoming, expected: &str) -> bool {
    inc.header("content-type")
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case(expected)
        })
        .unwrap_or(false)
}

/// A response that could not be built: logged, answered as a plain internal error.
pub fn internal(e: worker::Error) -> Problem {
    worker::console_error!("response: {e}");
    Problem::plain(ApiError::Internal)
}

/// Constant-time check of a bearer secret that leaks neither its contents nor its length
/// (both sides are compared as MACs: `domain::crypto::secret_eq`).
pub fn bearer_matches(inc: &Incoming, secret: Option<String>) -> bool {
    let Some(secret) = secret else { return false };
    let presented = inc
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer ").map(|t| t.trim().to_string()))
        .unwrap_or_default();
    domain::crypto::secret_eq(presented.as_bytes(), secret.as_bytes())
}
