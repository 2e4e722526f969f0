//! Resource endpoints (docs/PROTOCOL.md §4): thin handlers. Each checks the bearer's shape, parses
//! the body, and hands the operation to the account's object, which authenticates the bearer,
//! checks its scope and does the work.

use domain::account::AccountError;
use domain::audit::{Actor, ActorKind};
use domain::errors::{ApiError, Envelope, Failure};
use domain::resources::{self, CreateCall, ResourceError};
use domain::routes::Route;
use domain::tokens::{self, TokenKind};
use worker::{Env, Response};

use crate::http::{self, Incoming, Problem};
use crate::rpc::account::{self, AccountCall, ResourceCall, ResourceOp};
use crate::{config, discovery, gate};

/// The bearer token of `Authorization: Bearer <token>`.
pub fn bearer(inc: &Incoming) -> Option<String> {
    inc.header("authorization")
        .and_then(|h| h.strip_prefix("Bearer ").map(|t| t.trim().to_string()))
        .filter(|t| !t.is_empty())
}

pub async fn handle(
    route: &Route,
    inc: &Incoming,
    env: &Env,
    request_id: &str,
) -> Result<Response, Problem> {
    let envelope = Envelope::Resource {
        id: route.resource_id().map(str::to_string),
    };
    let fail = |f: Failure| Problem {
        failure: f,
        envelope: envelope.clone(),
    };
    let unauthorized = || {
        fail(
            ResourceError::Account {
                error: AccountError::InvalidToken,
            }
            .failure(),
        )
    };
    let token = bearer(inc).ok_or_else(unauthorized)?;
    let account_id = gate::token_kind(env, &token, TokenKind::Access).ok_or_else(unauthorized)?;
    let body = inc.body.as_slice();
    let has_body = !body.iter().all(u8::is_ascii_whitespace);
    if has_body
        && !inc.header("content-type").is_some_and(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
    {
        return Err(fail(
            ApiError::UnsupportedMediaType {
                expected: "application/json",
            }
            .failure(),
        ));
    }
    let parsed = (|| -> Result<ResourceOp, ResourceError> {
        Ok(match route {
            Route::ResourceCreate | Route::ResourceLink => {
                let catalog = discovery::catalog(env).map_err(|_| ResourceError::Unavailable)?;
                let link = *route == Route::ResourceLink;
                let call = if link {
                    CreateCall::Link
                } else {
                    CreateCall::Create
                };
                let key = inc.header("idempotency-key");
                let req = resources::parse_create(body, catalog, call, key.as_deref())?;
                if link {
                    ResourceOp::Link { req }
                } else {
                    ResourceOp::Create { req }
                }
            }
            Route::ResourceGet(id) => ResourceOp::Get { id: id.clone() },
            Route::ResourceUpdate(id) => ResourceOp::Update {
                id: id.clone(),
                req: resources::parse_update(body)?,
            },
            Route::ResourceRotate(id) => {
                resources::parse_empty(body)?;
                ResourceOp::Rotate { id: id.clone() }
            }
            Route::ResourceRemove(id) => {
                resources::parse_empty(body)?;
                ResourceOp::Remove { id: id.clone() }
            }
            Route::ResourceConfirm(id) => ResourceOp::Confirm {
                id: id.clone(),
                req: resources::parse_confirm(body)?,
            },
            Route::DeepLinks => ResourceOp::DeepLink {
                req: resources::parse_deep_link(body)?,
            },
            _ => return Err(ResourceError::NotFound),
        })
    })();
    let op = parsed.map_err(|e| fail(e.failure()))?;
    let call = AccountCall {
        actor: Actor::new(ActorKind::Orchestrator, None),
        request_id: Some(request_id.to_string()),
        op: ResourceCall {
            access_hash: tokens::hash(&token),
            public_base: config::public_base(env, &inc.origin),
            resource: op,
        },
    };
    let rendered = account::call(env, account_id, call)
        .await
        .map_err(|e| fail(e.failure()))?;
    http::json_bytes(200, rendered.0.into_bytes()).map_err(|e| {
        http::log_internal(request_id, "response", &e.to_string());
        Problem::plain(ApiError::Internal)
    })
}
