//! Scenario 7, contended, measured in pairs: `Limiter::run` and the
//! hand-written tokio `Semaphore` + governor pair alternate run by run in
//! one process, and each pair of runs gives one time ratio.
//!
//! Criterion times each implementation for seconds before the other, and
//! this 2-core VM switches between a fast and a slow mode on about that
//! scale, so one round's ratio of the contended composite swung from 0.28
//! to 1.25. Runs of 17-30 ms back to back see the same mode: within a
//! process the ratios' interquartile range is about +-0.02. `./bench.sh`
//! runs this once per round (each round a new process) and the report
//! takes the median of the rounds' median ratios.
//!
//! Prints one line per scenario:
//! `paired <group> <median ratio> <p25> <p75> <limiters ms> <peer ms> <pairs>`
//! (the times are the medians of each side's runs).

// Only the runtime and scenario 7: the criterion helpers go unused.
#[allow(dead_code)]
mod support;
use support::{composite, runtime};

/// Pairs measured, after `WARM_UP` pairs that are not.
const PAIRS: usize = 60;
const WARM_UP: usize = 5;

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let rt = runtime();
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // binary without it (unoptimised): one pair there, to show it runs,
    // printed so that no report reads it as a measurement.
    if !std::env::args().any(|a| a == "--bench") {
        let ratio = composite::limiters(&rt).as_secs_f64()
            / composite::tokio_semaphore_governor(&rt).as_secs_f64();
        println!("paired: one pair outside `cargo bench` (not a measurement): {ratio:.2}");
        return;
    }
    for _ in 0..WARM_UP {
        composite::limiters(&rt);
        composite::tokio_semaphore_governor(&rt);
    }
    let (mut ratios, mut ours, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..PAIRS {
        // Alternate which side goes first, so neither always follows the
        // other's cache and scheduler state.
        let (a, b) = if i % 2 == 0 {
            let a = composite::limiters(&rt);
            (a, composite::tokio_semaphore_governor(&rt))
        } else {
            let b = composite::tokio_semaphore_governor(&rt);
            (composite::limiters(&rt), b)
        };
        ratios.push(a.as_secs_f64() / b.as_secs_f64());
        ours.push(a.as_secs_f64() * 1e3);
        theirs.push(b.as_secs_f64() * 1e3);
    }
    for v in [&mut ratios, &mut ours, &mut theirs] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "paired 7_composite_contended {:.4} {:.4} {:.4} {:.2} {:.2} {PAIRS}",
        quantile(&ratios, 0.5),
        quantile(&ratios, 0.25),
        quantile(&ratios, 0.75),
        quantile(&ours, 0.5),
        quantile(&theirs, 0.5),
    );
}
