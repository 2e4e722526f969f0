//! The owner's dashboard behind a deep link (`GET/POST /dashboard`): plan, resources, spend and
//! cap, and quotes waiting for confirmation. Same page rules as the consent page: no script,
//! strict CSP, no framing, no referrer, no caching. The session secret travels in the forms.

use domain::dashboard::{DashboardError, View};
use domain::errors::ApiError;
use domain::form::Form;
use domain::pages;
use domain::resources::ResourceError;
use domain::tokens::{self, TokenKind};
use serde::Deserialize;
use serde_json::Value;
use worker::{Env, Headers, Response};

use crate::gate;
use crate::http::{random, Incoming, Problem};
use crate::rpc::{self, AccountCall, AccountOp, DashboardAction};
use domain::audit::{Actor, ActorKind};

fn internal(e: worker::Error) -> Problem {
    worker::console_error!("dashboard page: {e}");
    Problem::plain(ApiError::Internal)
}

fn page(status: u16, html: String, nonce: &str) -> Result<Response, Problem> {
    let headers = Headers::new();
    let set = |k: &str, v: &str| headers.set(k, v).map_err(internal);
    set("content-type", "text/html; charset=utf-8")?;
    set(
        "content-security-policy",
        &pages::content_security_policy(nonce, &[]),
    )?;
    set("x-frame-options", "DENY")?;
    set("referrer-policy", "no-referrer")?;
    set("cache-control", "no-store")?;
    if status == 429 {
        set("retry-after", &gate::CLIENT_RETRY_AFTER.to_string())?;
    }
    Ok(Response::from_html(html)
        .map_err(internal)?
        .with_status(status)
        .with_headers(headers))
}

fn message(status: u16, title: &str, text: &str, nonce: &str) -> Result<Response, Problem> {
    page(status, pages::message_page(title, text, nonce), nonce)
}

fn explain(e: DashboardError, nonce: &str) -> Result<Response, Problem> {
    let (status, title, text) = e.page();
    message(status, title, text, nonce)
}

/// The page for a client over its limit ([`gate::client`]), if it is.
async fn too_many(env: &Env, inc: &Incoming, nonce: &str) -> Option<Result<Response, Problem>> {
    match gate::client(env, inc).await {
        Ok(()) => None,
        Err(ApiError::RateLimited { .. }) => Some(message(
            429,
            "Too many attempts",
            "Wait a minute, then open the link again. Nothing was changed.",
            nonce,
        )),
        Err(_) => Some(message(
            503,
            "Please try again",
            "We could not reach the account just now. Nothing was changed.",
            nonce,
        )),
    }
}

fn owner_call(request_id: &str, op: AccountOp) -> AccountCall {
    AccountCall {
        actor: Actor::new(ActorKind::Owner, None),
        request_id: Some(request_id.to_string()),
        op,
    }
}

#[derive(Deserialize)]
struct Opened {
    session: Option<String>,
    view: Option<View>,
    error: Option<DashboardError>,
}

/// `GET /dashboard?link=pvdl_...`: opens a single-use link.
pub async fn view(inc: &Incoming, env: &Env, request_id: &str) -> Result<Response, Problem> {
    let nonce = domain::crypto::base32(&random::<12>()?);
    if let Some(limited) = too_many(env, inc, &nonce).await {
        return limited;
    }
    let link = Form::parse(inc.query.as_bytes())
        .ok()
        .and_then(|q| q.get("link").map(str::to_string));
    let Some((link, account)) = link
        .as_deref()
        .and_then(|l| gate::token_kind(env, l, TokenKind::DeepLink).map(|a| (l, a)))
    else {
        return explain(DashboardError::LinkUnknown, &nonce);
    };
    let op = AccountOp::OpenDashboard {
        link_hash: tokens::hash(link),
    };
    match rpc::account::<Opened>(env, account, &owner_call(request_id, op)).await {
        Ok(Ok(Opened {
            session: Some(s),
            view: Some(v),
            ..
        })) => page(200, pages::dashboard_page(&v, &s, None, &nonce), &nonce),
        Ok(Ok(Opened { error: Some(e), .. })) => explain(e, &nonce),
        Ok(_) => explain(DashboardError::LinkUnknown, &nonce),
        Err(_) => message(
            503,
            "Please try again",
            "We could not reach the account just now. Nothing was changed.",
            &nonce,
        ),
    }
}

#[derive(Deserialize)]
struct Shown {
    view: View,
    notice: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Failed {
    Page(DashboardError),
    Resource(ResourceError),
}

/// `POST /dashboard`: change the cap or confirm a quote, then show the dashboard again.
pub async fn submit(inc: &Incoming, env: &Env, request_id: &str) -> Result<Response, Problem> {
    let nonce = domain::crypto::base32(&random::<12>()?);
    if let Some(limited) = too_many(env, inc, &nonce).await {
        return limited;
    }
    let Ok(f) = Form::parse(&inc.body) else {
        return message(
            400,
            "This form is not valid",
            "Open the dashboard link again.",
            &nonce,
        );
    };
    let Some((session, account)) = f
        .get("session")
        .and_then(|s| gate::token_kind(env, s, TokenKind::Session).map(|a| (s, a)))
    else {
        return explain(DashboardError::SessionExpired, &nonce);
    };
    let action = match f.get("action") {
        Some("set_cap") => match f.get("cap_dollars").and_then(|c| digits(c.trim())) {
            Some(d) if d <= 10_000 => DashboardAction::SetCap { cap: d * 100 },
            _ => return explain(DashboardError::InvalidCap, &nonce),
        },
        Some("confirm") => {
            let (Some(resource_id), Some(domain), Some(amount)) = (
                f.get("resource_id"),
                f.get("domain"),
                f.get("amount").and_then(digits),
            ) else {
                return message(
                    400,
                    "This form is not valid",
                    "Open the dashboard link again.",
                    &nonce,
                );
            };
            DashboardAction::Confirm {
                resource_id: resource_id.into(),
                domain: domain.into(),
                amount,
            }
        }
        _ => DashboardAction::View,
    };
    let op = AccountOp::Dashboard {
        session_hash: tokens::hash(session),
        action,
    };
    match rpc::account_with::<Shown, Value>(env, account, &owner_call(request_id, op)).await {
        Ok(Ok(s)) => page(
            200,
            pages::dashboard_page(&s.view, session, s.notice.as_deref(), &nonce),
            &nonce,
        ),
        Ok(Err(v)) => match serde_json::from_value::<Failed>(v) {
            Ok(Failed::Page(e)) => explain(e, &nonce),
            Ok(Failed::Resource(e)) => message(
                e.failure().status,
                "That did not work",
                &e.failure().message,
                &nonce,
            ),
            Err(_) => explain(DashboardError::SessionExpired, &nonce),
        },
        Err(_) => message(
            503,
            "Please try again",
            "We could not reach the account just now. Nothing was changed.",
            &nonce,
        ),
    }
}

/// A plain decimal number: `str::parse` alone would also take a sign ("+1200").
fn digits(s: &str) -> Option<u64> {
    s.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| s.parse().ok())
        .flatten()
}
