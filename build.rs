//! Validates `catalog.json` at build time, so a bad entry fails the build with its index and id
//! instead of failing requests later; writes `docs/openapi.json` without its indentation to
//! `OUT_DIR`, which is what the worker serves (72 KB less in the wasm, the same document).

fn main() {
    println!("cargo:rerun-if-changed=catalog.json");
    println!("cargo:rerun-if-changed=docs/openapi.json");
    if let Err(e) = domain::catalog::Catalog::parse(domain::catalog::DEFAULT_CATALOG) {
        eprintln!("error: catalog.json is invalid: {e}");
        std::process::exit(1);
    }
    let compact = serde_json::from_str::<serde_json::Value>(domain::openapi::OPENAPI)
        .and_then(|v| serde_json::to_string(&v));
    let out = std::env::var("OUT_DIR").map(|d| std::path::Path::new(&d).join("openapi.json"));
    match (compact, out) {
        (Ok(text), Ok(path)) => {
            if let Err(e) = std::fs::write(&path, text) {
                eprintln!("error: cannot write {}: {e}", path.display());
                std::process::exit(1);
            }
        }
        (Err(e), _) => {
            eprintln!("error: docs/openapi.json is not valid JSON: {e}");
            std::process::exit(1);
        }
        (_, Err(e)) => {
            eprintln!("error: OUT_DIR is not set: {e}");
            std::process::exit(1);
        }
    }
}
