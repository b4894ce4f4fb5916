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
        "released 1 permit but Permit::forget detached only 0: \
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
        "closed: no more permits will be granted"
    );
    assert_eq!(
        TryAcquireError::Closed.to_string(),
        "closed: no more permits will be granted"
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

// --- rates, token buckets, the composite limiter ---

use std::cell::RefCell;
use std::panic::Location;
use std::sync::Once;
use std::time::Duration;

use limiters::{
    BuildError, InsufficientCapacity, Limiter, LimiterBuilder, ManualClock, Quota, QuotaError,
    RateLimitError, RateLimiter, SlidingWindow, TokenBucket, TokenBucketBuilder, TokenBucketError,
};

thread_local! {
    /// Where the last panic on this thread happened (file, line).
    static PANIC_AT: RefCell<Option<(String, u32)>> = const { RefCell::new(None) };
}

/// The panic message of `f` and the location the panic reports: with
/// `#[track_caller]`, the caller's line in this file.
fn panic_site(f: impl FnOnce()) -> (String, String, u32) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let at = info.location().map(|l| (l.file().to_owned(), l.line()));
            PANIC_AT.with(|p| *p.borrow_mut() = at);
            previous(info);
        }));
    });
    PANIC_AT.with(|p| *p.borrow_mut() = None);
    let msg = panic_message(f);
    let (file, line) = PANIC_AT
        .with(|p| p.borrow_mut().take())
        .expect("the hook saw the panic");
    (msg, file, line)
}

#[test]
fn zero_rate_panics_at_the_caller_with_a_clear_message() {
    type Case = (fn() -> Quota, &'static str);
    let cases: [Case; 3] = [
        (
            || Quota::per_second(0),
            "Quota::per_second(0): a quota must allow at least 1 cell per second",
        ),
        (
            || Quota::per_minute(0),
            "Quota::per_minute(0): a quota must allow at least 1 cell per minute",
        ),
        (
            || Quota::per_hour(0),
            "Quota::per_hour(0): a quota must allow at least 1 cell per hour",
        ),
    ];
    for (make, expected) in cases {
        let (msg, file, _) = panic_site(|| {
            make();
        });
        assert_eq!(msg, expected);
        assert!(
            file.ends_with("bad_input.rs"),
            "#[track_caller]: reported at {file}"
        );
    }
    // The exact line of the call, not a line inside the crate.
    let line = Location::caller().line() + 2;
    let (_, _, at) = panic_site(|| {
        let _ = Quota::per_second(0);
    });
    assert_eq!(at, line);
}

#[test]
fn zero_cells_or_zero_period_in_quota_new_is_an_error() {
    assert_eq!(
        Quota::new(0, Duration::from_secs(1)),
        Err(QuotaError::ZeroCells)
    );
    assert_eq!(
        QuotaError::ZeroCells.to_string(),
        "a quota of zero cells admits nothing: allow at least 1 cell per period"
    );
    assert_eq!(Quota::new(5, Duration::ZERO), Err(QuotaError::ZeroPeriod));
    assert_eq!(Quota::new(0, Duration::ZERO), Err(QuotaError::ZeroCells));
    assert_eq!(
        QuotaError::ZeroPeriod.to_string(),
        "a quota period of zero is an infinite rate: use a period of at least 1ns"
    );
    assert_eq!(Quota::new(1, Duration::MAX), Err(QuotaError::PeriodTooLong));
    assert_eq!(
        QuotaError::PeriodTooLong.to_string(),
        "the quota period is longer than 2^64 - 1 ns (about 584 years): use a shorter period"
    );
    // The longest valid period, and the shortest.
    assert!(Quota::new(1, Duration::from_nanos(u64::MAX)).is_ok());
    assert!(Quota::new(u32::MAX, Duration::from_nanos(1)).is_ok());
}

#[test]
fn zero_burst_panics_at_the_caller() {
    let quota = Quota::per_second(10);
    let (msg, file, _) = panic_site(|| {
        let _ = quota.allow_burst(0);
    });
    assert_eq!(
        msg,
        "Quota::allow_burst(0): the burst must be at least 1 cell"
    );
    assert!(
        file.ends_with("bad_input.rs"),
        "#[track_caller]: reported at {file}"
    );
    assert_eq!(quota.burst(), 1, "the quota is unchanged");
}

/// A burst whose credit would outlast 2^63 ns (`Quota::MAX_BURST_SPAN`) is
/// kept at what that span earns, so every front refuses larger requests at
/// once with the same numbers (before: `check_n(u32::MAX)` said "try again
/// in 18446744073 s", `reserve_many(u32::MAX)` succeeded three times, and a
/// `Limiter` of that weight waited forever), and the whole kept burst is
/// admitted at once on a fresh limiter.
#[test]
fn a_burst_beyond_2_pow_63_ns_is_kept_at_that_span_everywhere() {
    let quota = Quota::per_hour(1).allow_burst(u32::MAX);
    let kept = 2_562_047; // floor(2^63 ns / 3,600 s)
    assert_eq!(quota.burst(), kept);
    assert_eq!(Quota::per_hour(1).allow_burst(kept), quota);
    let clock = ManualClock::new();
    let rl = RateLimiter::with_clock(quota, clock.clone());
    assert_eq!(rl.remaining(), kept);
    match rl.check_n(u32::MAX) {
        Err(RateLimitError::InsufficientCapacity { requested, burst }) => {
            assert_eq!((requested, burst), (u32::MAX, kept))
        }
        other => panic!("check_n(u32::MAX): {other:?}"),
    }
    let err = rl.reserve_many(u32::MAX).unwrap_err();
    assert_eq!((err.requested, err.burst), (u32::MAX, kept));
    assert_eq!(rl.remaining(), kept, "changed nothing");
    rl.check_n(kept).unwrap();
    assert_eq!(rl.remaining(), 0);

    let limiter = Limiter::builder()
        .rate(quota)
        .clock(clock.clone())
        .build()
        .unwrap();
    let mut too_big = Probe::new(limiter.acquire_many(u32::MAX));
    assert!(too_big.poll(), "fails at the first poll");
    assert_eq!(
        too_big.take().unwrap_err(),
        AcquireError::InsufficientCapacity {
            requested: u32::MAX,
            burst: kept
        }
    );
    let mut whole = Probe::new(limiter.acquire_many(kept));
    assert!(whole.poll(), "the whole kept burst at once");
}

/// `check_n` with `n` above the burst fails with `InsufficientCapacity` at
/// once: no wait time that would never come, and the limiter is untouched.
#[test]
fn rate_request_above_burst_fails_at_once_and_changes_nothing() {
    let clock = ManualClock::new();
    let rl = RateLimiter::with_clock(Quota::per_second(10).allow_burst(4), clock.clone());
    rl.check_n(1).unwrap();
    let expected: InsufficientCapacity = rl.reserve_many(5).unwrap_err();
    assert_eq!((expected.requested, expected.burst), (5, 4));
    assert_eq!(
        expected.to_string(),
        "requested 5 cells but the burst is 4: ask for at most 4 or raise the burst \
         (Quota::allow_burst, the token bucket's max or the window's n)"
    );
    match rl.check_n(5) {
        Err(RateLimitError::InsufficientCapacity { requested, burst }) => {
            assert_eq!((requested, burst), (5, 4))
        }
        other => panic!("check_n(5): {other:?}"),
    }
    assert!(matches!(
        rl.check_n(u32::MAX),
        Err(RateLimitError::InsufficientCapacity { .. })
    ));
    assert_eq!(
        rl.check_n(5).unwrap_err().to_string(),
        expected.to_string(),
        "RateLimitError shows the same message"
    );
    assert_eq!(rl.reserve_many(5).unwrap_err(), expected);
    let mut fut = Probe::new(rl.acquire_many(5));
    assert!(fut.poll(), "fails at the first poll, does not wait");
    assert_eq!(fut.take().unwrap_err(), expected);
    // Nothing was taken: the rest of the burst is still there.
    rl.check_n(3).unwrap();
    assert!(rl.check().is_err());
}

#[test]
fn sliding_window_bad_settings_panic_at_the_caller_or_are_errors() {
    type Case = (u32, Duration, QuotaError, &'static str);
    let cases: [Case; 3] = [
        (
            0,
            Duration::from_secs(1),
            QuotaError::ZeroCells,
            "SlidingWindow::with_clock(0, 1s): a quota of zero cells admits nothing: \
             allow at least 1 cell per period",
        ),
        (
            5,
            Duration::ZERO,
            QuotaError::ZeroPeriod,
            "SlidingWindow::with_clock(5, 0ns): a quota period of zero is an infinite rate: \
             use a period of at least 1ns",
        ),
        (
            5,
            Duration::MAX,
            QuotaError::PeriodTooLong,
            "SlidingWindow::with_clock(5, 18446744073709551615.999999999s): the quota period \
             is longer than 2^64 - 1 ns (about 584 years): use a shorter period",
        ),
    ];
    for (n, period, error, expected) in cases {
        let (msg, file, _) = panic_site(|| {
            let _ = SlidingWindow::with_clock(n, period, ManualClock::new());
        });
        assert_eq!(msg, expected);
        assert!(
            file.ends_with("bad_input.rs"),
            "#[track_caller]: reported at {file}"
        );
        assert_eq!(
            SlidingWindow::try_with_clock(n, period, ManualClock::new()).err(),
            Some(error)
        );
    }
    // The longest and shortest valid periods, and the largest limit.
    assert!(
        SlidingWindow::try_with_clock(1, Duration::from_nanos(u64::MAX), ManualClock::new())
            .is_ok()
    );
    assert!(
        SlidingWindow::try_with_clock(u32::MAX, Duration::from_nanos(1), ManualClock::new())
            .is_ok()
    );
}

#[test]
fn sliding_window_request_above_its_limit_fails_at_once_and_changes_nothing() {
    let clock = ManualClock::new();
    let w = SlidingWindow::with_clock(4, Duration::from_secs(1), clock.clone());
    w.check_n(4).unwrap();
    let mut queued = Probe::new(w.acquire());
    assert!(!queued.poll());
    let before = (w.remaining(), w.waiters(), w.until_full());
    match w.check_n(5) {
        Err(RateLimitError::InsufficientCapacity { requested, burst }) => {
            assert_eq!((requested, burst), (5, 4))
        }
        other => panic!("check_n(5): {other:?}"),
    }
    assert_eq!(
        w.check_n(5).unwrap_err().to_string(),
        "requested 5 cells but the burst is 4: ask for at most 4 or raise the burst \
         (Quota::allow_burst, the token bucket's max or the window's n)"
    );
    let mut fut = Probe::new(w.acquire_many(5));
    assert!(fut.poll(), "fails at the first poll, does not wait");
    let err = fut.take().unwrap_err();
    assert_eq!((err.requested, err.burst), (5, 4));
    let mut within = Probe::new(w.acquire_many_within(u32::MAX, Duration::from_secs(9)));
    assert!(within.poll());
    assert!(matches!(
        within.take(),
        Err(limiters::DeadlineError::InsufficientCapacity {
            requested: u32::MAX,
            burst: 4
        })
    ));
    assert_eq!((w.remaining(), w.waiters(), w.until_full()), before);
    assert_eq!(queued.wakes(), 0, "the queued waiter was not disturbed");
    clock.advance(Duration::from_secs(1) + Duration::from_nanos(1));
    assert!(queued.poll());
}

#[test]
fn limiter_builder_refuses_windows_that_cannot_work() {
    let b = || LimiterBuilder::with_clock(ManualClock::new());
    let invalid =
        "invalid window: a quota of zero cells admits nothing: allow at least 1 cell per period";
    let err = b().window(0, Duration::from_secs(1)).build().unwrap_err();
    assert_eq!(err, BuildError::InvalidWindow(QuotaError::ZeroCells));
    assert_eq!(err.to_string(), invalid);
    assert_eq!(
        b().concurrency(1)
            .window(3, Duration::ZERO)
            .build()
            .unwrap_err(),
        BuildError::InvalidWindow(QuotaError::ZeroPeriod)
    );
    assert_eq!(
        b().window(3, Duration::MAX).build().unwrap_err(),
        BuildError::InvalidWindow(QuotaError::PeriodTooLong)
    );
    let err = b()
        .window(2, Duration::from_secs(1))
        .weight(3)
        .build()
        .unwrap_err();
    assert_eq!(
        err,
        BuildError::WeightExceedsWindow {
            weight: 3,
            limit: 2
        }
    );
    assert_eq!(
        err.to_string(),
        "weight 3 exceeds a window of 2: no call could ever be admitted; \
         raise the window's n to at least 3 or lower the weight"
    );
    // A window alone is a limit.
    assert!(b().window(1, Duration::from_secs(1)).build().is_ok());
    // acquire_many above the window's n: refused at once, nothing taken.
    let l = b().window(2, Duration::from_secs(1)).build().unwrap();
    let mut fut = Probe::new(l.acquire_many(3));
    assert!(fut.poll());
    assert_eq!(
        fut.take().unwrap_err(),
        AcquireError::InsufficientCapacity {
            requested: 3,
            burst: 2
        }
    );
    let mut two = Probe::new(l.acquire_many(2));
    assert!(two.poll(), "the window's cells are all still there");
}

#[test]
fn token_bucket_request_above_max_fails_at_once_and_changes_nothing() {
    let bucket = TokenBucketBuilder::new()
        .max(4)
        .build_with_clock(ManualClock::new())
        .unwrap();
    let expected = bucket.reserve_many(5).unwrap_err();
    assert_eq!((expected.requested, expected.burst), (5, 4));
    assert!(matches!(
        bucket.check_n(5),
        Err(RateLimitError::InsufficientCapacity {
            requested: 5,
            burst: 4
        })
    ));
    assert_eq!(bucket.reserve_many(5).unwrap_err(), expected);
    let mut fut = Probe::new(bucket.acquire_many(5));
    assert!(fut.poll());
    assert_eq!(fut.take().unwrap_err(), expected);
    assert_eq!(bucket.available(), 4, "changed nothing");
}

#[test]
fn token_bucket_builder_refuses_every_setting_that_cannot_work() {
    let clock = ManualClock::new();
    let build = |b: TokenBucketBuilder| b.build_with_clock(clock.clone()).unwrap_err();
    let cases = [
        (
            build(TokenBucketBuilder::new().max(0)),
            TokenBucketError::ZeroMax,
            "a token bucket with max 0 admits nothing: set max to at least 1".to_string(),
        ),
        (
            build(TokenBucketBuilder::new().max(3).refill(0)),
            TokenBucketError::ZeroRefill,
            "a token bucket with refill 0 never refills: set refill to at least 1".to_string(),
        ),
        (
            build(TokenBucketBuilder::new().interval(Duration::ZERO)),
            TokenBucketError::ZeroInterval,
            "a refill interval of zero is an infinite rate: use an interval of at least 1ns"
                .to_string(),
        ),
        (
            build(TokenBucketBuilder::new().interval(Duration::MAX)),
            TokenBucketError::IntervalTooLong,
            "the refill interval is longer than 2^64 - 1 ns (about 584 years): use a shorter interval"
                .to_string(),
        ),
        (
            build(TokenBucketBuilder::new().max(3).refill(4)),
            TokenBucketError::RefillExceedsMax { refill: 4, max: 3 },
            "refill is 4 tokens but max is 3: set refill to at most 3 or raise max".to_string(),
        ),
        (
            build(TokenBucketBuilder::new().max(3).initial(7)),
            TokenBucketError::InitialExceedsMax { initial: 7, max: 3 },
            "initial is 7 tokens but max is 3: set initial to at most 3 or raise max".to_string(),
        ),
    ];
    for (got, expected, msg) in cases {
        assert_eq!(got, expected);
        assert_eq!(got.to_string(), msg);
    }
    // The edges that do work.
    let bucket = TokenBucketBuilder::new()
        .max(u32::MAX)
        .refill(u32::MAX)
        .initial(0)
        .interval(Duration::from_nanos(u64::MAX))
        .build_with_clock(clock.clone())
        .unwrap();
    assert_eq!(bucket.available(), 0);
    assert!(TokenBucket::builder()
        .interval(Duration::from_nanos(1))
        .build()
        .is_ok());
}

#[test]
fn limiter_builder_refuses_every_configuration_that_cannot_work() {
    let b = || LimiterBuilder::with_clock(ManualClock::new());
    let cases = [
        (
            b().build().unwrap_err(),
            BuildError::NoLimits,
            "no limits configured: set concurrency(n), window(n, period) and/or rate(quota) before build()"
                .to_string(),
        ),
        (
            b().min_hold(Duration::from_secs(1)).build().unwrap_err(),
            BuildError::NoLimits,
            "no limits configured: set concurrency(n), window(n, period) and/or rate(quota) before build()"
                .to_string(),
        ),
        (
            b().concurrency(0).build().unwrap_err(),
            BuildError::ZeroConcurrency,
            "concurrency(0) would never admit anything: allow at least 1".to_string(),
        ),
        (
            b().concurrency(Semaphore::MAX_PERMITS + 1)
                .build()
                .unwrap_err(),
            BuildError::ConcurrencyTooLarge {
                requested: MAX + 1,
                max: MAX,
            },
            format!(
                "concurrency({}) exceeds the maximum of {MAX} slots",
                MAX + 1
            ),
        ),
        (
            b().rate(Quota::per_second(1))
                .min_hold(Duration::from_secs(1))
                .build()
                .unwrap_err(),
            BuildError::MinHoldWithoutConcurrency,
            "min_hold needs a concurrency limit: add concurrency(n), or use a rate instead"
                .to_string(),
        ),
        (
            b().concurrency(2).weight(0).build().unwrap_err(),
            BuildError::ZeroWeight,
            "weight(0) would let every call through: use a weight of at least 1".to_string(),
        ),
        (
            b().concurrency(2).weight(3).build().unwrap_err(),
            BuildError::WeightExceedsConcurrency {
                weight: 3,
                concurrency: 2,
            },
            "weight 3 exceeds concurrency 2: no call could ever be admitted; \
             raise the concurrency or lower the weight"
                .to_string(),
        ),
        (
            b().rate(Quota::per_second(100).allow_burst(10))
                .rate(Quota::per_hour(1000).allow_burst(2))
                .weight(3)
                .build()
                .unwrap_err(),
            BuildError::WeightExceedsBurst {
                weight: 3,
                burst: 2,
            },
            "weight 3 exceeds a rate's burst of 2: no call could ever be admitted; \
             use allow_burst(3) or lower the weight"
                .to_string(),
        ),
    ];
    for (got, expected, msg) in cases {
        assert_eq!(got, expected);
        assert_eq!(got.to_string(), msg);
    }
}

/// The output of `fut`, which must be ready at its first poll.
fn ready_now<F: std::future::Future>(fut: F) -> F::Output {
    let mut probe = Probe::new(fut);
    assert!(probe.poll(), "ready at once");
    probe.take()
}

/// What a caller can observe of a limiter.
fn limiter_state(l: &Limiter<ManualClock>) -> (Option<usize>, bool, Option<u64>) {
    (
        l.available_slots(),
        l.is_closed(),
        l.paused_until().map(|i| i.as_nanos()),
    )
}

#[test]
fn limiter_request_above_any_limit_fails_at_once_and_changes_nothing() {
    let limiter = LimiterBuilder::with_clock(ManualClock::new())
        .concurrency(4)
        .rate(Quota::per_second(10).allow_burst(3))
        .build()
        .unwrap();
    let held = ready_now(limiter.acquire()).unwrap();
    // A queued request must not be passed or woken by the refusals.
    let mut queued = Probe::new(limiter.acquire_many(3));
    assert!(!queued.poll());
    let before = limiter_state(&limiter);

    let mut above_slots = Probe::new(limiter.acquire_many(5));
    assert!(above_slots.poll(), "fails at the first poll");
    let err = above_slots.take().unwrap_err();
    assert_eq!(
        err,
        AcquireError::ExceedsCapacity {
            requested: 5,
            capacity: 4
        }
    );
    assert_eq!(
        err.to_string(),
        "requested 5 permits but capacity is 4: ask for at most 4"
    );
    let mut above_burst = Probe::new(limiter.acquire_many(4));
    assert!(above_burst.poll());
    assert_eq!(
        above_burst.take().unwrap_err(),
        AcquireError::InsufficientCapacity {
            requested: 4,
            burst: 3
        }
    );
    assert_eq!(limiter_state(&limiter), before, "changed nothing");
    assert_eq!(queued.wakes(), 0);
    drop((held, queued));
    assert_eq!(limiter.available_slots(), Some(4));
}

#[test]
fn acquiring_on_a_closed_limiter_fails_and_changes_nothing() {
    let clock = ManualClock::new();
    let limiter = LimiterBuilder::with_clock(clock.clone())
        .concurrency(2)
        .rate(Quota::per_second(10).allow_burst(2))
        .min_hold(Duration::from_millis(5))
        .build()
        .unwrap();
    let held = ready_now(limiter.acquire()).unwrap();
    limiter.close();
    let before = limiter_state(&limiter);
    for w in [0, 1, 2, 3] {
        let mut fut = Probe::new(limiter.acquire_many(w));
        assert!(fut.poll(), "acquire_many({w}) fails at the first poll");
        assert_eq!(
            fut.take().unwrap_err(),
            AcquireError::Closed,
            "acquire_many({w})"
        );
    }
    let mut run = Probe::new(limiter.run(async { unreachable!("never polled once closed") }));
    assert!(run.poll());
    assert_eq!(run.take().unwrap_err(), AcquireError::Closed);
    assert_eq!(
        AcquireError::Closed.to_string(),
        "closed: no more permits will be granted"
    );
    assert_eq!(limiter_state(&limiter), before, "changed nothing");
    // The permit handed out before the close stays valid; its slot comes
    // back after the minimum hold.
    drop(held);
    clock.advance(Duration::from_millis(5));
    assert_eq!(limiter.available_slots(), Some(2));
    // A clone sees the same closed state.
    assert!(limiter.clone().is_closed());
}

#[test]
fn close_fails_a_request_waiting_out_a_min_hold_at_once() {
    // Regression (found by the `limiter` fuzz target): the head of the hold
    // queue, sleeping until an earlier slot's minimum hold ends, was woken
    // by `close` but went back to sleep, failing only when the hold ended
    // (here 10 s later; or never, with no clock advance).
    let clock = ManualClock::new();
    let limiter = LimiterBuilder::with_clock(clock.clone())
        .concurrency(1)
        .min_hold(Duration::from_secs(10))
        .build()
        .unwrap();
    drop(ready_now(limiter.acquire()).unwrap());
    let mut waiting = Probe::new(limiter.acquire());
    let mut run = Probe::new(limiter.run(async { unreachable!("closed before admission") }));
    assert!(!waiting.poll(), "waits for the hold to end");
    assert!(!run.poll(), "queued behind it");
    limiter.close();
    assert_eq!((waiting.wakes(), run.wakes()), (1, 1), "close wakes both");
    assert!(waiting.poll(), "fails at once, without any clock advance");
    assert_eq!(waiting.take().unwrap_err(), AcquireError::Closed);
    assert!(run.poll());
    assert_eq!(run.take().unwrap_err(), AcquireError::Closed);
    clock.advance(Duration::from_secs(10));
    assert_eq!(limiter.available_slots(), Some(1), "everything came back");
}

#[test]
fn close_gives_back_the_slot_of_a_request_waiting_for_the_rate() {
    // A request failed by `close` gives its slot back when it fails, not
    // only when its future is dropped.
    let limiter = LimiterBuilder::with_clock(ManualClock::new())
        .concurrency(2)
        .rate(Quota::per_second(1))
        .build()
        .unwrap();
    let held = ready_now(limiter.acquire()).unwrap();
    let mut head = Probe::new(limiter.acquire());
    assert!(!head.poll(), "holds a slot, sleeps until the next cell");
    assert_eq!(limiter.available_slots(), Some(0));
    limiter.close();
    assert_eq!(head.wakes(), 1);
    assert!(head.poll());
    assert_eq!(head.take().unwrap_err(), AcquireError::Closed);
    assert_eq!(limiter.available_slots(), Some(1), "while `head` is alive");
    drop(held);
    assert_eq!(limiter.available_slots(), Some(2));
    drop(head);
    assert_eq!(limiter.available_slots(), Some(2));
}

// --- deadlines ---

use limiters::{DeadlineError, KeyedRateLimiter};

#[test]
fn deadline_that_cannot_be_met_fails_at_once_and_changes_nothing() {
    let clock = ManualClock::new();
    let rl = RateLimiter::with_clock(Quota::per_second(4), clock.clone());
    rl.check().unwrap();
    // A queued waiter must not be passed, woken or moved by the refusal.
    let mut queued = Probe::new(rl.acquire());
    assert!(!queued.poll());
    let before = rl.reserve_many(1).map(|r| {
        let at = r.ready_at();
        r.cancel();
        at
    });
    for timeout in [Duration::ZERO, Duration::from_millis(499)] {
        let err = ready_now(rl.acquire_within(timeout)).unwrap_err();
        assert_eq!(
            err,
            DeadlineError::WouldExceed {
                wait: Duration::from_millis(500),
                earliest: clock.now() + Duration::from_millis(500),
            }
        );
        assert_eq!(
            err.to_string(),
            "admission is 500ms away, past the deadline: allow a longer timeout or shed the request"
        );
    }
    let after = rl.reserve_many(1).map(|r| {
        let at = r.ready_at();
        r.cancel();
        at
    });
    assert_eq!(before, after, "changed nothing");
    assert_eq!(queued.wakes(), 0);
    // The same on the token bucket, the keyed limiter and the Limiter.
    let bucket = TokenBucketBuilder::new()
        .build_with_clock(clock.clone())
        .unwrap();
    bucket.check().unwrap();
    let err = ready_now(bucket.acquire_within(Duration::ZERO)).unwrap_err();
    assert!(
        matches!(err, DeadlineError::WouldExceed { wait, .. } if wait == Duration::from_secs(1))
    );
    assert_eq!(bucket.available(), 0);
    let keyed = KeyedRateLimiter::with_clock(Quota::per_second(1), clock.clone());
    keyed.check(&7).unwrap();
    let err = ready_now(keyed.acquire_within(&7, Duration::ZERO)).unwrap_err();
    assert!(matches!(err, DeadlineError::WouldExceed { .. }));
    let limiter = LimiterBuilder::with_clock(clock.clone())
        .concurrency(2)
        .rate(Quota::per_second(1))
        .build()
        .unwrap();
    let held = ready_now(limiter.acquire()).unwrap();
    let before = limiter_state(&limiter);
    let err = ready_now(limiter.run_within(Duration::ZERO, async {
        unreachable!("never polled past a deadline")
    }))
    .unwrap_err();
    assert!(matches!(err, DeadlineError::WouldExceed { .. }));
    assert_eq!(limiter_state(&limiter), before);
    drop(held);
}

#[test]
fn deadline_passed_while_queued_gives_everything_back() {
    let clock = ManualClock::new();
    let limiter = LimiterBuilder::with_clock(clock.clone())
        .concurrency(1)
        .build()
        .unwrap();
    let held = ready_now(limiter.acquire()).unwrap();
    let mut call = Probe::new(limiter.run_within(Duration::from_secs(1), async {
        unreachable!("never polled past a deadline")
    }));
    assert!(!call.poll());
    clock.advance(Duration::from_secs(1));
    assert!(call.poll());
    let err = call.take().unwrap_err();
    assert_eq!(err, DeadlineError::TimedOut);
    assert_eq!(
        err.to_string(),
        "timed out while queued: everything held was given back; allow a longer timeout or shed \
         the request"
    );
    drop(held);
    assert_eq!(limiter.available_slots(), Some(1), "nothing kept");
}

#[test]
fn deadline_keeps_the_errors_of_impossible_and_closed_requests() {
    let clock = ManualClock::new();
    let rl = RateLimiter::with_clock(Quota::per_second(4).allow_burst(2), clock.clone());
    let err = ready_now(rl.acquire_many_within(3, Duration::MAX)).unwrap_err();
    assert_eq!(
        err,
        DeadlineError::InsufficientCapacity {
            requested: 3,
            burst: 2
        }
    );
    assert_eq!(err.to_string(), rl.reserve_many(3).unwrap_err().to_string());
    assert_eq!(rl.check_n(2), Ok(()), "nothing taken");
    let limiter = LimiterBuilder::with_clock(clock.clone())
        .concurrency(2)
        .weight(2)
        .build()
        .unwrap();
    let err = ready_now(limiter.acquire_within(Duration::MAX)).unwrap();
    drop(err);
    limiter.close();
    let err = ready_now(limiter.acquire_within(Duration::MAX)).unwrap_err();
    assert_eq!(err, DeadlineError::Closed);
    assert_eq!(err.to_string(), "closed: no more permits will be granted");
    let capped = LimiterBuilder::with_clock(clock)
        .rate(Quota::per_second(4).allow_burst(2))
        .build()
        .unwrap();
    let err = ready_now(capped.acquire_many_within(3, Duration::from_secs(1))).unwrap_err();
    assert_eq!(
        err,
        DeadlineError::InsufficientCapacity {
            requested: 3,
            burst: 2
        }
    );
    assert_eq!(
        err.to_string(),
        "requested 3 cells but the burst is 2: ask for at most 2 or raise the burst \
         (Quota::allow_burst, the token bucket's max or the window's n)"
    );
}

#[test]
fn huge_timeouts_saturate_on_every_clock() {
    // Duration::MAX past now overflows every instant type: it saturates
    // instead (no panic), and the request waits as a plain acquire would.
    let clock = ManualClock::new();
    let rl = RateLimiter::with_clock(Quota::per_second(1), clock.clone());
    rl.check().unwrap();
    let mut waiter = Probe::new(rl.acquire_within(Duration::MAX));
    assert!(!waiter.poll());
    clock.advance(Duration::from_secs(1));
    assert!(waiter.poll());
    assert_eq!(waiter.take(), Ok(()));
    let system = RateLimiter::new(Quota::per_second(1));
    assert_eq!(ready_now(system.acquire_within(Duration::MAX)), Ok(()));
    let mut queued = Probe::new(system.acquire_within(Duration::MAX));
    assert!(!queued.poll(), "queued for a second, no overflow");
    let limiter = Limiter::builder().concurrency(1).build().unwrap();
    let held = ready_now(limiter.acquire_within(Duration::MAX)).unwrap();
    let mut queued = Probe::new(limiter.acquire_within(Duration::MAX));
    assert!(!queued.poll(), "its deadline timer is armed at the far end");
    drop(held);
    assert!(queued.poll());
}

// --- load shedding: Limiter::try_acquire*, KeyedLimiter::try_acquire ---

use limiters::{KeyedLimiter, KeyedTryError, LimiterTryError};

#[test]
fn limiter_try_above_any_limit_or_closed_fails_at_once_and_changes_nothing() {
    let limiter = LimiterBuilder::with_clock(ManualClock::new())
        .concurrency(4)
        .rate(Quota::per_second(10).allow_burst(3))
        .build()
        .unwrap();
    let held = limiter.try_acquire().unwrap();
    let mut queued = Probe::new(limiter.acquire_many(3));
    assert!(!queued.poll());
    let before = limiter_state(&limiter);
    let cases: [(u32, LimiterTryError<limiters::ManualInstant>, &str); 2] = [
        (
            5,
            LimiterTryError::ExceedsCapacity {
                requested: 5,
                capacity: 4,
            },
            "requested 5 permits but capacity is 4: ask for at most 4",
        ),
        (
            4,
            LimiterTryError::InsufficientCapacity {
                requested: 4,
                burst: 3,
            },
            "requested 4 cells but the burst is 3: ask for at most 3 or raise the burst \
             (Quota::allow_burst, the token bucket's max or the window's n)",
        ),
    ];
    for (weight, expected, msg) in cases {
        let got = limiter.try_acquire_many(weight).unwrap_err();
        assert_eq!(got, expected);
        assert_eq!(got.to_string(), msg);
        assert_eq!(got.retry_after(), None);
    }
    assert_eq!(limiter_state(&limiter), before, "changed nothing");
    assert_eq!(queued.wakes(), 0);

    limiter.close();
    let before = limiter_state(&limiter);
    let got = limiter.try_acquire().unwrap_err();
    assert_eq!(got, LimiterTryError::Closed);
    assert_eq!(got.to_string(), "closed: no more permits will be granted");
    assert!(limiter.try_run(async {}).is_err());
    assert_eq!(limiter_state(&limiter), before);
    drop((held, queued));
    assert_eq!(limiter.available_slots(), Some(4));
}

#[test]
fn keyed_try_on_a_closed_key_or_global_names_which_and_changes_nothing() {
    let clock = ManualClock::new();
    let global = LimiterBuilder::with_clock(clock.clone())
        .concurrency(2)
        .build()
        .unwrap();
    let keyed = KeyedLimiter::new(LimiterBuilder::with_clock(clock).concurrency(1))
        .unwrap()
        .with_global(global.clone());
    keyed.close_key(&"banned");
    let got = keyed.try_acquire(&"banned").unwrap_err();
    assert_eq!(got, KeyedTryError::Key(LimiterTryError::Closed));
    assert_eq!(
        got.to_string(),
        "the key's limiter refused: closed: no more permits will be granted"
    );
    assert_eq!(global.available_slots(), Some(2));
    global.close();
    let got = keyed.try_acquire(&"a").unwrap_err();
    assert_eq!(got, KeyedTryError::Global(LimiterTryError::Closed));
    assert_eq!(
        got.to_string(),
        "the global limiter refused: closed: no more permits will be granted"
    );
    assert_eq!(global.available_slots(), Some(2));
}
