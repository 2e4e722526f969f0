//! RFC 3339 times, email normalisation, and token parsing and minting.
#![no_main]

use domain::tokens::{self, Parsed, TokenKind};
use domain::{email, time};
use libfuzzer_sys::fuzz_target;

const KINDS: [TokenKind; 7] = [
    TokenKind::Access,
    TokenKind::Refresh,
    TokenKind::Code,
    TokenKind::Consent,
    TokenKind::ApiKey,
    TokenKind::DeepLink,
    TokenKind::Session,
];
/// 9999-12-31T23:59:59Z: beyond it years have five digits.
const LAST_FORMATTED: i64 = 253_402_300_799;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    if let Some(t) = time::parse_rfc3339(&text) {
        if (0..=LAST_FORMATTED).contains(&t) {
            assert_eq!(time::parse_rfc3339(&time::format_rfc3339(t)), Some(t));
        }
    }

    if let Ok(e) = email::normalize(&text) {
        assert_eq!(
            email::normalize(&e).as_deref(),
            Ok(e.as_str()),
            "idempotent"
        );
        assert!(e.len() <= 254 && e.is_ascii() && e.contains('@'));
        assert_eq!(e, e.to_ascii_lowercase());
    }

    if let Some(p) = tokens::parse(&text) {
        assert!(text.starts_with(p.kind.prefix()));
        assert!(tokens::valid_account_id(p.account));
        assert_eq!(tokens::parse_kind(&text, p.kind), Some(p.account));
        // Whatever parses, nothing made up verifies without the key.
        assert_eq!(tokens::verify(&text, &tokens::MacKeys::default()), None);
    }

    // Any random bytes mint a token that parses back to its kind and account.
    if data.len() >= 31 {
        let account = tokens::account_id(data[..10].try_into().expect("10 bytes"));
        let random: [u8; 20] = data[10..30].try_into().expect("20 bytes");
        let kind = KINDS[data[30] as usize % KINDS.len()];
        let minted = tokens::mint(kind, &account, b"fuzz-key", &random);
        assert_eq!(
            tokens::parse(&minted.token),
            Some(Parsed {
                kind,
                account: &account,
                legacy: false,
            })
        );
        let keys = tokens::MacKeys::new("fuzz-key", false);
        assert_eq!(
            tokens::verify_kind(&minted.token, kind, &keys),
            Some(account.as_str())
        );
        assert!(tokens::same_hash(
            &minted.hash,
            &tokens::hash(&minted.token)
        ));
    }
});
