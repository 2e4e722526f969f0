//! wrangler.toml as the tests read it, and as one run may change it.

use std::path::Path;

#[cfg(test)]
use crate::root;

/// wrangler.toml for one run, written to its run folder: the Rate Limiting bindings named
/// in `limits` get another `simple.limit` (`Some`) or are left out (`None`); the paths it
/// names (`main`, the build command, `migrations_dir`) are made absolute, since wrangler
/// reads them from the config's folder. Every binding named must be in `toml`.
pub fn derive(toml: &str, root: &Path, limits: &[(String, Option<u32>)]) -> Result<String, String> {
    let root = root.display().to_string();
    // Tables: each `[...]` or `[[...]]` header starts one, up to the next header.
    let mut tables: Vec<Vec<&str>> = vec![Vec::new()];
    for line in toml.lines() {
        if line.trim_start().starts_with('[') {
            tables.push(Vec::new());
        }
        if let Some(t) = tables.last_mut() {
            t.push(line);
        }
    }
    let mut found: Vec<&str> = Vec::new();
    let mut out = String::new();
    for table in tables {
        let header = table
            .first()
            .map(|l| l.trim())
            .filter(|l| l.starts_with('['))
            .unwrap_or("");
        let name = table.iter().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "name").then(|| v.trim().trim_matches('"'))
        });
        let limit = match (header, name) {
            ("[[ratelimits]]", Some(n)) => limits.iter().find(|(k, _)| k == n),
            _ => None,
        };
        if let (Some((n, _)), Some(_)) = (limit, name) {
            found.push(n);
        }
        for line in table {
            let key = line.split_once('=').map(|(k, _)| k.trim());
            let rewritten = match (key, limit) {
                // A binding left out: none of its lines.
                (_, Some((_, None))) => continue,
                (Some("simple"), Some((_, Some(l)))) => {
                    let period = line
                        .split("period")
                        .nth(1)
                        .and_then(|p| p.trim_start_matches([' ', '=']).split([' ', '}']).next())
                        .ok_or_else(|| format!("no period in {line:?}"))?;
                    format!("simple = {{ limit = {l}, period = {period} }}")
                }
                (Some("main"), _) if header.is_empty() => {
                    format!("main = \"{root}/build/worker/shim.mjs\"")
                }
                (Some("command"), _) if header == "[build]" => {
                    format!("command = \"sh {root}/scripts/build.sh\"")
                }
                (Some("watch_dir"), _) if header == "[build]" => continue,
                (Some("directory"), _) if header == "[assets]" => {
                    format!("directory = \"{root}/build/assets\"")
                }
                (Some("migrations_dir"), _) => {
                    format!("migrations_dir = \"{root}/migrations\"")
                }
                _ => line.to_string(),
            };
            out.push_str(&rewritten);
            out.push('\n');
        }
    }
    for (name, _) in limits {
        if !found.contains(&name.as_str()) {
            return Err(format!("no [[ratelimits]] binding {name} in wrangler.toml"));
        }
    }
    Ok(out)
}

/// wrangler.toml with `shards` audit databases: `AUDIT_DB` as it is, then `AUDIT_DB_1`... as
/// copies of its block under their own name and id (local D1 keeps one database per id).
pub fn with_audit_shards(toml: &str, shards: u32) -> String {
    let Some(start) = toml.find("\n[[d1_databases]]").map(|i| i + 1) else {
        return toml.to_string();
    };
    let block: String = toml[start..]
        .lines()
        .enumerate()
        .take_while(|(i, l)| *i == 0 || !l.trim_start().starts_with('['))
        .filter(|(_, l)| !l.trim_start().starts_with('#'))
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    let mut out = toml.to_string();
    for shard in 1..shards {
        let binding = domain::audit_shards::binding(shard);
        out.push_str(&format!("\n# Audit shard {shard} (this run only).\n"));
        out.push_str(
            &block
                .replace("\"AUDIT_DB\"", &format!("\"{binding}\""))
                .replace(
                    "database_name = \"app-provider-audit\"",
                    &format!("database_name = \"app-provider-audit-{shard}\""),
                )
                .replace(
                    "00000000-0000-0000-0000-000000000000",
                    &format!("00000000-0000-0000-0000-{shard:012}"),
                ),
        );
    }
    out
}

#[test]
fn a_run_can_have_more_audit_databases() {
    let toml = std::fs::read_to_string(root().join("wrangler.toml")).unwrap();
    assert_eq!(with_audit_shards(&toml, 1), toml);
    let two = with_audit_shards(&toml, 3);
    assert_eq!(two.matches("\n[[d1_databases]]").count(), 3);
    for (binding, id) in [
        ("AUDIT_DB_1", "000000000001"),
        ("AUDIT_DB_2", "000000000002"),
    ] {
        assert!(two.contains(&format!("binding = \"{binding}\"")), "{two}");
        assert!(two.contains(&format!("database_id = \"00000000-0000-0000-0000-{id}\"")));
    }
    // Each copy is a whole block: it names its migrations, and nothing after it is copied.
    assert_eq!(two.matches("\nmigrations_dir = \"migrations\"").count(), 3);
    assert_eq!(two.matches("[observability]").count(), 1);
    let derived = derive(&two, Path::new("/r"), &[]).unwrap();
    assert_eq!(
        derived
            .matches("\nmigrations_dir = \"/r/migrations\"")
            .count(),
        3
    );
}

#[test]
fn a_run_can_change_or_drop_a_rate_limit() {
    let toml = std::fs::read_to_string(root().join("wrangler.toml")).unwrap();
    let limits = [
        ("ORCHESTRATOR_LIMITER".to_string(), Some(40)),
        ("CLIENT_LIMITER".to_string(), None),
    ];
    let derived = derive(&toml, Path::new("/r"), &limits).unwrap();
    assert!(
        derived.contains("name = \"ORCHESTRATOR_LIMITER\"\nnamespace_id = \"1002\"\nsimple = { limit = 40, period = 60 }\n"),
        "{derived}"
    );
    assert!(!derived.contains("CLIENT_LIMITER"), "{derived}");
    assert_eq!(derived.matches("[[ratelimits]]").count(), 1);
    assert!(derived.contains("main = \"/r/build/worker/shim.mjs\""));
    assert!(derived.contains("command = \"sh /r/scripts/build.sh\""));
    assert!(derived.contains("directory = \"/r/build/assets\""));
    assert!(derived.contains("migrations_dir = \"/r/migrations\""));
    assert!(!derived.contains("watch_dir"));
    // Everything else is as it was.
    assert_eq!(
        section(&derived, "observability"),
        section(&toml, "observability")
    );
    assert_eq!(
        derived.matches("[[durable_objects.bindings]]").count(),
        toml.matches("[[durable_objects.bindings]]").count()
    );
    let unknown = [("NOPE".to_string(), Some(1))];
    assert!(derive(&toml, Path::new("/r"), &unknown).is_err());
}

/// The `key = value` lines of one `[section]` of wrangler.toml.
#[cfg(test)]
fn section(toml: &str, name: &str) -> Vec<(String, String)> {
    let header = format!("[{name}]");
    toml.lines()
        .map(str::trim)
        .skip_while(|l| *l != header)
        .skip(1)
        .take_while(|l| !l.starts_with('['))
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Consent links, deep links and sign-in assertions travel in query strings; Workers Logs
/// must not keep them. The option must be one the pinned wrangler knows (an unknown key
/// would only be warned about and ignored).
#[test]
fn logs_redact_query_strings() {
    let toml = std::fs::read_to_string(root().join("wrangler.toml")).unwrap();
    let observability = section(&toml, "observability");
    assert!(
        observability.contains(&("redact_query_string".into(), "true".into())),
        "{observability:?}"
    );
    let schema = root().join("node_modules/wrangler/config-schema.json");
    if let Ok(schema) = std::fs::read_to_string(&schema) {
        assert!(schema.contains("\"redact_query_string\""));
    }
}
