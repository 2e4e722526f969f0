//! JSON Schema `pattern`: an ECMA-262 regular expression, searched for (not anchored) in a
//! string, run on `regex-lite`.
//!
//! `regex-lite` is small and matches in O(pattern × input) time (no backtracking), so no
//! request can make a pattern blow up; but its syntax is Rust's, not ECMA-262's. [`compile`]
//! therefore translates the ECMA-262 pattern and refuses every construct whose meaning would
//! differ or that it does not translate, so a pattern it accepts matches what ECMA-262 (with
//! the `u` flag: by code point) matches:
//!
//! - `.` is "any character but a line terminator" (`\n`, `\r`, U+2028, U+2029) and `\s` is
//!   ECMA-262's white space and line terminators (Rust's are narrower); `\d`, `\w`, `\b` are
//!   ASCII in both;
//! - `\xHH`, `\uHHHH`, `\n \r \t \f \v`, `[\b]` (backspace) and escaped syntax characters
//!   are translated; any other escape (`\A`, `\z`, `\<`, `\p{..}`, back references, `\c`) is
//!   refused, as are lookaround, named groups, flags, `[]`, `[^]`, and a `{` or `}` that is
//!   not a quantifier (ECMA-262 Annex B reads those as literals; write `\{`);
//! - inside a class, `[`, `&` and `~` are literals in ECMA-262 (Rust reads nested classes
//!   and set operations): they are escaped, and `--` is refused.
//!
//! Bounds: [`MAX_PATTERN_CHARS`] characters, and the compiled program at most
//! [`SIZE_LIMIT`] bytes (counted repetitions such as `a{1000}{1000}` expand).

use regex_lite::{Regex, RegexBuilder};

/// Longest pattern accepted, in characters.
pub const MAX_PATTERN_CHARS: usize = 256;

/// Largest compiled program, in bytes (regex-lite's own default is 10 MiB).
pub const SIZE_LIMIT: usize = 1 << 16;

/// ECMA-262 `WhiteSpace` and `LineTerminator`: what `\s` means there.
const SPACES: &str = r"\t\n\x0B\x0C\r \x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}\x{FEFF}";

/// The ECMA-262 syntax characters, which may be escaped to stand for themselves.
const SYNTAX: &str = r"^$\.*+?()[]{}|/-";

/// Compiles an ECMA-262 pattern, or says why it is refused.
pub fn compile(pattern: &str) -> Result<Regex, String> {
    if pattern.chars().count() > MAX_PATTERN_CHARS {
        return Err(format!(
            "pattern is longer than {MAX_PATTERN_CHARS} characters"
        ));
    }
    let rust = translate(pattern)?;
    RegexBuilder::new(&rust)
        .size_limit(SIZE_LIMIT)
        .build()
        .map_err(|e| {
            let reason = e.to_string();
            let reason = reason.lines().last().unwrap_or("").trim().to_string();
            format!("pattern is not supported: {reason}")
        })
}

fn hex(chars: &[char], at: usize, n: usize) -> Option<u32> {
    let digits: String = chars.get(at..at + n)?.iter().collect();
    if digits.len() != n || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(&digits, 16).ok()
}

/// An escape `\c...` at `chars[i]` (the char after the backslash): the Rust text and how many
/// chars it used. `in_class`: inside `[...]`.
fn escape(chars: &[char], i: usize, in_class: bool) -> Result<(String, usize), String> {
    let c = chars[i];
    Ok(match c {
        'd' | 'D' | 'w' | 'W' => (format!("\\{c}"), 1),
        'b' | 'B' if !in_class => {
            if chars.get(i + 1) == Some(&'{') {
                return Err(format!("\\{c} cannot be followed by {{"));
            }
            (format!("\\{c}"), 1)
        }
        // In a class, ECMA-262's \b is a backspace.
        'b' => ("\\x{08}".into(), 1),
        's' if in_class => (SPACES.into(), 1),
        's' => (format!("[{SPACES}]"), 1),
        'S' if !in_class => (format!("[^{SPACES}]"), 1),
        'n' | 'r' | 't' | 'f' | 'v' => (format!("\\{c}"), 1),
        'x' => match hex(chars, i + 1, 2) {
            Some(v) => (format!("\\x{{{v:X}}}"), 3),
            None => return Err("\\x needs exactly two hex digits".into()),
        },
        'u' => match hex(chars, i + 1, 4) {
            Some(v) => (format!("\\x{{{v:X}}}"), 5),
            None => return Err("\\u needs exactly four hex digits".into()),
        },
        c if SYNTAX.contains(c) => (format!("\\{c}"), 1),
        c => return Err(format!("the escape \\{c} is not supported")),
    })
}

/// A quantifier `{n}`, `{n,}` or `{n,m}` starting at `chars[i] == '{'`: its length.
fn quantifier(chars: &[char], i: usize) -> Option<usize> {
    let end = chars[i..].iter().position(|&c| c == '}')? + i;
    let body: String = chars[i + 1..end].iter().collect();
    let (lo, hi) = match body.split_once(',') {
        Some((lo, hi)) => (lo, Some(hi)),
        None => (body.as_str(), None),
    };
    let number = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    (number(lo) && hi.is_none_or(|h| h.is_empty() || number(h))).then_some(end - i + 1)
}

/// The Rust syntax for an ECMA-262 pattern, or why it cannot be translated.
fn translate(pattern: &str) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 16);
    // ECMA-262 quantifies only an atom (Rust also takes `a**` or `^*`): what came last.
    let mut quantifiable = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let assertion = c == '\\' && matches!(chars.get(i + 1), Some('b' | 'B'));
        let atom = !(assertion || matches!(c, '^' | '$' | '|' | '(' | '*' | '+' | '?' | '{'));
        if matches!(c, '*' | '+' | '?' | '{') {
            if !quantifiable {
                return Err(format!("{c} quantifies nothing"));
            }
            quantifiable = false;
        }
        match c {
            '*' | '+' | '?' if chars.get(i + 1) == Some(&'?') => {
                // A lazy quantifier.
                out.push(c);
                out.push('?');
                i += 2;
                continue;
            }
            '\\' => {
                quantifiable = atom;
                if i + 1 >= chars.len() {
                    return Err("pattern ends with a lone \\".into());
                }
                let (text, used) = escape(&chars, i + 1, false)?;
                out.push_str(&text);
                i += 1 + used;
                continue;
            }
            '.' => out.push_str(r"[^\n\r\x{2028}\x{2029}]"),
            '(' => {
                if chars.get(i + 1) == Some(&'?') {
                    if chars.get(i + 2) != Some(&':') {
                        return Err(
                            "only (?: groups are supported (no lookaround, named groups or flags)"
                                .into(),
                        );
                    }
                    out.push_str("(?:");
                    quantifiable = false;
                    i += 3;
                    continue;
                }
                out.push('(');
            }
            '{' => match quantifier(&chars, i) {
                Some(n) => {
                    out.extend(&chars[i..i + n]);
                    i += n;
                    if chars.get(i) == Some(&'?') {
                        out.push('?');
                        i += 1;
                    }
                    continue;
                }
                None => return Err("{ that is not a quantifier; write \\{ for a brace".into()),
            },
            '}' => return Err("} that ends no quantifier; write \\} for a brace".into()),
            ']' => out.push_str(r"\]"),
            '[' => {
                quantifiable = true;
                i = class(&chars, i, &mut out)?;
                continue;
            }
            c => out.push(c),
        }
        quantifiable = atom;
        i += 1;
    }
    Ok(out)
}

/// Translates the class starting at `chars[start] == '['`; returns the index after its `]`.
fn class(chars: &[char], start: usize, out: &mut String) -> Result<usize, String> {
    let mut i = start + 1;
    out.push('[');
    if chars.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    if chars.get(i) == Some(&']') {
        return Err("[] and [^] are not supported".into());
    }
    while i < chars.len() {
        let c = chars[i];
        match c {
            ']' => {
                out.push(']');
                return Ok(i + 1);
            }
            '\\' => {
                if i + 1 >= chars.len() {
                    break;
                }
                let (text, used) = escape(chars, i + 1, true)?;
                out.push_str(&text);
                i += 1 + used;
                continue;
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                return Err("-- in a class is not supported; escape one as \\-".into())
            }
            '[' | '&' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
        i += 1;
    }
    Err("a [ class is not closed".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, text: &str) -> bool {
        compile(pattern)
            .unwrap_or_else(|e| panic!("{pattern}: {e}"))
            .is_match(text)
    }

    #[test]
    fn the_real_catalogs_patterns_mean_what_ecma_262_says() {
        let host = r"^([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?\.)+[a-zA-Z]{2,}$";
        assert!(matches(host, "api.example.com"));
        assert!(!matches(host, "example"));
        assert!(!matches(host, "-x.example.com"));
        assert!(matches("^https://", "https://x.test"));
        assert!(!matches("^https://", "http://x.test"));
        assert!(matches("^[a-z][a-z0-9-]{2,62}$", "my-app"));
        assert!(!matches("^[a-z][a-z0-9-]{2,62}$", "My-app"));
    }

    #[test]
    fn a_pattern_is_a_search_not_a_full_match() {
        assert!(matches(r"\d", "abc1def"));
        assert!(!matches(r"^\d+$", "abc1def"));
        assert!(matches("", "anything"));
    }

    #[test]
    fn classes_and_dots_follow_ecma_262() {
        // \d and \w are ASCII in ECMA-262.
        assert!(!matches(r"\d", "٣"));
        assert!(!matches(r"\w", "é"));
        // \s includes the no-break space; . excludes \r and U+2028.
        assert!(matches(r"^\s$", "\u{a0}"));
        assert!(matches(r"^[\s]$", "\u{feff}"));
        assert!(!matches(r"^\S$", "\u{3000}"));
        assert!(!matches("^.$", "\r"));
        assert!(!matches("^.$", "\u{2028}"));
        assert!(matches("^.$", "é"));
        // Literals in ECMA-262 classes, set operations or nesting in Rust's.
        assert!(matches("^[a&&b]+$", "a&&b"));
        assert!(matches("^[[a]$", "["));
        assert!(matches("^[~]$", "~"));
        assert!(matches(r"^[\b]$", "\u{8}"));
        assert!(matches(r"^\x41\u0042$", "AB"));
        assert!(matches(r"^a\/b\-c\.$", "a/b-c."));
        assert!(matches("^]$", "]"));
        assert!(matches("^a{2,}$", "aaa"));
        assert!(matches("^(?:ab)+?c*?[x]{1,2}?$", "ababx"));
    }

    #[test]
    fn refuses_what_would_mean_something_else() {
        for p in [
            r"\A",
            r"\z",
            r"\<",
            r"\p{L}",
            r"\1",
            r"\cA",
            r"\x4",
            r"\u41",
            r"\x{41}",
            r"\u{41}",
            "(?=a)",
            "(?<n>a)",
            "(?i)a",
            "a{,3}",
            "a{",
            "}",
            "[]",
            "[^]",
            "[a--b]",
            "[a",
            r"\",
            r"\b{start}",
            r"[\B]",
            r"[\S]",
            "(a",
            "a**",
            "a{2}*",
            "^*",
            "(*a)",
            "a|*",
            r"\b+",
        ] {
            assert!(compile(p).is_err(), "{p} should be refused");
        }
    }

    #[test]
    fn bounds_patterns_and_stays_linear() {
        assert!(compile(&"a".repeat(MAX_PATTERN_CHARS)).is_ok());
        assert!(compile(&"a".repeat(MAX_PATTERN_CHARS + 1)).is_err());
        assert!(compile("a{1000}{1000}").is_err(), "expands past SIZE_LIMIT");
        // Catastrophic for a backtracking engine; linear here.
        let re = compile("^(a+)+$").unwrap();
        assert!(!re.is_match(&format!("{}b", "a".repeat(100_000))));
    }
}
