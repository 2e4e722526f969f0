#!/bin/sh
# The whole test suite: setup, formatting, clippy (native and wasm32), native unit tests, and
# the black-box suite against the built worker under wrangler dev. Idempotent; run from anywhere.
set -eu
. "$(dirname "$0")/env.sh"
cd "$ROOT"
sh scripts/setup.sh --test

step() { printf '\n== %s\n' "$*"; }
step "cargo fmt --check"
cargo fmt --all --check
cargo fmt --manifest-path fuzz/Cargo.toml --check
step "cargo clippy (native)"
cargo clippy --workspace --all-targets --quiet -- -D warnings
step "cargo clippy (wasm32)"
cargo clippy -p app-provider -p bench-hello -p bench-floor --target wasm32-unknown-unknown --quiet -- -D warnings
# The fuzz targets live outside the workspace (cargo-fuzz's layout); clippy them here so a
# domain rename breaks `make test`, not only the fuzz run after it.
step "cargo clippy (fuzz targets)"
cargo clippy --manifest-path fuzz/Cargo.toml --bins --quiet -- -D warnings
step "cargo test (native units, then the black-box suite under wrangler dev)"
cargo test --workspace
