use serde_json::{json, Value};

use crate::account::Account;
use crate::resources::model::{Detail, Resource, ResourceStatus};
use crate::sealing::{KeyRing, OpenError, Sealed};
use crate::tokens::{self, Minted, TokenKind};

/// RFC 7662 view of a provisioned API token (`pvak_`), for the operator's own API.
pub fn introspect_api_key(a: &Account, token_hash: &str) -> Value {
    if !a.is_open() {
        return json!({"active": false});
    }
    for r in a
        .resources
        .iter()
        .filter(|r| r.status == ResourceStatus::Complete)
    {
        if let Detail::ApiToken {
            scopes,
            token_hash: h,
            generation,
            ..
        } = &r.detail
        {
            if crate::tokens::same_hash(h, token_hash) {
                return json!({"active": true, "token_type": "api_token", "scope": scopes.join(" "),
                              "sub": a.id, "resource_id": r.id, "project_id": r.project_id,
                              "generation": generation, "iat": r.updated_at});
            }
        }
    }
    json!({"active": false})
}

/// The context string an API token of `generation` was derived from (tokens minted before
/// they were random; see [`api_token_value`]).
pub fn api_token_context(resource_id: &str, generation: u32) -> String {
    format!("{resource_id}|{generation}")
}

/// A new API token: its value and hash, and the value sealed for storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiToken {
    pub minted: Minted,
    pub sealed: Sealed,
}

/// The associated data of a sealed API token: the account, resource and generation it belongs
/// to, so a ciphertext copied to another resource or generation does not open.
pub(crate) fn api_token_aad(account_id: &str, resource_id: &str, generation: u32) -> String {
    format!("pvak|{account_id}|{resource_id}|{generation}")
}

/// Mints the API token of `generation` of resource `resource_id` from 20 random bytes and
/// seals it with the ring's first key under a fresh 12-byte `nonce` (both from the glue's
/// CSPRNG).
pub fn new_api_token(
    keys: &KeyRing,
    mac_key: &[u8],
    account_id: &str,
    resource_id: &str,
    generation: u32,
    random: &[u8; 20],
    nonce: &[u8; 12],
) -> NewApiToken {
    let minted = tokens::mint(TokenKind::ApiKey, account_id, mac_key, random);
    let aad = api_token_aad(account_id, resource_id, generation);
    let sealed = keys.seal(minted.token.as_bytes(), aad.as_bytes(), nonce);
    NewApiToken { minted, sealed }
}

/// Why the value of an API token cannot be shown. Never carries key material or the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenValueError {
    /// A sealed token and no (valid) `TOKEN_ENCRYPTION_KEYS`.
    NoKeys,
    /// A derived (older) token and no `DERIVATION_KEY`.
    NoDerivationKey,
    Open(OpenError),
    /// What was opened or derived is not the token whose hash is stored (e.g. `DERIVATION_KEY`
    /// changed while older tokens live).
    Mismatch,
}

impl std::fmt::Display for TokenValueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenValueError::NoKeys => write!(
                f,
                "{} is not set or invalid; a sealed API token cannot be opened",
                crate::sealing::KEYS_SETTING
            ),
            TokenValueError::NoDerivationKey => {
                write!(
                    f,
                    "DERIVATION_KEY is not set; an older API token cannot be derived"
                )
            }
            TokenValueError::Open(OpenError::UnknownKid(kid)) => write!(
                f,
                "no key {kid:?} in {}; keep a key while tokens sealed under it live",
                crate::sealing::KEYS_SETTING
            ),
            TokenValueError::Open(OpenError::Invalid) => {
                write!(
                    f,
                    "a sealed API token does not open (wrong key bytes for its id?)"
                )
            }
            TokenValueError::Mismatch => write!(
                f,
                "an API token's value does not match its stored hash (DERIVATION_KEY changed?)"
            ),
        }
    }
}

/// The value of an API token resource's current generation, for the resource object (`None`
/// for other resources): opened from its sealed copy, or, for tokens minted before they were
/// random (no sealed copy), derived from `DERIVATION_KEY` as then. Checked against the stored
/// hash, so a wrong key never shows a wrong token.
pub fn api_token_value(
    r: &Resource,
    account_id: &str,
    keys: Option<&KeyRing>,
    derivation_key: Option<&[u8]>,
) -> Result<Option<String>, TokenValueError> {
    let Detail::ApiToken {
        generation,
        token_hash,
        sealed,
        ..
    } = &r.detail
    else {
        return Ok(None);
    };
    let value = match sealed {
        Some(sealed) => {
            let aad = api_token_aad(account_id, &r.id, *generation);
            let bytes = keys
                .ok_or(TokenValueError::NoKeys)?
                .open(sealed, aad.as_bytes())
                .map_err(TokenValueError::Open)?;
            String::from_utf8(bytes).map_err(|_| TokenValueError::Mismatch)?
        }
        None => {
            let key = derivation_key.ok_or(TokenValueError::NoDerivationKey)?;
            let context = api_token_context(&r.id, *generation);
            tokens::derive_legacy(TokenKind::ApiKey, account_id, key, &context)
        }
    };
    if !tokens::same_hash(&tokens::hash(&value), token_hash) {
        return Err(TokenValueError::Mismatch);
    }
    Ok(Some(value))
}

// The resource object on the wire
