#!/bin/sh
# Builds the worker to build/ (release profile, then wasm-opt -Oz) and its static assets to
# build/assets/, and prints the wasm size.
# wrangler runs this as its build command. APP_SKIP_BUILD=1 reuses an existing build: the test
# harness sets it after building once.
#
# `sh scripts/build.sh bench/hello` builds another worker crate of the workspace the same way
# (bench/size.sh compares the two).
#
# wasm-opt runs here rather than inside worker-build (Cargo.toml sets its wasm-opt = false):
# worker-build always adds --debuginfo, which keeps the function-names section, about 16% of
# the file. Same binaryen (node_modules/.bin/wasm-opt) and the same feature flags as
# worker-build. APP_WASM_NAMES=1 keeps the names (readable wasm frames in stack traces);
# APP_WASM_OPT=0 skips wasm-opt (faster builds, a much larger file). See BENCHMARKS.md.
set -eu
. "$(dirname "$0")/env.sh"
cd "$ROOT/${1:-.}"
# The worker's static assets (wrangler.toml [assets]): the OpenAPI document, without its
# indentation, served by `GET /openapi.json` through the ASSETS binding instead of from the wasm.
# Written after worker-build, which empties build/, and when the build is skipped.
assets() {
  if [ -f docs/openapi.json ]; then
    mkdir -p build/assets
    node -e 'const fs = require("fs");
      fs.writeFileSync(process.argv[2], JSON.stringify(JSON.parse(fs.readFileSync(process.argv[1], "utf8"))));' \
      docs/openapi.json build/assets/openapi.json
  fi
}
if [ "${APP_SKIP_BUILD:-}" = 1 ] && [ -f build/worker/shim.mjs ]; then
  assets
  exit 0
fi
worker-build --release
wasm=$(ls build/worker/*.wasm build/*.wasm 2>/dev/null | head -n1)
if [ -z "$wasm" ]; then
  echo "build: worker-build left no .wasm under $(pwd)/build" >&2
  exit 1
fi
if [ "${APP_WASM_OPT:-1}" != 0 ]; then
  names=""
  [ "${APP_WASM_NAMES:-0}" = 1 ] && names="--debuginfo"
  # shellcheck disable=SC2086
  # -ocimfs 20: a function with one caller is inlined into it only when tiny (binaryen inlines
  # every one by default). Measured (BENCHMARKS.md, "Stop 26"): 9% less gzip, and V8, which
  # compiles each function on its first call, no longer compiles code a request does not run
  # along with the code it does.
  "$WASM_OPT_BIN" "$wasm" -o "$wasm.opt.tmp" -Oz -ocimfs 20 $names \
    --enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int \
    --enable-bulk-memory --enable-multivalue --enable-reference-types \
    --enable-exception-handling
  mv "$wasm.opt.tmp" "$wasm"
fi
assets
raw=$(wc -c < "$wasm")
gz=$(gzip -9 -c "$wasm" | wc -c)
printf 'wasm size: %s bytes raw, %s bytes gzip (%s)\n' "$raw" "$gz" "$wasm"
