//! Bad input: every input that must be refused gets a clear, named error (or
//! the documented panic), and changes nothing. The messages asserted here are
//! the ones listed in `docs/errors.md`.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use std::sync::Arc;

use common::Probe;
use limiters::{AcquireError, BoundedSemaphore, Semaphore, TryAcquireError};

const MAX: usize = Semaphore::MAX_PERMITS;

/// What a caller can observe of a semaphore; "changes nothing" compares it.
fn state(sem: &Semaphore) -> (usize, usize, bool) {
    (sem.available_permits(), sem.waiters(), sem.is_closed())
}

fn bounded_state(bs: &BoundedSemaphore) -> (usize, usize, usize, bool) {
    (
        bs.available_permits(),
        bs.detached(),
        bs.waiters(),
        bs.is_closed(),
    )
}

/// The panic message of `f`, which must panic.
fn panic_message(f: impl FnOnce()) -> String {
    let err = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    match err.downcast::<String>() {
        Ok(s) => *s,
        Err(err) => (*err.downcast::<&str>().expect("a string panic")).to_string(),
    }
}

#[test]
fn add_permits_overflow_with_queued_waiters_grants_nothing() {
    // Regression: with waiters queued, the overflow check came after the
    // hand-off, so the panicking call had already granted the head waiter a
    // permit and left the queued flag set with nobody queued.
    let sem = Semaphore::new(0);
    let mut head = Probe::new(sem.acquire());
    let mut second = Probe::new(sem.acquire_many(2));
    assert!(!head.poll());
    assert!(!second.poll());

    let msg = panic_message(|| sem.add_permits(usize::MAX));
    assert_eq!(
        msg,
        format!(
            "adding {} permits to 0 would exceed Semaphore::MAX_PERMITS ({})",
            usize::MAX,
            Semaphore::MAX_PERMITS
        )
    );
    assert_eq!((head.wakes(), second.wakes()), (0, 0), "nobody was granted");
    assert!(!head.poll());
    assert_eq!(sem.waiters(), 2);
    assert_eq!(sem.available_permits(), 0);

    // The semaphore still works: the queue is served in order.
    sem.add_permits(3);
    assert_eq!((head.wakes(), second.wakes()), (1, 1));
    assert!(head.poll() && second.poll());
    assert_eq!(sem.available_permits(), 0);
    drop((head.take(), second.take()));
    assert_eq!(sem.available_permits(), 3);
    assert!(sem.try_acquire_many(3).is_ok());
}

#[test]
fn bounded_request_above_capacity_fails_at_once() {
    let bs = Arc::new(BoundedSemaphore::new(10));
    let _held = bs.try_acquire_many(4).unwrap();
    // A waiter is queued: the impossible request must not wait behind it,
    // nor block it.
    let mut queued = Probe::new(bs.acquire_many(7));
    assert!(!queued.poll());
    let before = bounded_state(&bs);

    let expected = AcquireError::ExceedsCapacity {
        requested: 11,
        capacity: 10,
    };
    let mut borrowed = Probe::new(bs.acquire_many(11));
    assert!(borrowed.poll(), "fails at the first poll, does not queue");
    assert_eq!(borrowed.take().unwrap_err(), expected);
    let mut owned = Probe::new(bs.acquire_many_owned(11));
    assert!(owned.poll());
    assert_eq!(owned.take().unwrap_err(), expected);
    assert_eq!(bs.acquire_many_blocking(11).unwrap_err(), expected);
    assert_eq!(
        expected.to_string(),
        "requested 11 permits but capacity is 10: ask for at most 10"
    );
    let try_expected = TryAcquireError::ExceedsCapacity {
        requested: 11,
        capacity: 10,
    };
    assert_eq!(bs.try_acquire_many(11).unwrap_err(), try_expected);
    assert_eq!(bs.try_acquire_many_owned(11).unwrap_err(), try_expected);
    assert_eq!(
        try_expected.to_string(),
        "requested 11 permits but capacity is 10: ask for at most 10"
    );

    assert_eq!(bounded_state(&bs), before, "changed nothing");
    assert_eq!(queued.wakes(), 0);
    drop(_held);
    assert!(queued.poll(), "the queued waiter is served as before");
}

#[test]
fn semaphore_request_above_max_permits_fails_at_once() {
    let sem = Arc::new(Semaphore::new(3));
    let before = state(&sem);
    let expected = AcquireError::ExceedsCapacity {
        requested: MAX + 1,
        capacity: MAX,
    };
    let mut fut = Probe::new(sem.acquire_many(MAX + 1));
    assert!(fut.poll());
    assert_eq!(fut.take().unwrap_err(), expected);
    let mut owned = Probe::new(sem.acquire_many_owned(usize::MAX));
    assert!(owned.poll());
    assert!(matches!(
        owned.take(),
        Err(AcquireError::ExceedsCapacity {
            requested: usize::MAX,
            capacity: MAX
        })
    ));
    assert!(matches!(
        sem.try_acquire_many(MAX + 1),
        Err(TryAcquireError::ExceedsCapacity { .. })
    ));
    assert_eq!(
        expected.to_string(),
        format!(
            "requested {} permits but capacity is {MAX}: ask for at most {MAX}",
            MAX + 1
        )
    );
    assert_eq!(state(&sem), before, "changed nothing");
}

#[test]
fn semaphore_new_above_max_permits_panics() {
    let msg = panic_message(|| {
        let _ = Semaphore::new(MAX + 1);
    });
    assert_eq!(
        msg,
        "Semaphore::new: permits must be at most Semaphore::MAX_PERMITS (usize::MAX >> 2)"
    );
    let msg = panic_message(|| {
        let _ = BoundedSemaphore::new(usize::MAX);
    });
    assert_eq!(
        msg,
        "BoundedSemaphore::new: capacity must be at most Semaphore::MAX_PERMITS (usize::MAX >> 2)"
    );
}

#[test]
fn add_permits_overflow_panics_and_changes_nothing() {
    let sem = Semaphore::new(MAX - 1);
    let held = sem.try_acquire_many(5).unwrap();
    let before = state(&sem);
    let msg = panic_message(|| sem.add_permits(7));
    assert_eq!(
        msg,
        format!(
            "adding 7 permits to {} would exceed Semaphore::MAX_PERMITS ({MAX})",
            MAX - 1
        )
    );
    assert_eq!(state(&sem), before, "changed nothing");
    // Held permits count too: only 1 more fits, so giving the held ones back
    // can never overflow (tokio panics inside the permit's drop here).
    assert!(catch_unwind(AssertUnwindSafe(|| sem.add_permits(2))).is_err());
    sem.add_permits(1);
    assert_eq!(sem.available_permits(), MAX - 5);
    drop(held);
    assert_eq!(sem.available_permits(), MAX);
}

#[test]
fn over_release_is_refused_and_changes_nothing() {
    let bs = BoundedSemaphore::new(3);
    // Nothing detached: any release is an over-release.
    let before = bounded_state(&bs);
    let err = bs.release(1).unwrap_err();
    assert_eq!((err.released, err.detached), (1, 0));
    assert_eq!(
        err.to_string(),
        "released 1 permits but only 0 were detached with Permit::forget: \
         releasing more would exceed the capacity"
    );
    assert_eq!(bounded_state(&bs), before);

    // Two detached, three released: refused as a whole, not clamped.
    bs.try_acquire_many(2).unwrap().forget();
    let held = bs.try_acquire().unwrap();
    let before = bounded_state(&bs);
    let err = bs.release(3).unwrap_err();
    assert_eq!((err.released, err.detached), (3, 2));
    assert_eq!(bounded_state(&bs), before, "changed nothing");
    // Releasing what a live permit holds is an over-release too.
    drop(held);
    assert_eq!(bs.release(2), Ok(()));
    assert_eq!(bs.available_permits(), 3);
    assert!(bs.release(1).is_err(), "never above capacity");
    assert_eq!(bs.available_permits(), 3);
}

#[test]
fn merging_permits_of_two_semaphores_panics_and_loses_nothing() {
    let s1 = Semaphore::new(3);
    let s2 = Semaphore::new(3);
    let mut a = s1.try_acquire_many(2).unwrap();
    let b = s2.try_acquire().unwrap();
    let msg = panic_message(|| a.merge(b));
    assert_eq!(
        msg,
        "merge: the permits come from two different semaphores; merge only permits of one semaphore"
    );
    assert_eq!(a.num_permits(), 2, "the target is unchanged");
    assert_eq!(s2.available_permits(), 3, "the other permit went home");
    drop(a);
    assert_eq!(s1.available_permits(), 3);

    // Owned permits, and a bounded semaphore's permit into a plain one.
    let o1 = Arc::new(Semaphore::new(1));
    let o2 = Arc::new(Semaphore::new(1));
    let mut x = o1.try_acquire_owned().unwrap();
    let y = o2.try_acquire_owned().unwrap();
    let msg = panic_message(|| x.merge(y));
    assert!(msg.starts_with("merge: the permits come from two different semaphores"));
    assert_eq!((x.num_permits(), o2.available_permits()), (1, 1));

    let bs = BoundedSemaphore::new(2);
    let plain = Semaphore::new(2);
    let mut p = plain.try_acquire().unwrap();
    let q = bs.try_acquire().unwrap();
    let _ = panic_message(|| p.merge(q));
    assert_eq!((bs.available_permits(), bs.detached()), (2, 0));
}

#[test]
fn acquiring_on_a_closed_semaphore_fails_and_changes_nothing() {
    let sem = Arc::new(Semaphore::new(2));
    let held = sem.try_acquire().unwrap();
    sem.close();
    let before = state(&sem);

    assert_eq!(
        AcquireError::Closed.to_string(),
        "semaphore closed: no more permits will be granted"
    );
    assert_eq!(
        TryAcquireError::Closed.to_string(),
        "semaphore closed: no more permits will be granted"
    );
    for n in [0, 1, 2] {
        let mut fut = Probe::new(sem.acquire_many(n));
        assert!(fut.poll());
        assert_eq!(
            fut.take().unwrap_err(),
            AcquireError::Closed,
            "acquire_many({n})"
        );
        let mut owned = Probe::new(sem.acquire_many_owned(n));
        assert!(owned.poll());
        assert_eq!(owned.take().unwrap_err(), AcquireError::Closed);
        assert_eq!(
            sem.try_acquire_many(n).unwrap_err(),
            TryAcquireError::Closed
        );
        assert_eq!(
            sem.try_acquire_many_owned(n).unwrap_err(),
            TryAcquireError::Closed
        );
    }
    assert_eq!(sem.acquire_blocking().unwrap_err(), AcquireError::Closed);
    let mut run = Probe::new(sem.run(async { unreachable!("never polled once closed") }));
    assert!(run.poll());
    assert_eq!(run.take().unwrap_err(), AcquireError::Closed);
    assert_eq!(state(&sem), before, "changed nothing");

    // Held permits stay valid and come back.
    drop(held);
    assert_eq!(sem.available_permits(), 2);

    let bs = BoundedSemaphore::new(1);
    bs.close();
    assert_eq!(bs.try_acquire().unwrap_err(), TryAcquireError::Closed);
    let mut fut = Probe::new(bs.acquire());
    assert!(fut.poll());
    assert_eq!(fut.take().unwrap_err(), AcquireError::Closed);
    assert_eq!(bounded_state(&bs), (1, 0, 0, true));
}
