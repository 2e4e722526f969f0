//! Owner sign-in assertions (HS256 JWTs). Input: a token; and the same bytes as the claims
//! (`header NUL claims`, or claims alone) of a token signed with the right secret, so the claim
//! checks after the signature are reached.
#![no_main]

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::NOW;
use domain::crypto::hmac_sha256;
use domain::jwt::{self, AssertionError, MAX_LIFETIME_SECS};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"owner-assertion-secret-for-fuzzing";

fn check(token: &str) {
    let verdict = jwt::verify(SECRET, token, NOW);
    if token.len() > 4096 {
        assert_eq!(verdict, Err(AssertionError::Malformed));
    }
    if let Ok(a) = verdict {
        assert!(a.exp > NOW && a.exp - NOW <= MAX_LIFETIME_SECS);
        assert!(!a.email.is_empty() && !a.nonce.is_empty());
        assert_eq!(
            jwt::verify(b"another secret", token, NOW),
            Err(AssertionError::BadSignature)
        );
        assert_eq!(
            jwt::verify(b"", token, NOW),
            Err(AssertionError::BadSignature)
        );
    }
}

fuzz_target!(|data: &[u8]| {
    check(&String::from_utf8_lossy(data));

    let (header, claims) = match common::split_nul(data) {
        (h, Some(c)) => (h, c),
        (c, None) => (&br#"{"alg":"HS256","typ":"JWT"}"#[..], c),
    };
    let h = URL_SAFE_NO_PAD.encode(header);
    let p = URL_SAFE_NO_PAD.encode(claims);
    let mac = hmac_sha256(SECRET, &[h.as_bytes(), b".", p.as_bytes()]);
    check(&format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(mac)));
});
