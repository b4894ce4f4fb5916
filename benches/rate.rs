//! Rate limiters and the composite side by side: `limiters` against governor
//! and leaky-bucket (and a hand-written tokio semaphore + governor pair for
//! the composite), all in one invocation.
//!
//! Scenarios (numbered as in `BENCHMARKS.md`):
//!
//! 5. `check` that admits (a quota that never denies), `check` that denies,
//!    and keyed `check` with 1 key and with 10,000 keys.
//! 7. Composite `run` overhead, uncontended, inside one `block_on`:
//!    `Limiter` with concurrency + rate vs tokio `Semaphore` + governor.
//!
//! Run with `./bench.sh` or `cargo bench --bench rate -- <filter>`.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use futures_lite::future::block_on;

/// Number of distinct keys in the "many keys" keyed scenario.
const KEYS: u64 = 10_000;

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("non-zero")
}

/// A quota that never denies at benchmark speed: u32::MAX cells per second
/// with a burst of u32::MAX.
fn admit_all() -> limiters::Quota {
    limiters::Quota::per_second(u32::MAX).allow_burst(u32::MAX)
}

fn governor_admit_all() -> governor::Quota {
    governor::Quota::per_second(nz(u32::MAX)).allow_burst(nz(u32::MAX))
}

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

    let gov = governor::RateLimiter::direct(governor_admit_all());
    g.bench_function("governor", |b| b.iter(|| black_box(gov.check()).unwrap()));

    let lb = leaky_admit_all();
    g.bench_function("leaky_bucket", |b| {
        b.iter(|| assert!(black_box(lb.try_acquire(1))))
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
    for (name, keys) in [("5_keyed_1", 1), ("5_keyed_10k", KEYS)] {
        let mut g = c.benchmark_group(name);

        let rl = limiters::KeyedRateLimiter::<u64>::new(admit_all());
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

        let gov = governor::RateLimiter::keyed(governor_admit_all());
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

criterion_group!(benches, check_allow, check_deny, keyed, composite);
criterion_main!(benches);
