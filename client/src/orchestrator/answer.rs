//! A provider answer that is not an error: status, `Request-Id`, the body as JSON and as sent
//! (`--json` prints the text exactly as the provider wrote it).

use domain::wire::ResourceAnswer;
use serde_json::Value;

use crate::{ProtocolError, Reply};

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

    /// The answer as the protocol's resource object, when it is one.
    pub fn resource(&self) -> Option<ResourceAnswer> {
        serde_json::from_value(self.json.clone()).ok()
    }
}
