//! Owner sign-in assertions: compact JWTs signed with HMAC-SHA256 (`alg: HS256`) by the
//! operator's login service, with a secret shared with this worker.
//!
//! Invariants: only `HS256` is accepted (never `none`, never an algorithm named by the token
//! alone); the signature is checked, in constant time, before the claims are read; `exp` is
//! required and may lie at most [`MAX_LIFETIME_SECS`] ahead, so assertions are short-lived;
//! `email` and `nonce` are required strings.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use crate::crypto::{ct_eq, hmac_sha256};

/// Longest accepted assertion lifetime from now.
pub const MAX_LIFETIME_SECS: i64 = 600;
const MAX_TOKEN_LEN: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    pub email: String,
    pub nonce: String,
    pub exp: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionError {
    Malformed,
    UnsupportedAlgorithm,
    BadSignature,
    Expired,
    TooLongLived,
    NotYetValid,
    MissingClaim(&'static str),
}

impl AssertionError {
    pub fn reason(self) -> &'static str {
        match self {
            AssertionError::Malformed => "the sign-in assertion is malformed",
            AssertionError::UnsupportedAlgorithm => {
                "the sign-in assertion must be signed with HS256"
            }
            AssertionError::BadSignature => "the sign-in assertion's signature is not valid",
            AssertionError::Expired => "the sign-in assertion has expired; sign in again",
            AssertionError::TooLongLived => "the sign-in assertion lives longer than 10 minutes",
            AssertionError::NotYetValid => "the sign-in assertion is not valid yet",
            AssertionError::MissingClaim(_) => "the sign-in assertion lacks a required claim",
        }
    }
}

fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// Signs claims as an HS256 JWT (what the operator's login service does; also used in tests).
pub fn sign(secret: &[u8], claims: &Value) -> String {
    let header = b64(json!({"alg": "HS256", "typ": "JWT"}).to_string().as_bytes());
    let payload = b64(claims.to_string().as_bytes());
    let mac = hmac_sha256(secret, &[header.as_bytes(), b".", payload.as_bytes()]);
    format!("{header}.{payload}.{}", b64(&mac))
}

/// Verifies an assertion at time `now`.
pub fn verify(secret: &[u8], token: &str, now: i64) -> Result<Assertion, AssertionError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(AssertionError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AssertionError::Malformed);
    };
    let header: Value = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(AssertionError::Malformed)?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(AssertionError::UnsupportedAlgorithm);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| AssertionError::Malformed)?;
    let expected = hmac_sha256(secret, &[h.as_bytes(), b".", p.as_bytes()]);
    if secret.is_empty() || !ct_eq(&expected, &signature) {
        return Err(AssertionError::BadSignature);
    }
    let claims: Value = URL_SAFE_NO_PAD
        .decode(p)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(AssertionError::Malformed)?;
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(AssertionError::MissingClaim("exp"))?;
    if exp <= now {
        return Err(AssertionError::Expired);
    }
    if exp - now > MAX_LIFETIME_SECS {
        return Err(AssertionError::TooLongLived);
    }
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64) {
        if nbf > now + 60 {
            return Err(AssertionError::NotYetValid);
        }
    }
    let text = |name: &'static str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or(AssertionError::MissingClaim(name))
    };
    Ok(Assertion {
        email: text("email")?,
        nonce: text("nonce")?,
        exp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"owner-assertion-secret";
    const NOW: i64 = 1_800_000_000;

    fn claims() -> Value {
        json!({"email": "dev@example.com", "nonce": "n1", "exp": NOW + 120})
    }

    #[test]
    fn round_trip() {
        let token = sign(SECRET, &claims());
        assert_eq!(
            verify(SECRET, &token, NOW),
            Ok(Assertion {
                email: "dev@example.com".into(),
                nonce: "n1".into(),
                exp: NOW + 120
            })
        );
    }

    #[test]
    fn accepts_a_token_made_by_pyjwt() {
        // python3 -c 'import jwt; print(jwt.encode({"email":"a@b.co","nonce":"x",
        //   "exp":1800000060}, "k", algorithm="HS256"))'
        let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJlbWFpbCI6ImFAYi5jbyIsIm5vbmNlIjoieCIsImV4cCI6MTgwMDAwMDA2MH0.eHAcLRGCRSYtK8ioak6DLGjo0nQfCzwmNH_0NqAsQC4";
        assert_eq!(
            verify(b"k", token, NOW),
            Ok(Assertion {
                email: "a@b.co".into(),
                nonce: "x".into(),
                exp: 1_800_000_060
            })
        );
    }

    #[test]
    fn refuses_bad_tokens() {
        let good = sign(SECRET, &claims());
        assert_eq!(
            verify(b"other", &good, NOW),
            Err(AssertionError::BadSignature)
        );
        assert_eq!(verify(b"", &good, NOW), Err(AssertionError::BadSignature));
        assert_eq!(
            verify(SECRET, &good, NOW + 120),
            Err(AssertionError::Expired)
        );
        assert_eq!(verify(SECRET, "a.b", NOW), Err(AssertionError::Malformed));
        assert_eq!(
            verify(SECRET, "a.b.c.d", NOW),
            Err(AssertionError::Malformed)
        );
        assert_eq!(
            verify(SECRET, &format!("{good}x"), NOW),
            Err(AssertionError::BadSignature)
        );

        let none_header = b64(br#"{"alg":"none"}"#);
        let payload = b64(claims().to_string().as_bytes());
        assert_eq!(
            verify(SECRET, &format!("{none_header}.{payload}."), NOW),
            Err(AssertionError::UnsupportedAlgorithm)
        );

        let long = sign(
            SECRET,
            &json!({"email": "a@b.co", "nonce": "n", "exp": NOW + 3600}),
        );
        assert_eq!(
            verify(SECRET, &long, NOW),
            Err(AssertionError::TooLongLived)
        );
        let no_nonce = sign(SECRET, &json!({"email": "a@b.co", "exp": NOW + 60}));
        assert_eq!(
            verify(SECRET, &no_nonce, NOW),
            Err(AssertionError::MissingClaim("nonce"))
        );
        let no_exp = sign(SECRET, &json!({"email": "a@b.co", "nonce": "n"}));
        assert_eq!(
            verify(SECRET, &no_exp, NOW),
            Err(AssertionError::MissingClaim("exp"))
        );
        let future = sign(
            SECRET,
            &json!({"email": "a@b.co", "nonce": "n", "exp": NOW + 60, "nbf": NOW + 3000}),
        );
        assert_eq!(
            verify(SECRET, &future, NOW),
            Err(AssertionError::NotYetValid)
        );
    }
}
