//! `SlidingWindow` on `ManualClock`: the window bound, FIFO waiting with
//! exact wake-ups, cancellation at every point, pauses that spend no cell,
//! and requests above the limit. Futures are polled by hand with counting
//! wakers; no sleeps, no wall clock. The proptests at the end compare it
//! with a plain model over random arrival patterns.

mod common;

use std::time::Duration;

use common::Probe;
use limiters::{
    DeadlineError, InsufficientCapacity, KeyedLimiter, Limiter, LimiterBuilder, ManualClock,
    NotUntil, QuotaError, RateLimitError, SlidingWindow,
};
use proptest::prelude::*;
use proptest::test_runner::RngAlgorithm;

fn window(n: u32, period: Duration) -> (ManualClock, SlidingWindow<ManualClock>) {
    let clock = ManualClock::new();
    (clock.clone(), SlidingWindow::with_clock(n, period, clock))
}

fn ns(n: u64) -> Duration {
    Duration::from_nanos(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn the_whole_allowance_at_once_then_nothing_until_the_window_slides() {
    let (clock, w) = window(3, secs(1));
    assert!(w.check_n(3).is_ok());
    let denied = w.check().unwrap_err();
    assert_eq!(denied.wait_time(), secs(1) + ns(1));
    assert_eq!(denied.earliest(), clock.now() + secs(1) + ns(1));
    // The window is closed: a cell admitted at 0 still counts at exactly 1 s.
    clock.advance(secs(1));
    assert!(w.check().is_err());
    clock.advance(ns(1));
    assert_eq!(w.remaining(), 3);
    assert!(w.check_n(3).is_ok());
}

#[test]
fn cells_free_one_by_one_as_their_admissions_leave_the_window() {
    let (clock, w) = window(3, Duration::from_millis(100));
    w.check().unwrap(); // t = 0
    clock.advance(Duration::from_millis(30));
    w.check_n(2).unwrap(); // t = 30 ms
    assert_eq!(w.remaining(), 0);
    assert_eq!(
        w.check().unwrap_err().wait_time(),
        Duration::from_millis(70) + ns(1)
    );
    assert_eq!(
        w.check_n(3).unwrap_err().to_string(),
        "rate limited: try again in 100.000001ms"
    );
    clock.advance(Duration::from_millis(70) + ns(1));
    assert_eq!(w.remaining(), 1);
    assert_eq!(w.until_full(), Duration::from_millis(30));
    clock.advance(Duration::from_millis(30));
    assert_eq!(w.remaining(), 3);
    assert_eq!(w.until_full(), Duration::ZERO);
}

#[test]
fn requests_above_the_limit_fail_at_once_with_the_numbers() {
    let (_clock, w) = window(5, secs(1));
    assert_eq!(
        w.check_n(6),
        Err(RateLimitError::InsufficientCapacity {
            requested: 6,
            burst: 5
        })
    );
    let mut too_many = Probe::new(w.acquire_many(6));
    assert!(too_many.poll());
    let err: InsufficientCapacity = too_many.take().unwrap_err();
    assert_eq!((err.requested, err.burst), (6, 5));
    assert_eq!(w.waiters(), 0);
    assert_eq!(w.remaining(), 5, "a refused request takes nothing");
}

#[test]
fn bad_settings_are_named_errors() {
    let clock = ManualClock::new();
    let try_new = |n, period| SlidingWindow::try_with_clock(n, period, clock.clone()).err();
    assert_eq!(try_new(0, secs(1)), Some(QuotaError::ZeroCells));
    assert_eq!(try_new(1, Duration::ZERO), Some(QuotaError::ZeroPeriod));
    assert_eq!(try_new(1, Duration::MAX), Some(QuotaError::PeriodTooLong));
    assert_eq!(try_new(1, ns(u64::MAX)), None);
}

#[test]
#[should_panic(expected = "SlidingWindow::with_clock(0, 1s): a quota of zero cells admits nothing")]
fn a_zero_limit_panics_in_the_constructor() {
    let _ = SlidingWindow::with_clock(0, secs(1), ManualClock::new());
}

#[test]
fn waiters_are_served_in_order_and_a_large_head_is_not_overtaken() {
    let (clock, w) = window(3, secs(1));
    w.check_n(2).unwrap();
    let mut big = Probe::new(w.acquire_many(3));
    let mut small = Probe::new(w.acquire());
    assert!(!big.poll());
    assert!(!small.poll(), "one cell is free, but the head needs 3");
    assert_eq!(w.waiters(), 2);
    assert!(w.check().is_err(), "check never barges past a waiter");
    assert_eq!(w.remaining(), 0);

    clock.advance(secs(1) + ns(1));
    assert_eq!((big.wakes(), small.wakes()), (1, 0), "only the head sleeps");
    assert!(big.poll());
    assert!(big.take().is_ok());
    assert_eq!(small.wakes(), 1, "the new head is told to arm its timer");
    assert!(!small.poll());
    // The head took all 3: the next cell frees one window later.
    clock.advance(secs(1));
    assert_eq!(small.wakes(), 1);
    clock.advance(ns(1));
    assert_eq!(small.wakes(), 2);
    assert!(small.poll());
}

#[test]
fn freed_cells_wake_exactly_the_waiters_they_admit() {
    let (clock, w) = window(3, secs(1));
    w.check_n(3).unwrap();
    let mut probes: Vec<_> = (0..5).map(|_| Probe::new(w.acquire())).collect();
    for p in &mut probes {
        assert!(!p.poll());
    }
    clock.advance(secs(1) + ns(1));
    let wakes: Vec<usize> = probes.iter().map(Probe::wakes).collect();
    assert_eq!(wakes, [1, 0, 0, 0, 0], "the head's timer only");
    // The head serves the queue: it and the next two fit; the fourth is the
    // new head and is woken to arm its own timer.
    assert!(probes[0].poll());
    let wakes: Vec<usize> = probes.iter().map(Probe::wakes).collect();
    assert_eq!(wakes, [1, 1, 1, 1, 0]);
    assert!(probes[1].poll());
    assert!(probes[2].poll());
    assert!(!probes[3].poll());
    assert!(!probes[4].poll());
    clock.advance(secs(1) + ns(1));
    let wakes: Vec<usize> = probes.iter().map(Probe::wakes).collect();
    assert_eq!(wakes, [1, 1, 1, 2, 0]);
    assert!(probes[3].poll());
    assert_eq!(probes[4].wakes(), 1);
    assert!(probes[4].poll());
}

#[test]
fn more_waiters_than_one_wake_batch_are_all_granted() {
    let (clock, w) = window(100, secs(1));
    w.check_n(100).unwrap();
    let mut probes: Vec<_> = (0..40).map(|_| Probe::new(w.acquire())).collect();
    for p in &mut probes {
        assert!(!p.poll());
    }
    clock.advance(secs(1) + ns(1));
    assert_eq!(w.remaining(), 60, "40 granted by remaining()'s serve");
    for p in &mut probes {
        assert_eq!(p.wakes(), 1);
        assert!(p.poll());
    }
    assert_eq!(w.remaining(), 60);
}

#[test]
fn granted_cells_count_from_the_instant_the_future_returns() {
    let (clock, w) = window(1, secs(1));
    w.check().unwrap();
    let mut late = Probe::new(w.acquire());
    assert!(!late.poll());
    clock.advance(secs(1) + ns(1));
    // Granted now (remaining serves the queue), but its task runs 0.5 s
    // later: the cell counts from then, so nothing is admitted within a
    // window of its return.
    assert_eq!(w.remaining(), 0);
    clock.advance(Duration::from_millis(500));
    assert!(late.poll());
    let returned = clock.now();
    assert_eq!(
        w.check().unwrap_err().earliest(),
        returned + secs(1) + ns(1)
    );
}

#[test]
fn dropping_a_queued_head_passes_the_head_on() {
    let (clock, w) = window(1, secs(1));
    w.check().unwrap();
    let mut first = Probe::new(w.acquire());
    let mut second = Probe::new(w.acquire());
    assert!(!first.poll());
    assert!(!second.poll());
    drop(first);
    assert_eq!(second.wakes(), 1, "the new head is told to arm its timer");
    assert!(!second.poll());
    assert_eq!(w.waiters(), 1);
    clock.advance(secs(1) + ns(1));
    assert_eq!(second.wakes(), 2);
    assert!(second.poll());
}

#[test]
fn dropping_a_queued_waiter_behind_the_head_wakes_nobody() {
    let (clock, w) = window(1, secs(1));
    w.check().unwrap();
    let mut first = Probe::new(w.acquire());
    let mut second = Probe::new(w.acquire());
    let mut third = Probe::new(w.acquire());
    for p in [&mut first, &mut second, &mut third] {
        assert!(!p.poll());
    }
    drop(second);
    assert_eq!((first.wakes(), third.wakes()), (0, 0));
    clock.advance(secs(1) + ns(1));
    assert!(first.poll());
    assert!(!third.poll());
    clock.advance(secs(1) + ns(1));
    assert!(third.poll());
}

#[test]
fn dropping_a_granted_future_before_it_returns_gives_its_cells_back() {
    let (clock, w) = window(2, secs(1));
    w.check_n(2).unwrap();
    let mut granted = Probe::new(w.acquire_many(2));
    let mut next = Probe::new(w.acquire());
    assert!(!granted.poll());
    assert!(!next.poll());
    clock.advance(secs(1) + ns(1));
    assert_eq!(w.remaining(), 0, "granted to the head, not yet returned");
    assert_eq!(granted.wakes(), 1, "by its timer only");
    assert_eq!(next.wakes(), 1, "woken as the new head");
    drop(granted);
    // Its 2 cells came back: the next waiter is granted at once (its
    // earlier wake-up is still pending, so it is not woken twice).
    assert_eq!(next.wakes(), 1);
    assert!(next.poll());
    assert_eq!(w.remaining(), 1);
}

#[test]
fn dropping_before_the_first_poll_takes_nothing() {
    let (_clock, w) = window(2, secs(1));
    drop(w.acquire_many(2));
    drop(w.run(async {}));
    assert_eq!((w.remaining(), w.waiters()), (2, 0));
}

#[test]
fn cancelling_at_every_point_loses_no_cell() {
    // Drop the k-th of 4 waiters after `polls` polls each, at every k; the
    // remaining ones must still complete, one window at a time.
    for drop_at in 0..4 {
        for before_grant in [true, false] {
            let (clock, w) = window(1, secs(1));
            w.check().unwrap();
            let mut probes: Vec<Option<Probe<_>>> =
                (0..4).map(|_| Some(Probe::new(w.acquire()))).collect();
            for p in probes.iter_mut().flatten() {
                assert!(!p.poll());
            }
            if before_grant {
                probes[drop_at] = None;
            }
            let mut done = 0;
            for _ in 0..8 {
                clock.advance(secs(1) + ns(1));
                // Serve the queue (grants the head) without polling it.
                let _ = w.remaining();
                if !before_grant && probes[drop_at].as_ref().is_some_and(|p| p.wakes() > 0) {
                    probes[drop_at] = None;
                }
                for p in probes.iter_mut().flatten() {
                    if !p.is_ready() && p.wakes() > 0 && p.poll() {
                        done += 1;
                    }
                }
            }
            assert_eq!(done, 3, "drop_at {drop_at}, before_grant {before_grant}");
            assert_eq!(w.waiters(), 0);
        }
    }
}

#[test]
fn a_pause_keeps_admissions_out_but_spends_no_cell() {
    let (clock, w) = window(1_000, secs(3600));
    w.check_n(10).unwrap();
    w.pause_for(secs(1)); // 429 with Retry-After: 1
    assert_eq!(w.paused_until(), Some(clock.now() + secs(1)));
    assert_eq!(w.check().unwrap_err().wait_time(), secs(1));
    assert_eq!(w.remaining(), 0);
    let mut queued = Probe::new(w.acquire_many(500));
    assert!(!queued.poll());
    clock.advance(secs(1));
    assert_eq!(queued.wakes(), 1);
    assert!(queued.poll());
    // 10 + 500 used: the other 490 of the hour's allowance are still there.
    assert_eq!(w.remaining(), 490);
    assert!(w.check_n(490).is_ok());
    assert_eq!(w.paused_until(), None);
}

#[test]
fn until_full_counts_the_pause_and_the_queue() {
    let (clock, w) = window(2, secs(10));
    assert_eq!(w.until_full(), Duration::ZERO);
    w.pause_for(secs(30));
    assert_eq!(w.until_full(), secs(30));
    clock.advance(secs(30));
    w.check_n(2).unwrap();
    let mut queued = Probe::new(w.acquire());
    assert!(!queued.poll());
    clock.advance(secs(5));
    // The queued waiter is counted as if admitted now: a lower bound.
    assert_eq!(w.until_full(), secs(10) + ns(1));
}

#[test]
fn a_waiter_granted_before_a_pause_starts_after_it() {
    let (clock, w) = window(1, secs(1));
    w.check().unwrap();
    let mut granted = Probe::new(w.acquire());
    assert!(!granted.poll());
    clock.advance(secs(1) + ns(1));
    assert_eq!(w.remaining(), 0, "granted, not yet returned");
    w.pause_for(secs(5)); // a 429 came back before its task ran
    assert!(
        !granted.poll(),
        "its cell stays held; it starts after the pause"
    );
    assert!(w.check().is_err());
    clock.advance(secs(5));
    assert_eq!(granted.wakes(), 2, "its head timer, then the pause's end");
    assert!(granted.poll());
    assert_eq!(
        w.check().unwrap_err().earliest(),
        clock.now() + secs(1) + ns(1)
    );
}

#[test]
fn a_shorter_pause_does_not_shorten_the_one_in_force() {
    let (clock, w) = window(3, secs(1));
    w.pause_for(secs(5));
    w.pause_for(secs(1));
    assert_eq!(w.paused_until(), Some(clock.now() + secs(5)));
    let mut head = Probe::new(w.acquire());
    assert!(!head.poll());
    clock.advance(secs(3));
    w.pause_for(secs(10)); // the head's timer still says t = 5 s
    clock.advance(secs(2));
    assert_eq!(head.wakes(), 1);
    assert!(!head.poll(), "re-armed for the longer pause");
    clock.advance(secs(8));
    assert_eq!(head.wakes(), 2);
    assert!(head.poll());
}

#[test]
fn above_the_exact_limit_buckets_are_conservative() {
    let n = SlidingWindow::<ManualClock>::EXACT_MAX + 1;
    let period = ns(SlidingWindow::<ManualClock>::BUCKETS * 1_000);
    let (clock, w) = window(n, period);
    assert_eq!(w.granularity(), ns(1_000));
    clock.advance(ns(1_500)); // in the bucket [1_000, 2_000)
    w.check_n(n).unwrap();
    // Exact would free it at 1_500 + period + 1; the bucket frees at its end.
    assert_eq!(
        w.check().unwrap_err().earliest(),
        clock.now() + ns(500) + period
    );
    assert!(format!("{w:?}").contains("log_entries: 1"));
}

#[test]
fn a_deadline_that_cannot_be_met_fails_at_once_and_takes_nothing() {
    let (clock, w) = window(2, secs(1));
    w.check().unwrap();
    let mut ok = Probe::new(w.acquire_within(Duration::ZERO));
    assert!(ok.poll());
    assert!(ok.take().is_ok());
    let mut late = Probe::new(w.acquire_within(Duration::from_millis(500)));
    assert!(late.poll());
    assert_eq!(
        late.take(),
        Err(DeadlineError::WouldExceed {
            wait: secs(1) + ns(1),
            earliest: clock.now() + secs(1) + ns(1),
        })
    );
    let mut too_many = Probe::new(w.acquire_many_within(3, secs(10)));
    assert!(too_many.poll());
    assert_eq!(
        too_many.take(),
        Err(DeadlineError::InsufficientCapacity {
            requested: 3,
            burst: 2
        })
    );
    assert_eq!(w.waiters(), 0);
}

#[test]
fn a_queued_deadline_times_out_and_gives_its_place_back() {
    let (clock, w) = window(1, secs(1));
    w.check().unwrap();
    let mut head = Probe::new(w.acquire());
    assert!(!head.poll());
    // Behind the head: it can only be admitted a window after the head.
    let mut hurried = Probe::new(w.acquire_within(secs(1) + ns(1)));
    let mut patient = Probe::new(w.acquire());
    assert!(!hurried.poll());
    assert!(!patient.poll());
    assert_eq!(w.waiters(), 3);
    clock.advance(secs(1) + ns(1));
    assert_eq!(hurried.wakes(), 1, "its deadline timer");
    assert!(hurried.poll());
    assert_eq!(hurried.take(), Err(DeadlineError::TimedOut));
    // Its poll granted the head (whose timer had fired) and left only the
    // patient one queued, told it is the new head.
    assert_eq!(w.waiters(), 1);
    assert_eq!(patient.wakes(), 1);
    assert!(head.poll());
    assert!(!patient.poll());
    clock.advance(secs(1) + ns(1));
    assert!(patient.poll());
}

#[test]
fn a_pause_past_the_deadline_times_out_the_sleeping_head() {
    let (clock, w) = window(1, secs(1));
    w.check().unwrap();
    let mut head = Probe::new(w.acquire_within(secs(2)));
    assert!(!head.poll(), "its slot at 1 s + 1 ns is in time");
    w.pause_for(secs(5));
    clock.advance(secs(1) + ns(1));
    assert_eq!(head.wakes(), 1);
    assert!(head.poll(), "re-armed past the deadline: gives up now");
    assert!(matches!(head.take(), Err(DeadlineError::TimedOut)));
    assert_eq!(w.waiters(), 0);
}

#[test]
fn run_wraps_a_call() {
    let (_clock, w) = window(1, secs(1));
    let mut call = Probe::new(w.run(async { 7 }));
    assert!(call.poll());
    assert_eq!(call.take(), 7);
    let mut second = Probe::new(w.run(async { 8 }));
    assert!(!second.poll());
    assert!(format!("{:?}", w.run(async {})).starts_with("WindowRun"));
}

#[test]
fn debug_shows_live_counts() {
    let (_clock, w) = window(5, secs(1));
    w.check_n(2).unwrap();
    assert_eq!(
        format!("{w:?}"),
        "SlidingWindow { limit: 5, period: 1s, free: 3, waiters: 0, log_entries: 1 }"
    );
    assert_eq!(format!("{:?}", w.acquire()), "WindowAcquire { .. }");
}

#[test]
fn public_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<SlidingWindow<ManualClock>>();
    send::<limiters::futures::WindowAcquire<'static, ManualClock>>();
    send::<limiters::futures::WindowAcquireMany<'static, ManualClock>>();
    send::<limiters::futures::WindowRun<'static, ManualClock, std::future::Ready<()>>>();
    send_sync::<NotUntil<limiters::ManualInstant>>();
}

#[test]
fn works_from_threads_on_the_system_clock() {
    let w = std::sync::Arc::new(SlidingWindow::new(4, Duration::from_millis(5)));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let w = w.clone();
            std::thread::spawn(move || {
                for _ in 0..3 {
                    futures_lite::future::block_on(w.acquire());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(w.waiters(), 0);
}

// --- as a stage of `Limiter` and `KeyedLimiter` ---

fn limiter(b: LimiterBuilder<ManualClock>) -> Limiter<ManualClock> {
    b.build().unwrap()
}

fn builder(clock: &ManualClock) -> LimiterBuilder<ManualClock> {
    Limiter::builder().clock(clock.clone())
}

#[test]
fn limiter_window_admits_the_whole_allowance_then_slides() {
    let clock = ManualClock::new();
    let l = limiter(builder(&clock).window(3, secs(1)));
    let mut probes: Vec<_> = (0..5).map(|_| Probe::new(l.acquire())).collect();
    let ready: Vec<bool> = probes.iter_mut().map(Probe::poll).collect();
    assert_eq!(ready, [true, true, true, false, false]);
    clock.advance(secs(1));
    assert!(
        !probes[3].poll(),
        "the window is closed: 1 s later still counts"
    );
    clock.advance(ns(1));
    assert_eq!(probes[3].wakes(), 1);
    assert!(probes[3].poll());
    assert_eq!(probes[4].wakes(), 1, "the next head of the rate queue");
    assert!(probes[4].poll());
    let admitted = probes[4].take().unwrap().admitted_at();
    assert_eq!(admitted, clock.now());
}

#[test]
fn limiter_window_and_rate_both_admit() {
    // A smooth 10/s with a burst of 10, and at most 5 in any second.
    let clock = ManualClock::new();
    let l = limiter(
        builder(&clock)
            .rate(limiters::Quota::per_second(10).allow_burst(10))
            .window(5, secs(1)),
    );
    let mut probes: Vec<_> = (0..7).map(|_| Probe::new(l.acquire())).collect();
    let ready = probes
        .iter_mut()
        .filter_map(|p| p.poll().then_some(()))
        .count();
    assert_eq!(ready, 5, "the window stops the burst at 5");
    clock.advance(secs(1) + ns(1));
    assert!(probes[5].poll());
    // The rate still has credit, the window has 4 of 5 left at this instant.
    assert!(probes[6].poll());
}

#[test]
fn limiter_slot_first_then_window() {
    let clock = ManualClock::new();
    let l = limiter(builder(&clock).concurrency(1).window(1, secs(1)));
    let mut first = Probe::new(l.run(async {}));
    assert!(first.poll());
    // The slot is free, the window is not: the second holds the slot and
    // waits for the window; the third waits for the slot.
    let mut second = Probe::new(l.acquire());
    let mut third = Probe::new(l.acquire());
    assert!(!second.poll());
    assert!(!third.poll());
    assert_eq!(l.available_slots(), Some(0));
    clock.advance(secs(1) + ns(1));
    assert!(second.poll());
    drop(second.take());
    assert!(!third.poll(), "got the slot, waits for the window");
    clock.advance(secs(1) + ns(1));
    assert!(third.poll());
}

#[test]
fn limiter_pause_spends_no_window_cell() {
    let clock = ManualClock::new();
    let l = limiter(builder(&clock).window(1_000, secs(3600)));
    for _ in 0..10 {
        assert!(Probe::new(l.acquire()).poll());
    }
    l.pause_for(secs(1)); // 429, Retry-After: 1
    let mut probes: Vec<_> = (0..990).map(|_| Probe::new(l.acquire())).collect();
    assert!(!probes[0].poll());
    clock.advance(secs(1));
    // The other 990 of the hour's 1,000 go through at once after the pause.
    let mut done = 0;
    for p in &mut probes {
        if p.poll() {
            done += 1;
        }
    }
    assert_eq!(done, 990);
    assert!(!Probe::new(l.acquire()).poll(), "and the 1,001st waits");
}

#[test]
fn keyed_limiter_windows_are_per_key_and_keys_with_history_stay() {
    let clock = ManualClock::new();
    let keyed = KeyedLimiter::new(builder(&clock).window(2, secs(1))).unwrap();
    let run = |key: &'static str| Probe::new(keyed.run(&key, async {}));
    assert!(run("a").poll());
    assert!(run("a").poll());
    assert!(run("b").poll(), "keys are independent");
    let mut third_a = run("a");
    assert!(!third_a.poll());
    drop(third_a);
    // Key "a" is idle but its window still holds 2 cells: it must not be
    // forgotten (a fresh key would admit 2 more inside the window).
    keyed.evict_idle();
    assert_eq!(keyed.len(), 2);
    assert!(!run("a").poll());
    clock.advance(secs(1) + ns(1));
    keyed.evict_idle();
    assert_eq!(keyed.len(), 0, "once the windows are empty the keys go");
    assert!(run("a").poll());
}

#[test]
fn keyed_windows_under_a_global_window() {
    // One per key per second, and two per second across all keys.
    let clock = ManualClock::new();
    let global = limiter(builder(&clock).window(2, secs(1)));
    let keyed = KeyedLimiter::new(builder(&clock).window(1, secs(1)))
        .unwrap()
        .with_global(global);
    let run = |key: &'static str| Probe::new(keyed.run(&key, async {}));
    assert!(run("a").poll());
    assert!(run("b").poll());
    let mut c = run("c");
    let mut a2 = run("a");
    assert!(!c.poll(), "the global window is full");
    assert!(!a2.poll(), "key a's window is full");
    clock.advance(secs(1) + ns(1));
    assert!(c.poll());
    assert!(a2.poll());
    // Both were admitted at 1 s + 1 ns: the global window is full again.
    assert!(!run("d").poll());
}

// --- against a plain model ---

/// Every closed window `[a, a + period]` holds at most `limit` cells.
/// `admitted` is (ns, cells) in time order (the harness appends as the
/// clock moves forward).
fn assert_window_bound(admitted: &[(u64, u32)], limit: u32, period: u64) {
    for (i, &(a, _)) in admitted.iter().enumerate() {
        let inside: u64 = admitted[i..]
            .iter()
            .take_while(|&&(b, _)| b - a <= period)
            .map(|&(_, n)| u64::from(n))
            .sum();
        assert!(
            inside <= u64::from(limit),
            "{inside} cells in [{a}, {}] ns; limit {limit}",
            a + period
        );
    }
}

/// What a plain sliding window decides for `check_n` with nobody queued:
/// admit if the cells admitted in the last `period` (closed) plus `n` fit,
/// else the first instant at which enough of them have left.
fn model_check(
    admitted: &[(u64, u32)],
    limit: u32,
    period: u64,
    now: u64,
    n: u32,
) -> Result<(), u64> {
    let live: Vec<(u64, u32)> = admitted
        .iter()
        .copied()
        .filter(|&(a, _)| u128::from(a) + u128::from(period) >= u128::from(now))
        .collect();
    let used: u64 = live.iter().map(|&(_, k)| u64::from(k)).sum();
    let mut over = (used + u64::from(n)).saturating_sub(u64::from(limit));
    if over == 0 {
        return Ok(());
    }
    for &(a, k) in &live {
        over = over.saturating_sub(u64::from(k));
        if over == 0 {
            return Err(a + period + 1);
        }
    }
    unreachable!()
}

#[derive(Clone, Debug)]
enum Op {
    Advance(u64),
    Check(u32),
    Acquire(u32),
    Poll(usize),
    Drop(usize),
    Pause(u64),
    Remaining,
}

fn op(limit: u32, period: u64) -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop_oneof![
            Just(1u64),
            Just(period),
            Just(period + 1),
            0..=period * 2,
        ]
        .prop_map(Op::Advance),
        2 => (0..=limit + 1).prop_map(Op::Check),
        3 => (0..=limit + 1).prop_map(Op::Acquire),
        3 => any::<usize>().prop_map(Op::Poll),
        1 => any::<usize>().prop_map(Op::Drop),
        1 => (0..=period).prop_map(Op::Pause),
        1 => Just(Op::Remaining),
    ]
}

fn config() -> impl Strategy<Value = (u32, u64)> {
    (1u32..=6, 1u64..=40)
}

fn scenario() -> impl Strategy<Value = ((u32, u64), Vec<Op>)> {
    config().prop_flat_map(|(limit, period)| {
        (
            Just((limit, period)),
            proptest::collection::vec(op(limit, period), 0..120),
        )
    })
}

struct Waiting<'a> {
    probe: Probe<limiters::futures::WindowAcquireMany<'a, ManualClock>>,
    n: u32,
    /// Order of the first poll that left it queued.
    joined: Option<u64>,
    /// Wake-ups seen at its last poll.
    seen: usize,
    polled: bool,
}

impl Waiting<'_> {
    /// Polls it; on completion returns whether it was admitted (`Ok`).
    fn poll(&mut self) -> Option<bool> {
        self.polled = true;
        self.seen = self.probe.wakes();
        self.probe.poll().then(|| self.probe.take().is_ok())
    }

    /// Never polled, or woken since its last poll.
    fn due(&self) -> bool {
        !self.polled || self.probe.wakes() > self.seen
    }
}

proptest! {
    // XorShift: ChaCha, the default generator, is most of the run time in
    // an unoptimised test build.
    #![proptest_config(ProptestConfig {
        cases: 2048,
        rng_algorithm: RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    })]

    /// Random arrivals, sizes, polls, drops and pauses: the cells admitted
    /// (a `check` that succeeded, an `acquire` future that returned, at the
    /// instant it returned) never exceed the limit in any closed window;
    /// with nobody queued, `check_n` decides exactly as the plain model;
    /// waiters complete in FIFO order and `check` never barges; nothing is
    /// lost: every waiter is woken until it completes, and once everyone is
    /// gone all cells come back.
    #[test]
    fn window_bound_fifo_and_no_loss(((limit, period), ops) in scenario()) {
        let (clock, w) = window(limit, ns(period));
        let mut now = 0u64;
        let mut paused_until = 0u64;
        let mut admitted: Vec<(u64, u32)> = Vec::new();
        let mut futs: Vec<Waiting<'_>> = Vec::new();
        let mut joins = 0u64;
        for op in ops {
            match op {
                Op::Advance(d) => {
                    clock.advance(ns(d));
                    now += d;
                }
                Op::Check(n) => {
                    let queued = futs.iter().any(|f| f.joined.is_some());
                    let got = w.check_n(n);
                    if n > limit {
                        let refused = matches!(got, Err(RateLimitError::InsufficientCapacity { .. }));
                        prop_assert!(refused, "check_n({}) above the limit", n);
                        continue;
                    }
                    if !queued {
                        let expected = model_check(&admitted, limit, period, now, n)
                            .map_err(|at| at.max(paused_until));
                        let expected = if now < paused_until && expected.is_ok() {
                            Err(paused_until)
                        } else {
                            expected
                        };
                        match (&got, expected) {
                            (Ok(()), Ok(())) => {}
                            (Err(RateLimitError::NotUntil(nu)), Err(at)) => {
                                prop_assert_eq!(nu.earliest().as_nanos(), at);
                            }
                            (got, expected) => prop_assert!(false, "check_n({}) at {}: {:?} vs model {:?}", n, now, got, expected),
                        }
                    }
                    if got.is_ok() {
                        admitted.push((now, n));
                        // Nobody barges: everyone queued was granted first.
                        for f in futs.iter_mut().filter(|f| f.joined.is_some()) {
                            prop_assert_eq!(f.poll(), Some(true), "check admitted past a queued waiter");
                            admitted.push((now, f.n));
                        }
                        futs.retain(|f| f.joined.is_none());
                    }
                }
                Op::Acquire(n) if futs.len() < 12 => {
                    futs.push(Waiting { probe: Probe::new(w.acquire_many(n)), n, joined: None, seen: 0, polled: false });
                }
                Op::Poll(i) if !futs.is_empty() => {
                    let i = i % futs.len();
                    match futs[i].poll() {
                        None => {
                            if futs[i].joined.is_none() {
                                futs[i].joined = Some(joins);
                                joins += 1;
                            }
                        }
                        Some(ok) => {
                            let f = futs.remove(i);
                            prop_assert_eq!(ok, f.n <= limit);
                            if ok {
                                admitted.push((now, f.n));
                            }
                            // FIFO: everyone who joined earlier was granted.
                            if let Some(joined) = f.joined {
                                for g in futs.iter_mut().filter(|g| g.joined.is_some_and(|j| j < joined)) {
                                    prop_assert_eq!(g.poll(), Some(true), "a later waiter returned first");
                                    admitted.push((now, g.n));
                                    g.joined = None;
                                    g.n = u32::MAX;
                                }
                                futs.retain(|g| g.n != u32::MAX);
                            }
                        }
                    }
                }
                Op::Drop(i) if !futs.is_empty() => {
                    let i = i % futs.len();
                    futs.remove(i);
                }
                Op::Pause(d) => {
                    w.pause_for(ns(d));
                    paused_until = paused_until.max(now + d);
                }
                Op::Remaining => {
                    prop_assert!(w.remaining() <= limit);
                }
                _ => {}
            }
        }
        assert_window_bound(&admitted, limit, period);
        // Liveness: poll only whoever is woken, advancing a window at a time.
        for _ in 0..=futs.len() + 1 {
            let d = (period + 1).max(paused_until.saturating_sub(now));
            clock.advance(ns(d));
            now += d;
            let mut progress = true;
            while progress {
                progress = false;
                let mut i = 0;
                while i < futs.len() {
                    if futs[i].due() {
                        progress = true;
                        if let Some(ok) = futs[i].poll() {
                            let f = futs.remove(i);
                            if ok {
                                admitted.push((now, f.n));
                            }
                            continue;
                        }
                    }
                    i += 1;
                }
            }
        }
        prop_assert!(futs.is_empty(), "{} waiters never woken", futs.len());
        assert_window_bound(&admitted, limit, period);
        clock.advance(ns(period + 1));
        prop_assert_eq!(w.remaining(), limit, "every cell comes back");
        prop_assert_eq!(w.waiters(), 0);
    }

    /// Under saturating demand (more one-cell waiters than the window
    /// admits, each polled as soon as it is woken), every closed window of
    /// length `period` holds exactly `limit` admissions, batch `k` is
    /// admitted at `k * (period + 1)`, and no waiter is woken more than
    /// twice (once as the new head, once by its timer or its grant).
    #[test]
    fn saturating_demand_gets_exactly_the_limit_per_window((limit, period) in config(), rounds in 2u32..5) {
        let (clock, w) = window(limit, ns(period));
        let total = (limit * rounds) as usize;
        let mut futs: Vec<Waiting<'_>> = (0..total)
            .map(|_| Waiting { probe: Probe::new(w.acquire_many(1)), n: 1, joined: None, seen: 0, polled: false })
            .collect();
        let mut done = vec![false; total];
        let mut admitted = Vec::new();
        let mut now = 0u64;
        loop {
            let mut progress = true;
            while progress {
                progress = false;
                for (f, done) in futs.iter_mut().zip(&mut done) {
                    if !*done && f.due() {
                        progress = true;
                        if f.poll().is_some() {
                            *done = true;
                            admitted.push(now);
                        }
                    }
                }
            }
            if admitted.len() == total {
                break;
            }
            clock.advance(ns(1));
            now += 1;
            prop_assert!(now <= u64::from(rounds) * (period + 1), "stalled at {} of {}", admitted.len(), total);
        }
        for f in &futs {
            prop_assert!(f.probe.wakes() <= 2);
        }
        for (k, &a) in admitted.iter().enumerate() {
            prop_assert_eq!(a, (k as u64 / u64::from(limit)) * (period + 1));
        }
        let end = *admitted.last().unwrap();
        for t in 0..=end.saturating_sub(period) {
            let inside = admitted.iter().filter(|&&a| a >= t && a <= t + period).count();
            prop_assert_eq!(inside, limit as usize, "window [{}, {}]", t, t + period);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        rng_algorithm: RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    })]

    /// The `Limiter`'s window stage, with and without a concurrency limit:
    /// permits are admitted (`admitted_at`, the instant `acquire` returns)
    /// at most `limit` cells per closed window, and every request is served
    /// once time moves on.
    #[test]
    fn limiter_window_bound_and_liveness(
        ((limit, period), ops) in scenario(),
        concurrency in proptest::option::of(1usize..4),
    ) {
        let clock = ManualClock::new();
        let mut b = builder(&clock).window(limit, ns(period));
        if let Some(c) = concurrency {
            b = b.concurrency(c.max(limit as usize));
        }
        let l = limiter(b);
        let mut now = 0u64;
        let mut admitted: Vec<(u64, u32)> = Vec::new();
        let mut futs: Vec<(Probe<_>, u32)> = Vec::new();
        let record = |admitted: &mut Vec<(u64, u32)>, p: &mut Probe<limiters::futures::LimiterAcquire<ManualClock>>, n: u32| {
            let permit = p.take().unwrap();
            admitted.push((permit.admitted_at().as_nanos(), n));
        };
        for op in ops {
            match op {
                Op::Advance(d) => {
                    clock.advance(ns(d));
                    now += d;
                }
                Op::Acquire(n) | Op::Check(n) if futs.len() < 12 && (1..=limit).contains(&n) => {
                    futs.push((Probe::new(l.acquire_many(n)), n));
                }
                Op::Poll(i) if !futs.is_empty() => {
                    let i = i % futs.len();
                    if futs[i].0.poll() {
                        let (mut p, n) = futs.remove(i);
                        record(&mut admitted, &mut p, n);
                        prop_assert_eq!(admitted.last().unwrap().0, now);
                    }
                }
                Op::Drop(i) if !futs.is_empty() => {
                    let i = i % futs.len();
                    futs.remove(i);
                }
                Op::Pause(d) => l.pause_for(ns(d)),
                _ => {}
            }
        }
        for _ in 0..=futs.len() + 1 {
            clock.advance(ns(period + 1));
            let mut i = 0;
            while i < futs.len() {
                if futs[i].0.poll() {
                    let (mut p, n) = futs.remove(i);
                    record(&mut admitted, &mut p, n);
                    i = 0;
                } else {
                    i += 1;
                }
            }
        }
        prop_assert!(futs.is_empty(), "{} requests never admitted", futs.len());
        admitted.sort_by_key(|&(a, _)| a);
        assert_window_bound(&admitted, limit, period);
    }
}

/// After any idle spell, a full `check_n(limit)` takes the whole allowance:
/// nothing is left until the window slides past it.
#[test]
fn a_full_check_n_after_idle_leaves_nothing() {
    let (clock, w) = window(5, secs(1));
    for idle in [secs(0), secs(2), secs(3_600)] {
        clock.advance(idle);
        assert_eq!(w.remaining(), 5);
        w.check_n(5).unwrap();
        assert_eq!(w.remaining(), 0);
        assert_eq!(w.check().unwrap_err().wait_time(), secs(1) + ns(1));
        clock.advance(secs(1));
        assert!(w.check().is_err(), "an admission counts at exactly 1 s");
        clock.advance(ns(1));
    }
}
