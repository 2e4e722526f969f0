//! Every failure the provider can answer, and the one place where each becomes an HTTP status
//! and one of the protocol's error envelopes (PROTOCOL.md §5.4).
//!
//! Handlers never build error JSON themselves: they return a typed error, convert it into a
//! [`Failure`] here, and render it with the [`Envelope`] of their endpoint family.

use serde_json::{json, Value};

use crate::signature::SignatureError;

/// The shape an error takes on the wire, chosen by the endpoint family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Envelope {
    /// Signature, version, routing and size errors: `{"error":{"code","message"}}`.
    Plain,
    /// `POST /provisioning/account_requests`: `{"id","type":"error","error":{...}}`.
    AccountRequest { id: Option<String> },
    /// Resource endpoints: `{"status":"error","id","error":{...}}`.
    Resource { id: Option<String> },
    /// `/oauth/*`: RFC 6749 `{"error","error_description"}`.
    OAuth,
}

/// A failure ready to be rendered: HTTP status, stable machine code, human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// Seconds, for `429` and `503` answers (`Retry-After`).
    pub retry_after: Option<u64>,
}

impl Failure {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Failure {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The JSON body for this failure in the given envelope.
    pub fn render(&self, envelope: &Envelope) -> Value {
        let error = json!({"code": self.code, "message": self.message});
        match envelope {
            Envelope::Plain => json!({ "error": error }),
            Envelope::AccountRequest { id } => json!({"id": id, "type": "error", "error": error}),
            Envelope::Resource { id } => json!({"status": "error", "id": id, "error": error}),
            Envelope::OAuth => json!({"error": self.code, "error_description": self.message}),
        }
    }
}

/// Failures common to every endpoint: authentication, version, routing, size, internal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    Signature(SignatureError),
    ApiVersion {
        got: Option<String>,
    },
    NotFound,
    MethodNotAllowed {
        allow: &'static str,
    },
    PayloadTooLarge {
        limit: usize,
    },
    /// The body is not what the endpoint accepts; the message names the field.
    InvalidRequest(String),
    UnsupportedMediaType {
        expected: &'static str,
    },
    RateLimited {
        retry_after: u64,
    },
    /// A dependency failed; nothing was changed. Safe to retry.
    Unavailable(String),
    /// A bug or misconfiguration: details go to the log, not to the caller.
    Internal,
}

impl From<SignatureError> for ApiError {
    fn from(e: SignatureError) -> Self {
        ApiError::Signature(e)
    }
}

impl ApiError {
    pub fn failure(&self) -> Failure {
        match self {
            ApiError::Signature(e) => Failure::new(401, "invalid_signature", e.reason()),
            ApiError::ApiVersion { got: None } => Failure::new(
                400,
                "invalid_api_version",
                format!(
                    "the API-Version header is required; send API-Version: {}",
                    crate::protocol::API_VERSION
                ),
            ),
            ApiError::ApiVersion { got: Some(v) } => Failure::new(
                400,
                "invalid_api_version",
                format!(
                    "API-Version {:?} is not supported; supported versions: {}",
                    truncate(v, 32),
                    crate::protocol::SUPPORTED_VERSIONS.join(", ")
                ),
            ),
            ApiError::NotFound => Failure::new(404, "not_found", "no such endpoint"),
            ApiError::MethodNotAllowed { allow } => Failure::new(
                405,
                "method_not_allowed",
                format!("this endpoint accepts {allow}"),
            ),
            ApiError::PayloadTooLarge { limit } => Failure::new(
                413,
                "payload_too_large",
                format!("request bodies are limited to {limit} bytes"),
            ),
            ApiError::InvalidRequest(message) => {
                Failure::new(400, "invalid_request", message.clone())
            }
            ApiError::UnsupportedMediaType { expected } => Failure::new(
                415,
                "unsupported_media_type",
                format!("send the body as {expected}"),
            ),
            ApiError::RateLimited { retry_after } => Failure {
                retry_after: Some(*retry_after),
                ..Failure::new(
                    429,
                    "rate_limited",
                    format!("too many requests; retry after {retry_after} s"),
                )
            },
            ApiError::Unavailable(what) => Failure {
                retry_after: Some(5),
                ..Failure::new(
                    503,
                    "temporarily_unavailable",
                    format!("{what} is unavailable; nothing was changed, retry shortly"),
                )
            },
            ApiError::Internal => Failure::new(
                500,
                "internal_error",
                "an internal error occurred; nothing was changed",
            ),
        }
    }
}

/// At most `max` characters of `s`, for echoing caller input safely in messages.
pub fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_envelope_has_the_protocol_shape() {
        let f = Failure::new(400, "expired", "the request expired");
        assert_eq!(
            f.render(&Envelope::Plain),
            json!({"error": {"code": "expired", "message": "the request expired"}})
        );
        assert_eq!(
            f.render(&Envelope::AccountRequest {
                id: Some("acctreq_1".into())
            }),
            json!({"id": "acctreq_1", "type": "error",
                   "error": {"code": "expired", "message": "the request expired"}})
        );
        assert_eq!(
            f.render(&Envelope::Resource { id: None }),
            json!({"status": "error", "id": null,
                   "error": {"code": "expired", "message": "the request expired"}})
        );
        assert_eq!(
            f.render(&Envelope::OAuth),
            json!({"error": "expired", "error_description": "the request expired"})
        );
    }

    #[test]
    fn statuses_and_codes() {
        let cases = [
            (
                ApiError::Signature(SignatureError::Mismatch),
                401,
                "invalid_signature",
            ),
            (
                ApiError::ApiVersion { got: None },
                400,
                "invalid_api_version",
            ),
            (ApiError::NotFound, 404, "not_found"),
            (
                ApiError::MethodNotAllowed { allow: "GET" },
                405,
                "method_not_allowed",
            ),
            (
                ApiError::PayloadTooLarge { limit: 10 },
                413,
                "payload_too_large",
            ),
            (
                ApiError::RateLimited { retry_after: 3 },
                429,
                "rate_limited",
            ),
            (ApiError::Internal, 500, "internal_error"),
        ];
        for (error, status, code) in cases {
            let f = error.failure();
            assert_eq!((f.status, f.code), (status, code), "{error:?}");
        }
        assert_eq!(
            ApiError::RateLimited { retry_after: 3 }
                .failure()
                .retry_after,
            Some(3)
        );
    }

    #[test]
    fn echoed_input_is_truncated() {
        let long = "9".repeat(1000);
        let f = ApiError::ApiVersion { got: Some(long) }.failure();
        assert!(f.message.len() < 120, "{}", f.message);
        assert_eq!(truncate("héllo", 2), "hé");
    }
}
