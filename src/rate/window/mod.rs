//! [`SlidingWindow`]: at most `n` admissions in any window of length
//! `period`, bursts up to `n`.
//!
//! # Implementation details
//!
//! The admissions of the last `period` are kept in a [`Log`] (see
//! `log.rs`): exact up to [`SlidingWindow::EXACT_MAX`] cells, bucketed
//! above. The log, the pause and the queue of waiters live under one mutex.
//!
//! Waiters queue in an intrusive FIFO list and hold nothing while they
//! wait: cells are taken only when a waiter is *granted*, at the instant it
//! fits. Only the head of the queue sleeps on the clock, until the instant
//! the log says its cells are free; whoever finds the head due (the head
//! itself when its timer fires, a `check`, a newcomer, a cancelled waiter
//! giving cells back) *serves* the queue: grants every waiter from the head
//! that fits now, in order, unlinks it and wakes it, and wakes the new head
//! so that it arms its own timer. `check` serves the queue first and fails
//! while anyone is still queued, so nobody barges.
//!
//! A granted waiter's cells are counted apart (`granted`) until its future
//! returns, and only then recorded in the log, at the instant it returns:
//! so the window bound holds for the instants `acquire` futures actually
//! complete, however late the executor polls them. A granted future dropped
//! before it returns gives its cells back.

mod futures;
pub(crate) mod log;

use core::fmt;
use core::task::Waker;
use core::time::Duration;

pub use self::futures::{WindowAcquire, WindowAcquireMany, WindowAcquireWithin, WindowRun};
use self::log::Log;
use crate::clock::{nanos, Clock, ClockInstant};
use crate::error::{InsufficientCapacity, NotUntil, QuotaError, RateLimitError};
use crate::stats::{Counters, RateStats};
use crate::sync::{Mutex, MutexGuard};
use crate::wait_list::{List, WakeBatch};

#[cfg(feature = "async-io")]
use crate::clock::SystemClock;

/// A queued `acquire_many`, as the window sees it (inside the waiting
/// future's list node).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Waiter {
    pub(crate) n: u32,
    pub(crate) status: Status,
    /// It knows it is the head of the queue (it was woken as such, or
    /// found itself there) and keeps its own timer.
    pub(crate) head: bool,
    /// The instant its timer is armed for (`u64::MAX`: none).
    pub(crate) timer_at: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Waiting,
    /// Granted and unlinked: its cells are counted in `State::granted`
    /// until it returns (and records them) or is dropped (and gives them
    /// back).
    Granted,
}

pub(crate) struct State {
    pub(crate) log: Log,
    /// Cells of granted waiters that have not returned yet: in use, with
    /// no expiry until they are recorded.
    pub(crate) granted: u32,
    /// Nothing is admitted before this instant (ns).
    pub(crate) paused_until_ns: u64,
    pub(crate) waiters: List<Waiter>,
}

impl State {
    /// Cells free at `now`.
    fn free(&mut self, now: u64) -> u32 {
        self.log.purge(now);
        self.log.free() - self.granted
    }

    /// Admits `n` cells at `now` if nobody is queued, no pause is in force
    /// and they fit.
    fn admit_now(&mut self, n: u32, now: u64) -> bool {
        if self.waiters.len() > 0 || now < self.paused_until_ns || n > self.free(now) {
            return false;
        }
        self.log.record(n, now);
        true
    }

    /// When the head, asking for `n`, fits if nothing else changes: the
    /// first instant at or after `now` at which the log has room for its
    /// cells and the granted ones, and no pause is in force. `None` if
    /// that depends on when granted waiters return (the log has no room
    /// for them all): the head is then woken when it does not any more.
    fn head_at(&self, n: u32, now: u64) -> Option<u64> {
        let need = n.checked_add(self.granted)?;
        (need <= self.log.limit()).then(|| self.log.earliest(need, now).max(self.paused_until_ns))
    }

    /// Grants waiters from the head of the queue that fit at `now`, in
    /// order, taking their wakers into `batch`; then the new head's waker if
    /// it has not been told it is the head (or, with `rewake_head`, in any
    /// case: cells came back and it may sleep less). Returns whether it
    /// stopped because `batch` was full.
    fn serve(&mut self, now: u64, batch: &mut WakeBatch, mut rewake_head: bool) -> bool {
        let mut free = self.free(now);
        let paused = now < self.paused_until_ns;
        loop {
            if batch.is_full() {
                return true;
            }
            let Some(head) = self.waiters.front() else {
                return false;
            };
            if paused || head.value.n > free {
                if !head.value.head || rewake_head {
                    head.value.head = true;
                    if let Some(waker) = head.waker.take() {
                        batch.push(waker);
                    }
                }
                return false;
            }
            free -= head.value.n;
            self.granted += head.value.n;
            head.value.status = Status::Granted;
            // A head whose timer has fired is being woken by it already.
            if head.value.timer_at > now {
                if let Some(waker) = head.waker.take() {
                    batch.push(waker);
                }
            }
            self.waiters.unlink_front();
            rewake_head = false;
        }
    }

    /// A granted waiter of `n` cells returns at `now`: its cells are
    /// recorded then, so the window bound holds for the instants futures
    /// return, not only for the instants they were granted. Returns the
    /// head's waker if the head can now time itself (see `head_at`).
    fn returned(&mut self, n: u32, now: u64) -> Option<Waker> {
        let untimed = |state: &mut State| {
            let granted = u64::from(state.granted);
            let limit = u64::from(state.log.limit());
            state
                .waiters
                .front()
                .is_some_and(|head| u64::from(head.value.n) + granted > limit)
        };
        let was_untimed = untimed(self);
        self.granted -= n;
        self.log.purge(now);
        self.log.record(n, now);
        if was_untimed && !untimed(self) {
            return self.waiters.front().and_then(|head| head.waker.take());
        }
        None
    }
}

crate::clock::with_default! {
    /// At most `n` admissions in any window of length `period`, and up
    /// to `n` at once after an idle spell: what an API means by "1,000
    /// requests per hour" or "50 per rolling second".
    ///
    /// Choose it for a *published* limit that the server enforces with
    /// a sliding window (or a fixed one): it lets a client use the whole
    /// allowance at once and never sends request `n + 1` inside any
    /// window of length `period`. A [`RateLimiter`](crate::RateLimiter)
    /// (GCRA) spreads cells evenly instead, one every `period / n`: the
    /// better tool for smooth pacing, but with a burst of `b` it can let
    /// `b + n` through in one window. A [`TokenBucket`](crate::TokenBucket)
    /// refills in lumps.
    ///
    /// # Precision
    ///
    /// Exact, in integer nanoseconds: no closed window `[t, t + period]`
    /// ever holds more than `n` admissions, under any interleaving. A
    /// cell admitted at `a` is free again at `a + period + 1 ns`. Under
    /// saturating demand every closed window of length `period` holds
    /// exactly `n` (with one-cell requests; a large request at the head
    /// waits until all its cells are free).
    ///
    /// # Memory
    ///
    /// The window keeps a log of the admissions of the last `period`, a
    /// `(instant, count)` pair (16 bytes) per distinct admission
    /// instant: exact for `n` up to [`EXACT_MAX`](Self::EXACT_MAX)
    /// (4,096), so at most 4,096 entries (64 KiB). Above that,
    /// admissions are grouped into [`BUCKETS`](Self::BUCKETS) (4,096)
    /// buckets per period, [`granularity`](Self::granularity)
    /// `= ceil(period / 4,096)` wide: a cell counts as admitted at the
    /// end of its bucket, so it is held up to one bucket longer than
    /// exact (conservative: never more than `n` in any window; about
    /// 0.9 s for a 1-hour window), and the log holds at most 4,098
    /// entries. The log grows only as admissions need it.
    ///
    /// # Fairness
    ///
    /// Waiters are served strictly in the order they first polled: a
    /// later small request never overtakes an earlier large one, and
    /// [`check`](Self::check) fails while anyone is queued. Only the
    /// head of the queue sleeps on the clock; when cells free up, the
    /// waiters that now fit are granted and woken together, and exactly
    /// those.
    ///
    /// # Memory ordering
    ///
    /// Every admission happens under one mutex, so an admitted `check`
    /// or `acquire` happens after every admission before it.
    ///
    /// # Examples
    ///
    /// An API allows 3 calls in any rolling second:
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, SlidingWindow};
    ///
    /// let clock = ManualClock::new();
    /// let window = SlidingWindow::with_clock(3, Duration::from_secs(1), clock.clone());
    /// assert!(window.check_n(3).is_ok()); // the whole allowance at once
    /// let denied = window.check().unwrap_err();
    /// assert_eq!(denied.wait_time(), Duration::from_nanos(1_000_000_001));
    /// clock.advance(Duration::from_millis(1_001));
    /// assert_eq!(window.remaining(), 3);
    /// ```
    pub struct SlidingWindow<C: Clock = SystemClock> {
        clock: C,
        base: C::Instant,
        limit: u32,
        state: Mutex<State>,
        pub(crate) counters: Counters,
    }
}

impl<C: Clock> fmt::Debug for SlidingWindow<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (remaining, waiters, entries) = {
            let mut state = self.state.lock();
            let now = self.now_ns();
            (state.free(now), state.waiters.len(), state.log.entries())
        };
        f.debug_struct("SlidingWindow")
            .field("limit", &self.limit())
            .field("period", &self.period())
            .field("free", &remaining)
            .field("waiters", &waiters)
            .field("log_entries", &entries)
            .finish()
    }
}

/// Checks a window's settings (shared with `LimiterBuilder::window`).
pub(crate) fn validate(n: u32, period: Duration) -> Result<u64, QuotaError> {
    if n == 0 {
        return Err(QuotaError::ZeroCells);
    }
    let period_ns = u64::try_from(period.as_nanos()).map_err(|_| QuotaError::PeriodTooLong)?;
    if period_ns == 0 {
        return Err(QuotaError::ZeroPeriod);
    }
    Ok(period_ns)
}

#[cfg(feature = "async-io")]
impl SlidingWindow<SystemClock> {
    /// At most `n` admissions in any window of length `period`, on the real
    /// clock, with all `n` free.
    ///
    /// # Panics
    ///
    /// If `n` is 0, `period` is zero or `period` is longer than 2^64 - 1 ns
    /// (584 years); [`try_with_clock`](SlidingWindow::try_with_clock)
    /// returns these as a [`QuotaError`] instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use limiters::SlidingWindow;
    ///
    /// let hourly = SlidingWindow::new(1_000, Duration::from_secs(3600));
    /// assert!(hourly.check_n(1_000).is_ok()); // all at once is fine...
    /// assert!(hourly.check().is_err()); // ...and then nothing until it slides
    /// ```
    #[track_caller]
    pub fn new(n: u32, period: Duration) -> Self {
        Self::with_clock(n, period, SystemClock)
    }
}

impl<C: Clock> SlidingWindow<C> {
    /// Exact up to this many cells per window; above it, admissions are
    /// grouped into [`BUCKETS`](Self::BUCKETS) buckets per period (see
    /// [`# Memory`](Self#memory)).
    pub const EXACT_MAX: u32 = log::EXACT_MAX;
    /// Buckets per period above [`EXACT_MAX`](Self::EXACT_MAX).
    pub const BUCKETS: u64 = log::BUCKETS;

    /// As [`new`](SlidingWindow::new), on `clock`.
    ///
    /// # Panics
    ///
    /// As [`new`](SlidingWindow::new).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, SlidingWindow};
    ///
    /// let window = SlidingWindow::with_clock(10, Duration::from_secs(1), ManualClock::new());
    /// assert_eq!(window.remaining(), 10);
    /// ```
    #[track_caller]
    pub fn with_clock(n: u32, period: Duration, clock: C) -> Self {
        match Self::try_with_clock(n, period, clock) {
            Ok(window) => window,
            Err(e) => panic!("SlidingWindow::with_clock({n}, {period:?}): {e}"),
        }
    }

    /// As [`with_clock`](Self::with_clock), returning bad settings as an
    /// error: for limits read from configuration.
    ///
    /// # Errors
    ///
    /// [`QuotaError::ZeroCells`] if `n` is 0, [`QuotaError::ZeroPeriod`] or
    /// [`QuotaError::PeriodTooLong`] if `period` is zero or longer than
    /// 2^64 - 1 ns.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, QuotaError, SlidingWindow};
    ///
    /// let clock = ManualClock::new();
    /// let err = SlidingWindow::try_with_clock(0, Duration::from_secs(1), clock).unwrap_err();
    /// assert_eq!(err, QuotaError::ZeroCells);
    /// ```
    pub fn try_with_clock(n: u32, period: Duration, clock: C) -> Result<Self, QuotaError> {
        let period_ns = validate(n, period)?;
        let base = clock.origin();
        Ok(Self {
            clock,
            base,
            limit: n,
            state: Mutex::new(State {
                log: Log::new(n, period_ns),
                granted: 0,
                paused_until_ns: 0,
                waiters: List::new(),
            }),
            counters: Counters::new(),
        })
    }

    /// The most admissions in any window, `n`.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, SlidingWindow};
    ///
    /// let window = SlidingWindow::with_clock(50, Duration::from_secs(1), ManualClock::new());
    /// assert_eq!(window.limit(), 50);
    /// ```
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The window's length.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, SlidingWindow};
    ///
    /// let window = SlidingWindow::with_clock(50, Duration::from_secs(1), ManualClock::new());
    /// assert_eq!(window.period(), Duration::from_secs(1));
    /// ```
    pub fn period(&self) -> Duration {
        Duration::from_nanos(self.state.lock().log.period_ns())
    }

    /// How far from exact the log is: 1 ns up to
    /// [`EXACT_MAX`](Self::EXACT_MAX) cells (exact), else the bucket width
    /// `ceil(period / BUCKETS)`, the longest a cell may be held beyond its
    /// exact expiry.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, SlidingWindow};
    ///
    /// let hour = Duration::from_secs(3600);
    /// let exact = SlidingWindow::with_clock(1_000, hour, ManualClock::new());
    /// assert_eq!(exact.granularity(), Duration::from_nanos(1));
    /// let bucketed = SlidingWindow::with_clock(100_000, hour, ManualClock::new());
    /// assert_eq!(bucketed.granularity(), Duration::from_nanos(878_906_250));
    /// ```
    pub fn granularity(&self) -> Duration {
        Duration::from_nanos(self.state.lock().log.grain_ns())
    }

    /// The window's clock.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, SlidingWindow};
    ///
    /// let clock = ManualClock::new();
    /// let window = SlidingWindow::with_clock(1, Duration::from_secs(1), clock.clone());
    /// assert_eq!(window.clock().now(), clock.now());
    /// ```
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Admits one cell now, or says when it could be.
    ///
    /// # Fairness
    ///
    /// Waiters whose cells are free are granted first; while any is still
    /// queued, `check` fails.
    ///
    /// # Errors
    ///
    /// [`NotUntil`] with the earliest instant one cell fits (with waiters
    /// queued, a lower bound: they go first).
    ///
    /// # Examples
    ///
    /// A server shedding load (answering 429 itself) at 2 per second:
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, SlidingWindow};
    ///
    /// let window = SlidingWindow::with_clock(2, Duration::from_secs(1), ManualClock::new());
    /// let answers: Vec<u16> = (0..4)
    ///     .map(|_| if window.check().is_ok() { 200 } else { 429 })
    ///     .collect();
    /// assert_eq!(answers, [200, 200, 429, 429]);
    /// ```
    pub fn check(&self) -> Result<(), NotUntil<C::Instant>> {
        match self.check_n(1) {
            Ok(()) => Ok(()),
            Err(RateLimitError::NotUntil(not_until)) => Err(not_until),
            Err(_) => unreachable!("a window admits at least 1 cell"),
        }
    }

    /// Admits `n` cells at once, or none.
    ///
    /// # Fairness
    ///
    /// As [`check`](Self::check).
    ///
    /// # Errors
    ///
    /// [`RateLimitError::InsufficientCapacity`] if `n` exceeds the limit
    /// (it could never be admitted), [`RateLimitError::NotUntil`] otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, RateLimitError, SlidingWindow};
    ///
    /// let window = SlidingWindow::with_clock(10, Duration::from_secs(1), ManualClock::new());
    /// window.check_n(8)?; // a batch of 8
    /// assert!(matches!(window.check_n(3), Err(RateLimitError::NotUntil(_))));
    /// assert!(matches!(window.check_n(11), Err(RateLimitError::InsufficientCapacity { .. })));
    /// window.check_n(2)?;
    /// # Ok::<(), RateLimitError<limiters::ManualInstant>>(())
    /// ```
    pub fn check_n(&self, n: u32) -> Result<(), RateLimitError<C::Instant>> {
        if let Err(e) = self.capacity(n) {
            self.counters.deny();
            return Err(e.into());
        }
        let mut state = self.state.lock();
        let mut now = self.now_ns();
        if state.admit_now(n, now) {
            drop(state);
            self.counters.admit();
            return Ok(());
        }
        if state.waiters.len() > 0 {
            (state, now) = self.serve(state, false);
            if state.admit_now(n, now) {
                drop(state);
                self.counters.admit();
                return Ok(());
            }
        }
        self.counters.deny();
        // With waiters queued or granted, a lower bound: when the log has
        // room for their cells and ours, or else when cells recorded now
        // (the earliest theirs can be) have left.
        let mut ahead = u64::from(state.granted) + u64::from(n);
        state.waiters.retain(|entry| {
            ahead += u64::from(entry.value.n);
            true
        });
        let at = match u32::try_from(ahead) {
            Ok(all) if all <= state.log.limit() => state.log.earliest(all, now),
            _ => state.log.full_at_if_recorded(now),
        };
        let at = at.max(state.paused_until_ns);
        drop(state);
        Err(self.not_until(at, now).into())
    }

    /// Cells [`check_n`](Self::check_n) would admit right now: 0 while a
    /// pause is in force or anyone is queued.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, SlidingWindow};
    ///
    /// let window = SlidingWindow::with_clock(5, Duration::from_secs(1), ManualClock::new());
    /// window.check_n(2).unwrap();
    /// assert_eq!(window.remaining(), 3);
    /// ```
    pub fn remaining(&self) -> u32 {
        let (mut state, now) = self.serve(self.state.lock(), false);
        if state.waiters.len() > 0 || now < state.paused_until_ns {
            0
        } else {
            state.free(now)
        }
    }

    /// How long until all `n` cells are free again if nothing more is
    /// admitted (the "reset" of a `RateLimit` header): zero when
    /// [`remaining`](Self::remaining) is the limit. Exact to the
    /// nanosecond; it includes a pause in force, and counts waiters queued
    /// or granted as if admitted now (a lower bound: they may be admitted
    /// later).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, SlidingWindow};
    ///
    /// let clock = ManualClock::new();
    /// let window = SlidingWindow::with_clock(5, Duration::from_secs(10), clock.clone());
    /// window.check().unwrap();
    /// clock.advance(Duration::from_secs(4));
    /// window.check().unwrap();
    /// // The second cell leaves the window 10 s and 1 ns after it came.
    /// assert_eq!(window.until_full(), Duration::from_nanos(10_000_000_001));
    /// ```
    pub fn until_full(&self) -> Duration {
        let state = self.state.lock();
        let now = self.now_ns();
        let mut at = state.log.full_at(now).max(state.paused_until_ns);
        if state.granted > 0 || state.waiters.len() > 0 {
            at = at.max(state.log.full_at_if_recorded(now));
        }
        Duration::from_nanos(at - now)
    }

    /// Admits nothing for `duration` from now: for a `Retry-After` answer.
    /// Queued waiters wait too, in order. The pause spends no cell: when it
    /// ends, whatever the window had free is free (a server that said
    /// "retry after 1 s" does not cost the rest of the hour's allowance).
    /// Pauses only extend: a shorter one than the pause in force changes
    /// nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, SlidingWindow};
    ///
    /// let clock = ManualClock::new();
    /// let window = SlidingWindow::with_clock(1_000, Duration::from_secs(3600), clock.clone());
    /// window.pause_for(Duration::from_secs(1)); // 429, Retry-After: 1
    /// assert_eq!(window.check().unwrap_err().wait_time(), Duration::from_secs(1));
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(window.remaining(), 1_000);
    /// ```
    pub fn pause_for(&self, duration: Duration) {
        let until = self.now_ns().saturating_add(nanos(duration));
        self.pause_until_ns(until);
    }

    /// Admits nothing before `instant` (see [`pause_for`](Self::pause_for)).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, SlidingWindow};
    ///
    /// let clock = ManualClock::new();
    /// let window = SlidingWindow::with_clock(10, Duration::from_secs(1), clock.clone());
    /// let reset = clock.now() + Duration::from_secs(5); // e.g. X-RateLimit-Reset
    /// window.pause_until(reset);
    /// assert_eq!(window.check().unwrap_err().earliest(), reset);
    /// ```
    pub fn pause_until(&self, instant: C::Instant) {
        self.pause_until_ns(self.ns_of(instant));
    }

    /// The end of the pause in force, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, SlidingWindow};
    ///
    /// let clock = ManualClock::new();
    /// let window = SlidingWindow::with_clock(10, Duration::from_secs(1), clock.clone());
    /// assert_eq!(window.paused_until(), None);
    /// window.pause_for(Duration::from_secs(2));
    /// assert_eq!(window.paused_until(), Some(clock.now() + Duration::from_secs(2)));
    /// ```
    pub fn paused_until(&self) -> Option<C::Instant> {
        let until = self.state.lock().paused_until_ns;
        (until > self.now_ns()).then(|| self.instant_at(until))
    }

    /// Queued `acquire` futures.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, SlidingWindow};
    ///
    /// let window = SlidingWindow::with_clock(1, Duration::from_secs(1), ManualClock::new());
    /// assert_eq!(window.waiters(), 0);
    /// ```
    pub fn waiters(&self) -> usize {
        self.state.lock().waiters.len()
    }

    /// A snapshot for dashboards: cells admissible now, waiters, pauses,
    /// and the totals admitted, refused and waited since creation. Cheap:
    /// two short locks.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, SlidingWindow};
    ///
    /// let window = SlidingWindow::with_clock(3, Duration::from_secs(1), ManualClock::new());
    /// window.check_n(3).unwrap();
    /// assert!(window.check().is_err());
    /// let stats = window.stats();
    /// assert_eq!((stats.remaining, stats.totals.admitted, stats.totals.denied), (0, 1, 1));
    /// ```
    pub fn stats(&self) -> RateStats {
        RateStats {
            remaining: self.remaining(),
            waiters: self.waiters(),
            pauses: self.counters.pauses(),
            totals: self.counters.snapshot(),
        }
    }

    fn pause_until_ns(&self, until: u64) {
        self.counters.pause();
        // The head's timer fires no later than before; it re-arms then.
        let mut state = self.state.lock();
        state.paused_until_ns = state.paused_until_ns.max(until);
    }

    fn capacity(&self, n: u32) -> Result<(), InsufficientCapacity> {
        if n > self.limit {
            return Err(InsufficientCapacity {
                requested: n,
                burst: self.limit,
            });
        }
        Ok(())
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    pub(crate) fn now_ns(&self) -> u64 {
        self.clock.nanos_since(self.base)
    }

    fn ns_of(&self, instant: C::Instant) -> u64 {
        nanos(instant.saturating_duration_since(self.base))
    }

    pub(crate) fn instant_at(&self, ns: u64) -> C::Instant {
        self.base.saturating_add(Duration::from_nanos(ns))
    }

    fn not_until(&self, at: u64, now: u64) -> NotUntil<C::Instant> {
        NotUntil::at_ns(self.base, at, now)
    }

    /// Serves the queue (see [`State::serve`]) until nothing more fits,
    /// waking outside the lock; returns the lock, retaken, and the time.
    pub(crate) fn serve<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        mut rewake_head: bool,
    ) -> (MutexGuard<'a, State>, u64) {
        loop {
            let now = self.now_ns();
            let mut batch = WakeBatch::new();
            state.serve(now, &mut batch, rewake_head);
            if batch.is_empty() {
                return (state, now);
            }
            drop(state);
            batch.wake_all();
            state = self.state.lock();
            rewake_head = false;
        }
    }
}
