//! The `Stripe-Signature` scheme (docs/PROTOCOL.md §1.1), used both for orchestrator calls and for
//! Stripe webhooks.
//!
//! Header: `t=<unix seconds>,v1=<hex>[,v1=<hex>...]`; other keys (`v0`, unknown) are ignored.
//! Signed payload: `"<t>." + raw body`. A request is accepted when ANY `v1` equals
//! HMAC-SHA256(secret, payload) for ANY configured secret (constant-time compare) and the
//! timestamp lies within `tolerance` seconds of now, in the past (Stripe's rule) or in the
//! future (our extension: Stripe's libraries accept any future timestamp).
//!
//! Invariants: the header is parsed strictly (one `t`, digits only; every `v1` exactly 64 hex
//! characters; bounded length and item count) and the error never says which secret or which
//! signature came close.

use crate::crypto::{ct_eq, hex, hmac_sha256, unhex};

/// Default tolerance, in seconds, for both past and future timestamps.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;
/// Longest header we parse. Stripe's headers are under 200 bytes even with two signatures.
pub const MAX_HEADER_LEN: usize = 2048;
/// Most comma-separated items we accept in one header.
pub const MAX_ITEMS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// No header at all.
    Missing,
    /// Header longer than [`MAX_HEADER_LEN`] or with more than [`MAX_ITEMS`] items.
    TooLong,
    /// Not `key=value` items, a duplicate or non-numeric `t`, or a `v1` that is not 64 hex chars.
    Malformed,
    /// No `t=` item.
    NoTimestamp,
    /// No `v1=` item.
    NoSignature,
    /// No `v1` matches any configured secret.
    Mismatch,
    /// Valid signature, but `t` is more than the tolerance in the past.
    Expired,
    /// Valid signature, but `t` is more than the tolerance in the future.
    FromTheFuture,
    /// The provider has no secret configured: nothing can be verified.
    NoSecretConfigured,
}

impl SignatureError {
    /// A short reason, safe to return to the caller: it names no secret and no signature.
    pub fn reason(self) -> &'static str {
        match self {
            SignatureError::Missing => "the Stripe-Signature header is missing",
            SignatureError::TooLong => "the Stripe-Signature header is too long",
            SignatureError::Malformed => "the Stripe-Signature header is malformed",
            SignatureError::NoTimestamp => "the Stripe-Signature header has no t= timestamp",
            SignatureError::NoSignature => "the Stripe-Signature header has no v1= signature",
            SignatureError::Mismatch => "no v1 signature matches the request body",
            SignatureError::Expired => "the signature timestamp is older than the tolerance",
            SignatureError::FromTheFuture => {
                "the signature timestamp is further in the future than the tolerance"
            }
            SignatureError::NoSecretConfigured => "the provider has no signing secret configured",
        }
    }
}

/// A parsed header: the timestamp and every `v1` signature in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    pub timestamp: i64,
    pub v1: Vec<[u8; 32]>,
}

/// Parses a `Stripe-Signature` header value strictly.
pub fn parse_header(header: &str) -> Result<SignatureHeader, SignatureError> {
    if header.len() > MAX_HEADER_LEN {
        return Err(SignatureError::TooLong);
    }
    let header = header.trim();
    if header.is_empty() {
        return Err(SignatureError::Missing);
    }
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for (n, item) in header.split(',').enumerate() {
        if n >= MAX_ITEMS {
            return Err(SignatureError::TooLong);
        }
        let (key, value) = item
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match key {
            "t" => {
                if timestamp.is_some() {
                    return Err(SignatureError::Malformed);
                }
                timestamp = Some(parse_timestamp(value)?);
            }
            "v1" => v1.push(unhex::<32>(value).ok_or(SignatureError::Malformed)?),
            "" => return Err(SignatureError::Malformed),
            // v0 and schemes we do not know are ignored, as Stripe's libraries do.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::NoTimestamp)?;
    if v1.is_empty() {
        return Err(SignatureError::NoSignature);
    }
    Ok(SignatureHeader { timestamp, v1 })
}

fn parse_timestamp(value: &str) -> Result<i64, SignatureError> {
    // Digits only (no sign, no spaces); 12 digits reach past the year 33000.
    if value.is_empty() || value.len() > 12 || !value.bytes().all(|c| c.is_ascii_digit()) {
        return Err(SignatureError::Malformed);
    }
    value.parse().map_err(|_| SignatureError::Malformed)
}

/// The expected `v1` signature for `body` signed at `timestamp` with `secret`.
pub fn compute(secret: &[u8], timestamp: i64, body: &[u8]) -> [u8; 32] {
    let t = timestamp.to_string();
    hmac_sha256(secret, &[t.as_bytes(), b".", body])
}

/// A header value as the orchestrator (or Stripe) would send it.
pub fn sign_header(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex(&compute(secret, timestamp, body))
    )
}

/// Verifies `header` for `body` against every secret in `secrets` at time `now`.
/// Returns the header's timestamp when it is accepted.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[&[u8]],
    now: i64,
    tolerance: i64,
) -> Result<i64, SignatureError> {
    let header = parse_header(header.ok_or(SignatureError::Missing)?)?;
    if secrets.is_empty() {
        return Err(SignatureError::NoSecretConfigured);
    }
    let mut matched = false;
    for secret in secrets {
        let expected = compute(secret, header.timestamp, body);
        for candidate in &header.v1 {
            // No early exit: every pair is compared, so timing says nothing about which matched.
            matched |= ct_eq(&expected, candidate);
        }
    }
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    // Time is checked after the signature, so an unsigned caller learns nothing about our clock.
    if now - header.timestamp > tolerance {
        return Err(SignatureError::Expired);
    }
    if header.timestamp - now > tolerance {
        return Err(SignatureError::FromTheFuture);
    }
    Ok(header.timestamp)
}

/// Splits a configured secret list (comma- or whitespace-separated, as stored in one
/// environment secret) into its non-empty entries.
pub fn split_secrets(list: &str) -> Vec<&[u8]> {
    list.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::as_bytes)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const SECRET: &[u8] = b"whsec_test_secret";
    const OTHER: &[u8] = b"whsec_other_secret";
    const BODY: &[u8] = br#"{"id":"acctreq_123"}"#;

    fn check(header: &str, body: &[u8], secrets: &[&[u8]]) -> Result<i64, SignatureError> {
        verify(Some(header), body, secrets, NOW, DEFAULT_TOLERANCE_SECS)
    }

    #[test]
    fn accepts_a_valid_signature() {
        let header = sign_header(SECRET, NOW, BODY);
        assert_eq!(check(&header, BODY, &[SECRET]), Ok(NOW));
    }

    #[test]
    fn matches_an_independent_computation() {
        // printf '%s' '1800000000.{"id":"acctreq_123"}' | openssl dgst -sha256 -hmac whsec_test_secret
        assert_eq!(
            sign_header(SECRET, NOW, BODY),
            "t=1800000000,v1=fa194a7b8858d7cd311b24dc802998c081299e0bc957f4dc55957c07bc625fa5"
        );
    }

    #[test]
    fn accepts_when_any_of_several_v1_matches() {
        let good = hex(&compute(SECRET, NOW, BODY));
        let bad = hex(&compute(OTHER, NOW, BODY));
        let header = format!("t={NOW},v1={bad},v1={good}");
        assert_eq!(check(&header, BODY, &[SECRET]), Ok(NOW));
        let header = format!("t={NOW},v1={good},v1={bad}");
        assert_eq!(check(&header, BODY, &[SECRET]), Ok(NOW));
    }

    #[test]
    fn accepts_a_rotated_secret() {
        // During rotation both secrets are configured; a request signed with either passes.
        let old = sign_header(OTHER, NOW, BODY);
        let new = sign_header(SECRET, NOW, BODY);
        assert_eq!(check(&old, BODY, &[SECRET, OTHER]), Ok(NOW));
        assert_eq!(check(&new, BODY, &[SECRET, OTHER]), Ok(NOW));
        // After rotation the old secret is gone.
        assert_eq!(check(&old, BODY, &[SECRET]), Err(SignatureError::Mismatch));
    }

    #[test]
    fn refuses_a_tampered_body() {
        let header = sign_header(SECRET, NOW, BODY);
        assert_eq!(
            check(&header, br#"{"id":"acctreq_124"}"#, &[SECRET]),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(&header, b"", &[SECRET]),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn refuses_a_wrong_secret() {
        let header = sign_header(OTHER, NOW, BODY);
        assert_eq!(
            check(&header, BODY, &[SECRET]),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn refuses_a_tampered_timestamp() {
        let sig = hex(&compute(SECRET, NOW, BODY));
        let header = format!("t={},v1={sig}", NOW - 1);
        assert_eq!(
            check(&header, BODY, &[SECRET]),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn tolerance_bounds_are_inclusive() {
        let at = |t: i64| check(&sign_header(SECRET, t, BODY), BODY, &[SECRET]);
        assert_eq!(at(NOW - 300), Ok(NOW - 300));
        assert_eq!(at(NOW - 301), Err(SignatureError::Expired));
        assert_eq!(at(NOW + 300), Ok(NOW + 300));
        assert_eq!(at(NOW + 301), Err(SignatureError::FromTheFuture));
        assert_eq!(at(0), Err(SignatureError::Expired));
    }

    #[test]
    fn stale_timestamp_with_a_bad_signature_reports_the_signature() {
        let header = sign_header(OTHER, NOW - 10_000, BODY);
        assert_eq!(
            check(&header, BODY, &[SECRET]),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn empty_body_for_get() {
        let header = sign_header(SECRET, NOW, b"");
        assert_eq!(check(&header, b"", &[SECRET]), Ok(NOW));
        assert_eq!(
            check(&header, b"x", &[SECRET]),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn missing_header() {
        assert_eq!(
            verify(None, BODY, &[SECRET], NOW, 300),
            Err(SignatureError::Missing)
        );
        assert_eq!(check("", BODY, &[SECRET]), Err(SignatureError::Missing));
        assert_eq!(check("   ", BODY, &[SECRET]), Err(SignatureError::Missing));
    }

    #[test]
    fn malformed_headers() {
        let sig = hex(&compute(SECRET, NOW, BODY));
        let cases: Vec<(String, SignatureError)> = vec![
            (format!("v1={sig}"), SignatureError::NoTimestamp),
            (format!("t={NOW}"), SignatureError::NoSignature),
            (format!("t={NOW},v0={sig}"), SignatureError::NoSignature),
            (format!("t={NOW},v1=xyz"), SignatureError::Malformed),
            (
                format!("t={NOW},v1={}", &sig[..62]),
                SignatureError::Malformed,
            ),
            (
                format!("t={NOW},v1={}zz", &sig[..62]),
                SignatureError::Malformed,
            ),
            (
                format!("t={NOW},t={NOW},v1={sig}"),
                SignatureError::Malformed,
            ),
            (format!("t=-{NOW},v1={sig}"), SignatureError::Malformed),
            (format!("t=1e9,v1={sig}"), SignatureError::Malformed),
            (format!("t=,v1={sig}"), SignatureError::Malformed),
            (
                format!("t=9999999999999,v1={sig}"),
                SignatureError::Malformed,
            ),
            (format!("t={NOW};v1={sig}"), SignatureError::Malformed),
            (format!("t={NOW},{sig}"), SignatureError::Malformed),
            (format!("t={NOW},={sig}"), SignatureError::Malformed),
            ("garbage".to_string(), SignatureError::Malformed),
        ];
        for (header, expected) in cases {
            assert_eq!(check(&header, BODY, &[SECRET]), Err(expected), "{header}");
        }
    }

    #[test]
    fn ignores_other_schemes_and_unknown_keys() {
        let sig = hex(&compute(SECRET, NOW, BODY));
        let header = format!("t={NOW},v0=abc,scheme=x,v1={sig}");
        assert_eq!(check(&header, BODY, &[SECRET]), Ok(NOW));
    }

    #[test]
    fn uppercase_hex_is_accepted() {
        let sig = hex(&compute(SECRET, NOW, BODY)).to_uppercase();
        assert_eq!(
            check(&format!("t={NOW},v1={sig}"), BODY, &[SECRET]),
            Ok(NOW)
        );
    }

    #[test]
    fn huge_headers_are_refused_before_any_work() {
        let sig = hex(&compute(SECRET, NOW, BODY));
        let long = format!("t={NOW},v1={sig},x={}", "a".repeat(MAX_HEADER_LEN));
        assert_eq!(check(&long, BODY, &[SECRET]), Err(SignatureError::TooLong));
        let many = format!("t={NOW},v1={sig}{}", ",v0=1".repeat(MAX_ITEMS));
        assert_eq!(check(&many, BODY, &[SECRET]), Err(SignatureError::TooLong));
    }

    #[test]
    fn no_secret_configured_refuses_everything() {
        let header = sign_header(SECRET, NOW, BODY);
        assert_eq!(
            check(&header, BODY, &[]),
            Err(SignatureError::NoSecretConfigured)
        );
    }

    #[test]
    fn secret_lists_split_on_commas_and_whitespace() {
        assert_eq!(
            split_secrets(" a, b\nc ,,"),
            vec![b"a".as_slice(), b"b".as_slice(), b"c".as_slice()]
        );
        assert!(split_secrets("").is_empty());
    }
}
