//! The OpenAPI 3.1 description of every endpoint (`docs/openapi.json`), served at
//! `GET /openapi.json`. Tests keep it and the route table in step, both ways.

/// The document, as shipped.
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use serde_json::{json, Value};

    use super::OPENAPI;
    use crate::account::{AccountError, AccountStatus, ConsentError};
    use crate::account_request::AccountRequestError;
    use crate::errors::{ApiError, Failure, OAuthError};
    use crate::resources::ResourceError;
    use crate::routes::{Endpoint, Family, Param, Route, TABLE};
    use crate::signature::SignatureError;
    use crate::stripe_api::PaymentError;

    const METHODS: &[&str] = &[
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    const TAGS: &[&str] = &[
        "provisioning",
        "oauth",
        "resources",
        "pages",
        "webhooks",
        "operator",
        "development",
    ];

    fn doc() -> Value {
        serde_json::from_str(OPENAPI).expect("docs/openapi.json is valid JSON")
    }

    /// A local reference (`#/components/...`) to the value it names.
    fn target<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
        doc.pointer(reference.strip_prefix('#')?)
    }

    /// Follows `$ref` until a value that is not a reference.
    fn resolve<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
        for _ in 0..16 {
            match v.get("$ref").and_then(Value::as_str) {
                Some(r) => v = target(doc, r).unwrap_or_else(|| panic!("{r} does not resolve")),
                None => return v,
            }
        }
        panic!("a $ref chain is too long (a cycle?)")
    }

    /// Every reference in `v`: `$ref` values and discriminator mappings.
    fn references(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("$ref", Value::String(s)) => out.push(s.clone()),
                        ("discriminator", d) => out.extend(
                            d["mapping"]
                                .as_object()
                                .into_iter()
                                .flat_map(|m| m.values())
                                .filter_map(Value::as_str)
                                .map(str::to_string),
                        ),
                        _ => {}
                    }
                    references(x, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|x| references(x, out)),
            _ => {}
        }
    }

    /// `(method, path template) -> operation` for every operation of the document.
    fn operations(doc: &Value) -> BTreeMap<(String, String), &Value> {
        let mut ops = BTreeMap::new();
        for (path, item) in doc["paths"].as_object().expect("paths is an object") {
            for (key, op) in item.as_object().expect("a path item is an object") {
                if METHODS.contains(&key.as_str()) {
                    ops.insert((key.clone(), path.clone()), op);
                }
            }
        }
        ops
    }

    /// A path that fits the entry's template, for building its [`Route`].
    fn sample(e: &Endpoint) -> Route {
        let param = match e.param {
            Some(Param::ResourceId) => "res_1",
            Some(Param::AccountId) => "acct_aaaaaaaaaaaaaaaa",
            None => "",
        };
        (e.build)(param.to_string())
    }

    fn key(e: &Endpoint) -> (String, String) {
        (e.method.to_ascii_lowercase(), e.path.to_string())
    }

    /// The operation of a route table entry.
    fn operation_of<'a>(doc: &'a Value, e: &Endpoint) -> &'a Value {
        doc["paths"][e.path]
            .get(e.method.to_ascii_lowercase())
            .unwrap_or_else(|| panic!("{} {} is not documented", e.method, e.path))
    }

    #[test]
    fn the_document_is_openapi_3_1() {
        let doc = doc();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["title"], "APP provider");
        assert_eq!(doc["info"]["version"], crate::protocol::API_VERSION);
        assert_eq!(doc["servers"][0]["url"], "http://127.0.0.1:8787");
        let schemes = &doc["components"]["securitySchemes"];
        for (name, kind) in [
            ("orchestratorSignature", "apiKey"),
            ("accessToken", "http"),
            ("operatorSecret", "http"),
            ("stripeWebhookSignature", "apiKey"),
        ] {
            assert_eq!(schemes[name]["type"], kind, "{name}");
        }
        assert_eq!(schemes["orchestratorSignature"]["name"], "Stripe-Signature");
        assert_eq!(
            schemes["stripeWebhookSignature"]["name"],
            "Stripe-Signature"
        );
        let version = &doc["components"]["parameters"]["API-Version"];
        assert_eq!(version["in"], "header");
        assert_eq!(version["required"], true);
        assert_eq!(
            version["schema"]["enum"],
            json!(crate::protocol::SUPPORTED_VERSIONS)
        );
        assert!(
            OPENAPI.starts_with("{\n  \"openapi\""),
            "keep the file pretty-printed with a 2-space indent"
        );
    }

    #[test]
    fn every_reference_resolves_inside_the_document() {
        let doc = doc();
        let mut refs = Vec::new();
        references(&doc, &mut refs);
        assert!(refs.len() > 100, "the document uses $ref generously");
        for r in &refs {
            assert!(r.starts_with("#/"), "{r} is not a local reference");
            assert!(target(&doc, r).is_some(), "{r} does not resolve");
        }
    }

    #[test]
    fn the_document_describes_exactly_the_route_table() {
        let doc = doc();
        let documented: BTreeSet<(String, String)> = operations(&doc).into_keys().collect();
        let routed: BTreeSet<(String, String)> = TABLE.iter().map(key).collect();
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            undocumented.is_empty(),
            "routes missing from docs/openapi.json: {undocumented:?}"
        );
        assert!(
            unrouted.is_empty(),
            "operations of docs/openapi.json that no route serves: {unrouted:?}"
        );
        assert_eq!(TABLE.len(), documented.len(), "a route is listed twice");
        // A path's other methods answer 405 with `Allow`: `x-allow` says which.
        for e in TABLE {
            assert_eq!(doc["paths"][e.path]["x-allow"], e.allow, "{}", e.path);
        }
    }

    #[test]
    fn path_parameters_match_the_route_table() {
        let doc = doc();
        for e in TABLE {
            let item = &doc["paths"][e.path];
            let params: Vec<&Value> = item["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(
                    operation_of(&doc, e)["parameters"]
                        .as_array()
                        .into_iter()
                        .flatten(),
                )
                .map(|p| resolve(&doc, p))
                .filter(|p| p["in"] == "path")
                .collect();
            match e.param {
                None => assert!(params.is_empty(), "{} has no path parameter", e.path),
                Some(kind) => {
                    assert_eq!(params.len(), 1, "{}", e.path);
                    assert_eq!(params[0]["name"], "id");
                    assert_eq!(params[0]["required"], true);
                    let example = match kind {
                        Param::ResourceId => "^[A-Za-z0-9_-]{1,64}$",
                        Param::AccountId => "^acct_[a-z2-7]{16}$",
                    };
                    assert_eq!(params[0]["schema"]["pattern"], example, "{}", e.path);
                }
            }
        }
    }

    #[test]
    fn operations_are_named_tagged_and_answer_2xx_and_4xx_with_request_id() {
        let doc = doc();
        let mut ids = BTreeSet::new();
        for ((method, path), op) in operations(&doc) {
            let what = format!("{method} {path}");
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{what}: operationId"));
            assert!(
                !id.is_empty()
                    && id
                        .bytes()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
                    && !id.starts_with('_'),
                "{what}: operationId {id:?} is not snake_case"
            );
            assert!(
                ids.insert(id.to_string()),
                "{what}: operationId {id} is not unique"
            );
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{what}: summary"
            );
            assert!(
                op["description"].as_str().is_some_and(|s| !s.is_empty()),
                "{what}: description"
            );
            let tags = op["tags"]
                .as_array()
                .unwrap_or_else(|| panic!("{what}: tags"));
            assert!(!tags.is_empty(), "{what}: tags");
            for t in tags {
                assert!(
                    t.as_str().is_some_and(|t| TAGS.contains(&t)),
                    "{what}: unknown tag {t}"
                );
            }
            assert!(op["security"].is_array(), "{what}: security");
            let responses = op["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{what}: responses"));
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{what}: no 2xx response"
            );
            assert!(
                responses.keys().any(|s| s.starts_with('4')),
                "{what}: no 4xx response"
            );
            for (status, response) in responses {
                assert!(
                    status.len() == 3 && status.bytes().all(|c| c.is_ascii_digit()),
                    "{what}: response key {status:?}"
                );
                let response = resolve(&doc, response);
                assert!(
                    response["description"].is_string(),
                    "{what} {status}: description"
                );
                let header = response["headers"]
                    .get("Request-Id")
                    .unwrap_or_else(|| panic!("{what} {status}: no Request-Id header"));
                let header = resolve(&doc, header);
                assert_eq!(header["required"], true, "{what} {status}: Request-Id");
                assert!(header["schema"].is_object(), "{what} {status}: Request-Id");
            }
        }
    }

    #[test]
    fn operation_ids_are_the_route_names_of_the_logs() {
        let doc = doc();
        for e in TABLE {
            assert_eq!(
                operation_of(&doc, e)["operationId"],
                sample(e).name(),
                "{} {}",
                e.method,
                e.path
            );
        }
    }

    #[test]
    fn security_version_and_bodies_follow_the_endpoint_family() {
        let doc = doc();
        let sig = json!([{"orchestratorSignature": []}]);
        let operator = json!([{"operatorSecret": []}]);
        for e in TABLE {
            let what = format!("{} {}", e.method, e.path);
            let op = operation_of(&doc, e);
            let family = sample(e).family();
            let expected = match family {
                Family::Provisioning => sig.clone(),
                Family::Resource => json!([{"orchestratorSignature": [], "accessToken": []}]),
                Family::OAuth => json!([{"orchestratorSignature": []}, {}]),
                Family::Operator | Family::OperatorApi => operator.clone(),
                Family::Webhook => json!([{"stripeWebhookSignature": []}]),
                Family::Public => json!([]),
            };
            assert_eq!(op["security"], expected, "{what}");

            let versioned = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["$ref"] == "#/components/parameters/API-Version");
            assert_eq!(
                versioned,
                matches!(family, Family::Provisioning | Family::Resource),
                "{what}: API-Version"
            );
            assert_eq!(versioned, e.path.starts_with("/provisioning/"), "{what}");

            let body = op.get("requestBody").map(|b| resolve(&doc, b));
            if e.method == "GET" {
                assert!(body.is_none(), "{what}: a GET has no body");
                continue;
            }
            let types: Vec<&String> = body
                .and_then(|b| b["content"].as_object())
                .unwrap_or_else(|| panic!("{what}: requestBody"))
                .keys()
                .collect();
            let expected = match family {
                Family::OAuth | Family::Operator | Family::Public => {
                    "application/x-www-form-urlencoded"
                }
                _ => "application/json",
            };
            assert_eq!(types, [expected], "{what}: request content type");
        }
    }

    #[test]
    fn extensions_are_marked_and_say_so() {
        let doc = doc();
        let mut marked = 0;
        for e in TABLE {
            let op = operation_of(&doc, e);
            let extension = op.get("x-extension") == Some(&Value::Bool(true));
            if extension {
                marked += 1;
                assert!(
                    op["description"]
                        .as_str()
                        .is_some_and(|d| d.contains("Extension") || d.contains("extension")),
                    "{} {}: an extension says so in its description",
                    e.method,
                    e.path
                );
            }
            if matches!(
                sample(e),
                Route::OperatorAccounts
                    | Route::OperatorAccount(_)
                    | Route::OperatorAudit(_)
                    | Route::OperatorAuditExport(_)
                    | Route::OperatorAuditVerify(_)
                    | Route::OperatorAction(..)
                    | Route::DevFaults
                    | Route::ResourceConfirm(_)
                    | Route::OAuthIntrospect
                    | Route::OAuthRevoke
                    | Route::OAuthMetadata
            ) {
                assert!(extension, "{} {} is an extension", e.method, e.path);
            }
        }
        assert!(marked > 0);
    }

    // -----------------------------------------------------------------------------------------
    // Error codes: every code `domain::errors` produces is in the enum of its envelope (and
    // nothing else is), each is explained, and its status is answered by some operation of the
    // family. The exhaustive matches make a new variant a compile error here until it is listed.

    fn signature_errors() -> Vec<SignatureError> {
        let all = vec![
            SignatureError::Missing,
            SignatureError::TooLong,
            SignatureError::Malformed,
            SignatureError::NoTimestamp,
            SignatureError::NoSignature,
            SignatureError::Mismatch,
            SignatureError::Expired,
            SignatureError::FromTheFuture,
            SignatureError::NoSecretConfigured,
        ];
        for e in &all {
            match e {
                SignatureError::Missing
                | SignatureError::TooLong
                | SignatureError::Malformed
                | SignatureError::NoTimestamp
                | SignatureError::NoSignature
                | SignatureError::Mismatch
                | SignatureError::Expired
                | SignatureError::FromTheFuture
                | SignatureError::NoSecretConfigured => {}
            }
        }
        all
    }

    fn api_errors() -> Vec<ApiError> {
        let mut all: Vec<ApiError> = signature_errors().into_iter().map(ApiError::from).collect();
        all.extend([
            ApiError::ApiVersion { got: None },
            ApiError::ApiVersion {
                got: Some("0.1c".into()),
            },
            ApiError::NotFound,
            ApiError::MethodNotAllowed { allow: "GET" },
            ApiError::PayloadTooLarge { limit: 65536 },
            ApiError::InvalidRequest("the Content-Length header is not a number".into()),
            ApiError::UnsupportedMediaType {
                expected: "application/json",
            },
            ApiError::RateLimited { retry_after: 1 },
            ApiError::Unavailable("account storage".into()),
            ApiError::Internal,
            ApiError::Misconfigured("PUBLIC_BASE_URL: is not set".into()),
            ApiError::NotServing,
        ]);
        for e in &all {
            match e {
                ApiError::Signature(_)
                | ApiError::ApiVersion { .. }
                | ApiError::NotFound
                | ApiError::MethodNotAllowed { .. }
                | ApiError::PayloadTooLarge { .. }
                | ApiError::InvalidRequest(_)
                | ApiError::UnsupportedMediaType { .. }
                | ApiError::RateLimited { .. }
                | ApiError::Unavailable(_)
                | ApiError::Internal
                | ApiError::Misconfigured(_)
                | ApiError::NotServing => {}
            }
        }
        all
    }

    fn account_request_errors() -> Vec<AccountRequestError> {
        let all = vec![
            AccountRequestError::InvalidRequest {
                message: "id is required".into(),
            },
            AccountRequestError::InvalidEmail {
                message: "email has no @".into(),
            },
            AccountRequestError::Expired,
            AccountRequestError::InvalidScope {
                scope: "admin".into(),
            },
            AccountRequestError::InvalidCodeChallenge {
                message: "code_challenge_method must be \"S256\"".into(),
            },
            AccountRequestError::IdempotencyConflict,
            AccountRequestError::AccountUnavailable {
                status: "suspended".into(),
            },
            AccountRequestError::AlreadyRedeemed,
            AccountRequestError::Unavailable,
            AccountRequestError::Internal,
        ];
        for e in &all {
            match e {
                AccountRequestError::InvalidRequest { .. }
                | AccountRequestError::InvalidEmail { .. }
                | AccountRequestError::Expired
                | AccountRequestError::InvalidScope { .. }
                | AccountRequestError::InvalidCodeChallenge { .. }
                | AccountRequestError::IdempotencyConflict
                | AccountRequestError::AccountUnavailable { .. }
                | AccountRequestError::AlreadyRedeemed
                | AccountRequestError::Unavailable
                | AccountRequestError::Internal => {}
            }
        }
        all
    }

    fn oauth_errors() -> Vec<OAuthError> {
        let all = vec![
            OAuthError::InvalidRequest("grant_type is required".into()),
            OAuthError::UnsupportedGrantType,
            OAuthError::InvalidClient("sign the request, or use PKCE".into()),
            OAuthError::InvalidGrant("the code or token is not valid".into()),
        ];
        for e in &all {
            match e {
                OAuthError::InvalidRequest(_)
                | OAuthError::UnsupportedGrantType
                | OAuthError::InvalidClient(_)
                | OAuthError::InvalidGrant(_) => {}
            }
        }
        all
    }

    fn account_errors() -> Vec<AccountError> {
        let all = vec![
            AccountError::NotFound,
            AccountError::Inactive {
                status: AccountStatus::Suspended,
            },
            AccountError::Inactive {
                status: AccountStatus::Closed,
            },
            AccountError::InvalidGrant {
                reason: "used".into(),
            },
            AccountError::InvalidClient {
                reason: "unsigned".into(),
            },
            AccountError::InvalidToken,
            AccountError::InvalidTransition {
                from: AccountStatus::Closed,
                to: AccountStatus::Suspended,
            },
            AccountError::Consent(ConsentError::Unknown),
            AccountError::Unavailable,
            AccountError::RateLimited { retry_after: 1 },
        ];
        for e in &all {
            match e {
                AccountError::NotFound
                | AccountError::Inactive { .. }
                | AccountError::InvalidGrant { .. }
                | AccountError::InvalidClient { .. }
                | AccountError::InvalidToken
                | AccountError::InvalidTransition { .. }
                | AccountError::Consent(_)
                | AccountError::Unavailable
                | AccountError::RateLimited { .. } => {}
            }
        }
        all
    }

    fn payment_errors() -> Vec<PaymentError> {
        let all = vec![
            PaymentError::TokenInvalid {
                message: "deactivated".into(),
            },
            PaymentError::TokenExpired,
            PaymentError::TokenInsufficient {
                available: 100,
                amount: 1200,
                currency: "usd".into(),
            },
            PaymentError::TokenCurrency {
                expected: "usd".into(),
                got: "eur".into(),
            },
            PaymentError::Declined {
                code: "card_declined".into(),
                decline_code: Some("insufficient_funds".into()),
                message: "Your card was declined.".into(),
            },
            PaymentError::Failed {
                code: "resource_missing".into(),
                message: "No such customer".into(),
            },
        ];
        for e in &all {
            match e {
                PaymentError::TokenInvalid { .. }
                | PaymentError::TokenExpired
                | PaymentError::TokenInsufficient { .. }
                | PaymentError::TokenCurrency { .. }
                | PaymentError::Declined { .. }
                | PaymentError::Failed { .. } => {}
            }
        }
        all
    }

    fn resource_errors() -> Vec<ResourceError> {
        let mut all = vec![
            ResourceError::InvalidRequest {
                message: "service_id is required".into(),
            },
            ResourceError::UnknownService {
                service_id: "gold".into(),
            },
            ResourceError::InvalidConfiguration {
                field: "configuration/scopes/0".into(),
                message: "not allowed".into(),
            },
            ResourceError::RequiresPaymentCredentials,
            ResourceError::PlanRequired,
            ResourceError::PlanAlreadyActive {
                service_id: "free".into(),
            },
            ResourceError::UpdateNotAllowed {
                from: "free".into(),
                to: "gold".into(),
            },
            ResourceError::NotFound,
            ResourceError::Busy,
            ResourceError::RotationNotSupported,
            ResourceError::InsufficientScope {
                needed: "resources:write".into(),
            },
            ResourceError::SpendingCapExceeded {
                spent: 9000,
                cap: 10000,
                amount: 2000,
                currency: "usd".into(),
            },
            ResourceError::CurrencyNotSupported {
                expected: "usd".into(),
            },
            ResourceError::QuoteExpired,
            ResourceError::NotAwaitingConfirmation,
            ResourceError::PriceChanged {
                domain: "acme.apps.example.dev".into(),
                amount: 1200,
                currency: "usd".into(),
            },
            ResourceError::DomainUnavailable {
                domain: "acme.apps.example.dev".into(),
            },
            ResourceError::NoDomainAvailable,
            ResourceError::Backend {
                code: "refused".into(),
                message: "no".into(),
            },
            ResourceError::BackendTimeout {
                attempts: 40,
                waited: 600,
            },
            ResourceError::UnsupportedPurpose {
                purpose: "billing".into(),
            },
            ResourceError::Unavailable,
            ResourceError::SecretsUnavailable,
        ];
        all.extend(
            payment_errors()
                .into_iter()
                .map(|error| ResourceError::Payment { error }),
        );
        all.extend(
            account_errors()
                .into_iter()
                .map(|error| ResourceError::Account { error }),
        );
        for e in &all {
            match e {
                ResourceError::InvalidRequest { .. }
                | ResourceError::UnknownService { .. }
                | ResourceError::InvalidConfiguration { .. }
                | ResourceError::RequiresPaymentCredentials
                | ResourceError::PlanRequired
                | ResourceError::PlanAlreadyActive { .. }
                | ResourceError::UpdateNotAllowed { .. }
                | ResourceError::NotFound
                | ResourceError::Busy
                | ResourceError::RotationNotSupported
                | ResourceError::InsufficientScope { .. }
                | ResourceError::SpendingCapExceeded { .. }
                | ResourceError::CurrencyNotSupported { .. }
                | ResourceError::Payment { .. }
                | ResourceError::QuoteExpired
                | ResourceError::NotAwaitingConfirmation
                | ResourceError::PriceChanged { .. }
                | ResourceError::DomainUnavailable { .. }
                | ResourceError::NoDomainAvailable
                | ResourceError::Backend { .. }
                | ResourceError::BackendTimeout { .. }
                | ResourceError::UnsupportedPurpose { .. }
                | ResourceError::Unavailable
                | ResourceError::SecretsUnavailable
                | ResourceError::Account { .. } => {}
            }
        }
        all
    }

    /// One envelope's failures, the schema of its `code` enum, and the routes that answer it.
    struct ErrorFamily {
        name: &'static str,
        code_enum: &'static str,
        failures: Vec<Failure>,
        /// Codes the worker glue (`src/`) answers in this envelope without `domain::errors`.
        glue_codes: &'static [&'static str],
        routes: fn(&Route) -> bool,
    }

    fn families() -> Vec<ErrorFamily> {
        let transport = || {
            [
                ApiError::Unavailable("account storage".into()),
                ApiError::Internal,
            ]
            .map(|e| e.failure())
        };
        vec![
            ErrorFamily {
                name: "plain",
                code_enum: "PlainErrorCode",
                failures: api_errors()
                    .iter()
                    // Rendered only in the account request and resource envelopes.
                    .filter(|e| !matches!(e, ApiError::UnsupportedMediaType { .. }))
                    .map(ApiError::failure)
                    // The operator API renders account refusals in the plain envelope.
                    .chain(
                        [
                            AccountError::InvalidTransition {
                                from: AccountStatus::Active,
                                to: AccountStatus::Active,
                            },
                            AccountError::Unavailable,
                        ]
                        .iter()
                        .map(AccountError::bearer_failure),
                    )
                    .collect(),
                // src/operator.rs: a wrong operator secret, an unknown account.
                glue_codes: &["unauthorized", "account_not_found"],
                routes: |_| true,
            },
            ErrorFamily {
                name: "account request",
                code_enum: "AccountRequestErrorCode",
                failures: account_request_errors()
                    .iter()
                    .map(AccountRequestError::failure)
                    .chain([ApiError::UnsupportedMediaType {
                        expected: "application/json",
                    }
                    .failure()])
                    .collect(),
                glue_codes: &[],
                routes: |r| *r == Route::AccountRequests,
            },
            ErrorFamily {
                name: "oauth",
                code_enum: "OAuthErrorCode",
                failures: oauth_errors()
                    .iter()
                    .map(OAuthError::failure)
                    .chain(account_errors().iter().map(AccountError::oauth_failure))
                    .chain(transport())
                    .collect(),
                glue_codes: &[],
                routes: |r| matches!(r.family(), Family::OAuth | Family::Operator),
            },
            ErrorFamily {
                name: "resource",
                code_enum: "ResourceErrorCode",
                failures: resource_errors()
                    .iter()
                    .map(ResourceError::failure)
                    .chain(account_errors().iter().map(AccountError::bearer_failure))
                    .chain([ApiError::UnsupportedMediaType {
                        expected: "application/json",
                    }
                    .failure()])
                    .chain(transport())
                    .collect(),
                glue_codes: &[],
                routes: |r| r.family() == Family::Resource,
            },
        ]
    }

    /// Every response status the operations of the matching routes document.
    fn statuses(doc: &Value, routes: fn(&Route) -> bool) -> BTreeSet<u16> {
        TABLE
            .iter()
            .filter(|e| routes(&sample(e)))
            .flat_map(|e| {
                operation_of(doc, e)["responses"]
                    .as_object()
                    .into_iter()
                    .flat_map(|r| r.keys())
                    .filter_map(|s| s.parse::<u16>().ok())
            })
            .collect()
    }

    #[test]
    fn every_error_code_is_documented_in_its_envelope() {
        let doc = doc();
        for family in families() {
            let schema = &doc["components"]["schemas"][family.code_enum];
            let documented: BTreeSet<&str> = schema["enum"]
                .as_array()
                .unwrap_or_else(|| panic!("{}: no enum", family.code_enum))
                .iter()
                .map(|c| c.as_str().expect("codes are strings"))
                .collect();
            let produced: BTreeSet<&str> = family
                .failures
                .iter()
                .map(|f| f.code)
                .chain(family.glue_codes.iter().copied())
                .collect();
            let missing: Vec<_> = produced.difference(&documented).collect();
            let extra: Vec<_> = documented.difference(&produced).collect();
            assert!(
                missing.is_empty(),
                "{} envelope: codes missing from {}: {missing:?}",
                family.name,
                family.code_enum
            );
            assert!(
                extra.is_empty(),
                "{} envelope: {} lists codes nothing produces: {extra:?}",
                family.name,
                family.code_enum
            );
            let explained = schema["description"].as_str().unwrap_or_default();
            for code in &documented {
                assert!(
                    explained.contains(&format!("`{code}`")),
                    "{}: {code} is not explained",
                    family.code_enum
                );
            }

            let answered = statuses(&doc, family.routes);
            let responses = &doc["components"]["responses"];
            for f in &family.failures {
                match f.status {
                    // Answered for a path's other methods (`x-allow`), never by an operation.
                    405 => assert!(responses["MethodNotAllowed"].is_object()),
                    status => assert!(
                        answered.contains(&status),
                        "{} envelope: no operation answers {status} ({})",
                        family.name,
                        f.code
                    ),
                }
            }
        }
    }

    #[test]
    fn every_error_code_appears_in_the_document() {
        let doc = doc();
        let mut strings = BTreeSet::new();
        fn collect(v: &Value, out: &mut BTreeSet<String>) {
            match v {
                Value::Object(m) => {
                    for (k, x) in m {
                        match (k.as_str(), x) {
                            ("enum", Value::Array(items)) => out
                                .extend(items.iter().filter_map(Value::as_str).map(str::to_string)),
                            ("description", Value::String(text)) => out.extend(
                                text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                                    .map(str::to_string),
                            ),
                            _ => {}
                        }
                        collect(x, out);
                    }
                }
                Value::Array(items) => items.iter().for_each(|x| collect(x, out)),
                _ => {}
            }
        }
        collect(&doc, &mut strings);
        for family in families() {
            for f in &family.failures {
                assert!(strings.contains(f.code), "{} is not documented", f.code);
            }
        }
    }
}
