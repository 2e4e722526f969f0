//! Where the repository and its tools are.

use std::path::{Path, PathBuf};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

pub fn tool(name: &str) -> PathBuf {
    root().join("node_modules/.bin").join(name)
}

/// PATH with the project's Node 22 and tools first, as `scripts/env.sh` sets it.
pub fn tool_path() -> String {
    let root = root();
    format!(
        "{}:{}:{}",
        root.join("node_modules/.bin").display(),
        root.join(".tools/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    )
}
