//! BoundedSemaphore: capacity checks, release accounting, and the semaphore
//! guarantees through the bounded front.

mod common;

use std::sync::Arc;

use common::Probe;
use limiters::{AcquireError, BoundedSemaphore, OverRelease, TryAcquireError};

#[test]
fn requests_above_capacity_fail_at_once_and_do_not_block_others() {
    let bs = BoundedSemaphore::new(10);
    let mut too_big = Probe::new(bs.acquire_many(11));
    assert!(too_big.poll());
    assert_eq!(
        too_big.take().unwrap_err(),
        AcquireError::ExceedsCapacity {
            requested: 11,
            capacity: 10
        }
    );
    assert_eq!(bs.waiters(), 0);
    assert_eq!(
        bs.try_acquire_many(11).unwrap_err(),
        TryAcquireError::ExceedsCapacity {
            requested: 11,
            capacity: 10
        }
    );
    // A request of exactly the capacity is served.
    let mut all = Probe::new(bs.acquire_many(10));
    assert!(all.poll());
    assert_eq!(bs.in_use(), 10);
}

#[test]
fn release_returns_only_detached_permits() {
    let bs = BoundedSemaphore::new(3);
    assert_eq!(
        bs.release(1),
        Err(err(1, 0)),
        "nothing detached: cannot release"
    );
    let held = bs.try_acquire().unwrap();
    assert_eq!(
        bs.release(1),
        Err(err(1, 0)),
        "held permits return on drop only"
    );
    bs.try_acquire_many(2).unwrap().forget();
    assert_eq!(
        (bs.detached(), bs.in_use(), bs.available_permits()),
        (2, 3, 0)
    );
    assert_eq!(bs.release(3), Err(err(3, 2)));
    assert_eq!(
        bs.available_permits(),
        0,
        "a failed release changes nothing"
    );
    assert_eq!(bs.release(2), Ok(()));
    assert_eq!(bs.detached(), 0);
    drop(held);
    assert_eq!(bs.available_permits(), 3);
    assert_eq!(bs.in_use(), 0);
    assert_eq!(bs.release(1), Err(err(1, 0)));
}

fn err(released: usize, detached: usize) -> OverRelease {
    // `OverRelease` is non-exhaustive; build the expected value through the API.
    let bs = BoundedSemaphore::new(detached);
    if detached > 0 {
        bs.try_acquire_many(detached).unwrap().forget();
    }
    bs.release(released).unwrap_err()
}

#[test]
fn release_hands_permits_to_waiters_in_order() {
    let bs = BoundedSemaphore::new(2);
    bs.try_acquire_many(2).unwrap().forget();
    let mut w1 = Probe::new(bs.acquire());
    let mut w2 = Probe::new(bs.acquire());
    assert!(!w1.poll());
    assert!(!w2.poll());
    bs.release(1).unwrap();
    assert_eq!((w1.wakes(), w2.wakes()), (1, 0));
    bs.release(1).unwrap();
    assert_eq!(w2.wakes(), 1);
    assert!(w1.poll() && w2.poll());
    assert_eq!(bs.in_use(), 2);
}

#[test]
fn owned_permits_and_forget_on_owned() {
    let bs = Arc::new(BoundedSemaphore::new(2));
    let p = bs.try_acquire_owned().unwrap();
    p.forget();
    assert_eq!(bs.detached(), 1);
    let mut fut = Probe::new(bs.acquire_many_owned(2));
    assert!(!fut.poll());
    bs.release(1).unwrap();
    assert!(fut.poll());
    let two = fut.take().unwrap();
    assert_eq!(two.num_permits(), 2);
    drop(two);
    assert_eq!(bs.available_permits(), 2);
    assert!(bs.try_acquire_many_owned(3).is_err());
}

#[test]
fn close_and_run() {
    let bs = BoundedSemaphore::new(1);
    let mut run = Probe::new(bs.run(async { 5 }));
    assert!(run.poll());
    assert_eq!(run.take(), Ok(5));
    bs.close();
    assert!(bs.is_closed());
    assert_eq!(bs.try_acquire().unwrap_err(), TryAcquireError::Closed);
    assert_eq!(bs.acquire_blocking().unwrap_err(), AcquireError::Closed);
}

#[test]
fn conservation_with_forget_and_release_across_threads() {
    let bs = BoundedSemaphore::new(4);
    std::thread::scope(|s| {
        for t in 0..4 {
            let bs = &bs;
            s.spawn(move || {
                for i in 0..500 {
                    let p = bs.acquire_many_blocking(1 + (t + i) % 2).unwrap();
                    let n = p.num_permits();
                    if i % 3 == 0 {
                        p.forget();
                        bs.release(n).unwrap();
                    }
                }
            });
        }
    });
    assert_eq!(bs.available_permits(), 4);
    assert_eq!(bs.detached(), 0);
    assert!(bs.release(1).is_err());
}

#[test]
fn debug_and_messages() {
    let bs = BoundedSemaphore::new(2);
    assert_eq!(
        format!("{bs:?}"),
        "BoundedSemaphore { capacity: 2, available_permits: 2, detached: 0, waiters: 0, closed: false }"
    );
    assert_eq!(
        bs.release(1).unwrap_err().to_string(),
        "released 1 permit but Permit::forget detached only 0: \
         releasing more would exceed the capacity"
    );
}

/// One release of 40 detached permits with 40 waiters queued, more than a
/// wake batch (16): every waiter is completed and woken exactly once.
#[test]
fn one_large_release_completes_more_waiters_than_a_wake_batch() {
    let sem = BoundedSemaphore::new(40);
    sem.try_acquire_many(40).unwrap().forget();
    let mut probes: Vec<_> = (0..40).map(|_| Probe::new(sem.acquire())).collect();
    assert!(probes.iter_mut().all(|p| !p.poll()));
    sem.release(40).unwrap();
    assert_eq!(common::wakes(&probes), vec![1; 40]);
    assert_eq!(sem.waiters(), 0);
    assert!(probes.iter_mut().all(Probe::poll));
    assert_eq!((sem.available_permits(), sem.in_use()), (0, 40));
}

/// `close` with more waiters than a wake batch: every one is woken once and
/// fails, and the permits the head had collected come back.
#[test]
fn close_fails_more_waiters_than_a_wake_batch() {
    let sem = BoundedSemaphore::new(5);
    let held = sem.try_acquire_many(2).unwrap();
    let mut probes: Vec<_> = (0..40).map(|_| Probe::new(sem.acquire_many(5))).collect();
    assert!(probes.iter_mut().all(|p| !p.poll()));
    sem.close();
    assert_eq!(common::wakes(&probes), vec![1; 40]);
    common::assert_all_closed(&mut probes);
    assert_eq!(sem.available_permits(), 3);
    drop(held);
    assert_eq!(sem.available_permits(), 5);
}
