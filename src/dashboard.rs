//! The owner's dashboard behind a deep link (`GET/POST /dashboard`): plan, resources, spend and
//! cap, and quotes waiting for confirmation. Same page rules as the consent page: no script,
//! strict CSP, no framing, no referrer, no caching. The session secret travels in the forms.
//!
//! The agent can mint deep links, so the link alone views and lowers the cap; raising the cap
//! and buying need the owner's sign-in, the same as the consent page's (`owner_sign_in`): the
//! operator's login returns to `GET /dashboard?account=<id>&assertion=<JWT>`, or the
//! development form posts `action=sign_in`. Either gives the browser a new, signed-in session.

use domain::account::AccountError;
use domain::dashboard::{DashboardError, View};
use domain::errors::ApiError;
use domain::form::Form;
use domain::pages;
use domain::tokens::{self, TokenKind};
use worker::{Env, Headers, Response};

use crate::gate;
use crate::http::{random, Incoming, Problem};
use crate::rpc::account::{
    self, AccountCall, DashboardAction, DashboardCall, DashboardFailure, DashboardSignIn,
    OpenDashboard, Opened, OwnerSession,
};
use crate::rpc::op::CallError;
use crate::{config, owner_sign_in};
use domain::audit::{Actor, Authentication};
use domain::form;
use domain::pages::{DashboardAuth, DevForm, SignIn};

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
    let refusal = gate::client(env, inc).await.err()?;
    let (status, title, text) = pages::client_limit_page(&refusal);
    Some(message(status, title, text, nonce))
}

fn owner_call<O>(request_id: &str, op: O) -> AccountCall<O> {
    AccountCall {
        // The link only; the account's object records a signed-in session as such.
        actor: Actor::owner(Authentication::DeepLink),
        request_id: Some(request_id.to_string()),
        op,
    }
}

/// The dashboard for a session, with how to sign in when the owner has not yet.
#[allow(clippy::too_many_arguments)]
fn dashboard(
    inc: &Incoming,
    env: &Env,
    status: u16,
    v: &View,
    session: &str,
    signed_in: bool,
    sign_in_nonce: &str,
    notice: Option<&str>,
    nonce: &str,
) -> Result<Response, Problem> {
    let return_path = format!("/dashboard?{}", form::encode(&[("account", &v.account_id)]));
    let login_url = owner_sign_in::login_url(env, inc, &return_path, sign_in_nonce, &v.email);
    let auth = DashboardAuth {
        session,
        signed_in,
        sign_in: SignIn {
            login_url: login_url.as_deref(),
            dev_form: config::is_development(env).then(|| DevForm {
                action: "/dashboard",
                fields: vec![("action", "sign_in"), ("session", session)],
            }),
            nonce: sign_in_nonce,
        },
    };
    page(
        status,
        pages::dashboard_page(v, &auth, notice, nonce),
        nonce,
    )
}

/// Renders what the account's object answered to an open or a sign-in.
fn opened(
    inc: &Incoming,
    env: &Env,
    answer: Result<Opened, CallError<AccountError>>,
    notice: Option<&str>,
    nonce: &str,
) -> Result<Response, Problem> {
    match answer {
        Ok(Opened::Session(OwnerSession {
            session,
            view,
            signed_in,
            nonce: sign_in_nonce,
        })) => dashboard(
            inc,
            env,
            200,
            &view,
            &session,
            signed_in,
            &sign_in_nonce,
            notice,
            nonce,
        ),
        Ok(Opened::Refused(e)) => explain(e, nonce),
        Err(CallError::Refused(AccountError::Unavailable) | CallError::Transport(_)) => {
            unreachable_account(nonce)
        }
        Err(CallError::Refused(_)) => explain(DashboardError::LinkUnknown, nonce),
    }
}

fn unreachable_account(nonce: &str) -> Result<Response, Problem> {
    message(
        503,
        "Please try again",
        "We could not reach the account just now. Nothing was changed.",
        nonce,
    )
}

/// `GET /dashboard?account=acct_...&assertion=<JWT>`: back from the operator's login.
async fn signed_in(
    inc: &Incoming,
    env: &Env,
    request_id: &str,
    account_id: &str,
    assertion: &str,
    nonce: &str,
) -> Result<Response, Problem> {
    // Verified before any object is touched: garbage never reaches storage.
    let a = match owner_sign_in::verify(env, assertion, inc.now) {
        Ok(a) => a,
        Err((status, title, text)) => return message(status, title, text, nonce),
    };
    sign_in(
        inc, env, request_id, account_id, None, &a.email, &a.nonce, nonce,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn sign_in(
    inc: &Incoming,
    env: &Env,
    request_id: &str,
    account_id: &str,
    session: Option<&str>,
    email_raw: &str,
    sign_in_nonce: &str,
    nonce: &str,
) -> Result<Response, Problem> {
    let Ok(email) = domain::email::normalize(email_raw) else {
        return message(
            400,
            "That is not an email address",
            "Go back and enter the owner's email address.",
            nonce,
        );
    };
    let op = DashboardSignIn {
        session_hash: session.map(tokens::hash),
        nonce: sign_in_nonce.to_string(),
        email,
    };
    let answer = account::call(env, account_id, owner_call(request_id, op)).await;
    let notice = "Signed in: you can now raise the cap or buy.";
    opened(inc, env, answer, Some(notice), nonce)
}

/// `GET /dashboard?link=pvdl_...`: opens a single-use link.
pub async fn view(inc: &Incoming, env: &Env, request_id: &str) -> Result<Response, Problem> {
    let nonce = domain::crypto::base32(&random::<12>()?);
    if let Some(limited) = too_many(env, inc, &nonce).await {
        return limited;
    }
    let query = Form::parse(inc.query.as_bytes()).ok();
    let get = |k: &str| query.as_ref().and_then(|q| q.get(k).map(str::to_string));
    if let (Some(account_id), Some(assertion)) = (get("account"), get("assertion")) {
        if tokens::valid_account_id(&account_id) {
            return signed_in(inc, env, request_id, &account_id, &assertion, &nonce).await;
        }
        return explain(DashboardError::LinkUnknown, &nonce);
    }
    let link = get("link");
    let Some((link, account_id)) = link
        .as_deref()
        .and_then(|l| gate::token_kind(env, l, TokenKind::DeepLink).map(|a| (l, a)))
    else {
        return explain(DashboardError::LinkUnknown, &nonce);
    };
    let op = OpenDashboard {
        link_hash: tokens::hash(link),
    };
    let answer = account::call(env, account_id, owner_call(request_id, op)).await;
    opened(inc, env, answer, None, &nonce)
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
    let Some((session, account_id)) = f
        .get("session")
        .and_then(|s| gate::token_kind(env, s, TokenKind::Session).map(|a| (s, a)))
    else {
        return explain(DashboardError::SessionExpired, &nonce);
    };
    let action = match f.get("action") {
        Some("sign_in") => {
            if !config::is_development(env) {
                return message(
                    404,
                    "Not available",
                    "This sign-in form exists only in development.",
                    &nonce,
                );
            }
            let (Some(email), Some(sign_in_nonce)) = (f.get("email"), f.get("nonce")) else {
                return message(
                    400,
                    "This form is not valid",
                    "Enter the owner's email address.",
                    &nonce,
                );
            };
            return sign_in(
                inc,
                env,
                request_id,
                account_id,
                Some(session),
                email,
                sign_in_nonce,
                &nonce,
            )
            .await;
        }
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
    let op = DashboardCall {
        session_hash: tokens::hash(session),
        action,
    };
    match account::call(env, account_id, owner_call(request_id, op)).await {
        Ok(s) => dashboard(
            inc,
            env,
            s.status.unwrap_or(200),
            &s.view,
            session,
            s.signed_in,
            &s.nonce,
            s.notice.as_deref(),
            &nonce,
        ),
        Err(CallError::Refused(DashboardFailure::Page(e))) => explain(e, &nonce),
        Err(CallError::Refused(DashboardFailure::Resource(f))) => {
            message(f.status, "That did not work", &f.message, &nonce)
        }
        Err(CallError::Transport(_)) => message(
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
