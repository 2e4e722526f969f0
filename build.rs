//! Validates `catalog.json` at build time, so a bad entry fails the build with its index and id
//! instead of failing requests later. (`docs/openapi.json` is not in the wasm: `scripts/build.sh`
//! puts it among the worker's static assets.)

fn main() {
    println!("cargo:rerun-if-changed=catalog.json");
    if let Err(e) = domain::catalog::Catalog::parse(domain::catalog::DEFAULT_CATALOG) {
        eprintln!("error: catalog.json is invalid: {e}");
        std::process::exit(1);
    }
}
