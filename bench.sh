#!/usr/bin/env bash
# Runs the whole benchmark suite (every scenario, every implementation, one
# invocation), prints the ratio table and writes it into BENCHMARKS.md.
#
#   ./bench.sh                 full run (about 10 minutes on 2 cores)
#   ./bench.sh 3_contended     only the groups matching a criterion filter;
#                              earlier results of other groups are kept
#
# BENCH_MEASUREMENT_TIME / BENCH_WARM_UP_TIME (seconds) trade time for noise.
set -euo pipefail
cd "$(dirname "$0")"

measure="${BENCH_MEASUREMENT_TIME:-8}"
warmup="${BENCH_WARM_UP_TIME:-1}"

if [ "$#" -eq 0 ]; then
    # A full run starts clean, so no stale result slips into the table.
    rm -rf target/criterion
fi

cargo bench --bench semaphore -- --warm-up-time "$warmup" --measurement-time "$measure" "$@"
cargo bench --bench memory | tee target/memory.md
python3 benches/report.py --memory target/memory.md --write BENCHMARKS.md \
    --settings "measurement ${measure} s, warm-up ${warmup} s"
