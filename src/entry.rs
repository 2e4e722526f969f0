//! The fetch entry point: route, read, authenticate, dispatch, render, log.
//!
//! Order of checks, so that bad requests touch nothing: route (404/405) -> a deployment with
//! development settings outside development (503, [`refused`]) -> body size (413) ->
//! authentication of the endpoint family (401) -> API version (400) -> handler.

use std::future::Future;
use std::pin::Pin;

use domain::errors::{ApiError, Envelope};
use domain::routes::{self, Family, Route, RouteError};
use worker::{event, Context, Env, Request, Response};

use crate::http::{self, Incoming, LogLine, Problem};
use crate::{
    account_requests, config, consent, dashboard, discovery, limits, meter, oauth, operator,
    resources, verify, webhooks,
};

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let started = http::now_ms();
    meter::invocation(&env);
    let request_id = http::new_id("req");
    let method = req.method().to_string();
    let path = req.path();

    let (route_name, outcome, allow) = match routes::route(&method, &path) {
        Ok(route) => {
            let name = route.name();
            (
                name,
                handle(route, &mut req, &env, &request_id, started).await,
                None,
            )
        }
        Err(RouteError::NotFound) => ("unknown", Err(Problem::plain(ApiError::NotFound)), None),
        Err(RouteError::MethodNotAllowed { allow }) => (
            "unknown",
            Err(Problem::plain(ApiError::MethodNotAllowed { allow })),
            Some(allow),
        ),
    };

    let (mut response, error_code) = match outcome {
        Ok(response) => (response, None),
        Err(problem) => (
            http::problem_response(&problem, allow)?,
            Some(problem.failure.code.clone()),
        ),
    };
    http::finish(&mut response, &request_id)?;
    LogLine {
        request_id: &request_id,
        method: &method,
        path: &path,
        route: route_name,
        status: response.status_code(),
        duration_ms: http::now_ms().saturating_sub(started),
        error_code: error_code.as_deref(),
    }
    .emit();
    meter::report(&env);
    Ok(response)
}

async fn handle(
    route: Route,
    req: &mut Request,
    env: &Env,
    request_id: &str,
    started_ms: u64,
) -> Result<Response, Problem> {
    // Before reading or authenticating anything: a deployment with development settings
    // serves nothing (config::refusal).
    if let Some(message) = config::refusal(env) {
        return Err(refused(&route, message));
    }
    let limit = match route.family() {
        Family::Webhook => http::MAX_WEBHOOK_BYTES,
        _ => http::MAX_BODY_BYTES,
    };
    let body = http::read_body(req, limit).await?;
    let url = req.inner().url();
    let (origin, query) = routes::origin_and_query(&url).ok_or(ApiError::Internal)?;
    let incoming = Incoming {
        headers: req.headers().clone(),
        query: query.to_string(),
        origin,
        body,
        now: (started_ms / 1000) as i64,
    };
    if matches!(route.family(), Family::Provisioning | Family::Resource) {
        verify::orchestrator(&incoming, env)?;
        limits::orchestrator(env).await?;
        domain::protocol::check_api_version(incoming.header("api-version").as_deref())
            .map_err(ApiError::from)?;
    }
    let internal = |e: worker::Error| {
        http::log_internal(request_id, "response", &e.to_string());
        Problem::plain(ApiError::Internal)
    };
    match route {
        Route::Health => http::json(200, &discovery::health()).map_err(internal),
        Route::Services => {
            http::json_bytes(200, discovery::services(env)?.to_vec()).map_err(internal)
        }
        Route::AccountRequests => {
            own(account_requests::account_requests(
                &incoming, env, request_id,
            ))
            .await
        }
        Route::OAuthToken => own(oauth::token(&incoming, env, request_id)).await,
        Route::OAuthIntrospect => own(oauth::introspect(&incoming, env, request_id)).await,
        Route::OAuthRevoke => own(oauth::revoke(&incoming, env, request_id)).await,
        Route::OAuthMetadata => oauth::metadata(&incoming, env),
        Route::OAuthAuthorizeView => own(consent::view(&incoming, env, request_id)).await,
        Route::OAuthAuthorizeSubmit => own(consent::submit(&incoming, env, request_id)).await,
        Route::DashboardView => own(dashboard::view(&incoming, env, request_id)).await,
        Route::DashboardSubmit => own(dashboard::submit(&incoming, env, request_id)).await,
        Route::ResourceCreate
        | Route::ResourceLink
        | Route::ResourceGet(_)
        | Route::ResourceUpdate(_)
        | Route::ResourceRotate(_)
        | Route::ResourceRemove(_)
        | Route::ResourceConfirm(_)
        | Route::DeepLinks => own(resources::handle(&route, &incoming, env, request_id)).await,
        Route::StripeWebhook => own(webhooks::handle(&incoming, env, request_id)).await,
        Route::OperatorAccounts
        | Route::OperatorAccount(_)
        | Route::OperatorAudit(_)
        | Route::OperatorAuditExport(_)
        | Route::OperatorAuditVerify(_)
        | Route::OperatorAction(..)
        | Route::OperatorUsage
        | Route::OperatorCredits(_)
        | Route::DevFaults => own(operator::handle(&route, &incoming, env, request_id)).await,
        Route::OpenApi => discovery::openapi(env, request_id).await,
    }
}

/// A handler's future on its own (boxed, behind `dyn`), not inlined into the entry point's:
/// V8 compiles each wasm function on its first call, so a fresh isolate's first request then
/// compiles its own route's handler, not every route's (BENCHMARKS.md, "Cold start").
fn own<'a>(
    handler: impl Future<Output = Result<Response, Problem>> + 'a,
) -> Pin<Box<dyn Future<Output = Result<Response, Problem>> + 'a>> {
    Box::pin(handler)
}

/// The answer of a deployment that refuses to serve: health names the settings to fix
/// (`503 misconfigured`); every other route is `503 temporarily_unavailable` in its envelope.
fn refused(route: &Route, message: String) -> Problem {
    if *route == Route::Health {
        return Problem::plain(ApiError::Misconfigured(message));
    }
    let envelope = match route.family() {
        Family::OAuth => Envelope::OAuth,
        Family::Resource => Envelope::Resource { id: None },
        _ if *route == Route::AccountRequests => Envelope::AccountRequest { id: None },
        _ => Envelope::Plain,
    };
    Problem {
        failure: ApiError::NotServing.failure(),
        envelope,
    }
}
