#!/bin/sh
# Wasm size check: builds the real worker, the hello-world baseline (bench/hello) and the floor
# (bench/floor: only what account creation, a webhook and a resource read need, with the design
# card's crates) with the same tools and release profile (scripts/build.sh), then prints the raw
# and gzip -9 size of each .wasm and the ratios of the gzip sizes (the goal: ours at most 3x the
# baseline's).
#
#   sh bench/size.sh                 all three builds, then the table
#   sh bench/size.sh --no-build      the table for what build/ and bench/*/build/ hold
#   sh bench/size.sh --hello-only    only build the baseline (bench/hello/wrangler.toml uses it)
#
# SIZE_MAX_RATIO=N makes it fail when the gzip ratio is above N (not set: report only).
set -eu
. "$(dirname "$0")/../scripts/env.sh"
cd "$ROOT"

mode=${1:-}
case "$mode" in
  --hello-only) exec sh scripts/build.sh bench/hello ;;
  --no-build) ;;
  "")
    sh scripts/build.sh
    sh scripts/build.sh bench/hello
    sh scripts/build.sh bench/floor
    ;;
  *) echo "usage: sh bench/size.sh [--no-build | --hello-only]" >&2; exit 2 ;;
esac

wasm_of() {
  ls "$1"/build/worker/*.wasm "$1"/build/*.wasm 2>/dev/null | head -n1
}
ours=$(wasm_of .)
hello=$(wasm_of bench/hello)
floor=$(wasm_of bench/floor)
if [ -z "$ours" ] || [ -z "$hello" ] || [ -z "$floor" ]; then
  echo "size: a build is missing (run without --no-build)" >&2
  exit 1
fi

ours_raw=$(wc -c < "$ours")
ours_gz=$(gzip -9 -c "$ours" | wc -c)
hello_raw=$(wc -c < "$hello")
hello_gz=$(gzip -9 -c "$hello" | wc -c)
floor_raw=$(wc -c < "$floor")
floor_gz=$(gzip -9 -c "$floor" | wc -c)
printf '%-14s %12s %12s  %s\n' "wasm" "raw bytes" "gzip -9" "file"
printf '%-14s %12s %12s  %s\n' "app-provider" "$ours_raw" "$ours_gz" "$ours"
printf '%-14s %12s %12s  %s\n' "bench-hello" "$hello_raw" "$hello_gz" "$hello"
printf '%-14s %12s %12s  %s\n' "bench-floor" "$floor_raw" "$floor_gz" "$floor"
ratio=$(awk -v a="$ours_gz" -v b="$hello_gz" 'BEGIN { printf "%.2f", a / b }')
raw_ratio=$(awk -v a="$ours_raw" -v b="$hello_raw" 'BEGIN { printf "%.2f", a / b }')
printf 'ratio (ours / hello): %sx gzip, %sx raw (goal: at most 3x gzip)\n' "$ratio" "$raw_ratio"
floor_ratio=$(awk -v a="$floor_gz" -v b="$hello_gz" 'BEGIN { printf "%.2f", a / b }')
printf 'ratio (floor / hello): %sx gzip (the floor: account creation, webhooks and resource reads, nothing else)\n' "$floor_ratio"
if [ -n "${SIZE_MAX_RATIO:-}" ] && awk -v r="$ratio" -v m="$SIZE_MAX_RATIO" 'BEGIN { exit !(r > m) }'; then
  echo "size: gzip ratio ${ratio}x is above SIZE_MAX_RATIO=${SIZE_MAX_RATIO}" >&2
  exit 1
fi
