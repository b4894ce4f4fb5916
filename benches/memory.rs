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
    // TODO(rate): RateLimiter, TokenBucket and Limiter rows (and governor,
    // leaky-bucket) once they are on main.
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

    // The issue-5 targets that this binary measures.
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
    // TODO(rate): RateLimiter::acquire vs governor until_ready and
    // leaky-bucket acquire once the rate limiter is on main.
}
