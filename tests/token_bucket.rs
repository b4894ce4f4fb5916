//! `TokenBucket` on `ManualClock`: discrete refill, FIFO waiting, refunds.

mod common;

use std::time::Duration;

use common::Probe;
use limiters::{ManualClock, RateLimitError, TokenBucket, TokenBucketBuilder, TokenBucketError};

fn bucket(max: u32, initial: u32, refill: u32, ms: u64) -> (ManualClock, TokenBucket<ManualClock>) {
    let clock = ManualClock::new();
    let b = TokenBucketBuilder::new()
        .max(max)
        .initial(initial)
        .refill(refill)
        .interval(Duration::from_millis(ms))
        .build_with_clock(clock.clone())
        .unwrap();
    (clock, b)
}

#[test]
fn refills_in_lumps_up_to_max() {
    let (clock, b) = bucket(5, 2, 2, 100);
    assert_eq!(b.available(), 2);
    assert!(b.check_n(2).is_ok());
    let denied = b.check().unwrap_err();
    assert_eq!(denied.wait_time(), Duration::from_millis(100));
    clock.advance(Duration::from_millis(99));
    assert!(b.check().is_err());
    clock.advance(Duration::from_millis(1));
    assert_eq!(b.available(), 2);
    clock.advance(Duration::from_secs(10));
    assert_eq!(b.available(), 5);
    assert!(b.check_n(5).is_ok());
    assert!(matches!(
        b.check_n(6),
        Err(RateLimitError::InsufficientCapacity {
            requested: 6,
            burst: 5
        })
    ));
}

#[test]
fn builder_rejects_impossible_settings() {
    let b = || TokenBucketBuilder::new();
    let clock = ManualClock::new();
    assert_eq!(
        b().max(0).build_with_clock(clock.clone()).unwrap_err(),
        TokenBucketError::ZeroMax
    );
    assert_eq!(
        b().refill(0).build_with_clock(clock.clone()).unwrap_err(),
        TokenBucketError::ZeroRefill
    );
    assert_eq!(
        b().interval(Duration::ZERO)
            .build_with_clock(clock.clone())
            .unwrap_err(),
        TokenBucketError::ZeroInterval
    );
    assert_eq!(
        b().interval(Duration::MAX)
            .build_with_clock(clock.clone())
            .unwrap_err(),
        TokenBucketError::IntervalTooLong
    );
    assert_eq!(
        b().max(2)
            .refill(3)
            .build_with_clock(clock.clone())
            .unwrap_err(),
        TokenBucketError::RefillExceedsMax { refill: 3, max: 2 }
    );
    let err = b().max(2).initial(3).build_with_clock(clock).unwrap_err();
    assert_eq!(
        err,
        TokenBucketError::InitialExceedsMax { initial: 3, max: 2 }
    );
    assert_eq!(
        err.to_string(),
        "initial is 3 tokens but max is 2: set initial to at most 2 or raise max"
    );
}

#[test]
fn waiters_are_fifo_and_woken_at_their_refill() {
    let (clock, b) = bucket(4, 0, 2, 100);
    let mut big = Probe::new(b.acquire_many(4));
    let mut small = Probe::new(b.acquire());
    assert!(!big.poll());
    assert!(!small.poll());
    assert!(b.check().is_err()); // no barging
    clock.advance(Duration::from_millis(100));
    assert_eq!((big.wakes(), small.wakes()), (0, 0));
    clock.advance(Duration::from_millis(100));
    assert_eq!((big.wakes(), small.wakes()), (1, 0));
    assert!(big.poll());
    clock.advance(Duration::from_millis(100));
    assert_eq!(small.wakes(), 1);
    assert!(small.poll());
    // The 300 ms refill had one more token, which a check may take.
    assert!(b.check().is_ok());
}

#[test]
fn cancel_refunds_only_the_last_reservation() {
    let (clock, b) = bucket(2, 0, 1, 100);
    let mut first = Probe::new(b.acquire());
    let mut second = Probe::new(b.acquire());
    assert!(!first.poll());
    assert!(!second.poll());
    drop(second);
    assert_eq!(
        b.reserve_many(1).unwrap().delay(),
        Duration::from_millis(200)
    );
    let r = b.reserve_many(1).unwrap();
    drop(first); // not last: nothing back
    r.cancel(); // last: back
    clock.advance(Duration::from_millis(300));
    // Tokens of 100 ms (first) and 200 ms (the dropped reservation) are
    // spent; the 300 ms one came back with the cancel.
    assert_eq!(b.available(), 1);
    assert!(b.acquire_many(3).poll_fn_is_err());
}

trait IsErr {
    fn poll_fn_is_err(self) -> bool;
}

impl<F: std::future::Future<Output = Result<(), limiters::InsufficientCapacity>>> IsErr for F {
    fn poll_fn_is_err(self) -> bool {
        let mut p = Probe::new(self);
        p.poll() && p.take().is_err()
    }
}

#[test]
fn run_and_debug() {
    let (clock, b) = bucket(1, 1, 1, 1000);
    let mut one = Probe::new(b.run(async { 1 }));
    let mut two = Probe::new(b.run(async { 2 }));
    assert!(one.poll());
    assert!(!two.poll());
    clock.advance(Duration::from_secs(1));
    assert!(two.poll());
    assert_eq!((one.take(), two.take()), (1, 2));
    let debug = format!("{b:?}");
    assert!(
        debug.contains("TokenBucket") && debug.contains("max: 1"),
        "{debug}"
    );
    fn send_sync<T: Send + Sync>() {}
    send_sync::<TokenBucket<ManualClock>>();
    send_sync::<limiters::BucketReservation<'static, ManualClock>>();
}

#[test]
fn no_overflow_at_extremes() {
    for start in [0, u64::MAX - 10, u64::MAX] {
        let clock = ManualClock::new();
        clock.advance(Duration::from_nanos(start));
        let b = TokenBucketBuilder::new()
            .max(u32::MAX)
            .refill(u32::MAX)
            .interval(Duration::from_nanos(1))
            .build_with_clock(clock.clone())
            .unwrap();
        assert!(b.check_n(u32::MAX).is_ok());
        let _ = b.check_n(u32::MAX);
        let _ = b.reserve_many(u32::MAX).map(|r| r.delay());
        clock.advance(Duration::MAX);
        let _ = b.check();
        let slow = TokenBucketBuilder::new()
            .max(1)
            .interval(Duration::from_nanos(u64::MAX))
            .build_with_clock(clock.clone())
            .unwrap();
        slow.check().unwrap();
        let _ = slow.check().unwrap_err().wait_time();
    }
}

/// A reservation whose refill has come is spent: cancelling it then gives
/// nothing back, though it is the last one.
#[test]
fn a_reservation_cancelled_after_it_is_due_refunds_nothing() {
    let (clock, b) = bucket(2, 0, 1, 100);
    let r = b.reserve_many(1).unwrap();
    assert_eq!(r.delay(), Duration::from_millis(100));
    clock.advance(Duration::from_millis(100));
    r.cancel();
    assert_eq!(b.available(), 0);
    assert_eq!(
        b.check().unwrap_err().wait_time(),
        Duration::from_millis(100)
    );
    // A waiter dropped after its refill came is spent alike.
    let mut w = Probe::new(b.acquire());
    assert!(!w.poll());
    clock.advance(Duration::from_millis(100));
    drop(w);
    assert_eq!(b.available(), 0);
}

/// After any idle spell, a full `check_n(max)` takes every token: nothing
/// is left (the bucket never holds more than `max`).
#[test]
fn a_full_check_n_after_idle_leaves_nothing() {
    let (clock, b) = bucket(5, 5, 2, 100);
    for idle in [
        Duration::ZERO,
        Duration::from_millis(300),
        Duration::from_secs(3_600),
    ] {
        clock.advance(idle);
        assert_eq!(b.available(), 5);
        b.check_n(5).unwrap();
        assert_eq!(b.available(), 0);
        assert!(b.check().is_err());
    }
}
