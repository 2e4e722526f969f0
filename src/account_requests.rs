//! `POST /provisioning/account_requests` (docs/PROTOCOL.md §3.1): a thin handler that checks
//! the media type, parses the request, claims its id in the request-id directory and hands it to
//! the email's directory object, then renders the outcome.
//!
//! Invariants: a request that fails to parse, or whose id was claimed by a different request,
//! changes nothing; the id is claimed before the email's directory is asked, so a replayed id is
//! idempotent across emails; a request without an id claims nothing and is never replayed;
//! every failure is rendered in the account-request envelope carrying the request's id when it
//! could be read.

use domain::account_request;
use domain::errors::{ApiError, Envelope, Failure};
use worker::{Env, Response};

use crate::config;
use crate::http::{self, Incoming, Problem};
use crate::rpc::directory::{self, AccountRequestCall, ClaimRequest};

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
    if !http::has_content_type(inc, "application/json") {
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
    // and the replay of the same request). Without an id there is nothing to claim.
    if let Some(id) = &id {
        let claim = ClaimRequest {
            id: id.clone(),
            fingerprint: request.fingerprint.clone(),
            email: request.email.clone(),
        };
        directory::claim_request(env, claim)
            .await
            .map_err(|e| fail(e.failure()))?;
    }
    let call = AccountRequestCall {
        public_base: config::public_base(env, &inc.origin),
        request_id: request_id.to_string(),
        request,
    };
    let outcome = directory::account_request(env, call)
        .await
        .map_err(|e| fail(e.failure()))?;
    http::json(200, &outcome.render(id.as_deref())).map_err(http::internal)
}
