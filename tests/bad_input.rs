//! Bad input: every input that must be refused gets a clear, named error (or
//! the documented panic), and changes nothing. The messages asserted here are
//! the ones listed in `docs/errors.md`.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use common::Probe;
use limiters::Semaphore;

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
            "adding {} permits to 0 available would exceed Semaphore::MAX_PERMITS ({})",
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
