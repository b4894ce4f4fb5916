//! [`RateLimiter`]: an exact, lock-free GCRA with FIFO-fair waiting.
//!
//! # Implementation details
//!
//! GCRA (the generic cell rate algorithm) keeps one number, `tat`, the
//! *theoretical arrival time*: the instant at which the limiter would be
//! back to "no credit used" if nothing else arrived. With a quota of `cells`
//! per `period` and a burst of `b`:
//!
//! - `t`, the emission interval, is `period / cells` nanoseconds: the
//!   steady-state gap between two cells;
//! - `tau`, the burst tolerance, is `b * t` nanoseconds: how far ahead of
//!   `now` `tat` may run;
//! - a request for `n` cells at `now` moves `tat` to `max(tat, now) + n * t`
//!   and is admitted if that is at most `now + tau`. Otherwise it is denied,
//!   and would be admitted at `max(tat, now) + n * t - tau`.
//!
//! Everything is exact integer arithmetic. `t` is rarely a whole number of
//! nanoseconds, so time is counted in *ticks* of `1 / cells` ns: then `t` is
//! exactly `period` ticks and `tau` exactly `b * period` ticks, and no
//! rounding ever changes the long-run rate. Products are taken in `u128`
//! (at most 2^64 ns × 2^32 cells = 2^96 ticks) and saturate.
//!
//! The state is one 128-bit word updated by a CAS loop: `tat` as whole ns
//! since the limiter's creation (`u64`), the remainder in ticks (`u32`,
//! below `cells`), and the *generation* of the quota it is measured in
//! (`u32`). The quota of generation `g` is published, before any state word
//! of generation `g` exists, in `quotas[g % 2]`; a check reads the state,
//! reads the quota of its generation and CASes. If a quota change raced it,
//! the generation in the word differs, the CAS fails and the check retries
//! under the new quota. `quotas[g % 2]` is rewritten only for generation
//! `g + 2`, after the state has moved to `g + 1`, so a check whose CAS
//! succeeds computed with the right quota; a denial, which writes nothing,
//! re-reads the state word instead and retries if it changed.
//!
//! The hot path of a check works on the state word's (ns, remainder) pair
//! directly: 64-bit additions, one 64-bit division and two 64×64-bit
//! products, with the `u128` tick arithmetic only as the fallback where a
//! pair would overflow. Both are checked against each other (unit
//! proptest) and against a `u128` model of the whole limiter
//! (`tests/rate_proptest.rs`, the fuzz target).
//!
//! Waiting: `acquire` *reserves* its cells when first polled (it moves `tat`
//! even though it is not admitted yet) and sleeps once, until `tat - tau`
//! of its reservation. Reservations are ordered by `tat`, so later waiters
//! never overtake earlier ones and `check` never barges past them. A waiter
//! is a node in an intrusive list under a mutex (no allocation). Quota
//! changes and pauses happen under that mutex: they rewrite the state word
//! (new generation) and re-time every waiter in the list, keeping their
//! order: a waiter `k` cells before the end of the queue stays `k` cells
//! before it, under the new `t`. Cancelling a reservation gives its cells
//! back only if it is still the last one (`tat` is still its `tat`) and its
//! time has not come; otherwise later reservations were timed after it.

use core::fmt;
use core::time::Duration;

use crate::clock::{nanos, Clock, ClockInstant};
use crate::error::{InsufficientCapacity, NotUntil, RateLimitError};
use crate::rate::quota::Quota;
use crate::sync::{AtomicU128, Mutex, MutexGuard, Ordering};
use crate::wait_list::{List, WakeBatch};

#[cfg(feature = "async-io")]
use crate::clock::SystemClock;

/// A quota in ticks (`1 / cells` ns): `t` and `tau` are whole numbers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticks {
    /// Emission interval in ticks (= the quota's period in ns).
    pub(crate) t: u128,
    /// Ticks per nanosecond (= the quota's cells).
    pub(crate) cells: u128,
    /// Burst tolerance in ticks (`burst * t`).
    pub(crate) tau: u128,
    pub(crate) burst: u32,
}

impl Ticks {
    pub(crate) fn of(quota: Quota) -> Ticks {
        let t = quota.period_ns() as u128;
        Ticks {
            t,
            cells: quota.cells() as u128,
            tau: quota.burst() as u128 * t,
            burst: quota.burst(),
        }
    }

    /// The tick count of `ns`.
    pub(crate) fn at(&self, ns: u64) -> u128 {
        ns as u128 * self.cells
    }

    /// The first whole nanosecond at or after `ticks`, saturating.
    pub(crate) fn ns_ceil(&self, ticks: u128) -> u64 {
        u64::try_from(ticks.div_ceil(self.cells)).unwrap_or(u64::MAX)
    }

    /// The largest `tat` the state word can hold (2^64 - 1 ns, 584 years).
    pub(crate) fn max_tat(&self) -> u128 {
        u64::MAX as u128 * self.cells + (self.cells - 1)
    }

    /// `n` cells' worth of ticks.
    pub(crate) fn cells_ticks(&self, n: u32) -> u128 {
        n as u128 * self.t
    }

    /// The largest `n` for which a request at `now` conforms with `tat` as
    /// it stands ([`Step::new`] then [`Step::conforms`]): the credit left,
    /// `tau - (max(tat, now) - now)`, in whole cells, and no more than
    /// fits the state word.
    pub(crate) fn remaining(&self, tat: u128, now: u64) -> u32 {
        let now = self.at(now);
        let base = tat.max(now);
        let room = self
            .tau
            .saturating_sub(base - now)
            .min(self.max_tat().saturating_sub(base));
        // At most `tau / t`, the burst: fits a `u32`.
        (room / self.t) as u32
    }

    /// Nanoseconds from `now` until `tat` is in the past, that is until the
    /// whole burst conforms again.
    pub(crate) fn until_full_ns(&self, tat: u128, now: u64) -> u64 {
        self.ns_ceil(tat).saturating_sub(now)
    }
}

/// What a request for `n` cells at `now` would do to `tat`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Step {
    /// `tat` after the request (not yet clamped to [`Ticks::max_tat`]).
    pub(crate) tat: u128,
    /// The first instant, in ticks, at which the request conforms.
    pub(crate) earliest: u128,
}

impl Step {
    pub(crate) fn new(tat: u128, now: u64, n: u32, k: &Ticks) -> Step {
        let new_tat = tat.max(k.at(now)) + k.cells_ticks(n);
        Step {
            tat: new_tat,
            earliest: new_tat.saturating_sub(k.tau),
        }
    }

    /// A reservation: like [`Step::new`] made at the (whole ns) instant it
    /// is admitted. If that instant rounds up past `max(tat, now)`, the
    /// cells are placed from it, as a check made then would place them, so
    /// every admitted slot starts no earlier than its admission (which is
    /// what the window bound rests on).
    pub(crate) fn reserve(tat: u128, now: u64, n: u32, k: &Ticks) -> Step {
        let step = Step::new(tat, now, n, k);
        let ready = k.at(step.earliest_ns(k));
        let start = tat.max(k.at(now)).max(ready);
        Step {
            tat: start + k.cells_ticks(n),
            earliest: step.earliest,
        }
    }

    /// Admitted now, and representable.
    pub(crate) fn conforms(&self, now: u64, k: &Ticks) -> bool {
        self.earliest <= k.at(now) && self.tat <= k.max_tat()
    }

    /// The first whole ns at which it conforms (saturated if `tat` would not
    /// fit the state word: then it is "in 584 years").
    pub(crate) fn earliest_ns(&self, k: &Ticks) -> u64 {
        if self.tat > k.max_tat() {
            u64::MAX
        } else {
            k.ns_ceil(self.earliest)
        }
    }
}

fn pack_state(tat: u128, k: &Ticks, gen: u32) -> u128 {
    let tat = tat.min(k.max_tat());
    let ns = (tat / k.cells) as u64;
    let rem = (tat % k.cells) as u32;
    ns as u128 | (rem as u128) << 64 | (gen as u128) << 96
}

/// What a request for `n` cells at `now` does to the state word `word`
/// under `quota` (the quota of the word's generation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Admission {
    /// Admitted: the word to CAS in.
    Admit(u128),
    /// Denied: the first whole ns at which it would conform.
    Deny(u64),
}

impl Admission {
    /// The decision of [`Step::new`], on the state word directly: `tat` as
    /// its (whole ns, remainder ticks) pair, so an admission costs a few
    /// 64-bit operations and one 64-bit division instead of converting to
    /// ticks and back through the 128-bit division routine (about a third
    /// of a check's instructions before). Falls back to [`Step`] where a
    /// pair would overflow (`n * period` beyond `u64`, `tat` near the
    /// state word's 584-year limit).
    #[inline]
    fn of(word: u128, now: u64, n: u32, quota: Quota) -> Admission {
        Self::in_pairs(word, now, n, quota).unwrap_or_else(|| Self::in_ticks(word, now, n, quota))
    }

    #[inline]
    fn in_pairs(word: u128, now: u64, n: u32, quota: Quota) -> Option<Admission> {
        let cells = u64::from(quota.cells());
        let period = quota.period_ns();
        let (ns, rem) = (word as u64, u64::from((word >> 64) as u32));
        // max(tat, now): a pair with more whole ns is later, as `rem < cells`.
        let (base_ns, base_rem) = if ns >= now { (ns, rem) } else { (now, 0) };
        // n * t = n * period ticks = (whole ns, remainder) of n * period / cells.
        let ticks = u64::from(n).checked_mul(period)?;
        let (add_ns, add_rem) = (ticks / cells, ticks % cells);
        let mut tat_rem = base_rem + add_rem;
        let mut tat_ns = base_ns.checked_add(add_ns)?;
        if tat_rem >= cells {
            tat_rem -= cells;
            tat_ns = tat_ns.checked_add(1)?;
        }
        // Conforms iff tat - tau <= now, i.e. (tat - now) in ticks <= tau.
        let ahead = u128::from(tat_ns - now) * u128::from(cells) + u128::from(tat_rem);
        let tau = u128::from(quota.burst()) * u128::from(period);
        Some(if ahead <= tau {
            Admission::Admit(
                u128::from(tat_ns) | u128::from(tat_rem) << 64 | u128::from(state_gen(word)) << 96,
            )
        } else {
            Admission::Deny(now.saturating_add(Self::wait_ns(ahead - tau, cells)))
        })
    }

    /// `over` ticks past the burst, in whole ns rounded up: a 64-bit
    /// division unless the debt is beyond 2^64 ticks. Out of line, so the
    /// admitting path keeps its registers and layout.
    #[cold]
    #[inline(never)]
    fn wait_ns(over: u128, cells: u64) -> u64 {
        match u64::try_from(over) {
            Ok(over) => over.div_ceil(cells),
            Err(_) => u64::try_from(over.div_ceil(u128::from(cells))).unwrap_or(u64::MAX),
        }
    }

    /// The general form, in `u128` ticks, saturating.
    #[cold]
    fn in_ticks(word: u128, now: u64, n: u32, quota: Quota) -> Admission {
        let k = Ticks::of(quota);
        let step = Step::new(state_tat(word, &k), now, n, &k);
        if step.conforms(now, &k) {
            Admission::Admit(pack_state(step.tat, &k, state_gen(word)))
        } else {
            Admission::Deny(step.earliest_ns(&k))
        }
    }
}

fn state_gen(word: u128) -> u32 {
    (word >> 96) as u32
}

fn state_tat(word: u128, k: &Ticks) -> u128 {
    (word as u64) as u128 * k.cells + ((word >> 64) as u32) as u128
}

/// A waiting reservation, as the limiter sees it: lives in a list node inside
/// the waiting future (or the boxed [`Reservation`](crate::Reservation)).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Waiter {
    /// Generation `tat` is measured in (always the current one while
    /// linked: changes re-time every linked waiter).
    pub(crate) gen: u32,
    /// `tat` right after this reservation, in ticks of `gen`'s quota.
    pub(crate) tat: u128,
    /// Cells reserved.
    pub(crate) n: u32,
    /// Nanoseconds (since the limiter's creation) at which it is admitted.
    pub(crate) ready_ns: u64,
    pub(crate) status: Status,
    /// A change re-timed it and its future must be woken.
    pub(crate) notify: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Waiting for `ready_ns`.
    Waiting,
    /// Its time came before a change; it is admitted.
    Granted,
    /// A quota change made the burst smaller than `n`.
    TooLarge { burst: u32 },
}

pub(crate) struct Shared {
    pub(crate) quota: Quota,
    pub(crate) paused_until_ns: u64,
    pub(crate) waiters: List<Waiter>,
}

/// How a reservation came out.
pub(crate) enum Reserved {
    /// Admitted at once.
    Now,
    /// Admitted at `ready_ns`; the waiter to link.
    Later(Waiter),
}

macro_rules! rate_limiter {
    ($($default:ty)?) => {
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
        /// saturate 584 years out: a reservation that far ahead is denied,
        /// never wrapped.
        ///
        /// The bound is on *admissions*: a `check` is admitted when it is
        /// made, an `acquire` at the start of the slot it reserved. The
        /// future returns when the clock's timer has woken its task, which
        /// is later by the timer's and the executor's lateness (on
        /// `SystemClock` in a 2-core VM: about 90 µs on average, 0.2 ms at
        /// the 99th percentile, a few ms when a thread is descheduled;
        /// `BENCHMARKS.md` has the figures). Lateness never
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
        pub struct RateLimiter<C: Clock $(= $default)?> {
            clock: C,
            base: C::Instant,
            /// `tat` ns | remainder ticks << 64 | generation << 96.
            state: AtomicU128,
            /// The quota of generation `g`, packed, in `quotas[g % 2]`.
            quotas: [AtomicU128; 2],
            shared: Mutex<Shared>,
        }
    };
}

#[cfg(feature = "async-io")]
rate_limiter!(SystemClock);
#[cfg(not(feature = "async-io"))]
rate_limiter!();

impl<C: Clock> fmt::Debug for RateLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = self.shared.lock();
        f.debug_struct("RateLimiter")
            .field("quota", &shared.quota)
            .field("waiters", &shared.waiters.len())
            .finish()
    }
}

#[cfg(feature = "async-io")]
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
        let base = clock.now();
        Self {
            clock,
            base,
            state: AtomicU128::new(pack_state(0, &Ticks::of(quota), 0)),
            quotas: [AtomicU128::new(quota.pack()), AtomicU128::new(quota.pack())],
            shared: Mutex::new(Shared {
                quota,
                paused_until_ns: 0,
                waiters: List::new(),
            }),
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
        self.shared.lock().quota
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
    pub fn check(&self) -> Result<(), NotUntil<C::Instant>> {
        match self.check_n(1) {
            Ok(()) => Ok(()),
            Err(RateLimitError::NotUntil(not_until)) => Err(not_until),
            Err(RateLimitError::InsufficientCapacity { .. }) => {
                unreachable!("a burst is at least 1 cell")
            }
        }
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
    pub fn check_n(&self, n: u32) -> Result<(), RateLimitError<C::Instant>> {
        let now = self.now_ns();
        let mut word = self.state.load(Ordering::Acquire);
        loop {
            let quota = self.quota_of(word);
            if n > quota.burst() {
                return Err(RateLimitError::InsufficientCapacity {
                    requested: n,
                    burst: quota.burst(),
                });
            }
            let new = match Admission::of(word, now, n, quota) {
                Admission::Admit(new) => new,
                Admission::Deny(earliest_ns) => {
                    // A denial writes nothing, so no CAS tells whether
                    // `quota` was still the word's: two quota changes
                    // between our two loads could have reused its slot.
                    // The word unchanged says they did not (the
                    // generation only grows; the Acquire load above
                    // orders this one after it).
                    let now_word = self.state.load(Ordering::Acquire);
                    if now_word != word {
                        word = now_word;
                        continue;
                    }
                    return Err(self.not_until(earliest_ns, now).into());
                }
            };
            // AcqRel: Release publishes this admission to the next CAS (so
            // a quota writer that reads our word knows about it); Acquire
            // pairs with the Release of the writer that installed this
            // generation, so `quotas[gen % 2]` read above was its quota.
            match self
                .state
                .compare_exchange(word, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(()),
                Err(actual) => word = actual,
            }
        }
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
        self.read(|k, tat, now| k.remaining(tat, now))
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
        Duration::from_nanos(self.read(|k, tat, now| k.until_full_ns(tat, now)))
    }

    /// `f(quota, tat, now)` on one consistent reading of the state word.
    fn read<R>(&self, f: impl Fn(&Ticks, u128, u64) -> R) -> R {
        let now = self.now_ns();
        let mut word = self.state.load(Ordering::Acquire);
        loop {
            let k = self.ticks_of(word);
            let out = f(&k, state_tat(word, &k), now);
            // As in a denied `check_n`: the word unchanged says the quota
            // read was its generation's (Acquire orders this load after
            // the quota's).
            let now_word = self.state.load(Ordering::Acquire);
            if now_word == word {
                return out;
            }
            word = now_word;
        }
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
        self.change(Some(quota), None);
    }

    /// Admits nothing for `duration` from now: for a `Retry-After` answer.
    /// Waiters already queued are delayed too (in order); at the end of the
    /// pause cells resume at the steady rate, with no burst credit.
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
    /// // The server answered 429 with "Retry-After: 30".
    /// limiter.pause_for(Duration::from_secs(30));
    /// assert_eq!(limiter.check().unwrap_err().wait_time(), Duration::from_secs(30));
    /// clock.advance(Duration::from_secs(30));
    /// assert!(limiter.check().is_ok());
    /// ```
    pub fn pause_for(&self, duration: Duration) {
        let until = self.now_ns().saturating_add(nanos(duration));
        self.change(None, Some(until));
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
        self.change(None, Some(until));
    }

    // --- internals shared with the waiting futures and reservations ---

    pub(crate) fn now_ns(&self) -> u64 {
        self.ns_of(self.clock.now())
    }

    fn ns_of(&self, instant: C::Instant) -> u64 {
        nanos(instant.saturating_duration_since(self.base))
    }

    pub(crate) fn instant_at(&self, ns: u64) -> C::Instant {
        self.base.saturating_add(Duration::from_nanos(ns))
    }

    fn not_until(&self, earliest_ns: u64, now: u64) -> NotUntil<C::Instant> {
        NotUntil::new(
            self.instant_at(earliest_ns),
            Duration::from_nanos(earliest_ns.saturating_sub(now)),
        )
    }

    fn ticks_of(&self, word: u128) -> Ticks {
        Ticks::of(self.quota_of(word))
    }

    fn quota_of(&self, word: u128) -> Quota {
        // Acquire: pairs with the Release store of the writer that published
        // this generation's quota (see `change`).
        Quota::unpack(self.quotas[(state_gen(word) % 2) as usize].load(Ordering::Acquire))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock()
    }

    /// Reserves `n` cells (`n` at most the burst) under the shared lock, so
    /// no quota change can slip between the reservation and linking the
    /// waiter. Checks still race with it through the CAS.
    pub(crate) fn reserve_locked(
        &self,
        _shared: &mut Shared,
        n: u32,
    ) -> Result<Reserved, InsufficientCapacity> {
        let now = self.now_ns();
        let mut word = self.state.load(Ordering::Acquire);
        loop {
            let k = self.ticks_of(word);
            if n > k.burst {
                return Err(InsufficientCapacity {
                    requested: n,
                    burst: k.burst,
                });
            }
            let step = Step::reserve(state_tat(word, &k), now, n, &k);
            let gen = state_gen(word);
            let new = pack_state(step.tat, &k, gen);
            // AcqRel: as in `check_n`.
            match self
                .state
                .compare_exchange(word, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {}
                Err(actual) => {
                    word = actual;
                    continue;
                }
            }
            let ready_ns = step.earliest_ns(&k);
            if ready_ns <= now {
                return Ok(Reserved::Now);
            }
            return Ok(Reserved::Later(Waiter {
                gen,
                tat: step.tat.min(k.max_tat()),
                n,
                ready_ns,
                status: Status::Waiting,
                notify: false,
            }));
        }
    }

    /// Whether a linked waiter is done: `Some(Ok)` admitted, `Some(Err)` its
    /// request no longer fits the burst (its cells were given back where
    /// possible), `None` still waiting for `waiter.ready_ns`.
    pub(crate) fn settle(
        &self,
        shared: &Shared,
        waiter: &Waiter,
    ) -> Option<Result<(), InsufficientCapacity>> {
        match waiter.status {
            Status::Granted => Some(Ok(())),
            Status::TooLarge { burst } => {
                self.refund(shared, waiter);
                Some(Err(InsufficientCapacity {
                    requested: waiter.n,
                    burst,
                }))
            }
            Status::Waiting if waiter.ready_ns <= self.now_ns() => Some(Ok(())),
            Status::Waiting => None,
        }
    }

    /// Gives back a cancelled waiter's cells if no later reservation was
    /// timed after them (it is still the last: `tat` is its `tat`) and its
    /// time has not come. Called under the shared lock, so `waiter.gen` is
    /// the current generation.
    /// A pause in force is kept: `tat` never drops below its floor.
    pub(crate) fn refund(&self, shared: &Shared, waiter: &Waiter) {
        let now = self.now_ns();
        if waiter.status == Status::Granted || waiter.ready_ns <= now {
            return;
        }
        let mut word = self.state.load(Ordering::Acquire);
        loop {
            if state_gen(word) != waiter.gen {
                return;
            }
            let k = self.ticks_of(word);
            let tat = state_tat(word, &k);
            // A saturated `tat` (584 years out) lost count: refund nothing.
            if tat != waiter.tat || tat >= k.max_tat() {
                return;
            }
            let mut refunded = tat.saturating_sub(k.cells_ticks(waiter.n));
            if shared.paused_until_ns > now {
                refunded = refunded.max(k.at(shared.paused_until_ns) + k.tau - k.t);
            }
            let new = pack_state(refunded, &k, waiter.gen);
            // AcqRel: as in `check_n`; a check that loses this race retries
            // and sees the refunded credit.
            match self
                .state
                .compare_exchange(word, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(actual) => word = actual,
            }
        }
    }

    /// A quota change and/or a pause: a new generation, every waiter re-timed.
    fn change(&self, quota: Option<Quota>, pause_until_ns: Option<u64>) {
        let mut shared = self.shared.lock();
        // Read under the lock: a waiter that completed before we took it did
        // so at or before `now`, and is not ours to re-time.
        let now = self.now_ns();
        let old = Ticks::of(shared.quota);
        let new_quota = quota.unwrap_or(shared.quota);
        let new = Ticks::of(new_quota);
        let pause = shared.paused_until_ns.max(pause_until_ns.unwrap_or(0));
        shared.quota = new_quota;
        shared.paused_until_ns = pause;

        // Only writers (holding this lock) change the generation.
        let mut word = self.state.load(Ordering::Acquire);
        let gen = state_gen(word);
        let next = gen.wrapping_add(1);
        // Release: published before any state word of generation `next`
        // exists; pairs with the Acquire load in `ticks_of`.
        self.quotas[(next % 2) as usize].store(new_quota.pack(), Ordering::Release);
        // The head of the queue: the earliest waiter still waiting. Waiters'
        // `tat`s are fixed while we hold the lock.
        let mut head = None::<u128>;
        shared.waiters.retain(|entry| {
            let w = &entry.value;
            if w.status == Status::Waiting && w.ready_ns > now {
                head = Some(head.map_or(w.tat, |h| h.min(w.tat)));
            }
            true
        });
        let retime = loop {
            let retime = Retime::new(state_tat(word, &old), now, old, new, pause, head);
            let new_word = pack_state(retime.tat, &new, next);
            // AcqRel: Acquire sees every admission made so far (we re-time
            // on top of them); Release publishes the new generation.
            match self
                .state
                .compare_exchange(word, new_word, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break retime,
                Err(actual) => word = actual,
            }
        };
        // In queue order (the list is in reservation order, which is `tat`
        // order): re-time each waiter, pushing it and everyone behind it to
        // a whole-ns slot start where rounding requires it.
        let mut any = false;
        let mut extra = 0u128;
        shared.waiters.retain(|entry| {
            let waiter = &mut entry.value;
            extra += retime.waiter(waiter, now, next, extra);
            waiter.notify = true;
            any = true;
            true
        });
        if extra > 0 {
            let mut word = self.state.load(Ordering::Acquire);
            loop {
                let tat = state_tat(word, &new).saturating_add(extra);
                // AcqRel: as above.
                match self.state.compare_exchange(
                    word,
                    pack_state(tat, &new, next),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => break,
                    Err(actual) => word = actual,
                }
            }
        }
        drop(shared);
        if any {
            self.wake_notified();
        }
    }

    /// Wakes the waiters a change marked, a batch at a time, outside the
    /// lock.
    fn wake_notified(&self) {
        let mut batch = WakeBatch::new();
        loop {
            let mut more = false;
            self.shared.lock().waiters.retain(|entry| {
                if entry.value.notify {
                    if batch.is_full() {
                        more = true;
                    } else {
                        entry.value.notify = false;
                        if let Some(waker) = entry.waker.take() {
                            batch.push(waker);
                        }
                    }
                }
                true
            });
            batch.wake_all();
            if !more {
                return;
            }
        }
    }
}

/// One quota change / pause, applied to the state and to each waiter.
#[derive(Debug)]
struct Retime {
    old: Ticks,
    new: Ticks,
    /// `tat` before the change (old ticks).
    old_tat: u128,
    /// `tat` after rescaling, before the pause shift (new ticks).
    scaled_tat: u128,
    /// Ticks added to every slot still queued, for a pause.
    shift: u128,
    /// `tat` after the change (new ticks).
    tat: u128,
}

impl Retime {
    fn new(
        old_tat: u128,
        now: u64,
        old: Ticks,
        new: Ticks,
        pause_ns: u64,
        head: Option<u128>,
    ) -> Retime {
        let old_now = old.at(now);
        // Credit used beyond `now` keeps its size in cells (the backlog is
        // rescaled from `now`); an idle limiter just keeps its `tat`,
        // rounded up to a whole ns (quota-independent).
        let scaled_tat = if old_tat > old_now {
            let backlog = old_tat - old_now;
            let whole = backlog / old.t;
            let part = backlog % old.t;
            new.at(now)
                .saturating_add(whole.saturating_mul(new.t))
                .saturating_add((part * new.t).div_ceil(old.t))
        } else {
            old_tat.div_ceil(old.cells).saturating_mul(new.cells)
        };
        let mut shift = 0;
        let mut tat = scaled_tat;
        if pause_ns > now {
            // Delay the waiters (keeping every gap) just enough that the
            // first one still waiting is admitted at the end of the pause,
            // even if a larger burst would have admitted it at once...
            if let Some(head) = head {
                let behind = old_tat.saturating_sub(head) / old.t;
                let head = scaled_tat.saturating_sub(behind.saturating_mul(new.t));
                shift = (new.at(pause_ns) + new.tau).saturating_sub(head);
                tat = tat.saturating_add(shift);
            }
            // ...and admit no newcomer before it: then the steady rate, with
            // no burst credit.
            tat = tat.max(new.at(pause_ns) + new.tau - new.t);
        }
        Retime {
            old,
            new,
            old_tat,
            scaled_tat,
            shift,
            tat,
        }
    }

    /// Re-times one waiter; `extra` is what the waiters ahead of it were
    /// pushed back by. Returns how much more this one was pushed back.
    fn waiter(&self, waiter: &mut Waiter, now: u64, gen: u32, extra: u128) -> u128 {
        waiter.gen = gen;
        if waiter.status != Status::Waiting {
            return 0;
        }
        if waiter.ready_ns <= now {
            waiter.status = Status::Granted;
            return 0;
        }
        if waiter.ready_ns == u64::MAX {
            // Saturated (584 years out): it lost count of the cells ahead of
            // it, so the rescale cannot place it. It stays denied, as it was,
            // and its `tat` stays saturated so that it never refunds (later
            // reservations may be timed before it).
            waiter.tat = self.new.max_tat();
            if waiter.n > self.new.burst {
                waiter.status = Status::TooLarge {
                    burst: self.new.burst,
                };
            }
            return 0;
        }
        // While it waits, no gap opens behind it: it is a whole number of
        // cells from the end of the queue.
        let behind = self.old_tat.saturating_sub(waiter.tat) / self.old.t;
        let scaled = self
            .scaled_tat
            .saturating_sub(behind.saturating_mul(self.new.t));
        let end = self.tat.saturating_sub(behind.saturating_mul(self.new.t));
        if waiter.n > self.new.burst {
            waiter.status = Status::TooLarge {
                burst: self.new.burst,
            };
            waiter.tat = end.saturating_add(extra);
            return 0;
        }
        let granted = self.new.at(now) + self.new.tau;
        if scaled.saturating_add(self.shift) <= granted {
            // A larger burst admits it right away (never during a pause:
            // then `shift` puts it at the pause's end or later).
            waiter.status = Status::Granted;
            waiter.tat = scaled;
            waiter.ready_ns = now;
            return 0;
        }
        let tat = scaled
            .saturating_add(self.shift)
            .saturating_add(extra)
            .min(self.new.max_tat());
        if tat >= self.new.max_tat() {
            waiter.tat = tat;
            waiter.ready_ns = u64::MAX;
            return 0;
        }
        let ready_ns = self.new.ns_ceil(tat - self.new.tau);
        let start = tat - self.new.cells_ticks(waiter.n);
        let push = self.new.at(ready_ns).saturating_sub(start);
        waiter.tat = tat.saturating_add(push).min(self.new.max_tat());
        waiter.ready_ns = ready_ns;
        push
    }
}

#[cfg(test)]
mod tests {
    use super::{Admission, Quota};
    use core::time::Duration;
    use proptest::prelude::*;

    /// Nanosecond values around `0..10^12` mostly, anywhere sometimes.
    fn ns() -> impl Strategy<Value = u64> {
        prop_oneof![
            0..1_000_000_000_000u64,
            any::<u64>(),
            u64::MAX - 1_000_000..=u64::MAX
        ]
    }

    #[test]
    fn pairs_take_everyday_quotas() {
        let quota = Quota::per_second(3).allow_burst(2);
        // tat = 1 s + 1/3 s: 1,333,333,333 ns and 1 tick of 1/3 ns.
        let word = 1_333_333_333 | 1 << 64;
        assert_eq!(
            Admission::in_pairs(word, 1_000_000_000, 1, quota),
            Some(Admission::Admit(1_666_666_666 | 2 << 64))
        );
        // A third cell at once would conform at 1 s + 1/3 s (rounded up).
        assert_eq!(
            Admission::in_pairs(1_666_666_666 | 2 << 64, 1_000_000_000, 1, quota),
            Some(Admission::Deny(1_333_333_334))
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// The pair arithmetic of the hot path decides exactly as the
        /// general `u128` one, wherever it does not hand over to it.
        #[test]
        fn pairs_agree_with_ticks(
            cells in prop_oneof![1..=1_000u32, any::<u32>().prop_map(|c| c.max(1))],
            period in prop_oneof![1..=10_000_000_000u64, 1..=u64::MAX],
            burst in prop_oneof![1..=10u32, any::<u32>().prop_map(|b| b.max(1))],
            tat_ns in ns(),
            rem in any::<u32>(),
            gen in any::<u32>(),
            offset in -10_000_000_000i64..=10_000_000_000,
            n in prop_oneof![1..=3u32, any::<u32>().prop_map(|n| n.max(1))],
        ) {
            let quota = Quota::new(cells, Duration::from_nanos(period)).unwrap().allow_burst(burst);
            let word = u128::from(tat_ns) | u128::from(rem % cells) << 64 | u128::from(gen) << 96;
            let now = tat_ns.saturating_add_signed(offset);
            if let Some(fast) = Admission::in_pairs(word, now, n, quota) {
                prop_assert_eq!(fast, Admission::in_ticks(word, now, n, quota));
            }
        }
    }
}
