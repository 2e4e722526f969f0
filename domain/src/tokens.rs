//! Identifiers and bearer secrets.
//!
//! Every secret carries its routing key: `<prefix>_<account id>_<32 base32 chars>`, e.g.
//! `pvat_acct_k3v9..._q4x...`, so a request is sent to its account's Durable Object without a
//! global lookup. Only the SHA-256 of the whole token is stored; lookups compare hashes in
//! constant time. The base32 alphabet has no `_`, so the parts split unambiguously, and the
//! prefixes make leaked tokens easy to recognise for secret scanners.

use crate::crypto::{base32, ct_eq, hmac_sha256, is_base32, sha256_hex};

/// What a token is for, by its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// OAuth access token (`pvat_`).
    Access,
    /// OAuth refresh token (`pvrt_`).
    Refresh,
    /// OAuth authorization code (`pvac_`).
    Code,
    /// Consent link id (`pvcs_`).
    Consent,
    /// A scoped API token provisioned as a resource (`pvak_`).
    ApiKey,
    /// A single-use dashboard link (`pvdl_`).
    DeepLink,
    /// A dashboard session, carried by the page's forms (`pvds_`).
    Session,
}

impl TokenKind {
    pub fn prefix(self) -> &'static str {
        match self {
            TokenKind::Access => "pvat",
            TokenKind::Refresh => "pvrt",
            TokenKind::Code => "pvac",
            TokenKind::Consent => "pvcs",
            TokenKind::ApiKey => "pvak",
            TokenKind::DeepLink => "pvdl",
            TokenKind::Session => "pvds",
        }
    }

    fn from_prefix(p: &str) -> Option<TokenKind> {
        [
            TokenKind::Access,
            TokenKind::Refresh,
            TokenKind::Code,
            TokenKind::Consent,
            TokenKind::ApiKey,
            TokenKind::DeepLink,
            TokenKind::Session,
        ]
        .into_iter()
        .find(|k| k.prefix() == p)
    }
}

const ACCOUNT_PREFIX: &str = "acct_";
const ACCOUNT_ID_CHARS: usize = 16;
const SECRET_CHARS: usize = 32;

/// A new account id from 10 random bytes: `acct_` + 16 base32 characters.
pub fn account_id(random: &[u8; 10]) -> String {
    format!("{ACCOUNT_PREFIX}{}", base32(random))
}

/// True for ids made by [`account_id`].
pub fn valid_account_id(id: &str) -> bool {
    id.strip_prefix(ACCOUNT_PREFIX)
        .is_some_and(|rest| rest.len() == ACCOUNT_ID_CHARS && is_base32(rest))
}

/// A minted token and the hash to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Minted {
    pub token: String,
    pub hash: String,
}

/// Mints a token of `kind` for `account` from 20 random bytes.
pub fn mint(kind: TokenKind, account: &str, random: &[u8; 20]) -> Minted {
    let token = format!("{}_{account}_{}", kind.prefix(), base32(random));
    Minted {
        hash: hash(&token),
        token,
    }
}

/// Derives a token deterministically from a server key and a context, so an idempotent replay
/// can return the same secret without it ever being stored.
pub fn derive(kind: TokenKind, account: &str, key: &[u8], context: &str) -> Minted {
    let mac = hmac_sha256(
        key,
        &[
            kind.prefix().as_bytes(),
            b"|",
            account.as_bytes(),
            b"|",
            context.as_bytes(),
        ],
    );
    let mut random = [0u8; 20];
    random.copy_from_slice(&mac[..20]);
    mint(kind, account, &random)
}

/// The stored form of a token: lowercase hex SHA-256 of the whole string.
pub fn hash(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// Constant-time comparison of two stored hashes.
pub fn same_hash(a: &str, b: &str) -> bool {
    ct_eq(a.as_bytes(), b.as_bytes())
}

/// A token taken apart: its kind and the account it routes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    pub kind: TokenKind,
    pub account: &'a str,
}

/// Splits a token into kind and account id; `None` unless it has exactly our shape.
pub fn parse(token: &str) -> Option<Parsed<'_>> {
    if token.len() > 80 {
        return None;
    }
    let (prefix, rest) = token.split_once('_')?;
    let kind = TokenKind::from_prefix(prefix)?;
    let (account, secret) = rest.rsplit_once('_')?;
    if !valid_account_id(account) || secret.len() != SECRET_CHARS || !is_base32(secret) {
        return None;
    }
    Some(Parsed { kind, account })
}

/// `parse`, requiring a given kind.
pub fn parse_kind(token: &str, kind: TokenKind) -> Option<&str> {
    parse(token).filter(|p| p.kind == kind).map(|p| p.account)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids() {
        let id = account_id(&[7; 10]);
        assert_eq!(id.len(), 21);
        assert!(valid_account_id(&id));
        assert!(!valid_account_id("acct_short"));
        assert!(!valid_account_id("acct_AAAAAAAAAAAAAAAA"));
        assert!(!valid_account_id("user_aaaaaaaaaaaaaaaa"));
    }

    #[test]
    fn mint_and_parse() {
        let acct = account_id(&[1; 10]);
        let m = mint(TokenKind::Access, &acct, &[9; 20]);
        assert!(m.token.starts_with(&format!("pvat_{acct}_")));
        assert_eq!(m.hash, hash(&m.token));
        assert_eq!(m.hash.len(), 64);
        assert_eq!(
            parse(&m.token),
            Some(Parsed {
                kind: TokenKind::Access,
                account: &acct
            })
        );
        assert_eq!(parse_kind(&m.token, TokenKind::Access), Some(acct.as_str()));
        assert_eq!(parse_kind(&m.token, TokenKind::Refresh), None);
        for kind in [
            TokenKind::Refresh,
            TokenKind::Code,
            TokenKind::Consent,
            TokenKind::ApiKey,
            TokenKind::DeepLink,
        ] {
            let t = mint(kind, &acct, &[3; 20]).token;
            assert_eq!(parse(&t).map(|p| p.kind), Some(kind));
        }
    }

    #[test]
    fn parse_refuses_lookalikes() {
        let acct = account_id(&[1; 10]);
        let good = mint(TokenKind::Access, &acct, &[9; 20]).token;
        let cases = [
            String::new(),
            "pvat".into(),
            format!("xxat_{acct}_{}", &good[good.len() - 32..]),
            format!("{good}a"),
            good[..good.len() - 1].to_string(),
            good.to_uppercase(),
            format!("pvat_{acct}__{}", &good[good.len() - 32..]),
            format!("pvat_acct_x_{}", &good[good.len() - 32..]),
            good.replace("pvat_", "pvat__"),
        ];
        for c in cases {
            assert_eq!(parse(&c), None, "{c}");
        }
    }

    #[test]
    fn derivation_is_stable_and_keyed() {
        let acct = account_id(&[1; 10]);
        let a = derive(TokenKind::Code, &acct, b"key", "acctreq_1|100");
        assert_eq!(a, derive(TokenKind::Code, &acct, b"key", "acctreq_1|100"));
        assert_ne!(a, derive(TokenKind::Code, &acct, b"other", "acctreq_1|100"));
        assert_ne!(a, derive(TokenKind::Code, &acct, b"key", "acctreq_2|100"));
        assert_ne!(
            a.token,
            derive(TokenKind::Consent, &acct, b"key", "acctreq_1|100").token
        );
        assert!(parse_kind(&a.token, TokenKind::Code).is_some());
    }
}
