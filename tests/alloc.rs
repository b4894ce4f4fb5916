//! A contended wait allocates nothing: a queued semaphore waiter, a waiting
//! rate-limiter or token-bucket acquire and a `ManualClock` sleep all live
//! inside their futures. Counted with a global allocator that counts this
//! thread's allocations only.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use limiters::{BoundedSemaphore, ManualClock, Quota, RateLimiter, Semaphore, TokenBucketBuilder};

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

#[test]
fn the_counter_counts() {
    let before = allocs();
    drop(std::hint::black_box(Box::new(1u64)));
    assert_eq!(allocs() - before, 1);
}

#[test]
fn contended_wait_grant_and_cancel_allocate_nothing() {
    let sem = Semaphore::new(1);
    let waker = Waker::from(Arc::new(common::CountingWaker::default()));
    let mut cx = Context::from_waker(&waker);

    let before = allocs();
    {
        let held = sem.try_acquire().unwrap();
        let mut first = pin!(sem.acquire());
        let mut second = pin!(sem.acquire_many(1));
        assert!(first.as_mut().poll(&mut cx).is_pending());
        assert!(second.as_mut().poll(&mut cx).is_pending());
        drop(held); // hand-off to `first`, which is woken
        let permit = match first.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(p) => p.unwrap(),
            std::task::Poll::Pending => panic!("first waiter was not granted"),
        };
        drop(permit); // hand-off to `second`
                      // `second` is dropped granted-but-unpolled: the permit goes back.
    }
    assert_eq!(
        allocs() - before,
        0,
        "heap allocations during contended waits"
    );
    assert_eq!(sem.available_permits(), 1);

    let bounded = BoundedSemaphore::new(1);
    let before = allocs();
    {
        let held = bounded.try_acquire().unwrap();
        let mut waiter = pin!(bounded.acquire());
        assert!(waiter.as_mut().poll(&mut cx).is_pending());
        held.forget();
        bounded.release(1).unwrap();
        assert!(waiter.as_mut().poll(&mut cx).is_ready());
    }
    assert_eq!(allocs() - before, 0);
}

#[test]
fn waiting_acquires_allocate_nothing() {
    let clock = ManualClock::new();
    let rl = RateLimiter::with_clock(Quota::per_second(10), clock.clone());
    let bucket = TokenBucketBuilder::new()
        .max(1)
        .build_with_clock(clock.clone())
        .unwrap();
    let waker = Waker::from(Arc::new(common::CountingWaker::default()));
    let mut cx = Context::from_waker(&waker);

    let before = allocs();
    let mut waits = 0;
    for _ in 0..100 {
        rl.check().unwrap_or(());
        let mut first = pin!(rl.acquire());
        let mut second = pin!(rl.acquire_many(1));
        let mut third = pin!(rl.acquire());
        assert!(first.as_mut().poll(&mut cx).is_pending());
        assert!(second.as_mut().poll(&mut cx).is_pending());
        assert!(third.as_mut().poll(&mut cx).is_pending());
        rl.set_quota(Quota::per_second(20)); // re-times the waiters
        clock.advance(Duration::from_millis(50));
        assert_eq!(first.as_mut().poll(&mut cx), Poll::Ready(()));
        assert!(second.as_mut().poll(&mut cx).is_pending());
        clock.advance(Duration::from_millis(50));
        assert!(second.as_mut().poll(&mut cx).is_ready());
        // `third` is dropped while waiting: refunded, unlinked.
        rl.set_quota(Quota::per_second(10));

        let _ = bucket.check();
        let mut token = pin!(bucket.acquire());
        assert!(token.as_mut().poll(&mut cx).is_pending());
        clock.advance(Duration::from_secs(1));
        assert!(token.as_mut().poll(&mut cx).is_ready());
        clock.advance(Duration::from_secs(1));
        waits += 4;
    }
    assert_eq!(
        allocs() - before,
        0,
        "heap allocations during {waits} waiting acquires"
    );
}

#[test]
fn blocking_acquires_allocate_nothing_after_the_threads_first() {
    let sem = Arc::new(Semaphore::new(1));
    let bounded = BoundedSemaphore::new(1);
    // The thread's first blocking wait makes its waker.
    drop(sem.acquire_blocking().unwrap());

    // A wait that really parks: a helper holds the only permit and drops it
    // once this thread is queued.
    let held = sem.clone().try_acquire_owned().unwrap();
    let watcher = Arc::clone(&sem);
    let helper = std::thread::spawn(move || {
        while watcher.waiters() == 0 {
            std::thread::yield_now();
        }
        drop(held);
    });

    let before = allocs();
    let permit = sem.acquire_blocking().unwrap();
    drop(permit);
    for _ in 0..10 {
        drop(sem.acquire_many_blocking(1).unwrap());
        drop(bounded.acquire_blocking().unwrap());
    }
    assert_eq!(
        allocs() - before,
        0,
        "heap allocations during 21 blocking acquires"
    );
    helper.join().unwrap();
}
