#!/bin/sh
# Runs the worker locally: setup, build, local D1 migrations, the local Stripe stand-in (also the
# upstream registrar and an operator backend; it delivers signed webhooks back to the worker) on
# 127.0.0.1:12111, then wrangler dev on
# http://localhost:8787 (PORT overrides). State persists in .wrangler/state between runs.
set -eu
. "$(dirname "$0")/env.sh"
cd "$ROOT"
sh scripts/setup.sh
sh scripts/build.sh
# Every audit database wrangler.toml binds (AUDIT_DB, and AUDIT_DB_1... when sharded).
for db in $(sed -n 's/^binding = "\(AUDIT_DB[0-9_]*\)".*/\1/p' wrangler.toml); do
  CI=true wrangler d1 migrations apply "$db" --local
done

STAND_IN_PORT="${STAND_IN_PORT:-12111}"
cargo build --quiet -p app-tests --bin stand-in
target/debug/stand-in --port "$STAND_IN_PORT" \
  --webhook-url "http://127.0.0.1:${PORT:-8787}/webhooks/stripe" \
  --webhook-secret whsec_dev_stand_in_webhooks &
stand_in=$!
trap 'kill $stand_in 2>/dev/null || true' EXIT INT TERM
echo "dev: Stripe stand-in on http://127.0.0.1:$STAND_IN_PORT (see .dev.vars)"
APP_SKIP_BUILD=1 wrangler dev --port "${PORT:-8787}" --show-interactive-dev-session=false
