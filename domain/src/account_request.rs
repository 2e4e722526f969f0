//! `POST /provisioning/account_requests` bodies (docs/PROTOCOL.md §3.1): parsing and validation.
//!
//! Invariant: a [`AccountRequest`] exists only when every known field has the right type and
//! value; unknown fields are ignored anywhere in the body (forward compatibility within a
//! version), and `null` for an optional field means the field is absent (what the real
//! orchestrator sends, docs/PROTOCOL.md §3.1). The request's `fingerprint` covers every field
//! that shapes the outcome, so a replayed id with a different body is detected as an
//! idempotency conflict. A request without an `id` is not replayable: it has no idempotency key.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::crypto::sha256_hex;
use crate::{email, pkce, time};

/// Scopes an orchestrator may ask for. `resources:write` allows creating and changing
/// resources; `resources:read` allows reading them.
pub const SUPPORTED_SCOPES: &[&str] = &["resources:read", "resources:write"];

/// The orchestrator that signs calls on the human's behalf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Orchestrator {
    /// `stripe` for Stripe Projects.
    #[serde(rename = "type")]
    pub kind: String,
    pub organisation: Option<String>,
    /// The orchestrator-side account (for Stripe, the Stripe account id).
    pub account: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRequest {
    /// The orchestrator's idempotency key. `None` (absent or `null`): the request is never
    /// claimed nor replayed; each one is a new request, answered with `"id": null`.
    pub id: Option<String>,
    /// Normalised (trimmed, lowercased).
    pub email: String,
    pub name: Option<String>,
    pub scopes: Vec<String>,
    pub client_capabilities: Vec<String>,
    /// `None` (absent or `null`): the request does not expire.
    pub expires_at: Option<i64>,
    /// When the human accepted the provider's terms of service (the orchestrator's CLI
    /// `--accept-tos`), if the orchestrator says; recorded on a new account.
    pub terms_accepted_at: Option<i64>,
    pub configuration: Option<Value>,
    pub orchestrator: Orchestrator,
    pub code_challenge: Option<String>,
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AccountRequestError {
    /// A field is missing or of the wrong type or shape; the message names it.
    InvalidRequest {
        message: String,
    },
    InvalidEmail {
        message: String,
    },
    Expired,
    InvalidScope {
        scope: String,
    },
    InvalidCodeChallenge {
        message: String,
    },
    /// The same request id came with a different body.
    IdempotencyConflict,
    /// The account for this email is suspended or closed.
    AccountUnavailable {
        status: String,
    },
    /// A replay of a request whose code was already exchanged.
    AlreadyRedeemed,
    /// Storage was unreachable; nothing observable changed. Retry with the same id.
    Unavailable,
    /// A bug or misconfiguration (logged with the request id).
    Internal,
}

/// A successful account request, without its `id` (the caller adds it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "snake_case")]
pub enum Outcome {
    /// A new account: exchange `code` at `/oauth/token`.
    Oauth { oauth: OauthOutcome },
    /// An existing account: the human must approve at `url`.
    RequiresAuth { requires_auth: RequiresAuth },
}
crate::internally_tagged!(Outcome, "type");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OauthOutcome {
    pub code: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequiresAuth {
    pub url: String,
}

impl Outcome {
    /// The protocol's answer: `{"id", "type", ...}` (`"id": null` for a request without one).
    pub fn render(&self, id: Option<&str>) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(obj) = v.as_object_mut() {
            obj.insert("id".into(), id.map_or(Value::Null, Value::from));
        }
        v
    }
}

impl AccountRequestError {
    fn invalid(message: impl Into<String>) -> Self {
        AccountRequestError::InvalidRequest {
            message: message.into(),
        }
    }
}

const MAX_ID_LEN: usize = 128;
const MAX_NAME_LEN: usize = 200;
const MAX_LIST: usize = 16;
const MAX_TEXT: usize = 255;
/// The orchestrator's `configuration`, as compact JSON.
const MAX_CONFIGURATION: usize = 4096;
/// How far in the future `terms_accepted_at` may be: the orchestrator's clock may run ahead.
pub const CLOCK_SKEW: i64 = 300;

/// The name a request without an `id` goes by inside this provider (its code, its consent, its
/// audit records): `unnamed_` and base32 of fresh randomness. It is never claimed nor looked
/// up, so such a request cannot be replayed, even by sending this name as an `id`.
pub fn unnamed_key(random: &[u8; 16]) -> String {
    format!("unnamed_{}", crate::crypto::base32(random))
}

fn valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b':' | b'.'))
}

/// The `id` of a body, if it has a usable one (for the error envelope).
pub fn peek_id(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| valid_request_id(id))
        .map(str::to_string)
}

fn text<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    required: bool,
) -> Result<Option<&'a str>, AccountRequestError> {
    match obj.get(field) {
        None | Some(Value::Null) if !required => Ok(None),
        None | Some(Value::Null) => {
            Err(AccountRequestError::invalid(format!("{field} is required")))
        }
        Some(Value::String(s)) if s.len() > MAX_TEXT && field != "email" => Err(
            AccountRequestError::invalid(format!("{field} is longer than {MAX_TEXT} characters")),
        ),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(AccountRequestError::invalid(format!(
            "{field} must be a string"
        ))),
    }
}

fn string_list(obj: &Map<String, Value>, field: &str) -> Result<Vec<String>, AccountRequestError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => {
            if items.len() > MAX_LIST {
                return Err(AccountRequestError::invalid(format!(
                    "{field} has more than {MAX_LIST} entries"
                )));
            }
            items
                .iter()
                .map(|v| match v.as_str() {
                    Some(s) if !s.is_empty() && s.len() <= 64 => Ok(s.to_string()),
                    _ => Err(AccountRequestError::invalid(format!(
                        "{field} must be an array of non-empty strings (at most 64 characters)"
                    ))),
                })
                .collect()
        }
        Some(_) => Err(AccountRequestError::invalid(format!(
            "{field} must be an array of strings"
        ))),
    }
}

/// An optional ISO 8601 time (an offset-less one is UTC, fractions are dropped).
fn iso_time(obj: &Map<String, Value>, field: &str) -> Result<Option<i64>, AccountRequestError> {
    match text(obj, field, false)? {
        None => Ok(None),
        Some(raw) => time::parse_iso8601_utc(raw).map(Some).ok_or_else(|| {
            AccountRequestError::invalid(format!(
                "{field} must be an ISO 8601 time, e.g. 2026-11-28T12:00:00Z"
            ))
        }),
    }
}

/// Parses and validates a body at time `now` (unix seconds).
pub fn parse(body: &[u8], now: i64) -> Result<AccountRequest, AccountRequestError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| AccountRequestError::invalid(format!("the body is not valid JSON: {e}")))?;
    if let Some(message) = crate::schema::inexact_integer(&value) {
        return Err(AccountRequestError::invalid(message));
    }
    let obj = value
        .as_object()
        .ok_or_else(|| AccountRequestError::invalid("the body must be a JSON object"))?;

    let id = match text(obj, "id", false)? {
        None => None,
        Some(id) if valid_request_id(id) => Some(id.to_string()),
        Some(_) => {
            return Err(AccountRequestError::invalid(
                "id must be 1-128 characters of A-Z, a-z, 0-9, '_', '-', ':' or '.'",
            ))
        }
    };
    if let Some(object) = text(obj, "object", false)? {
        if object != "account_request" {
            return Err(AccountRequestError::invalid(
                "object must be \"account_request\"",
            ));
        }
    }
    let raw_email = text(obj, "email", true)?.unwrap_or_default();
    let email = email::normalize(raw_email).map_err(|m| AccountRequestError::InvalidEmail {
        message: m.to_string(),
    })?;
    let name = match text(obj, "name", false)? {
        Some(n) if n.chars().count() > MAX_NAME_LEN => {
            return Err(AccountRequestError::invalid(
                "name is longer than 200 characters",
            ))
        }
        Some(n) if n.chars().any(char::is_control) => {
            return Err(AccountRequestError::invalid(
                "name contains control characters",
            ))
        }
        Some(n) if !n.trim().is_empty() => Some(n.trim().to_string()),
        _ => None,
    };

    let mut scopes = string_list(obj, "scopes")?;
    if scopes.is_empty() {
        scopes = SUPPORTED_SCOPES.iter().map(|s| s.to_string()).collect();
    }
    for scope in &scopes {
        if !SUPPORTED_SCOPES.contains(&scope.as_str()) {
            return Err(AccountRequestError::InvalidScope {
                scope: crate::text::truncate(scope, 64).to_string(),
            });
        }
    }
    scopes.sort();
    scopes.dedup();
    let client_capabilities = string_list(obj, "client_capabilities")?;
    // Not used by this provider, but bounded like every other field.
    text(obj, "confirmation_secret", false)?;

    let expires_at = iso_time(obj, "expires_at")?;
    if expires_at.is_some_and(|t| t <= now) {
        return Err(AccountRequestError::Expired);
    }
    let terms_accepted_at = iso_time(obj, "terms_accepted_at")?;
    if terms_accepted_at.is_some_and(|t| t > now + CLOCK_SKEW) {
        return Err(AccountRequestError::invalid(
            "terms_accepted_at is in the future",
        ));
    }

    let configuration = match obj.get("configuration") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) if v.to_string().len() <= MAX_CONFIGURATION => Some(v.clone()),
        Some(Value::Object(_)) => {
            return Err(AccountRequestError::invalid(format!(
                "configuration is larger than {MAX_CONFIGURATION} bytes of JSON"
            )))
        }
        Some(_) => {
            return Err(AccountRequestError::invalid(
                "configuration must be an object",
            ))
        }
    };

    let orchestrator = {
        let o = obj
            .get("orchestrator")
            .ok_or_else(|| AccountRequestError::invalid("orchestrator is required"))?
            .as_object()
            .ok_or_else(|| AccountRequestError::invalid("orchestrator must be an object"))?;
        let kind = text(o, "type", true)
            .map_err(|_| AccountRequestError::invalid("orchestrator.type must be a string"))?
            .unwrap_or_default();
        if kind != "stripe" {
            return Err(AccountRequestError::invalid(
                "orchestrator.type must be \"stripe\"",
            ));
        }
        let stripe = o.get("stripe").and_then(Value::as_object).ok_or_else(|| {
            AccountRequestError::invalid("orchestrator.stripe.account is required")
        })?;
        let account = match stripe.get("account") {
            Some(Value::String(a)) if a.len() > MAX_TEXT => {
                return Err(AccountRequestError::invalid(format!(
                    "orchestrator.stripe.account is longer than {MAX_TEXT} characters"
                )))
            }
            Some(Value::String(a)) if !a.trim().is_empty() => a.clone(),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(AccountRequestError::invalid(
                    "orchestrator.stripe.account is required",
                ))
            }
            Some(_) => {
                return Err(AccountRequestError::invalid(
                    "orchestrator.stripe.account must be a string",
                ))
            }
        };
        let organisation = match stripe.get("organisation") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.len() <= MAX_TEXT => Some(s.clone()),
            Some(Value::String(_)) => {
                return Err(AccountRequestError::invalid(format!(
                    "orchestrator.stripe.organisation is longer than {MAX_TEXT} characters"
                )))
            }
            Some(_) => {
                return Err(AccountRequestError::invalid(
                    "orchestrator.stripe.organisation must be a string",
                ))
            }
        };
        Orchestrator {
            kind: kind.to_string(),
            organisation,
            account,
        }
    };

    let challenge = text(obj, "code_challenge", false).map_err(|_| {
        AccountRequestError::InvalidCodeChallenge {
            message: "code_challenge must be a string".into(),
        }
    })?;
    let method = text(obj, "code_challenge_method", false).map_err(|_| {
        AccountRequestError::InvalidCodeChallenge {
            message: "code_challenge_method must be a string".into(),
        }
    })?;
    let code_challenge = match (challenge, method) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(AccountRequestError::InvalidCodeChallenge {
                message: "code_challenge_method was sent without code_challenge".into(),
            })
        }
        (Some(_), m) if m != Some("S256") => {
            return Err(AccountRequestError::InvalidCodeChallenge {
                message: "code_challenge_method must be \"S256\"".into(),
            })
        }
        (Some(c), _) if !pkce::valid_challenge(c) => {
            return Err(AccountRequestError::InvalidCodeChallenge {
                message: "code_challenge must be 43-128 base64url characters".into(),
            })
        }
        (Some(c), _) => Some(c.to_string()),
    };

    let mut shape = serde_json::json!({
        "email": email, "name": name, "scopes": scopes, "expires_at": expires_at,
        "orchestrator": orchestrator, "code_challenge": code_challenge,
        "configuration": configuration,
    });
    // Only when sent, so the fingerprints recorded before this field existed still match.
    if let Some(t) = terms_accepted_at {
        shape["terms_accepted_at"] = t.into();
    }
    let fingerprint = sha256_hex(shape.to_string().as_bytes());
    Ok(AccountRequest {
        id,
        email,
        name,
        scopes,
        client_capabilities,
        expires_at,
        terms_accepted_at,
        configuration,
        orchestrator,
        code_challenge,
        fingerprint,
    })
}

/// What an account request id's first sight says about a request with that id. Ids are
/// idempotent across emails: the first body's fingerprint is kept under the id itself (its own
/// object) before any email's directory is asked, so the same id with another body (another
/// email included) is a conflict wherever it would go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Never seen: this request claims the id.
    New,
    /// The same body again: answer as the first time (the email's directory replays it).
    Same,
    /// Another body under the same id: `409 idempotency_conflict`.
    Conflict,
}

/// How many objects keep the claims of account request ids ([`claim_object`]).
pub const CLAIM_OBJECTS: usize = 256;

/// The name of the object that keeps the claim of account request id `id`: `claims:` and the
/// first byte of SHA-256(id) in hex, so ids spread evenly over [`CLAIM_OBJECTS`] long-lived
/// objects. (An object per id, as before, created a new SQLite database for every account
/// request: most of what a claim cost.) At 1,000 account requests a second that is about 4 a
/// second per object.
pub fn claim_object(id: &str) -> String {
    format!("claims:{}", &sha256_hex(id.as_bytes())[..2])
}

/// Decides a request's [`Claim`] from the fingerprint first recorded under its id, if any.
pub fn claim(recorded: Option<&str>, fingerprint: &str) -> Claim {
    match recorded {
        None => Claim::New,
        Some(f) if f == fingerprint => Claim::Same,
        Some(_) => Claim::Conflict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claims_spread_over_a_fixed_set_of_objects() {
        assert_eq!(claim_object("acctreq_1"), claim_object("acctreq_1"));
        let mut names = std::collections::BTreeSet::new();
        for i in 0..5000 {
            let name = claim_object(&format!("acctreq_{i}"));
            let hex = name.strip_prefix("claims:").unwrap();
            assert_eq!(hex.len(), 2);
            assert!(hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            names.insert(name);
        }
        assert_eq!(names.len(), CLAIM_OBJECTS);
        // Never an email's object (`email:<email>`), whatever the id.
        assert!(!claim_object("email:a@b.co").starts_with("email:"));
    }

    #[test]
    fn an_id_is_claimed_once_for_one_body() {
        let first = parse_value(&body()).unwrap();
        let mut other = body();
        other["email"] = json!("someone.else@example.com");
        let other = parse_value(&other).unwrap();
        assert_eq!(other.id, first.id);
        assert_eq!(claim(None, &first.fingerprint), Claim::New);
        assert_eq!(
            claim(Some(&first.fingerprint), &first.fingerprint),
            Claim::Same
        );
        // Another email under the same id: a different fingerprint, so a conflict.
        assert_eq!(
            claim(Some(&first.fingerprint), &other.fingerprint),
            Claim::Conflict
        );
    }

    const NOW: i64 = 1_795_860_000; // 2026-11-28T10:00:00Z

    fn body() -> Value {
        json!({
            "id": "acctreq_123", "object": "account_request", "email": "Dev@Example.com",
            "name": "Dev", "scopes": ["resources:write"], "client_capabilities": ["browser"],
            "confirmation_secret": "cs_1", "expires_at": "2026-11-28T12:00:00Z",
            "configuration": {"region": "eu"},
            "orchestrator": {"type": "stripe", "stripe": {"organisation": "org_1", "account": "acct_1"}},
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256"
        })
    }

    fn parse_value(v: &Value) -> Result<AccountRequest, AccountRequestError> {
        parse(v.to_string().as_bytes(), NOW)
    }

    fn with(field: &str, value: Value) -> Value {
        let mut b = body();
        b[field] = value;
        b
    }

    fn without(field: &str) -> Value {
        let mut b = body();
        b.as_object_mut().unwrap().remove(field);
        b
    }

    fn invalid_mentions(v: &Value, needle: &str) {
        match parse_value(v) {
            Err(AccountRequestError::InvalidRequest { message }) => {
                assert!(
                    message.contains(needle),
                    "{message} should mention {needle}"
                )
            }
            other => panic!("{v}: {other:?}"),
        }
    }

    #[test]
    fn parses_the_protocol_example() {
        let r = parse_value(&body()).unwrap();
        assert_eq!(r.id.as_deref(), Some("acctreq_123"));
        assert_eq!(r.email, "dev@example.com");
        assert_eq!(r.name.as_deref(), Some("Dev"));
        assert_eq!(r.scopes, ["resources:write"]);
        assert_eq!(r.expires_at, Some(1_795_867_200));
        assert_eq!(r.terms_accepted_at, None);
        assert_eq!(r.orchestrator.account, "acct_1");
        assert_eq!(r.orchestrator.organisation.as_deref(), Some("org_1"));
        assert!(r.code_challenge.is_some());
        assert_eq!(r.fingerprint.len(), 64);
    }

    #[test]
    fn minimal_body_gets_defaults() {
        let b = json!({"id": "r1", "email": "a@b.co", "expires_at": "2026-11-28T12:00:00Z",
                       "orchestrator": {"type": "stripe", "stripe": {"account": "acct_1"}}});
        let r = parse_value(&b).unwrap();
        assert_eq!(r.scopes, ["resources:read", "resources:write"]);
        assert_eq!(r.name, None);
        assert_eq!(r.code_challenge, None);
    }

    #[test]
    fn fingerprint_tracks_meaningful_fields_only() {
        let a = parse_value(&body()).unwrap().fingerprint;
        assert_eq!(
            a,
            parse_value(&with("client_capabilities", json!([])))
                .unwrap()
                .fingerprint
        );
        assert_eq!(
            a,
            parse_value(&with("email", json!("DEV@example.com")))
                .unwrap()
                .fingerprint
        );
        assert_ne!(
            a,
            parse_value(&with("email", json!("other@example.com")))
                .unwrap()
                .fingerprint
        );
        assert_ne!(
            a,
            parse_value(&with("scopes", json!(["resources:read"])))
                .unwrap()
                .fingerprint
        );
    }

    #[test]
    fn every_malformed_field_is_named() {
        assert!(matches!(
            parse(b"{", NOW),
            Err(AccountRequestError::InvalidRequest { .. })
        ));
        assert!(matches!(
            parse(b"[]", NOW),
            Err(AccountRequestError::InvalidRequest { .. })
        ));
        assert!(matches!(
            parse(b"", NOW),
            Err(AccountRequestError::InvalidRequest { .. })
        ));
        invalid_mentions(&with("id", json!(5)), "id");
        invalid_mentions(&with("id", json!("has space")), "id");
        invalid_mentions(&with("id", json!("x".repeat(129))), "id");
        invalid_mentions(&with("object", json!("account")), "object");
        invalid_mentions(&without("email"), "email");
        invalid_mentions(&with("email", json!(["a@b.co"])), "email");
        invalid_mentions(&with("name", json!(5)), "name");
        invalid_mentions(&with("name", json!("x".repeat(201))), "name");
        invalid_mentions(&with("name", json!("a\u{0}b")), "name");
        invalid_mentions(&with("scopes", json!("resources:write")), "scopes");
        invalid_mentions(&with("scopes", json!([1])), "scopes");
        invalid_mentions(
            &with("client_capabilities", json!({})),
            "client_capabilities",
        );
        invalid_mentions(
            &with("confirmation_secret", json!(1)),
            "confirmation_secret",
        );
        // Long values in every free-text field are refused, naming the field.
        let long = json!("x".repeat(256));
        invalid_mentions(
            &with("confirmation_secret", long.clone()),
            "confirmation_secret",
        );
        invalid_mentions(&with("expires_at", long.clone()), "expires_at");
        invalid_mentions(
            &with("configuration", json!({"k": "x".repeat(4096)})),
            "configuration",
        );
        invalid_mentions(
            &with(
                "orchestrator",
                json!({"type": "stripe", "stripe": {"account": long}}),
            ),
            "orchestrator.stripe.account",
        );
        invalid_mentions(
            &with(
                "orchestrator",
                json!({"type": "stripe", "stripe": {"account": "a", "organisation": long}}),
            ),
            "orchestrator.stripe.organisation",
        );
        invalid_mentions(&with("expires_at", json!(1795867200)), "expires_at");
        invalid_mentions(&with("expires_at", json!("tomorrow")), "expires_at");
        invalid_mentions(&with("configuration", json!([])), "configuration");
        invalid_mentions(&without("orchestrator"), "orchestrator");
        invalid_mentions(&with("orchestrator", json!("stripe")), "orchestrator");
        invalid_mentions(
            &with(
                "orchestrator",
                json!({"type": "other", "stripe": {"account": "a"}}),
            ),
            "orchestrator.type",
        );
        invalid_mentions(
            &with("orchestrator", json!({"type": "stripe"})),
            "orchestrator.stripe.account",
        );
        invalid_mentions(
            &with("orchestrator", json!({"type": "stripe", "stripe": {}})),
            "orchestrator.stripe.account",
        );
        invalid_mentions(
            &with(
                "orchestrator",
                json!({"type": "stripe", "stripe": {"account": ""}}),
            ),
            "orchestrator.stripe.account",
        );
        invalid_mentions(
            &with(
                "orchestrator",
                json!({"type": "stripe", "stripe": {"account": 7}}),
            ),
            "orchestrator.stripe.account",
        );
        invalid_mentions(
            &with(
                "orchestrator",
                json!({"type": "stripe", "stripe": {"account": "a", "organisation": 1}}),
            ),
            "organisation",
        );
    }

    #[test]
    fn specific_codes() {
        assert!(matches!(
            parse_value(&with("email", json!("not-an-email"))),
            Err(AccountRequestError::InvalidEmail { .. })
        ));
        assert_eq!(
            parse_value(&with("expires_at", json!("2026-11-28T09:59:59Z"))),
            Err(AccountRequestError::Expired)
        );
        assert_eq!(
            parse_value(&with("expires_at", json!("2026-11-28T10:00:00Z"))),
            Err(AccountRequestError::Expired)
        );
        assert_eq!(
            parse_value(&with("scopes", json!(["admin"]))),
            Err(AccountRequestError::InvalidScope {
                scope: "admin".into()
            })
        );
        let challenge = |c: Value, m: Value| {
            let mut b = body();
            b["code_challenge"] = c;
            b["code_challenge_method"] = m;
            parse_value(&b)
        };
        assert!(matches!(
            challenge(json!("short"), json!("S256")),
            Err(AccountRequestError::InvalidCodeChallenge { .. })
        ));
        assert!(matches!(
            challenge(
                json!("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
                json!("plain")
            ),
            Err(AccountRequestError::InvalidCodeChallenge { .. })
        ));
        assert!(matches!(
            challenge(
                json!("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
                Value::Null
            ),
            Err(AccountRequestError::InvalidCodeChallenge { .. })
        ));
        assert!(matches!(
            challenge(Value::Null, json!("S256")),
            Err(AccountRequestError::InvalidCodeChallenge { .. })
        ));
        assert!(matches!(
            challenge(json!(5), json!("S256")),
            Err(AccountRequestError::InvalidCodeChallenge { .. })
        ));
        assert!(challenge(Value::Null, Value::Null)
            .unwrap()
            .code_challenge
            .is_none());
    }

    #[test]
    fn outcomes_render_in_the_protocol_shape() {
        let o = Outcome::Oauth {
            oauth: OauthOutcome {
                code: "pvac_x".into(),
            },
        };
        assert_eq!(
            o.render(Some("acctreq_1")),
            json!({"id": "acctreq_1", "type": "oauth", "oauth": {"code": "pvac_x"}})
        );
        let o = Outcome::RequiresAuth {
            requires_auth: RequiresAuth {
                url: "https://p/oauth/authorize?consent=c".into(),
            },
        };
        assert_eq!(
            o.render(Some("acctreq_2")),
            json!({"id": "acctreq_2", "type": "requires_auth", "requires_auth": {"url": "https://p/oauth/authorize?consent=c"}})
        );
    }

    #[test]
    fn a_request_without_an_id_answers_with_a_null_id() {
        let o = Outcome::Oauth {
            oauth: OauthOutcome { code: "c".into() },
        };
        assert_eq!(
            o.render(None),
            json!({"id": null, "type": "oauth", "oauth": {"code": "c"}})
        );
    }

    #[test]
    fn an_absent_or_null_id_is_an_unnamed_request() {
        assert_eq!(parse_value(&without("id")).unwrap().id, None);
        assert_eq!(parse_value(&with("id", Value::Null)).unwrap().id, None);
        // Its error envelope carries no id.
        assert_eq!(
            peek_id(with("id", Value::Null).to_string().as_bytes()),
            None
        );
        // Unnamed requests get fresh internal names, never a valid-looking claim on a client's.
        let a = unnamed_key(&[0; 16]);
        assert!(a.starts_with("unnamed_"));
        assert_ne!(a, unnamed_key(&[1; 16]));
    }

    #[test]
    fn null_means_absent_for_every_optional_field() {
        let mut b = body();
        for field in [
            "id",
            "object",
            "name",
            "scopes",
            "client_capabilities",
            "confirmation_secret",
            "expires_at",
            "terms_accepted_at",
            "configuration",
            "code_challenge",
            "code_challenge_method",
        ] {
            b[field] = Value::Null;
        }
        b["orchestrator"]["organisation"] = Value::Null;
        b["orchestrator"]["stripe"]["organisation"] = Value::Null;
        let r = parse_value(&b).unwrap();
        let minimal = json!({"email": "Dev@Example.com",
            "orchestrator": {"type": "stripe", "stripe": {"account": "acct_1"}}});
        assert_eq!(r, parse_value(&minimal).unwrap());
        assert_eq!(r.id, None);
        assert_eq!(r.expires_at, None);
        assert_eq!(r.name, None);
        assert_eq!(r.scopes, ["resources:read", "resources:write"]);
        assert_eq!(r.configuration, None);
        assert_eq!(r.code_challenge, None);
        assert_eq!(r.orchestrator.organisation, None);
        // Required fields stay required when null.
        invalid_mentions(&with("email", Value::Null), "email");
        invalid_mentions(&with("orchestrator", Value::Null), "orchestrator");
    }

    #[test]
    fn an_absent_expiry_never_expires() {
        assert_eq!(
            parse_value(&without("expires_at")).unwrap().expires_at,
            None
        );
        // The fingerprint tells "no expiry" from an expiry.
        assert_ne!(
            parse_value(&without("expires_at")).unwrap().fingerprint,
            parse_value(&body()).unwrap().fingerprint
        );
    }

    #[test]
    fn times_without_an_offset_are_utc_and_fractions_are_accepted() {
        let at = |t: &str| parse_value(&with("expires_at", json!(t))).map(|r| r.expires_at);
        assert_eq!(at("2026-11-28T12:00:00"), Ok(Some(1_795_867_200)));
        assert_eq!(at("2026-11-28T12:00:00.123456"), Ok(Some(1_795_867_200)));
        assert_eq!(at("2026-11-28T12:00:00.5Z"), Ok(Some(1_795_867_200)));
        assert_eq!(at("2026-11-28T13:00:00+01:00"), Ok(Some(1_795_867_200)));
        // An offset-less time in the past is expired, not malformed.
        assert_eq!(at("2026-11-28T09:59:59"), Err(AccountRequestError::Expired));
        assert_eq!(
            at("2026-11-28T09:59:59.999"),
            Err(AccountRequestError::Expired)
        );
        invalid_mentions(&with("expires_at", json!("2026-11-28")), "expires_at");
        invalid_mentions(&with("expires_at", json!("2026-11-28 12:00")), "expires_at");
    }

    #[test]
    fn unknown_fields_are_ignored_everywhere() {
        let mut b = body();
        b["future_field"] = json!({"nested": [1, 2]});
        b["orchestrator"]["future"] = json!("x");
        b["orchestrator"]["stripe"]["future"] = json!({"deep": true});
        b["orchestrator"]["other_orchestrator"] = json!({"account": 5});
        b["configuration"]["unknown"] = json!(null);
        let r = parse_value(&b).unwrap();
        let plain = parse_value(&body()).unwrap();
        assert_eq!(r.orchestrator, plain.orchestrator);
        assert_eq!(r.id, plain.id);
        // Unknown top-level and orchestrator fields do not change the fingerprint (the
        // orchestrator's configuration is the provider's input, so it does).
        b["configuration"] = body()["configuration"].clone();
        assert_eq!(parse_value(&b).unwrap().fingerprint, plain.fingerprint);
    }

    #[test]
    fn integers_beyond_two_to_the_53_are_refused_not_rounded() {
        let exact = json!({"region": "eu", "n": 9_007_199_254_740_991_u64});
        assert!(parse_value(&with("configuration", exact)).is_ok());
        let big = json!({"region": "eu", "n": 9_007_199_254_740_993_u64});
        invalid_mentions(&with("configuration", big), "/configuration/n");
    }

    #[test]
    fn terms_accepted_at_is_read_and_not_in_the_future() {
        let at = |t: Value| parse_value(&with("terms_accepted_at", t)).map(|r| r.terms_accepted_at);
        assert_eq!(at(json!("2026-11-28T09:00:00Z")), Ok(Some(NOW - 3600)));
        assert_eq!(at(json!("2026-11-28T09:00:00.25")), Ok(Some(NOW - 3600)));
        // Five minutes of clock skew are tolerated.
        assert_eq!(
            at(json!("2026-11-28T10:05:00Z")),
            Ok(Some(NOW + CLOCK_SKEW))
        );
        invalid_mentions(
            &with("terms_accepted_at", json!("2026-11-28T10:05:01Z")),
            "terms_accepted_at",
        );
        invalid_mentions(
            &with("terms_accepted_at", json!("yesterday")),
            "terms_accepted_at",
        );
        invalid_mentions(
            &with("terms_accepted_at", json!(1795860000)),
            "terms_accepted_at",
        );
        // Sent, it shapes the fingerprint; absent, the fingerprint is the one recorded before
        // the field existed.
        let plain = parse_value(&body()).unwrap().fingerprint;
        let with_terms = parse_value(&with("terms_accepted_at", json!("2026-11-28T09:00:00Z")))
            .unwrap()
            .fingerprint;
        assert_ne!(plain, with_terms);
        assert_eq!(
            plain,
            parse_value(&with("terms_accepted_at", Value::Null))
                .unwrap()
                .fingerprint
        );
    }

    #[test]
    fn the_fingerprint_of_an_old_request_is_unchanged() {
        // Fingerprints are stored (claims, answered requests): the shape hashed for a request
        // without terms_accepted_at is the one recorded before it existed.
        let r = parse_value(&body()).unwrap();
        let old_shape = json!({
            "email": "dev@example.com", "name": "Dev", "scopes": ["resources:write"],
            "expires_at": 1_795_867_200, "orchestrator": r.orchestrator,
            "code_challenge": r.code_challenge, "configuration": {"region": "eu"},
        });
        assert_eq!(r.fingerprint, sha256_hex(old_shape.to_string().as_bytes()));
    }

    #[test]
    fn peek_id_for_envelopes() {
        assert_eq!(
            peek_id(body().to_string().as_bytes()),
            Some("acctreq_123".into())
        );
        assert_eq!(peek_id(b"{\"id\": 5}"), None);
        assert_eq!(peek_id(b"nope"), None);
    }
}
