//! Identifiers and bearer secrets.
//!
//! Every secret carries its routing key: `<prefix>_<account id>_<48 base32 chars>`, e.g.
//! `pvat_acct_k3v9..._q4x...`, so a request is sent to its account's Durable Object without a
//! global lookup. Only the SHA-256 of the whole token is stored; lookups compare hashes in
//! constant time. The base32 alphabet has no `_`, so the parts split unambiguously, and the
//! prefixes make leaked tokens easy to recognise for secret scanners.
//!
//! The 48 characters are 32 of secret (160 random bits) and a 16-character tag (80 bits of
//! HMAC-SHA256 under `TOKEN_MAC_KEY` over prefix, account and secret). The tag does not grant
//! anything (the stored hash does): it lets the worker refuse a made-up token for any account
//! id before an object is touched ([`verify`]), so garbage never reaches storage. Tokens of
//! the earlier format (32 characters, no tag) parse as `legacy` and verify only when the
//! operator accepts them explicitly ([`MacKeys::accept_legacy`]).

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
/// Characters of the random part (20 bytes), then of the tag (10 bytes).
const RANDOM_CHARS: usize = 32;
const TAG_CHARS: usize = 16;
const TAG_BYTES: usize = 10;
const SECRET_CHARS: usize = RANDOM_CHARS + TAG_CHARS;
/// The secret part of tokens minted before they carried a tag.
const LEGACY_SECRET_CHARS: usize = RANDOM_CHARS;

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

/// The keys that tag tokens (`TOKEN_MAC_KEY`, comma-separated during a rotation: the first
/// tags new tokens, every one verifies), and whether untagged tokens of the earlier format are
/// still accepted. No key: nothing can be minted and nothing but (explicitly accepted) legacy
/// tokens verifies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MacKeys {
    keys: Vec<Vec<u8>>,
    /// Accept untagged tokens of the earlier format (`ACCEPT_LEGACY_TOKENS`): they reach their
    /// account's object unchecked, as before the tag existed.
    pub accept_legacy: bool,
}

impl MacKeys {
    /// From the configured text (comma-separated keys; blanks ignored).
    pub fn new(config: &str, accept_legacy: bool) -> MacKeys {
        MacKeys {
            keys: config
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(|k| k.as_bytes().to_vec())
                .collect(),
            accept_legacy,
        }
    }

    /// The key that tags new tokens, if any is configured.
    pub fn current(&self) -> Option<&[u8]> {
        self.keys.first().map(Vec::as_slice)
    }
}

/// The tag of a token: base32 of the first 10 bytes of HMAC-SHA256 over its routing part and
/// random part.
fn tag(kind: TokenKind, account: &str, random: &str, mac_key: &[u8]) -> String {
    let mac = hmac_sha256(
        mac_key,
        &[
            b"app-token-tag-v1|",
            kind.prefix().as_bytes(),
            b"|",
            account.as_bytes(),
            b"|",
            random.as_bytes(),
        ],
    );
    base32(&mac[..TAG_BYTES])
}

/// Mints a token of `kind` for `account` from 20 random bytes, tagged under `mac_key`
/// ([`MacKeys::current`]).
pub fn mint(kind: TokenKind, account: &str, mac_key: &[u8], random: &[u8; 20]) -> Minted {
    let random = base32(random);
    let token = format!(
        "{}_{account}_{random}{}",
        kind.prefix(),
        tag(kind, account, &random, mac_key)
    );
    Minted {
        hash: hash(&token),
        token,
    }
}

/// Derives a token deterministically from a server key and a context, so an idempotent replay
/// can return the same secret without it ever being stored; tagged under `mac_key` like
/// [`mint`].
pub fn derive(kind: TokenKind, account: &str, mac_key: &[u8], key: &[u8], context: &str) -> Minted {
    mint(
        kind,
        account,
        mac_key,
        &derived_bytes(kind, account, key, context),
    )
}

/// The token [`derive`] made before tokens carried a tag (the earlier, 32-character format):
/// API tokens minted then are still shown as they were until rotated.
pub fn derive_legacy(kind: TokenKind, account: &str, key: &[u8], context: &str) -> String {
    format!(
        "{}_{account}_{}",
        kind.prefix(),
        base32(&derived_bytes(kind, account, key, context))
    )
}

fn derived_bytes(kind: TokenKind, account: &str, key: &[u8], context: &str) -> [u8; 20] {
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
    random
}

/// The stored form of a token: lowercase hex SHA-256 of the whole string.
pub fn hash(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// Constant-time comparison of two stored hashes.
pub fn same_hash(a: &str, b: &str) -> bool {
    ct_eq(a.as_bytes(), b.as_bytes())
}

/// A token taken apart: its kind, the account it routes to, and whether it has the earlier,
/// untagged format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    pub kind: TokenKind,
    pub account: &'a str,
    pub legacy: bool,
}

/// Splits a token into kind and account id; `None` unless it has exactly our shape (tagged, or
/// the earlier untagged format). Says nothing about the tag: see [`verify`].
pub fn parse(token: &str) -> Option<Parsed<'_>> {
    if token.len() > 80 {
        return None;
    }
    let (prefix, rest) = token.split_once('_')?;
    let kind = TokenKind::from_prefix(prefix)?;
    let (account, secret) = rest.rsplit_once('_')?;
    let legacy = match secret.len() {
        SECRET_CHARS => false,
        LEGACY_SECRET_CHARS => true,
        _ => return None,
    };
    if !valid_account_id(account) || !is_base32(secret) {
        return None;
    }
    Some(Parsed {
        kind,
        account,
        legacy,
    })
}

/// `parse`, requiring a given kind.
pub fn parse_kind(token: &str, kind: TokenKind) -> Option<&str> {
    parse(token).filter(|p| p.kind == kind).map(|p| p.account)
}

/// [`parse`], then the tag checked in constant time under each of `keys`: `Some` only for a
/// token this provider minted (or, when `keys.accept_legacy`, one of the earlier format). The
/// worker calls it before routing a token to its account's object.
pub fn verify<'a>(token: &'a str, keys: &MacKeys) -> Option<Parsed<'a>> {
    let parsed = parse(token)?;
    if parsed.legacy {
        return keys.accept_legacy.then_some(parsed);
    }
    let (_, secret) = token.rsplit_once('_')?;
    let (random, presented) = secret.split_at(RANDOM_CHARS);
    let mut ok = false;
    for key in &keys.keys {
        ok |= ct_eq(
            tag(parsed.kind, parsed.account, random, key).as_bytes(),
            presented.as_bytes(),
        );
    }
    ok.then_some(parsed)
}

/// [`verify`], requiring a given kind.
pub fn verify_kind<'a>(token: &'a str, kind: TokenKind, keys: &MacKeys) -> Option<&'a str> {
    verify(token, keys)
        .filter(|p| p.kind == kind)
        .map(|p| p.account)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"mac-key";

    fn keys() -> MacKeys {
        MacKeys::new("mac-key", false)
    }

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
        let m = mint(TokenKind::Access, &acct, KEY, &[9; 20]);
        assert!(m.token.starts_with(&format!("pvat_{acct}_")));
        assert_eq!(m.token.len(), 4 + 1 + 21 + 1 + 48);
        assert_eq!(m.hash, hash(&m.token));
        assert_eq!(m.hash.len(), 64);
        assert_eq!(
            parse(&m.token),
            Some(Parsed {
                kind: TokenKind::Access,
                account: &acct,
                legacy: false,
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
            TokenKind::Session,
        ] {
            let t = mint(kind, &acct, KEY, &[3; 20]).token;
            assert_eq!(parse(&t).map(|p| p.kind), Some(kind));
            assert_eq!(verify_kind(&t, kind, &keys()), Some(acct.as_str()));
        }
    }

    #[test]
    fn parse_refuses_lookalikes() {
        let acct = account_id(&[1; 10]);
        let good = mint(TokenKind::Access, &acct, KEY, &[9; 20]).token;
        let secret = &good[good.len() - 48..];
        let cases = [
            String::new(),
            "pvat".into(),
            format!("xxat_{acct}_{secret}"),
            format!("{good}a"),
            good[..good.len() - 1].to_string(),
            good.to_uppercase(),
            format!("pvat_{acct}__{secret}"),
            format!("pvat_acct_x_{secret}"),
            good.replace("pvat_", "pvat__"),
            format!("pvat_{acct}_{}", &secret[..40]),
        ];
        for c in cases {
            assert_eq!(parse(&c), None, "{c}");
            assert_eq!(verify(&c, &keys()), None, "{c}");
        }
    }

    #[test]
    fn verify_accepts_only_what_was_minted_under_a_configured_key() {
        let acct = account_id(&[1; 10]);
        let other = account_id(&[2; 10]);
        let good = mint(TokenKind::Refresh, &acct, KEY, &[9; 20]).token;
        assert_eq!(
            verify(&good, &keys()).map(|p| (p.kind, p.account)),
            Some((TokenKind::Refresh, acct.as_str()))
        );
        // Well-formed garbage for a real account id: the shape is right, the tag is not.
        let garbage = format!("pvrt_{acct}_{}", "a".repeat(48));
        assert!(parse(&garbage).is_some());
        assert_eq!(verify(&garbage, &keys()), None);
        // The tag binds kind, account and random part: moving any of them breaks it.
        let secret = &good[good.len() - 48..];
        let (random, tag) = secret.split_at(32);
        for forged in [
            format!("pvat_{acct}_{secret}"),
            format!("pvrt_{other}_{secret}"),
            format!("pvrt_{acct}_{}{tag}", random.replace(&random[..1], "z")),
            format!("pvrt_{acct}_{random}{}", "a".repeat(16)),
        ] {
            assert!(parse(&forged).is_some(), "{forged}");
            assert_eq!(verify(&forged, &keys()), None, "{forged}");
        }
        // Another key, or none at all, verifies nothing: a missing key never weakens the check.
        assert_eq!(verify(&good, &MacKeys::new("other", false)), None);
        assert_eq!(verify(&good, &MacKeys::new("", false)), None);
        assert_eq!(verify(&good, &MacKeys::new(" , ", true)), None);
        assert_eq!(MacKeys::new(" , ", false).current(), None);
        // During a rotation both keys verify and the first one mints.
        let rotating = MacKeys::new("new-key, mac-key", false);
        assert_eq!(rotating.current(), Some(&b"new-key"[..]));
        assert!(verify(&good, &rotating).is_some());
        let fresh = mint(TokenKind::Refresh, &acct, b"new-key", &[9; 20]).token;
        assert!(verify(&fresh, &rotating).is_some());
        assert_eq!(verify(&fresh, &keys()), None);
    }

    #[test]
    fn legacy_tokens_verify_only_when_accepted_explicitly() {
        let acct = account_id(&[1; 10]);
        let legacy = format!("pvrt_{acct}_{}", base32(&[9; 20]));
        assert_eq!(
            parse(&legacy),
            Some(Parsed {
                kind: TokenKind::Refresh,
                account: &acct,
                legacy: true,
            })
        );
        assert_eq!(verify(&legacy, &keys()), None);
        assert_eq!(verify(&legacy, &MacKeys::default()), None);
        let accepting = MacKeys::new("mac-key", true);
        assert_eq!(
            verify_kind(&legacy, TokenKind::Refresh, &accepting),
            Some(acct.as_str())
        );
        assert_eq!(verify_kind(&legacy, TokenKind::Access, &accepting), None);
        // Accepting legacy tokens does not accept a tagged token with a bad tag.
        let garbage = format!("pvrt_{acct}_{}", "a".repeat(48));
        assert_eq!(verify(&garbage, &accepting), None);
    }

    #[test]
    fn derivation_is_stable_and_keyed() {
        let acct = account_id(&[1; 10]);
        let d = |kind, key: &[u8], ctx| derive(kind, &acct, KEY, key, ctx);
        let a = d(TokenKind::Code, b"key", "acctreq_1|100");
        assert_eq!(a, d(TokenKind::Code, b"key", "acctreq_1|100"));
        assert_ne!(a, d(TokenKind::Code, b"other", "acctreq_1|100"));
        assert_ne!(a, d(TokenKind::Code, b"key", "acctreq_2|100"));
        assert_ne!(
            a.token,
            d(TokenKind::Consent, b"key", "acctreq_1|100").token
        );
        assert_ne!(
            a,
            derive(
                TokenKind::Code,
                &acct,
                b"other-mac",
                b"key",
                "acctreq_1|100"
            )
        );
        assert!(parse_kind(&a.token, TokenKind::Code).is_some());
        assert_eq!(
            verify_kind(&a.token, TokenKind::Code, &keys()),
            Some(acct.as_str())
        );
    }
}
