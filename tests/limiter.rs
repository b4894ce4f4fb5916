//! The composite `Limiter`, polled by hand on a `ManualClock`: order of
//! stages, cancellation at every await, panics, clones, minimum hold, pauses.
//! No sleeps and no timing: time moves only when the test advances it.

mod common;

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::task::Context;
use std::time::Duration;

use common::{DeafClock, Probe};
use limiters::{AcquireError, BuildError, Limiter, LimiterPermit, ManualClock, Quota};

type Manual = Limiter<ManualClock>;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn limiter(concurrency: Option<usize>, quotas: &[Quota], hold: Duration) -> (Manual, ManualClock) {
    let clock = ManualClock::new();
    let mut b = Limiter::builder().clock(clock.clone());
    if let Some(n) = concurrency {
        b = b.concurrency(n);
    }
    for &q in quotas {
        b = b.rate(q);
    }
    if !hold.is_zero() {
        b = b.min_hold(hold);
    }
    (b.build().unwrap(), clock)
}

fn acquire(
    l: &Manual,
) -> Probe<impl std::future::Future<Output = Result<LimiterPermit<ManualClock>, AcquireError>>> {
    Probe::new(l.acquire())
}

/// Polls every probe not yet ready; returns how many became ready.
fn newly_ready<F: std::future::Future>(probes: &mut [Probe<F>]) -> usize {
    probes
        .iter_mut()
        .filter(|p| !p.is_ready())
        .map(|p| p.poll())
        .filter(|&ready| ready)
        .count()
}

#[test]
fn slot_first_then_rate() {
    // 2 slots, 1 cell per second.
    let (l, clock) = limiter(Some(2), &[Quota::per_second(1)], Duration::ZERO);
    let mut a = acquire(&l);
    assert!(a.poll());
    let mut b = acquire(&l);
    let mut c = acquire(&l);
    assert!(!b.poll()); // has a slot, waits for the rate
    assert!(!c.poll()); // waits for a slot
    assert_eq!(l.available_slots(), Some(0));

    clock.advance(Duration::from_secs(1));
    assert_eq!(b.wakes(), 1);
    assert_eq!(c.wakes(), 0);
    assert!(b.poll());
    assert!(!c.poll());

    // C gets A's slot, then waits for its own cell: it spent none while
    // queued for the slot.
    drop(a.take().unwrap());
    assert_eq!(c.wakes(), 1);
    assert!(!c.poll());
    clock.advance(ms(999));
    assert!(!c.poll());
    clock.advance(ms(1));
    assert!(c.poll());
    assert_eq!(c.take().unwrap().admitted_at().as_nanos(), 2_000_000_000);
}

#[test]
fn every_rate_must_admit() {
    // 10 per second with bursts of 10, and 15 per minute.
    let (l, clock) = limiter(
        None,
        &[
            Quota::per_second(10).allow_burst(10),
            Quota::per_minute(15).allow_burst(12),
        ],
        Duration::ZERO,
    );
    let mut admitted = 0;
    let mut pending = Vec::new();
    for _ in 0..20 {
        let mut p = acquire(&l);
        if p.poll() {
            admitted += 1;
        } else {
            pending.push(p);
        }
    }
    assert_eq!(admitted, 10); // the per-second burst
                              // After one second the per-minute burst (12) caps it.
    clock.advance(Duration::from_secs(1));
    let now_ready = newly_ready(&mut pending);
    assert_eq!(admitted + now_ready, 12);
    // Then one every 4 s (15 per minute): the next at 4 s, not before.
    clock.advance(ms(2999));
    assert_eq!(newly_ready(&mut pending), 0);
    clock.advance(ms(1));
    assert_eq!(newly_ready(&mut pending), 1);
}

#[test]
fn fifo_across_stages() {
    let (l, clock) = limiter(Some(1), &[Quota::per_second(1)], Duration::ZERO);
    let mut probes: Vec<_> = (0..4).map(|_| acquire(&l)).collect();
    let mut order = Vec::new();
    for _ in 0..10 {
        for (i, p) in probes.iter_mut().enumerate() {
            if !order.contains(&i) && p.poll() {
                order.push(i);
                drop(p.take().unwrap());
            }
        }
        clock.advance(ms(500));
    }
    assert_eq!(order, [0, 1, 2, 3]);
}

#[test]
fn cancel_while_queued_for_a_slot() {
    let (l, _clock) = limiter(Some(1), &[], Duration::ZERO);
    let mut a = acquire(&l);
    assert!(a.poll());
    let mut b = acquire(&l);
    let mut c = acquire(&l);
    assert!(!b.poll());
    assert!(!c.poll());
    drop(b);
    drop(a.take().unwrap());
    assert_eq!(c.wakes(), 1);
    assert!(c.poll());
    drop(c);
    assert_eq!(l.available_slots(), Some(1));
}

#[test]
fn cancel_while_granted_a_slot_but_not_polled() {
    let (l, _clock) = limiter(Some(1), &[], Duration::ZERO);
    let mut a = acquire(&l);
    assert!(a.poll());
    let mut b = acquire(&l);
    assert!(!b.poll());
    drop(a.take().unwrap()); // the slot is handed to B ...
    drop(b); // ... which is dropped before it runs
    assert_eq!(l.available_slots(), Some(1));
    let mut c = acquire(&l);
    assert!(c.poll());
}

#[test]
fn cancel_at_the_head_of_the_rate_queue_spends_no_cell() {
    let (l, clock) = limiter(Some(3), &[Quota::per_second(1)], Duration::ZERO);
    let mut a = acquire(&l);
    assert!(a.poll());
    let mut b = acquire(&l);
    let mut c = acquire(&l);
    assert!(!b.poll()); // head of the rate queue, sleeping until 1 s
    assert!(!c.poll()); // behind it
    drop(b);
    // C becomes the head, and is admitted at 1 s, B's instant: nothing lost.
    assert!(!c.poll());
    let before = c.wakes();
    clock.advance(Duration::from_secs(1));
    assert_eq!(c.wakes(), before + 1);
    assert!(c.poll());
    // Both slots of A and C held; B's came back.
    assert_eq!(l.available_slots(), Some(1));
}

#[test]
fn cancel_before_first_poll_and_after_completion() {
    let (l, _clock) = limiter(Some(1), &[Quota::per_second(1)], Duration::ZERO);
    drop(l.acquire());
    drop(l.run(async {}));
    let mut a = acquire(&l);
    assert!(a.poll());
}

#[test]
fn dropping_run_mid_work_returns_the_slot() {
    let (l, _clock) = limiter(Some(1), &[], Duration::ZERO);
    let mut run = Probe::new(l.run(futures_lite::future::pending::<()>()));
    assert!(!run.poll());
    assert_eq!(l.available_slots(), Some(0));
    drop(run);
    assert_eq!(l.available_slots(), Some(1));
}

#[test]
fn run_releases_when_the_future_completes() {
    let (l, _clock) = limiter(Some(1), &[], Duration::ZERO);
    let mut first = Probe::new(l.run(async { 1 }));
    assert!(first.poll());
    // The slot is back although `first` (holding the output) still exists.
    assert_eq!(l.available_slots(), Some(1));
    assert_eq!(first.take(), Ok(1));
}

#[test]
fn panic_inside_run_returns_the_slot() {
    let (l, _clock) = limiter(Some(1), &[], ms(0));
    let result = catch_unwind(AssertUnwindSafe(|| {
        futures_lite::future::block_on(l.run(async { panic!("the handler panicked") }))
    }));
    assert!(result.is_err());
    assert_eq!(l.available_slots(), Some(1));
    assert_eq!(futures_lite::future::block_on(l.run(async { 5 })), Ok(5));
}

#[test]
fn panic_inside_run_respects_min_hold() {
    let (l, clock) = limiter(Some(1), &[], Duration::from_secs(1));
    let result = catch_unwind(AssertUnwindSafe(|| {
        futures_lite::future::block_on(l.run(async { panic!("the handler panicked") }))
    }));
    assert!(result.is_err());
    assert_eq!(l.available_slots(), Some(0)); // held until 1 s
    clock.advance(Duration::from_secs(1));
    assert_eq!(l.available_slots(), Some(1));
}

#[test]
fn clones_share_one_state() {
    let (l, _clock) = limiter(Some(2), &[], Duration::ZERO);
    let clone = l.clone();
    let mut a = acquire(&clone);
    let mut b = acquire(&l);
    assert!(a.poll() && b.poll());
    let mut c = acquire(&clone);
    assert!(!c.poll());
    clone.close();
    assert!(l.is_closed());
    assert_eq!(c.wakes(), 1);
    assert!(c.poll());
    assert_eq!(c.take().unwrap_err(), AcquireError::Closed);
}

#[test]
fn min_hold_keeps_the_slot_after_early_finish() {
    let (l, clock) = limiter(Some(1), &[], Duration::from_secs(1));
    let mut a = acquire(&l);
    assert!(a.poll());
    clock.advance(ms(100));
    drop(a.take().unwrap()); // done after 100 ms: the slot stays held
    assert_eq!(l.available_slots(), Some(0));
    let mut b = acquire(&l);
    assert!(!b.poll());
    clock.advance(ms(899));
    assert_eq!(b.wakes(), 0);
    assert!(!b.poll());
    clock.advance(ms(1));
    assert_eq!(b.wakes(), 1);
    assert!(b.poll());
    assert_eq!(b.take().unwrap().admitted_at().as_nanos(), 1_000_000_000);
}

#[test]
fn min_hold_does_not_delay_long_work_or_free_slots() {
    let (l, clock) = limiter(Some(2), &[], Duration::from_secs(1));
    let mut a = acquire(&l);
    assert!(a.poll());
    drop(a.take().unwrap()); // a ghost until 1 s
                             // The other slot is free: no waiting.
    let mut b = acquire(&l);
    assert!(b.poll());
    clock.advance(Duration::from_secs(2));
    drop(b.take().unwrap()); // held past its hold: released at once
    assert_eq!(l.available_slots(), Some(2));
}

#[test]
fn min_hold_bounds_starts_per_window() {
    // 2 slots held at least 1 s: at most 2 starts in any 1-second window.
    let (l, clock) = limiter(Some(2), &[], Duration::from_secs(1));
    let mut probes: Vec<_> = (0..6).map(|_| acquire(&l)).collect();
    let mut starts = Vec::new();
    for step in 0..40u64 {
        for (i, p) in probes.iter_mut().enumerate() {
            if !starts.iter().any(|&(_, j)| j == i) && p.poll() {
                starts.push((step * 100, i));
                drop(p.take().unwrap()); // instant work
            }
        }
        clock.advance(ms(100));
    }
    assert_eq!(starts.len(), 6);
    for w in starts.windows(3) {
        assert!(w[2].0 - w[0].0 >= 1000, "{starts:?}");
    }
}

#[test]
fn cancel_while_waiting_for_a_hold_gives_the_claim_back() {
    let (l, clock) = limiter(Some(1), &[], Duration::from_secs(1));
    let mut a = acquire(&l);
    assert!(a.poll());
    drop(a.take().unwrap());
    let mut b = acquire(&l);
    assert!(!b.poll()); // claimed the ghost, sleeping until 1 s
    drop(b);
    assert_eq!(l.available_slots(), Some(0)); // still held until 1 s
    let mut c = acquire(&l);
    assert!(!c.poll());
    clock.advance(Duration::from_secs(1));
    assert_eq!(c.wakes(), 1);
    assert!(c.poll());
}

#[test]
fn pause_delays_queued_and_new_requests() {
    let (l, clock) = limiter(
        Some(4),
        &[Quota::per_second(10).allow_burst(10)],
        Duration::ZERO,
    );
    let mut a = acquire(&l);
    assert!(a.poll());
    l.pause_for(Duration::from_secs(30));
    let mut b = acquire(&l);
    let mut c = acquire(&l);
    assert!(!b.poll());
    assert!(!c.poll());
    clock.advance(Duration::from_secs(29));
    assert!(!b.poll());
    clock.advance(Duration::from_secs(1));
    assert!(b.poll());
    // The pause spent no credit: the burst is there when it ends.
    assert!(c.poll());
    let mut rest: Vec<_> = (0..9).map(|_| acquire(&l)).collect();
    assert_eq!(newly_ready(&mut rest), 1); // 4 slots: a, b, c and one more
    drop(rest);
}

/// The scenario: a client limited to 50 per second and 1,000 per
/// hour (burst 1,000) gets one `429 Retry-After: 1`. Before the fix the
/// pause spent the hourly credit, leaving one call per 3.6 s: 67 of 300
/// calls done after 60 s. Now the 300 calls start at the 50/s pace from the
/// end of the pause: the last at 1 s + 299 * 20 ms = 6.98 s.
#[test]
fn a_pause_spends_no_rate_credit() {
    let (l, clock) = limiter(
        None,
        &[
            Quota::per_second(50),
            Quota::per_hour(1_000).allow_burst(1_000),
        ],
        Duration::ZERO,
    );
    assert!(acquire(&l).poll());
    l.pause_for(Duration::from_secs(1));
    let mut calls: Vec<_> = (0..300).map(|_| acquire(&l)).collect();
    let mut started = Vec::new();
    for step in 0..3_000u64 {
        let now = ms(20) * step as u32;
        started.extend(std::iter::repeat_n(now, newly_ready(&mut calls)));
        clock.advance(ms(20));
    }
    assert_eq!(started.len(), 300);
    assert_eq!(started[0], Duration::from_secs(1));
    assert_eq!(started[299], Duration::from_secs(1) + ms(20) * 299);
    assert!(started.windows(2).all(|w| w[1] - w[0] == ms(20)));
}

#[test]
fn pause_applies_without_rates() {
    let (l, clock) = limiter(Some(2), &[], Duration::ZERO);
    l.pause_for(Duration::from_secs(5));
    let mut a = acquire(&l);
    assert!(!a.poll());
    clock.advance(Duration::from_secs(5));
    assert!(a.poll());
    assert_eq!(l.paused_until(), None);
}

#[test]
fn pause_while_the_head_sleeps_re_times_it() {
    let (l, clock) = limiter(None, &[Quota::per_second(1)], Duration::ZERO);
    let mut a = acquire(&l);
    assert!(a.poll());
    let mut b = acquire(&l);
    assert!(!b.poll()); // due at 1 s
    l.pause_for(Duration::from_secs(10));
    clock.advance(Duration::from_secs(1));
    assert!(!b.poll()); // woke, re-timed to 10 s
    clock.advance(Duration::from_secs(9));
    assert!(b.poll());
}

#[test]
fn close_wakes_the_sleeping_head() {
    let (l, _clock) = limiter(None, &[Quota::per_hour(1)], Duration::ZERO);
    let mut a = acquire(&l);
    assert!(a.poll());
    let mut b = acquire(&l);
    let mut c = acquire(&l);
    assert!(!b.poll());
    assert!(!c.poll());
    l.close();
    assert_eq!(b.wakes(), 1);
    assert_eq!(c.wakes(), 1);
    assert!(b.poll() && c.poll());
    assert_eq!(b.take().unwrap_err(), AcquireError::Closed);
    assert_eq!(c.take().unwrap_err(), AcquireError::Closed);
    drop(a.take().unwrap()); // a permit stays valid after close
}

#[test]
fn weights_beyond_any_limit_fail_at_once() {
    let (l, _clock) = limiter(
        Some(4),
        &[Quota::per_second(10).allow_burst(3)],
        Duration::ZERO,
    );
    let mut too_many_slots = Probe::new(l.acquire_many(5));
    assert!(too_many_slots.poll());
    assert_eq!(
        too_many_slots.take().unwrap_err(),
        AcquireError::ExceedsCapacity {
            requested: 5,
            capacity: 4
        }
    );
    let mut too_many_cells = Probe::new(l.acquire_many(4));
    assert!(too_many_cells.poll());
    let err = too_many_cells.take().unwrap_err();
    assert_eq!(
        err,
        AcquireError::InsufficientCapacity {
            requested: 4,
            burst: 3
        }
    );
    // The message names the burst and how to raise it, as RateLimiter's.
    assert_eq!(
        err.to_string(),
        "requested 4 cells but the burst is 3: ask for at most 3 or raise the burst \
         (Quota::allow_burst, the token bucket's max or the window's n)"
    );
    let mut fits = Probe::new(l.acquire_many(3));
    assert!(fits.poll());
    assert_eq!(fits.take().unwrap().weight(), 3);
}

#[test]
fn build_errors_name_the_problem() {
    let b = || Limiter::builder().clock(ManualClock::new());
    assert_eq!(b().build().unwrap_err(), BuildError::NoLimits);
    assert_eq!(
        b().concurrency(0).build().unwrap_err(),
        BuildError::ZeroConcurrency
    );
    assert_eq!(
        b().rate(Quota::per_second(1))
            .min_hold(ms(5))
            .build()
            .unwrap_err(),
        BuildError::MinHoldWithoutConcurrency
    );
    assert_eq!(
        b().concurrency(2).weight(3).build().unwrap_err(),
        BuildError::WeightExceedsConcurrency {
            weight: 3,
            concurrency: 2
        }
    );
    assert_eq!(
        b().rate(Quota::per_second(9).allow_burst(4))
            .weight(5)
            .build()
            .unwrap_err(),
        BuildError::WeightExceedsBurst {
            weight: 5,
            burst: 4
        }
    );
    assert_eq!(
        b().concurrency(1).weight(0).build().unwrap_err(),
        BuildError::ZeroWeight
    );
    let msg = BuildError::WeightExceedsBurst {
        weight: 5,
        burst: 4,
    }
    .to_string();
    assert!(
        msg.starts_with("weight 5 exceeds a rate's burst of 4"),
        "{msg}"
    );
    assert!(!msg.ends_with('.'));
}

#[test]
fn exact_wake_ups_on_release() {
    let (l, _clock) = limiter(Some(2), &[], Duration::ZERO);
    let mut held: Vec<_> = (0..2).map(|_| acquire(&l)).collect();
    for h in &mut held {
        assert!(h.poll());
    }
    let mut waiting: Vec<_> = (0..5).map(|_| acquire(&l)).collect();
    for w in &mut waiting {
        assert!(!w.poll());
    }
    drop(held.pop().unwrap().take());
    let woken: Vec<usize> = waiting.iter().map(Probe::wakes).collect();
    assert_eq!(woken, [1, 0, 0, 0, 0]);
}

/// The head of the rate queue keeps its waker for `close`: a replaced one,
/// and the one cleared at admission, are dropped after the lock (they may be
/// the last handle to a task whose futures use the limiter).
#[test]
fn the_rate_stage_drops_wakers_outside_its_lock() {
    common::no_deadlock(|| {
        let clock = DeafClock::default();
        let l = Limiter::builder()
            .rate(Quota::per_second(1))
            .clock(clock.clone())
            .build()
            .unwrap();
        drop(common::poll_once(&mut Box::pin(l.acquire())));
        let mut fut = Box::pin(l.acquire());
        for _ in 0..2 {
            let reenter = l.clone();
            let waker = common::waker_dropping(move || reenter.pause_for(Duration::ZERO));
            assert!(fut
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending());
        }
        clock.0.advance(ms(1000));
        assert!(common::poll_once(&mut fut).is_ready());
    });
}

/// The same for the head of the hold queue (minimum hold).
#[test]
fn the_hold_stage_drops_wakers_outside_its_lock() {
    common::no_deadlock(|| {
        let clock = DeafClock::default();
        let l = Limiter::builder()
            .concurrency(1)
            .min_hold(ms(1000))
            .clock(clock.clone())
            .build()
            .unwrap();
        drop(common::poll_once(&mut Box::pin(l.acquire())));
        let mut fut = Box::pin(l.acquire());
        for _ in 0..2 {
            let reenter = l.clone();
            let waker = common::waker_dropping(move || {
                let _ = reenter.available_slots();
            });
            assert!(fut
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending());
        }
        clock.0.advance(ms(1000));
        assert!(common::poll_once(&mut fut).is_ready());
    });
}

#[test]
fn public_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Limiter>();
    send_sync::<Limiter<ManualClock>>();
    send_sync::<LimiterPermit>();
    send_sync::<limiters::LimiterBuilder>();
    send_sync::<BuildError>();
    send::<limiters::futures::LimiterAcquire<ManualClock>>();
    send::<limiters::futures::LimiterRun<ManualClock, std::future::Ready<()>>>();
    send_sync::<limiters::futures::LimiterTryRun<ManualClock, std::future::Ready<()>>>();
    send_sync::<limiters::LimiterTryError>();
    send_sync::<limiters::KeyedTryError>();
    send_sync::<limiters::KeyedPermit>();
    send::<limiters::futures::KeyedAcquire<ManualClock>>();
    fn unpin<T: Unpin>() {}
    unpin::<Limiter>();
    unpin::<LimiterPermit>();
}

#[test]
fn a_release_lets_the_hold_queue_head_start_before_a_ghost_expires() {
    // Found by the proptest. 2 slots, hold 10 ms: A runs from 0 ms; B runs
    // from 10 ms and ends at once (a ghost until 20 ms); C waits. When A ends
    // at 15 ms (past its own hold), C must start then, not at 20 ms.
    let (l, clock) = limiter(Some(2), &[], ms(10));
    let mut a = acquire(&l);
    assert!(a.poll());
    clock.advance(ms(10));
    let mut b = acquire(&l);
    assert!(b.poll());
    drop(b.take().unwrap()); // ghost until 20 ms
    let mut c = acquire(&l);
    assert!(!c.poll());
    clock.advance(ms(5)); // 15 ms: A (admitted at 0) is past its hold
    drop(a.take().unwrap());
    assert_eq!(c.wakes(), 1);
    assert!(c.poll());
    assert_eq!(c.take().unwrap().admitted_at().as_nanos(), 15_000_000);
}

// --- rate sources: rates the limiter asks instead of keeping ---

mod rate_source {
    use super::*;
    use limiters::{
        LimiterBuilder, ManualInstant, RateAdmit, RateDecision, RateLimiter, RateSource,
        RateSourceError,
    };
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};

    /// A source that plays back scripted decisions (as a server would
    /// answer, through a boxed future) and counts the questions.
    struct Scripted {
        answers: Mutex<Vec<RateDecision<ManualInstant>>>,
        asked: AtomicU32,
        burst: u32,
    }

    impl Scripted {
        fn new(burst: u32, mut answers: Vec<RateDecision<ManualInstant>>) -> Arc<Self> {
            answers.reverse();
            Arc::new(Self {
                answers: Mutex::new(answers),
                asked: AtomicU32::new(0),
                burst,
            })
        }
    }

    impl RateSource<ManualInstant> for Scripted {
        fn burst(&self) -> u32 {
            self.burst
        }

        fn admit(&self, _n: u32) -> RateAdmit<ManualInstant> {
            self.asked.fetch_add(1, Ordering::Relaxed);
            let answer = self.answers.lock().unwrap().pop().expect("asked too often");
            RateAdmit::pending(async move { answer })
        }
    }

    #[test]
    fn a_shared_rate_limiter_paces_the_limiter_and_its_other_users() {
        let clock = ManualClock::new();
        let shared = Arc::new(RateLimiter::with_clock(Quota::per_second(1), clock.clone()));
        let limiter = LimiterBuilder::with_clock(clock.clone())
            .concurrency(5)
            .rate_source(Arc::clone(&shared))
            .build()
            .unwrap();
        let mut first = Probe::new(limiter.acquire());
        assert!(first.poll());
        // The cell went to the limiter: other users of the source see it.
        assert!(shared.check().is_err());
        let mut second = Probe::new(limiter.acquire());
        assert!(!second.poll());
        clock.advance(Duration::from_millis(999));
        assert!(!second.poll());
        clock.advance(Duration::from_millis(1));
        assert_eq!(second.wakes(), 1);
        assert!(second.poll());
        assert_eq!(limiter.available_slots(), Some(3));
    }

    #[test]
    fn more_sources_than_the_maximum_is_a_build_error() {
        let max = LimiterBuilder::<ManualClock>::MAX_RATE_SOURCES;
        let source = Scripted::new(10, Vec::new());
        let mut builder = LimiterBuilder::with_clock(ManualClock::new());
        for _ in 0..max {
            builder = builder.rate_source(Arc::clone(&source));
        }
        let at_max = builder.clone().build();
        assert!(at_max.is_ok());
        let err = builder.rate_source(source).build().unwrap_err();
        assert_eq!(
            err,
            BuildError::TooManyRateSources {
                count: max + 1,
                max
            }
        );
    }

    #[test]
    fn the_head_sleeps_until_the_instant_a_source_names_then_asks_again() {
        let clock = ManualClock::new();
        let retry_at = clock.now() + Duration::from_millis(40);
        let source = Scripted::new(
            10,
            vec![RateDecision::RetryAt(retry_at), RateDecision::Admitted],
        );
        let limiter = LimiterBuilder::with_clock(clock.clone())
            .rate_source(Arc::clone(&source))
            .build()
            .unwrap();
        let mut acquire = Probe::new(limiter.acquire());
        assert!(!acquire.poll());
        assert_eq!(source.asked.load(Ordering::Relaxed), 1);
        clock.advance(Duration::from_millis(39));
        assert!(!acquire.poll());
        assert_eq!(source.asked.load(Ordering::Relaxed), 1, "no spinning");
        clock.advance(Duration::from_millis(1));
        assert!(acquire.poll());
        assert_eq!(source.asked.load(Ordering::Relaxed), 2);
        assert!(acquire.take().is_ok());
    }

    #[test]
    fn the_local_quotas_admit_before_a_source_is_asked() {
        let clock = ManualClock::new();
        let source = Scripted::new(10, vec![RateDecision::Admitted, RateDecision::Admitted]);
        let limiter = LimiterBuilder::with_clock(clock.clone())
            .rate(Quota::per_second(1))
            .rate_source(Arc::clone(&source))
            .build()
            .unwrap();
        let mut first = Probe::new(limiter.acquire());
        assert!(first.poll());
        let mut second = Probe::new(limiter.acquire());
        assert!(!second.poll());
        // The local rate makes it wait: the shared cell is not spent yet.
        assert_eq!(source.asked.load(Ordering::Relaxed), 1);
        clock.advance(Duration::from_secs(1));
        assert!(second.poll());
        assert_eq!(source.asked.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_failed_source_fails_the_request_and_gives_the_slot_back() {
        let clock = ManualClock::new();
        let failure = AcquireError::RateSource(RateSourceError::TimedOut);
        let source = Scripted::new(
            10,
            vec![RateDecision::Failed(failure), RateDecision::Admitted],
        );
        let limiter = LimiterBuilder::with_clock(clock.clone())
            .concurrency(1)
            .rate_source(Arc::clone(&source))
            .build()
            .unwrap();
        let mut failed = Probe::new(limiter.run(async { 1 }));
        assert!(failed.poll());
        assert_eq!(failed.take(), Err(failure));
        assert_eq!(limiter.available_slots(), Some(1));
        // The next request is the head and is asked for afresh.
        let mut next = Probe::new(limiter.run(async { 2 }));
        assert!(next.poll());
        assert_eq!(next.take(), Ok(2));
        assert_eq!(
            failure.to_string(),
            "the shared rate source did not answer in time: not admitted; check the source or \
             raise its timeout"
        );
    }

    #[test]
    fn a_weight_above_a_source_burst_is_refused() {
        let clock = ManualClock::new();
        let shared = Arc::new(RateLimiter::with_clock(
            Quota::per_second(5).allow_burst(2),
            clock.clone(),
        ));
        let err = LimiterBuilder::with_clock(clock.clone())
            .rate_source(Arc::clone(&shared))
            .weight(3)
            .build()
            .unwrap_err();
        assert_eq!(
            err,
            BuildError::WeightExceedsBurst {
                weight: 3,
                burst: 2
            }
        );
        let limiter = LimiterBuilder::with_clock(clock.clone())
            .rate_source(Arc::clone(&shared))
            .build()
            .unwrap();
        let mut big = Probe::new(limiter.acquire_many(3));
        assert!(big.poll());
        assert!(matches!(
            big.take(),
            Err(AcquireError::ExceedsCapacity {
                requested: 3,
                capacity: 2
            })
        ));
        assert_eq!(shared.remaining(), 2, "nothing taken");
    }

    #[test]
    #[should_panic(expected = "set the clock before rate_source()")]
    fn the_clock_is_set_before_the_sources() {
        let shared = Arc::new(RateLimiter::with_clock(
            Quota::per_second(5),
            ManualClock::new(),
        ));
        let _ = LimiterBuilder::with_clock(ManualClock::new())
            .rate_source(shared)
            .clock(ManualClock::new());
    }
}

// --- load shedding: try_acquire / try_run ---

use std::sync::Arc;

use limiters::{LimiterTryError, RateLimiter};

fn acquire_many(
    l: &Manual,
    weight: u32,
) -> Probe<impl std::future::Future<Output = Result<LimiterPermit<ManualClock>, AcquireError>>> {
    Probe::new(l.acquire_many(weight))
}

/// Slots free, requests waiting, totals admitted and denied: what a refusal
/// must leave as it found it (but `denied`).
fn observed(l: &Manual) -> (Option<usize>, usize, u64) {
    let s = l.stats();
    (s.available, s.waiters, s.totals.admitted)
}

#[test]
fn try_acquire_admits_when_free_and_refuses_a_full_slot_taking_nothing() {
    let (l, _clock) = limiter(Some(2), &[], Duration::ZERO);
    let a = l.try_acquire().unwrap();
    let b = l.try_acquire().unwrap();
    assert_eq!(l.available_slots(), Some(0));
    let before = observed(&l);
    assert_eq!(l.try_acquire().unwrap_err(), LimiterTryError::NoSlot);
    assert_eq!(l.try_acquire_many(2).unwrap_err(), LimiterTryError::NoSlot);
    assert_eq!(observed(&l), before);
    assert_eq!(l.stats().totals.denied, 2);
    assert_eq!(
        LimiterTryError::<limiters::ManualInstant>::NoSlot.retry_after(),
        None
    );
    drop(a);
    assert_eq!(l.try_acquire().unwrap().weight(), 1);
    drop(b);
    assert_eq!(l.available_slots(), Some(2));
}

/// Refused while the rate admits only later, the cells stay unspent: the
/// request is admitted exactly at the instant the refusal named, not one
/// emission interval later.
#[test]
fn try_acquire_refused_by_a_rate_names_the_instant_and_spends_no_cell() {
    let (l, clock) = limiter(Some(4), &[Quota::per_second(10)], Duration::ZERO);
    let first = l.try_acquire().unwrap();
    drop(first);
    let refused = l.try_acquire().unwrap_err();
    let LimiterTryError::Rate(not_until) = refused else {
        panic!("refused by the rate: {refused:?}");
    };
    assert_eq!(not_until.earliest(), clock.now() + ms(100));
    assert_eq!(refused.retry_after(), Some(ms(100)));
    assert_eq!(refused.to_string(), "rate limited: try again in 100ms");
    assert_eq!(l.available_slots(), Some(4), "the slot went back");
    clock.advance(ms(50));
    assert_eq!(l.try_acquire().unwrap_err().retry_after(), Some(ms(50)));
    clock.advance(ms(50) - Duration::from_nanos(1));
    assert!(l.try_acquire().is_err());
    clock.advance(Duration::from_nanos(1));
    assert!(l.try_acquire().is_ok(), "no refusal spent a cell");
    assert_eq!((l.stats().totals.admitted, l.stats().totals.denied), (2, 3));
}

#[test]
fn try_acquire_refused_by_a_full_window_or_a_pause_names_the_stage() {
    let clock = ManualClock::new();
    let l = Limiter::builder()
        .window(2, Duration::from_secs(1))
        .rate(Quota::per_second(100).allow_burst(100))
        .clock(clock.clone())
        .build()
        .unwrap();
    let _two = l.try_acquire_many(2).unwrap();
    let refused = l.try_acquire().unwrap_err();
    assert!(matches!(refused, LimiterTryError::Window(_)), "{refused:?}");
    // At most 2 in any closed window of 1 s: the next fits 1 s + 1 ns on.
    let next = Duration::from_secs(1) + Duration::from_nanos(1);
    assert_eq!(refused.retry_after(), Some(next));
    assert_eq!(
        refused.to_string(),
        "window full: try again in 1.000000001s"
    );

    clock.advance(next);
    l.pause_for(Duration::from_secs(30));
    let refused = l.try_acquire().unwrap_err();
    assert!(matches!(refused, LimiterTryError::Paused(_)), "{refused:?}");
    assert_eq!(
        refused.not_until().unwrap().earliest(),
        clock.now() + Duration::from_secs(30)
    );
    assert_eq!(refused.to_string(), "paused: try again in 30s");
    clock.advance(Duration::from_secs(30));
    // The pause spent no credit, nor did the refusals: the whole window.
    assert_eq!(l.try_acquire_many(2).unwrap().weight(), 2);
}

#[test]
fn try_acquire_refused_by_the_minimum_hold_names_its_end() {
    let (l, clock) = limiter(Some(1), &[], Duration::from_secs(1));
    drop(l.try_acquire().unwrap());
    assert_eq!(l.available_slots(), Some(0), "held by the minimum hold");
    let refused = l.try_acquire().unwrap_err();
    assert!(matches!(refused, LimiterTryError::Held(_)), "{refused:?}");
    assert_eq!(refused.retry_after(), Some(Duration::from_secs(1)));
    clock.advance(Duration::from_secs(1));
    let permit = l.try_acquire().unwrap();
    assert_eq!(permit.admitted_at(), clock.now());
}

#[test]
fn try_acquire_on_a_closed_limiter_or_above_a_limit_fails_and_takes_nothing() {
    let (l, _clock) = limiter(
        Some(4),
        &[Quota::per_second(10).allow_burst(3)],
        Duration::ZERO,
    );
    assert_eq!(
        l.try_acquire_many(5).unwrap_err(),
        LimiterTryError::ExceedsCapacity {
            requested: 5,
            capacity: 4
        }
    );
    assert_eq!(
        l.try_acquire_many(4).unwrap_err(),
        LimiterTryError::InsufficientCapacity {
            requested: 4,
            burst: 3
        }
    );
    assert_eq!(l.available_slots(), Some(4));
    assert_eq!(
        l.try_acquire_many(3).unwrap().weight(),
        3,
        "the burst is whole"
    );
    l.close();
    assert_eq!(l.try_acquire().unwrap_err(), LimiterTryError::Closed);
}

/// No barging: a free slot with a request queued for it, or a free cell
/// with a head about to take it, is not for a try.
#[test]
fn try_acquire_never_overtakes_a_queued_request() {
    let (l, _clock) = limiter(Some(2), &[], Duration::ZERO);
    let held = l.try_acquire().unwrap();
    // Queued for 2 slots while 1 is free (it collects that one).
    let mut big = acquire_many(&l, 2);
    assert!(!big.poll());
    assert_eq!(l.try_acquire().unwrap_err(), LimiterTryError::NoSlot);
    drop(held);
    assert!(big.poll(), "the queued request got both slots");

    // A request waiting for the minimum hold of earlier work to end: the
    // slot the semaphore still has is not for a newcomer, though the
    // newcomer alone would fit.
    let (l, clock) = limiter(Some(3), &[], Duration::from_secs(1));
    drop(l.try_acquire_many(2).unwrap()); // busy until 1 s
    let mut waiting = acquire_many(&l, 2);
    assert!(!waiting.poll(), "waits for the hold to end");
    assert_eq!(l.try_acquire().unwrap_err(), LimiterTryError::NoSlot);
    clock.advance(Duration::from_secs(1));
    assert!(waiting.poll());

    // The head of the rate queue sleeps until 1 s; at 1 s, woken but not
    // yet polled, its cell is not for a newcomer.
    let (l, clock) = limiter(Some(4), &[Quota::per_second(1)], Duration::ZERO);
    let first = l.try_acquire().unwrap();
    let mut head = acquire(&l);
    assert!(!head.poll());
    clock.advance(Duration::from_secs(1));
    assert_eq!(head.wakes(), 1);
    assert_eq!(l.try_acquire().unwrap_err(), LimiterTryError::Queued);
    assert!(head.poll(), "the head takes its cell");
    assert!(head.take().is_ok());
    drop(first);
    assert_eq!(l.available_slots(), Some(4));
}

#[test]
fn try_run_decides_at_once_and_never_polls_a_refused_future() {
    let (l, _clock) = limiter(Some(1), &[], Duration::ZERO);
    let work = l.try_run(async { 7 }).unwrap();
    assert_eq!(l.available_slots(), Some(0), "admitted by try_run itself");
    let polled = std::cell::Cell::new(false);
    let refused = l.try_run(async { polled.set(true) });
    assert_eq!(refused.unwrap_err(), LimiterTryError::NoSlot);
    let mut work = Probe::new(work);
    assert!(work.poll());
    assert_eq!(work.take(), 7);
    assert_eq!(l.available_slots(), Some(1), "given back on completion");
    assert!(!polled.get());
    // Dropped unpolled: the slot comes back too.
    drop(l.try_run(async {}).unwrap());
    assert_eq!(l.available_slots(), Some(1));
}

#[test]
fn try_acquire_asks_a_rate_source_only_when_the_quotas_admit() {
    let clock = ManualClock::new();
    let shared = Arc::new(RateLimiter::with_clock(
        Quota::per_second(10).allow_burst(2),
        clock.clone(),
    ));
    let l = Limiter::builder()
        .clock(clock.clone())
        .rate(Quota::per_second(1))
        .rate_source(Arc::clone(&shared))
        .build()
        .unwrap();
    let _first = l.try_acquire().unwrap();
    assert_eq!(shared.remaining(), 1);
    // The local rate refuses: the shared quota is not touched.
    assert!(matches!(l.try_acquire(), Err(LimiterTryError::Rate(_))));
    assert_eq!(shared.remaining(), 1);
    // The source refuses: its instant is the retry.
    clock.advance(Duration::from_secs(1));
    shared.check_n(2).unwrap();
    let refused = l.try_acquire().unwrap_err();
    assert!(matches!(refused, LimiterTryError::Rate(_)), "{refused:?}");
    assert_eq!(refused.retry_after(), Some(ms(100)));

    // A source that can only answer by waiting is not asked.
    let remote = Limiter::builder()
        .clock(clock.clone())
        .rate_source(Remote)
        .build()
        .unwrap();
    assert_eq!(
        remote.try_acquire().unwrap_err(),
        LimiterTryError::SourcePending
    );
}

/// A source whose every answer is a future (as a server's).
struct Remote;

impl limiters::RateSource<limiters::ManualInstant> for Remote {
    fn burst(&self) -> u32 {
        1
    }

    fn admit(&self, _n: u32) -> limiters::RateAdmit<limiters::ManualInstant> {
        limiters::RateAdmit::pending(async { unreachable!("never asked by a try") })
    }
}

#[test]
fn try_acquire_reports_to_stats() {
    let (l, _clock) = limiter(Some(1), &[], Duration::ZERO);
    let held = l.try_acquire().unwrap();
    let _ = l.try_acquire();
    let stats = l.stats();
    assert_eq!((stats.in_use, stats.waiters), (Some(1), 0));
    assert_eq!((stats.totals.admitted, stats.totals.denied), (1, 1));
    drop(held);
}

/// One large release (a permit of weight 40 dropped) with 40 requests
/// queued for a slot, more than a wake batch (16): every one is woken once
/// and starts.
#[test]
fn one_large_release_starts_more_waiters_than_a_wake_batch() {
    let (l, _clock) = limiter(Some(40), &[], Duration::ZERO);
    let mut big = Probe::new(l.acquire_many(40));
    assert!(big.poll());
    let held = big.take().unwrap();
    let mut waiters: Vec<_> = (0..40).map(|_| acquire(&l)).collect();
    assert_eq!(newly_ready(&mut waiters), 0);
    drop(held);
    assert_eq!(common::wakes(&waiters), vec![1; 40]);
    assert_eq!(newly_ready(&mut waiters), 40);
    assert_eq!(l.available_slots(), Some(0));
}

/// `close` with more requests queued than a wake batch: every one is woken
/// once and fails; held permits stay valid.
#[test]
fn close_fails_more_waiters_than_a_wake_batch() {
    let (l, _clock) = limiter(Some(1), &[], Duration::ZERO);
    let mut first = acquire(&l);
    assert!(first.poll());
    let mut waiters: Vec<_> = (0..40).map(|_| acquire(&l)).collect();
    assert_eq!(newly_ready(&mut waiters), 0);
    l.close();
    assert_eq!(common::wakes(&waiters), vec![1; 40]);
    common::assert_all_closed(&mut waiters);
    drop(first.take().unwrap());
    assert_eq!(l.available_slots(), Some(1));
}

/// A pause with more requests waiting at the rate gate than a wake batch:
/// every one is re-timed, none starts before the pause ends, and they then
/// start one interval apart (the pause spent no credit).
#[test]
fn pause_re_times_more_waiters_than_one_wake_batch() {
    let (l, clock) = limiter(None, &[Quota::per_second(10)], Duration::ZERO);
    let mut first = acquire(&l);
    assert!(first.poll());
    let mut waiters: Vec<_> = (0..40).map(|_| acquire(&l)).collect();
    assert_eq!(newly_ready(&mut waiters), 0);
    clock.advance(ms(50));
    l.pause_for(Duration::from_secs(10));
    let mut started = Vec::new();
    for step in 0..2_000u32 {
        let now = ms(10) * step;
        started.extend(std::iter::repeat_n(now, newly_ready(&mut waiters)));
        clock.advance(ms(10));
    }
    let expected: Vec<Duration> = (0..40)
        .map(|k| Duration::from_secs(10) + ms(100) * k)
        .collect();
    assert_eq!(started, expected);
}

#[test]
fn acquire_future_fits_two_cache_lines() {
    // One wait at a time (a queue node, a sleep or a source's decision),
    // not one optional future per stage: 128 bytes on the default clock.
    use limiters::futures::{LimiterAcquire, LimiterRun};
    use std::mem::size_of;
    assert!(size_of::<LimiterAcquire<limiters::SystemClock>>() <= 128);
    assert!(size_of::<LimiterAcquire<ManualClock>>() <= 128);
    // `run` shares the limiter's handle with its stages.
    assert!(size_of::<LimiterRun<limiters::SystemClock, std::future::Ready<()>>>() <= 160);
}
