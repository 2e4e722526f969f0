//! Tokens of Rust source for the layout check: identifiers and punctuation with line numbers,
//! without comments, literals and top-level `#[cfg(test)]` items, and `use` trees read into paths.
//! A tokenizer, not a parser: enough to find items, imports and paths.

use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) text: String,
    pub(crate) line: usize,
}

impl Token {
    pub(crate) fn is(&self, s: &str) -> bool {
        self.text == s
    }
    pub(crate) fn is_ident(&self) -> bool {
        self.text
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
    }
}

/// Identifiers and punctuation (`::` is one token), 1-based line numbers; comments, string,
/// char and number literals and lifetimes are dropped.
pub(crate) fn tokenize(src: &str) -> Vec<Token> {
    let c: Vec<char> = src.chars().collect();
    let (mut i, mut line, mut out) = (0, 1, Vec::new());
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if ch == '"' || ((ch == 'r' || ch == 'b') && raw_or_byte_string(&c, i).is_some()) {
            // Skip the whole literal, counting its lines.
            let (start, hashes, raw) = if ch == '"' {
                (i + 1, 0, false)
            } else {
                raw_or_byte_string(&c, i).unwrap_or((i + 1, 0, false))
            };
            i = start;
            while i < c.len() {
                if c[i] == '\n' {
                    line += 1;
                }
                if !raw && c[i] == '\\' {
                    if at(i + 1) == '\n' {
                        line += 1;
                    }
                    i += 2;
                    continue;
                }
                if c[i] == '"' && (0..hashes).all(|k| at(i + 1 + k) == '#') {
                    i += 1 + hashes;
                    break;
                }
                i += 1;
            }
        } else if ch == '\'' {
            // A char literal ('x', '\n', '\u{1F600}') or a lifetime ('a).
            if at(i + 1) == '\\' {
                i += 3;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
            }
        } else if ch.is_ascii_digit() {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
        } else if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            let mut text: String = c[start..i].iter().collect();
            if text == "r" && at(i) == '#' && (at(i + 1).is_alphabetic() || at(i + 1) == '_') {
                // A raw identifier, r#type.
                let s = i + 1;
                i = s;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
                text = c[s..i].iter().collect();
            }
            out.push(Token { text, line });
        } else if ch == ':' && at(i + 1) == ':' {
            out.push(Token {
                text: "::".into(),
                line,
            });
            i += 2;
        } else {
            out.push(Token {
                text: ch.to_string(),
                line,
            });
            i += 1;
        }
    }
    out
}

/// At `b"`, `r"`, `r#"`, `br"`, `br#"`: (index after the opening quote, number of `#`, raw).
fn raw_or_byte_string(c: &[char], i: usize) -> Option<(usize, usize, bool)> {
    let mut j = i;
    let mut raw = false;
    if c.get(j) == Some(&'b') {
        j += 1;
    }
    if c.get(j) == Some(&'r') {
        raw = true;
        j += 1;
    }
    if j == i {
        return None;
    }
    // Part of a longer identifier (`br` in `abr"` cannot happen: we are at an identifier start).
    let mut hashes = 0;
    while raw && c.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    (c.get(j) == Some(&'"')).then_some((j + 1, hashes, raw))
}

/// Index just past the item that starts at `i` (after its attributes): a `;` or a `{...}` at
/// the item's own depth.
fn item_end(t: &[Token], mut i: usize) -> usize {
    let mut depth = 0i32;
    while i < t.len() {
        match t[i].text.as_str() {
            "{" | "(" | "[" => depth += 1,
            "}" | ")" | "]" => {
                depth -= 1;
                if depth == 0 && t[i].is("}") {
                    return i + 1;
                }
            }
            ";" if depth == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    t.len()
}

/// True at `#[cfg(test)]`.
fn is_cfg_test(t: &[Token], i: usize) -> bool {
    let want = ["#", "[", "cfg", "(", "test", ")", "]"];
    t.len() >= i + want.len() && want.iter().enumerate().all(|(k, w)| t[i + k].is(w))
}

/// The tokens without top-level `#[cfg(test)]` items, and the line ranges those items span.
pub(crate) fn without_tests(t: Vec<Token>) -> (Vec<Token>, Vec<(usize, usize)>) {
    let (mut out, mut skipped, mut depth, mut i) = (Vec::new(), Vec::new(), 0i32, 0);
    while i < t.len() {
        if depth == 0 && is_cfg_test(&t, i) {
            let end = item_end(&t, i + 7);
            let last = t.get(end.max(1) - 1).map_or(t[i].line, |x| x.line);
            skipped.push((t[i].line, last));
            i = end;
            continue;
        }
        match t[i].text.as_str() {
            "{" => depth += 1,
            "}" => depth -= 1,
            _ => {}
        }
        out.push(t[i].clone());
        i += 1;
    }
    (out, skipped)
}

/// Lines of a file that count towards [`MAX_LINES`]: all but top-level `#[cfg(test)]` items.
pub(crate) fn counted_lines(src: &str) -> usize {
    let total = src.lines().count();
    let (_, skipped) = without_tests(tokenize(src));
    let mut lines = BTreeSet::new();
    for (a, b) in skipped {
        lines.extend(a..=b);
    }
    total - lines.len().min(total)
}

/// A path of a `use` tree, as written, and the name it binds (`None` for a glob).
pub(crate) type Binding = (Vec<String>, Option<String>);

/// The paths of a `use` tree, each with the name it binds (`None` for a glob). Starts at
/// `t[i]` (after `use`); returns the index past the closing `;`.
pub(crate) fn use_paths(t: &[Token], i: usize) -> (Vec<Binding>, usize) {
    let end = (i..t.len()).find(|&k| t[k].is(";")).unwrap_or(t.len());
    let mut out = Vec::new();
    let mut k = i;
    if t.get(k).is_some_and(|x| x.is("::")) {
        k += 1; // `use ::std::...`: extern, and harmless to read as a plain path.
    }
    tree(&t[..end], &mut k, Vec::new(), &mut out);
    (out, end + 1)
}

fn tree(t: &[Token], k: &mut usize, prefix: Vec<String>, out: &mut Vec<Binding>) {
    let mut path = prefix;
    loop {
        let Some(tok) = t.get(*k) else {
            bind(path, None, out);
            return;
        };
        match tok.text.as_str() {
            "{" => {
                *k += 1;
                loop {
                    match t.get(*k).map(|x| x.text.as_str()) {
                        None => return,
                        Some("}") => {
                            *k += 1;
                            return;
                        }
                        Some(",") => *k += 1,
                        Some(_) => tree(t, k, path.clone(), out),
                    }
                }
            }
            "*" => {
                *k += 1;
                out.push((path, None));
                return;
            }
            "::" => *k += 1,
            "," | "}" => {
                bind(path, None, out);
                return;
            }
            "as" => {
                let alias = t.get(*k + 1).map(|x| x.text.clone());
                *k += 2;
                bind(path, alias, out);
                return;
            }
            _ => {
                path.push(tok.text.clone());
                *k += 1;
            }
        }
    }
}

/// `a::b::self` binds `b` to `a::b`; `x as _` binds nothing.
fn bind(mut path: Vec<String>, alias: Option<String>, out: &mut Vec<Binding>) {
    if path.last().is_some_and(|s| s == "self") {
        path.pop();
    }
    let Some(last) = path.last().cloned() else {
        return;
    };
    let name = alias.unwrap_or(last);
    if name != "_" {
        out.push((path, Some(name)));
    }
}
