//! Account requests and the OAuth token endpoints (PROTOCOL.md §4): thin handlers that parse,
//! route to the directory or account object, and render.

use domain::account::Issued;
use domain::account_request::{self, AccountRequestError, Outcome};
use domain::audit::{Actor, ActorKind};
use domain::errors::{ApiError, Envelope, Failure, OAuthError};
use domain::form::Form;
use domain::oauth;
use domain::tokens::{self, TokenKind};
use serde::Deserialize;
use serde_json::{json, Value};
use worker::{Env, Response};

use crate::http::{self, Incoming, Problem};
use crate::rpc::{self, AccountCall, AccountOp, DirectoryOp};
use crate::{config, entry, gate};

fn has_content_type(inc: &Incoming, expected: &str) -> bool {
    inc.header("content-type")
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case(expected)
        })
        .unwrap_or(false)
}

fn internal(e: worker::Error) -> Problem {
    worker::console_error!("response: {e}");
    Problem::plain(ApiError::Internal)
}

/// `POST /provisioning/account_requests`.
pub async fn account_requests(
    inc: &Incoming,
    env: &Env,
    request_id: &str,
) -> Result<Response, Problem> {
    let id = account_request::peek_id(&inc.body);
    let envelope = Envelope::AccountRequest { id: id.clone() };
    let fail = |failure: Failure| Problem {
        failure,
        envelope: envelope.clone(),
    };
    if !has_content_type(inc, "application/json") {
        return Err(fail(
            ApiError::UnsupportedMediaType {
                expected: "application/json",
            }
            .failure(),
        ));
    }
    let request = account_request::parse(&inc.body, inc.now).map_err(|e| fail(e.failure()))?;
    let id = request.id.clone();
    // The id first (idempotent across emails), then the email's directory (find or create,
    // and the replay of the same request).
    let claim = DirectoryOp::ClaimRequest {
        id: id.clone(),
        fingerprint: request.fingerprint.clone(),
        email: request.email.clone(),
    };
    rpc::request_claim::<()>(env, &id, &claim)
        .await
        .map_err(|e| fail(e.failure()))?
        .map_err(|e: AccountRequestError| fail(e.failure()))?;
    let op = DirectoryOp::AccountRequest {
        public_base: config::public_base(env, &inc.origin),
        request_id: request_id.to_string(),
        request: request.clone(),
    };
    let outcome: Outcome = rpc::directory(env, &request.email, &op)
        .await
        .map_err(|e| fail(e.failure()))?
        .map_err(|e: AccountRequestError| fail(e.failure()))?;
    http::json(200, &outcome.render(&id)).map_err(internal)
}

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
    if !has_content_type(inc, "application/x-www-form-urlencoded") {
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
        Some(_) => entry::verify_orchestrator(inc, env)
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

fn system_call(request_id: &str, op: AccountOp) -> AccountCall {
    AccountCall {
        actor: Actor::new(ActorKind::Orchestrator, None),
        request_id: Some(request_id.to_string()),
        op,
    }
}

#[derive(Deserialize)]
struct IssuedTokens {
    access_token: String,
    refresh_token: String,
    issued: Issued,
}

/// `POST /oauth/token` (RFC 6749 §4.1.3 and §6).
pub async fn token(inc: &Incoming, env: &Env, request_id: &str) -> Result<Response, Problem> {
    let form = oauth_form(inc)?;
    let signed = signed_or_counted(inc, env).await?;
    let required = |name: &str| {
        form.get(name)
            .ok_or_else(|| Problem::from(OAuthError::InvalidRequest(format!("{name} is required"))))
    };
    let (account, op) = match form.get("grant_type") {
        Some("authorization_code") => {
            let code = required("code")?;
            let account = gate::token_kind(env, code, TokenKind::Code).ok_or_else(|| {
                OAuthError::InvalidGrant("the authorization code is not valid".into())
            })?;
            let verifier = form.get("code_verifier").map(str::to_string);
            (
                account,
                AccountOp::ExchangeCode {
                    code_hash: tokens::hash(code),
                    verifier,
                    signed,
                },
            )
        }
        Some("refresh_token") => {
            let refresh = required("refresh_token")?;
            let account = gate::token_kind(env, refresh, TokenKind::Refresh)
                .ok_or_else(|| OAuthError::InvalidGrant("the refresh token is not valid".into()))?;
            (
                account,
                AccountOp::Refresh {
                    refresh_hash: tokens::hash(refresh),
                    signed,
                },
            )
        }
        Some(_) => return Err(OAuthError::UnsupportedGrantType.into()),
        None => return Err(OAuthError::InvalidRequest("grant_type is required".into()).into()),
    };
    let issued: IssuedTokens = rpc::account(env, account, &system_call(request_id, op))
        .await
        .map_err(|e| oauth_problem(e.failure()))?
        .map_err(|e| oauth_problem(e.oauth_failure()))?;
    let body = oauth::token_response(&issued.access_token, &issued.refresh_token, &issued.issued);
    let mut response = http::json(200, &body).map_err(internal)?;
    response
        .headers_mut()
        .set("pragma", "no-cache")
        .map_err(internal)?;
    Ok(response)
}

/// `POST /oauth/introspect` (RFC 7662), for the operator's own services.
pub async fn introspect(inc: &Incoming, env: &Env, request_id: &str) -> Result<Response, Problem> {
    entry::verify_operator(inc, env).map_err(|_| {
        Problem::from(OAuthError::InvalidClient(
            "authenticate with Authorization: Bearer <OPERATOR_SECRET>".into(),
        ))
    })?;
    let form = oauth_form(inc)?;
    let token = form
        .get("token")
        .ok_or_else(|| Problem::from(OAuthError::InvalidRequest("token is required".into())))?;
    let inactive = json!({"active": false});
    let body = match gate::token(env, token) {
        Some(p)
            if matches!(
                p.kind,
                TokenKind::Access | TokenKind::Refresh | TokenKind::ApiKey
            ) =>
        {
            let token_hash = tokens::hash(token);
            let op = match p.kind {
                TokenKind::ApiKey => AccountOp::IntrospectApiKey { token_hash },
                _ => AccountOp::Introspect { token_hash },
            };
            match rpc::account::<Value>(env, p.account, &system_call(request_id, op)).await {
                Ok(Ok(v)) => v,
                Ok(Err(_)) => inactive,
                Err(e) => return Err(oauth_problem(e.failure())),
            }
        }
        _ => inactive,
    };
    http::json(200, &body).map_err(internal)
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
        let op = AccountOp::Revoke {
            token_hash: tokens::hash(token),
        };
        if let Err(e) = rpc::account::<Value>(env, p.account, &system_call(request_id, op)).await {
            return Err(oauth_problem(e.failure()));
        }
    }
    http::json(200, &json!({})).map_err(internal)
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
pub fn metadata(inc: &Incoming, env: &Env) -> Result<Response, Problem> {
    http::json(
        200,
        &oauth::metadata(&config::public_base(env, &inc.origin)),
    )
    .map_err(internal)
}

/// Constant-time check of a bearer secret that leaks neither its contents nor its length
/// (both sides are compared as MACs: `domain::crypto::secret_eq`).
pub fn bearer_matches(inc: &Incoming, secret: Option<String>) -> bool {
    let Some(secret) = secret else { return false };
    let presented = inc
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer ").map(|t| t.trim().to_string()))
        .unwrap_or_default();
    domain::crypto::secret_eq(presented.as_bytes(), secret.as_bytes())
}
