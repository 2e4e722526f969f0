#!/bin/sh
# Part of the black-box suite under wrangler dev, for working on one area:
#   sh scripts/blackbox.sh money::      (arguments go to the test binary: filters, --exact, ...)
# `make test` runs all of it; this one assumes `make setup` ran once.
set -eu
. "$(dirname "$0")/env.sh"
cd "$ROOT"
cargo test -p app-tests --test blackbox -- "$@"
