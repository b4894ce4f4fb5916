//! Semaphore: fairness, hand-off, exact wake-ups, cancel safety, close,
//! conservation. Futures are polled by hand with counting wakers: no sleeps.

mod common;

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};

use common::Probe;
use limiters::{AcquireError, OwnedPermit, Permit, Semaphore, TryAcquireError};

#[test]
fn uncontended_acquire_and_release() {
    let sem = Semaphore::new(3);
    let mut a = Probe::new(sem.acquire());
    assert!(a.poll());
    assert_eq!(sem.available_permits(), 2);
    drop(a.take().unwrap());
    assert_eq!(sem.available_permits(), 3);
    assert_eq!(sem.waiters(), 0);
}

#[test]
fn waiters_are_served_in_order_of_first_poll() {
    let sem = Semaphore::new(0);
    // Created in one order, first polled in another: poll order wins.
    let mut first_created = Probe::new(sem.acquire());
    let mut second_created = Probe::new(sem.acquire());
    let mut third = Probe::new(sem.acquire());
    assert!(!second_created.poll());
    assert!(!first_created.poll());
    assert!(!third.poll());
    assert_eq!(sem.waiters(), 3);

    sem.add_permits(1);
    assert_eq!(
        (second_created.wakes(), first_created.wakes(), third.wakes()),
        (1, 0, 0)
    );
    assert!(second_created.poll());
    assert!(!first_created.poll());

    sem.add_permits(1);
    assert_eq!((first_created.wakes(), third.wakes()), (1, 0));
    assert!(first_created.poll());
    assert!(!third.poll());

    sem.add_permits(1);
    assert_eq!(third.wakes(), 1);
    assert!(third.poll());
    assert_eq!(sem.waiters(), 0);
}

#[test]
fn fifo_order_over_many_waiters() {
    let sem = Semaphore::new(0);
    let mut probes: Vec<_> = (0..50).map(|_| Probe::new(sem.acquire())).collect();
    for p in &mut probes {
        assert!(!p.poll());
    }
    let mut served = Vec::new();
    for round in 0..50 {
        sem.add_permits(1);
        for (i, p) in probes.iter_mut().enumerate() {
            if !p.is_ready() && p.wakes() > 0 {
                assert!(p.poll());
                served.push(i);
            }
        }
        assert_eq!(served.len(), round + 1, "exactly one waiter per release");
    }
    assert_eq!(served, (0..50).collect::<Vec<_>>());
}

#[test]
fn try_acquire_does_not_barge_past_the_queue() {
    let sem = Semaphore::new(2);
    let held = sem.try_acquire_many(2).unwrap();
    let mut waiter = Probe::new(sem.acquire_many(2));
    assert!(!waiter.poll());

    let mut held = held;
    let one = held.split(1).unwrap();
    drop(one); // one permit comes back, but the head wants two
    assert_eq!(
        sem.available_permits(),
        0,
        "released permit went to the head"
    );
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
    assert_eq!(waiter.wakes(), 0);

    drop(held);
    assert_eq!(waiter.wakes(), 1);
    assert!(waiter.poll());
    assert_eq!(waiter.take().unwrap().num_permits(), 2);
}

#[test]
fn newcomer_cannot_take_a_permit_handed_to_a_woken_waiter() {
    // async-lock#23: between the release and the woken waiter's poll, a
    // newcomer must not get the permit.
    let sem = Semaphore::new(1);
    let held = sem.try_acquire().unwrap();
    let mut waiter = Probe::new(sem.acquire());
    assert!(!waiter.poll());
    drop(held);
    assert_eq!(waiter.wakes(), 1);

    assert!(sem.try_acquire().is_err());
    let mut newcomer = Probe::new(sem.acquire());
    assert!(!newcomer.poll());
    assert!(waiter.poll());
    assert!(!newcomer.poll());

    drop(waiter.take().unwrap());
    assert_eq!(newcomer.wakes(), 1);
    assert!(newcomer.poll());
}

#[test]
fn large_head_request_blocks_later_small_ones() {
    let sem = Semaphore::new(0);
    let mut big = Probe::new(sem.acquire_many(5));
    let mut small = Probe::new(sem.acquire());
    assert!(!big.poll());
    assert!(!small.poll());

    sem.add_permits(3);
    assert_eq!((big.wakes(), small.wakes()), (0, 0));
    assert!(!small.poll(), "a later small request must not overtake");
    assert_eq!(sem.available_permits(), 0);

    sem.add_permits(2);
    assert_eq!((big.wakes(), small.wakes()), (1, 0));
    assert!(big.poll());
    assert!(!small.poll());

    sem.add_permits(1);
    assert_eq!(small.wakes(), 1);
    assert!(small.poll());
}

#[test]
fn two_releases_wake_two_waiters() {
    // async-lock#18: two releases with two waiters must wake both.
    let sem = Semaphore::new(2);
    let p1 = sem.try_acquire().unwrap();
    let p2 = sem.try_acquire().unwrap();
    let mut w1 = Probe::new(sem.acquire());
    let mut w2 = Probe::new(sem.acquire());
    assert!(!w1.poll());
    assert!(!w2.poll());
    drop(p1);
    drop(p2);
    assert_eq!((w1.wakes(), w2.wakes()), (1, 1));
    assert!(w1.poll());
    assert!(w2.poll());
}

#[test]
fn one_release_of_k_permits_wakes_exactly_the_waiters_it_completes() {
    let sem = Semaphore::new(0);
    let mut probes: Vec<_> = (0..100).map(|_| Probe::new(sem.acquire())).collect();
    for p in &mut probes {
        assert!(!p.poll());
    }
    // More than one wake batch (32) at once.
    sem.add_permits(70);
    let woken: Vec<usize> = probes.iter().map(|p| p.wakes()).collect();
    assert_eq!(&woken[..70], &[1; 70][..]);
    assert_eq!(&woken[70..], &[0; 30][..]);
    for p in &mut probes[..70] {
        assert!(p.poll());
    }
    assert_eq!(sem.waiters(), 30);
    assert_eq!(sem.available_permits(), 0);
}

#[test]
fn the_latest_waker_is_the_one_woken() {
    use std::future::Future;
    use std::task::{Context, Waker};
    let sem = Semaphore::new(0);
    let mut fut = Box::pin(sem.acquire());
    let first = Arc::new(common::CountingWaker::default());
    let second = Arc::new(common::CountingWaker::default());
    let w1 = Waker::from(first.clone());
    let w2 = Waker::from(second.clone());
    assert!(fut
        .as_mut()
        .poll(&mut Context::from_waker(&w1))
        .is_pending());
    assert!(fut
        .as_mut()
        .poll(&mut Context::from_waker(&w2))
        .is_pending());
    sem.add_permits(1);
    assert_eq!(
        (first.count(), second.count()),
        (0, 1),
        "only the latest waker"
    );
    assert!(fut.as_mut().poll(&mut Context::from_waker(&w2)).is_ready());
}

/// The reproducer: polling a queued acquire with a new waker drops
/// the old one, which may be the last handle to a task whose futures call
/// back into the semaphore. It must be dropped after the lock is released.
#[test]
fn a_replaced_waker_is_dropped_outside_the_lock() {
    common::no_deadlock(|| {
        let sem = Arc::new(Semaphore::new(0));
        let mut fut = Box::pin(sem.acquire_owned());
        for _ in 0..2 {
            let reenter = sem.clone();
            let waker = common::waker_dropping(move || {
                let _ = reenter.waiters();
            });
            assert!(fut
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending());
        }
        sem.add_permits(1);
        assert!(common::poll_once(&mut fut).is_ready());
    });
}

/// tokio's `release_permits_at_drop`, ported: the waker of the first poll
/// owns a permit, so dropping it (when the second poll replaces it) releases
/// that permit into the semaphore whose queue holds the future.
#[test]
fn release_permits_at_drop() {
    struct ReleaseOnDrop(#[allow(dead_code)] Option<OwnedPermit>);
    impl Wake for ReleaseOnDrop {
        fn wake(self: Arc<Self>) {}
    }
    common::no_deadlock(|| {
        let sem = Arc::new(Semaphore::new(1));
        let mut fut = Box::pin({
            let sem = sem.clone();
            async move {
                let _permit = sem.acquire().await.unwrap();
            }
        });
        // Second iteration shouldn't deadlock.
        for _ in 0..=1 {
            let waker = Waker::from(Arc::new(ReleaseOnDrop(
                sem.clone().try_acquire_owned().ok(),
            )));
            let mut cx = Context::from_waker(&waker);
            assert!(fut.as_mut().poll(&mut cx).is_pending());
        }
        // The released permit went to the queued future.
        assert!(common::poll_once(&mut fut).is_ready());
        assert_eq!(sem.available_permits(), 1);
    });
}

/// A `Waker::clone` that panics while the acquire joins the queue leaves the
/// semaphore as it was: no permit taken for a node that was never linked.
#[test]
fn a_panicking_waker_clone_loses_no_permit() {
    let sem = Semaphore::new(1);
    let mut fut = Box::pin(sem.acquire_many(2));
    let waker = common::panicking_clone_waker();
    let polled = catch_unwind(AssertUnwindSafe(|| {
        fut.as_mut().poll(&mut Context::from_waker(&waker))
    }));
    assert!(polled.is_err());
    drop(fut);
    assert_eq!(sem.available_permits(), 1);
    assert_eq!(sem.waiters(), 0);
    assert_eq!(sem.try_acquire().unwrap().num_permits(), 1);
}

#[test]
fn dropping_before_first_poll_changes_nothing() {
    let sem = Semaphore::new(1);
    let fut = sem.acquire();
    drop(fut);
    assert_eq!(sem.available_permits(), 1);
    assert_eq!(sem.waiters(), 0);
}

#[test]
fn dropping_a_queued_waiter_lets_the_next_proceed() {
    let sem = Semaphore::new(0);
    let mut w1 = Probe::new(sem.acquire());
    let mut w2 = Probe::new(sem.acquire());
    assert!(!w1.poll());
    assert!(!w2.poll());
    drop(w1);
    assert_eq!(sem.waiters(), 1);
    sem.add_permits(1);
    assert_eq!(w2.wakes(), 1);
    assert!(w2.poll());
}

#[test]
fn dropping_a_granted_but_unpolled_waiter_passes_the_permit_on() {
    let sem = Semaphore::new(1);
    let held = sem.try_acquire().unwrap();
    let mut w1 = Probe::new(sem.acquire());
    let mut w2 = Probe::new(sem.acquire());
    assert!(!w1.poll());
    assert!(!w2.poll());
    drop(held);
    assert_eq!(w1.wakes(), 1);
    drop(w1); // granted, never polled again
    assert_eq!(w2.wakes(), 1);
    assert!(w2.poll());
    drop(w2);
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn dropping_the_head_with_collected_permits_hands_them_on() {
    let sem = Semaphore::new(3);
    let held = sem.try_acquire_many(3).unwrap();
    let mut big = Probe::new(sem.acquire_many(5));
    let mut small = Probe::new(sem.acquire());
    let mut small2 = Probe::new(sem.acquire());
    assert!(!big.poll());
    assert!(!small.poll());
    assert!(!small2.poll());
    drop(held); // 3 go to `big`, which still needs 2
    assert_eq!(big.wakes(), 0);
    drop(big); // its 3 go on: 1 each to the smalls, 1 left over
    assert_eq!((small.wakes(), small2.wakes()), (1, 1));
    assert!(small.poll());
    assert!(small2.poll());
    assert_eq!(sem.available_permits(), 1);
    assert_eq!(sem.waiters(), 0);
}

#[test]
fn dropping_the_only_partial_waiter_returns_its_permits() {
    let sem = Semaphore::new(2);
    let mut big = Probe::new(sem.acquire_many(5));
    assert!(!big.poll());
    assert_eq!(sem.available_permits(), 0, "the head collected both");
    drop(big);
    assert_eq!(sem.available_permits(), 2);
    assert!(sem.try_acquire_many(2).is_ok());
}

#[test]
fn close_fails_waiters_and_later_acquires_but_keeps_held_permits() {
    let sem = Semaphore::new(3);
    let held = sem.try_acquire().unwrap();
    let mut big = Probe::new(sem.acquire_many(5)); // collects 2
    let mut small = Probe::new(sem.acquire());
    assert!(!big.poll());
    assert!(!small.poll());
    sem.close();
    assert!(sem.is_closed());
    assert_eq!((big.wakes(), small.wakes()), (1, 1));
    assert!(big.poll() && small.poll());
    assert_eq!(big.take().unwrap_err(), AcquireError::Closed);
    assert_eq!(small.take().unwrap_err(), AcquireError::Closed);
    assert_eq!(sem.available_permits(), 2, "collected permits came back");
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::Closed);
    let mut late = Probe::new(sem.acquire());
    assert!(late.poll());
    assert_eq!(late.take().unwrap_err(), AcquireError::Closed);
    drop(held);
    assert_eq!(sem.available_permits(), 3);
    assert_eq!(sem.waiters(), 0);
}

#[test]
fn run_holds_a_permit_only_while_the_future_runs() {
    let sem = Semaphore::new(1);
    let mut run = Probe::new(sem.run(async { 42 }));
    assert!(run.poll());
    assert_eq!(run.take(), Ok(42));
    assert_eq!(sem.available_permits(), 1);

    sem.close();
    let mut closed = Probe::new(sem.run(async { unreachable!("never polled") }));
    assert!(closed.poll());
    assert_eq!(closed.take(), Err::<(), _>(AcquireError::Closed));
}

#[test]
fn dropping_run_mid_flight_releases_the_permit() {
    let sem = Semaphore::new(1);
    let mut run = Probe::new(sem.run(std::future::pending::<()>()));
    assert!(!run.poll());
    assert_eq!(sem.available_permits(), 0);
    drop(run);
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn acquire_zero_is_immediate_even_behind_a_queue() {
    let sem = Semaphore::new(0);
    let mut waiter = Probe::new(sem.acquire());
    assert!(!waiter.poll());
    let mut zero = Probe::new(sem.acquire_many(0));
    assert!(zero.poll());
    assert_eq!(zero.take().unwrap().num_permits(), 0);
    assert_eq!(sem.try_acquire_many(0).unwrap().num_permits(), 0);
}

#[test]
fn impossible_requests_fail_at_once() {
    let sem = Semaphore::new(1);
    let n = Semaphore::MAX_PERMITS + 1;
    let mut fut = Probe::new(sem.acquire_many(n));
    assert!(fut.poll());
    assert_eq!(
        fut.take().unwrap_err(),
        AcquireError::ExceedsCapacity {
            requested: n,
            capacity: Semaphore::MAX_PERMITS
        }
    );
    assert!(matches!(
        sem.try_acquire_many(n),
        Err(TryAcquireError::ExceedsCapacity { .. })
    ));
    assert_eq!(sem.waiters(), 0);
}

#[test]
fn add_permits_overflow_panics_before_changing_anything() {
    let sem = Semaphore::new(Semaphore::MAX_PERMITS - 1);
    let err = catch_unwind(AssertUnwindSafe(|| sem.add_permits(2))).unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(msg.contains("would exceed Semaphore::MAX_PERMITS"), "{msg}");
    assert_eq!(sem.available_permits(), Semaphore::MAX_PERMITS - 1);
    sem.add_permits(1);
    assert_eq!(sem.available_permits(), Semaphore::MAX_PERMITS);
}

#[test]
fn add_permits_overflow_with_waiters_changes_nothing() {
    let sem = Semaphore::new(0);
    let mut waiter = Probe::new(sem.acquire_many(2));
    assert!(!waiter.poll());
    let err = catch_unwind(AssertUnwindSafe(|| sem.add_permits(usize::MAX))).unwrap_err();
    assert!(err
        .downcast_ref::<String>()
        .unwrap()
        .contains("MAX_PERMITS"));
    assert_eq!(
        (waiter.wakes(), sem.waiters(), sem.available_permits()),
        (0, 1, 0)
    );
    sem.add_permits(2);
    assert!(waiter.poll());
}

#[test]
#[should_panic(expected = "at most Semaphore::MAX_PERMITS")]
fn new_rejects_too_many_permits() {
    let _ = Semaphore::new(Semaphore::MAX_PERMITS + 1);
}

#[test]
fn forget_permits_takes_only_available_ones() {
    let sem = Semaphore::new(5);
    let held = sem.try_acquire_many(2).unwrap();
    assert_eq!(sem.forget_permits(10), 3);
    assert_eq!(sem.available_permits(), 0);
    drop(held);
    assert_eq!(sem.available_permits(), 2);
    assert_eq!(sem.forget_permits(1), 1);
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn permits_split_merge_and_forget() {
    let sem = Semaphore::new(6);
    let mut a = sem.try_acquire_many(4).unwrap();
    let b = a.split(1).unwrap();
    assert!(a.split(4).is_none());
    assert_eq!((a.num_permits(), b.num_permits()), (3, 1));
    a.merge(b);
    assert_eq!(a.num_permits(), 4);
    let c = a.split(2).unwrap();
    c.forget();
    drop(a);
    assert_eq!(sem.available_permits(), 4, "2 forgotten for good");
}

#[test]
fn merging_permits_of_two_semaphores_panics_and_loses_nothing() {
    let s1 = Semaphore::new(2);
    let s2 = Semaphore::new(2);
    let mut a = s1.try_acquire().unwrap();
    let b = s2.try_acquire().unwrap();
    let err = catch_unwind(AssertUnwindSafe(|| a.merge(b))).unwrap_err();
    assert!(err
        .downcast_ref::<&str>()
        .unwrap()
        .contains("two different semaphores"));
    assert_eq!(a.num_permits(), 1);
    assert_eq!(
        s2.available_permits(),
        2,
        "b went back to its own semaphore"
    );
    drop(a);
    assert_eq!(s1.available_permits(), 2);
}

#[test]
fn owned_permits_work_across_threads() {
    let sem = Arc::new(Semaphore::new(2));
    let mut owned: OwnedPermit = sem.try_acquire_many_owned(2).unwrap();
    let part = owned.split(1).unwrap();
    assert!(sem.try_acquire_owned().is_err());
    std::thread::spawn(move || drop(part)).join().unwrap();
    assert_eq!(sem.available_permits(), 1);
    let other = Arc::new(Semaphore::new(1));
    let foreign = other.try_acquire_owned().unwrap();
    assert!(catch_unwind(AssertUnwindSafe(|| owned.merge(foreign))).is_err());
    assert_eq!(other.available_permits(), 1);
    drop(owned);
    assert_eq!(sem.available_permits(), 2);

    let mut fut = Probe::new(sem.acquire_many_owned(2));
    assert!(fut.poll());
    assert_eq!(fut.take().unwrap().num_permits(), 2);
}

#[test]
fn blocking_acquire_shares_the_queue_with_threads() {
    let sem = Semaphore::new(2);
    let inside = AtomicUsize::new(0);
    let peak = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..200 {
                    let permit = sem.acquire_blocking().unwrap();
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::yield_now();
                    inside.fetch_sub(1, Ordering::SeqCst);
                    drop(permit);
                }
            });
        }
    });
    assert!(peak.load(Ordering::SeqCst) <= 2);
    assert_eq!(sem.available_permits(), 2);
    assert_eq!(sem.acquire_many_blocking(2).unwrap().num_permits(), 2);
}

#[test]
fn conservation_under_a_two_thread_runtime() {
    const PERMITS: usize = 7;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let sem = Arc::new(Semaphore::new(PERMITS));
    let holders = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        let tasks: Vec<_> = (0..1000)
            .map(|i| {
                let (sem, holders, peak) = (sem.clone(), holders.clone(), peak.clone());
                tokio::spawn(async move {
                    for j in 0..100 {
                        let weight = 1 + (i + j) % 3;
                        let permit = sem.acquire_many(weight).await.unwrap();
                        let now = holders.fetch_add(weight, Ordering::SeqCst) + weight;
                        peak.fetch_max(now, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        holders.fetch_sub(weight, Ordering::SeqCst);
                        drop(permit);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= PERMITS, "peak {peak} holders");
    assert!(peak >= PERMITS - 2, "permits were used ({peak})");
    assert_eq!(sem.available_permits(), PERMITS);
    assert_eq!(sem.waiters(), 0);
}

#[test]
fn debug_shows_live_counts() {
    let sem = Semaphore::new(2);
    let permit: Permit<'_> = sem.try_acquire().unwrap();
    assert_eq!(
        format!("{sem:?}"),
        "Semaphore { available_permits: 1, waiters: 0, closed: false }"
    );
    assert_eq!(format!("{permit:?}"), "Permit { permits: 1, .. }");
    assert_eq!(format!("{:?}", sem.acquire()), "Acquire { permits: 1, .. }");
}

#[test]
fn error_messages_say_what_to_do() {
    assert_eq!(
        AcquireError::ExceedsCapacity {
            requested: 12,
            capacity: 10
        }
        .to_string(),
        "requested 12 permits but capacity is 10: ask for at most 10"
    );
    assert_eq!(
        AcquireError::Closed.to_string(),
        "closed: no more permits will be granted"
    );
    assert_eq!(
        TryAcquireError::NoPermits.to_string(),
        "no permits available now: try again later, or wait with acquire() until enough are released or added"
    );
}

#[test]
fn static_semaphore() {
    static SEM: Semaphore = Semaphore::new(1);
    assert!(SEM.try_acquire().is_ok());
}

#[test]
fn public_types_are_send_sync_and_unpin_where_expected() {
    fn send_sync<T: Send + Sync>() {}
    fn unpin<T: Unpin>() {}
    send_sync::<Semaphore>();
    send_sync::<limiters::BoundedSemaphore>();
    send_sync::<Permit<'static>>();
    send_sync::<OwnedPermit>();
    send_sync::<limiters::futures::Acquire<'static>>();
    send_sync::<limiters::futures::AcquireOwned>();
    send_sync::<limiters::futures::Run<'static, std::future::Ready<()>>>();
    send_sync::<AcquireError>();
    send_sync::<TryAcquireError>();
    unpin::<Semaphore>();
    unpin::<Permit<'static>>();
    unpin::<OwnedPermit>();
}

#[test]
fn acquire_future_is_small() {
    assert!(std::mem::size_of::<limiters::futures::Acquire<'static>>() <= 64);
}

/// One release (a dropped permit of 45) with 40 waiters queued, more than a
/// wake batch (16): every waiter is completed and woken exactly once, in
/// one call, and the 5 permits left over become available.
#[test]
fn one_large_release_completes_more_waiters_than_a_wake_batch() {
    let sem = Semaphore::new(45);
    let held = sem.try_acquire_many(45).unwrap();
    let mut probes: Vec<_> = (0..40).map(|_| Probe::new(sem.acquire())).collect();
    assert!(probes.iter_mut().all(|p| !p.poll()));
    drop(held);
    assert_eq!(common::wakes(&probes), vec![1; 40]);
    assert_eq!(sem.waiters(), 0);
    assert_eq!(sem.available_permits(), 5);
    assert!(probes.iter_mut().all(Probe::poll));
}

/// `close` with more waiters than a wake batch: every one is woken once and
/// fails, and the permits the head had collected come back.
#[test]
fn close_fails_more_waiters_than_a_wake_batch() {
    let sem = Semaphore::new(3);
    let mut probes: Vec<_> = (0..40).map(|_| Probe::new(sem.acquire_many(5))).collect();
    assert!(probes.iter_mut().all(|p| !p.poll()));
    assert_eq!(sem.available_permits(), 0, "the head collected all 3");
    sem.close();
    assert_eq!(common::wakes(&probes), vec![1; 40]);
    common::assert_all_closed(&mut probes);
    assert_eq!(sem.waiters(), 0);
    assert_eq!(sem.available_permits(), 3);
}
