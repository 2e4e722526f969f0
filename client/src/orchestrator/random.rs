//! Randomness for account request ids and PKCE verifiers.

/// `n` random bytes as lowercase hex, from the operating system (`/dev/urandom`); where that is
/// missing, from std's randomly keyed hasher mixed with the time.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    let filled = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_ok();
    if !filled {
        use std::collections::hash_map::RandomState;
        use std::hash::{BuildHasher, Hasher};
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (i, chunk) in bytes.chunks_mut(8).enumerate() {
            let mut h = RandomState::new().build_hasher();
            h.write_u128(nanos);
            h.write_usize(i);
            h.write_u32(std::process::id());
            let word = h.finish().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
    domain::crypto::hex(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn randomness() {
        let a = random_hex(32);
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_hex(32));
        // A verifier made of it is a valid PKCE verifier.
        assert!(domain::pkce::valid_verifier(&a));
    }
}
