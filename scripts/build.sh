#!/bin/sh
# Builds the worker to build/worker/ (release, wasm-opt -Oz) and prints the wasm size.
# wrangler runs this as its build command. APP_SKIP_BUILD=1 reuses an existing build: the test
# harness sets it after building once.
set -eu
. "$(dirname "$0")/env.sh"
cd "$ROOT"
if [ "${APP_SKIP_BUILD:-}" = 1 ] && [ -f build/worker/shim.mjs ]; then
  exit 0
fi
worker-build --release
wasm=$(ls build/worker/*.wasm build/*.wasm 2>/dev/null | head -n1)
if [ -n "$wasm" ]; then
  raw=$(wc -c < "$wasm")
  gz=$(gzip -9 -c "$wasm" | wc -c)
  printf 'wasm size: %s bytes raw, %s bytes gzip (%s)\n' "$raw" "$gz" "$wasm"
fi
