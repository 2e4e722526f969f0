//! The OAuth endpoints (docs/PROTOCOL.md §3.3, §3.4): `POST /oauth/token` (code exchange and
//! refresh), `POST /oauth/introspect` (operator only), `POST /oauth/revoke` and the RFC 8414
//! metadata.
//! Thin handlers that parse the form body, find the account from the token's shape and ask its
//! object, then render.
//!
//! Invariants: bodies must be `application/x-www-form-urlencoded`; every failure is rendered in
//! the OAuth error envelope (RFC 6749 §5.2); a call that is not validly signed is counted per
//! client address before any account object is touched; a token this provider did not mint
//! never reaches an object (introspection answers inactive, revocation 200).

use domain::audit::{Actor, ActorKind};
use domain::errors::{ApiError, Envelope, Failure, OAuthError};
use domain::form::Form;
use domain::oauth;
use domain::tokens::{self, TokenKind};
use serde_json::json;
use worker::{Env, Response};

use crate::http::{self, Incoming, Problem};
use crate::rpc::account::{
    self, AccountCall, ExchangeCode, Introspect, IntrospectApiKey, Refresh, Revoke,
};
use crate::rpc::op::CallError;
use crate::{config, gate, verify};

fn oauth_problem(failure: Failure) -> Problem {
    Problem {
        failure,
        envelope: Envelope::OAuth,
    }
}

impl From<OAuthError> for Problem {
    fn from(e: OAuthError) -> Self {
        oauth_problem(e.failure())
    }
}

/// Parses a form body of an OAuth endpoint.
fn oauth_form(inc: &Incoming) -> Result<Form, Problem> {
    if !http::has_content_type(inc, "application/x-www-form-urlencoded") {
        return Err(OAuthError::InvalidRequest(
            "send the body as application/x-www-form-urlencoded".into(),
        )
        .into());
    }
    Form::parse(&inc.body).map_err(|m| OAuthError::InvalidRequest(m).into())
}

/// `Some(true)` when the orchestrator signed the request, `Some(false)` when it is unsigned
/// (a public client); a present but invalid signature is `invalid_client`.
fn client_signature(inc: &Incoming, env: &Env) -> Result<bool, Problem> {
    match inc.header("stripe-signature") {
        None => Ok(false),
        Some(_) => verify::orchestrator(inc, env)
            .map(|_| true)
            .map_err(|e| match e {
                ApiError::Signature(s) => OAuthError::InvalidClient(s.reason().to_string()).into(),
                other => Problem::plain(other),
            }),
    }
}

/// [`client_signature`]; a call that is not validly signed proves nothing yet, so it is first
/// counted per client address ([`gate::client`]), never by the account it names.
async fn signed_or_counted(inc: &Incoming, env: &Env) -> Result<bool, Problem> {
    let signed = client_signature(inc, env);
    if !matches!(signed, Ok(true)) {
        gate::client(env, inc)
            .await
            .map_err(|e| oauth_problem(e.failure()))?;
    }
    signed
}

fn system_call<O>(request_id: &str, op: O) -> AccountCall<O> {
    AccountCall {
        actor: Actor::new(ActorKind::Orchestrator, None),
        request_id: Some(request_id.to_string()),
        op,
    }
}

/// `POST /oauth/token` (RFC 6749 §4.1.3 and §6).
pub async fn token(inc: &Incoming, env: &Env, request_id: &str) -> Result<Response, Problem> {
    let form = oauth_form(inc)?;
    let signed = signed_or_counted(inc, env).await?;
    let required = |name: &str| {
        form.get(name)
            .ok_or_else(|| Problem::from(OAuthError::InvalidRequest(format!("{name} is required"))))
    };
    let issued = match form.get("grant_type") {
        Some("authorization_code") => {
            let code = required("code")?;
            let account_id = gate::token_kind(env, code, TokenKind::Code).ok_or_else(|| {
                OAuthError::InvalidGrant("the authorization code is not valid".into())
            })?;
            let op = ExchangeCode {
                code_hash: tokens::hash(code),
                verifier: form.get("code_verifier").map(str::to_string),
                signed,
            };
            account::call(env, account_id, system_call(request_id, op)).await
        }
        Some("refresh_token") => {
            let refresh = required("refresh_token")?;
            let account_id = gate::token_kind(env, refresh, TokenKind::Refresh)
                .ok_or_else(|| OAuthError::InvalidGrant("the refresh token is not valid".into()))?;
            let op = Refresh {
                refresh_hash: tokens::hash(refresh),
                signed,
            };
            account::call(env, account_id, system_call(request_id, op)).await
        }
        Some(_) => return Err(OAuthError::UnsupportedGrantType.into()),
        None => return Err(OAuthError::InvalidRequest("grant_type is required".into()).into()),
    };
    let issued = issued.map_err(|e| oauth_problem(e.into_failure(|e| e.oauth_failure())))?;
    let body = oauth::token_response(&issued.access_token, &issued.refresh_token, &issued.issued);
    let mut response = http::json(200, &body).map_err(http::internal)?;
    response
        .headers_mut()
        .set("pragma", "no-cache")
        .map_err(http::internal)?;
    Ok(response)
}

/// `POST /oauth/introspect` (RFC 7662), for the operator's own services.
pub async fn introspect(inc: &Incoming, env: &Env, request_id: &str) -> Result<Response, Problem> {
    verify::operator(inc, env).map_err(|_| {
        Problem::from(OAuthError::InvalidClient(
            "authenticate with Authorization: Bearer <OPERATOR_SECRET>".into(),
        ))
    })?;
    let form = oauth_form(inc)?;
    let token = form
        .get("token")
        .ok_or_else(|| Problem::from(OAuthError::InvalidRequest("token is required".into())))?;
    let inactive = || br#"{"active":false}"#.to_vec();
    let body = match gate::token(env, token) {
        Some(p)
            if matches!(
                p.kind,
                TokenKind::Access | TokenKind::Refresh | TokenKind::ApiKey
            ) =>
        {
            let token_hash = tokens::hash(token);
            let introspected = match p.kind {
                TokenKind::ApiKey => {
                    let op = IntrospectApiKey { token_hash };
                    account::call(env, p.account, system_call(request_id, op)).await
                }
                _ => {
                    let op = Introspect { token_hash };
                    account::call(env, p.account, system_call(request_id, op)).await
                }
            };
            match introspected {
                Ok(body) => body.0.into_bytes(),
                Err(CallError::Refused(_)) => inactive(),
                Err(CallError::Transport(e)) => return Err(oauth_problem(e.failure())),
            }
        }
        _ => inactive(),
    };
    http::json_bytes(200, body).map_err(http::internal)
}

/// `POST /oauth/revoke` (RFC 7009): always 200, whether or not the token existed.
pub async fn revoke(inc: &Incoming, env: &Env, request_id: &str) -> Result<Response, Problem> {
    let form = oauth_form(inc)?;
    signed_or_counted(inc, env).await?;
    let token = form
        .get("token")
        .ok_or_else(|| Problem::from(OAuthError::InvalidRequest("token is required".into())))?;
    // A token this provider did not mint cannot exist: 200 without touching any object.
    if let Some(p) =
        gate::token(env, token).filter(|p| matches!(p.kind, TokenKind::Access | TokenKind::Refresh))
    {
        let op = Revoke {
            token_hash: tokens::hash(token),
        };
        if let Err(CallError::Transport(e)) =
            account::call(env, p.account, system_call(request_id, op)).await
        {
            return Err(oauth_problem(e.failure()));
        }
    }
    http::json(200, &json!({})).map_err(http::internal)
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
pub fn metadata(inc: &Incoming, env: &Env) -> Result<Response, Problem> {
    http::json(
        200,
        &oauth::metadata(&config::public_base(env, &inc.origin)),
    )
    .map_err(http::internal)
}
