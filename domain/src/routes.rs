//! The route table: which (method, path) pairs exist, and what they mean.
//!
//! Invariant: routing looks only at the method and the path (no query, no headers, no body), so
//! unknown paths (404) and wrong methods (405) are answered before any authentication, body
//! reading or state access.

/// A recognised endpoint. Path parameters are carried as owned strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health,
    Services,
    AccountRequests,
    OAuthToken,
    OAuthAuthorizeView,
    OAuthAuthorizeSubmit,
    OAuthIntrospect,
    OAuthRevoke,
    OAuthMetadata,
    ResourceCreate,
    /// Link an existing resource (protocol §8: the CLI's `add --existing`).
    ResourceLink,
    ResourceGet(String),
    ResourceUpdate(String),
    ResourceRotate(String),
    ResourceRemove(String),
    /// Extension: confirm a quoted purchase.
    ResourceConfirm(String),
    DeepLinks,
    DashboardView,
    DashboardSubmit,
    StripeWebhook,
    OperatorAccounts,
    OperatorAccount(String),
    OperatorAudit(String),
    OperatorAuditExport(String),
    OperatorAuditVerify(String),
    /// `suspend`, `resume` or `close`.
    OperatorAction(String, &'static str),
    /// A usage report from the operator's platform.
    OperatorUsage,
    /// Credits granted to an account.
    OperatorCredits(String),
    DevFaults,
    OpenApi,
}

/// Why a request matched no route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteError {
    NotFound,
    /// The path exists but not with this method; `allow` is the `Allow` header value.
    MethodNotAllowed {
        allow: &'static str,
    },
}

/// Endpoint families decide authentication and the error envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `/provisioning/*` without a bearer: orchestrator signature and `API-Version`.
    Provisioning,
    /// `/oauth/token` and `/oauth/revoke`: signature optional (PKCE public clients), RFC 6749
    /// envelope.
    OAuth,
    /// `/oauth/introspect`: the operator's secret as bearer.
    Operator,
    /// Pages for humans and public metadata: no orchestrator authentication.
    Public,
    /// Resource endpoints: orchestrator signature, `API-Version` AND the account's bearer.
    Resource,
    /// Stripe webhooks: Stripe's signature with the endpoint secret.
    Webhook,
    /// The operator API (`/v1/*`, `/dev/*`): `Authorization: Bearer <OPERATOR_SECRET>`.
    OperatorApi,
}

impl Route {
    pub fn family(&self) -> Family {
        match self {
            Route::Health | Route::Services | Route::AccountRequests => Family::Provisioning,
            Route::OAuthToken | Route::OAuthRevoke => Family::OAuth,
            Route::OAuthIntrospect => Family::Operator,
            Route::OAuthAuthorizeView
            | Route::OAuthAuthorizeSubmit
            | Route::OAuthMetadata
            | Route::DashboardView
            | Route::DashboardSubmit
            | Route::OpenApi => Family::Public,
            Route::ResourceCreate
            | Route::ResourceLink
            | Route::ResourceGet(_)
            | Route::ResourceUpdate(_)
            | Route::ResourceRotate(_)
            | Route::ResourceRemove(_)
            | Route::ResourceConfirm(_)
            | Route::DeepLinks => Family::Resource,
            Route::StripeWebhook => Family::Webhook,
            Route::OperatorAccounts
            | Route::OperatorAccount(_)
            | Route::OperatorAudit(_)
            | Route::OperatorAuditExport(_)
            | Route::OperatorAuditVerify(_)
            | Route::OperatorAction(..)
            | Route::OperatorUsage
            | Route::OperatorCredits(_)
            | Route::DevFaults => Family::OperatorApi,
        }
    }

    /// A stable name for logs and metrics (no identifiers in it).
    pub fn name(&self) -> &'static str {
        match self {
            Route::Health => "health",
            Route::Services => "services",
            Route::AccountRequests => "account_requests",
            Route::OAuthToken => "oauth_token",
            Route::OAuthAuthorizeView => "oauth_authorize_view",
            Route::OAuthAuthorizeSubmit => "oauth_authorize_submit",
            Route::OAuthIntrospect => "oauth_introspect",
            Route::OAuthRevoke => "oauth_revoke",
            Route::OAuthMetadata => "oauth_metadata",
            Route::ResourceCreate => "resource_create",
            Route::ResourceLink => "resource_link",
            Route::ResourceGet(_) => "resource_get",
            Route::ResourceUpdate(_) => "resource_update_service",
            Route::ResourceRotate(_) => "resource_rotate_credentials",
            Route::ResourceRemove(_) => "resource_remove",
            Route::ResourceConfirm(_) => "resource_confirm",
            Route::DeepLinks => "deep_links",
            Route::DashboardView => "dashboard_view",
            Route::DashboardSubmit => "dashboard_submit",
            Route::StripeWebhook => "stripe_webhook",
            Route::OperatorAccounts => "operator_accounts",
            Route::OperatorAccount(_) => "operator_account",
            Route::OperatorAudit(_) => "operator_audit",
            Route::OperatorAuditExport(_) => "operator_audit_export",
            Route::OperatorAuditVerify(_) => "operator_audit_verify",
            Route::OperatorAction(_, "suspend") => "operator_suspend",
            Route::OperatorAction(_, "resume") => "operator_resume",
            Route::OperatorAction(..) => "operator_close",
            Route::OperatorUsage => "operator_usage",
            Route::OperatorCredits(_) => "operator_credits",
            Route::DevFaults => "dev_faults",
            Route::OpenApi => "openapi",
        }
    }

    /// The resource id in the path, for the error envelope.
    pub fn resource_id(&self) -> Option<&str> {
        match self {
            Route::ResourceGet(id)
            | Route::ResourceUpdate(id)
            | Route::ResourceRotate(id)
            | Route::ResourceRemove(id)
            | Route::ResourceConfirm(id) => Some(id),
            _ => None,
        }
    }
}

/// What a path parameter must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// A resource id: 1-64 of `A-Z a-z 0-9 _ -`.
    ResourceId,
    /// An account id (`acct_` + 16 base32).
    AccountId,
}

impl Param {
    fn accepts(self, segment: &str) -> bool {
        match self {
            Param::ResourceId => {
                !segment.is_empty()
                    && segment.len() <= 64
                    && segment
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
            }
            Param::AccountId => crate::tokens::valid_account_id(segment),
        }
    }
}

/// One endpoint: method, path template (`{id}` is one segment checked by `param`), the
/// `Allow` header of its path, and how to build its [`Route`].
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    pub param: Option<Param>,
    pub allow: &'static str,
    pub build: fn(String) -> Route,
}

macro_rules! ep {
    ($m:literal, $p:literal, $allow:literal, $b:expr) => {
        Endpoint {
            method: $m,
            path: $p,
            param: None,
            allow: $allow,
            build: $b,
        }
    };
    ($m:literal, $p:literal, $param:expr, $allow:literal, $b:expr) => {
        Endpoint {
            method: $m,
            path: $p,
            param: Some($param),
            allow: $allow,
            build: $b,
        }
    };
}

/// Every endpoint the worker serves. Routing is this table, nothing else, so the OpenAPI
/// document can be checked against it both ways.
pub const TABLE: &[Endpoint] = &[
    ep!("GET", "/provisioning/health", "GET", |_| Route::Health),
    ep!("GET", "/provisioning/services", "GET", |_| Route::Services),
    ep!("POST", "/provisioning/account_requests", "POST", |_| {
        Route::AccountRequests
    }),
    ep!("POST", "/oauth/token", "POST", |_| Route::OAuthToken),
    ep!("GET", "/oauth/authorize", "GET, POST", |_| {
        Route::OAuthAuthorizeView
    }),
    ep!("POST", "/oauth/authorize", "GET, POST", |_| {
        Route::OAuthAuthorizeSubmit
    }),
    ep!("POST", "/oauth/introspect", "POST", |_| {
        Route::OAuthIntrospect
    }),
    ep!("POST", "/oauth/revoke", "POST", |_| Route::OAuthRevoke),
    ep!(
        "GET",
        "/.well-known/oauth-authorization-server",
        "GET",
        |_| Route::OAuthMetadata
    ),
    ep!("POST", "/provisioning/resources", "POST", |_| {
        Route::ResourceCreate
    }),
    ep!("POST", "/provisioning/resources/link", "POST", |_| {
        Route::ResourceLink
    }),
    ep!(
        "GET",
        "/provisioning/resources/{id}",
        Param::ResourceId,
        "GET",
        Route::ResourceGet
    ),
    ep!(
        "POST",
        "/provisioning/resources/{id}/update_service",
        Param::ResourceId,
        "POST",
        Route::ResourceUpdate
    ),
    ep!(
        "POST",
        "/provisioning/resources/{id}/rotate_credentials",
        Param::ResourceId,
        "POST",
        Route::ResourceRotate
    ),
    ep!(
        "POST",
        "/provisioning/resources/{id}/remove",
        Param::ResourceId,
        "POST",
        Route::ResourceRemove
    ),
    ep!(
        "POST",
        "/provisioning/resources/{id}/confirm",
        Param::ResourceId,
        "POST",
        Route::ResourceConfirm
    ),
    ep!("POST", "/provisioning/deep_links", "POST", |_| {
        Route::DeepLinks
    }),
    ep!("GET", "/dashboard", "GET, POST", |_| Route::DashboardView),
    ep!("POST", "/dashboard", "GET, POST", |_| {
        Route::DashboardSubmit
    }),
    ep!("POST", "/webhooks/stripe", "POST", |_| Route::StripeWebhook),
    ep!("GET", "/v1/accounts", "GET", |_| Route::OperatorAccounts),
    ep!(
        "GET",
        "/v1/accounts/{id}",
        Param::AccountId,
        "GET",
        Route::OperatorAccount
    ),
    ep!(
        "GET",
        "/v1/accounts/{id}/audit",
        Param::AccountId,
        "GET",
        Route::OperatorAudit
    ),
    ep!(
        "GET",
        "/v1/accounts/{id}/audit/export",
        Param::AccountId,
        "GET",
        Route::OperatorAuditExport
    ),
    ep!(
        "GET",
        "/v1/accounts/{id}/audit/verify",
        Param::AccountId,
        "GET",
        Route::OperatorAuditVerify
    ),
    ep!(
        "POST",
        "/v1/accounts/{id}/suspend",
        Param::AccountId,
        "POST",
        |id| Route::OperatorAction(id, "suspend")
    ),
    ep!(
        "POST",
        "/v1/accounts/{id}/resume",
        Param::AccountId,
        "POST",
        |id| Route::OperatorAction(id, "resume")
    ),
    ep!(
        "POST",
        "/v1/accounts/{id}/close",
        Param::AccountId,
        "POST",
        |id| Route::OperatorAction(id, "close")
    ),
    ep!(
        "POST",
        "/v1/accounts/{id}/credits",
        Param::AccountId,
        "POST",
        Route::OperatorCredits
    ),
    ep!("POST", "/v1/usage", "POST", |_| Route::OperatorUsage),
    ep!("POST", "/dev/faults", "POST", |_| Route::DevFaults),
    ep!("GET", "/openapi.json", "GET", |_| Route::OpenApi),
];

/// The parameter of `path` if it fits `template`, `Some("")` for templates without one.
fn fits(template: &str, param: Option<Param>, path: &str) -> Option<String> {
    let mut t = template.split('/');
    let mut p = path.split('/');
    let mut captured = String::new();
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(captured),
            (Some("{id}"), Some(seg)) if param.is_some_and(|k| k.accepts(seg)) => {
                captured = seg.to_string()
            }
            (Some(a), Some(b)) if a == b && a != "{id}" => {}
            _ => return None,
        }
    }
}

/// Matches `method` and `path` (without query string) against [`TABLE`].
pub fn route(method: &str, path: &str) -> Result<Route, RouteError> {
    let mut allow = None;
    for e in TABLE {
        if let Some(param) = fits(e.path, e.param, path) {
            if e.method == method {
                return Ok((e.build)(param));
            }
            allow = Some(e.allow);
        }
    }
    Err(match allow {
        Some(allow) => RouteError::MethodNotAllowed { allow },
        None => RouteError::NotFound,
    })
}

/// The origin (`scheme://host[:port]`) and the query (without `?`; empty if none) of a
/// request's URL as the runtime serialises it (WHATWG: lower-case scheme and host, default
/// port left out, the path starting at the first `/` after the host, `?` and `#` inside the
/// path percent-encoded). Reading them off the string spares parsing the URL again on every
/// request. `None` for a URL without `scheme://`.
pub fn origin_and_query(url: &str) -> Option<(String, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, tail) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    // User info is not part of an origin.
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let before_fragment = tail.split('#').next().unwrap_or_default();
    let query = before_fragment.split_once('?').map_or("", |(_, q)| q);
    Some((format!("{scheme}://{host}"), query))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_and_query_of_request_urls() {
        let cases = [
            (
                "https://provider.example/provisioning/services",
                "https://provider.example",
                "",
            ),
            (
                "http://127.0.0.1:8787/oauth/authorize?a=1&b=%3F",
                "http://127.0.0.1:8787",
                "a=1&b=%3F",
            ),
            ("http://[::1]:8787/x?y=1#frag", "http://[::1]:8787", "y=1"),
            ("https://user:pw@h.example/x?q", "https://h.example", "q"),
            ("https://h.example/a%3Fb%23c", "https://h.example", ""),
            ("https://h.example/?", "https://h.example", ""),
            (
                "https://h.example?only=query",
                "https://h.example",
                "only=query",
            ),
        ];
        for (url, origin, query) in cases {
            assert_eq!(
                origin_and_query(url),
                Some((origin.to_string(), query)),
                "{url}"
            );
        }
        assert_eq!(origin_and_query("/relative?x"), None);
    }

    #[test]
    fn known_routes() {
        assert_eq!(route("GET", "/provisioning/health"), Ok(Route::Health));
        assert_eq!(route("GET", "/provisioning/services"), Ok(Route::Services));
        assert_eq!(
            route("POST", "/provisioning/account_requests"),
            Ok(Route::AccountRequests)
        );
        assert_eq!(route("POST", "/oauth/token"), Ok(Route::OAuthToken));
        assert_eq!(
            route("GET", "/oauth/authorize"),
            Ok(Route::OAuthAuthorizeView)
        );
        assert_eq!(
            route("POST", "/oauth/authorize"),
            Ok(Route::OAuthAuthorizeSubmit)
        );
        assert_eq!(
            route("POST", "/oauth/introspect"),
            Ok(Route::OAuthIntrospect)
        );
        assert_eq!(route("POST", "/oauth/revoke"), Ok(Route::OAuthRevoke));
        assert_eq!(
            route("GET", "/.well-known/oauth-authorization-server"),
            Ok(Route::OAuthMetadata)
        );
    }

    #[test]
    fn resource_routes() {
        assert_eq!(
            route("POST", "/provisioning/resources"),
            Ok(Route::ResourceCreate)
        );
        assert_eq!(
            route("GET", "/provisioning/resources/res_1"),
            Ok(Route::ResourceGet("res_1".into()))
        );
        assert_eq!(
            route("POST", "/provisioning/resources/res_1/update_service"),
            Ok(Route::ResourceUpdate("res_1".into()))
        );
        assert_eq!(
            route("POST", "/provisioning/resources/res_1/rotate_credentials"),
            Ok(Route::ResourceRotate("res_1".into()))
        );
        assert_eq!(
            route("POST", "/provisioning/resources/res_1/remove"),
            Ok(Route::ResourceRemove("res_1".into()))
        );
        assert_eq!(
            route("POST", "/provisioning/resources/res_1/confirm"),
            Ok(Route::ResourceConfirm("res_1".into()))
        );
        assert_eq!(
            route("POST", "/provisioning/deep_links"),
            Ok(Route::DeepLinks)
        );
        assert_eq!(
            route("POST", "/provisioning/resources/res_1"),
            Err(RouteError::MethodNotAllowed { allow: "GET" })
        );
        assert_eq!(
            route("GET", "/provisioning/resources/res_1/remove"),
            Err(RouteError::MethodNotAllowed { allow: "POST" })
        );
        for bad in [
            "/provisioning/resources/",
            "/provisioning/resources/res_1/",
            "/provisioning/resources/res_1/explode",
            "/provisioning/resources/res%201",
            "/provisioning/resources/a/b/c",
        ] {
            assert_eq!(route("POST", bad), Err(RouteError::NotFound), "{bad}");
        }
        assert_eq!(Route::ResourceGet("r".into()).resource_id(), Some("r"));
        assert_eq!(Route::ResourceCreate.family(), Family::Resource);
    }

    #[test]
    fn operator_routes() {
        let id = "acct_aaaaaaaaaaaaaaaa";
        assert_eq!(route("GET", "/v1/accounts"), Ok(Route::OperatorAccounts));
        assert_eq!(
            route("GET", &format!("/v1/accounts/{id}")),
            Ok(Route::OperatorAccount(id.into()))
        );
        assert_eq!(
            route("GET", &format!("/v1/accounts/{id}/audit")),
            Ok(Route::OperatorAudit(id.into()))
        );
        assert_eq!(
            route("GET", &format!("/v1/accounts/{id}/audit/export")),
            Ok(Route::OperatorAuditExport(id.into()))
        );
        assert_eq!(
            route("GET", &format!("/v1/accounts/{id}/audit/verify")),
            Ok(Route::OperatorAuditVerify(id.into()))
        );
        assert_eq!(
            route("POST", &format!("/v1/accounts/{id}/close")),
            Ok(Route::OperatorAction(id.into(), "close"))
        );
        assert_eq!(
            route("GET", &format!("/v1/accounts/{id}/close")),
            Err(RouteError::MethodNotAllowed { allow: "POST" })
        );
        assert_eq!(
            route("POST", "/v1/accounts/nope/close"),
            Err(RouteError::NotFound)
        );
        assert_eq!(
            route("POST", &format!("/v1/accounts/{id}/delete")),
            Err(RouteError::NotFound)
        );
        assert_eq!(Route::OperatorAccounts.family(), Family::OperatorApi);
    }

    #[test]
    fn wrong_method_is_405_with_allow() {
        assert_eq!(
            route("POST", "/provisioning/health"),
            Err(RouteError::MethodNotAllowed { allow: "GET" })
        );
        assert_eq!(
            route("GET", "/oauth/token"),
            Err(RouteError::MethodNotAllowed { allow: "POST" })
        );
        assert_eq!(
            route("DELETE", "/oauth/authorize"),
            Err(RouteError::MethodNotAllowed { allow: "GET, POST" })
        );
    }

    /// The route cells of the map in docs/PROTOCOL.md §9: the second column of its table rows.
    fn map_routes(doc: &str) -> Vec<String> {
        let map = doc
            .split_once("\n## 9. ")
            .map(|(_, rest)| rest)
            .expect("docs/PROTOCOL.md has a section `## 9. Map`");
        let map = map.split("\n## ").next().unwrap_or(map);
        map.lines()
            .filter(|l| l.starts_with('|') && !l.starts_with("|---") && !l.starts_with("| § "))
            .filter_map(|l| l.split('|').nth(2))
            .map(|cell| cell.trim().trim_matches('`').to_string())
            .collect()
    }

    #[test]
    fn every_route_is_in_the_protocol_map() {
        let rows = map_routes(include_str!("../../docs/PROTOCOL.md"));
        let wanted: Vec<String> = TABLE
            .iter()
            .map(|e| format!("{} {}", e.method, e.path))
            .collect();
        for route in &wanted {
            assert!(
                rows.contains(route),
                "route `{route}` is missing from the map in docs/PROTOCOL.md §9: add a row for it"
            );
        }
        for row in &rows {
            assert!(
                wanted.contains(row),
                "the map in docs/PROTOCOL.md §9 has a row for `{row}`, which is no route of TABLE"
            );
        }
        assert_eq!(rows.len(), wanted.len(), "one row per route");
    }

    #[test]
    fn unknown_paths_are_404() {
        for path in [
            "/",
            "/provisioning",
            "/provisioning/",
            "/provisioning/health/",
            "/provisioning/healthz",
            "/PROVISIONING/HEALTH",
            "//provisioning/health",
            "/oauth",
        ] {
            assert_eq!(route("GET", path), Err(RouteError::NotFound), "{path}");
        }
    }
}
