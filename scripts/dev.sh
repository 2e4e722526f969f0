#!/bin/sh
# Runs the worker locally: setup, build, local D1 migrations, then wrangler dev on
# http://localhost:8787 (PORT overrides). State persists in .wrangler/state between runs.
set -eu
. "$(dirname "$0")/env.sh"
cd "$ROOT"
sh scripts/setup.sh
sh scripts/build.sh
CI=true wrangler d1 migrations apply AUDIT_DB --local
APP_SKIP_BUILD=1 exec wrangler dev --port "${PORT:-8787}" --show-interactive-dev-session=false
