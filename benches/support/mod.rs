//! What the contended benchmarks of `semaphore.rs`, `rate.rs` and
//! `paired.rs` share: one 2-worker tokio runtime, tasks spawned and
//! joined, long groups, the admit-all quotas (`quota`) and scenario 7's
//! contended runs (`composite`).

use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use tokio::runtime::Runtime;

// Unused by semaphore.rs, which times neither rates nor scenario 7.
#[allow(dead_code)]
pub mod composite;
#[allow(dead_code)]
pub mod quota;

/// The shared runtime: 2 workers, as the machine has 2 cores.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio runtime")
}

/// Spawns `tasks` tasks running `body(task_index)` on `rt`, waits for all of
/// them, and returns the wall time from the first spawn to the last join.
pub fn run_tasks<F, Fut>(rt: &Runtime, tasks: usize, body: F) -> Duration
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    rt.block_on(async {
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks).map(|i| tokio::spawn(body(i))).collect();
        for h in handles {
            h.await.expect("task panicked");
        }
        start.elapsed()
    })
}

/// Times `iters` complete runs of `run`.
pub fn time_runs(iters: u64, mut run: impl FnMut() -> Duration) -> Duration {
    (0..iters).map(|_| run()).sum()
}

pub fn long_group<'a>(
    c: &'a mut Criterion,
    name: &str,
    elements: usize,
) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.throughput(Throughput::Elements(elements as u64));
    g
}
