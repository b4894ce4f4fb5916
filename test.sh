#!/usr/bin/env bash
# Runs every test of the crate: unit, integration and doc tests, the loom
# models, then a short fuzz run. This is what CI runs after its lint steps; a
# newcomer types it too.
#
#   ./test.sh           everything
#   ./test.sh --quick   skip the loom models and the fuzz run
set -euo pipefail
cd "$(dirname "$0")"

# In CI the proptests and the fuzz smoke run start from fixed seeds, so a run
# is reproducible and a red CI always means a real, replayable failure. Local
# runs draw new seeds every time and keep exploring (as do longer
# ./fuzz.sh runs); failures found there are saved as regressions.
if [[ "${CI:-}" == "true" ]]; then
  export PROPTEST_RNG_SEED="${PROPTEST_RNG_SEED:-20261129}"
  export FUZZ_SEED="${FUZZ_SEED:-20261129}"
fi

echo "==> cargo test --all-features (unit, integration, doc tests; tower, axum)"
cargo test --locked --all-features --all-targets
cargo test --locked --all-features --doc

echo "==> cargo test, default features (unit and integration tests)"
cargo test --locked --all-targets

echo "==> limiters-reqwest (workspace member): unit, integration (300 requests against a local server, and reqwest-ratelimit beside it), doc tests"
cargo test --locked -p limiters-reqwest

echo "==> limiters-redis against a real redis-server (its tests start their own)"
if ! command -v redis-server >/dev/null && [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null; then
  echo "test.sh: installing redis-server (apt-get install redis-server)"
  { apt-get install -y -qq redis-server >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq redis-server >/dev/null 2>&1; }; } ||
    echo "test.sh: could not install redis-server"
fi
if ! command -v redis-server >/dev/null; then
  if [[ "${LIMITERS_REQUIRE_REDIS:-}" == "1" ]]; then
    echo "error: LIMITERS_REQUIRE_REDIS=1 but there is no redis-server on PATH" >&2
    exit 1
  fi
  echo "!!!!! SKIPPING THE REDIS TESTS: no redis-server on PATH (apt-get install redis-server) !!!!!"
fi
# tests/fleet.rs runs the `fleet` example as 4 OS processes: build it first
# (`cargo test` builds examples without putting them at target/debug/examples/).
cargo build --locked -p limiters-redis --all-features --example fleet
cargo test --locked -p limiters-redis --all-features --all-targets
cargo test --locked -p limiters-redis --all-features --doc

echo "==> without default features (no async-io; no std): build, unit tests"
cargo build --locked --no-default-features
cargo test --locked --no-default-features --lib
cargo build --locked --no-default-features --features std

if [[ "${1:-}" != "--quick" ]]; then
  echo "==> loom models (RUSTFLAGS=--cfg loom, LOOM_MAX_PREEMPTIONS=2)"
  start=$SECONDS
  (cd loom-tests && RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 \
    cargo test --locked --release)
  echo "loom models took $((SECONDS - start)) s (build included)"
fi

if [[ "${1:-}" != "--quick" ]]; then
  echo "==> fuzz smoke run (./fuzz.sh ${FUZZ_SECONDS:-20} per target; skipped without nightly)"
  ./fuzz.sh "${FUZZ_SECONDS:-20}"
fi
