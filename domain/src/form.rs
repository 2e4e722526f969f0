//! `application/x-www-form-urlencoded` bodies (the OAuth endpoints and HTML forms).
//!
//! Strict on purpose: RFC 6749 §3.1 forbids repeating a parameter, so a repeated name is an
//! error rather than "last wins"; invalid percent-escapes and non-UTF-8 are errors too.

/// Most fields accepted in one form.
pub const MAX_FIELDS: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    /// Decodes a form body.
    pub fn parse(body: &[u8]) -> Result<Form, String> {
        let text =
            std::str::from_utf8(body).map_err(|_| "the form body is not UTF-8".to_string())?;
        let mut fields: Vec<(String, String)> = Vec::new();
        if text.is_empty() {
            return Ok(Form { fields });
        }
        for pair in text.split('&') {
            if pair.is_empty() {
                continue;
            }
            if fields.len() >= MAX_FIELDS {
                return Err(format!("the form has more than {MAX_FIELDS} fields"));
            }
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = decode(k)?;
            let v = decode(v)?;
            if fields.iter().any(|(name, _)| *name == k) {
                return Err(format!("the parameter {k:?} is repeated"));
            }
            fields.push((k, v));
        }
        Ok(Form { fields })
    }

    /// The value of `name`, when present and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

fn decode(s: &str) -> Result<String, String> {
    percent_decode(s).map_err(|e| match e {
        PercentError::BadEscape => "the form has an invalid %-escape".to_string(),
        PercentError::NotUtf8 => "the form has a value that is not UTF-8".to_string(),
    })
}

/// Why [`percent_decode`] refused a piece of form text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PercentError {
    /// A `%` not followed by exactly two hex digits.
    BadEscape,
    /// The decoded bytes are not UTF-8.
    NotUtf8,
}

/// Decodes one key or value of `application/x-www-form-urlencoded` text (`+` is a space),
/// strictly: a bad `%`-escape is an error (before the UTF-8 check), and so is non-UTF-8. The one
/// decoder of the workspace: this crate's forms, the Stripe stand-in and, through
/// [`percent_decode_lossy`], the client.
pub fn percent_decode(s: &str) -> Result<String, PercentError> {
    let (bytes, bad_escape) = unescape(s);
    if bad_escape {
        return Err(PercentError::BadEscape);
    }
    String::from_utf8(bytes).map_err(|_| PercentError::NotUtf8)
}

/// [`percent_decode`] for text we only read (the client's callback query): a bad `%`-escape is
/// kept as it is and non-UTF-8 is replaced with U+FFFD, never an error.
pub fn percent_decode_lossy(s: &str) -> String {
    String::from_utf8_lossy(&unescape(s).0).into_owned()
}

/// `s` with `+` as a space and `%XX` resolved; a `%` not followed by two hex digits stays a
/// literal `%`, and the flag says whether one was seen.
fn unescape(s: &str) -> (Vec<u8>, bool) {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut bad_escape = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                // Two hex digits exactly: `from_str_radix` alone would also take "+f" as 0x0f.
                let hex = b
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => {
                        bad_escape = true;
                        out.push(b'%');
                    }
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    (out, bad_escape)
}

/// Encodes fields as a form body (used for redirects' query strings too).
pub fn encode(fields: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        escape_into(&mut out, k);
        out.push('=');
        escape_into(&mut out, v);
    }
    out
}

fn escape_into(out: &mut String, s: &str) {
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_fields() {
        let f = Form::parse(b"grant_type=authorization_code&code=a%2Bb+c&empty=&flag").unwrap();
        assert_eq!(f.get("grant_type"), Some("authorization_code"));
        assert_eq!(f.get("code"), Some("a+b c"));
        assert_eq!(f.get("empty"), None);
        assert_eq!(f.get("flag"), None);
        assert_eq!(f.get("missing"), None);
        assert_eq!(Form::parse(b"").unwrap().get("x"), None);
        assert_eq!(Form::parse(b"a=%C3%A9").unwrap().get("a"), Some("é"));
    }

    #[test]
    fn refuses_repeats_bad_escapes_and_floods() {
        assert!(Form::parse(b"code=a&code=b")
            .unwrap_err()
            .contains("repeated"));
        assert!(Form::parse(b"a=%zz").is_err());
        assert!(Form::parse(b"a=%4").is_err());
        assert!(Form::parse(b"a=%ff").is_err());
        assert!(Form::parse(&[b'a', b'=', 0xff]).is_err());
        // Found by fuzzing: a sign is not a hex digit ("%+0" was read as "\0").
        assert!(Form::parse(b"a=%+0").is_err());
        assert!(Form::parse(b"a=%+f&b=1").is_err());
        assert!(Form::parse(b"a=%-1").is_err());
        let many: Vec<String> = (0..40).map(|i| format!("k{i}=v")).collect();
        assert!(Form::parse(many.join("&").as_bytes()).is_err());
    }

    #[test]
    fn percent_decoders_strict_and_lossy() {
        // `+` is a space in both; `%2B` is a plus.
        assert_eq!(percent_decode("a+b%2Bc").as_deref(), Ok("a b+c"));
        assert_eq!(percent_decode_lossy("a+b%2Bc"), "a b+c");
        assert_eq!(percent_decode("%C3%A9").as_deref(), Ok("é"));
        assert_eq!(percent_decode_lossy("%c3%a9"), "é");
        // Not two hex digits: refused, or kept as written.
        for bad in ["%zz", "%4", "a%", "%+f", "%-1", "%4g"] {
            assert_eq!(percent_decode(bad), Err(PercentError::BadEscape), "{bad}");
            assert_eq!(percent_decode_lossy(bad), bad.replace('+', " "), "{bad}");
        }
        assert_eq!(percent_decode_lossy("%zz%41%4"), "%zzA%4");
        // Non-UTF-8 once decoded: refused, or replaced; a bad escape is reported first.
        assert_eq!(percent_decode("%ff"), Err(PercentError::NotUtf8));
        assert_eq!(percent_decode("%C3"), Err(PercentError::NotUtf8));
        assert_eq!(percent_decode("%ff%zz"), Err(PercentError::BadEscape));
        assert_eq!(percent_decode_lossy("a%ffb"), "a\u{FFFD}b");
    }

    #[test]
    fn encodes_round_trip() {
        let text = encode(&[("state", "acctreq 1/é"), ("code", "pvac_x")]);
        assert_eq!(text, "state=acctreq%201%2F%C3%A9&code=pvac_x");
        let f = Form::parse(text.as_bytes()).unwrap();
        assert_eq!(f.get("state"), Some("acctreq 1/é"));
    }
}
