//! Validates `catalog.json` at build time, so a bad entry fails the build with its index and id
//! instead of failing requests later. (`docs/openapi.json` is not in the wasm: `scripts/build.sh`
//! puts it among the worker's static assets.)

fn main() {
    println!("cargo:rerun-if-changed=catalog.json");
    match domain::catalog::Catalog::parse(domain::catalog::DEFAULT_CATALOG) {
        // The account request needs only the currency: `discovery::currency` reads it from
        // here rather than parse the catalog in a fresh isolate's first account request.
        Ok(catalog) => println!(
            "cargo:rustc-env=APP_CATALOG_CURRENCY={}",
            catalog.currency()
        ),
        Err(e) => {
            eprintln!("error: catalog.json is invalid: {e}");
            std::process::exit(1);
        }
    }
}
