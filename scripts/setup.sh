#!/bin/sh
# Installs everything the worker needs to build and run locally, idempotently: the wasm32
# target, worker-build and the wasm-bindgen CLI (into .tools/), wrangler and Node 22 (from npm,
# into node_modules/), and .dev.vars from .dev.vars.example. Only crates.io and the npm registry
# are used. A second run with everything present takes a few seconds.
# `--test` also installs what only the test suite needs.
set -eu
. "$(dirname "$0")/env.sh"
FOR_TESTS=0
[ "${1:-}" = "--test" ] && FOR_TESTS=1
cd "$ROOT"

say() { printf 'setup: %s\n' "$*"; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# install_tool <binary> <crate> <version>: into .tools/bin, reusing a matching binary on PATH.
install_tool() {
  bin=$1 crate=$2 version=$3
  if [ -x "$TOOLS/bin/$bin" ] && "$TOOLS/bin/$bin" --version 2>/dev/null | grep -Eq "(^| )$version\$"; then
    return 0
  fi
  mkdir -p "$TOOLS/bin"
  found=$(PATH="$HOME/.cargo/bin:$PATH" command -v "$bin" 2>/dev/null || true)
  if [ -n "$found" ] && [ "$found" != "$TOOLS/bin/$bin" ] && "$found" --version 2>/dev/null | grep -Eq "(^| )$version\$"; then
    say "using $found ($crate $version)"
    ln -sf "$found" "$TOOLS/bin/$bin"
    return 0
  fi
  say "installing $crate $version from crates.io (several minutes, once)"
  # No --locked: wasm-bindgen-cli's lockfile names a crate release the registry mirror lacks.
  cargo install --quiet --root "$TOOLS" "$crate" --version "$version"
}
install_tool worker-build worker-build "$WORKER_BUILD_VERSION"
install_tool wasm-bindgen wasm-bindgen-cli "$WASM_BINDGEN_VERSION"

# npm packages: wrangler, the Node 22 it needs, wasm-opt (binaryen), Stripe's library for tests.
# Also Cloudflare's OAuth provider library, for the peer worker of the load benchmark (bench/peer-oauth).
stamp="node_modules/.setup-stamp"
want=$(cksum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -x node_modules/.bin/wrangler ]; then
  say "installing npm packages (wrangler, node 22, binaryen, stripe, playwright-core, workers-oauth-provider)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
node_version=$(node_modules/.bin/node --version)
case "$node_version" in
  v22.*) ;;
  *) echo "setup: node_modules/.bin/node is $node_version, expected v22" >&2; exit 1 ;;
esac

# Browser tests drive Debian's Chromium through playwright-core (no browser download).
if [ "$FOR_TESTS" = 1 ] && ! [ -x /usr/bin/chromium ]; then
  say "installing Debian's chromium for the browser tests"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
      echo "setup: chromium is missing and installing it needs root (apt-get install chromium)" >&2; exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -qq chromium >/dev/null 2>&1 || {
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
  }
fi

if [ ! -f .dev.vars ]; then
  say "creating .dev.vars from .dev.vars.example"
  cp .dev.vars.example .dev.vars
else
  # A .dev.vars from an earlier version lacks settings added since (e.g. TOKEN_MAC_KEY): add
  # each missing one with its example value; values already there are kept as they are.
  for name in $(sed -n 's/^\([A-Z][A-Z0-9_]*\)=.*/\1/p' .dev.vars.example); do
    if ! grep -q "^$name=" .dev.vars; then
      say "adding $name to .dev.vars (from .dev.vars.example)"
      grep "^$name=" .dev.vars.example >> .dev.vars
    fi
  done
fi
say "ready (worker-build $WORKER_BUILD_VERSION, wasm-bindgen $WASM_BINDGEN_VERSION, wrangler $(node_modules/.bin/wrangler --version 2>/dev/null | tail -n1), node $node_version)"
