//! HTTP plumbing shared by the three APIs and the control routes: the request as read, the
//! reply to send, and what an API handler did. No state here.

use serde_json::{json, Value};

/// Internal marker on a reply to be sent late (a slow fault); never sent.
pub(crate) const DELAY_HEADER: &str = "x-stand-in-delay-ms";

/// A request, read fully before any state is touched.
pub(crate) struct Incoming {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Incoming {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `Idempotency-Key` header, when present and not blank.
    pub(crate) fn idempotency_key(&self) -> Option<&str> {
        self.header("idempotency-key")
            .map(str::trim)
            .filter(|k| !k.is_empty())
    }

    /// The token of `Authorization: Bearer <token>`.
    pub(crate) fn bearer(&self) -> Option<&str> {
        let value = self.header("authorization")?.trim();
        let (scheme, token) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty())
    }

    /// The media type of `Content-Type`, lowercased, without parameters.
    pub(crate) fn media_type(&self) -> String {
        self.header("content-type")
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default()
    }
}

/// A response: status, JSON body text (kept verbatim for replays) and extra headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: String,
    pub(crate) headers: Vec<(String, String)>,
}

impl Reply {
    pub(crate) fn json(status: u16, body: &Value) -> Reply {
        Reply {
            status,
            body: body.to_string(),
            headers: Vec::new(),
        }
    }

    pub(crate) fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub(crate) fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    }
}

/// What an API handler did: the reply, the decoded parameters and whether it was a replay.
pub(crate) struct Handled {
    pub(crate) reply: Reply,
    pub(crate) params: Value,
    pub(crate) replayed: bool,
}

/// The error body of the registrar and operator-backend APIs (and of the control routes).
pub(crate) fn error_reply(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}
