#!/usr/bin/env bash
# Builds and runs every cargo-fuzz target in fuzz/ for SECONDS each (default
# 20), with AddressSanitizer and debug assertions (cargo-fuzz's defaults).
#
#   ./fuzz.sh            # 20 s per target
#   ./fuzz.sh 300        # a longer local run
#
# Needs a nightly toolchain (libFuzzer instrumentation); installs cargo-fuzz
# when it is missing. Without them it prints a SKIPPED banner and exits 0
# (the same harnesses still run on stable as proptests, in
# tests/fuzz_models.rs), or 1 under CI=true: a skip is not a pass.
#
# Exit status: 0 when every target ran clean (or the run was skipped), 1 when
# a target found a crash (its input is saved under fuzz/artifacts/<target>/;
# once fixed, copy it to fuzz/regressions/<target>/ so `cargo test` replays
# it), 2 on a usage or build error.
set -uo pipefail

seconds="${1:-20}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [seconds-per-target]" >&2
    exit 2
fi

cd "$(dirname "$0")"

skip() {
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    echo "!!! fuzz.sh: SKIPPED: $1"
    echo "!!! No fuzzing ran (tests/fuzz_models.rs still runs the harnesses)."
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    if [[ "${CI:-}" == "true" ]]; then
        echo "fuzz.sh: CI=true: a skipped fuzz run fails CI" >&2
        exit 1
    fi
    exit 0
}

if ! cargo +nightly --version >/dev/null 2>&1; then
    skip "no nightly toolchain installed (cargo-fuzz needs nightly; 'rustup toolchain install nightly' enables it)"
fi

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz (cargo install --locked cargo-fuzz)"
    if ! cargo install --locked cargo-fuzz; then
        skip "cargo-fuzz is missing and could not be installed"
    fi
fi

cd fuzz
mapfile -t targets < <(cargo +nightly fuzz list)
if [ "${#targets[@]}" -eq 0 ]; then
    echo "fuzz.sh: no fuzz targets found" >&2
    exit 2
fi

echo "fuzz.sh: building ${targets[*]}"
if ! cargo +nightly fuzz build; then
    echo "fuzz.sh: build failed" >&2
    exit 2
fi

failed=()
summary=()
for target in "${targets[@]}"; do
    corpus="corpus/$target"
    mkdir -p "$corpus"
    # Committed regressions seed the corpus (read-only: libFuzzer writes new
    # inputs to the first directory only).
    dirs=("$corpus")
    if [ -d "regressions/$target" ]; then
        dirs+=("regressions/$target")
    fi
    log="$(mktemp)"
    echo "fuzz.sh: running $target for ${seconds}s"
    cargo +nightly fuzz run "$target" "${dirs[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 ${FUZZ_SEED:+-seed="$FUZZ_SEED"} >"$log" 2>&1
    status=$?
    runs="$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)"
    runs="${runs:-$(grep -oE 'Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' | tail -1)}"
    if [ "$status" -ne 0 ]; then
        # The panic message and what the harness was checking, not the
        # sanitizer's backtrace.
        grep -A4 -m1 'panicked at' "$log" || tail -n 40 "$log"
        grep -m1 'SUMMARY' "$log"
        artifact="$(grep -oE "artifacts/$target/[^ ]+" "$log" | tail -1)"
        echo "fuzz.sh: $target: CRASH (exit $status) after ${runs:-?} executions; input: fuzz/${artifact:-artifacts/$target/}"
        echo "fuzz.sh: reproduce with: cd fuzz && cargo +nightly fuzz run $target ${artifact:-<artifact>}"
        failed+=("$target")
        summary+=("$target: CRASH after ${runs:-?} executions")
    else
        summary+=("$target: ${runs:-?} executions in ${seconds}s, no crash")
    fi
    rm -f "$log"
done

echo "fuzz.sh: summary"
for line in "${summary[@]}"; do
    echo "  $line"
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz.sh: FAILED: ${failed[*]}"
    exit 1
fi
echo "fuzz.sh: ok: ${#targets[@]} targets, ${seconds}s each, no crash"
