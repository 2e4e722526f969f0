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
            | Route::DashboardSubmit => Family::Public,
            Route::ResourceCreate
            | Route::ResourceGet(_)
            | Route::ResourceUpdate(_)
            | Route::ResourceRotate(_)
            | Route::ResourceRemove(_)
            | Route::ResourceConfirm(_)
            | Route::DeepLinks => Family::Resource,
            Route::StripeWebhook => Family::Webhook,
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
            Route::ResourceGet(_) => "resource_get",
            Route::ResourceUpdate(_) => "resource_update_service",
            Route::ResourceRotate(_) => "resource_rotate_credentials",
            Route::ResourceRemove(_) => "resource_remove",
            Route::ResourceConfirm(_) => "resource_confirm",
            Route::DeepLinks => "deep_links",
            Route::DashboardView => "dashboard_view",
            Route::DashboardSubmit => "dashboard_submit",
            Route::StripeWebhook => "stripe_webhook",
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

fn one(method: &str, want: &'static str, route: Route) -> (&'static str, Option<Route>) {
    (want, (method == want).then_some(route))
}

/// Matches `method` and `path` (without query string) against the table.
pub fn route(method: &str, path: &str) -> Result<Route, RouteError> {
    let (allow, found): (&'static str, Option<Route>) = match path {
        "/provisioning/health" => one(method, "GET", Route::Health),
        "/provisioning/services" => one(method, "GET", Route::Services),
        "/provisioning/account_requests" => one(method, "POST", Route::AccountRequests),
        "/oauth/token" => one(method, "POST", Route::OAuthToken),
        "/oauth/authorize" => match method {
            "GET" => ("GET, POST", Some(Route::OAuthAuthorizeView)),
            "POST" => ("GET, POST", Some(Route::OAuthAuthorizeSubmit)),
            _ => ("GET, POST", None),
        },
        "/oauth/introspect" => one(method, "POST", Route::OAuthIntrospect),
        "/oauth/revoke" => one(method, "POST", Route::OAuthRevoke),
        "/.well-known/oauth-authorization-server" => one(method, "GET", Route::OAuthMetadata),
        "/provisioning/resources" => one(method, "POST", Route::ResourceCreate),
        "/provisioning/deep_links" => one(method, "POST", Route::DeepLinks),
        "/webhooks/stripe" => one(method, "POST", Route::StripeWebhook),
        "/dashboard" => match method {
            "GET" => ("GET, POST", Some(Route::DashboardView)),
            "POST" => ("GET, POST", Some(Route::DashboardSubmit)),
            _ => ("GET, POST", None),
        },
        _ => return resource_route(method, path),
    };
    found.ok_or(RouteError::MethodNotAllowed { allow })
}

/// `/provisioning/resources/{id}[/action]`. The id must be one path segment of id characters.
fn resource_route(method: &str, path: &str) -> Result<Route, RouteError> {
    let rest = path
        .strip_prefix("/provisioning/resources/")
        .ok_or(RouteError::NotFound)?;
    let (id, action) = match rest.split_once('/') {
        Some((id, action)) => (id, Some(action)),
        None => (rest, None),
    };
    let id_ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
    if !id_ok {
        return Err(RouteError::NotFound);
    }
    let id = id.to_string();
    let (allow, route) = match action {
        None => ("GET", (method == "GET").then_some(Route::ResourceGet(id))),
        Some("update_service") => (
            "POST",
            (method == "POST").then_some(Route::ResourceUpdate(id)),
        ),
        Some("rotate_credentials") => (
            "POST",
            (method == "POST").then_some(Route::ResourceRotate(id)),
        ),
        Some("remove") => (
            "POST",
            (method == "POST").then_some(Route::ResourceRemove(id)),
        ),
        Some("confirm") => (
            "POST",
            (method == "POST").then_some(Route::ResourceConfirm(id)),
        ),
        Some(_) => return Err(RouteError::NotFound),
    };
    route.ok_or(RouteError::MethodNotAllowed { allow })
}

#[cfg(test)]
mod tests {
    use super::*;

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
