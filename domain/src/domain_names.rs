//! Domain names: turning a `domain_query` into candidate names, for the builtin registrar
//! (`<label>.<ROOT_ZONE>`) and for checking what an upstream registrar returns.

/// The DNS label a query asks for: lowercase ASCII letters, digits and inner hyphens, 1-63
/// characters. Spaces, dots and underscores become hyphens; anything else is refused.
pub fn label(query: &str) -> Result<String, &'static str> {
    let mut out = String::new();
    for c in query.trim().chars() {
        match c {
            'a'..='z' | '0'..='9' => out.push(c),
            'A'..='Z' => out.push(c.to_ascii_lowercase()),
            '-' | ' ' | '.' | '_' => {
                if !out.ends_with('-') && !out.is_empty() {
                    out.push('-')
                }
            }
            _ => return Err("domain_query may contain only letters, digits, spaces and hyphens"),
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        return Err("domain_query has no letters or digits");
    }
    if out.len() > 63 {
        return Err("domain_query is longer than a DNS label (63 characters)");
    }
    Ok(out)
}

/// True for a syntactically valid lowercase domain name (labels of a-z, 0-9, inner hyphens).
pub fn valid_domain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').count() >= 2
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        })
}

/// Names the builtin registrar offers for a label under `zone`, best first.
pub fn builtin_candidates(label: &str, zone: &str) -> Vec<String> {
    let mut names = vec![format!("{label}.{zone}")];
    for suffix in ["app", "hq"] {
        let l = format!("{label}-{suffix}");
        if l.len() <= 63 {
            names.push(format!("{l}.{zone}"));
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(label("Acme"), Ok("acme".into()));
        assert_eq!(label("  my cool_app.io "), Ok("my-cool-app-io".into()));
        assert_eq!(label("a--b"), Ok("a-b".into()));
        assert_eq!(label("-acme-"), Ok("acme".into()));
        assert!(label("").is_err());
        assert!(label("---").is_err());
        assert!(label("acmé").is_err());
        assert!(label("acme!").is_err());
        assert!(label(&"a".repeat(64)).is_err());
        assert_eq!(label(&"a".repeat(63)).unwrap().len(), 63);
    }

    #[test]
    fn candidates_and_validity() {
        let c = builtin_candidates("acme", "apps.example.dev");
        assert_eq!(
            c,
            [
                "acme.apps.example.dev",
                "acme-app.apps.example.dev",
                "acme-hq.apps.example.dev"
            ]
        );
        assert!(c.iter().all(|n| valid_domain(n)));
        assert_eq!(builtin_candidates(&"a".repeat(63), "z.dev").len(), 1);
        assert!(!valid_domain("acme"));
        assert!(!valid_domain("-a.dev"));
        assert!(!valid_domain("A.dev"));
    }
}
