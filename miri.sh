#!/usr/bin/env bash
# Runs the tests that need no async runtime under Miri, with strict
# provenance: the unit tests, the hand-polled semaphore and bounded tests, the
# bad-input table, the allocation test and the fuzz models (on a few proptest
# cases plus the committed regressions). Miri checks the intrusive wait list
# in src/semaphore/raw.rs (pinned nodes linked by raw pointers) for undefined
# behaviour: use after free, aliasing violations, data races.
#
#   ./miri.sh
#
# Skipped (they need a real runtime or timers, which Miri runs far too
# slowly): tests/runtimes.rs, tests/chaos.rs, the tokio test in
# tests/semaphore.rs, and the doc tests.
#
# Needs the nightly toolchain with the `miri` component; tries to install it,
# and says so and exits 0 if it cannot. Exits 1 if Miri reports undefined
# behaviour or a test fails.
set -uo pipefail
cd "$(dirname "$0")"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "miri.sh: SKIPPED: no nightly toolchain installed (Miri needs nightly)"
    exit 0
fi
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    echo "miri.sh: installing the miri component (rustup +nightly component add miri rust-src)"
    if ! rustup +nightly component add miri rust-src; then
        echo "miri.sh: SKIPPED: the miri component is not installed and could not be fetched"
        exit 0
    fi
fi
if ! cargo +nightly miri setup >/dev/null 2>&1; then
    echo "miri.sh: SKIPPED: 'cargo +nightly miri setup' failed (it builds a Miri sysroot from rust-src)"
    exit 0
fi

# Isolation off: the fuzz-model test reads fuzz/regressions/, and proptest
# looks for its regression files.
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-strict-provenance -Zmiri-disable-isolation}"
# A handful of model runs is enough for Miri: it checks each access, the
# fuzzer and the stable proptests take care of breadth.
export PROPTEST_CASES="${PROPTEST_CASES:-4}"
export PROPTEST_MAX_SHRINK_ITERS=0

runs=(
    "--lib"
    "--test semaphore -- --skip conservation_under_a_two_thread_runtime"
    "--test bounded"
    "--test bad_input"
    "--test alloc"
    "--test fuzz_models"
    "--test rate"
    "--test token_bucket"
    "--test limiter"
)

failed=()
summary=()
for run in "${runs[@]}"; do
    echo "miri.sh: cargo +nightly miri test $run"
    log="$(mktemp)"
    # shellcheck disable=SC2086 # `run` is a list of arguments
    cargo +nightly miri test --locked $run >"$log" 2>&1
    status=$?
    result="$(grep -E '^test result:' "$log" | tail -1)"
    if [ "$status" -ne 0 ]; then
        grep -E -A25 'Undefined Behavior|error: |panicked at|^failures:' "$log" | head -80
        failed+=("$run")
        summary+=("FAILED  $run  ${result}")
    else
        summary+=("ok      $run  ${result#test result: ok. }")
    fi
    rm -f "$log"
done

echo "miri.sh: summary (MIRIFLAGS=$MIRIFLAGS)"
for line in "${summary[@]}"; do
    echo "  $line"
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "miri.sh: FAILED: ${#failed[@]} of ${#runs[@]} test binaries"
    exit 1
fi
echo "miri.sh: ok: no undefined behaviour in ${#runs[@]} test binaries"
