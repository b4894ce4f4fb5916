//! Fuzz harnesses for `limiters`. Each module drives one primitive with an
//! operation sequence decoded from the fuzzer's bytes and checks it against a
//! plain reference model after every step.
//!
//! The harness files are also compiled into the crate's ordinary test suite
//! (`tests/fuzz_models.rs`), which runs them on proptest-generated inputs and
//! replays the committed regressions under `fuzz/regressions/`, so the models
//! run on stable and in CI even where no nightly toolchain is present.

pub mod keyed;
pub mod limiter;
pub mod rate;
pub mod sem;
pub mod semaphore;
pub mod token_bucket;
mod wake_counter;
pub mod window;
pub mod work;
