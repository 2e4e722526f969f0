#!/bin/sh
# Every benchmark, in one run: `sh scripts/bench.sh [--quick]`. Results go to stdout; the
# figures recorded in BENCHMARKS.md come from the full run.
#
#   1. wasm size: the worker against the hello-world worker (bench/size.sh);
#   1b. cold start: V8's compile and instantiate time of each wasm, ours against the floor and
#      the hello-world worker, in fresh Node 22 processes (bench/coldstart.mjs);
#   2. native micro-benchmarks of the per-request CPU work (cargo bench -p app-domain);
#   3. load: the worker against the hello-world worker under the same wrangler dev, in the same
#      run (test/src/bin/bench/; ratios to the baseline, p50/p99, scale over accounts), and
#      its token endpoint against the peer, bench/peer-oauth (Cloudflare's OAuth provider);
#   4. cold start under workerd: the first health call and the first account request after a
#      restart, ours against the floor (test/src/bin/coldstart.rs);
#   5. the cost model: each flow's billable work counted by the worker's development meter,
#      priced per million at Workers Paid prices, and the D1 ceiling at 1,000 sign-ups a
#      second (test/src/bin/cost.rs).
#
# --quick only checks that all three run (CI): short samples, 1 s load phases, 100 accounts.
# Extra arguments after --quick (or alone) go to the load benchmark, e.g.
#   sh scripts/bench.sh --seconds 10 --concurrency 16
# SIZE_MAX_RATIO=N makes the size step fail above that gzip ratio (not set: report only).
set -eu
. "$(dirname "$0")/env.sh"
cd "$ROOT"
sh scripts/setup.sh --test

quick=""
if [ "${1:-}" = "--quick" ]; then
  quick=1
fi

step() { printf '\n== %s\n' "$*"; }
step "wasm size (release builds, wasm-opt -Oz)"
sh bench/size.sh

step "cold start: V8 compile + instantiate of each wasm (fresh process per trial)"
wasm_of() { ls "$1"/build/worker/*.wasm "$1"/build/*.wasm 2>/dev/null | head -n1; }
trials=25
[ -n "$quick" ] && trials=3
node bench/coldstart.mjs --trials "$trials" floor="$(wasm_of bench/floor)" \
  hello="$(wasm_of bench/hello)" ours="$(wasm_of .)"
# V8 compiles wasm functions lazily by default; eager compilation is what a module costs in full.
COLDSTART_NODE_FLAGS="--no-wasm-lazy-compilation" node bench/coldstart.mjs --trials "$trials" \
  floor="$(wasm_of bench/floor)" hello="$(wasm_of bench/hello)" ours="$(wasm_of .)"

step "native micro-benchmarks (ns per operation)"
if [ -n "$quick" ]; then
  BENCH_QUICK=1 cargo bench -q -p app-domain --bench micro
else
  cargo bench -q -p app-domain --bench micro
fi

step "load under wrangler dev (hello-world baseline in the same run)"
# An optimised client, so the load generator takes as little of the machine's CPU as it can.
cargo build -q --profile loadgen -p app-tests --bin bench
./target/loadgen/bench "$@"

step "cold start under wrangler dev: first requests to a fresh isolate (floor and hello-world in the same run)"
cargo build -q --profile loadgen -p app-tests --bin coldstart
if [ -n "$quick" ]; then
  ./target/loadgen/coldstart --quick
else
  ./target/loadgen/coldstart
fi

step "cost model: billable work per flow, priced per million (Workers Paid), and the D1 ceiling"
cargo build -q --profile loadgen -p app-tests --bin cost
if [ -n "$quick" ]; then
  ./target/loadgen/cost --quick
else
  ./target/loadgen/cost
fi
