#!/usr/bin/env bash
# Runs the tests that need no async runtime under Miri, with strict
# provenance: the unit tests, the hand-polled semaphore and bounded tests, the
# bad-input table, the allocation test and the fuzz models (on a few proptest
# cases plus the committed regressions). Miri checks the intrusive wait list
# (src/wait_list.rs: pinned nodes linked by raw pointers, used by the
# semaphore, the rate limiters and ManualClock), the wake batches and the
# clock's sleepers for undefined behaviour: use after free, aliasing
# violations, data races.
#
#   ./miri.sh           everything below (about 45 min on 2 cores)
#   ./miri.sh --quick   the unsafe-heavy subset CI runs (a few minutes): the
#                       wait list's unit tests, the hand-polled tests of
#                       the semaphore's wait list (hand-off, cancel,
#                       close, batches over 16), of the
#                       rate limiter's waiter list (re-time, refund, wakers
#                       dropped outside the lock) and of ManualClock's
#                       sleepers, selected by name
#
# Skipped (they need a real runtime or timers, which Miri runs far too
# slowly): tests/runtimes.rs, tests/chaos.rs, the tokio test in
# tests/semaphore.rs, and the doc tests.
#
# Needs the nightly toolchain with the `miri` component; tries to install it.
# If Miri cannot run it prints a SKIPPED banner and exits 0, or 1 under
# CI=true (a skip is not a pass). Exits 1 if Miri reports undefined
# behaviour or a test fails.
set -uo pipefail
cd "$(dirname "$0")"

quick=false
case "${1:-}" in
    "") ;;
    --quick) quick=true ;;
    *)
        echo "usage: $0 [--quick]" >&2
        exit 2
        ;;
esac

skip() {
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    echo "!!! miri.sh: SKIPPED: $1"
    echo "!!! No Miri run: the unsafe code was NOT checked for undefined behaviour."
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    if [[ "${CI:-}" == "true" ]]; then
        echo "miri.sh: CI=true: a skipped Miri run fails CI" >&2
        exit 1
    fi
    exit 0
}

if ! cargo +nightly --version >/dev/null 2>&1; then
    skip "no nightly toolchain installed (Miri needs nightly; 'rustup toolchain install nightly --component miri')"
fi
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    echo "miri.sh: installing the miri component (rustup +nightly component add miri rust-src)"
    if ! rustup +nightly component add miri rust-src; then
        skip "the miri component is not installed and could not be fetched"
    fi
fi
if ! cargo +nightly miri setup >/dev/null 2>&1; then
    skip "'cargo +nightly miri setup' failed (it builds a Miri sysroot from rust-src)"
fi

# Isolation off: the fuzz-model test reads fuzz/regressions/, and proptest
# looks for its regression files.
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-strict-provenance -Zmiri-disable-isolation}"
# A handful of model runs is enough for Miri: it checks each access, the
# fuzzer and the stable proptests take care of breadth.
export PROPTEST_CASES="${PROPTEST_CASES:-4}"
export PROPTEST_MAX_SHRINK_ITERS=0

if $quick; then
    # Filters are test-name substrings (libtest takes several).
    runs=(
        "--lib -- wait_list"
        "--test semaphore -- fifo order_of_first_poll one_release_of_k one_large_release dropping_ close_ replaced_waker release_permits_at_drop panicking_waker_clone"
        "--test bounded -- release_hands_permits close_fails_more"
        "--test rate -- waiters_are_fifo dropping_ r1_then reservation_delay replaced_waker a_manual_sleep set_quota_retimes changes_wake_every"
    )
else
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
fi

start=$SECONDS
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
echo "miri.sh: ok: no undefined behaviour in ${#runs[@]} test binaries ($((SECONDS - start)) s)"
