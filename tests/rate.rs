//! The GCRA `RateLimiter` on `ManualClock`: exact math, FIFO waiting with
//! exact wake-ups, cancel/refund, quota changes and pauses. Futures are polled
//! by hand with counting wakers; no sleeps, no wall clock.

mod common;

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::task::Context;
use std::time::Duration;

use common::{DeafClock, Probe};
use limiters::{ManualClock, ManualInstant, Quota, RateLimitError, RateLimiter, Reservation};

fn limiter(quota: Quota) -> (ManualClock, RateLimiter<ManualClock>) {
    let clock = ManualClock::new();
    (clock.clone(), RateLimiter::with_clock(quota, clock))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn ns(n: u64) -> Duration {
    Duration::from_nanos(n)
}

#[test]
fn burst_then_steady_rate() {
    let (clock, rl) = limiter(Quota::per_second(10).allow_burst(3));
    assert!(rl.check().is_ok());
    assert!(rl.check().is_ok());
    assert!(rl.check().is_ok());
    let denied = rl.check().unwrap_err();
    assert_eq!(denied.wait_time(), ms(100));
    assert_eq!(denied.earliest(), clock.now() + ms(100));
    for _ in 0..10 {
        clock.advance(ms(100));
        assert!(rl.check().is_ok());
        assert!(rl.check().is_err());
    }
}

#[test]
fn not_until_is_exact_to_the_nanosecond() {
    // 3 per 10 s: t = 3.333... s, never rounded.
    let (clock, rl) = limiter(Quota::new(3, Duration::from_secs(10)).unwrap());
    rl.check().unwrap();
    for _ in 0..20 {
        let earliest = rl.check().unwrap_err().earliest();
        let wait = earliest - clock.now();
        clock.advance(wait - ns(1));
        assert!(rl.check().is_err(), "admitted 1 ns early");
        clock.advance(ns(1));
        assert!(rl.check().is_ok(), "denied at the instant NotUntil named");
    }
    // 20 cells after the first: 20 * 10/3 s, plus under 1 ns per cell. With
    // a burst of 1, a cell admitted at the first whole ns after its
    // theoretical time cannot pass that lateness on (the window bound
    // forbids it).
    let elapsed = clock.now().as_nanos();
    assert!(
        (66_666_666_667..66_666_666_687).contains(&elapsed),
        "{elapsed}"
    );
}

#[test]
fn three_hundred_million_per_second_is_exact() {
    // Chunks of a million cells under saturating demand: each admitted as
    // soon as NotUntil allows. 301 chunks (the burst plus 300 million)
    // take exactly one second (plus under 1 ns of lateness per chunk); a
    // limiter that rounded t = 3.33 ns to 3 ns would take 0.9 s.
    let burst = 1_000_000;
    let (clock, rl) = limiter(Quota::per_second(300_000_000).allow_burst(burst));
    rl.check_n(burst).unwrap();
    for _ in 0..300 {
        match rl.check_n(burst) {
            Ok(()) => panic!("admitted ahead of the rate"),
            Err(RateLimitError::NotUntil(denied)) => clock.advance(denied.wait_time()),
            Err(e) => panic!("{e}"),
        }
        rl.check_n(burst).unwrap();
    }
    let elapsed = clock.now().as_nanos();
    assert!(
        (1_000_000_000..1_000_000_300).contains(&elapsed),
        "{elapsed}"
    );
    assert!(rl.check().is_err());
}

#[test]
fn idle_never_builds_more_than_the_burst() {
    let (clock, rl) = limiter(Quota::per_second(100).allow_burst(5));
    clock.advance(Duration::from_secs(3600));
    assert_eq!((0..100).filter(|_| rl.check().is_ok()).count(), 5);
}

#[test]
fn check_n_agrees_with_n_checks_and_rejects_more_than_the_burst() {
    let (clock, rl) = limiter(Quota::per_second(10).allow_burst(4));
    let (_, twin) = {
        let rl2 = RateLimiter::with_clock(Quota::per_second(10).allow_burst(4), clock.clone());
        ((), rl2)
    };
    assert!(rl.check_n(3).is_ok());
    assert!((0..3).all(|_| twin.check().is_ok()));
    assert!(rl.check_n(2).is_err());
    assert!(twin.check().is_ok());
    assert!(twin.check().is_err());
    match rl.check_n(5) {
        Err(RateLimitError::InsufficientCapacity { requested, burst }) => {
            assert_eq!((requested, burst), (5, 4));
        }
        other => panic!("expected InsufficientCapacity, got {other:?}"),
    }
    let err = rl.check_n(5).unwrap_err();
    assert_eq!(
        err.to_string(),
        "requested 5 cells but the burst is 4: ask for at most 4 or raise the burst \
         (Quota::allow_burst, the token bucket's max or the window's n)"
    );
}

#[test]
fn acquire_many_beyond_the_burst_fails_at_once() {
    let (_clock, rl) = limiter(Quota::per_second(10).allow_burst(4));
    let mut big = Probe::new(rl.acquire_many(5));
    assert!(big.poll());
    let err = big.take().unwrap_err();
    assert_eq!((err.requested, err.burst), (5, 4));
}

#[test]
fn waiters_are_fifo_and_woken_exactly_when_their_slot_comes() {
    let (clock, rl) = limiter(Quota::per_second(10).allow_burst(5));
    rl.check_n(5).unwrap();
    // 5 cells at 100 ms each: the big one is ready at 500 ms.
    let mut big = Probe::new(rl.acquire_many(5));
    let mut small = Probe::new(rl.acquire());
    let mut later = Probe::new(rl.acquire());
    assert!(!big.poll());
    assert!(!small.poll());
    assert!(!later.poll());
    // check never barges past waiters.
    assert_eq!(rl.check().unwrap_err().wait_time(), ms(800));

    clock.advance(ms(499));
    assert_eq!((big.wakes(), small.wakes(), later.wakes()), (0, 0, 0));
    clock.advance(ms(1));
    assert_eq!((big.wakes(), small.wakes(), later.wakes()), (1, 0, 0));
    assert!(big.poll());
    big.take().unwrap();
    assert!(!small.poll() || small.wakes() > 0);

    clock.advance(ms(100));
    assert_eq!((small.wakes(), later.wakes()), (1, 0));
    assert!(small.poll());
    clock.advance(ms(100));
    assert_eq!(later.wakes(), 1);
    assert!(later.poll());
}

#[test]
fn a_later_small_acquire_never_overtakes_an_earlier_large_one() {
    let (clock, rl) = limiter(Quota::per_second(1).allow_burst(5));
    rl.check_n(5).unwrap();
    let mut big = Probe::new(rl.acquire_many(5));
    let mut small = Probe::new(rl.acquire());
    assert!(!big.poll());
    assert!(!small.poll());
    for _ in 0..4 {
        clock.advance(Duration::from_secs(1));
        assert!(!small.poll());
        assert!(!big.poll());
    }
    clock.advance(Duration::from_secs(1));
    assert!(!small.poll());
    assert!(big.poll());
    clock.advance(Duration::from_secs(1));
    assert!(small.poll());
}

#[test]
fn each_waiter_sleeps_once() {
    let (clock, rl) = limiter(Quota::per_second(1000));
    rl.check().unwrap();
    let mut waiters: Vec<_> = (0..50).map(|_| Probe::new(rl.acquire())).collect();
    for w in &mut waiters {
        assert!(!w.poll());
    }
    for i in 0..50 {
        clock.advance(ms(1));
        for (j, w) in waiters.iter().enumerate() {
            // Exactly the waiters whose slot came have been woken, once.
            assert_eq!(
                w.wakes(),
                usize::from(j <= i),
                "waiter {j} after {} ms",
                i + 1
            );
        }
        assert!(waiters[i].poll());
    }
}

#[test]
fn dropping_the_last_waiter_refunds_its_cells() {
    let (clock, rl) = limiter(Quota::per_second(10));
    rl.check().unwrap();
    let mut first = Probe::new(rl.acquire());
    let mut second = Probe::new(rl.acquire());
    assert!(!first.poll());
    assert!(!second.poll());
    drop(second); // last: refunded
    assert_eq!(rl.check().unwrap_err().wait_time(), ms(200));
    let mut third = Probe::new(rl.acquire());
    assert!(!third.poll());
    drop(first); // not last: the third was timed after it, nothing refunded
    assert_eq!(rl.check().unwrap_err().wait_time(), ms(300));
    clock.advance(ms(200));
    assert_eq!(third.wakes(), 1);
    assert!(third.poll());
}

#[test]
fn dropping_a_granted_but_unpolled_waiter_refunds_nothing() {
    let (clock, rl) = limiter(Quota::per_second(10));
    rl.check().unwrap();
    let mut w = Probe::new(rl.acquire());
    assert!(!w.poll());
    clock.advance(ms(100));
    drop(w); // its time came: the cell is spent
    assert_eq!(rl.check().unwrap_err().wait_time(), ms(100));
}

#[test]
fn reservation_delay_cancel_and_drop() {
    let (clock, rl) = limiter(Quota::per_second(4));
    let now: Reservation<'_, ManualClock> = rl.reserve_many(1).unwrap();
    assert_eq!(now.delay(), Duration::ZERO);
    let r1 = rl.reserve_many(1).unwrap();
    let r2 = rl.reserve_many(1).unwrap();
    assert_eq!(r1.delay(), ms(250));
    assert_eq!(r2.ready_at(), clock.now() + ms(500));
    r2.cancel();
    drop(r1); // dropping keeps the cell reserved
    assert_eq!(rl.check().unwrap_err().wait_time(), ms(500));
    let r3 = rl.reserve_many(1).unwrap();
    r1_then_cancel_not_last(&rl, r3);
    assert!(format!("{:?}", rl.reserve_many(1).unwrap()).starts_with("Reservation"));
    assert!(rl.reserve_many(2).is_err());
}

fn r1_then_cancel_not_last(rl: &RateLimiter<ManualClock>, r3: Reservation<'_, ManualClock>) {
    let r4 = rl.reserve_many(1).unwrap();
    let before = rl.check().unwrap_err().wait_time();
    r3.cancel(); // r4 depends on it: nothing comes back
    assert_eq!(rl.check().unwrap_err().wait_time(), before);
    r4.cancel(); // last again: refunded
    assert_eq!(rl.check().unwrap_err().wait_time(), before - ms(250));
}

/// Polling a waiting acquire with a new waker drops the old one after the
/// limiter's lock is released: it may be the last handle to a task whose
/// futures use the limiter. (On `DeafClock` the limiter holds the only
/// stored copy of the waker.)
#[test]
fn a_replaced_waker_is_dropped_outside_the_lock() {
    common::no_deadlock(|| {
        let rl = Arc::new(RateLimiter::with_clock(
            Quota::per_second(1),
            DeafClock::default(),
        ));
        rl.check().unwrap();
        let mut fut = Box::pin(rl.acquire());
        for _ in 0..2 {
            let reenter = rl.clone();
            let waker = common::waker_dropping(move || {
                let _ = reenter.quota();
            });
            assert!(fut
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending());
        }
        drop(fut);
    });
}

/// A `Waker::clone` that panics while the acquire links its reservation
/// leaves no cells reserved for it.
#[test]
fn a_panicking_waker_clone_reserves_nothing() {
    let (_clock, rl) = limiter(Quota::per_second(1));
    rl.check().unwrap();
    let mut fut = Box::pin(rl.acquire());
    let waker = common::panicking_clone_waker();
    let polled = catch_unwind(AssertUnwindSafe(|| {
        fut.as_mut().poll(&mut Context::from_waker(&waker))
    }));
    assert!(polled.is_err());
    drop(fut);
    assert_eq!(rl.check().unwrap_err().wait_time(), ms(1000));
}

/// `ManualSleep` drops the waker it replaces after the clock's lock.
#[test]
fn a_manual_sleep_drops_a_replaced_waker_outside_the_lock() {
    use limiters::Clock;
    common::no_deadlock(|| {
        let clock = ManualClock::new();
        let mut sleep = Box::pin(clock.sleep_until(clock.now() + ms(1)));
        for _ in 0..2 {
            let reenter = clock.clone();
            let waker = common::waker_dropping(move || reenter.advance(Duration::ZERO));
            assert!(sleep
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending());
        }
        clock.advance(ms(1));
        assert!(common::poll_once(&mut sleep).is_ready());
    });
}

#[test]
fn set_quota_retimes_waiters_in_order() {
    let (clock, rl) = limiter(Quota::per_second(1));
    rl.check().unwrap();
    let mut a = Probe::new(rl.acquire());
    let mut b = Probe::new(rl.acquire());
    assert!(!a.poll());
    assert!(!b.poll());
    // a at 1 s, b at 2 s. Ten times faster: a at 100 ms, b at 200 ms.
    rl.set_quota(Quota::per_second(10));
    assert_eq!((a.wakes(), b.wakes()), (1, 1));
    assert!(!a.poll());
    assert!(!b.poll());
    clock.advance(ms(100));
    assert_eq!((a.wakes(), b.wakes()), (2, 1));
    assert!(a.poll());
    assert!(!b.poll());
    clock.advance(ms(100));
    assert!(b.poll());
    // And the new rate applies to newcomers.
    assert_eq!(rl.check().unwrap_err().wait_time(), ms(100));
    assert_eq!(rl.quota(), Quota::per_second(10));
}

#[test]
fn set_quota_slower_delays_waiters() {
    let (clock, rl) = limiter(Quota::per_second(10));
    rl.check().unwrap();
    let mut a = Probe::new(rl.acquire());
    assert!(!a.poll());
    rl.set_quota(Quota::per_second(1));
    assert!(!a.poll());
    clock.advance(ms(100));
    assert!(!a.poll());
    clock.advance(ms(900));
    assert!(a.poll());
}

#[test]
fn set_quota_below_a_waiters_size_fails_it_and_gives_back_its_cells() {
    let (clock, rl) = limiter(Quota::per_second(10).allow_burst(5));
    rl.check_n(5).unwrap();
    let mut big = Probe::new(rl.acquire_many(5));
    assert!(!big.poll());
    rl.set_quota(Quota::per_second(10).allow_burst(2));
    assert!(big.poll());
    let err = big.take().unwrap_err();
    assert_eq!((err.requested, err.burst), (5, 2));
    // Its 5 cells were the last reservation: refunded.
    clock.advance(ms(500));
    assert!(rl.check_n(2).is_ok());
}

#[test]
fn larger_burst_admits_waiters_at_once() {
    let (_clock, rl) = limiter(Quota::per_second(1));
    rl.check().unwrap();
    let mut a = Probe::new(rl.acquire());
    assert!(!a.poll());
    rl.set_quota(Quota::per_second(1).allow_burst(3));
    assert_eq!(a.wakes(), 1);
    assert!(a.poll());
}

#[test]
fn pause_for_admits_nothing_before_then_and_delays_queued_waiters() {
    let (clock, rl) = limiter(Quota::per_second(10).allow_burst(10));
    rl.check_n(10).unwrap();
    let mut a = Probe::new(rl.acquire());
    let mut b = Probe::new(rl.acquire());
    assert!(!a.poll()); // at 100 ms
    assert!(!b.poll()); // at 200 ms
    rl.pause_for(Duration::from_secs(30));
    assert_eq!(rl.check().unwrap_err().wait_time(), Duration::from_secs(30));
    clock.advance(Duration::from_secs(29));
    assert!(!a.poll());
    assert!(!b.poll());
    clock.advance(ms(999));
    assert!(!a.poll());
    clock.advance(ms(1));
    // The pause spent no credit: 30 s earned back the whole burst, so both
    // waiters and 8 more cells are admitted when it ends.
    assert!(a.poll());
    assert!(b.poll());
    assert!(rl.check_n(8).is_ok());
    assert_eq!(rl.check().unwrap_err().wait_time(), ms(100));
}

/// The scenario: 50 per second and 1,000 per hour (burst 1,000);
/// one `429 Retry-After: 1` must not leave the client at one call per 3.6 s
/// for the rest of the hour. After the pause the hourly budget (999 cells
/// left) is intact, and 300 calls run at the 50/s pace: the last starts at
/// 1 s + 299 * 20 ms.
#[test]
fn a_pause_spends_no_credit_of_an_hourly_budget() {
    let clock = ManualClock::new();
    let per_second = RateLimiter::with_clock(Quota::per_second(50), clock.clone());
    let per_hour =
        RateLimiter::with_clock(Quota::per_hour(1_000).allow_burst(1_000), clock.clone());
    let both = |n| per_second.check_n(n).is_ok() && per_hour.check_n(n).is_ok();
    assert!(both(1));
    per_second.pause_for(Duration::from_secs(1));
    per_hour.pause_for(Duration::from_secs(1));
    assert!(per_hour.check().is_err());
    clock.advance(Duration::from_secs(1));
    assert_eq!(per_hour.remaining(), 999);
    let mut started = Vec::new();
    let mut now = Duration::from_secs(1);
    while started.len() < 300 {
        if per_second.check().is_ok() {
            per_hour.check().unwrap();
            started.push(now);
        } else {
            clock.advance(ms(20));
            now += ms(20);
        }
    }
    assert_eq!(started[0], Duration::from_secs(1));
    assert_eq!(started[299], Duration::from_secs(1) + ms(20) * 299);
    // 301 cells taken, and 6.98 s earned back 1.9 of them.
    assert_eq!(per_hour.remaining(), 700);
}

#[test]
fn pauses_do_not_compound() {
    let (clock, rl) = limiter(Quota::per_second(10).allow_burst(10));
    rl.pause_for(Duration::from_secs(30));
    rl.pause_for(Duration::from_secs(30));
    rl.pause_for(Duration::from_secs(10));
    let denied = rl.check().unwrap_err();
    assert_eq!(denied.wait_time(), Duration::from_secs(30));
    let at: ManualInstant = denied.earliest();
    rl.pause_until(at);
    clock.advance(Duration::from_secs(30));
    // One pause of 30 s, and no credit spent: the whole burst.
    assert!(rl.check_n(10).is_ok());
    assert_eq!(rl.check().unwrap_err().wait_time(), ms(100));
}

#[test]
fn pause_survives_a_quota_change() {
    let (clock, rl) = limiter(Quota::per_second(10));
    rl.pause_for(Duration::from_secs(5));
    rl.set_quota(Quota::per_second(1000).allow_burst(1000));
    assert!(rl.check().is_err());
    clock.advance(Duration::from_secs(5) - ns(1));
    assert!(rl.check().is_err());
    clock.advance(ns(1));
    assert!(rl.check().is_ok());
}

#[test]
fn a_larger_burst_during_a_pause_admits_no_waiter_before_its_end() {
    // Found by the `rate` fuzz target: raising the burst while a pause was
    // in force granted the queued waiters at once.
    let (clock, rl) = limiter(Quota::per_second(10));
    rl.check().unwrap();
    let mut a = Probe::new(rl.acquire());
    assert!(!a.poll()); // at 100 ms
    let r = rl.reserve_many(1).unwrap(); // at 200 ms
    rl.pause_for(Duration::from_secs(5));
    assert!(!a.poll());
    rl.set_quota(Quota::per_second(10).allow_burst(1000));
    // The pause moved it; the larger burst did not (a pause admits no
    // waiter before its end), so only the pause woke it.
    assert_eq!(a.wakes(), 1);
    assert!(!a.poll());
    // The larger burst admits both at the end of the pause, not before.
    assert_eq!(r.ready_at(), clock.now() + Duration::from_secs(5));
    assert!(rl.check().is_err());
    clock.advance(Duration::from_secs(5) - ns(1));
    assert!(!a.poll());
    assert!(rl.check().is_err());
    clock.advance(ns(1));
    assert!(a.poll());
}

#[test]
fn changes_wake_every_waiter_they_move_and_only_those() {
    // More waiters than one wake batch (16): each is re-timed and woken once.
    let (clock, rl) = limiter(Quota::per_second(10));
    rl.check().unwrap();
    let mut waiters: Vec<_> = (0..40).map(|_| Probe::new(rl.acquire())).collect();
    assert!(waiters.iter_mut().all(|w| !w.poll()));
    rl.pause_for(Duration::from_secs(10));
    assert!(waiters.iter().all(|w| w.wakes() == 1));
    assert!(waiters.iter_mut().all(|w| !w.poll()));
    // The same quota again moves nobody, so wakes nobody.
    rl.set_quota(Quota::per_second(10));
    assert!(waiters.iter().all(|w| w.wakes() == 1));
    // Twice the rate moves all but the head (due at the pause's end either
    // way), which its own sleep still wakes in time.
    rl.set_quota(Quota::per_second(20));
    assert_eq!(waiters[0].wakes(), 1);
    assert!(waiters[1..].iter().all(|w| w.wakes() == 2));
    clock.advance(Duration::from_secs(10));
    assert!(waiters[0].poll());
    assert!(!waiters[1].poll());
    clock.advance(ms(50));
    assert!(waiters[1].poll());
    assert!(!waiters[2].poll());
}

#[test]
fn a_re_timed_saturated_reservation_stays_denied() {
    // Found by the `rate` fuzz target: a reservation saturated 584 years out
    // (it lost count of the cells ahead of it) was granted by the rescale of
    // any quota change or pause, together with everything behind it. The
    // burst is kept at 2^63 ns of credit (128 cells of 2^56 ns), so the
    // backlog of two whole bursts saturates.
    let (clock, rl) = limiter(Quota::new(1, ns(1 << 56)).unwrap().allow_burst(u32::MAX));
    assert_eq!(rl.quota().burst(), 128);
    assert_eq!(rl.reserve_many(128).unwrap().delay(), Duration::ZERO);
    let far = rl.reserve_many(128).unwrap();
    let one = rl.reserve_many(1).unwrap();
    assert_eq!(far.delay(), ns(u64::MAX));
    assert_eq!(one.delay(), ns(u64::MAX));
    rl.pause_for(Duration::ZERO);
    rl.set_quota(Quota::new(1, ns(1 << 56)).unwrap().allow_burst(u32::MAX));
    assert_eq!(far.delay(), ns(u64::MAX));
    assert_eq!(one.delay(), ns(u64::MAX));
    assert_eq!(far.ready_at(), one.ready_at());
    clock.advance(ns(1 << 60));
    assert!(far.delay() > Duration::ZERO);
}

#[test]
fn a_saturated_waiter_refused_by_a_smaller_burst_refunds_nothing() {
    // Found by the `rate` fuzz target: a saturated waiter that a smaller
    // burst refused was re-timed to the end of the queue, so cancelling it
    // gave back its cells from under a later reservation.
    let (_clock, rl) = limiter(Quota::new(1, ns(1 << 62)).unwrap().allow_burst(2));
    rl.check().unwrap();
    let _ahead = rl.reserve_many(2).unwrap();
    let far = rl.reserve_many(2).unwrap();
    assert_eq!(far.delay(), ns(u64::MAX));
    rl.set_quota(Quota::per_second(1).allow_burst(2));
    assert_eq!(far.delay(), ns(u64::MAX));
    let _now = rl.reserve_many(1).unwrap();
    let later = rl.reserve_many(1).unwrap();
    assert!(later.delay() > Duration::ZERO);
    rl.set_quota(Quota::per_second(1));
    far.cancel();
    let next = rl.reserve_many(1).unwrap();
    assert!(
        next.ready_at() > later.ready_at(),
        "{next:?} overtook {later:?}"
    );
}

#[test]
fn run_waits_for_its_cell_then_runs() {
    let (clock, rl) = limiter(Quota::per_second(10));
    let mut first = Probe::new(rl.run(async { 1 }));
    let mut second = Probe::new(rl.run(async { 2 }));
    assert!(first.poll());
    assert_eq!(first.take(), 1);
    assert!(!second.poll());
    clock.advance(ms(100));
    assert!(second.poll());
    assert_eq!(second.take(), 2);
}

#[test]
fn no_overflow_at_extreme_rates_bursts_and_times() {
    let quotas = [
        Quota::per_hour(1),
        Quota::per_hour(1).allow_burst(u32::MAX),
        Quota::per_second(1_000_000_000),
        Quota::per_second(1_000_000_000).allow_burst(u32::MAX),
        Quota::per_second(u32::MAX).allow_burst(u32::MAX),
        Quota::new(1, Duration::from_nanos(u64::MAX))
            .unwrap()
            .allow_burst(u32::MAX),
        Quota::new(u32::MAX, Duration::from_nanos(1)).unwrap(),
    ];
    for quota in quotas {
        for start in [
            0,
            u64::MAX / 2,
            u64::MAX - 1_000_000_000,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let clock = ManualClock::new();
            clock.advance(ns(start));
            let rl = RateLimiter::with_clock(quota, clock.clone());
            let _ = rl.check();
            let _ = rl.check_n(u32::MAX);
            let _ = rl.check_n(quota.burst());
            let _ = rl.check_n(quota.burst());
            if let Ok(r) = rl.reserve_many(quota.burst()) {
                let _ = (r.delay(), r.ready_at());
                r.cancel();
            }
            let _ = rl.reserve_many(quota.burst()).map(|r| r.delay());
            rl.pause_for(Duration::MAX);
            rl.set_quota(Quota::per_second(1));
            clock.advance(Duration::MAX);
            let _ = rl.check();
            // And a limiter created early whose clock runs to the end of time.
            let clock = ManualClock::new();
            let rl = RateLimiter::with_clock(quota, clock.clone());
            rl.check().unwrap();
            clock.advance(ns(start));
            let _ = rl.check_n(quota.burst());
            let _ = rl.check();
        }
    }
    // Near the end of time the limiter still admits at its rate.
    let clock = ManualClock::new();
    let rl = RateLimiter::with_clock(Quota::per_second(10).allow_burst(2), clock.clone());
    clock.advance(ns(u64::MAX - 1_000_000_000));
    assert!(rl.check_n(2).is_ok());
    assert!(rl.check().is_err());
    clock.advance(ms(100));
    assert!(rl.check().is_ok());
}

#[test]
#[should_panic(expected = "Quota::per_second(0)")]
fn zero_rate_panics_with_a_clear_message() {
    let _ = Quota::per_second(0);
}

#[test]
#[should_panic(expected = "Quota::allow_burst(0)")]
fn zero_burst_panics_with_a_clear_message() {
    let _ = Quota::per_minute(1).allow_burst(0);
}

#[test]
fn public_types_are_send_sync_and_debug() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<RateLimiter<ManualClock>>();
    send_sync::<Reservation<'static, ManualClock>>();
    send_sync::<limiters::NotUntil<ManualInstant>>();
    send_sync::<RateLimitError>();
    send::<limiters::futures::RateAcquire<'static, ManualClock>>();
    send::<limiters::futures::RateAcquireMany<'static, ManualClock>>();
    send::<limiters::futures::RateRun<'static, ManualClock, std::future::Ready<()>>>();
    send_sync::<limiters::RateLimiter>();
    let (_clock, rl) = limiter(Quota::per_second(3));
    let debug = format!("{rl:?}");
    assert!(
        debug.contains("RateLimiter") && debug.contains("waiters: 0"),
        "{debug}"
    );
    assert_eq!(format!("{:?}", rl.acquire()), "RateAcquire { .. }");
    assert!(format!("{:?}", Quota::per_second(3)).contains("cells: 3"));
}

/// A refusal keeps its instant as the limiter's origin plus nanoseconds
/// (computed when read); it must equal, hash and print like the same
/// refusal built from the instant itself, for every rate front.
#[test]
fn a_refusal_equals_the_same_refusal_built_from_its_instant() {
    use limiters::{KeyedRateLimiter, NotUntil, SlidingWindow, TokenBucket};
    use std::collections::hash_map::DefaultHasher;
    use std::hash::{Hash, Hasher};

    fn hash(value: &impl Hash) -> u64 {
        let mut hasher = DefaultHasher::new();
        value.hash(&mut hasher);
        hasher.finish()
    }

    let clock = ManualClock::new();
    clock.advance(Duration::from_secs(3));
    let ms = Duration::from_millis;
    let by_hand = |wait: Duration| NotUntil::new(clock.now() + wait, wait);

    let rate = RateLimiter::with_clock(Quota::per_second(4), clock.clone());
    let bucket = TokenBucket::builder()
        .max(1)
        .initial(1)
        .refill(1)
        .interval(ms(250))
        .build_with_clock(clock.clone())
        .unwrap();
    let keyed = KeyedRateLimiter::with_clock(Quota::per_second(4), clock.clone());
    let window = SlidingWindow::with_clock(1, ms(250), clock.clone());
    rate.check().unwrap();
    bucket.check().unwrap();
    keyed.check(&"k").unwrap();
    window.check().unwrap();

    // The window's bound is over closed windows: the next cell comes 1 ns
    // after the period.
    let refusals = [
        (rate.check().unwrap_err(), ms(250)),
        (bucket.check().unwrap_err(), ms(250)),
        (keyed.check(&"k").unwrap_err(), ms(250)),
        (
            window.check().unwrap_err(),
            ms(250) + Duration::from_nanos(1),
        ),
    ];
    for (denied, wait) in refusals {
        let expected = by_hand(wait);
        assert_eq!(denied, expected);
        assert_eq!(denied.earliest(), clock.now() + wait);
        assert_eq!(denied.wait_time(), wait);
        assert_eq!(hash(&denied), hash(&expected));
        assert_eq!(format!("{denied:?}"), format!("{expected:?}"));
        assert_eq!(
            RateLimitError::NotUntil(denied),
            RateLimitError::NotUntil(expected)
        );
        assert_ne!(denied, by_hand(wait - Duration::from_nanos(1)));
    }
}

/// Advances `clock` by `step` until every probe is ready; returns, for each
/// probe, how long after the call it first polled ready. Fails if some are
/// still waiting after `steps` steps.
fn ready_instants<F: Future>(
    clock: &ManualClock,
    probes: &mut [Probe<F>],
    step: Duration,
    steps: u32,
) -> Vec<Duration> {
    let start = clock.now();
    let mut at = vec![None; probes.len()];
    for _ in 0..=steps {
        for (p, at) in probes.iter_mut().zip(&mut at) {
            if at.is_none() && p.poll() {
                *at = Some(clock.now() - start);
            }
        }
        if at.iter().all(Option::is_some) {
            return at.into_iter().map(Option::unwrap).collect();
        }
        clock.advance(step);
    }
    panic!("not every waiter was admitted: {at:?}");
}

/// A quota change with more waiters than one wake batch (16) re-times and
/// wakes every one of them, not only the first batch: the 40th starts at
/// its new slot, 40 * 50 ms, as does every one before it.
#[test]
fn set_quota_re_times_more_waiters_than_one_wake_batch() {
    let (clock, rl) = limiter(Quota::per_second(10));
    rl.check().unwrap();
    let mut waiters: Vec<_> = (0..40).map(|_| Probe::new(rl.acquire())).collect();
    assert!(waiters.iter_mut().all(|w| !w.poll()));
    rl.set_quota(Quota::per_second(20));
    assert_eq!(
        common::wakes(&waiters),
        vec![1; 40],
        "every moved waiter is woken once"
    );
    let at = ready_instants(&clock, &mut waiters, ms(5), 1_000);
    let expected: Vec<Duration> = (1..=40).map(|k| ms(50) * k).collect();
    assert_eq!(at, expected);
}

/// A pause with more waiters than one wake batch delays every one of them,
/// keeping their gaps: none starts before the pause ends, and the 40th
/// starts 39 intervals after it.
#[test]
fn pause_re_times_more_waiters_than_one_wake_batch() {
    let (clock, rl) = limiter(Quota::per_second(10));
    rl.check().unwrap();
    let mut waiters: Vec<_> = (0..40).map(|_| Probe::new(rl.acquire())).collect();
    assert!(waiters.iter_mut().all(|w| !w.poll()));
    rl.pause_for(Duration::from_secs(10));
    assert_eq!(
        common::wakes(&waiters),
        vec![1; 40],
        "every moved waiter is woken once"
    );
    let at = ready_instants(&clock, &mut waiters, ms(10), 10_000);
    let expected: Vec<Duration> = (0..40)
        .map(|k| Duration::from_secs(10) + ms(100) * k)
        .collect();
    assert_eq!(at, expected);
}

/// A reservation whose time has come is spent: cancelling it then gives
/// nothing back (and it was the last one, so only its lateness stops the
/// refund).
#[test]
fn a_reservation_cancelled_after_it_is_due_refunds_nothing() {
    let (clock, rl) = limiter(Quota::per_second(10));
    rl.check().unwrap();
    let r = rl.reserve_many(1).unwrap();
    assert_eq!(r.delay(), ms(100));
    clock.advance(ms(100));
    r.cancel();
    assert_eq!(rl.check().unwrap_err().wait_time(), ms(100));
}

/// After any idle spell, a full `check_n(burst)` takes the whole credit:
/// nothing is left, not even one cell (credit is capped at the burst).
#[test]
fn a_full_check_n_after_idle_leaves_nothing() {
    let (clock, rl) = limiter(Quota::per_second(10).allow_burst(5));
    for idle in [ms(500), ms(501), Duration::from_secs(3_600)] {
        clock.advance(idle);
        assert_eq!(rl.remaining(), 5);
        rl.check_n(5).unwrap();
        assert_eq!(rl.remaining(), 0);
        assert_eq!(rl.check().unwrap_err().wait_time(), ms(100));
    }
}

/// One `advance` that makes more sleepers due than one wake batch (16)
/// wakes every one of them, once.
#[test]
fn one_advance_wakes_more_sleepers_than_a_wake_batch() {
    use limiters::Clock;
    let clock = ManualClock::new();
    let mut sleeps: Vec<_> = (0..40)
        .map(|i| Probe::new(clock.sleep_until(clock.now() + ms(10 + i % 2))))
        .collect();
    assert!(sleeps.iter_mut().all(|s| !s.poll()));
    clock.advance(ms(11));
    assert_eq!(common::wakes(&sleeps), vec![1; 40]);
    assert!(sleeps.iter_mut().all(Probe::poll));
}

/// A pause spends no credit even when the whole queue fits in the burst
/// the pause lets build up: 40 waiters (more than a wake batch) are all
/// admitted at the instant it ends, each woken by its own timer.
#[test]
fn a_pause_admits_a_whole_burst_of_waiters_at_its_end() {
    let (clock, rl) = limiter(Quota::per_second(10).allow_burst(40));
    rl.check_n(40).unwrap();
    let mut waiters: Vec<_> = (0..40).map(|_| Probe::new(rl.acquire())).collect();
    assert!(waiters.iter_mut().all(|w| !w.poll()));
    rl.pause_for(Duration::from_secs(10));
    assert!(waiters.iter_mut().all(|w| !w.poll()));
    clock.advance(Duration::from_secs(10) - ns(1));
    assert!(waiters.iter_mut().all(|w| !w.poll()));
    let before: Vec<usize> = waiters.iter().map(Probe::wakes).collect();
    clock.advance(ns(1));
    let woken: Vec<usize> = waiters.iter().map(Probe::wakes).collect();
    assert!(woken.iter().zip(&before).all(|(w, b)| w == &(b + 1)));
    assert!(waiters.iter_mut().all(Probe::poll));
    // Credit left: 40 cells earned in 10 s, 40 taken.
    assert_eq!(rl.remaining(), 0);
}

/// The limiter is one 8-byte word, the quota in lowest terms and a pointer
/// to its cold state (waiters, statistics, the 16-byte word of a changed
/// quota), beside the clock's origin: no larger than governor's (72 B).
#[test]
fn a_rate_limiter_is_at_most_72_bytes() {
    use std::mem::size_of;
    assert!(
        size_of::<RateLimiter>() <= 72,
        "{}",
        size_of::<RateLimiter>()
    );
    assert!(size_of::<RateLimiter<ManualClock>>() <= 72);
}
