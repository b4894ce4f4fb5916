//! The fuzz harnesses of `fuzz/` run as ordinary tests: on proptest inputs
//! (so the reference models run on stable, in every CI run) and on every
//! input committed under `fuzz/regressions/<target>/` (crashes the fuzzer
//! found, kept as regression tests once fixed).

#[path = "../fuzz/src/wake_counter.rs"]
mod wake_counter;

#[path = "../fuzz/src/work.rs"]
#[allow(dead_code)]
mod work;

#[path = "../fuzz/src/sem.rs"]
#[allow(dead_code)]
mod sem;

#[path = "../fuzz/src/semaphore.rs"]
#[allow(dead_code)]
mod semaphore_model;

use std::path::Path;

use proptest::collection::vec;
use proptest::prelude::*;
use semaphore_model::Kind;

/// Replays every input committed under `fuzz/regressions/<target>/`. A
/// missing or empty folder fails: a typo in the target's name, or a folder
/// lost in a move, must not pass as "no regression".
fn replay(target: &str, run: impl Fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    let mut replayed = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        eprintln!("replaying {}", path.display());
        run(&data);
        replayed += 1;
    }
    assert!(replayed > 0, "no input in {}", dir.display());
}

#[test]
fn semaphore_regressions() {
    replay("semaphore", |data| semaphore_model::run(Kind::Plain, data));
}

#[test]
fn bounded_regressions() {
    replay("bounded", |data| semaphore_model::run(Kind::Bounded, data));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn semaphore_matches_model(data in vec(any::<u8>(), 0..1500)) {
        semaphore_model::run(Kind::Plain, &data);
    }

    #[test]
    fn bounded_matches_model(data in vec(any::<u8>(), 0..1500)) {
        semaphore_model::run(Kind::Bounded, &data);
    }
}

#[path = "../fuzz/src/rate.rs"]
mod rate_model;

#[test]
fn rate_regressions() {
    replay("rate", rate_model::run);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn rate_limiter_matches_model(data in vec(any::<u8>(), 0..1500)) {
        rate_model::run(&data);
    }
}

#[path = "../fuzz/src/token_bucket.rs"]
mod token_bucket_model;

#[test]
fn token_bucket_regressions() {
    replay("token_bucket", token_bucket_model::run);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn token_bucket_matches_model(data in vec(any::<u8>(), 0..1500)) {
        token_bucket_model::run(&data);
    }

    /// The same from just before the bucket moves to its 16-byte word.
    #[test]
    fn token_bucket_matches_model_across_the_move(data in vec(any::<u8>(), 0..1500)) {
        token_bucket_model::run_across_the_move(&data);
    }
}

#[path = "../fuzz/src/limiter.rs"]
mod limiter_model;

#[test]
fn limiter_regressions() {
    replay("limiter", limiter_model::run);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn limiter_holds_its_limits_and_never_deadlocks(data in vec(any::<u8>(), 0..1500)) {
        limiter_model::run(&data);
    }
}

#[path = "../fuzz/src/keyed.rs"]
mod keyed_model;

#[test]
fn keyed_regressions() {
    replay("keyed", keyed_model::run);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn keyed_limiter_shares_fairly_and_never_deadlocks(data in vec(any::<u8>(), 0..1500)) {
        keyed_model::run(&data);
    }
}

#[path = "../fuzz/src/window.rs"]
mod window_model;

#[test]
fn window_regressions() {
    replay("window", window_model::run);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn sliding_window_matches_model(data in vec(any::<u8>(), 0..1500)) {
        window_model::run(&data);
    }
}
