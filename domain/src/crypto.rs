//! Small cryptographic and encoding helpers shared by every module.
//!
//! Invariant: secrets are compared only with [`ct_eq`], which takes the same time for every
//! pair of equal-length inputs whatever their contents, or, when the lengths themselves are
//! secret (a configured bearer secret), with [`secret_eq`].

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 of `parts` concatenated, keyed by `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&sha256(data))
}

/// Constant-time equality: the time taken depends only on the lengths.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    // black_box keeps the optimiser from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

/// Compares a presented secret with the configured one without leaking either's length: both
/// sides are first reduced to HMAC-SHA256 digests (32 bytes whatever the input), which are then
/// compared in constant time. [`ct_eq`] alone returns at once on a length mismatch, so its
/// timing tells an attacker how long the secret is. An empty configured secret matches nothing.
pub fn secret_eq(presented: &[u8], secret: &[u8]) -> bool {
    // A fixed key is enough: the MAC only hides lengths and contents from the timing, it is
    // not an authenticator.
    const KEY: &[u8] = b"app-provider secret comparison";
    let a = hmac_sha256(KEY, &[presented]);
    let b = hmac_sha256(KEY, &[secret]);
    // Both comparisons always run (`&` rather than `&&`).
    !secret.is_empty() & ct_eq(&a, &b)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex encoding.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 0xf) as usize] as char);
    }
    out
}

/// Decodes hex (either case) into exactly `N` bytes; `None` for any other length or character.
pub fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Lowercase RFC 4648 base32 without padding. Its alphabet has no `_`, so identifiers built
/// from it can be joined with `_` and split again unambiguously.
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// True when every character of `s` belongs to the alphabet of [`base32`].
pub fn is_base32(s: &str) -> bool {
    s.bytes()
        .all(|c| c.is_ascii_lowercase() || (b'2'..=b'7').contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_eq_matches_only_the_secret() {
        let secret = b"op_secret_0123456789";
        assert!(secret_eq(secret, secret));
        // Other contents, same length; a prefix; a longer value; nothing at all.
        assert!(!secret_eq(b"op_secret_0123456788", secret));
        assert!(!secret_eq(b"op_secret_", secret));
        assert!(!secret_eq(b"op_secret_0123456789x", secret));
        assert!(!secret_eq(b"", secret));
        // An empty configured secret is "not configured", never "anything goes".
        assert!(!secret_eq(b"", b""));
        assert!(!secret_eq(b"x", b""));
    }

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn sha256_of_abc() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn ct_eq_compares_contents_and_lengths() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn hex_round_trips_and_rejects_bad_input() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(hex(&bytes), "0001abff");
        assert_eq!(unhex::<4>("0001ABff"), Some(bytes));
        assert_eq!(unhex::<4>("0001abf"), None);
        assert_eq!(unhex::<4>("0001abfg"), None);
    }

    #[test]
    fn base32_matches_rfc4648_vectors() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "my");
        assert_eq!(base32(b"fo"), "mzxq");
        assert_eq!(base32(b"foo"), "mzxw6");
        assert_eq!(base32(b"foobar"), "mzxw6ytboi");
        assert!(is_base32("mzxw6ytboi"));
        assert!(!is_base32("mzx_w6"));
    }
}
