//! The protocol's answer shapes as serde types, exactly as the worker emits them: the resource
//! object (and `remove`'s ack), the account request outcome, the token response, health, the
//! dashboard deep link and the four error envelopes
//! (docs/PROTOCOL.md §3 and §5, `docs/openapi.json` `components.schemas`).
//!
//! Invariants, held by the tests below: each type's fields are the properties of its OpenAPI
//! schema (every required property is a field that is always written; every field is a
//! property), and the JSON the domain renders today deserialises into its type. The client
//! decodes answers with these types and its test provider builds answers with them; requests
//! stay free-form JSON on the client's side so deliberately wrong bodies can still be sent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::resources::{Candidate, ErrorInfo, ResourceStatus};

/// The constant `"error"` of the account request (`type`) and resource (`status`) envelopes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorMark {
    #[default]
    #[serde(rename = "error")]
    Error,
}

/// `{"error":{"code","message"}}`: signature, version, routing, size and operator errors
/// (schema `PlainError`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlainErrorEnvelope {
    pub error: ErrorInfo,
}

/// `{"id","type":"error","error"}` of `POST /provisioning/account_requests` (schema
/// `AccountRequestError`); `id` is null when the body had no usable one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRequestErrorEnvelope {
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub kind: ErrorMark,
    pub error: ErrorInfo,
}

/// `{"status":"error","id","error"}` of the resource endpoints (schema `ResourceError`); `id`
/// is the path's resource id, or null (create, deep links).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceErrorEnvelope {
    pub status: ErrorMark,
    pub id: Option<String>,
    pub error: ErrorInfo,
}

/// RFC 6749 §5.2 `{"error","error_description"}` of `/oauth/*` (schema `OAuthError`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthErrorEnvelope {
    pub error: String,
    pub error_description: String,
}

/// `oauth` of a new account's outcome: the single-use code to exchange at `/oauth/token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OauthCode {
    pub code: String,
}

/// `requires_auth` of an existing account's outcome: where its owner approves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentUrl {
    pub url: String,
}

/// The success answer of an account request (schema `AccountRequestOutcome`, tagged by `type`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AccountRequestOutcome {
    /// Schema `AccountRequestOauth`. `id` is null for a request sent without one.
    Oauth {
        id: Option<String>,
        oauth: OauthCode,
    },
    /// Schema `AccountRequestRequiresAuth`.
    RequiresAuth {
        id: Option<String>,
        requires_auth: ConsentUrl,
    },
}

/// `account` of a token response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenAccount {
    pub id: String,
    /// Always `orchestrator`: the orchestrator pays.
    pub payment_credentials: String,
}

/// The success body of `POST /oauth/token` (schema `TokenResponse`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// Always `bearer`.
    pub token_type: String,
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds.
    pub expires_in: i64,
    /// Space-separated scopes.
    pub scope: String,
    pub account: TokenAccount,
}

/// `pending` of a resource: what the work under way is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub message: String,
}

/// `needs_information.quote`: the candidates with exact prices, until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteAnswer {
    pub expires_at: String,
    pub candidates: Vec<Candidate>,
}

/// `needs_information.confirm`: the call that buys a candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmCall {
    pub method: String,
    pub path: String,
}

/// `needs_information` of a resource: what the human must supply, to send back as the
/// create's (or link's) `submitted_information`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeedsInformation {
    pub message: String,
    /// A JSON Schema of what to supply.
    pub schema: Value,
    /// Extension, domain quotes only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<QuoteAnswer>,
    /// Extension, domain quotes only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<ConfirmCall>,
}

/// `complete` of a resource: what the agent writes to `.env`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Complete {
    pub access_configuration: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The protocol's resource object (schema `Resource`: `ResourceBase` and the section of its
/// `status`). Exactly one section is present, the one `status` names (none for `removed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceAnswer {
    pub id: String,
    /// Always `resource`.
    pub object: String,
    pub service_id: String,
    pub project_id: String,
    pub status: ResourceStatus,
    pub created_at: String,
    /// The create's `environment`, when it carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The create's `orchestrator_resource_id`, when it carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orchestrator_resource_id: Option<String>,
    /// Extension: made by `link` (removing it only detaches it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs_information: Option<NeedsInformation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete: Option<Complete>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
}

/// `remove`'s answer once the resource is removed (schema `RemovedAck`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedAck {
    /// Always `removed`.
    pub status: ResourceStatus,
    pub id: String,
}

/// The body of `GET /provisioning/health` (schema `Health`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    pub supported_versions: Vec<String>,
    /// (ext) The deep link purposes this provider serves; other providers may not say.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deep_link_purposes: Vec<String>,
}

/// A single-use link to the owner's dashboard, the answer of `POST /provisioning/deep_links`
/// (schema `DeepLink`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeepLink {
    /// The purpose asked for (`dashboard` when the request had none).
    pub purpose: String,
    pub url: String,
    pub expires_at: String,
    /// The path inside the dashboard, echoed when the request gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A wire value as JSON (for test providers that answer `(status, Value)`).
pub fn to_value(v: &impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde::de::DeserializeOwned;
    use serde_json::json;

    use super::*;
    use crate::account::Issued;
    use crate::account_request::{OauthOutcome, Outcome, RequiresAuth};
    use crate::catalog::{Registrar, ServiceKind};
    use crate::errors::{Envelope, Failure};
    use crate::resources::{render, Detail, Quote, Resource};

    fn doc() -> Value {
        serde_json::from_str(crate::openapi::OPENAPI).expect("docs/openapi.json is valid JSON")
    }

    /// A schema's properties and required names, through `$ref` and `allOf`; `path` descends
    /// into nested object properties.
    fn shape(doc: &Value, schema: &Value, path: &[&str]) -> (BTreeSet<String>, BTreeSet<String>) {
        let schema = match schema["$ref"].as_str() {
            Some(r) => doc.pointer(&r[1..]).expect("a $ref resolves"),
            None => schema,
        };
        let (mut props, mut required) = (BTreeSet::new(), BTreeSet::new());
        let parts: Vec<&Value> = match schema["allOf"].as_array() {
            Some(all) => all.iter().collect(),
            None => vec![schema],
        };
        for part in parts {
            let part = match part["$ref"].as_str() {
                Some(r) => doc.pointer(&r[1..]).expect("a $ref resolves"),
                None => part,
            };
            if let Some((first, rest)) = path.split_first() {
                if let Some(inner) = part["properties"].get(*first) {
                    let (p, r) = shape(doc, inner, rest);
                    props.extend(p);
                    required.extend(r);
                }
                continue;
            }
            for k in part["properties"].as_object().into_iter().flatten() {
                props.insert(k.0.clone());
            }
            for k in part["required"].as_array().into_iter().flatten() {
                required.insert(k.as_str().unwrap_or_default().to_string());
            }
        }
        (props, required)
    }

    fn keys(v: &Value) -> BTreeSet<String> {
        v.as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// `full` (every optional field set) writes only the schema's properties, and `minimal`
    /// (every optional field unset) writes at least its required ones; both read back.
    fn check<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
        schema: &str,
        path: &[&str],
        full: &T,
        minimal: &T,
    ) {
        let doc = doc();
        let s = &doc["components"]["schemas"][schema];
        assert!(s.is_object(), "no schema {schema}");
        let (props, required) = shape(&doc, s, path);
        let at = format!(
            "{schema}{}",
            path.iter().map(|p| format!(".{p}")).collect::<String>()
        );
        let (full_json, minimal_json) = (to_value(full), to_value(minimal));
        let extra: Vec<_> = keys(&full_json).difference(&props).cloned().collect();
        assert!(
            extra.is_empty(),
            "{at}: fields not in the schema: {extra:?}"
        );
        let missing: Vec<_> = props.difference(&keys(&full_json)).cloned().collect();
        assert!(
            missing.is_empty(),
            "{at}: properties the type lacks: {missing:?}"
        );
        let unwritten: Vec<_> = required.difference(&keys(&minimal_json)).cloned().collect();
        assert!(
            unwritten.is_empty(),
            "{at}: required but optional in the type: {unwritten:?}"
        );
        for (v, t) in [(full_json, full), (minimal_json, minimal)] {
            let back: T = serde_json::from_value(v).expect("reads back");
            assert_eq!(&back, t);
        }
    }

    fn detail() -> ErrorInfo {
        ErrorInfo {
            code: "c".into(),
            message: "m".into(),
        }
    }

    fn candidate() -> Candidate {
        Candidate {
            domain: "a.dev".into(),
            amount: 1200,
            currency: "usd".into(),
            available: true,
        }
    }

    #[test]
    fn error_envelopes_match_the_schemas() {
        check("ErrorDetail", &[], &detail(), &detail());
        let plain = PlainErrorEnvelope { error: detail() };
        check("PlainError", &[], &plain, &plain);
        check("PlainError", &["error"], &detail(), &detail());
        let a = AccountRequestErrorEnvelope {
            id: Some("acctreq_1".into()),
            kind: ErrorMark::Error,
            error: detail(),
        };
        check("AccountRequestError", &[], &a, &a);
        let r = ResourceErrorEnvelope {
            status: ErrorMark::Error,
            id: None,
            error: detail(),
        };
        check("ResourceError", &[], &r, &r);
        let o = OAuthErrorEnvelope {
            error: "invalid_grant".into(),
            error_description: "d".into(),
        };
        check("OAuthError", &[], &o, &o);
    }

    #[test]
    fn answers_match_the_schemas() {
        let oauth = AccountRequestOutcome::Oauth {
            id: Some("acctreq_1".into()),
            oauth: OauthCode { code: "c".into() },
        };
        check("AccountRequestOauth", &[], &oauth, &oauth);
        let code = OauthCode { code: "c".into() };
        check("AccountRequestOauth", &["oauth"], &code, &code);
        let consent = AccountRequestOutcome::RequiresAuth {
            id: Some("acctreq_1".into()),
            requires_auth: ConsentUrl { url: "u".into() },
        };
        check("AccountRequestRequiresAuth", &[], &consent, &consent);
        let url = ConsentUrl { url: "u".into() };
        check("AccountRequestRequiresAuth", &["requires_auth"], &url, &url);

        let token = TokenResponse {
            token_type: "bearer".into(),
            access_token: "a".into(),
            refresh_token: "r".into(),
            expires_in: 3600,
            scope: "resources:read".into(),
            account: TokenAccount {
                id: "acct_1".into(),
                payment_credentials: "orchestrator".into(),
            },
        };
        check("TokenResponse", &[], &token, &token);
        check(
            "TokenResponse",
            &["account"],
            &token.account,
            &token.account,
        );

        let removed = RemovedAck {
            status: ResourceStatus::Removed,
            id: "res_1".into(),
        };
        check("RemovedAck", &[], &removed, &removed);
        check("DomainCandidate", &[], &candidate(), &candidate());
        let health = Health {
            status: "ok".into(),
            supported_versions: vec!["0.1d".into()],
            deep_link_purposes: vec![],
        };
        let served = Health {
            deep_link_purposes: vec!["dashboard".into(), "billing".into()],
            ..health.clone()
        };
        check("Health", &[], &served, &health);
        assert_eq!(
            serde_json::from_value::<Health>(crate::protocol::health()).unwrap(),
            served,
            "health as the worker answers it"
        );
        let link = DeepLink {
            purpose: "dashboard".into(),
            url: "https://p.example/dashboard?link=pvdl_x".into(),
            expires_at: "2026-01-01T00:10:00Z".into(),
            path: None,
        };
        let with_path = DeepLink {
            purpose: "billing".into(),
            path: Some("/billing".into()),
            url: "https://p.example/dashboard?link=pvdl_x#billing".into(),
            ..link.clone()
        };
        check("DeepLink", &[], &with_path, &link);
    }

    #[test]
    fn resource_matches_the_schemas() {
        let base = ResourceAnswer {
            id: "res_1".into(),
            object: "resource".into(),
            service_id: "domain".into(),
            project_id: "p".into(),
            status: ResourceStatus::Removed,
            created_at: "2026-01-01T00:00:00Z".into(),
            environment: None,
            orchestrator_resource_id: None,
            linked: None,
            pending: None,
            needs_information: None,
            complete: None,
            error: None,
        };
        let named = ResourceAnswer {
            environment: Some("prod".into()),
            orchestrator_resource_id: Some("orr_1".into()),
            linked: Some(true),
            ..base.clone()
        };
        check("ResourceRemoved", &[], &named, &base);
        let with = |f: &dyn Fn(&mut ResourceAnswer)| {
            let mut r = named.clone();
            f(&mut r);
            r
        };
        let pending = with(&|r| {
            r.status = ResourceStatus::Pending;
            r.pending = Some(Pending {
                message: "m".into(),
            });
        });
        check("ResourcePending", &[], &pending, &pending);
        check(
            "ResourcePending",
            &["pending"],
            &pending.pending,
            &pending.pending,
        );
        let complete = Complete {
            access_configuration: BTreeMap::from([("ACCOUNT_ID".into(), "acct_1".into())]),
            message: Some("m".into()),
        };
        let minimal = Complete {
            message: None,
            ..complete.clone()
        };
        check("ResourceComplete", &["complete"], &complete, &minimal);
        let done = with(&|r| {
            r.status = ResourceStatus::Complete;
            r.complete = Some(complete.clone());
        });
        check("ResourceComplete", &[], &done, &done);
        let errored = with(&|r| {
            r.status = ResourceStatus::Errored;
            r.error = Some(detail());
        });
        check("ResourceErrored", &[], &errored, &errored);
        let needs = NeedsInformation {
            message: "m".into(),
            schema: json!({"type": "object"}),
            quote: Some(QuoteAnswer {
                expires_at: "2026-01-01T00:15:00Z".into(),
                candidates: vec![candidate()],
            }),
            confirm: Some(ConfirmCall {
                method: "POST".into(),
                path: "/provisioning/resources/res_1/confirm".into(),
            }),
        };
        let asked = NeedsInformation {
            quote: None,
            confirm: None,
            ..needs.clone()
        };
        let quoted = with(&|r| {
            r.status = ResourceStatus::NeedsInformation;
            r.needs_information = Some(needs.clone());
        });
        check("ResourceNeedsInformation", &[], &quoted, &quoted);
        let ni = ["needs_information"];
        check("ResourceNeedsInformation", &ni, &needs, &asked);
        let q = ["needs_information", "quote"];
        check("ResourceNeedsInformation", &q, &needs.quote, &needs.quote);
        let c = ["needs_information", "confirm"];
        check(
            "ResourceNeedsInformation",
            &c,
            &needs.confirm,
            &needs.confirm,
        );
    }

    fn read<T: DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"))
    }

    /// Reads `v` as `T` and writes it again: the same JSON.
    fn round_trip<T: Serialize + DeserializeOwned>(v: Value) {
        assert_eq!(to_value(&read::<T>(v.clone())), v);
    }

    #[test]
    fn rendered_errors_read_as_wire_types() {
        let f = Failure::new(400, "invalid_request", "email is required");
        round_trip::<PlainErrorEnvelope>(f.render(&Envelope::Plain));
        for id in [None, Some("x".to_string())] {
            round_trip::<AccountRequestErrorEnvelope>(
                f.render(&Envelope::AccountRequest { id: id.clone() }),
            );
            round_trip::<ResourceErrorEnvelope>(f.render(&Envelope::Resource { id }));
        }
        round_trip::<OAuthErrorEnvelope>(f.render(&Envelope::OAuth));
    }

    #[test]
    fn rendered_answers_read_as_wire_types() {
        let oauth = Outcome::Oauth {
            oauth: OauthOutcome { code: "c".into() },
        };
        round_trip::<AccountRequestOutcome>(oauth.render(Some("acctreq_1")));
        let consent = Outcome::RequiresAuth {
            requires_auth: RequiresAuth { url: "u".into() },
        };
        round_trip::<AccountRequestOutcome>(consent.render(Some("acctreq_1")));
        let issued = Issued {
            account_id: "acct_x".into(),
            scopes: vec!["resources:read".into(), "resources:write".into()],
            expires_in: 3600,
        };
        round_trip::<TokenResponse>(crate::oauth::token_response("a", "r", &issued));
        round_trip::<Health>(crate::protocol::health());
    }

    fn resource(status: ResourceStatus, detail: Detail) -> Resource {
        Resource {
            id: "res_1".into(),
            service_id: "s".into(),
            project_id: "p".into(),
            kind: ServiceKind::Deployable,
            status,
            created_at: 1_700_000_000,
            updated_at: 1_700_000_000,
            configuration: json!({}),
            detail,
            job: None,
            error: None,
            message: None,
            origin: None,
            environment: None,
            linked: false,
            hold: None,
        }
    }

    #[test]
    fn rendered_resources_read_as_wire_types() {
        let plan = |suspended, past_due_since| Detail::Plan {
            subscription_id: Some("sub_1".into()),
            subscription_status: None,
            past_due_since,
            suspended,
        };
        let token = Detail::ApiToken {
            scopes: vec!["deploy:write".into()],
            label: None,
            generation: 1,
            token_hash: "h".into(),
            sealed: None,
        };
        let domain = |quote, name: Option<&str>| Detail::Domain {
            query: "q".into(),
            registrar: Registrar::Builtin,
            quote,
            payment_token: None,
            domain: name.map(str::to_string),
            expires_at: name.map(|_| 1_800_000_000),
        };
        let quote = Quote {
            candidates: vec![candidate()],
            expires_at: 1_700_000_900,
        };
        let mut errored = resource(ResourceStatus::Errored, plan(false, None));
        errored.error = Some(detail());
        let cases = [
            resource(ResourceStatus::Complete, plan(false, None)),
            resource(ResourceStatus::Complete, plan(false, Some(1_700_000_000))),
            resource(ResourceStatus::Complete, plan(true, None)),
            resource(ResourceStatus::Complete, token),
            resource(ResourceStatus::Complete, domain(None, Some("a.dev"))),
            resource(ResourceStatus::NeedsInformation, domain(Some(quote), None)),
            resource(ResourceStatus::Pending, domain(None, None)),
            errored,
            resource(ResourceStatus::Errored, plan(false, None)),
            resource(ResourceStatus::Removed, plan(false, None)),
        ];
        let secrets = BTreeMap::from([("API_TOKEN".to_string(), "pvak_x".to_string())]);
        for r in &cases {
            round_trip::<ResourceAnswer>(render(r, "acct_x", &secrets));
        }
        round_trip::<RemovedAck>(json!({"status": "removed", "id": "res_1"}));
    }
}
