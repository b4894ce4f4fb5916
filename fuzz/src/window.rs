//! `SlidingWindow` on a `ManualClock` against a plain admission-log model.
//!
//! The bytes decode into a window (`n` and `period`, valid or not, with
//! extreme values: 1 ns, 2^64 - 1 ns, `n` above the exact limit so the log
//! is bucketed) and a sequence of clock advances, `check` / `check_n`,
//! `acquire_many` futures (plain or with a deadline) polled by hand with
//! counting wakers and dropped at any point, `pause_for`, `remaining` and
//! `until_full`. Checked after every step:
//!
//! * `try_with_clock` fails exactly on the invalid settings;
//! * the window bound: the cells admitted (a `check_n` that succeeded, a
//!   future that returned, at the instant it returned) in any closed window
//!   of length `period` never exceed `n`;
//! * with nobody queued or granted, `check_n` decides exactly as the model
//!   (a list of admission instants, each freed `granularity + period` after
//!   the start of its bucket; 1 ns buckets when exact): admitted,
//!   `NotUntil` with the exact instant, or `InsufficientCapacity` above
//!   `n`; `remaining` and `until_full` equal the model's;
//! * nothing is admitted during a pause;
//! * FIFO: when a future returns, every future queued before it returns at
//!   its next poll; a `check` that succeeds found nobody queued;
//! * wake-ups: a future is polled only when it was woken (or never polled),
//!   and at the end, advancing the clock one window at a time and polling
//!   only woken futures, every queued future completes (no lost wake-up),
//!   and every cell comes back.

use crate::wake_counter::WakeCounter;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use limiters::futures::{WindowAcquireMany, WindowAcquireWithin};
use limiters::{DeadlineError, ManualClock, QuotaError, RateLimitError, SlidingWindow};

/// Live futures are capped so long inputs keep cycling.
const MAX_LIVE: usize = 24;
/// The clock never goes past this (saturation is the unit tests' job).
const HORIZON: u64 = u64::MAX / 4;

fn limit(u: &mut Unstructured<'_>) -> arbitrary::Result<u32> {
    Ok(match u8::arbitrary(u)? % 10 {
        0 => 0,
        1 => 1,
        2 => 2,
        3 => 3,
        4 => SlidingWindow::<ManualClock>::EXACT_MAX,
        5 => SlidingWindow::<ManualClock>::EXACT_MAX + 1,
        6 => u32::MAX,
        _ => u32::from(u8::arbitrary(u)? % 16),
    })
}

fn period(u: &mut Unstructured<'_>) -> arbitrary::Result<Duration> {
    Ok(match u8::arbitrary(u)? % 10 {
        0 => Duration::ZERO,
        1 => Duration::from_nanos(1),
        2 => Duration::from_nanos(7),
        3 => Duration::from_nanos(4096 * 3 + 1),
        4 => Duration::from_secs(1),
        5 => Duration::from_nanos(u64::MAX),
        6 => Duration::MAX,
        _ => Duration::from_nanos(u64::from(u16::arbitrary(u)?)),
    })
}

fn count(u: &mut Unstructured<'_>, limit: u32) -> arbitrary::Result<u32> {
    Ok(match u8::arbitrary(u)? % 8 {
        0 => 0,
        1..=3 => 1,
        4 => limit,
        5 => limit.saturating_add(1),
        6 => limit / 2,
        _ => u32::from(u8::arbitrary(u)? % 8),
    })
}

fn duration_ns(u: &mut Unstructured<'_>, period: u64) -> arbitrary::Result<u64> {
    Ok(match u8::arbitrary(u)? % 8 {
        0 => 0,
        1 => 1,
        2 => period,
        3 => period.saturating_add(1),
        4 => period / 2,
        5 => period.saturating_sub(1),
        _ => u64::from(u16::arbitrary(u)?) % period.saturating_add(2),
    })
}

/// The error `try_with_clock` must return, if any.
fn expected_error(limit: u32, period: Duration) -> Option<QuotaError> {
    if limit == 0 {
        Some(QuotaError::ZeroCells)
    } else if period.as_nanos() > u128::from(u64::MAX) {
        Some(QuotaError::PeriodTooLong)
    } else if period.is_zero() {
        Some(QuotaError::ZeroPeriod)
    } else {
        None
    }
}

/// Every admission, and what the model derives from them.
struct Model {
    limit: u32,
    period: u64,
    /// Bucket width: 1 ns up to `EXACT_MAX`, else `ceil(period / BUCKETS)`.
    grain: u64,
    /// `(ns, cells)` in time order.
    admitted: Vec<(u64, u32)>,
    paused_until: u64,
}

impl Model {
    /// When cells admitted at `at` stop counting.
    fn expiry(&self, at: u64) -> u128 {
        u128::from(at - at % self.grain) + u128::from(self.grain) + u128::from(self.period)
    }

    /// Cells still counted at `now`, oldest first.
    fn live(&self, now: u64) -> impl Iterator<Item = &(u64, u32)> + '_ {
        self.admitted
            .iter()
            .filter(move |&&(a, _)| self.expiry(a) > u128::from(now))
    }

    fn used(&self, now: u64) -> u64 {
        self.live(now).map(|&(_, k)| u64::from(k)).sum()
    }

    /// `check_n` with nobody queued: `Ok`, or the instant it would fit.
    fn check_n(&self, now: u64, n: u32) -> Result<(), u64> {
        let mut over = (self.used(now) + u64::from(n)).saturating_sub(u64::from(self.limit));
        let fits_at = if over == 0 {
            now
        } else {
            let mut at = u64::MAX;
            for &(a, k) in self.live(now) {
                over = over.saturating_sub(u64::from(k));
                if over == 0 {
                    at = u64::try_from(self.expiry(a)).unwrap_or(u64::MAX);
                    break;
                }
            }
            at
        };
        let at = fits_at.max(self.paused_until);
        if at <= now {
            Ok(())
        } else {
            Err(at)
        }
    }

    fn full_at(&self, now: u64) -> u64 {
        self.live(now).last().map_or(now, |&(a, _)| {
            u64::try_from(self.expiry(a)).unwrap_or(u64::MAX)
        })
    }

    /// Records an admission and checks the window bound on every closed
    /// window ending at it.
    fn admit(&mut self, now: u64, n: u32) {
        assert!(
            now >= self.paused_until,
            "admitted at {now} inside a pause until {}",
            self.paused_until
        );
        if n == 0 {
            return;
        }
        self.admitted.push((now, n));
        let from = now.saturating_sub(self.period);
        let inside: u64 = self
            .admitted
            .iter()
            .rev()
            .take_while(|&&(a, _)| a >= from)
            .map(|&(_, k)| u64::from(k))
            .sum();
        assert!(
            inside <= u64::from(self.limit),
            "{inside} cells in [{from}, {now}] ns; limit {} per {} ns",
            self.limit,
            self.period
        );
    }
}

enum Wait<'w> {
    Plain(Pin<Box<WindowAcquireMany<'w, ManualClock>>>),
    Within(Pin<Box<WindowAcquireWithin<'w, ManualClock>>>),
}

struct Fut<'w> {
    wait: Wait<'w>,
    n: u32,
    /// `Some(order)` once a poll left it queued.
    joined: Option<u64>,
    waker: Waker,
    counter: Arc<WakeCounter>,
    /// Wake-ups seen at its last poll.
    seen: usize,
    polled: bool,
    /// Returned (to be removed from the harness's list).
    done: bool,
}

/// How a poll came out.
enum Polled {
    Pending,
    Admitted,
    /// Refused (above the limit) or gave up (deadline): nothing taken.
    Refused,
}

impl Fut<'_> {
    fn poll(&mut self, limit: u32) -> Polled {
        self.polled = true;
        self.seen = self.counter.get();
        let mut cx = Context::from_waker(&self.waker);
        let out = match &mut self.wait {
            Wait::Plain(f) => f.as_mut().poll(&mut cx).map(|r| {
                assert_eq!(
                    r.is_ok(),
                    self.n <= limit,
                    "acquire_many({}) of {limit}",
                    self.n
                );
                r.is_ok()
            }),
            Wait::Within(f) => f.as_mut().poll(&mut cx).map(|r| match r {
                Ok(()) => true,
                Err(DeadlineError::InsufficientCapacity { requested, burst }) => {
                    assert_eq!((requested, burst), (self.n, limit));
                    false
                }
                Err(DeadlineError::WouldExceed { .. } | DeadlineError::TimedOut) => false,
                Err(e) => panic!("acquire_many_within({}): {e:?}", self.n),
            }),
        };
        match out {
            Poll::Pending => Polled::Pending,
            Poll::Ready(true) => Polled::Admitted,
            Poll::Ready(false) => Polled::Refused,
        }
    }

    fn due(&self) -> bool {
        !self.polled || self.counter.get() > self.seen
    }
}

/// Runs one input. Panics on any disagreement with the model.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let (Ok(limit), Ok(period)) = (limit(&mut u), period(&mut u)) else {
        return;
    };
    let clock = ManualClock::new();
    let window = match (
        SlidingWindow::try_with_clock(limit, period, clock.clone()),
        expected_error(limit, period),
    ) {
        (Ok(window), None) => window,
        (Err(got), Some(expected)) => {
            assert_eq!(got, expected);
            return;
        }
        (got, expected) => panic!("try_with_clock: expected {expected:?}, got {:?}", got.err()),
    };
    let period_ns = period.as_nanos() as u64;
    let grain = if limit <= SlidingWindow::<ManualClock>::EXACT_MAX {
        1
    } else {
        period_ns.div_ceil(SlidingWindow::<ManualClock>::BUCKETS)
    };
    assert_eq!(window.granularity(), Duration::from_nanos(grain));
    let mut h = Harness {
        window: &window,
        clock: &clock,
        model: Model {
            limit,
            period: period_ns,
            grain,
            admitted: Vec::new(),
            paused_until: 0,
        },
        now: 0,
        futs: Vec::new(),
        joins: 0,
    };
    while !u.is_empty() && h.model.admitted.len() < 2048 {
        if h.step(&mut u).is_err() {
            break;
        }
    }
    h.drain();
}

struct Harness<'w> {
    window: &'w SlidingWindow<ManualClock>,
    clock: &'w ManualClock,
    model: Model,
    now: u64,
    futs: Vec<Fut<'w>>,
    joins: u64,
}

impl<'w> Harness<'w> {
    fn limit(&self) -> u32 {
        self.model.limit
    }

    fn advance(&mut self, by: u64) {
        let by = by.min(HORIZON - self.now);
        self.clock.advance(Duration::from_nanos(by));
        self.now += by;
    }

    fn queued(&self) -> bool {
        self.futs.iter().any(|f| f.joined.is_some())
    }

    fn step(&mut self, u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
        let limit = self.limit();
        match u8::arbitrary(u)? % 16 {
            0..=2 => {
                let by = duration_ns(u, self.model.period)?;
                self.advance(by);
            }
            3..=4 => {
                let n = count(u, limit)?;
                self.check(n, u8::arbitrary(u)? % 4 == 0);
            }
            5..=7 => {
                let n = count(u, limit)?;
                if self.futs.len() < MAX_LIVE {
                    let within = u8::arbitrary(u)?;
                    let wait = if within % 3 == 0 {
                        let timeout = duration_ns(u, self.model.period)?;
                        Wait::Within(Box::pin(
                            self.window
                                .acquire_many_within(n, Duration::from_nanos(timeout)),
                        ))
                    } else {
                        Wait::Plain(Box::pin(self.window.acquire_many(n)))
                    };
                    let counter = Arc::new(WakeCounter::default());
                    self.futs.push(Fut {
                        wait,
                        n,
                        joined: None,
                        waker: Waker::from(Arc::clone(&counter)),
                        counter,
                        seen: 0,
                        polled: false,
                        done: false,
                    });
                }
            }
            8..=11 => {
                let i = usize::from(u8::arbitrary(u)?);
                if !self.futs.is_empty() {
                    let i = i % self.futs.len();
                    // Mostly woken ones; sometimes a spurious poll.
                    if self.futs[i].due() || i % 4 == 0 {
                        self.poll(i);
                    }
                }
            }
            12 => {
                let i = usize::from(u8::arbitrary(u)?);
                if !self.futs.is_empty() {
                    self.futs.remove(i % self.futs.len());
                }
            }
            13 => {
                let d = duration_ns(u, self.model.period)?;
                self.window.pause_for(Duration::from_nanos(d));
                self.model.paused_until = self.model.paused_until.max(self.now.saturating_add(d));
            }
            _ => self.observe(),
        }
        Ok(())
    }

    fn check(&mut self, n: u32, via_check: bool) {
        let n = if via_check { 1 } else { n };
        let queued = self.queued();
        let got = if via_check {
            self.window.check().map_err(RateLimitError::NotUntil)
        } else {
            self.window.check_n(n)
        };
        if n > self.limit() {
            assert!(
                matches!(got, Err(RateLimitError::InsufficientCapacity { requested, burst }) if requested == n && burst == self.limit()),
                "check_n({n}) above the limit: {got:?}"
            );
            return;
        }
        if !queued {
            match (self.model.check_n(self.now, n), &got) {
                (Ok(()), Ok(())) => {}
                (Err(at), Err(RateLimitError::NotUntil(nu))) => {
                    assert_eq!(nu.earliest().as_nanos(), at, "check_n({n}) at {}", self.now);
                    assert_eq!(nu.wait_time(), Duration::from_nanos(at - self.now));
                }
                (expected, got) => {
                    panic!(
                        "check_n({n}) at {}: model {expected:?}, window {got:?}",
                        self.now
                    )
                }
            }
        }
        if let Err(RateLimitError::NotUntil(nu)) = &got {
            assert!(nu.earliest().as_nanos() > self.now, "a denial with no wait");
        }
        if got.is_ok() {
            self.model.admit(self.now, n);
            // Nobody barges: whoever was queued was granted first.
            let limit = self.limit();
            let mut granted = Vec::new();
            for f in self.futs.iter_mut().filter(|f| f.joined.is_some()) {
                assert!(
                    matches!(f.poll(limit), Polled::Admitted),
                    "check admitted past a queued waiter"
                );
                granted.push(f.n);
                f.done = true;
            }
            for n in granted {
                self.model.admit(self.now, n);
            }
            self.settle_granted();
        }
    }

    /// Futures that returned during a FIFO check leave.
    fn settle_granted(&mut self) {
        self.futs.retain(|f| !f.done);
    }

    fn poll(&mut self, i: usize) {
        let limit = self.limit();
        let now = self.now;
        match self.futs[i].poll(limit) {
            Polled::Pending => {
                if self.futs[i].joined.is_none() {
                    self.futs[i].joined = Some(self.joins);
                    self.joins += 1;
                }
            }
            Polled::Refused => {
                self.futs.remove(i);
            }
            Polled::Admitted => {
                let f = self.futs.remove(i);
                self.model.admit(now, f.n);
                // FIFO: everyone who joined earlier was granted.
                if let Some(joined) = f.joined {
                    let mut earlier = Vec::new();
                    for g in &mut self.futs {
                        if g.joined.is_some_and(|j| j < joined) {
                            assert!(
                                matches!(g.poll(limit), Polled::Admitted),
                                "a later waiter returned first"
                            );
                            earlier.push(g.n);
                            g.done = true;
                        }
                    }
                    for n in earlier {
                        self.model.admit(now, n);
                    }
                    self.settle_granted();
                }
            }
        }
    }

    fn observe(&mut self) {
        let remaining = self.window.remaining();
        assert!(remaining <= self.limit());
        if !self.queued() && self.now >= self.model.paused_until {
            let free = u64::from(self.limit()) - self.model.used(self.now);
            assert_eq!(u64::from(remaining), free, "remaining at {}", self.now);
            let full_at = self.model.full_at(self.now).max(self.model.paused_until);
            assert_eq!(
                self.window.until_full(),
                Duration::from_nanos(full_at - self.now),
                "until_full at {}",
                self.now
            );
        }
    }

    /// Polls only woken futures, a window at a time, until all are done;
    /// then every cell must come back.
    fn drain(&mut self) {
        let rounds = self.futs.len() + 2;
        for _ in 0..rounds {
            let step = self
                .model
                .period
                .saturating_add(self.model.grain)
                .max(self.model.paused_until.saturating_sub(self.now));
            if step > HORIZON - self.now {
                return; // windows of centuries: nothing more to learn
            }
            self.advance(step);
            let mut progress = true;
            while progress {
                progress = false;
                let mut i = 0;
                while i < self.futs.len() {
                    if self.futs[i].due() {
                        progress = true;
                        let before = self.futs.len();
                        self.poll(i);
                        if self.futs.len() < before {
                            i = 0;
                            continue;
                        }
                    }
                    i += 1;
                }
            }
        }
        assert!(
            self.futs.is_empty(),
            "{} waiters never woken",
            self.futs.len()
        );
        let step = self.model.period.saturating_add(self.model.grain);
        if step <= HORIZON - self.now {
            self.advance(step);
            assert_eq!(
                self.window.remaining(),
                self.limit(),
                "every cell comes back"
            );
            assert_eq!(self.window.waiters(), 0);
        }
    }
}
