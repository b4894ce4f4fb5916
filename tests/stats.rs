//! `stats()` on every primitive, polled by hand on a `ManualClock`: each
//! figure is asserted exactly after a known sequence of admissions,
//! refusals, waits and pauses.

mod common;

use std::time::Duration;

use common::Probe;
use limiters::{
    BoundedSemaphore, KeyedLimiter, KeyedRateLimiter, Limiter, ManualClock, Quota, RateLimiter,
    Semaphore, TokenBucket, Totals,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn totals(admitted: u64, denied: u64, waited: u64, total: Duration, max: Duration) -> Totals {
    let mut t = Totals::default();
    t.admitted = admitted;
    t.denied = denied;
    t.waited = waited;
    t.wait_total = total;
    t.wait_max = max;
    t
}

#[test]
fn semaphore_counts_admissions_refusals_and_queued_grants() {
    let sem = Semaphore::new(2);
    let a = sem.try_acquire().unwrap();
    let mut b = Probe::new(sem.acquire_many(2)); // takes 1, waits for 1
    assert!(!b.poll());
    assert!(sem.try_acquire().is_err());
    let s = sem.stats();
    assert_eq!(
        (s.available, s.in_use, s.waiters, s.closed),
        (0, 2, 1, false)
    );
    assert_eq!(s.totals, totals(1, 1, 0, Duration::ZERO, Duration::ZERO));
    drop(a);
    assert!(b.poll());
    let s = sem.stats();
    assert_eq!((s.available, s.in_use, s.waiters), (0, 2, 0));
    assert_eq!(s.totals, totals(2, 1, 1, Duration::ZERO, Duration::ZERO));
    drop(b.take().unwrap());
    sem.close();
    let s = sem.stats();
    assert_eq!((s.available, s.in_use, s.closed), (2, 0, true));
}

#[test]
fn bounded_semaphore_reports_in_use_against_capacity() {
    let bs = BoundedSemaphore::new(3);
    let held = bs.try_acquire_many(2).unwrap();
    held.forget(); // detached: still in use until released
    let s = bs.stats();
    assert_eq!((s.available, s.in_use, s.totals.admitted), (1, 2, 1));
    bs.release(2).unwrap();
    assert_eq!(bs.stats().in_use, 0);
}

#[test]
fn rate_limiter_counts_waits_on_its_clock() {
    let clock = ManualClock::new();
    let rl = RateLimiter::with_clock(Quota::per_second(10).allow_burst(2), clock.clone());
    rl.check_n(2).unwrap();
    assert!(rl.check().is_err());
    let mut first = Probe::new(rl.acquire()); // at 100 ms
    let mut second = Probe::new(rl.acquire()); // at 200 ms
    assert!(!first.poll());
    assert!(!second.poll());
    let s = rl.stats();
    assert_eq!((s.remaining, s.waiters), (0, 2));
    assert_eq!(
        s.totals,
        totals(1, 1, 0, Duration::ZERO, Duration::ZERO),
        "a queued acquire is not a refusal"
    );
    clock.advance(ms(100));
    assert!(first.poll());
    clock.advance(ms(150)); // polled 50 ms late
    assert!(second.poll());
    rl.pause_for(ms(10));
    let s = rl.stats();
    assert_eq!((s.waiters, s.pauses), (0, 1));
    assert_eq!(s.totals, totals(3, 1, 2, ms(350), ms(250)));
}

#[test]
fn deadline_refusals_count_as_denied() {
    let clock = ManualClock::new();
    let rl = RateLimiter::with_clock(Quota::per_second(1), clock.clone());
    let mut p = Probe::new(rl.acquire_within(Duration::ZERO));
    assert!(p.poll()); // admitted
    let mut p = Probe::new(rl.acquire_within(ms(10)));
    assert!(p.poll()); // WouldExceed
    let mut in_time = Probe::new(rl.acquire_within(ms(1000)));
    assert!(!in_time.poll(), "queued in time: not refused");
    assert_eq!(rl.stats().totals.denied, 1);
    clock.advance(ms(1000));
    assert!(in_time.poll());
    assert_eq!(rl.stats().totals, totals(2, 1, 1, ms(1000), ms(1000)));
}

#[test]
fn token_bucket_counts_checks_waits_and_reservations() {
    let clock = ManualClock::new();
    let bucket = TokenBucket::builder()
        .max(2)
        .refill(1)
        .build_with_clock(clock.clone())
        .unwrap();
    bucket.check().unwrap();
    let _reserved = bucket.reserve_many(1).unwrap();
    assert!(bucket.check().is_err());
    let mut waiting = Probe::new(bucket.acquire());
    assert!(!waiting.poll());
    clock.advance(ms(1000));
    assert!(waiting.poll());
    let s = bucket.stats();
    assert_eq!((s.remaining, s.waiters, s.pauses), (0, 0, 0));
    assert_eq!(s.totals, totals(3, 1, 1, ms(1000), ms(1000)));
}

#[test]
fn limiter_counts_every_stage_and_every_clone() {
    let clock = ManualClock::new();
    let limiter = Limiter::builder()
        .concurrency(1)
        .rate(Quota::per_second(1))
        .clock(clock.clone())
        .build()
        .unwrap();
    let clone = limiter.clone();
    let mut held = Probe::new(limiter.acquire());
    assert!(held.poll());
    let mut slot_wait = Probe::new(clone.acquire());
    assert!(!slot_wait.poll());
    let s = limiter.stats();
    assert_eq!((s.in_use, s.available, s.waiters), (Some(1), Some(0), 1));
    clock.advance(ms(400));
    drop(held.take().unwrap());
    assert!(!slot_wait.poll(), "has the slot, waits for the rate");
    assert_eq!(limiter.stats().waiters, 1);
    clock.advance(ms(600));
    assert!(slot_wait.poll());
    let mut refused = Probe::new(limiter.acquire_within(Duration::ZERO));
    assert!(refused.poll());
    limiter.pause_for(ms(5));
    let s = clone.stats();
    assert_eq!(
        (s.in_use, s.waiters, s.pauses, s.closed),
        (Some(1), 0, 1, false)
    );
    assert_eq!(s.totals, totals(2, 1, 1, ms(1000), ms(1000)));
}

#[test]
fn keyed_limiters_count_keys() {
    let clock = ManualClock::new();
    let keyed = KeyedRateLimiter::with_clock(Quota::per_second(1), clock.clone());
    keyed.check(&1).unwrap();
    keyed.check(&2).unwrap();
    assert!(keyed.check(&1).is_err());
    let mut waiting = Probe::new(keyed.acquire(&2));
    assert!(!waiting.poll());
    clock.advance(ms(1000));
    assert!(waiting.poll());
    let s = keyed.stats();
    assert_eq!(s.keys, 2);
    assert_eq!(s.totals, totals(3, 1, 1, ms(1000), ms(1000)));

    let per_host =
        KeyedLimiter::new(Limiter::builder().concurrency(1).clock(clock.clone())).unwrap();
    let mut a = Probe::new(per_host.run(&"a", std::future::pending::<()>()));
    let mut b = Probe::new(per_host.run(&"a", async {}));
    let mut c = Probe::new(per_host.run(&"c", async {}));
    assert!(!a.poll()); // admitted, runs forever
    assert!(!b.poll()); // waits for a's slot
    assert!(c.poll());
    let s = per_host.stats();
    assert_eq!((s.keys, s.waiters), (2, 1));
    assert_eq!((s.totals.admitted, s.totals.waited), (2, 0));
    drop(a);
    assert!(b.poll());
    assert_eq!(per_host.stats().totals.waited, 1);
}

/// A keyed rate limiter counts its checks per shard (under the shard's
/// lock, without a locked add): four threads checking keys of every shard
/// at once lose none of them.
#[test]
fn keyed_rate_limiter_counts_every_check_of_every_shard_and_thread() {
    let keyed = KeyedRateLimiter::with_clock(Quota::per_hour(1), ManualClock::new());
    std::thread::scope(|s| {
        for thread in 0..4u64 {
            let keyed = &keyed;
            s.spawn(move || {
                for key in thread * 2_000..(thread + 1) * 2_000 {
                    keyed.check(&key).unwrap();
                    assert!(keyed.check(&key).is_err());
                    assert!(keyed.check_n(&key, 2).is_err()); // beyond the burst
                }
            });
        }
    });
    let s = keyed.stats();
    assert_eq!(s.keys, 8_000);
    assert_eq!(s.totals, totals(8_000, 16_000, 0, ms(0), ms(0)));
}

#[test]
fn sliding_window_counts_checks_waits_and_pauses() {
    let clock = ManualClock::new();
    let window = limiters::SlidingWindow::with_clock(2, ms(1000), clock.clone());
    window.check_n(2).unwrap();
    assert!(window.check().is_err());
    assert!(window.check_n(3).is_err());
    let mut waiting = Probe::new(window.acquire());
    assert!(!waiting.poll());
    let s = window.stats();
    assert_eq!((s.remaining, s.waiters), (0, 1));
    clock.advance(ms(1001));
    assert!(waiting.poll());
    window.pause_for(ms(10));
    let s = window.stats();
    assert_eq!((s.waiters, s.pauses), (0, 1));
    assert_eq!(s.totals, totals(2, 2, 1, ms(1001), ms(1001)));
}

/// Four threads admitting and being refused at once: the totals are exact
/// whichever thread owns the lock-free slots (the first to count) and which
/// add to the shared ones.
#[test]
fn totals_are_exact_across_threads() {
    const PER_THREAD: u64 = 200_000;
    let sem = std::sync::Arc::new(Semaphore::new(1));
    let start = std::sync::Arc::new(std::sync::Barrier::new(4));
    let held = sem.try_acquire().unwrap();
    drop(held);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (sem, start) = (sem.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let (mut admitted, mut denied) = (0u64, 0u64);
                for _ in 0..PER_THREAD {
                    match sem.try_acquire() {
                        Ok(permit) => {
                            admitted += 1;
                            drop(permit);
                        }
                        Err(_) => denied += 1,
                    }
                }
                (admitted, denied)
            })
        })
        .collect();
    let (admitted, denied) = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .fold((1, 0), |(a, d), (ta, td)| (a + ta, d + td));
    assert_eq!(admitted + denied, 4 * PER_THREAD + 1);
    let totals = sem.stats().totals;
    assert_eq!((totals.admitted, totals.denied), (admitted, denied));
}

/// Four threads racing for the last cells while one of them moves the
/// clock, each answer tallied by `check`: a lock-free check counts its
/// admission just before its CAS and takes the count back when a retry
/// ends in a refusal, so `stats()` must match the tallies exactly.
fn race_for_the_last_cells(clock: &ManualClock, check: impl Fn() -> bool + Sync) -> (u64, u64) {
    const PER_THREAD: u64 = 2_000_000;
    let start = std::sync::Barrier::new(4);
    let (admitted, denied) = std::thread::scope(|s| {
        let threads: Vec<_> = (0..4u64)
            .map(|thread| {
                let (start, check) = (&start, &check);
                s.spawn(move || {
                    start.wait();
                    let (mut admitted, mut denied) = (0u64, 0u64);
                    for i in 0..PER_THREAD {
                        if thread == 0 && i % 8 == 0 {
                            clock.advance(Duration::from_micros(1));
                        }
                        if check() {
                            admitted += 1;
                        } else {
                            denied += 1;
                        }
                    }
                    (admitted, denied)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .fold((0, 0), |(a, d), (ta, td)| (a + ta, d + td))
    });
    assert_eq!(admitted + denied, 4 * PER_THREAD);
    // One cell per microsecond after a burst of 4.
    let elapsed_us = PER_THREAD.div_ceil(8);
    assert!(
        admitted <= 4 + elapsed_us,
        "{admitted} cells in {elapsed_us} us"
    );
    assert!(denied > 0, "the threads never ran out of cells");
    (admitted, denied)
}

#[test]
fn rate_totals_are_exact_when_checks_race_for_the_last_cells() {
    let clock = ManualClock::new();
    let limiter =
        RateLimiter::with_clock(Quota::per_second(1_000_000).allow_burst(4), clock.clone());
    let tallies = race_for_the_last_cells(&clock, || limiter.check().is_ok());
    let totals = limiter.stats().totals;
    assert_eq!((totals.admitted, totals.denied), tallies);
}

#[test]
fn token_bucket_totals_are_exact_when_checks_race_for_the_last_tokens() {
    let clock = ManualClock::new();
    let bucket = TokenBucket::builder()
        .max(4)
        .initial(4)
        .refill(1)
        .interval(Duration::from_micros(1))
        .build_with_clock(clock.clone())
        .unwrap();
    let tallies = race_for_the_last_cells(&clock, || bucket.check().is_ok());
    let totals = bucket.stats().totals;
    assert_eq!((totals.admitted, totals.denied), tallies);
}
