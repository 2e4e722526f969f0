//! Local D1 as the tests and the benchmarks reach it: `wrangler d1 migrations apply` and
//! `wrangler d1 execute --local`, against each of the run's audit databases (`AUDIT_DB`,
//! `AUDIT_DB_1`, ... when the run has several: `Options::audit_shards`).

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::paths::{root, tool, tool_path};

/// `wrangler <args> [--config <config>]`.
fn wrangler(args: &[&str], config: Option<&Path>) -> Command {
    let mut cmd = Command::new(tool("wrangler"));
    cmd.current_dir(root())
        .env("PATH", tool_path())
        .env("CI", "true")
        .env("WRANGLER_SEND_METRICS", "false")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .args(args);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd
}

/// Applies `migrations/` to each of the `shards` local audit databases in `persist_to`
/// (`config`: the run's own wrangler.toml, which binds them).
pub fn apply_migrations(persist_to: &Path, config: Option<&Path>, shards: u32) {
    for shard in 0..shards.max(1) {
        let binding = domain::audit_shards::binding(shard);
        let out = wrangler(&["d1", "migrations", "apply", &binding, "--local"], config)
            .arg("--persist-to")
            .arg(persist_to)
            .output()
            .expect("run wrangler d1 migrations apply");
        assert!(
            out.status.success(),
            "wrangler d1 migrations apply {binding} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Runs one SQL statement against the local database bound as `binding` and returns its rows.
pub fn d1_execute(
    persist_to: &Path,
    config: Option<&Path>,
    binding: &str,
    sql: &str,
) -> Vec<Value> {
    let out = wrangler(&["d1", "execute", binding, "--local", "--json"], config)
        .arg("--persist-to")
        .arg(persist_to)
        .args(["--command", sql])
        .output()
        .expect("run wrangler d1 execute");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "wrangler d1 execute {binding} failed for {sql}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("d1 output is not JSON ({e}):\n{stdout}"));
    parsed[0]["results"].as_array().cloned().unwrap_or_default()
}
