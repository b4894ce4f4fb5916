//! [`RateLimiter`]: an exact, lock-free GCRA with FIFO-fair waiting. This
//! file is its whole public API; the arithmetic is in
//! [`crate::rate::arith`], the 8-byte state word of the hot path in
//! `narrow`, the 16-byte word of a changed quota and the waiters in
//! [`state`], quota changes and pauses in `retime`, the waiting futures and
//! [`Reservation`] in [`crate::rate::reservation`].
//!
//! # Implementation details
//!
//! GCRA (the generic cell rate algorithm) keeps one number, `tat`, the
//! *theoretical arrival time*: the instant at which the limiter would be
//! back to "no credit used" if nothing else arrived. A request for `n`
//! cells at `now` moves `tat` to `max(tat, now) + n * t` (`t` the emission
//! interval) and is admitted if that is at most `now + tau` (`tau` the
//! burst tolerance); otherwise it would be admitted at
//! `max(tat, now) + n * t - tau`. Everything is exact integer arithmetic,
//! in ticks of `1 / cells` ns (see [`crate::rate::arith`]).
//!
//! Waiting: `acquire` *reserves* its cells when first polled (it moves `tat`
//! even though it is not admitted yet) and sleeps once, until `tat - tau`
//! of its reservation. Reservations are ordered by `tat`, so later waiters
//! never overtake earlier ones and `check` never barges past them. A waiter
//! is a node in an intrusive list under a mutex (no allocation). Quota
//! changes and pauses re-time every waiter in the list, keeping their
//! order. Cancelling a reservation gives its cells back only if it is still
//! the last one (`tat` is still its `tat`) and its time has not come;
//! otherwise later reservations were timed after it.

use alloc::boxed::Box;
use core::fmt;
use core::future::Future;
use core::time::Duration;

use crate::clock::{nanos, Clock, ClockInstant};
use crate::deadline::Within;
use crate::error::{InsufficientCapacity, NotUntil, RateLimitError};
use crate::rate::quota::Quota;
use crate::rate::reservation::{
    RateAcquire, RateAcquireMany, RateAcquireWithin, RateRun, Reservation,
};
use crate::stats::{Counters, RateStats};
use crate::sync::MutexGuard;
use crate::wait_list::Node;

#[cfg(feature = "async-io")]
use crate::clock::SystemClock;

pub(crate) mod narrow;
mod retime;
pub(crate) mod state;

use narrow::State;
use state::{Refusal, Reserved, Shared, Waiter};

crate::clock::with_default! {
    /// An exact GCRA rate limiter: at most `burst + floor(W * cells /
    /// period)` cells in any window of length `W`, with lock-free checks
    /// and FIFO-fair waiting.
    ///
    /// Choose it over [`TokenBucket`](crate::TokenBucket) when an API
    /// publishes "N per period, bursts of B": cells are admitted
    /// smoothly, one every `period / N`, with credit for at most `B`
    /// after an idle spell. (A token bucket refills in discrete lumps.)
    ///
    /// # Precision
    ///
    /// The arithmetic is exact integers: the emission interval
    /// `period / cells` is kept as a fraction, never rounded, so
    /// `Quota::per_second(300_000_000)` admits exactly 300,000,000 cells a
    /// second. In any closed window of length `W` at most
    /// `burst + floor(W * cells / period)` cells are admitted, and idle
    /// time never builds more than `burst` of credit. Under saturating
    /// demand the limiter admits at least that bound minus one request,
    /// with one exception the upper bound itself forces: when every
    /// request takes the whole burst (for instance a burst of 1) and the
    /// interval is not a whole number of nanoseconds (the clock's unit),
    /// requests are admitted on whole nanoseconds and the burst has no
    /// room to absorb that rounding: each request can lose up to one
    /// nanosecond, so a long window can fall short by more than one.
    /// Times are counted in nanoseconds from the limiter's creation and
    /// saturate 2^64 - 1 ns (584 years) out, never wrap: a check that
    /// would need more is denied with that instant, and a waiter or a
    /// reservation queued behind so much backlog is timed at it. The
    /// burst is kept to [`Quota::MAX_BURST_SPAN`] (292 years) of
    /// credit, so any single request within the burst is served on a
    /// limiter less than 292 years old.
    ///
    /// The bound is on *admissions*: a `check` is admitted when it is
    /// made, an `acquire` at the start of the slot it reserved. The
    /// future returns when the clock's timer has woken its task, which
    /// is later by the timer's and the executor's lateness (usually well
    /// under a millisecond on `SystemClock`, more when a thread is
    /// descheduled; the crate's `BENCHMARKS.md` has figures measured on
    /// one machine). Lateness never
    /// pushes later slots back, so the long-run rate stays exact, but
    /// after a stall the waiters whose slots passed meanwhile return
    /// together. Where the far side counts arrivals strictly (a server
    /// allowing a burst of 1), leave a little headroom in the quota.
    ///
    /// # Fairness
    ///
    /// [`acquire`](Self::acquire) and [`acquire_many`](Self::acquire_many)
    /// reserve their cells when first polled and complete in that order:
    /// a later waiter never overtakes an earlier one, however few cells
    /// it wants, and [`check`](Self::check) is never admitted ahead of a
    /// waiter. Each waiter sleeps once, until its own slot: there is no
    /// herd of sleepers re-checking.
    ///
    /// # Memory ordering
    ///
    /// An admitted `check` or `acquire` happens after every cell admitted
    /// before it (the state word is updated with acquire-release CAS).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, Quota, RateLimiter};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = RateLimiter::with_clock(Quota::per_second(2).allow_burst(2), clock.clone());
    /// assert!(limiter.check().is_ok());
    /// assert!(limiter.check().is_ok());
    /// let denied = limiter.check().unwrap_err();
    /// assert_eq!(denied.wait_time(), Duration::from_millis(500));
    /// clock.advance(Duration::from_millis(500));
    /// assert!(limiter.check().is_ok());
    /// ```
    pub struct RateLimiter<C: Clock = SystemClock> {
        clock: C,
        base: C::Instant,
        state: State,
    }
}

impl<C: Clock> fmt::Debug for RateLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = self.state.lock();
        f.debug_struct("RateLimiter")
            .field("quota", &shared.quota)
            .field("waiters", &shared.waiters.len())
            .finish()
    }
}

#[cfg(feature = "async-io")]
#[cfg_attr(docsrs, doc(cfg(feature = "async-io")))]
impl RateLimiter<SystemClock> {
    /// A limiter for `quota` on the real clock, with full burst credit.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{Quota, RateLimiter};
    ///
    /// let limiter = RateLimiter::new(Quota::per_second(100).allow_burst(10));
    /// assert_eq!((0..20).filter(|_| limiter.check().is_ok()).count(), 10);
    /// ```
    pub fn new(quota: Quota) -> Self {
        Self::with_clock(quota, SystemClock)
    }
}

impl<C: Clock> RateLimiter<C> {
    /// A limiter for `quota` on `clock`, with full burst credit.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{ManualClock, Quota, RateLimiter};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = RateLimiter::with_clock(Quota::per_minute(1), clock.clone());
    /// assert!(limiter.check().is_ok());
    /// assert!(limiter.check().is_err());
    /// ```
    pub fn with_clock(quota: Quota, clock: C) -> Self {
        let base = clock.origin();
        Self {
            clock,
            base,
            state: State::new(quota),
        }
    }

    /// The quota in force.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{ManualClock, Quota, RateLimiter};
    ///
    /// let limiter = RateLimiter::with_clock(Quota::per_second(5), ManualClock::new());
    /// limiter.set_quota(Quota::per_second(7));
    /// assert_eq!(limiter.quota(), Quota::per_second(7));
    /// ```
    pub fn quota(&self) -> Quota {
        self.state.lock().quota
    }

    /// The limiter's clock.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{ManualClock, Quota, RateLimiter};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = RateLimiter::with_clock(Quota::per_second(5), clock.clone());
    /// assert_eq!(limiter.clock().now(), clock.now());
    /// ```
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Admits one cell now, or says when it would be admitted.
    ///
    /// Lock-free. Never admitted ahead of a waiting `acquire`.
    ///
    /// # Errors
    ///
    /// [`NotUntil`] with the earliest instant at which one cell conforms.
    ///
    /// # Examples
    ///
    /// Shedding load instead of queueing it (answer 429 yourself):
    ///
    /// ```
    /// use limiters::{ManualClock, Quota, RateLimiter};
    ///
    /// let limiter = RateLimiter::with_clock(Quota::per_second(1).allow_burst(3), ManualClock::new());
    /// let answers: Vec<u16> = (0..5)
    ///     .map(|_| match limiter.check() {
    ///         Ok(()) => 200,
    ///         Err(_) => 429,
    ///     })
    ///     .collect();
    /// assert_eq!(answers, [200, 200, 200, 429, 429]);
    /// ```
    #[inline]
    pub fn check(&self) -> Result<(), NotUntil<C::Instant>> {
        // Built here rather than through `check_n`'s `RateLimitError`, which
        // cost the error's match and a copy on every denial.
        self.decide(1, true, |refusal, now| match refusal {
            Refusal::Until(earliest_ns) => self.not_until(earliest_ns, now),
            Refusal::TooLarge(_) => unreachable!("a burst is at least 1 cell"),
        })
    }

    /// Admits `n` cells at once, or none.
    ///
    /// Lock-free. Agrees with `n` calls of [`check`](Self::check) made at
    /// the same instant: `check_n(n)` succeeds exactly when they all would.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::InsufficientCapacity`] if `n` exceeds the burst
    /// (retrying cannot help), [`RateLimitError::NotUntil`] otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{ManualClock, Quota, RateLimitError, RateLimiter};
    ///
    /// let limiter = RateLimiter::with_clock(Quota::per_second(10).allow_burst(10), ManualClock::new());
    /// limiter.check_n(8)?; // a batch of 8 requests
    /// assert!(matches!(limiter.check_n(3), Err(RateLimitError::NotUntil(_))));
    /// limiter.check_n(2)?;
    /// # Ok::<(), RateLimitError<limiters::ManualInstant>>(())
    /// ```
    #[inline]
    pub fn check_n(&self, n: u32) -> Result<(), RateLimitError<C::Instant>> {
        self.admit_n(n, true)
    }

    /// [`check_n`](Self::check_n); a refusal is counted in `stats` only if
    /// `count_refusal` (the waiting futures' refused check goes on to wait).
    #[inline]
    pub(crate) fn admit_n(
        &self,
        n: u32,
        count_refusal: bool,
    ) -> Result<(), RateLimitError<C::Instant>> {
        self.decide(n, count_refusal, |refusal, now| match refusal {
            Refusal::Until(earliest_ns) => self.not_until(earliest_ns, now).into(),
            Refusal::TooLarge(burst) => RateLimitError::InsufficientCapacity {
                requested: n,
                // A burst is a `u32` (see `Refusal`).
                burst: burst as u32,
            },
        })
    }

    /// Admits `n` cells now, counting the outcome in `stats` (a refusal
    /// only if `count_refusal`); a refusal becomes the caller's error
    /// through `error(refusal, now)`. Always inlined, so each front builds
    /// its own error from a decision kept in registers (the wide state's,
    /// made out of line by [`decide_wide`](Self::decide_wide), comes back
    /// in two of them).
    #[inline(always)]
    fn decide<E>(
        &self,
        n: u32,
        count_refusal: bool,
        error: impl FnOnce(Refusal, u64) -> E,
    ) -> Result<(), E> {
        let now = self.now_ns();
        // The narrow path counts its admission itself (before its CAS).
        let decision = match self.state.check_narrow(now, n) {
            Some(decision) => decision,
            None => self.decide_wide(now, n),
        };
        decision.map_err(|refusal| {
            if count_refusal {
                self.counters().deny();
            }
            error(refusal, now)
        })
    }

    /// [`decide`](Self::decide) on the wide state, counting an admission.
    #[inline(never)]
    fn decide_wide(&self, now: u64, n: u32) -> Result<(), Refusal> {
        let decision = self.state.check_wide(now, n);
        if decision.is_ok() {
            self.counters().admit();
        }
        decision
    }

    /// Waits for one cell, but not past `timeout` from now (on the
    /// limiter's clock).
    ///
    /// A wait known to end after the deadline fails at once with
    /// [`DeadlineError::WouldExceed`], taking nothing and disturbing no
    /// waiter. A zero `timeout` is [`check`](Self::check); a huge one
    /// saturates.
    ///
    /// # Fairness
    ///
    /// As [`acquire`](Self::acquire) once queued.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire); a timeout gives the cell back the same
    /// way.
    ///
    /// # Errors
    ///
    /// [`DeadlineError::WouldExceed`] at once, or [`DeadlineError::TimedOut`]
    /// if a quota change or pause pushed it past the deadline while queued.
    ///
    /// # Examples
    ///
    /// A request worth making only if it can start within 100 ms:
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{DeadlineError, ManualClock, Quota, RateLimiter};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = RateLimiter::with_clock(Quota::per_second(5), ManualClock::new());
    /// let budget = Duration::from_millis(100);
    /// assert!(limiter.acquire_within(budget).await.is_ok());
    /// let err = limiter.acquire_within(budget).await.unwrap_err();
    /// assert!(matches!(err, DeadlineError::WouldExceed { wait, .. } if wait == Duration::from_millis(200)));
    /// # });
    /// ```
    ///
    /// [`DeadlineError::WouldExceed`]: crate::error::DeadlineError::WouldExceed
    /// [`DeadlineError::TimedOut`]: crate::error::DeadlineError::TimedOut
    pub fn acquire_within(&self, timeout: Duration) -> RateAcquireWithin<'_, C> {
        self.acquire_many_within(1, timeout)
    }

    /// Waits for `n` cells, admitted together, but not past `timeout` from
    /// now (see [`acquire_within`](Self::acquire_within)).
    ///
    /// # Cancel safety
    ///
    /// As [`acquire_many`](Self::acquire_many).
    ///
    /// # Errors
    ///
    /// As [`acquire_within`](Self::acquire_within), and
    /// [`DeadlineError::InsufficientCapacity`] at once if `n` exceeds the
    /// burst.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{DeadlineError, ManualClock, Quota, RateLimiter};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = RateLimiter::with_clock(Quota::per_second(10).allow_burst(4), ManualClock::new());
    /// let second = Duration::from_secs(1);
    /// assert!(limiter.acquire_many_within(4, second).await.is_ok());
    /// assert!(matches!(
    ///     limiter.acquire_many_within(5, second).await,
    ///     Err(DeadlineError::InsufficientCapacity { requested: 5, burst: 4 })
    /// ));
    /// # });
    /// ```
    ///
    /// [`DeadlineError::WouldExceed`]: crate::error::DeadlineError::WouldExceed
    /// [`DeadlineError::TimedOut`]: crate::error::DeadlineError::TimedOut
    /// [`DeadlineError::InsufficientCapacity`]: crate::error::DeadlineError::InsufficientCapacity
    pub fn acquire_many_within(&self, n: u32, timeout: Duration) -> RateAcquireWithin<'_, C> {
        Within::new(self.acquire_many(n), timeout)
    }

    /// Cells a check could take right now: the largest `n` for which
    /// [`check_n(n)`](Self::check_n) would succeed at this instant (0 while
    /// waiters are queued or a pause is in force), computed without taking
    /// anything. At most the burst.
    ///
    /// Lock-free. Another thread may take cells between this call and
    /// yours, so use it to report (a `RateLimit` header's "remaining"), and
    /// [`check_n`](Self::check_n) to decide.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, Quota, RateLimiter};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = RateLimiter::with_clock(Quota::per_second(10).allow_burst(5), clock.clone());
    /// assert_eq!(limiter.remaining(), 5);
    /// limiter.check_n(5).unwrap();
    /// assert_eq!(limiter.remaining(), 0);
    /// clock.advance(Duration::from_millis(250)); // 2.5 cells earned back
    /// assert_eq!(limiter.remaining(), 2);
    /// ```
    pub fn remaining(&self) -> u32 {
        let now = self.now_ns();
        if now < self.state.paused_until() {
            return 0;
        }
        self.state.read(now, |k, tat, now| k.remaining(tat, now))
    }

    /// A snapshot for dashboards: cells admissible now, waiters, pauses,
    /// and the totals admitted, refused and waited since creation. Cheap: a
    /// few loads and one short lock.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{ManualClock, Quota, RateLimiter};
    ///
    /// let limiter = RateLimiter::with_clock(Quota::per_second(10).allow_burst(3), ManualClock::new());
    /// limiter.check_n(2).unwrap();
    /// assert!(limiter.check_n(2).is_err());
    /// let stats = limiter.stats();
    /// assert_eq!(stats.remaining, 1);
    /// assert_eq!((stats.totals.admitted, stats.totals.denied), (1, 1));
    /// ```
    pub fn stats(&self) -> RateStats {
        let waiters = self.state.lock().waiters.len();
        RateStats {
            remaining: self.remaining(),
            waiters,
            pauses: self.counters().pauses(),
            totals: self.counters().snapshot(),
        }
    }

    /// Time until the whole burst is available again if nothing else is
    /// taken: zero when [`remaining`](Self::remaining) is the burst. Exact
    /// to the nanosecond (rounded up); it includes queued waiters and a
    /// pause in force. This is the "reset" of a `RateLimit` header.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, Quota, RateLimiter};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = RateLimiter::with_clock(Quota::per_second(10).allow_burst(5), clock.clone());
    /// limiter.check_n(3).unwrap();
    /// assert_eq!(limiter.until_full(), Duration::from_millis(300));
    /// clock.advance(Duration::from_millis(300));
    /// assert_eq!(limiter.until_full(), Duration::ZERO);
    /// assert_eq!(limiter.remaining(), 5);
    /// ```
    pub fn until_full(&self) -> Duration {
        let now = self.now_ns();
        let ns = self
            .state
            .read(now, |k, tat, now| k.until_full_ns(tat, now));
        let pause = self.state.paused_until().saturating_sub(now);
        Duration::from_nanos(ns.max(pause))
    }

    /// Replaces the quota from now on. Waiters keep their order and are
    /// re-timed under the new quota (a waiter `k` cells from the end of the
    /// queue stays `k` cells from it); a waiter asking for more than the new
    /// burst gets [`InsufficientCapacity`]. Credit already used is carried
    /// over as a number of cells (the backlog ahead of now, re-timed at the
    /// new rate); the window bound holds for the new quota from the moment
    /// of the change.
    ///
    /// # Examples
    ///
    /// The server announced a lower limit:
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, Quota, RateLimiter};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = RateLimiter::with_clock(Quota::per_second(100), clock.clone());
    /// limiter.set_quota(Quota::per_second(1));
    /// limiter.check().unwrap();
    /// assert_eq!(limiter.check().unwrap_err().wait_time(), Duration::from_secs(1));
    /// ```
    pub fn set_quota(&self, quota: Quota) {
        self.state.change(|| self.now_ns(), Some(quota), None);
    }

    /// Admits nothing for `duration` from now: for a `Retry-After` answer.
    /// Waiters already queued are delayed too (in order, their cells
    /// starting no earlier than the end of the pause).
    ///
    /// A pause spends no credit: when it ends, the limiter admits what it
    /// would have admitted then without the pause, the credit left before
    /// it plus what the pause earned back, up to the burst. (A server's
    /// hourly budget that was not used up is still there after a one-second
    /// `Retry-After`.)
    ///
    /// Pauses only extend: a shorter pause than one in force changes
    /// nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, Quota, RateLimiter};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = RateLimiter::with_clock(Quota::per_second(10).allow_burst(10), clock.clone());
    /// limiter.check_n(4).unwrap();
    /// // The server answered 429 with "Retry-After: 30".
    /// limiter.pause_for(Duration::from_secs(30));
    /// assert_eq!(limiter.check().unwrap_err().wait_time(), Duration::from_secs(30));
    /// assert_eq!(limiter.remaining(), 0);
    /// clock.advance(Duration::from_secs(30));
    /// assert_eq!(limiter.remaining(), 10); // the whole burst: nothing was spent
    /// ```
    pub fn pause_for(&self, duration: Duration) {
        let until = self.now_ns().saturating_add(nanos(duration));
        self.counters().pause();
        self.state.change(|| self.now_ns(), None, Some(until));
    }

    /// Admits nothing before `instant` (see [`pause_for`](Self::pause_for)).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, Quota, RateLimiter};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = RateLimiter::with_clock(Quota::per_second(10), clock.clone());
    /// let retry_at = clock.now() + Duration::from_secs(5);
    /// limiter.pause_until(retry_at);
    /// assert_eq!(limiter.check().unwrap_err().earliest(), retry_at);
    /// ```
    pub fn pause_until(&self, instant: C::Instant) {
        let until = self.ns_of(instant);
        self.counters().pause();
        self.state.change(|| self.now_ns(), None, Some(until));
    }

    /// Waits for one cell.
    ///
    /// # Fairness
    ///
    /// The cell is reserved at the first poll; waiters complete in that
    /// order (see the type's docs).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes gives its cell back unless a
    /// later reservation was already timed after it.
    ///
    /// # Output
    ///
    /// `()`, not a `Result`: one cell always fits a burst (a burst is at
    /// least 1, and [`set_quota`](Self::set_quota) cannot lower it below
    /// that), and a rate limiter is never closed, so nothing can fail.
    /// [`acquire_many`](Self::acquire_many), which can ask for more than
    /// the burst, returns a `Result`.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{Quota, RateLimiter};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = RateLimiter::new(Quota::per_second(1_000).allow_burst(5));
    /// for _ in 0..10 {
    ///     limiter.acquire().await; // the last 5 are spaced 1 ms apart
    /// }
    /// # });
    /// ```
    pub fn acquire(&self) -> RateAcquire<'_, C> {
        RateAcquire::new(self.acquire_many(1))
    }

    /// Waits for `n` cells, admitted together.
    ///
    /// # Fairness
    ///
    /// As [`acquire`](Self::acquire): a later `acquire()` never overtakes an
    /// earlier `acquire_many(5)`.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] at once if `n` exceeds the burst (it could
    /// never be admitted), or later if [`set_quota`](Self::set_quota)
    /// lowers the burst below `n` while it waits.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{Quota, RateLimiter};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = RateLimiter::new(Quota::per_second(1_000).allow_burst(10));
    /// limiter.acquire_many(10).await?; // one batch call costing 10 cells
    /// assert!(limiter.acquire_many(11).await.is_err());
    /// # Ok::<(), limiters::InsufficientCapacity>(())
    /// # }).unwrap();
    /// ```
    pub fn acquire_many(&self, n: u32) -> RateAcquireMany<'_, C> {
        RateAcquireMany::new(self, n)
    }

    /// Blocks the current thread until one cell is admitted: the blocking
    /// form of [`acquire`](Self::acquire).
    ///
    /// For plain threads; never call it from async code (it would block the
    /// executor). Blocking waiters share the FIFO queue of async ones.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{Quota, RateLimiter};
    ///
    /// let limiter = RateLimiter::new(Quota::per_second(1_000).allow_burst(2));
    /// std::thread::scope(|s| {
    ///     for _ in 0..3 {
    ///         s.spawn(|| limiter.acquire_blocking()); // the third waits 1 ms
    ///     }
    /// });
    /// ```
    #[cfg(all(feature = "std", not(loom)))]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn acquire_blocking(&self) {
        crate::block::block_on(self.acquire())
    }

    /// Blocks the current thread until `n` cells are admitted together: the
    /// blocking form of [`acquire_many`](Self::acquire_many).
    ///
    /// For plain threads; never call it from async code (it would block the
    /// executor). Blocking waiters share the FIFO queue of async ones.
    ///
    /// # Errors
    ///
    /// As [`acquire_many`](Self::acquire_many).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{Quota, RateLimiter};
    ///
    /// let limiter = RateLimiter::new(Quota::per_second(1_000).allow_burst(4));
    /// limiter.acquire_many_blocking(4)?;
    /// assert!(limiter.acquire_many_blocking(5).is_err());
    /// # Ok::<(), limiters::InsufficientCapacity>(())
    /// ```
    #[cfg(all(feature = "std", not(loom)))]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn acquire_many_blocking(&self, n: u32) -> Result<(), InsufficientCapacity> {
        crate::block::block_on(self.acquire_many(n))
    }

    /// Reserves `n` cells now and says when they are admitted, without
    /// waiting: for callers that schedule work themselves.
    ///
    /// The reservation keeps its place in the queue like a waiting
    /// `acquire_many`, and is re-timed by [`set_quota`](Self::set_quota) and
    /// [`pause_for`](Self::pause_for) ([`Reservation::ready_at`] tells the
    /// current time). Dropping it keeps the cells reserved;
    /// [`Reservation::cancel`] gives them back.
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] if `n` exceeds the burst.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, Quota, RateLimiter};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = RateLimiter::with_clock(Quota::per_second(10), clock.clone());
    /// let first = limiter.reserve_many(1)?;
    /// let second = limiter.reserve_many(1)?;
    /// assert_eq!(first.delay(), Duration::ZERO);
    /// assert_eq!(second.delay(), Duration::from_millis(100));
    /// second.cancel(); // changed our mind: the slot is free again
    /// assert_eq!(limiter.reserve_many(1)?.delay(), Duration::from_millis(100));
    /// # Ok::<(), limiters::InsufficientCapacity>(())
    /// ```
    pub fn reserve_many(&self, n: u32) -> Result<Reservation<'_, C>, InsufficientCapacity> {
        let mut shared = self.state.lock();
        let reserved = self.state.reserve_locked(&mut shared, self.now_ns(), n)?;
        self.counters().admit();
        match reserved {
            Reserved::Now => Ok(Reservation::now(self)),
            Reserved::Later(waiter) => {
                let node = Box::pin(Node::new(waiter));
                // SAFETY: the node is pinned in its box, which the reservation
                // owns and unlinks (under this lock) before freeing it.
                unsafe { shared.waiters.link(&node) };
                Ok(Reservation::linked(self, waiter.ready_ns, node))
            }
        }
    }

    /// Runs `fut` once one cell is admitted.
    ///
    /// # Fairness
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before the cell is admitted gives the cell back
    /// as [`acquire`](Self::acquire) does; after that, the cell is spent.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{Quota, RateLimiter};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = RateLimiter::new(Quota::per_second(1_000).allow_burst(3));
    /// let call = |i: u32| async move { i * 2 }; // an API call
    /// let mut answers = Vec::new();
    /// for i in 0..5 {
    ///     answers.push(limiter.run(call(i)).await);
    /// }
    /// assert_eq!(answers, [0, 2, 4, 6, 8]);
    /// # });
    /// ```
    pub fn run<F: Future>(&self, fut: F) -> RateRun<'_, C, F> {
        RateRun::new(self.acquire(), fut)
    }

    // --- internals shared with the waiting futures and reservations ---

    pub(crate) fn now_ns(&self) -> u64 {
        self.clock.nanos_since(self.base)
    }

    fn ns_of(&self, instant: C::Instant) -> u64 {
        nanos(instant.saturating_duration_since(self.base))
    }

    pub(crate) fn instant_at(&self, ns: u64) -> C::Instant {
        self.base.saturating_add(Duration::from_nanos(ns))
    }

    fn not_until(&self, earliest_ns: u64, now: u64) -> NotUntil<C::Instant> {
        NotUntil::at_ns(self.base, earliest_ns, now)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Shared> {
        self.state.lock()
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.state.cold.counters
    }

    /// Reserves `n` cells now (see [`State::reserve_locked`]).
    pub(crate) fn reserve_locked(
        &self,
        shared: &mut Shared,
        n: u32,
    ) -> Result<Reserved, InsufficientCapacity> {
        self.state.reserve_locked(shared, self.now_ns(), n)
    }

    /// Whether a linked waiter is done (see [`State::settle`]).
    pub(crate) fn settle(
        &self,
        shared: &Shared,
        waiter: &Waiter,
    ) -> Option<Result<(), InsufficientCapacity>> {
        self.state.settle(shared, self.now_ns(), waiter)
    }

    /// Gives back a cancelled waiter's cells (see [`State::refund`]).
    pub(crate) fn refund(&self, shared: &Shared, waiter: &Waiter) {
        self.state.refund(shared, self.now_ns(), waiter);
    }
}
