//! What a request must show before it reaches an account object, and the limit on calls that
//! have not proved whose they are (issue 18: nobody can lock an account out).
//!
//! - [`token`]: a token routes to its account's object only when its tag verifies under
//!   `TOKEN_MAC_KEY` (`domain::tokens::verify`). A made-up token for any account id is refused
//!   here, so it never creates an object or touches storage.
//! - [`client`]: calls that are not the orchestrator's (unsigned token and revoke calls, the
//!   consent and dashboard pages) are counted per client address (`CF-Connecting-IP`) by
//!   Cloudflare's Rate Limiting binding `CLIENT_LIMITER` (wrangler.toml). They never take from
//!   an account's own budget (`ACCOUNT_RATE_LIMIT`), which only calls that proved they belong to
//!   the account (the orchestrator's signature and a valid credential) spend.

use domain::errors::ApiError;
use domain::tokens::{self, Parsed, TokenKind};
use worker::Env;

use crate::config;
use crate::http::Incoming;

/// The binding counting calls per client address.
const CLIENT_LIMITER: &str = "CLIENT_LIMITER";
/// `Retry-After` for a client over its limit: the binding's window (`period` in wrangler.toml)
/// is 60 s, and it does not say when the window ends.
pub const CLIENT_RETRY_AFTER: u64 = 60;

/// The token taken apart, if this provider minted it (see `domain::tokens::verify`). Every
/// route calls this before it sends a token to an account object.
pub fn token<'a>(env: &Env, token: &'a str) -> Option<Parsed<'a>> {
    tokens::verify(token, &config::token_keys(env))
}

/// [`token`], requiring a given kind: the account id to route to.
pub fn token_kind<'a>(env: &Env, token: &'a str, kind: TokenKind) -> Option<&'a str> {
    tokens::verify_kind(token, kind, &config::token_keys(env))
}

/// Counts one call of a client that has not proved whose it is; `RateLimited` over the limit.
/// A missing binding refuses (a configuration error must not lift the limit); a failing call
/// of a present binding lets the request through and logs, because the limiter is approximate
/// by design and the exact protections (the tag, the owner's budget) do not depend on it.
pub async fn client(env: &Env, inc: &Incoming) -> Result<(), ApiError> {
    let key = domain::ratelimit::client_key(inc.header("cf-connecting-ip").as_deref());
    crate::limits::take(env, CLIENT_LIMITER, key, CLIENT_RETRY_AFTER).await
}
