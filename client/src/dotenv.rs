//! Writing `access_configuration` into a `.env` file, as the orchestrator's CLI does.
//!
//! Values are written bare when they only hold characters every `.env` reader takes literally,
//! in single quotes when they hold no single quote and no line break (literal in dotenv, shells
//! and python-dotenv), else in double quotes with `\`, `"`, `$`, `` ` `` and line breaks escaped.
//! Merging keeps every other line of an existing file as it was.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

/// True for a portable variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn bare(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.:/@+,%=~".contains(c)
}

/// The value as it is written after `KEY=`.
pub fn quote_value(value: &str) -> String {
    if !value.is_empty() && value.chars().all(bare) {
        return value.to_string();
    }
    if !value.contains('\'') && !value.contains('\n') && !value.contains('\r') {
        return format!("'{value}'");
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '$' => out.push_str("\\$"),
            '`' => out.push_str("\\`"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `KEY=value` with the value quoted as needed.
pub fn line(key: &str, value: &str) -> String {
    format!("{key}={}", quote_value(value))
}

/// The key an existing line assigns (`KEY=...` or `export KEY=...`), if any.
fn assigned_key(line: &str) -> Option<&str> {
    let line = line.trim_start();
    let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
    let (key, _) = line.split_once('=')?;
    let key = key.trim_end();
    valid_key(key).then_some(key)
}

/// True when the value part of `line` opens a quote that the line does not close, so the
/// value goes on over the next lines.
fn opens_multiline(line: &str) -> Option<char> {
    let (_, value) = line.split_once('=')?;
    let value = value.trim_start();
    let quote = value.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let rest = &value[1..];
    if closes(rest, quote) {
        None
    } else {
        Some(quote)
    }
}

fn closes(text: &str, quote: char) -> bool {
    let mut escaped = false;
    for c in text.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' && quote == '"' {
            escaped = true;
        } else if c == quote {
            return true;
        }
    }
    false
}

/// `existing` with `vars` written in: a key's first assignment is replaced in place, its later
/// assignments dropped, and keys not there yet appended in order. Other lines stay as they were.
pub fn merge(existing: &str, vars: &[(String, String)]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut written: BTreeSet<&str> = BTreeSet::new();
    let mut lines = existing.lines();
    while let Some(l) = lines.next() {
        let Some((key, value)) =
            assigned_key(l).and_then(|k| vars.iter().find(|(vk, _)| vk == k).map(|(k, v)| (k, v)))
        else {
            out.push(l.to_string());
            continue;
        };
        // Skip the rest of an old multi-line value.
        if let Some(quote) = opens_multiline(l) {
            for next in lines.by_ref() {
                if closes(next, quote) {
                    break;
                }
            }
        }
        if written.insert(key.as_str()) {
            let export = if l.trim_start().starts_with("export ") {
                "export "
            } else {
                ""
            };
            out.push(format!("{export}{}", line(key, value)));
        }
    }
    for (key, value) in vars {
        if written.insert(key.as_str()) {
            out.push(line(key, value));
        }
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

/// Merges `vars` into the file at `path` (created when missing, with mode 0600 on Unix: it holds
/// secrets), replacing it atomically. An existing file keeps its permissions.
pub fn write_file(path: &Path, vars: &[(String, String)]) -> std::io::Result<()> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let text = merge(existing.as_deref().unwrap_or(""), vars);
    let mode = existing_mode(path).unwrap_or(0o600);
    write_atomically(path, text.as_bytes(), mode)
}

#[cfg(unix)]
fn existing_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}

#[cfg(not(unix))]
fn existing_mode(_path: &Path) -> Option<u32> {
    None
}

/// Writes `bytes` to a temporary file next to `path` with `mode` (Unix), then renames it over
/// `path`, so a reader never sees half a file. Creates missing parent folders.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let result = (|| {
        let mut file = options.open(&tmp)?;
        #[cfg(unix)]
        {
            // The umask may have narrowed the mode on creation; a reused file keeps its old one.
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_value("pvak_abc123"), "pvak_abc123");
        assert_eq!(quote_value("https://x.dev/a?b=c"), "'https://x.dev/a?b=c'");
        assert_eq!(quote_value("acme.apps.dev"), "acme.apps.dev");
        assert_eq!(quote_value(""), "''");
        assert_eq!(
            quote_value("deploy:write logs:read"),
            "'deploy:write logs:read'"
        );
        assert_eq!(quote_value("a#b"), "'a#b'");
        assert_eq!(quote_value("$HOME"), "'$HOME'");
        assert_eq!(quote_value("it's"), r#""it's""#);
        assert_eq!(
            quote_value("l1\nl2 \"q\" $x `c` \\"),
            r#""l1\nl2 \"q\" \$x \`c\` \\""#
        );
        assert_eq!(line("API_TOKEN", "a b"), "API_TOKEN='a b'");
    }

    #[test]
    fn keys() {
        assert!(valid_key("API_TOKEN"));
        assert!(valid_key("_x1"));
        assert!(!valid_key("1X"));
        assert!(!valid_key("A-B"));
        assert!(!valid_key(""));
        assert!(!valid_key("A B"));
    }

    #[test]
    fn merging_keeps_other_lines() {
        let existing = "# mine\nDATABASE_URL=postgres://x\nexport API_TOKEN=old\nMULTI=\"a\nb\nc\"\nAPI_TOKEN=dup\nLAST=1";
        let merged = merge(
            existing,
            &vars(&[("API_TOKEN", "new"), ("MULTI", "one"), ("PLAN", "free")]),
        );
        assert_eq!(
            merged,
            "# mine\nDATABASE_URL=postgres://x\nexport API_TOKEN=new\nMULTI=one\nLAST=1\nPLAN=free\n"
        );
        assert_eq!(merge("", &vars(&[("A", "1")])), "A=1\n");
        // Idempotent.
        let again = merge(
            &merged,
            &vars(&[("API_TOKEN", "new"), ("MULTI", "one"), ("PLAN", "free")]),
        );
        assert_eq!(again, merged);
    }

    #[test]
    fn file_is_created_private_and_merged() {
        let dir = std::env::temp_dir().join(format!("appctl-dotenv-{}", std::process::id()));
        let path = dir.join("sub").join(".env");
        let _ = std::fs::remove_dir_all(&dir);
        write_file(&path, &vars(&[("A", "1 2")])).expect("write");
        write_file(&path, &vars(&[("B", "x")])).expect("write");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "A='1 2'\nB=x\n"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
