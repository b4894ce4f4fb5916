#!/usr/bin/env bash
# Instructions per operation, counted by valgrind's callgrind for `limiters`
# and its peers (benches/instructions.rs says what each row runs), checked
# against the budgets in benches/instruction-budgets.txt. Instruction counts
# do not move with the load of a shared machine the way times do, so this is
# the guard CI runs; ./bench.sh puts the table into BENCHMARKS.md.
#
#   benches/instructions.sh             measure, print the table, check budgets
#   benches/instructions.sh --update    measure and rewrite the budgets file
#
# Writes the Markdown table to target/instructions.md. Exit status: 0 when
# every `limiters` row is within 10% of its budget, 1 when one grew more
# (or has no budget, or a budgeted row is gone), 2 when valgrind is missing
# and cannot be installed or the build fails. Takes a few seconds once the
# bench binary is built (`cargo bench --no-run` builds it).
set -euo pipefail
cd "$(dirname "$0")/.."

update=false
case "${1:-}" in
    "") ;;
    --update) update=true ;;
    *) echo "usage: $0 [--update]" >&2; exit 2 ;;
esac

if ! command -v valgrind >/dev/null 2>&1; then
    echo "instructions.sh: valgrind is missing; installing it (apt-get install -y valgrind)"
    if [ "$(id -u)" -ne 0 ] || ! { apt-get install -y valgrind >/dev/null 2>&1 ||
        { apt-get update >/dev/null 2>&1 && apt-get install -y valgrind >/dev/null 2>&1; }; }; then
        echo "instructions.sh: FAILED: valgrind is not installed and could not be installed:" \
            "the instruction budgets were NOT checked" >&2
        exit 2
    fi
fi

bin="$(cargo bench --locked --bench instructions --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "instructions" and m.get("executable"):
        print(m["executable"])')"
if [ -z "$bin" ]; then
    echo "instructions.sh: FAILED: could not build benches/instructions.rs" >&2
    exit 2
fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
# Count only inside `counted` (one loop of ITERS operations) and write one
# profile after each call of it: profile N is row N of the binary's output.
valgrind --tool=callgrind --collect-atstart=no --dump-instr=no \
    --toggle-collect='instructions::counted' --dump-after='instructions::counted' \
    --callgrind-out-file="$out/cg" "$bin" >"$out/rows" 2>"$out/log" || {
    tail -n 20 "$out/log" >&2
    echo "instructions.sh: FAILED: the bench binary failed under valgrind" >&2
    exit 2
}
iters="$(grep -oE '^const ITERS: u64 = [0-9_]+' benches/instructions.rs | grep -oE '[0-9_]+$' | tr -d _)"

python3 - "$out" "$iters" "$update" <<'EOF'
import glob, os, re, sys

out, iters, update = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "true"
BUDGETS = "benches/instruction-budgets.txt"
SLACK = 1.10

rows = [tuple(l.split()) for l in open(os.path.join(out, "rows")) if l.strip()]
dumps = sorted(glob.glob(os.path.join(out, "cg.*")), key=lambda p: int(p.rsplit(".", 1)[1]))
if len(dumps) != len(rows):
    sys.exit(f"instructions.sh: FAILED: {len(rows)} rows but {len(dumps)} callgrind profiles")
counts = {}
for row, path in zip(rows, dumps):
    total = int(re.search(r"^summary: (\d+)", open(path).read(), re.M).group(1))
    counts[row] = total / iters

budgets = {}
if os.path.exists(BUDGETS):
    for line in open(BUDGETS):
        if line.strip() and not line.startswith("#"):
            op, impl, budget = line.split()
            budgets[(op, impl)] = int(budget)

ours = lambda impl: impl.startswith("limiters")
table = ["| operation | implementation | instructions / op | limiters / this | budget |",
         "| --- | --- | ---: | ---: | ---: |"]
failures, stale = [], []
for (op, impl), n in counts.items():
    base = counts.get((op, "limiters"))
    ratio = f"{base / n:.2f}" if base and impl != "limiters" else ""
    budget = budgets.get((op, impl))
    table.append(f"| {op} | {impl} | {n:.0f} | {ratio} | {budget if budget else ''} |")
    if not ours(impl) or update:
        continue
    if budget is None:
        failures.append(f"{op} {impl}: {n:.0f} instructions and no budget (run benches/instructions.sh --update)")
    elif n > budget * SLACK:
        failures.append(f"{op} {impl}: {n:.0f} instructions, {n / budget - 1:+.0%} over its budget of {budget}")
    elif n < budget / SLACK:
        stale.append(f"{op} {impl}: {n:.0f} instructions, {n / budget - 1:+.0%} under its budget of {budget}")
for key in budgets:
    if key not in counts and not update:
        failures.append(f"{' '.join(key)}: budgeted but no longer measured")

text = "\n".join(table)
print(text)
os.makedirs("target", exist_ok=True)
with open("target/instructions.md", "w") as f:
    f.write(text + "\n")

if update:
    with open(BUDGETS, "w") as f:
        f.write("# Instructions per operation that `limiters` may not exceed by more than 10%\n")
        f.write("# (benches/instructions.sh checks them in CI; `--update` rewrites this file).\n")
        f.write("# operation implementation budget\n")
        for (op, impl), n in counts.items():
            if ours(impl):
                f.write(f"{op} {impl} {round(n)}\n")
    print(f"instructions.sh: wrote {BUDGETS}")
    sys.exit(0)
for line in stale:
    print(f"instructions.sh: note: {line}: lower the budget with --update")
if failures:
    for line in failures:
        print(f"instructions.sh: FAILED: {line}")
    sys.exit(1)
print(f"instructions.sh: ok: {sum(map(ours, (i for _, i in counts)))} rows within 10% of their budgets")
EOF
