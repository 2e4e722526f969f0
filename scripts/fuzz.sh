#!/bin/sh
# Fuzzes the pure domain crate's parsers natively: `sh scripts/fuzz.sh [seconds-per-target]`
# (default 20). Installs cargo-fuzz into .tools/ once (or reuses a matching one on PATH),
# builds every target in fuzz/ with overflow checks, runs each for that many seconds from its
# seeds (fuzz/seeds/<target>, committed) and working corpus (fuzz/corpus/<target>, not
# committed), and fails if any target crashes; the crashing input is left in
# fuzz/artifacts/<target>/. Replay one with `cargo fuzz run <target> <file>`.
#
# Stable Rust: targets are built without a sanitizer (`--sanitizer none`); the domain crate
# has no unsafe code, so panics, overflow checks, timeouts and the memory limit are what find
# bugs. FUZZ_SANITIZER=address builds with AddressSanitizer instead, through RUSTC_BOOTSTRAP=1
# (ASan's -Z flag is nightly-only). FUZZ_TARGETS="a b" runs only those targets.
set -eu
. "$(dirname "$0")/env.sh"
cd "$ROOT"

SECONDS_PER=${1:-20}
case "$SECONDS_PER" in
  '' | *[!0-9]*) echo "usage: sh scripts/fuzz.sh [seconds-per-target]" >&2; exit 2 ;;
esac
CARGO_FUZZ_VERSION=0.13.2
SANITIZER=${FUZZ_SANITIZER:-none}
TARGETS=${FUZZ_TARGETS:-"signature_header account_request resource_bodies form json_schema webhook_event jwt time_email_tokens"}

say() { printf 'fuzz: %s\n' "$*"; }

# cargo-fuzz into .tools/bin, reusing a matching binary on PATH (as setup.sh does for its tools).
if ! { [ -x "$TOOLS/bin/cargo-fuzz" ] && "$TOOLS/bin/cargo-fuzz" --version 2>/dev/null | grep -Eq " $CARGO_FUZZ_VERSION\$"; }; then
  mkdir -p "$TOOLS/bin"
  found=$(command -v cargo-fuzz 2>/dev/null || true)
  if [ -n "$found" ] && [ "$found" != "$TOOLS/bin/cargo-fuzz" ] && "$found" --version 2>/dev/null | grep -Eq " $CARGO_FUZZ_VERSION\$"; then
    say "using $found (cargo-fuzz $CARGO_FUZZ_VERSION)"
    ln -sf "$found" "$TOOLS/bin/cargo-fuzz"
  else
    say "installing cargo-fuzz $CARGO_FUZZ_VERSION from crates.io (about 2 minutes, once)"
    cargo install --quiet --root "$TOOLS" cargo-fuzz --version "$CARGO_FUZZ_VERSION"
  fi
fi

if [ "$SANITIZER" != none ]; then
  export RUSTC_BOOTSTRAP=1
fi
flags="--sanitizer $SANITIZER --debug-assertions"

# The longest input worth trying for each target: past every limit the parser enforces.
max_len() {
  case "$1" in
    signature_header) echo 4200 ;; # MAX_HEADER_LEN is 2048, then the body
    jwt) echo 6000 ;;              # tokens over 4096 bytes are refused
    webhook_event) echo 8192 ;;    # Stripe events are a few KB
    form) echo 2048 ;;
    time_email_tokens) echo 512 ;; # emails are at most 254 bytes, tokens 80
    *) echo 4096 ;;
  esac
}

say "building the targets (sanitizer: $SANITIZER)"
# shellcheck disable=SC2086
cargo fuzz build $flags

mkdir -p fuzz/target/logs
failed=""
summary=""
for t in $TARGETS; do
  mkdir -p "fuzz/corpus/$t"
  log="fuzz/target/logs/$t.log"
  say "$t: ${SECONDS_PER}s"
  # shellcheck disable=SC2086
  if cargo fuzz run $flags "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="$SECONDS_PER" -rss_limit_mb=2048 -max_len="$(max_len "$t")" \
    -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    failed="$failed $t"
    tail -n 40 "$log" >&2
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  corpus=$(ls "fuzz/corpus/$t" | wc -l)
  summary="$summary$(printf '%-18s %-7s %12s runs %6s corpus files' "$t" "$result" "${runs:-?}" "$corpus")
"
done

printf '\n%s' "$summary"
if [ -n "$failed" ]; then
  say "crashed:$failed (inputs in fuzz/artifacts/, logs in fuzz/target/logs/)"
  exit 1
fi
say "no crash in $(echo $TARGETS | wc -w) targets, ${SECONDS_PER}s each"
