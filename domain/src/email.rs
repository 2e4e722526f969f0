//! Email syntax and normalisation for account identity.
//!
//! Accounts are keyed by the normalised email (trimmed, lowercased), so `Dev@Example.com` and
//! `dev@example.com` are the same person. The syntax accepted is the common, deliverable subset
//! of RFC 5321: ASCII only (internationalised addresses are refused), one `@`, a dot-atom local
//! part of at most 64 characters, and a domain of DNS labels with a non-numeric TLD.

const MAX_LEN: usize = 254;

fn atext(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&c)
}

/// The normalised form of `raw`, or why it is not an acceptable address.
pub fn normalize(raw: &str) -> Result<String, &'static str> {
    let email = raw.trim().to_ascii_lowercase();
    if email.is_empty() {
        return Err("email is empty");
    }
    if email.len() > MAX_LEN {
        return Err("email is longer than 254 characters");
    }
    if !email.is_ascii() {
        return Err("email must be ASCII");
    }
    let (local, domain) = email.split_once('@').ok_or("email has no @")?;
    if domain.contains('@') {
        return Err("email has more than one @");
    }
    if local.is_empty() || local.len() > 64 {
        return Err("the part before @ must be 1-64 characters");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("the part before @ has a misplaced dot");
    }
    if !local.bytes().all(|c| c == b'.' || atext(c)) {
        return Err("the part before @ has a character that is not allowed");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err("the domain needs a dot, e.g. example.com");
    }
    for label in &labels {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-');
        if !ok {
            return Err("the domain is not a valid host name");
        }
    }
    let tld = labels[labels.len() - 1];
    if tld.len() < 2 || tld.bytes().all(|c| c.is_ascii_digit()) {
        return Err("the domain's last label is not a valid top-level domain");
    }
    Ok(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_space() {
        assert_eq!(
            normalize("  Dev@Example.COM "),
            Ok("dev@example.com".into())
        );
        assert_eq!(
            normalize("a.b+tag@sub.example.co"),
            Ok("a.b+tag@sub.example.co".into())
        );
    }

    #[test]
    fn refuses_bad_addresses() {
        for bad in [
            "",
            "dev",
            "dev@",
            "@example.com",
            "dev@example",
            "dev@@example.com",
            "de v@example.com",
            ".dev@example.com",
            "dev.@example.com",
            "d..ev@example.com",
            "dev@-example.com",
            "dev@example-.com",
            "dev@example..com",
            "dev@example.c",
            "dev@1.2.3.4",
            "dév@example.com",
            "dev@exämple.com",
            "dev@example.com\n",
            "\"quoted\"@example.com",
        ] {
            // A trailing newline is trimmed like other space, so it is accepted.
            if bad == "dev@example.com\n" {
                assert!(normalize(bad).is_ok());
                continue;
            }
            assert!(normalize(bad).is_err(), "{bad:?}");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(normalize(&long_local).is_err());
        let long = format!("a@{}.com", "b".repeat(250));
        assert!(normalize(&long).is_err());
    }
}
