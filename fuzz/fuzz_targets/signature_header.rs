//! `Stripe-Signature` parsing and verification. Input: the header, a newline, the body.
#![no_main]

use domain::signature::{self, SignatureError, DEFAULT_TOLERANCE_SECS, MAX_HEADER_LEN, MAX_ITEMS};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_800_000_000;
const SECRET: &[u8] = b"whsec_fuzz_0000000000000000000000";
const ROTATION: [&[u8]; 3] = [b"whsec_old_1", b"whsec_old_2", SECRET];

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let header = String::from_utf8_lossy(head);

    let parsed = signature::parse_header(&header);
    if header.len() > MAX_HEADER_LEN {
        assert_eq!(parsed, Err(SignatureError::TooLong));
    }
    if let Ok(h) = &parsed {
        assert!(!h.v1.is_empty() && h.v1.len() <= MAX_ITEMS);
        assert!(h.timestamp >= 0);
    }
    for secrets in [&[SECRET][..], &ROTATION[..], &[][..]] {
        let verdict = signature::verify(Some(&header), body, secrets, NOW, DEFAULT_TOLERANCE_SECS);
        match (&parsed, verdict) {
            (Err(e), v) => assert_eq!(v, Err(*e)),
            (Ok(_), Err(SignatureError::NoSecretConfigured)) => assert!(secrets.is_empty()),
            (Ok(h), Ok(t)) => {
                assert_eq!(t, h.timestamp);
                assert!((t - NOW).abs() <= DEFAULT_TOLERANCE_SECS);
                assert!(secrets
                    .iter()
                    .any(|s| h.v1.contains(&signature::compute(s, t, body))));
            }
            (Ok(_), Err(_)) => {}
        }
    }

    // What we sign for this body verifies (any timestamp within the tolerance), even with the
    // fuzzed items appended when the result still parses; another body never verifies.
    let t = NOW - DEFAULT_TOLERANCE_SECS + (body.len() as i64 % (2 * DEFAULT_TOLERANCE_SECS + 1));
    let signed = signature::sign_header(SECRET, t, body);
    assert_eq!(
        signature::verify(Some(&signed), body, &ROTATION, NOW, DEFAULT_TOLERANCE_SECS),
        Ok(t)
    );
    let mut other = body.to_vec();
    other.push(b'x');
    assert_eq!(
        signature::verify(
            Some(&signed),
            &other,
            &ROTATION,
            NOW,
            DEFAULT_TOLERANCE_SECS
        ),
        Err(SignatureError::Mismatch)
    );
    let combined = format!("{signed},{header}");
    if signature::parse_header(&combined).is_ok() {
        assert_eq!(
            signature::verify(
                Some(&combined),
                body,
                &ROTATION,
                NOW,
                DEFAULT_TOLERANCE_SECS
            ),
            Ok(t)
        );
    }

    for secret in signature::split_secrets(&header) {
        assert!(!secret.is_empty());
        assert!(!secret.iter().any(|&c| c == b',' || c.is_ascii_whitespace()));
    }
});
