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
}

impl Route {
    pub fn family(&self) -> Family {
        match self {
            Route::Health | Route::Services => Family::Provisioning,
        }
    }

    /// A stable name for logs and metrics (no identifiers in it).
    pub fn name(&self) -> &'static str {
        match self {
            Route::Health => "health",
            Route::Services => "services",
        }
    }
}

/// Matches `method` and `path` (without query string) against the table.
pub fn route(method: &str, path: &str) -> Result<Route, RouteError> {
    let (allow, found): (&'static str, Option<Route>) = match path {
        "/provisioning/health" => ("GET", (method == "GET").then_some(Route::Health)),
        "/provisioning/services" => ("GET", (method == "GET").then_some(Route::Services)),
        _ => return Err(RouteError::NotFound),
    };
    found.ok_or(RouteError::MethodNotAllowed { allow })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_routes() {
        assert_eq!(route("GET", "/provisioning/health"), Ok(Route::Health));
        assert_eq!(route("GET", "/provisioning/services"), Ok(Route::Services));
    }

    #[test]
    fn wrong_method_is_405_with_allow() {
        assert_eq!(
            route("POST", "/provisioning/health"),
            Err(RouteError::MethodNotAllowed { allow: "GET" })
        );
        assert_eq!(
            route("DELETE", "/provisioning/services"),
            Err(RouteError::MethodNotAllowed { allow: "GET" })
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
        ] {
            assert_eq!(route("GET", path), Err(RouteError::NotFound), "{path}");
        }
    }
}
