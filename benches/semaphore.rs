//! Semaphores side by side: `limiters` against tokio, async-lock and
//! futures-intrusive, plus bare-atomic baselines, all in one invocation so the
//! ratios compare like with like on a noisy machine.
//!
//! Scenarios (numbered as in `BENCHMARKS.md`):
//!
//! 1. `try_acquire` + drop, uncontended, one thread; a CAS loop and a
//!    `fetch_sub`/`fetch_add` pair as the physical floor.
//! 2. `acquire().await` + drop, uncontended, inside one `block_on`.
//! 3. Contended throughput: T tasks on one 2-worker tokio runtime, each doing
//!    M x {acquire; yield_now; release}, with 1 and 8 permits.
//! 4. Mixed-weight `acquire_many` under contention: capacity 16, 64 tasks,
//!    weights 1, 2, 3, 5, 8.
//!
//! Run with `./bench.sh` (which also writes the ratio table), or
//! `cargo bench --bench semaphore -- <filter>`.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use futures_lite::future::block_on;
use tokio::runtime::Runtime;

mod support;
use support::{long_group, run_tasks, runtime, time_runs};

/// Acquisitions per contended run (T tasks x M each), the same for every
/// shape so the timings are comparable across shapes too.
const CONTENDED_OPS: usize = 64_000;
/// Weights cycled over the tasks of the weighted scenario.
const WEIGHTS: [usize; 5] = [1, 2, 3, 5, 8];

// ---------------------------------------------------------------------------
// 1. uncontended try_acquire + drop

fn try_acquire(c: &mut Criterion) {
    let mut g = c.benchmark_group("1_try_acquire");

    let sem = limiters::Semaphore::new(1);
    g.bench_function("limiters", |b| {
        b.iter(|| drop(black_box(sem.try_acquire().unwrap())))
    });

    let bounded = limiters::BoundedSemaphore::new(1);
    g.bench_function("limiters_bounded", |b| {
        b.iter(|| drop(black_box(bounded.try_acquire().unwrap())))
    });

    let sem = tokio::sync::Semaphore::new(1);
    g.bench_function("tokio", |b| {
        b.iter(|| drop(black_box(sem.try_acquire().unwrap())))
    });

    let sem = async_lock::Semaphore::new(1);
    g.bench_function("async_lock", |b| {
        b.iter(|| drop(black_box(sem.try_acquire().unwrap())))
    });

    let sem = futures_intrusive::sync::Semaphore::new(true, 1);
    g.bench_function("futures_intrusive", |b| {
        b.iter(|| drop(black_box(sem.try_acquire(1).unwrap())))
    });

    // The floor: what any one-word semaphore must do at least. A CAS loop
    // that takes one unit if there is one, and a fetch_add to give it back.
    let word = AtomicUsize::new(1);
    g.bench_function("baseline_cas_loop", |b| {
        b.iter(|| {
            let word = black_box(&word);
            let mut cur = word.load(Ordering::Relaxed);
            loop {
                assert!(cur > 0);
                match word.compare_exchange_weak(cur, cur - 1, Ordering::Acquire, Ordering::Relaxed)
                {
                    Ok(_) => break,
                    Err(actual) => cur = actual,
                }
            }
            word.fetch_add(1, Ordering::Release);
        })
    });

    // Two unconditional read-modify-writes: cheaper than any semaphore that
    // must refuse when empty.
    g.bench_function("baseline_fetch_sub_add", |b| {
        b.iter(|| {
            let word = black_box(&word);
            let prev = word.fetch_sub(1, Ordering::Acquire);
            black_box(prev);
            word.fetch_add(1, Ordering::Release);
        })
    });
    g.finish();
}

// ---------------------------------------------------------------------------
// 2. uncontended acquire().await + drop

/// Runs `iters` acquire+drop rounds inside one `block_on` and times them.
macro_rules! time_awaits {
    ($iters:expr, $acquire:expr) => {{
        block_on(async {
            let start = Instant::now();
            for _ in 0..$iters {
                drop(black_box($acquire.await));
            }
            start.elapsed()
        })
    }};
}

fn acquire_await(c: &mut Criterion) {
    let mut g = c.benchmark_group("2_acquire_await");

    let sem = limiters::Semaphore::new(1);
    g.bench_function("limiters", |b| {
        b.iter_custom(|iters| time_awaits!(iters, sem.acquire()))
    });

    let bounded = limiters::BoundedSemaphore::new(1);
    g.bench_function("limiters_bounded", |b| {
        b.iter_custom(|iters| time_awaits!(iters, bounded.acquire()))
    });

    let sem = tokio::sync::Semaphore::new(1);
    g.bench_function("tokio", |b| {
        b.iter_custom(|iters| time_awaits!(iters, sem.acquire()))
    });

    let sem = async_lock::Semaphore::new(1);
    g.bench_function("async_lock", |b| {
        b.iter_custom(|iters| time_awaits!(iters, sem.acquire()))
    });

    let sem = futures_intrusive::sync::Semaphore::new(true, 1);
    g.bench_function("futures_intrusive", |b| {
        b.iter_custom(|iters| time_awaits!(iters, sem.acquire(1)))
    });
    g.finish();
}

// ---------------------------------------------------------------------------
// 3. contended throughput, 4. weighted

/// One contended shape: `tasks` tasks on `rt`, task `i` taking `weight(i)`
/// permits `rounds` times.
struct Shape<'a> {
    rt: &'a Runtime,
    tasks: usize,
    rounds: usize,
    weight: fn(usize) -> usize,
}

/// Adds one implementation to a contended group: per timed run a fresh
/// semaphore `$new`, shared by the shape's tasks; each acquires with
/// `$acquire` (`$sem` and `$w` bound to the semaphore and the task's weight)
/// and holds the permit across a `yield_now`.
macro_rules! bench_contended {
    ($g:expr, $shape:expr, $id:expr, $new:expr, |$sem:ident, $w:ident| $acquire:expr) => {{
        let shape: &Shape = $shape;
        $g.bench_function($id, |b| {
            b.iter_custom(|iters| {
                time_runs(iters, || {
                    let shared = Arc::new($new);
                    run_tasks(shape.rt, shape.tasks, |i| {
                        let $sem = Arc::clone(&shared);
                        let $w = (shape.weight)(i);
                        let rounds = shape.rounds;
                        async move {
                            for _ in 0..rounds {
                                let permit = $acquire;
                                tokio::task::yield_now().await;
                                drop(permit);
                            }
                        }
                    })
                })
            })
        });
    }};
}

fn contended(c: &mut Criterion) {
    let rt = runtime();
    for tasks in [64, 1000] {
        for permits in [1, 8] {
            let rounds = CONTENDED_OPS / tasks;
            let s = &Shape {
                rt: &rt,
                tasks,
                rounds,
                weight: |_| 1,
            };
            let mut g = long_group(
                c,
                &format!("3_contended_t{tasks}_p{permits}"),
                rounds * tasks,
            );
            bench_contended!(
                g,
                s,
                "limiters",
                limiters::Semaphore::new(permits),
                |sem, _w| sem.acquire().await.unwrap()
            );
            bench_contended!(
                g,
                s,
                "tokio",
                tokio::sync::Semaphore::new(permits),
                |sem, _w| sem.acquire().await.unwrap()
            );
            bench_contended!(
                g,
                s,
                "async_lock",
                async_lock::Semaphore::new(permits),
                |sem, _w| sem.acquire().await
            );
            let new = futures_intrusive::sync::Semaphore::new;
            bench_contended!(g, s, "futures_intrusive", new(true, permits), |sem, w| {
                sem.acquire(w).await
            });
            g.finish();
        }
    }
}

fn weighted(c: &mut Criterion) {
    let rt = runtime();
    let capacity = 16;
    let s = &Shape {
        rt: &rt,
        tasks: 64,
        rounds: CONTENDED_OPS / 64,
        weight: |i| WEIGHTS[i % WEIGHTS.len()],
    };
    let mut g = long_group(c, "4_weighted", s.rounds * s.tasks);
    bench_contended!(
        g,
        s,
        "limiters",
        limiters::Semaphore::new(capacity),
        |sem, w| { sem.acquire_many(w).await.unwrap() }
    );
    bench_contended!(
        g,
        s,
        "tokio",
        tokio::sync::Semaphore::new(capacity),
        |sem, w| { sem.acquire_many(w as u32).await.unwrap() }
    );
    // async-lock has no weighted acquire; futures-intrusive does, fair and
    // unfair.
    let new = futures_intrusive::sync::Semaphore::new;
    bench_contended!(g, s, "futures_intrusive", new(true, capacity), |sem, w| {
        sem.acquire(w).await
    });
    bench_contended!(
        g,
        s,
        "futures_intrusive_unfair",
        new(false, capacity),
        |sem, w| { sem.acquire(w).await }
    );
    g.finish();
}

criterion_group!(benches, try_acquire, acquire_await, contended, weighted);
criterion_main!(benches);
