//! Rate limiters and the composite side by side: `limiters` against governor
//! and leaky-bucket (and a hand-written tokio semaphore + governor pair for
//! the composite), all in one invocation.
//!
//! Scenarios (numbered as in `BENCHMARKS.md`):
//!
//! 5. `check` that admits (a quota that never denies), `check` that denies
//!    (each also for the token bucket and the sliding window),
//!    the same two on hand-advanced clocks (the algorithm without the clock
//!    read), and keyed `check` with 1 key and with 10,000 keys (idle between
//!    visits, so evicted and re-inserted, and busy, so kept).
//! 7. Composite `run` overhead, uncontended, inside one `block_on`:
//!    `Limiter` with concurrency + rate vs tokio `Semaphore` + governor;
//!    and contended: 64 tasks on a 2-worker tokio runtime through
//!    concurrency 8, each run's work one `yield_now`.
//!
//! Run with `./bench.sh` or `cargo bench --bench rate -- <filter>`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use futures_lite::future::block_on;

mod support;
use support::quota::{admit_all, governor_admit_all, nz};
use support::{long_group, runtime, time_runs};

/// Number of distinct keys in the "many keys" keyed scenario.
const KEYS: u64 = 10_000;

/// A leaky bucket that never runs dry at benchmark speed.
fn leaky_admit_all() -> leaky_bucket::RateLimiter {
    leaky_bucket::RateLimiter::builder()
        .max(usize::MAX / 2)
        .initial(usize::MAX / 2)
        .refill(usize::MAX / 4)
        .interval(Duration::from_millis(1))
        .build()
}

// ---------------------------------------------------------------------------
// 5. check

fn check_allow(c: &mut Criterion) {
    let mut g = c.benchmark_group("5_check_allow");

    let rl = limiters::RateLimiter::new(admit_all());
    g.bench_function("limiters", |b| b.iter(|| black_box(rl.check()).unwrap()));

    let tb = limiters::TokenBucket::builder()
        .max(u32::MAX)
        .initial(u32::MAX)
        .refill(u32::MAX)
        .interval(Duration::from_millis(1))
        .build()
        .expect("token bucket");
    g.bench_function("limiters_token_bucket", |b| {
        b.iter(|| black_box(tb.check()).unwrap())
    });

    // An exact window that never fills at benchmark speed (4,096 cells per
    // microsecond): each check purges what left the window and appends
    // its instant to the log.
    let sw = limiters::SlidingWindow::new(4_096, Duration::from_micros(1));
    g.bench_function("limiters_sliding_window", |b| {
        b.iter(|| black_box(sw.check()).unwrap())
    });

    let gov = governor::RateLimiter::direct(governor_admit_all());
    g.bench_function("governor", |b| b.iter(|| black_box(gov.check()).unwrap()));

    let lb = leaky_admit_all();
    g.bench_function("leaky_bucket", |b| {
        b.iter(|| assert!(black_box(lb.try_acquire(1))))
    });

    // The floor of any check that reads `std::time::Instant` (what
    // `SystemClock` does): one clock read, nothing else. governor reads a
    // TSC-based `quanta` clock instead.
    g.bench_function("baseline_instant_now", |b| {
        b.iter(|| black_box(Instant::now()))
    });
    // The clock governor reads: quanta's TSC-based clock.
    let quanta = governor::clock::QuantaClock::default();
    g.bench_function("baseline_quanta_now", |b| {
        b.iter(|| black_box(governor::clock::Clock::now(&quanta)))
    });
    g.finish();
}

/// The same checks with the clock taken out: each limiter on its
/// hand-advanced test clock (`ManualClock`, governor's `FakeRelativeClock`),
/// whose reading is one atomic load. What is left is the algorithm and its
/// state word.
fn check_manual_clock(c: &mut Criterion) {
    let clock = governor::clock::FakeRelativeClock::default();

    let mut g = c.benchmark_group("5_check_allow_manual_clock");
    let rl = limiters::RateLimiter::with_clock(admit_all(), limiters::ManualClock::new());
    g.bench_function("limiters", |b| b.iter(|| black_box(rl.check()).unwrap()));
    let gov = governor::RateLimiter::direct_with_clock(governor_admit_all(), clock.clone());
    g.bench_function("governor", |b| b.iter(|| black_box(gov.check()).unwrap()));
    g.finish();

    let mut g = c.benchmark_group("5_check_deny_manual_clock");
    let rl = limiters::RateLimiter::with_clock(
        limiters::Quota::per_hour(1),
        limiters::ManualClock::new(),
    );
    rl.check().unwrap();
    g.bench_function("limiters", |b| {
        b.iter(|| black_box(rl.check()).unwrap_err())
    });
    let gov = governor::RateLimiter::direct_with_clock(governor::Quota::per_hour(nz(1)), clock);
    gov.check().unwrap();
    g.bench_function("governor", |b| {
        b.iter(|| black_box(gov.check()).unwrap_err())
    });
    g.finish();
}

fn check_deny(c: &mut Criterion) {
    let mut g = c.benchmark_group("5_check_deny");

    // One cell per hour, spent up front: every later check denies.
    let rl = limiters::RateLimiter::new(limiters::Quota::per_hour(1));
    rl.check().unwrap();
    g.bench_function("limiters", |b| {
        b.iter(|| black_box(rl.check()).unwrap_err())
    });

    let tb = limiters::TokenBucket::builder()
        .max(1)
        .initial(0)
        .refill(1)
        .interval(Duration::from_secs(3600))
        .build()
        .expect("token bucket");
    g.bench_function("limiters_token_bucket", |b| {
        b.iter(|| black_box(tb.check()).unwrap_err())
    });

    let sw = limiters::SlidingWindow::new(1, Duration::from_secs(3600));
    sw.check().unwrap();
    g.bench_function("limiters_sliding_window", |b| {
        b.iter(|| black_box(sw.check()).unwrap_err())
    });

    let gov = governor::RateLimiter::direct(governor::Quota::per_hour(nz(1)));
    gov.check().unwrap();
    g.bench_function("governor", |b| {
        b.iter(|| black_box(gov.check()).unwrap_err())
    });

    let lb = leaky_bucket::RateLimiter::builder()
        .max(1)
        .initial(0)
        .refill(1)
        .interval(Duration::from_secs(3600))
        .build();
    g.bench_function("leaky_bucket", |b| {
        b.iter(|| assert!(!black_box(lb.try_acquire(1))))
    });
    g.finish();
}

fn keyed(c: &mut Criterion) {
    // With the admit-all quota a key's credit is full again long before it
    // comes round, so `limiters` evicts it and inserts it again on its next
    // visit (governor keeps every key until `retain_recent` is called). In
    // the "busy" run every key stays in debt (100 per second, a huge burst,
    // visited every ~millisecond), so nothing is evicted.
    let busy = || limiters::Quota::per_second(100).allow_burst(u32::MAX);
    let governor_busy = || governor::Quota::per_second(nz(100)).allow_burst(nz(u32::MAX));
    for (name, keys, quota, governor_quota) in [
        ("5_keyed_1", 1, admit_all(), governor_admit_all()),
        ("5_keyed_10k", KEYS, admit_all(), governor_admit_all()),
        ("5_keyed_10k_busy", KEYS, busy(), governor_busy()),
    ] {
        let mut g = c.benchmark_group(name);

        let rl = limiters::KeyedRateLimiter::<u64>::new(quota);
        for k in 0..keys {
            rl.check(&k).unwrap();
        }
        let mut key = 0;
        g.bench_function("limiters", |b| {
            b.iter(|| {
                key = (key + 1) % keys;
                black_box(rl.check(black_box(&key))).unwrap()
            })
        });

        let gov = governor::RateLimiter::keyed(governor_quota);
        for k in 0..keys {
            gov.check_key(&k).unwrap();
        }
        let mut key = 0;
        g.bench_function("governor", |b| {
            b.iter(|| {
                key = (key + 1) % keys;
                black_box(gov.check_key(black_box(&key))).unwrap()
            })
        });
        g.finish();
    }
}

// ---------------------------------------------------------------------------
// 7. composite run overhead

fn composite(c: &mut Criterion) {
    let mut g = c.benchmark_group("7_composite_run");

    let limiter = limiters::Limiter::builder()
        .concurrency(16)
        .rate(admit_all())
        .build()
        .expect("limiter");
    g.bench_function("limiters", |b| {
        b.iter_custom(|iters| {
            block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    let out = limiter.run(async { black_box(i) }).await;
                    black_box(out.unwrap());
                }
                start.elapsed()
            })
        })
    });

    // What a user writes by hand without the composite: a tokio semaphore
    // for concurrency, then governor for the rate.
    let sem = tokio::sync::Semaphore::new(16);
    let gov = governor::RateLimiter::direct(governor_admit_all());
    g.bench_function("tokio_semaphore_governor", |b| {
        b.iter_custom(|iters| {
            block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    let permit = sem.acquire().await.unwrap();
                    gov.until_ready().await;
                    black_box(async { black_box(i) }.await);
                    drop(permit);
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

/// 64 tasks through concurrency 8 and a rate that admits everything
/// (`support::composite` has the scenario; `paired.rs` times it too).
fn composite_contended(c: &mut Criterion) {
    let rt = runtime();
    let mut g = long_group(
        c,
        "7_composite_contended",
        support::composite::TASKS * support::composite::ROUNDS,
    );
    g.bench_function("limiters", |b| {
        b.iter_custom(|iters| time_runs(iters, || support::composite::limiters(&rt)))
    });
    g.bench_function("tokio_semaphore_governor", |b| {
        b.iter_custom(|iters| {
            time_runs(iters, || support::composite::tokio_semaphore_governor(&rt))
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    check_allow,
    check_deny,
    check_manual_clock,
    keyed,
    composite,
    composite_contended
);
criterion_main!(benches);
