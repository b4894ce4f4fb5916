//! `acquire_within` / `run_within` on every limiter, polled by hand on a
//! `ManualClock`: a wait known to end too late fails at once and takes
//! nothing; a wait that times out while queued gives everything back, as a
//! drop would; the other waiters keep their order; a zero deadline is a
//! `check`; a huge one saturates.

mod common;

use std::cell::Cell;
use std::time::Duration;

use common::Probe;
use limiters::{
    DeadlineError, KeyedRateLimiter, Limiter, ManualClock, ManualInstant, Quota, RateLimiter,
    TokenBucket,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn rate(quota: Quota) -> (RateLimiter<ManualClock>, ManualClock) {
    let clock = ManualClock::new();
    (RateLimiter::with_clock(quota, clock.clone()), clock)
}

fn would_exceed(wait: Duration, earliest: ManualInstant) -> DeadlineError<ManualInstant> {
    DeadlineError::WouldExceed { wait, earliest }
}

#[test]
fn rate_fail_fast_takes_nothing() {
    let (rl, clock) = rate(Quota::per_second(1));
    rl.check().unwrap();
    let start = clock.now();
    let mut late = Probe::new(rl.acquire_within(ms(999)));
    assert!(late.poll(), "decided at the first poll");
    assert_eq!(late.take(), Err(would_exceed(ms(1000), start + ms(1000))));
    // Nothing was taken: the next cell is still 1 s away, and a check then
    // is admitted.
    assert_eq!(rl.check().unwrap_err().wait_time(), ms(1000));
    clock.advance(ms(1000));
    assert!(rl.check().is_ok());
}

#[test]
fn rate_deadline_at_the_slot_is_in_time() {
    let (rl, clock) = rate(Quota::per_second(1));
    rl.check().unwrap();
    let mut exact = Probe::new(rl.acquire_within(ms(1000)));
    assert!(!exact.poll(), "queued: admitted exactly at the deadline");
    clock.advance(ms(1000));
    assert_eq!(exact.wakes(), 1);
    assert!(exact.poll());
    assert_eq!(exact.take(), Ok(()));
    assert_eq!(
        rl.check().unwrap_err().wait_time(),
        ms(1000),
        "its cell is spent"
    );
}

#[test]
fn rate_fail_fast_disturbs_no_waiter() {
    let (rl, clock) = rate(Quota::per_second(1));
    rl.check().unwrap();
    let mut first = Probe::new(rl.acquire());
    assert!(!first.poll()); // at 1 s
    let mut late = Probe::new(rl.acquire_within(ms(1500)));
    assert!(late.poll()); // would be at 2 s
    assert!(matches!(
        late.take(),
        Err(DeadlineError::WouldExceed { wait, .. }) if wait == ms(2000)
    ));
    let mut second = Probe::new(rl.acquire());
    assert!(!second.poll()); // at 2 s, not 3 s: the failed one took nothing
    clock.advance(ms(1000));
    assert_eq!((first.wakes(), second.wakes()), (1, 0));
    assert!(first.poll());
    assert!(!second.poll());
    clock.advance(ms(1000));
    assert_eq!(second.wakes(), 1);
    assert!(second.poll());
}

#[test]
fn rate_retimed_past_the_deadline_times_out_and_refunds_as_a_drop() {
    // Two identical limiters: in one the waiter times out, in the other it
    // is dropped. Afterwards both must be in the same state.
    let (timed, clock) = rate(Quota::per_second(10));
    let dropped = RateLimiter::with_clock(Quota::per_second(10), clock.clone());
    for rl in [&timed, &dropped] {
        rl.check().unwrap();
    }
    let mut waiter = Probe::new(timed.acquire_within(ms(150)));
    let mut twin = Probe::new(dropped.acquire_within(ms(150)));
    assert!(!waiter.poll()); // at 100 ms: in time
    assert!(!twin.poll());
    // The server lowered the limit: the waiter is re-timed to 1 s.
    timed.set_quota(Quota::per_second(1));
    dropped.set_quota(Quota::per_second(1));
    assert_eq!(waiter.wakes(), 1, "a re-time wakes the waiter");
    assert!(waiter.poll(), "known to be late: it gives up at once");
    assert_eq!(waiter.take(), Err(DeadlineError::TimedOut));
    drop(twin);
    assert_eq!(
        timed.reserve_many(1).unwrap().delay(),
        dropped.reserve_many(1).unwrap().delay()
    );
}

#[test]
fn rate_times_out_at_the_deadline_under_a_pause() {
    let (rl, clock) = rate(Quota::per_second(1));
    rl.check().unwrap();
    let mut waiter = Probe::new(rl.acquire_within(ms(1500)));
    assert!(!waiter.poll());
    rl.pause_for(ms(10_000));
    assert!(waiter.poll(), "the pause moved it past the deadline");
    assert_eq!(waiter.take(), Err(DeadlineError::TimedOut));
    // Its cell came back: the first cell after the pause is at its end.
    assert_eq!(rl.check().unwrap_err().wait_time(), ms(10_000));
    clock.advance(ms(10_000));
    assert!(rl.check().is_ok());
}

#[test]
fn zero_deadline_is_a_check() {
    let (rl, clock) = rate(Quota::per_second(2).allow_burst(2));
    let (twin, _) = rate(Quota::per_second(2).allow_burst(2));
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let mut p = Probe::new(rl.acquire_within(Duration::ZERO));
        assert!(p.poll(), "a zero deadline never queues");
        outcomes.push((p.take().is_ok(), twin.check().is_ok()));
    }
    assert_eq!(outcomes, [(true, true), (true, true), (false, false)]);
    assert_eq!(
        rl.check().unwrap_err().wait_time(),
        ms(500),
        "the denial took nothing"
    );
    clock.advance(ms(500));
    let mut p = Probe::new(rl.acquire_within(Duration::ZERO));
    assert!(p.poll());
    assert_eq!(p.take(), Ok(()));
}

#[test]
fn huge_timeout_saturates_and_waits() {
    let (rl, clock) = rate(Quota::per_second(1));
    rl.check().unwrap();
    let mut waiter = Probe::new(rl.acquire_many_within(1, Duration::MAX));
    assert!(!waiter.poll());
    clock.advance(ms(1000));
    assert!(waiter.poll());
    assert_eq!(waiter.take(), Ok(()));
}

#[test]
fn impossible_requests_keep_their_errors() {
    let (rl, _) = rate(Quota::per_second(1).allow_burst(3));
    let mut p = Probe::new(rl.acquire_many_within(4, ms(10)));
    assert!(p.poll());
    assert_eq!(
        p.take(),
        Err(DeadlineError::InsufficientCapacity {
            requested: 4,
            burst: 3
        })
    );
    let l = Limiter::builder()
        .concurrency(2)
        .clock(ManualClock::new())
        .build()
        .unwrap();
    let mut p = Probe::new(l.acquire_within(ms(10)));
    assert!(p.poll());
    drop(p.take().unwrap());
    l.close();
    let mut p = Probe::new(l.acquire_within(ms(10)));
    assert!(p.poll());
    assert_eq!(p.take().unwrap_err(), DeadlineError::Closed);
}

#[test]
fn token_bucket_fail_fast_and_in_time() {
    let clock = ManualClock::new();
    let bucket = TokenBucket::builder()
        .max(2)
        .refill(1)
        .build_with_clock(clock.clone())
        .unwrap();
    bucket.check_n(2).unwrap();
    let start = clock.now();
    let mut late = Probe::new(bucket.acquire_many_within(2, ms(1500)));
    assert!(late.poll());
    assert_eq!(late.take(), Err(would_exceed(ms(2000), start + ms(2000))));
    assert_eq!(bucket.available(), 0);
    let mut in_time = Probe::new(bucket.acquire_within(ms(1000)));
    assert!(!in_time.poll());
    clock.advance(ms(1000));
    assert!(in_time.poll());
    assert_eq!(in_time.take(), Ok(()));
    // The failed request took nothing: one token a second, one already used.
    clock.advance(ms(1000));
    assert_eq!(bucket.available(), 1);
}

#[test]
fn keyed_fail_fast_takes_nothing_from_the_key() {
    let clock = ManualClock::new();
    let keyed = KeyedRateLimiter::with_clock(Quota::per_second(1), clock.clone());
    keyed.check(&"a").unwrap();
    let mut late = Probe::new(keyed.acquire_within(&"a", ms(500)));
    assert!(late.poll());
    assert!(matches!(
        late.take(),
        Err(DeadlineError::WouldExceed { wait, .. }) if wait == ms(1000)
    ));
    let mut other = Probe::new(keyed.acquire_within(&"b", Duration::ZERO));
    assert!(other.poll());
    assert_eq!(other.take(), Ok(()));
    clock.advance(ms(1000));
    assert!(keyed.check(&"a").is_ok());
    let mut many = Probe::new(keyed.acquire_many_within(&"a", 2, Duration::MAX));
    assert!(many.poll());
    assert_eq!(
        many.take(),
        Err(DeadlineError::InsufficientCapacity {
            requested: 2,
            burst: 1
        })
    );
}

fn limiter(concurrency: usize, quota: Quota) -> (Limiter<ManualClock>, ManualClock) {
    let clock = ManualClock::new();
    let l = Limiter::builder()
        .concurrency(concurrency)
        .rate(quota)
        .clock(clock.clone())
        .build()
        .unwrap();
    (l, clock)
}

#[test]
fn limiter_rate_fail_fast_takes_no_slot() {
    let (l, clock) = limiter(2, Quota::per_second(1));
    let held = Probe::new(l.acquire_within(ms(0)));
    let mut held = held;
    assert!(held.poll());
    let start = clock.now();
    let mut late = Probe::new(l.acquire_within(ms(999)));
    assert!(late.poll());
    assert_eq!(
        late.take().unwrap_err(),
        would_exceed(ms(1000), start + ms(1000))
    );
    assert_eq!(l.available_slots(), Some(1), "no slot taken");
    clock.advance(ms(1000));
    let mut next = Probe::new(l.acquire());
    assert!(next.poll(), "the cell is still there at 1 s");
}

#[test]
fn limiter_slot_wait_times_out_and_keeps_the_queue() {
    let (l, clock) = limiter(1, Quota::per_second(1_000).allow_burst(10));
    let mut holder = Probe::new(l.acquire());
    assert!(holder.poll());
    let mut first = Probe::new(l.acquire());
    let mut within = Probe::new(l.acquire_within(ms(100)));
    let mut last = Probe::new(l.acquire());
    assert!(!first.poll());
    assert!(!within.poll());
    assert!(!last.poll());
    clock.advance(ms(100));
    assert_eq!(within.wakes(), 1, "its deadline woke it");
    assert!(within.poll());
    assert_eq!(within.take().unwrap_err(), DeadlineError::TimedOut);
    assert_eq!((first.wakes(), last.wakes()), (0, 0), "nobody else woken");
    drop(holder.take().unwrap());
    assert_eq!((first.wakes(), last.wakes()), (1, 0), "FIFO: first is next");
    assert!(first.poll());
    assert!(!last.poll());
    drop(first.take().unwrap());
    assert_eq!(last.wakes(), 1);
    assert!(last.poll());
    drop(last.take().unwrap());
    assert_eq!(l.available_slots(), Some(1), "every slot came back");
}

#[test]
fn limiter_slot_too_late_for_the_rate_is_released_without_running() {
    let (l, clock) = limiter(1, Quota::per_second(1));
    let mut holder = Probe::new(l.acquire());
    assert!(holder.poll()); // slot and the cell at 0
    let ran = Cell::new(false);
    let mut call = Probe::new(l.run_within(ms(1200), async { ran.set(true) }));
    let mut next = Probe::new(l.acquire());
    assert!(!call.poll(), "the rate alone would admit it at 1 s: queued");
    assert!(!next.poll());
    clock.advance(ms(500));
    l.pause_for(ms(5000)); // Retry-After: nothing before 5.5 s
    drop(holder.take().unwrap());
    assert_eq!(call.wakes(), 1, "granted the slot");
    assert!(call.poll(), "the slot came too late for the rate");
    assert_eq!(call.take(), Err(DeadlineError::TimedOut));
    assert!(!ran.get(), "the future never ran");
    assert_eq!(next.wakes(), 1, "its slot went on to the next request");
    assert!(!next.poll()); // now waits for the pause
    clock.advance(ms(5000));
    assert!(next.poll());
}

#[test]
fn limiter_zero_deadline_admits_only_what_is_free_now() {
    let (l, _clock) = limiter(1, Quota::per_second(10).allow_burst(5));
    let mut first = Probe::new(l.run_within(Duration::ZERO, async { 1 }));
    assert!(first.poll());
    assert_eq!(first.take(), Ok(1));
    let mut holder = Probe::new(l.acquire());
    assert!(holder.poll());
    let mut busy = Probe::new(l.acquire_within(Duration::ZERO));
    assert!(busy.poll(), "never queues");
    assert_eq!(busy.take().unwrap_err(), DeadlineError::TimedOut);
    drop(holder.take().unwrap());
    assert_eq!(l.available_slots(), Some(1));
}

#[test]
fn deadline_futures_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    use limiters::futures::{
        BucketAcquireWithin, KeyedRateAcquireWithin, LimiterAcquireWithin, LimiterRunWithin,
        RateAcquireWithin,
    };
    send_sync::<RateAcquireWithin<'_, ManualClock>>();
    send_sync::<BucketAcquireWithin<'_, ManualClock>>();
    send_sync::<KeyedRateAcquireWithin<'_, u64, ManualClock>>();
    send_sync::<LimiterAcquireWithin<ManualClock>>();
    send_sync::<LimiterRunWithin<ManualClock, std::future::Ready<()>>>();
    send_sync::<DeadlineError<ManualInstant>>();
    send_sync::<limiters::futures::RateAcquireWithin<'_, limiters::SystemClock>>();
}
