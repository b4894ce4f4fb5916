#!/usr/bin/env bash
# Runs the whole benchmark suite (every scenario, every implementation, one
# invocation per round), prints the ratio table and writes it into
# BENCHMARKS.md.
#
#   ./bench.sh                 full run: 3 rounds, about 13-15 minutes on 2 cores
#   ./bench.sh 3_contended     only the groups matching a criterion filter;
#                              earlier results of other groups are kept
#
# The machine is noisy (2 shared cores), so the suite runs in rounds, each
# saved as a criterion baseline (r1, r2, ...); the table reports the median of
# the per-round medians and their spread. Tune with BENCH_ROUNDS,
# BENCH_MEASUREMENT_TIME and BENCH_WARM_UP_TIME (seconds).
set -euo pipefail
cd "$(dirname "$0")"

rounds="${BENCH_ROUNDS:-3}"
measure="${BENCH_MEASUREMENT_TIME:-3}"
warmup="${BENCH_WARM_UP_TIME:-1}"

# The contended composite is also measured in pairs (benches/paired.rs):
# on a full run, or when the filter names its group.
paired=false
if [ "$#" -eq 0 ] || [[ "$*" == *7_composite* ]]; then
    paired=true
fi
if [ "$#" -eq 0 ]; then
    # A full run starts clean, so no stale result slips into the table.
    rm -rf target/criterion
fi
if $paired; then
    rm -f target/paired.txt
fi

cargo bench --bench semaphore --bench rate --bench precision --bench memory --bench instructions \
    --bench paired --no-run
for r in $(seq 1 "$rounds"); do
    echo "==> round $r of $rounds"
    cargo bench --bench semaphore --bench rate -- --warm-up-time "$warmup" \
        --measurement-time "$measure" --save-baseline "r$r" "$@"
    if $paired; then
        cargo bench --bench paired | tee -a target/paired.txt
    fi
done
echo "==> precision (scenario 6) and memory (scenario 8)"
cargo bench --bench precision | tee target/precision.md
cargo bench --bench memory | tee target/memory.md
echo "==> instructions per operation (callgrind)"
benches/instructions.sh || echo "bench.sh: the instruction budgets above were not met (the table is still written)"
python3 benches/report.py --precision target/precision.md --memory target/memory.md \
    --instructions target/instructions.md --paired target/paired.txt --write BENCHMARKS.md \
    --settings "$rounds rounds, measurement ${measure} s, warm-up ${warmup} s per benchmark and round"
