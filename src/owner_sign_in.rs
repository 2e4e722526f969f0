//! The owner's sign-in, shared by every page that asks for it (the consent page and the
//! dashboard): the operator's login URL that comes back with a signed assertion, and the
//! check of that assertion (README: owner sign-in). The nonce and the owner's email are then
//! checked inside the account's object (`domain::account::check_sign_in`).

use domain::{form, jwt};
use worker::Env;

use crate::config;
use crate::http::Incoming;

/// `OWNER_LOGIN_URL?return_to=<base><return_path>&nonce=..&login_hint=..`, when configured.
/// The login service appends `&assertion=<JWT>` to `return_to`.
pub fn login_url(
    env: &Env,
    inc: &Incoming,
    return_path: &str,
    nonce: &str,
    login_hint: &str,
) -> Option<String> {
    let login = config::string(env, "OWNER_LOGIN_URL")?;
    let return_to = format!("{}{return_path}", config::public_base(env, &inc.origin));
    let sep = if login.contains('?') { '&' } else { '?' };
    Some(format!(
        "{login}{sep}{}",
        form::encode(&[
            ("return_to", &return_to),
            ("nonce", nonce),
            ("login_hint", login_hint)
        ])
    ))
}

/// A refused sign-in: the status, title and text of the page that says so.
pub type Refusal = (u16, &'static str, &'static str);

/// Verifies an owner assertion (HS256 under `OWNER_ASSERTION_SECRET`, short-lived) at `now`.
pub fn verify(env: &Env, assertion: &str, now: i64) -> Result<jwt::Assertion, Refusal> {
    let Some(secret) = config::string(env, "OWNER_ASSERTION_SECRET") else {
        return Err((
            500,
            "Sign-in is not configured",
            "The provider has no OWNER_ASSERTION_SECRET.",
        ));
    };
    jwt::verify(secret.as_bytes(), assertion, now).map_err(|e| (401, "Sign-in failed", e.reason()))
}
