use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::account::Access;
use crate::catalog::Catalog;
use crate::dashboard::place::{check_path, Place, DEFAULT_PURPOSE, KNOWN_PATHS};
use crate::resources::error::{invalid, ResourceError};
use crate::resources::lookup::service;

// Request bodies

pub(crate) fn object(body: &[u8]) -> Result<Map<String, Value>, ResourceError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("the body is not valid JSON: {e}")))?;
    if let Some(message) = crate::schema::inexact_integer(&v) {
        return Err(invalid(message));
    }
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(invalid("the body must be a JSON object")),
    }
}

pub(crate) fn text_field(
    m: &Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<Option<String>, ResourceError> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => {
            Err(invalid(format!("{field} must not be empty")))
        }
        Some(Value::String(s)) if s.chars().count() > max => {
            Err(invalid(format!("{field} is longer than {max} characters")))
        }
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(format!("{field} must be a string"))),
    }
}

/// `payment_credentials`: a Stripe shared payment token, or nothing. Unknown types are ignored.
pub(crate) fn payment_token(m: &Map<String, Value>) -> Result<Option<String>, ResourceError> {
    let Some(pc) = m.get("payment_credentials") else {
        return Ok(None);
    };
    if pc.is_null() {
        return Ok(None);
    }
    let pc = pc
        .as_object()
        .ok_or_else(|| invalid("payment_credentials must be an object"))?;
    match pc.get("type").and_then(Value::as_str) {
        Some("stripe_payment_token") => match pc.get("stripe_payment_token") {
            Some(Value::String(t))
                if t.starts_with("spt_")
                    && t.len() <= 255
                    && t.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') =>
            {
                Ok(Some(t.clone()))
            }
            _ => Err(invalid(
                "payment_credentials.stripe_payment_token must be a token like spt_...",
            )),
        },
        Some(_) => Ok(None),
        None => Err(invalid("payment_credentials.type is required")),
    }
}

/// `POST /provisioning/resources` and `POST /provisioning/resources/link`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRequest {
    pub service_id: String,
    pub project_id: String,
    pub configuration: Value,
    pub payment_token: Option<String>,
    /// The `Idempotency-Key` header (protocol §8).
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// The orchestrator's own name for this resource (protocol §8).
    #[serde(default)]
    pub orchestrator_resource_id: Option<String>,
    /// e.g. `prod`; stored and echoed.
    #[serde(default)]
    pub environment: Option<String>,
    /// The answer to a `needs_information` (protocol §8): an object matching its `schema`.
    #[serde(default)]
    pub submitted_information: Option<Map<String, Value>>,
}

impl CreateRequest {
    /// Whether the orchestrator named this call (key or resource id): then the call is matched
    /// by those names, not by (project, service).
    pub fn named(&self) -> bool {
        self.idempotency_key.is_some() || self.orchestrator_resource_id.is_some()
    }

    /// SHA-256 (hex) of what identifies the call: service, project, configuration, environment
    /// and the orchestrator's id. Not the payment token (a retry may carry a fresh one) and not
    /// `submitted_information` (the repeated create that answers `needs_information` carries
    /// it). serde_json's maps are ordered, so the text is canonical.
    pub fn fingerprint(&self, link: bool) -> String {
        let identity = json!({"call": if link { "link" } else { "create" },
            "service_id": self.service_id, "project_id": self.project_id,
            "configuration": self.configuration, "environment": self.environment,
            "orchestrator_resource_id": self.orchestrator_resource_id});
        crate::crypto::sha256_hex(identity.to_string().as_bytes())
    }
}

/// Which call a body is for: a link's `configuration` is optional, even where the service's
/// schema requires fields for a create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateCall {
    Create,
    Link,
}

/// A name the orchestrator gives (`Idempotency-Key`, `orchestrator_resource_id`): 1 to 255
/// visible ASCII characters.
fn name(field: &str, value: Option<String>) -> Result<Option<String>, ResourceError> {
    match value {
        Some(v) if v.len() > 255 || !v.bytes().all(|c| c.is_ascii_graphic()) => Err(invalid(
            format!("{field} must be 1 to 255 visible ASCII characters"),
        )),
        other => Ok(other),
    }
}

/// Parses and validates `POST /provisioning/resources` (or `/link`, `call`), with the request's
/// `Idempotency-Key` header.
pub fn parse_create(
    body: &[u8],
    catalog: &Catalog,
    call: CreateCall,
    idempotency_key: Option<&str>,
) -> Result<CreateRequest, ResourceError> {
    let m = object(body)?;
    let service_id =
        text_field(&m, "service_id", 64)?.ok_or_else(|| invalid("service_id is required"))?;
    let service = service(catalog, &service_id)?;
    let project_id =
        text_field(&m, "project_id", 128)?.ok_or_else(|| invalid("project_id is required"))?;
    if !project_id
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b':'))
    {
        return Err(invalid(
            "project_id may contain only A-Z, a-z, 0-9, '_', '-', '.' and ':'",
        ));
    }
    let configuration = match m.get("configuration") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => Some(v.clone()),
        Some(_) => return Err(invalid("configuration must be an object")),
    };
    if configuration.is_some() || call == CreateCall::Create {
        let c = configuration.clone().unwrap_or_else(|| json!({}));
        service
            .validate_configuration(&c)
            .map_err(|e| ResourceError::InvalidConfiguration {
                field: if e.path.is_empty() {
                    "configuration".into()
                } else {
                    format!("configuration{}", e.path)
                },
                message: e.message,
            })?;
    }
    let idempotency_key = match idempotency_key.map(str::trim) {
        Some("") => return Err(invalid("the Idempotency-Key header must not be empty")),
        k => name("the Idempotency-Key header", k.map(str::to_string))?,
    };
    let environment = text_field(&m, "environment", 64)?;
    if let Some(e) = &environment {
        if !e
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
        {
            return Err(invalid(
                "environment may contain only A-Z, a-z, 0-9, '_', '-' and '.'",
            ));
        }
    }
    let submitted_information = match m.get("submitted_information") {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => Some(o.clone()),
        Some(_) => return Err(invalid("submitted_information must be an object")),
    };
    Ok(CreateRequest {
        service_id,
        project_id,
        configuration: configuration.unwrap_or_else(|| json!({})),
        payment_token: payment_token(&m)?,
        idempotency_key,
        orchestrator_resource_id: name(
            "orchestrator_resource_id",
            text_field(&m, "orchestrator_resource_id", 255)?,
        )?,
        environment,
        submitted_information,
    })
}

/// `update_service`: a new service along `allowed_updates`, a new configuration, or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateRequest {
    /// Absent (or the resource's own): a configuration change only.
    #[serde(default)]
    pub service_id: Option<String>,
    #[serde(default)]
    pub configuration: Option<Value>,
    pub payment_token: Option<String>,
}

pub fn parse_update(body: &[u8]) -> Result<UpdateRequest, ResourceError> {
    let m = object(body)?;
    let service_id = text_field(&m, "service_id", 64)?;
    let configuration = match m.get("configuration") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => Some(v.clone()),
        Some(_) => return Err(invalid("configuration must be an object")),
    };
    if service_id.is_none() && configuration.is_none() {
        return Err(invalid(
            "send service_id (a plan change) or configuration (a configuration change), or both",
        ));
    }
    Ok(UpdateRequest {
        service_id,
        configuration,
        payment_token: payment_token(&m)?,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmRequest {
    pub domain: String,
    pub amount: u64,
    pub payment_token: Option<String>,
}

/// `POST /provisioning/resources/{id}/confirm` (extension): which candidate, at which price.
pub fn parse_confirm(body: &[u8]) -> Result<ConfirmRequest, ResourceError> {
    let m = object(body)?;
    let domain = text_field(&m, "domain", 253)?
        .ok_or_else(|| invalid("domain is required: one of the quoted candidates"))?;
    let amount = match m.get("amount") {
        Some(v) => v
            .as_u64()
            .ok_or_else(|| invalid("amount must be the quoted price in cents, an integer"))?,
        None => {
            return Err(invalid(
                "amount is required: the quoted price in cents, to acknowledge it",
            ))
        }
    };
    Ok(ConfirmRequest {
        domain,
        amount,
        payment_token: payment_token(&m)?,
    })
}

/// Parses an empty or `{}` body (rotate, remove).
pub fn parse_empty(body: &[u8]) -> Result<(), ResourceError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    object(body).map(|_| ())
}

/// `POST /provisioning/deep_links`: what to open, and where inside the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeepLinkRequest {
    /// One of `dashboard::place::PURPOSES`; `dashboard` when absent or null.
    pub purpose: String,
    /// A path inside the dashboard (checked, and a place it has), when given.
    #[serde(default)]
    pub path: Option<String>,
}

/// `POST /provisioning/deep_links`: `{"purpose"?, "path"?}`. The purpose is free-form in the
/// protocol: a purpose we do not serve is `unsupported_purpose`, a path that is not a place of
/// the dashboard `invalid_request` (never a redirect elsewhere).
pub fn parse_deep_link(body: &[u8]) -> Result<DeepLinkRequest, ResourceError> {
    let m = object(body)?;
    let purpose = text_field(&m, "purpose", 64)?.unwrap_or_else(|| DEFAULT_PURPOSE.to_string());
    if Place::of_purpose(&purpose).is_none() {
        return Err(ResourceError::UnsupportedPurpose { purpose });
    }
    let path = match m.get("path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => {
            check_path(p).map_err(|why| invalid(format!("path {why}")))?;
            if Place::parse(p).is_none() {
                return Err(invalid(format!(
                    "path {p} is not a place in the dashboard; it has {KNOWN_PATHS}"
                )));
            }
            Some(p.clone())
        }
        Some(_) => return Err(invalid("path must be a string")),
    };
    Ok(DeepLinkRequest { purpose, path })
}

/// The scope a call needs.
pub fn require_scope(access: &Access, write: bool) -> Result<(), ResourceError> {
    let ok = access.scopes.iter().any(|s| s == "resources:write")
        || (!write && access.scopes.iter().any(|s| s == "resources:read"));
    if ok {
        Ok(())
    } else {
        Err(ResourceError::InsufficientScope {
            needed: if write {
                "resources:write"
            } else {
                "resources:read"
            }
            .into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: Value) -> Result<DeepLinkRequest, ResourceError> {
        parse_deep_link(body.to_string().as_bytes())
    }

    fn link(purpose: &str, path: Option<&str>) -> Result<DeepLinkRequest, ResourceError> {
        Ok(DeepLinkRequest {
            purpose: purpose.into(),
            path: path.map(str::to_string),
        })
    }

    fn message(r: Result<DeepLinkRequest, ResourceError>) -> String {
        match r {
            Err(ResourceError::InvalidRequest { message }) => message,
            other => panic!("not invalid_request: {other:?}"),
        }
    }

    #[test]
    fn deep_link_purpose_defaults_to_the_dashboard() {
        assert_eq!(parse(json!({})), link("dashboard", None));
        assert_eq!(
            parse(json!({"purpose": null, "path": null})),
            link("dashboard", None)
        );
        assert_eq!(parse(json!({"purpose": "billing"})), link("billing", None));
        assert_eq!(
            parse(json!({"purpose": "dashboard", "path": "/resources/res_1", "x": 1})),
            link("dashboard", Some("/resources/res_1"))
        );
        assert_eq!(
            parse(json!({"purpose": "support"})),
            Err(ResourceError::UnsupportedPurpose {
                purpose: "support".into()
            })
        );
        assert!(message(parse(json!({"purpose": ""}))).contains("purpose"));
        assert!(message(parse(json!({"purpose": 7}))).contains("purpose"));
    }

    #[test]
    fn deep_link_paths_are_places_of_the_dashboard() {
        for p in ["/", "/billing", "/resources", "/resources/res_abc"] {
            assert_eq!(parse(json!({"path": p})), link("dashboard", Some(p)), "{p}");
        }
        let said = |p: Value| message(parse(json!({"purpose": "dashboard", "path": p})));
        assert_eq!(said(json!("//evil.example")), "path must not contain //");
        assert_eq!(
            said(json!("https://evil.example")),
            "path must start with /"
        );
        assert_eq!(
            said(json!("/../x")),
            "path must not contain . or .. segments"
        );
        assert_eq!(said(json!("/\\evil")), "path must not contain a backslash");
        assert_eq!(said(json!("")), "path must start with /");
        assert_eq!(said(json!(["/"])), "path must be a string");
        assert!(said(json!("/settings")).contains("not a place in the dashboard"));
        assert!(said(json!("/settings")).contains(KNOWN_PATHS));
    }
}
