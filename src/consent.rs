//! The consent page (`GET/POST /oauth/authorize`): the owner of an existing account proves who
//! they are, sees who asks for what, and approves or denies (docs/PROTOCOL.md §3.2).
//!
//! Flow: the account request's `requires_auth.url` opens the page -> sign in (the operator's
//! login, which sends the browser back with a signed `assertion`, or the development form) ->
//! the approval page, whose form carries a single-use CSRF token issued at sign-in -> a 303 to
//! the orchestrator's callback with `code` and `state`, or `error=access_denied`.
//!
//! Every page has a strict CSP (no script, a nonce-only style block), `frame-ancestors 'none'`,
//! no referrer, and no caching. Expired, unknown or replayed links get a page saying so and
//! change nothing.

use domain::account::{AccountError, ConsentView};
use domain::audit::{Actor, Authentication};
use domain::email;
use domain::errors::ApiError;
use domain::form::{self, Form};
use domain::pages::{self, SignInPage};
use domain::tokens::{self, TokenKind};
use worker::{Env, Headers, Response};

use crate::http::{random, Incoming, Problem};
use crate::owner_sign_in;
use crate::rpc::account::{self, AccountCall, Decide, SignIn, ViewConsent};
use crate::rpc::op::CallError;
use crate::{config, gate};

fn internal(e: worker::Error) -> Problem {
    worker::console_error!("page: {e}");
    Problem::plain(ApiError::Internal)
}

/// Origin (`scheme://host[:port]`) of a URL, for `form-action`.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty()).then(|| format!("{scheme}://{host}"))
}

struct Page {
    status: u16,
    html: String,
}

fn respond(env: &Env, nonce: &str, page: Page) -> Result<Response, Problem> {
    let callback = config::string(env, "ORCHESTRATOR_CALLBACK_URL").and_then(|u| origin_of(&u));
    let targets: Vec<&str> = callback.iter().map(String::as_str).collect();
    let headers = Headers::new();
    let set = |k: &str, v: &str| headers.set(k, v).map_err(internal);
    set("content-type", "text/html; charset=utf-8")?;
    set(
        "content-security-policy",
        &pages::content_security_policy(nonce, &targets),
    )?;
    set("x-frame-options", "DENY")?;
    set("referrer-policy", "no-referrer")?;
    set("cache-control", "no-store")?;
    if page.status == 429 {
        set("retry-after", &gate::CLIENT_RETRY_AFTER.to_string())?;
    }
    Ok(Response::from_html(page.html)
        .map_err(internal)?
        .with_status(page.status)
        .with_headers(headers))
}

fn message(status: u16, title: &str, text: &str, nonce: &str) -> Page {
    Page {
        status,
        html: pages::message_page(title, text, nonce),
    }
}

fn account_error_page(e: &AccountError, nonce: &str) -> Page {
    match e {
        AccountError::Consent(c) => {
            let (status, title, text) = c.page();
            message(status, title, text, nonce)
        }
        AccountError::Inactive { .. } => message(
            403,
            "This account is not available",
            "The account is suspended or closed. Nothing was changed.",
            nonce,
        ),
        AccountError::Unavailable => message(
            503,
            "Please try again",
            "We could not reach the account just now. Nothing was changed.",
            nonce,
        ),
        _ => message(
            404,
            "This link is not valid",
            "Ask the tool that sent you here to start again.",
            nonce,
        ),
    }
}

/// The page for a failed call to the account's object: its refusal, or unavailable.
fn call_error_page(e: CallError<AccountError>, nonce: &str) -> Page {
    match e {
        CallError::Refused(e) => account_error_page(&e, nonce),
        CallError::Transport(_) => account_error_page(&AccountError::Unavailable, nonce),
    }
}

/// The page for a client over its limit ([`gate::client`]), if it is; pages come from browsers,
/// which prove nothing until the link is checked.
async fn too_many(env: &Env, inc: &Incoming, style: &str) -> Option<Page> {
    let refusal = gate::client(env, inc).await.err()?;
    let (status, title, text) = pages::client_limit_page(&refusal);
    Some(message(status, title, text, style))
}

fn owner_call<O>(request_id: &str, op: O) -> AccountCall<O> {
    AccountCall {
        // The consent link only; the account's object records a verified sign-in as such.
        actor: Actor::owner(Authentication::ConsentLink),
        request_id: Some(request_id.to_string()),
        op,
    }
}

/// Signs the owner in for a consent, then shows the approval page.
async fn sign_in(
    env: &Env,
    request_id: &str,
    consent: &str,
    account_id: &str,
    email_raw: &str,
    nonce: &str,
    style: &str,
) -> Result<Page, Problem> {
    let Ok(email) = email::normalize(email_raw) else {
        return Ok(message(
            400,
            "That is not an email address",
            "Go back and enter the owner's email address.",
            style,
        ));
    };
    let op = SignIn {
        consent_hash: tokens::hash(consent),
        email,
        nonce: nonce.to_string(),
    };
    match account::call(env, account_id, owner_call(request_id, op)).await {
        Ok(s) => Ok(Page {
            status: 200,
            html: pages::approve_page(&s.view, consent, &s.csrf, style),
        }),
        Err(e) => Ok(call_error_page(e, style)),
    }
}

/// `GET /oauth/authorize?consent=...[&assertion=...]`.
pub async fn view(inc: &Incoming, env: &Env, request_id: &str) -> Result<Response, Problem> {
    let style = domain::crypto::base32(&random::<12>()?);
    let page = view_page(inc, env, request_id, &style).await?;
    respond(env, &style, page)
}

async fn view_page(
    inc: &Incoming,
    env: &Env,
    request_id: &str,
    style: &str,
) -> Result<Page, Problem> {
    if let Some(page) = too_many(env, inc, style).await {
        return Ok(page);
    }
    let Ok(query) = Form::parse(inc.query.as_bytes()) else {
        return Ok(message(
            400,
            "This link is not valid",
            "Ask the tool that sent you here to start again.",
            style,
        ));
    };
    let Some((consent, account_id)) = query
        .get("consent")
        .and_then(|c| gate::token_kind(env, c, TokenKind::Consent).map(|a| (c, a)))
    else {
        return Ok(message(
            404,
            "This link is not valid",
            "Ask the tool that sent you here to start again.",
            style,
        ));
    };
    if let Some(assertion) = query.get("assertion") {
        return match owner_sign_in::verify(env, assertion, inc.now) {
            Ok(a) => {
                sign_in(
                    env, request_id, consent, account_id, &a.email, &a.nonce, style,
                )
                .await
            }
            Err((status, title, text)) => Ok(message(status, title, text, style)),
        };
    }
    let op = ViewConsent {
        consent_hash: tokens::hash(consent),
    };
    let view: ConsentView = match account::call(env, account_id, owner_call(request_id, op)).await {
        Ok(v) => v,
        Err(e) => return Ok(call_error_page(e, style)),
    };
    let return_path = format!("/oauth/authorize?{}", form::encode(&[("consent", consent)]));
    let login_url = owner_sign_in::login_url(env, inc, &return_path, &view.nonce, &view.email);
    let html = pages::sign_in_page(&SignInPage {
        view: &view,
        consent,
        login_url: login_url.as_deref(),
        dev_form: config::is_development(env),
        error: None,
        style_nonce: style,
    });
    Ok(Page { status: 200, html })
}

/// `POST /oauth/authorize`: the development sign-in form, or the decision.
pub async fn submit(inc: &Incoming, env: &Env, request_id: &str) -> Result<Response, Problem> {
    let style = domain::crypto::base32(&random::<12>()?);
    match submit_page(inc, env, request_id, &style).await? {
        Ok(page) => respond(env, &style, page),
        Err(location) => {
            let headers = Headers::new();
            headers.set("location", &location).map_err(internal)?;
            headers
                .set("referrer-policy", "no-referrer")
                .map_err(internal)?;
            Ok(Response::empty()
                .map_err(internal)?
                .with_status(303)
                .with_headers(headers))
        }
    }
}

/// `Ok(page)` to render, or `Err(location)` to redirect.
async fn submit_page(
    inc: &Incoming,
    env: &Env,
    request_id: &str,
    style: &str,
) -> Result<Result<Page, String>, Problem> {
    if let Some(page) = too_many(env, inc, style).await {
        return Ok(Ok(page));
    }
    let bad = |text: &str| Ok(Ok(message(400, "This form is not valid", text, style)));
    let Ok(f) = Form::parse(&inc.body) else {
        return bad("Open the link again.");
    };
    let Some((consent, account_id)) = f
        .get("consent")
        .and_then(|c| gate::token_kind(env, c, TokenKind::Consent).map(|a| (c, a)))
    else {
        return Ok(Ok(message(
            404,
            "This link is not valid",
            "Ask the tool that sent you here to start again.",
            style,
        )));
    };
    match f.get("action") {
        Some("sign_in") => {
            if !config::is_development(env) {
                return Ok(Ok(message(
                    404,
                    "Not available",
                    "This sign-in form exists only in development.",
                    style,
                )));
            }
            let (Some(email), Some(nonce)) = (f.get("email"), f.get("nonce")) else {
                return bad("Enter the owner's email address.");
            };
            Ok(Ok(sign_in(
                env, request_id, consent, account_id, email, nonce, style,
            )
            .await?))
        }
        Some("decide") => {
            let approve = match f.get("decision") {
                Some("approve") => true,
                Some("deny") => false,
                _ => return bad("Choose Approve or Deny."),
            };
            let Some(csrf) = f.get("csrf") else {
                return Ok(Ok(account_error_page(
                    &AccountError::Consent(domain::account::ConsentError::BadCsrf),
                    style,
                )));
            };
            let Some(callback) = config::string(env, "ORCHESTRATOR_CALLBACK_URL") else {
                return Ok(Ok(message(
                    500,
                    "Not configured",
                    "The provider has no ORCHESTRATOR_CALLBACK_URL.",
                    style,
                )));
            };
            let op = Decide {
                consent_hash: tokens::hash(consent),
                csrf: csrf.to_string(),
                approve,
            };
            let decided = match account::call(env, account_id, owner_call(request_id, op)).await {
                Ok(d) => d,
                Err(e) => return Ok(Ok(call_error_page(e, style))),
            };
            let state = decided.decision.request_id.as_str();
            let query = match (decided.decision.approved, decided.code.as_deref()) {
                (true, Some(code)) => form::encode(&[("code", code), ("state", state)]),
                _ => form::encode(&[("error", "access_denied"), ("state", state)]),
            };
            let sep = if callback.contains('?') { '&' } else { '?' };
            Ok(Err(format!("{callback}{sep}{query}")))
        }
        _ => bad("Open the link again."),
    }
}
