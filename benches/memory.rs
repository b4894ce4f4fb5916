//! Scenario 8, memory: `size_of` of every limiter, acquire future and permit,
//! and heap allocations per contended wait, counted with a global allocator.
//!
//! Not a criterion benchmark (nothing here is timed): it prints two Markdown
//! tables, which `./bench.sh` copies into `BENCHMARKS.md`. Run alone with
//! `cargo bench --bench memory`.
//!
//! A contended wait is counted the same way for every implementation, by
//! hand, with a waker that allocates nothing: one permit is held, `N`
//! acquire futures (boxed *before* counting starts) are polled once each and
//! queue up, then the held permit is dropped and each future in turn is
//! polled to completion and its permit dropped, which hands the permit to the
//! next. Every allocation between the first poll and the last drop is
//! charged to the `N` waits.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::mem::{size_of, size_of_val};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

// `nz` of the timed benches' quotas (the rest of `support` is criterion's
// and tokio's).
#[allow(dead_code)]
#[path = "support/quota.rs"]
mod quota;
use quota::nz;

/// Waiters per measurement.
const N: usize = 1000;

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; it only
// counts allocations on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> usize {
    ALLOCS.load(Ordering::Relaxed)
}

/// Allocations per contended wait, measured as described in the module docs.
/// `held` is the only permit; `make` creates one acquire future.
fn allocs_per_wait<H, F: Future>(held: H, mut make: impl FnMut() -> F) -> f64 {
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut futs: Vec<Pin<Box<F>>> = (0..N).map(|_| Box::pin(make())).collect();

    let before = allocs();
    for f in &mut futs {
        assert!(
            f.as_mut().poll(&mut cx).is_pending(),
            "a waiter did not queue"
        );
    }
    drop(held);
    for f in &mut futs {
        match f.as_mut().poll(&mut cx) {
            // Dropping the permit hands it to the next future in line.
            Poll::Ready(permit) => drop(permit),
            Poll::Pending => panic!("a waiter was not served in FIFO order"),
        }
    }
    let spent = allocs() - before;
    drop(futs);
    spent as f64 / N as f64
}

/// Rate-limited waiters per measurement, and their rate.
const RATE_WAITERS: usize = 50;
const RATE_WAIT_HZ: u32 = 1000;

fn token_bucket(per_second: u32) -> limiters::TokenBucket {
    limiters::TokenBucket::builder()
        .max(1)
        .initial(1)
        .refill(1)
        .interval(std::time::Duration::from_secs(1) / per_second)
        .build()
        .unwrap()
}

/// What drives the waiting futures of [`allocs_per_rate_wait`].
#[derive(Clone, Copy)]
enum Driver {
    /// The current-thread tokio runtime's `block_on`. Its waker does not
    /// `will_wake` its own clone, so a timer polled again with it
    /// re-registers itself (async-io's does) on every poll.
    Tokio,
    /// `futures_lite::future::block_on`, whose waker is stable (as are
    /// spawned tasks' wakers on any runtime).
    FuturesLite,
}

/// Allocations per wait for a rate limiter on the real clock: `RATE_WAITERS`
/// futures (boxed before counting starts) are driven together by one
/// allocation-free poll loop until all are admitted; everything allocated
/// meanwhile, on any thread (timers included), is charged to them.
fn allocs_per_rate_wait<F: Future>(
    rt: &tokio::runtime::Runtime,
    driver: Driver,
    mut make: impl FnMut() -> F,
) -> f64 {
    let mut futs: Vec<Option<Pin<Box<F>>>> =
        (0..RATE_WAITERS).map(|_| Some(Box::pin(make()))).collect();
    let measure = async {
        let before = allocs();
        std::future::poll_fn(|cx| {
            let mut pending = false;
            for slot in futs.iter_mut() {
                if let Some(f) = slot {
                    if f.as_mut().poll(cx).is_ready() {
                        *slot = None;
                    } else {
                        pending = true;
                    }
                }
            }
            if pending {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        (allocs() - before) as f64 / RATE_WAITERS as f64
    };
    match driver {
        Driver::Tokio => rt.block_on(measure),
        Driver::FuturesLite => futures_lite::future::block_on(measure),
    }
}

fn main() {
    // Sizes. Futures are measured from real values, since tokio's are
    // unnameable `async fn` futures.
    let l = limiters::Semaphore::new(1);
    let la = Arc::new(limiters::Semaphore::new(1));
    let lb = limiters::BoundedSemaphore::new(1);
    let t = tokio::sync::Semaphore::new(1);
    let ta = Arc::new(tokio::sync::Semaphore::new(1));
    let a = async_lock::Semaphore::new(1);
    let aa = Arc::new(async_lock::Semaphore::new(1));
    let fi = futures_intrusive::sync::Semaphore::new(true, 1);

    println!("| implementation | limiter | acquire future | owned acquire future | permit |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    println!(
        "| limiters `Semaphore` | {} | {} | {} | {} |",
        size_of::<limiters::Semaphore>(),
        size_of_val(&l.acquire()),
        size_of_val(&la.acquire_owned()),
        size_of::<limiters::Permit<'_>>(),
    );
    println!(
        "| limiters `BoundedSemaphore` | {} | {} | {} | {} |",
        size_of::<limiters::BoundedSemaphore>(),
        size_of_val(&lb.acquire()),
        size_of::<limiters::futures::AcquireOwned>(),
        size_of::<limiters::Permit<'_>>(),
    );
    println!(
        "| tokio `Semaphore` | {} | {} | {} | {} |",
        size_of::<tokio::sync::Semaphore>(),
        size_of_val(&t.acquire()),
        size_of_val(&Arc::clone(&ta).acquire_owned()),
        size_of::<tokio::sync::SemaphorePermit<'_>>(),
    );
    println!(
        "| async-lock `Semaphore` | {} | {} | {} | {} |",
        size_of::<async_lock::Semaphore>(),
        size_of_val(&a.acquire()),
        size_of_val(&aa.acquire_arc()),
        size_of::<async_lock::SemaphoreGuard<'_>>(),
    );
    println!(
        "| futures-intrusive `Semaphore` | {} | {} | n/a | {} |",
        size_of::<futures_intrusive::sync::Semaphore>(),
        size_of_val(&fi.acquire(1)),
        size_of::<futures_intrusive::sync::SemaphoreReleaser<'_>>(),
    );
    println!();

    // Rate limiters and the composite: the limiter and its waiting future.
    let rl = limiters::RateLimiter::new(limiters::Quota::per_second(10));
    let tb = token_bucket(10);
    let lim = limiters::Limiter::builder()
        .concurrency(4)
        .rate(limiters::Quota::per_second(10))
        .build()
        .unwrap();
    let gov = governor::RateLimiter::direct(governor::Quota::per_second(nz(10)));
    let lb = leaky_bucket::RateLimiter::builder().build();
    println!("| rate limiter | limiter | waiting future |");
    println!("| --- | ---: | ---: |");
    println!(
        "| limiters `RateLimiter` (`acquire`) | {} | {} |",
        size_of_val(&rl),
        size_of_val(&rl.acquire())
    );
    println!(
        "| limiters `TokenBucket` (`acquire`) | {} | {} |",
        size_of_val(&tb),
        size_of_val(&tb.acquire())
    );
    println!(
        "| limiters `Limiter` (`acquire`; `run` of a zero-sized future) | {} | {}; {} |",
        size_of_val(&lim),
        size_of_val(&lim.acquire()),
        size_of_val(&lim.run(std::future::ready(()))),
    );
    println!(
        "| governor direct `RateLimiter` (`until_ready`) | {} | {} |",
        size_of_val(&gov),
        size_of_val(&gov.until_ready())
    );
    println!(
        "| leaky-bucket `RateLimiter` (`acquire_one`) | {} | {} |",
        size_of_val(&lb),
        size_of_val(&lb.acquire_one())
    );
    println!();

    // Allocations per contended wait.
    let rows: [(&str, f64); 6] = [
        ("limiters `Semaphore::acquire`", {
            let s = limiters::Semaphore::new(1);
            allocs_per_wait(s.try_acquire().unwrap(), || s.acquire())
        }),
        ("limiters `Semaphore::acquire_owned`", {
            let s = Arc::new(limiters::Semaphore::new(1));
            allocs_per_wait(s.try_acquire().unwrap(), || s.acquire_owned())
        }),
        ("limiters `BoundedSemaphore::acquire`", {
            let s = limiters::BoundedSemaphore::new(1);
            allocs_per_wait(s.try_acquire().unwrap(), || s.acquire())
        }),
        ("tokio `Semaphore::acquire`", {
            let s = tokio::sync::Semaphore::new(1);
            allocs_per_wait(s.try_acquire().unwrap(), || s.acquire())
        }),
        ("async-lock `Semaphore::acquire`", {
            let s = async_lock::Semaphore::new(1);
            allocs_per_wait(s.try_acquire().unwrap(), || s.acquire())
        }),
        ("futures-intrusive `Semaphore::acquire` (fair)", {
            let s = futures_intrusive::sync::Semaphore::new(true, 1);
            allocs_per_wait(s.try_acquire(1).unwrap(), || s.acquire(1))
        }),
    ];
    println!("| contended wait | heap allocations per wait |");
    println!("| --- | ---: |");
    for (name, per_wait) in &rows {
        println!("| {name} | {per_wait:.2} |");
    }

    // Rate waits on the real clock, driven by one current-thread tokio
    // runtime (leaky-bucket needs tokio's timer; the others run anywhere).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let drivers = [Driver::Tokio, Driver::FuturesLite];
    let rate_rows: [(&str, [Option<f64>; 2]); 5] = [
        (
            "limiters `RateLimiter::acquire` (SystemClock)",
            drivers.map(|d| {
                let rl = limiters::RateLimiter::new(limiters::Quota::per_second(RATE_WAIT_HZ));
                Some(allocs_per_rate_wait(&rt, d, || rl.acquire()))
            }),
        ),
        (
            "limiters `TokenBucket::acquire` (SystemClock)",
            drivers.map(|d| {
                let tb = token_bucket(RATE_WAIT_HZ);
                Some(allocs_per_rate_wait(&rt, d, || tb.acquire()))
            }),
        ),
        (
            "limiters `SystemClock::sleep_until` alone (async-io `Timer`)",
            drivers.map(|d| {
                use limiters::Clock;
                let clock = limiters::SystemClock;
                let base = clock.now();
                let mut i = 0;
                Some(allocs_per_rate_wait(&rt, d, || {
                    i += 1;
                    clock.sleep_until(base + std::time::Duration::from_millis(i))
                }))
            }),
        ),
        (
            "governor `until_ready`",
            drivers.map(|d| {
                let quota = governor::Quota::per_second(nz(RATE_WAIT_HZ)).allow_burst(nz(1));
                let gov = governor::RateLimiter::direct(quota);
                Some(allocs_per_rate_wait(&rt, d, || gov.until_ready()))
            }),
        ),
        (
            // Its sleeps are tokio's, which only run inside the runtime.
            "leaky-bucket `acquire_one`",
            [
                Some({
                    let lb = leaky_bucket::RateLimiter::builder()
                        .max(1)
                        .initial(1)
                        .refill(1)
                        .interval(std::time::Duration::from_secs(1) / RATE_WAIT_HZ)
                        .build();
                    allocs_per_rate_wait(&rt, Driver::Tokio, || lb.acquire_one())
                }),
                None,
            ],
        ),
    ];
    println!();
    println!(
        "| rate wait ({RATE_WAITERS} waiters at {RATE_WAIT_HZ}/s, real clock) | allocations per wait, tokio current-thread `block_on` | allocations per wait, `futures_lite::future::block_on` |"
    );
    println!("| --- | ---: | ---: |");
    let cell = |v: Option<f64>| {
        v.map_or("n/a (needs tokio's timer)".to_string(), |v| {
            format!("{v:.2}")
        })
    };
    for (name, per_wait) in &rate_rows {
        println!("| {name} | {} | {} |", cell(per_wait[0]), cell(per_wait[1]));
    }
    let rate_allocs = rate_rows[..2]
        .iter()
        .flat_map(|r| r.1)
        .flatten()
        .fold(0.0, f64::max);

    // The targets (BENCHMARKS.md) that this binary measures.
    let acquire_size = size_of_val(&l.acquire()).max(size_of_val(&la.acquire_owned()));
    let our_allocs = rows[..3].iter().map(|r| r.1).fold(0.0, f64::max);
    let met = |ok: bool| if ok { "yes" } else { "**no**" };
    println!();
    println!("| memory target | limiters | limit | met |");
    println!("| --- | ---: | ---: | --- |");
    println!(
        "| `size_of` acquire future (`Acquire`, `AcquireOwned`) | {acquire_size} B | 64 B | {} |",
        met(acquire_size <= 64)
    );
    println!(
        "| heap allocations per contended semaphore wait | {our_allocs:.2} | 0 | {} |",
        met(our_allocs == 0.0)
    );
    println!(
        "| heap allocations per rate wait (real clock) | {rate_allocs:.2} | 0 | {} |",
        met(rate_allocs == 0.0)
    );
}
