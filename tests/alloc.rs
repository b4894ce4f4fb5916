//! A contended wait allocates nothing: the queue node lives inside the
//! acquire future. Counted with a global allocator that counts this thread's
//! allocations only.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Waker};

use limiters::{BoundedSemaphore, Semaphore};

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
fn contended_wait_grant_and_cancel_allocate_nothing() {
    let sem = Semaphore::new(1);
    let waker = Waker::from(Arc::new(common::CountingWaker::default()));
    let mut cx = Context::from_waker(&waker);

    // The counter does count: a box is one allocation.
    let before = allocs();
    drop(std::hint::black_box(Box::new(1u64)));
    assert_eq!(allocs() - before, 1);

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
