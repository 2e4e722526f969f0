//! `POST /webhooks/stripe`: Stripe's events, verified over the raw bytes before anything is
//! parsed, routed to their account's object, applied there exactly once, and acknowledged fast.
//! Slow follow-up work (a job the event unblocked, a grace period) goes to the object's alarm.

use domain::account::AccountError;
use domain::audit::{Actor, ActorKind};
use domain::errors::{ApiError, Failure};
use domain::stripe_events;
use serde_json::json;
use worker::{Env, Response};

use crate::http::{self, Incoming, Problem};
use crate::rpc::account::{self, AccountCall};
use crate::rpc::op::CallError;
use crate::{audit_sink, config, verify};

fn plain(status: u16, code: &'static str, message: impl Into<String>) -> Problem {
    Problem {
        failure: Failure::new(status, code, message),
        envelope: domain::errors::Envelope::Plain,
    }
}

pub async fn handle(inc: &Incoming, env: &Env, request_id: &str) -> Result<Response, Problem> {
    // Stripe's rule: a bad signature is a 400, and nothing is stored.
    verify::signature(inc, env, &config::webhook_secrets(env))
        .map_err(|e| plain(400, "invalid_signature", e.reason()))?;
    let event =
        stripe_events::parse_event(&inc.body).map_err(|m| plain(400, "invalid_request", m))?;
    let account = match event.account_hint() {
        Some(a) => Some(a),
        None => audit_sink::account_of(env, &event.references())
            .await
            .map_err(|e| {
                http::log_internal(request_id, "webhook routing", &e);
                Problem::plain(ApiError::Unavailable("the audit database".into()))
            })?,
    };
    let outcome = match &account {
        Some(account_id) => {
            let call = AccountCall {
                actor: Actor::new(ActorKind::Stripe, Some(&event.id)),
                request_id: Some(request_id.to_string()),
                op: event.clone(),
            };
            match account::call(env, account_id, call).await {
                Ok(o) => Some(o),
                // The metadata named an account that does not exist here.
                Err(CallError::Refused(AccountError::NotFound)) => None,
                Err(CallError::Refused(e)) => {
                    return Err(Problem::plain(match e {
                        AccountError::Unavailable => {
                            ApiError::Unavailable("account storage".into())
                        }
                        _ => ApiError::Internal,
                    }))
                }
                Err(CallError::Transport(e)) => return Err(Problem::plain(e)),
            }
        }
        None => None,
    };
    let outcome = match outcome {
        Some(o) => o.as_str(),
        None => {
            // Recorded and acknowledged; a failure to record makes Stripe retry.
            audit_sink::unknown_account_event(env, &event.id, &event.kind, event.created, inc.now)
                .await
                .map_err(|e| {
                    http::log_internal(request_id, "webhook record", &e);
                    Problem::plain(ApiError::Unavailable("the audit database".into()))
                })?;
            "unknown_account"
        }
    };
    http::json(200, &json!({"received": true, "outcome": outcome})).map_err(|e| {
        http::log_internal(request_id, "response", &e.to_string());
        Problem::plain(ApiError::Internal)
    })
}
