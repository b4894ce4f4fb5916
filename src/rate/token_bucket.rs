//! [`TokenBucket`]: discrete refill, the same check/acquire/run surface as
//! [`RateLimiter`](crate::RateLimiter).
//!
//! # Implementation details
//!
//! A bucket holding at most `max` tokens, starting with `initial`, gaining
//! `refill` at every multiple of `interval` since its creation. Instead of a
//! token count, which would need the time of the last refill alongside it,
//! the state is one number, `taken`: the position on the *supply axis* up to
//! which tokens have been handed out. By boundary `k` (`k = now / interval`)
//! the bucket has been supplied `supply(k) = initial + refill * k` tokens.
//! Tokens not taken pile up, but never beyond `max`, so `taken` is first
//! raised to `supply(k) - max` (tokens lost to the full bucket); then `n`
//! tokens are admitted if `taken + n <= supply(k)`. A waiter reserves by
//! moving `taken` anyway and sleeps until the first boundary whose supply
//! covers it, so waiters are served in order. This is GCRA with time counted
//! in whole intervals and credit in tokens.
//!
//! `taken` starts in an 8-byte word and stays there while it is below
//! 2^62, which a bucket's admissions reach only once its supply has: after
//! 2^62 tokens (12 days for `u32::MAX` tokens a millisecond, 146 years for
//! a billion a second). A check on that word is one load, a few 64-bit
//! operations and one 8-byte CAS. Every value the narrow word holds means
//! the same thing, so a CAS that finds the value it read is right whatever
//! happened in between.
//!
//! `k` is not divided out of the clock on every check: the bucket keeps
//! the boundary a check last found (`boundary`, written only when a check
//! finds that a new one has come, and only for intervals of a microsecond
//! or more), and a check takes it if `k * interval <= now < (k + 1) *
//! interval`. Any boundary that passes that test is the right one,
//! whichever thread wrote it and whenever, so the cache needs no ordering.
//! While it holds, the supply is computed from a load instead of from the
//! clock's reading, and a check's result waits on one comparison after the
//! clock is read. Otherwise `k` comes from a multiplication by the
//! interval's reciprocal, not a division (see
//! [`Divisor`](crate::rate::reciprocal::Divisor)). A denial writes nothing;
//! its boundary is the next one when the next refill covers it, else
//! `ceil(short / refill)` boundaries on, through the refill's reciprocal.
//!
//! The first check at a boundary whose supply reaches 2^62, or the first
//! reservation that would push `taken` there, moves the bucket to a 16-byte
//! word for good: under a small mutex that serialises movers, the wide word
//! is written from the narrow one, then the narrow word is swapped for
//! [`MOVED`] by a CAS from the value converted (if a check moved it
//! meanwhile, the move is redone). [`MOVED`] is never a narrow value and
//! never leaves the word, so an operation that read a narrow value before
//! the move fails its CAS and retries on the wide word; one that reads
//! [`MOVED`] (Acquire) sees the wide word written before it (Release). Both
//! words decide with the same arithmetic (`u64` on the narrow word's hot
//! path, `u128` elsewhere); the reference-model proptest runs across the
//! move, and a loom model races the movers.

use core::fmt;
use core::future::Future;
use core::num::{NonZeroU32, NonZeroU64};
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use crate::clock::{Clock, ClockInstant};
use crate::deadline::{sealed::Sealed, try_check, Attempt, Within};
use crate::error::{
    DeadlineError, InsufficientCapacity, NotUntil, RateLimitError, TokenBucketError,
};
use crate::rate::reciprocal::Divisor;
use crate::rate::reserved::{Reserve, ReservedWait};
use crate::stats::{Ahead, Counters, RateStats};
use crate::sync::{AtomicU128, AtomicU64, Mutex, Ordering};

#[cfg(feature = "async-io")]
use crate::clock::SystemClock;

/// Settings for a [`TokenBucket`], from [`TokenBucket::builder`].
///
/// Defaults: `max` 1, `initial` equal to `max` (a full bucket), `refill` 1,
/// `interval` one second.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use limiters::TokenBucket;
///
/// // 10 requests per second in one lump, unused ones kept up to 50.
/// let bucket = TokenBucket::builder()
///     .max(50)
///     .initial(10)
///     .refill(10)
///     .interval(Duration::from_secs(1))
///     .build()?;
/// assert_eq!(bucket.available(), 10);
/// # Ok::<(), limiters::TokenBucketError>(())
/// ```
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct TokenBucketBuilder {
    max: u32,
    initial: Option<u32>,
    refill: u32,
    interval: Duration,
}

impl Default for TokenBucketBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl TokenBucketBuilder {
    /// Default settings (also [`TokenBucket::builder`]); the way to start a
    /// bucket on a clock other than [`SystemClock`](crate::SystemClock).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{ManualClock, TokenBucketBuilder};
    ///
    /// let bucket = TokenBucketBuilder::new().max(3).build_with_clock(ManualClock::new())?;
    /// assert_eq!(bucket.max(), 3);
    /// # Ok::<(), limiters::TokenBucketError>(())
    /// ```
    pub const fn new() -> Self {
        TokenBucketBuilder {
            max: 1,
            initial: None,
            refill: 1,
            interval: Duration::from_secs(1),
        }
    }

    /// The bucket's capacity: most tokens ever available at once.
    ///
    /// # Examples
    ///
    /// ```
    /// let bucket = limiters::TokenBucket::builder().max(3).build()?;
    /// assert_eq!(bucket.available(), 3);
    /// # Ok::<(), limiters::TokenBucketError>(())
    /// ```
    pub fn max(self, max: u32) -> Self {
        Self { max, ..self }
    }

    /// Tokens in the bucket at creation (default: `max`).
    ///
    /// # Examples
    ///
    /// ```
    /// let bucket = limiters::TokenBucket::builder().max(3).initial(0).build()?;
    /// assert_eq!(bucket.available(), 0);
    /// # Ok::<(), limiters::TokenBucketError>(())
    /// ```
    pub fn initial(self, initial: u32) -> Self {
        Self {
            initial: Some(initial),
            ..self
        }
    }

    /// Tokens added at the end of every interval.
    ///
    /// # Examples
    ///
    /// ```
    /// let bucket = limiters::TokenBucket::builder().max(10).refill(5).build()?;
    /// assert_eq!(bucket.refill(), 5);
    /// # Ok::<(), limiters::TokenBucketError>(())
    /// ```
    pub fn refill(self, refill: u32) -> Self {
        Self { refill, ..self }
    }

    /// Time between refills.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    ///
    /// let bucket = limiters::TokenBucket::builder().interval(Duration::from_millis(100)).build()?;
    /// assert_eq!(bucket.interval(), Duration::from_millis(100));
    /// # Ok::<(), limiters::TokenBucketError>(())
    /// ```
    pub fn interval(self, interval: Duration) -> Self {
        Self { interval, ..self }
    }

    /// A bucket on the real clock.
    ///
    /// # Errors
    ///
    /// A [`TokenBucketError`] naming the setting that cannot work: zero
    /// `max`, `refill` or `interval`, `refill` or `initial` above `max`, or
    /// an interval beyond 2^64 - 1 ns.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{TokenBucket, TokenBucketError};
    ///
    /// assert_eq!(TokenBucket::builder().max(0).build().unwrap_err(), TokenBucketError::ZeroMax);
    /// ```
    #[cfg(feature = "async-io")]
    #[cfg_attr(docsrs, doc(cfg(feature = "async-io")))]
    pub fn build(self) -> Result<TokenBucket<SystemClock>, TokenBucketError> {
        self.build_with_clock(SystemClock)
    }

    /// A bucket on `clock`.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{ManualClock, TokenBucket};
    ///
    /// let bucket = TokenBucket::builder().max(2).build_with_clock(ManualClock::new())?;
    /// assert!(bucket.check_n(2).is_ok());
    /// # Ok::<(), limiters::TokenBucketError>(())
    /// ```
    pub fn build_with_clock<C: Clock>(self, clock: C) -> Result<TokenBucket<C>, TokenBucketError> {
        let initial = self.initial.unwrap_or(self.max);
        let Some(max) = NonZeroU32::new(self.max) else {
            return Err(TokenBucketError::ZeroMax);
        };
        let Some(refill) = NonZeroU64::new(u64::from(self.refill)) else {
            return Err(TokenBucketError::ZeroRefill);
        };
        let interval_ns = self.interval.as_nanos();
        if interval_ns == 0 {
            return Err(TokenBucketError::ZeroInterval);
        }
        // Not zero (above).
        let interval_ns = u64::try_from(interval_ns)
            .ok()
            .and_then(NonZeroU64::new)
            .ok_or(TokenBucketError::IntervalTooLong)?;
        if self.refill > self.max {
            return Err(TokenBucketError::RefillExceedsMax {
                refill: self.refill,
                max: self.max,
            });
        }
        if initial > self.max {
            return Err(TokenBucketError::InitialExceedsMax {
                initial,
                max: self.max,
            });
        }
        let base = clock.origin();
        Ok(TokenBucket {
            clock,
            base,
            max,
            initial,
            refill: Divisor::new(refill),
            interval: Divisor::new(interval_ns),
            narrow_k_max: (NARROW_MAX - 1 - u64::from(initial)) / refill,
            boundary: AtomicU64::new(0),
            caches_boundary: interval_ns.get() >= CACHE_MIN_INTERVAL_NS,
            taken: Taken::new(),
            counters: Counters::new(),
        })
    }
}

crate::clock::with_default! {
    /// A token bucket with discrete refill: up to `max` tokens, `refill`
    /// more at the end of every `interval`.
    ///
    /// Choose it over [`RateLimiter`](crate::RateLimiter) when the limit
    /// is stated as refills ("10 per full second, carry up to 50 over")
    /// or when work should start in lumps on interval boundaries; choose
    /// the GCRA limiter for "N per period" spread evenly. In any window
    /// covering `k` refill boundaries it admits at most `max + k *
    /// refill` tokens.
    ///
    /// # Fairness
    ///
    /// Waiters reserve their tokens at their first poll and complete in
    /// that order; [`check`](Self::check) never takes tokens a waiter
    /// reserved. Each waiter sleeps once.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, TokenBucket};
    ///
    /// let clock = ManualClock::new();
    /// let bucket = TokenBucket::builder()
    ///     .max(4)
    ///     .initial(2)
    ///     .refill(2)
    ///     .interval(Duration::from_secs(1))
    ///     .build_with_clock(clock.clone())?;
    /// assert!(bucket.check_n(2).is_ok());
    /// assert_eq!(bucket.check().unwrap_err().wait_time(), Duration::from_secs(1));
    /// clock.advance(Duration::from_secs(10)); // refills stop at max
    /// assert_eq!(bucket.available(), 4);
    /// # Ok::<(), limiters::TokenBucketError>(())
    /// ```
    pub struct TokenBucket<C: Clock = SystemClock> {
        clock: C,
        base: C::Instant,
        /// Never 0, so `check` never asks whether 1 exceeds it.
        max: NonZeroU32,
        initial: u32,
        refill: Divisor,
        /// The interval in ns.
        interval: Divisor,
        /// The last boundary whose supply the narrow word's `u64`
        /// arithmetic takes (below 2^62).
        narrow_k_max: u64,
        /// A boundary a check found current (at most `narrow_k_max`).
        boundary: AtomicU64,
        /// Whether checks write `boundary` (intervals of a microsecond or
        /// more: shorter ones would write it on most checks).
        caches_boundary: bool,
        /// Tokens handed out, as a position on the supply axis.
        taken: Taken,
        counters: Counters,
    }
}

impl<C: Clock> fmt::Debug for TokenBucket<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBucket")
            .field("available", &self.available())
            .field("max", &self.max())
            .field("refill", &self.refill())
            .field("interval", &self.interval())
            .finish()
    }
}

/// Narrow `taken` values stay below this (2^62), so adding a request's
/// `u32` never overflows and never reaches [`MOVED`].
const NARROW_MAX: u64 = 1 << 62;

/// Checks cache the current boundary for intervals of at least this (ns).
const CACHE_MIN_INTERVAL_NS: u64 = 1_000;

/// The narrow word's value once the bucket has moved to the wide word.
const MOVED: u64 = u64::MAX;

/// The `taken` word: 8 bytes until it moves to 16 (see the module docs).
#[derive(Debug)]
struct Taken {
    /// `taken` while below [`NARROW_MAX`]; [`MOVED`] after the move.
    narrow: AtomicU64,
    /// `taken` after the move; unused before.
    wide: AtomicU128,
    /// Held by the thread moving the word.
    movers: Mutex<()>,
}

/// One reading of `taken`: its value and the word it came from.
#[derive(Clone, Copy, Debug)]
struct Seen {
    taken: u128,
    narrow: bool,
}

impl Taken {
    fn new() -> Taken {
        Taken {
            narrow: AtomicU64::new(0),
            wide: AtomicU128::new(0),
            movers: Mutex::new(()),
        }
    }

    /// The current `taken` (Acquire: after every take before this read).
    fn load(&self) -> Seen {
        match self.narrow.load(Ordering::Acquire) {
            // Acquire above: the wide word written before `MOVED`.
            MOVED => Seen {
                taken: self.wide.load(Ordering::Acquire),
                narrow: false,
            },
            taken => Seen {
                taken: u128::from(taken),
                narrow: true,
            },
        }
    }

    /// Replaces `seen` by `new`, or returns a fresh reading if `taken`
    /// changed. A narrow word that cannot hold `new` moves first (and the
    /// fresh reading is the wide word's).
    fn replace(&self, seen: Seen, new: u128) -> Result<(), Seen> {
        // AcqRel: orders this take after every earlier one (Acquire) and
        // before every later one (Release).
        if !seen.narrow {
            return self
                .wide
                .compare_exchange(seen.taken, new, Ordering::AcqRel, Ordering::Acquire)
                .map(drop)
                .map_err(|taken| Seen {
                    taken,
                    narrow: false,
                });
        }
        if new >= u128::from(NARROW_MAX) {
            self.widen();
            return Err(self.load());
        }
        // `seen.taken` was read from the narrow word: both fit.
        match self.narrow.compare_exchange(
            seen.taken as u64,
            new as u64,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Ok(()),
            Err(_) => Err(self.load()),
        }
    }

    /// Moves `taken` to the wide word for good (see the module docs); a
    /// no-op once moved.
    #[cold]
    #[inline(never)]
    fn widen(&self) {
        let _movers = self.movers.lock();
        let mut taken = self.narrow.load(Ordering::Acquire);
        while taken != MOVED {
            // Nothing else writes the wide word before `MOVED` is in the
            // narrow one, and other movers wait for the lock.
            self.wide.store(u128::from(taken), Ordering::Relaxed);
            // AcqRel: Release publishes the wide word to every reader of
            // `MOVED`; Acquire sees every take made before.
            match self
                .narrow
                .compare_exchange(taken, MOVED, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(actual) => taken = actual,
            }
        }
    }
}

/// A refused [`TokenBucket::check_n`]: when the tokens are available and
/// when it was decided (ns since creation). A refusal is never covered
/// before boundary 1, so `at_ns` is never 0, and `Result<(), Refused>` fits
/// two registers.
/// A take's moment on the narrow word: `n` tokens at `now`, the current
/// refill boundary having come at `start` with `supply` tokens supplied,
/// `floor` of them beyond the bucket's reach.
#[derive(Clone, Copy)]
struct Narrow {
    now: u64,
    start: u64,
    supply: u64,
    floor: u64,
    n: u32,
}

/// What the narrow word says of a take.
enum Step {
    /// The word moved to the wide state: decide there.
    Moved,
    Refused(Refused),
    /// Take by a CAS to this `taken`.
    Take(u64),
}

#[derive(Clone, Copy, Debug)]
struct Refused {
    at_ns: NonZeroU64,
    now: u64,
}

impl Refused {
    #[inline(always)]
    fn new(at_ns: u64, now: u64) -> Refused {
        Refused {
            // Never 0 (see above).
            at_ns: NonZeroU64::new(at_ns).unwrap_or(NonZeroU64::MAX),
            now,
        }
    }
}

/// What taking `n` tokens at boundary `k` does.
#[derive(Clone, Copy, Debug)]
struct Take {
    taken: u128,
    /// The boundary it is taken at.
    k: u128,
}

#[cfg(feature = "async-io")]
#[cfg_attr(docsrs, doc(cfg(feature = "async-io")))]
impl TokenBucket<SystemClock> {
    /// Settings for a new bucket (see [`TokenBucketBuilder`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::TokenBucket;
    ///
    /// let bucket = TokenBucket::builder().max(5).refill(5).interval(Duration::from_secs(1)).build()?;
    /// assert!(bucket.check_n(5).is_ok());
    /// # Ok::<(), limiters::TokenBucketError>(())
    /// ```
    pub fn builder() -> TokenBucketBuilder {
        TokenBucketBuilder::new()
    }
}

impl<C: Clock> TokenBucket<C> {
    fn supply(&self, k: u128) -> u128 {
        u128::from(self.initial) + u128::from(self.refill.get()) * k
    }

    fn now_ns(&self) -> u64 {
        self.clock.nanos_since(self.base)
    }

    /// The last boundary at or before `now_ns`.
    #[inline(always)]
    fn boundary(&self, now_ns: u64) -> u64 {
        self.interval.div(now_ns)
    }

    /// When boundary `k` comes, in ns since creation (saturating).
    #[inline(always)]
    fn ns_of_boundary(&self, k: u128) -> u64 {
        u64::try_from(k.saturating_mul(u128::from(self.interval.get()))).unwrap_or(u64::MAX)
    }

    fn instant_at(&self, ns: u64) -> C::Instant {
        self.base.saturating_add(Duration::from_nanos(ns))
    }

    fn take(&self, taken: u128, k: u128, n: u32) -> Take {
        let floor = self.supply(k).saturating_sub(u128::from(self.max.get()));
        Take {
            taken: taken.max(floor) + n as u128,
            k,
        }
    }

    /// Whether the supply at the take's boundary covers it (its
    /// [`ready_k`](Self::ready_k) is that boundary), without dividing.
    fn covered(&self, take: Take) -> bool {
        take.taken <= self.supply(take.k)
    }

    /// The first boundary, at or after the take's, whose supply covers it.
    fn ready_k(&self, take: Take) -> u128 {
        let owed = take.taken.saturating_sub(u128::from(self.initial));
        // Without dividing where it fits (always on the 8-byte word).
        let k = match u64::try_from(owed) {
            Ok(owed) => u128::from(self.refill.div_ceil(owed)),
            Err(_) => owed.div_ceil(u128::from(self.refill.get())),
        };
        k.max(take.k)
    }

    fn capacity_error(&self, n: u32) -> Option<InsufficientCapacity> {
        (n > self.max.get()).then_some(InsufficientCapacity {
            requested: n,
            burst: self.max.get(),
        })
    }

    /// Tokens that could be taken now.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{ManualClock, TokenBucket};
    ///
    /// let bucket = TokenBucket::builder().max(3).build_with_clock(ManualClock::new())?;
    /// bucket.check().unwrap();
    /// assert_eq!(bucket.available(), 2);
    /// # Ok::<(), limiters::TokenBucketError>(())
    /// ```
    pub fn available(&self) -> u32 {
        self.remaining()
    }

    /// Tokens a check could take right now: the largest `n` for which
    /// [`check_n(n)`](Self::check_n) would succeed at this instant (0 while
    /// waiters hold reservations), computed without taking anything. The
    /// same as [`available`](Self::available), under the name
    /// [`RateLimiter::remaining`](crate::RateLimiter::remaining) has.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, TokenBucket};
    ///
    /// let clock = ManualClock::new();
    /// let bucket = TokenBucket::builder()
    ///     .max(4)
    ///     .refill(2)
    ///     .interval(Duration::from_secs(1))
    ///     .build_with_clock(clock.clone())?;
    /// bucket.check_n(4).unwrap();
    /// assert_eq!(bucket.remaining(), 0);
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(bucket.remaining(), 2);
    /// # Ok::<(), limiters::TokenBucketError>(())
    /// ```
    pub fn remaining(&self) -> u32 {
        let k = u128::from(self.boundary(self.now_ns()));
        let floor = self.supply(k).saturating_sub(u128::from(self.max.get()));
        let taken = self.taken.load().taken.max(floor);
        // At most `max`: `taken` is at least `supply - max`.
        self.supply(k).saturating_sub(taken) as u32
    }

    /// A snapshot for dashboards: tokens available now and the totals
    /// admitted, refused and waited since creation (a bucket keeps no
    /// waiter list and has no pauses: those are zero). Cheap: a few loads.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{ManualClock, TokenBucket};
    ///
    /// let bucket = TokenBucket::builder().max(3).build_with_clock(ManualClock::new()).unwrap();
    /// bucket.check_n(3).unwrap();
    /// assert!(bucket.check().is_err());
    /// let stats = bucket.stats();
    /// assert_eq!((stats.remaining, stats.totals.admitted, stats.totals.denied), (0, 1, 1));
    /// ```
    pub fn stats(&self) -> RateStats {
        RateStats {
            remaining: self.remaining(),
            waiters: 0,
            pauses: 0,
            totals: self.counters.snapshot(),
        }
    }

    /// Time until the bucket is full again (holds `max` tokens) if nothing
    /// else is taken: zero when it is full. Refills land on interval
    /// boundaries, so this is the time to the first boundary whose refill
    /// fills it, exact to the nanosecond.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, TokenBucket};
    ///
    /// let clock = ManualClock::new();
    /// let bucket = TokenBucket::builder()
    ///     .max(4)
    ///     .refill(2)
    ///     .interval(Duration::from_secs(1))
    ///     .build_with_clock(clock.clone())?;
    /// bucket.check_n(3).unwrap();
    /// clock.advance(Duration::from_millis(400));
    /// assert_eq!(bucket.until_full(), Duration::from_millis(1_600)); // two refills
    /// # Ok::<(), limiters::TokenBucketError>(())
    /// ```
    pub fn until_full(&self) -> Duration {
        let now = self.now_ns();
        let taken = self.taken.load().taken;
        // Full at the first boundary `k` with `supply(k) >= taken + max`.
        let full_k = (taken + u128::from(self.max.get()))
            .saturating_sub(u128::from(self.initial))
            .div_ceil(u128::from(self.refill.get()));
        Duration::from_nanos(self.ns_of_boundary(full_k).saturating_sub(now))
    }

    /// The bucket's capacity.
    ///
    /// # Examples
    ///
    /// ```
    /// let bucket = limiters::TokenBucket::builder().max(8).build()?;
    /// assert_eq!(bucket.max(), 8);
    /// # Ok::<(), limiters::TokenBucketError>(())
    /// ```
    pub fn max(&self) -> u32 {
        self.max.get()
    }

    /// Tokens added per interval.
    ///
    /// # Examples
    ///
    /// ```
    /// let bucket = limiters::TokenBucket::builder().max(8).refill(2).build()?;
    /// assert_eq!(bucket.refill(), 2);
    /// # Ok::<(), limiters::TokenBucketError>(())
    /// ```
    pub fn refill(&self) -> u32 {
        // Made from a `u32`.
        self.refill.get() as u32
    }

    /// Time between refills.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    ///
    /// let bucket = limiters::TokenBucket::builder().build()?;
    /// assert_eq!(bucket.interval(), Duration::from_secs(1));
    /// # Ok::<(), limiters::TokenBucketError>(())
    /// ```
    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval.get())
    }

    /// Takes one token now, or says when one is available.
    ///
    /// # Errors
    ///
    /// [`NotUntil`] with the first refill that would admit it.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{ManualClock, TokenBucket};
    ///
    /// let bucket = TokenBucket::builder().max(1).build_with_clock(ManualClock::new())?;
    /// assert!(bucket.check().is_ok());
    /// assert!(bucket.check().is_err());
    /// # Ok::<(), limiters::TokenBucketError>(())
    /// ```
    #[inline]
    pub fn check(&self) -> Result<(), NotUntil<C::Instant>> {
        // One token is never more than `max` (at least 1): a refusal is
        // always a `NotUntil`, built here in place.
        self.take_now(1, true)
            .map_err(|r| NotUntil::at_ns(self.base, r.at_ns.get(), r.now))
    }

    /// Takes `n` tokens now, or none. Lock-free.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::InsufficientCapacity`] if `n > max`,
    /// [`RateLimitError::NotUntil`] otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{ManualClock, RateLimitError, TokenBucket};
    ///
    /// let bucket = TokenBucket::builder().max(5).build_with_clock(ManualClock::new())?;
    /// assert!(bucket.check_n(4).is_ok());
    /// assert!(matches!(bucket.check_n(2), Err(RateLimitError::NotUntil(_))));
    /// assert!(matches!(bucket.check_n(6), Err(RateLimitError::InsufficientCapacity { .. })));
    /// # Ok::<(), limiters::TokenBucketError>(())
    /// ```
    #[inline]
    pub fn check_n(&self, n: u32) -> Result<(), RateLimitError<C::Instant>> {
        self.admit_n(n, true)
    }

    /// [`check_n`](Self::check_n); a refusal is counted in `stats` only if
    /// `count_refusal` (`acquire_within`'s refused check may go on to wait).
    #[inline]
    fn admit_n(&self, n: u32, count_refusal: bool) -> Result<(), RateLimitError<C::Instant>> {
        self.take_now(n, count_refusal)
            .map_err(|r| match self.capacity_error(n) {
                Some(e) => e.into(),
                None => NotUntil::at_ns(self.base, r.at_ns.get(), r.now).into(),
            })
    }

    /// Takes `n` tokens now, or says when the boundary that covers them
    /// comes (for `n > max`, a boundary that never does); a refusal is
    /// counted if `count_refusal`.
    #[inline(always)]
    fn take_now(&self, n: u32, count_refusal: bool) -> Result<(), Refused> {
        let now = self.now_ns();
        // The boundary an earlier check saw (see the module docs): while it
        // is current, `k` and the supply need nothing from the clock.
        let interval = self.interval.get();
        let mut k = self.boundary.load(Ordering::Relaxed);
        // Boundary `k` came at `start` ns. (Wrapping: a cached boundary
        // never lies after `now` on a monotonic clock, and one that did
        // would fail the test below.)
        let mut start = k.wrapping_mul(interval);
        if now.wrapping_sub(start) >= interval {
            let since_k;
            (k, since_k) = self.interval.div_rem(now);
            if k > self.narrow_k_max {
                return self.take_now_wide(now, n, count_refusal);
            }
            start = now - since_k;
            if self.caches_boundary {
                self.boundary.store(k, Ordering::Relaxed);
            }
        }
        // Below 2^62 (`k <= narrow_k_max`: the cache holds no other).
        let supply = u64::from(self.initial) + self.refill.get() * k;
        let floor = supply.saturating_sub(u64::from(self.max.get()));
        let at = Narrow {
            now,
            start,
            supply,
            floor,
            n,
        };
        let taken = self.taken.narrow.load(Ordering::Acquire);
        match self.narrow_step(taken, at) {
            Step::Moved => self.take_now_wide(now, n, count_refusal),
            Step::Refused(refused) => Err(self.refused(refused, count_refusal)),
            Step::Take(new) => {
                // Counted just before the CAS that makes it, so the count's
                // store leaves with the CAS's locked write (the next check's
                // CAS would wait for it).
                let counted = self.counters.admit_ahead();
                // AcqRel: orders this take after every earlier one
                // (Acquire) and before every later one (Release). `new <=
                // supply < 2^62`.
                match self.taken.narrow.compare_exchange(
                    taken,
                    new,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        counted.keep();
                        Ok(())
                    }
                    Err(actual) => self.retry_narrow(counted, actual, at, count_refusal),
                }
            }
        }
    }

    /// [`take_now`](Self::take_now) after its CAS lost to `taken`, with its
    /// admission `counted` ahead (leaving without `keep` takes it back).
    #[cold]
    #[inline(never)]
    fn retry_narrow(
        &self,
        counted: Ahead<'_>,
        mut taken: u64,
        at: Narrow,
        count_refusal: bool,
    ) -> Result<(), Refused> {
        loop {
            let new = match self.narrow_step(taken, at) {
                Step::Moved => {
                    drop(counted);
                    return self.take_now_wide(at.now, at.n, count_refusal);
                }
                Step::Refused(refused) => {
                    drop(counted);
                    return Err(self.refused(refused, count_refusal));
                }
                Step::Take(new) => new,
            };
            // AcqRel: as in `take_now`.
            match self.taken.narrow.compare_exchange_weak(
                taken,
                new,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    counted.keep();
                    return Ok(());
                }
                Err(actual) => taken = actual,
            }
        }
    }

    /// What the narrow word `taken` says of `at.n` tokens at `at`.
    #[inline(always)]
    fn narrow_step(&self, taken: u64, at: Narrow) -> Step {
        if taken == MOVED {
            return Step::Moved;
        }
        let n = u64::from(at.n);
        // No overflow: `taken < 2^62`.
        let new = taken.max(at.floor) + n;
        // `new <= supply` without waiting for `new`: for `n <= max`,
        // `floor + n <= supply` whenever `taken + n` is; for `n > max`
        // never (`new >= floor + n > supply`).
        if taken + n > at.supply || at.n > self.max.get() {
            // The next refill covers the shortfall (a check's usual case),
            // or the one `ceil(short / refill)` boundaries on.
            let short = new - at.supply;
            let wait_ns = if short <= self.refill.get() {
                self.interval.get_nonzero()
            } else {
                let wait_k = self.refill.div_ceil(short);
                NonZeroU64::new(wait_k.saturating_mul(self.interval.get()))
                    .unwrap_or(NonZeroU64::MAX)
            };
            return Step::Refused(Refused {
                at_ns: wait_ns.saturating_add(at.start),
                now: at.now,
            });
        }
        Step::Take(new)
    }

    /// `refused`, counted in `stats` if `count_refusal`.
    #[inline(always)]
    fn refused(&self, refused: Refused, count_refusal: bool) -> Refused {
        if count_refusal {
            self.counters.deny();
        }
        refused
    }

    /// [`take_now`](Self::take_now) on the wide word, moving there first.
    #[cold]
    #[inline(never)]
    fn take_now_wide(&self, now: u64, n: u32, count_refusal: bool) -> Result<(), Refused> {
        self.taken.widen();
        let k = u128::from(self.boundary(now));
        let mut seen = self.taken.load();
        loop {
            let take = self.take(seen.taken, k, n);
            if !self.covered(take) {
                if count_refusal {
                    self.counters.deny();
                }
                return Err(Refused::new(self.ns_of_boundary(self.ready_k(take)), now));
            }
            match self.taken.replace(seen, take.taken) {
                Ok(()) => {
                    self.counters.admit();
                    return Ok(());
                }
                Err(fresh) => seen = fresh,
            }
        }
    }

    /// Reserves `n` tokens; returns the position after them and when they are
    /// available (ns since creation).
    fn reserve(&self, n: u32) -> Result<(u128, u64), InsufficientCapacity> {
        if let Some(e) = self.capacity_error(n) {
            return Err(e);
        }
        let k = u128::from(self.boundary(self.now_ns()));
        let mut seen = self.taken.load();
        loop {
            let take = self.take(seen.taken, k, n);
            match self.taken.replace(seen, take.taken) {
                Ok(()) => return Ok((take.taken, self.ns_of_boundary(self.ready_k(take)))),
                Err(fresh) => seen = fresh,
            }
        }
    }

    /// Gives `n` tokens back if nothing was taken after them and their time
    /// has not come.
    fn refund(&self, end: u128, n: u32, ready_ns: u64) {
        if ready_ns <= self.now_ns() {
            return;
        }
        // Gives up (refunding nothing) once anyone took tokens after us; a
        // move of the word alone retries on the wide one.
        let mut seen = self.taken.load();
        while seen.taken == end {
            match self.taken.replace(seen, end - u128::from(n)) {
                Ok(()) => return,
                Err(fresh) => seen = fresh,
            }
        }
    }

    /// Waits for one token.
    ///
    /// # Fairness
    ///
    /// Reserved at the first poll; waiters complete in that order.
    ///
    /// # Cancel safety
    ///
    /// Dropping it before it completes gives the token back unless tokens
    /// were taken after it.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::TokenBucket;
    ///
    /// # futures_lite::future::block_on(async {
    /// let bucket = TokenBucket::builder().max(2).interval(Duration::from_millis(1)).build().unwrap();
    /// for _ in 0..4 {
    ///     bucket.acquire().await;
    /// }
    /// # });
    /// ```
    pub fn acquire(&self) -> BucketAcquire<'_, C> {
        BucketAcquire {
            inner: self.acquire_many(1),
        }
    }

    /// Waits for `n` tokens, taken together.
    ///
    /// # Fairness
    ///
    /// As [`acquire`](Self::acquire); a later small request never overtakes
    /// an earlier large one.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] at once if `n > max`.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::TokenBucket;
    ///
    /// # futures_lite::future::block_on(async {
    /// let bucket = TokenBucket::builder().max(4).build().unwrap();
    /// bucket.acquire_many(4).await?;
    /// assert!(bucket.acquire_many(5).await.is_err());
    /// # Ok::<(), limiters::InsufficientCapacity>(())
    /// # }).unwrap();
    /// ```
    pub fn acquire_many(&self, n: u32) -> BucketAcquireMany<'_, C> {
        BucketAcquireMany {
            inner: ReservedWait::new(self, n),
        }
    }

    /// Blocks the current thread until one token is taken: the blocking
    /// form of [`acquire`](Self::acquire).
    ///
    /// For plain threads; never call it from async code (it would block the
    /// executor). Blocking waiters share the FIFO queue of async ones.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::TokenBucket;
    ///
    /// let bucket = TokenBucket::builder().max(2).interval(Duration::from_millis(1)).build()?;
    /// for _ in 0..3 {
    ///     bucket.acquire_blocking(); // the third waits for the next refill
    /// }
    /// # Ok::<(), limiters::TokenBucketError>(())
    /// ```
    #[cfg(all(feature = "std", not(loom)))]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn acquire_blocking(&self) {
        crate::block::block_on(self.acquire())
    }

    /// Blocks the current thread until `n` tokens are taken together: the
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
    /// use limiters::TokenBucket;
    ///
    /// let bucket = TokenBucket::builder().max(4).build()?;
    /// assert!(bucket.acquire_many_blocking(4).is_ok());
    /// assert!(bucket.acquire_many_blocking(5).is_err());
    /// # Ok::<(), limiters::TokenBucketError>(())
    /// ```
    #[cfg(all(feature = "std", not(loom)))]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn acquire_many_blocking(&self, n: u32) -> Result<(), InsufficientCapacity> {
        crate::block::block_on(self.acquire_many(n))
    }

    /// Waits for one token, but not past `timeout` from now on the bucket's
    /// clock. A wait known to end after the deadline fails at once with
    /// [`DeadlineError::WouldExceed`], taking nothing; a zero `timeout` is
    /// [`check`](Self::check); a huge one saturates.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Errors
    ///
    /// [`DeadlineError::WouldExceed`] at once. (A token bucket's refills
    /// never move, so a request queued in time is served in time.)
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{DeadlineError, ManualClock, TokenBucket};
    ///
    /// # futures_lite::future::block_on(async {
    /// let bucket = TokenBucket::builder().max(1).build_with_clock(ManualClock::new()).unwrap();
    /// assert!(bucket.acquire_within(Duration::ZERO).await.is_ok());
    /// // The next refill is a second away.
    /// let err = bucket.acquire_within(Duration::from_millis(10)).await.unwrap_err();
    /// assert!(matches!(err, DeadlineError::WouldExceed { wait, .. } if wait == Duration::from_secs(1)));
    /// # });
    /// ```
    pub fn acquire_within(&self, timeout: Duration) -> BucketAcquireWithin<'_, C> {
        self.acquire_many_within(1, timeout)
    }

    /// Waits for `n` tokens, taken together, but not past `timeout` from
    /// now (see [`acquire_within`](Self::acquire_within)).
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Errors
    ///
    /// As [`acquire_within`](Self::acquire_within), and
    /// [`DeadlineError::InsufficientCapacity`] at once if `n > max`.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, TokenBucket};
    ///
    /// # futures_lite::future::block_on(async {
    /// let bucket = TokenBucket::builder().max(4).build_with_clock(ManualClock::new()).unwrap();
    /// assert!(bucket.acquire_many_within(4, Duration::from_secs(1)).await.is_ok());
    /// assert!(bucket.acquire_many_within(5, Duration::from_secs(1)).await.is_err());
    /// # });
    /// ```
    pub fn acquire_many_within(&self, n: u32, timeout: Duration) -> BucketAcquireWithin<'_, C> {
        Within::new(self.acquire_many(n), timeout)
    }

    /// Reserves `n` tokens now and says when they are available, without
    /// waiting. Dropping the reservation keeps the tokens taken;
    /// [`BucketReservation::cancel`] gives them back.
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] if `n > max`.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, TokenBucket};
    ///
    /// let bucket = TokenBucket::builder().max(1).build_with_clock(ManualClock::new()).unwrap();
    /// assert_eq!(bucket.reserve_many(1)?.delay(), Duration::ZERO);
    /// assert_eq!(bucket.reserve_many(1)?.delay(), Duration::from_secs(1));
    /// # Ok::<(), limiters::InsufficientCapacity>(())
    /// ```
    pub fn reserve_many(&self, n: u32) -> Result<BucketReservation<'_, C>, InsufficientCapacity> {
        let (end, ready_ns) = self.reserve(n)?;
        self.counters.admit();
        Ok(BucketReservation {
            bucket: self,
            end,
            n,
            ready_ns,
        })
    }

    /// Runs `fut` once one token is taken.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire) until the token is taken.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::TokenBucket;
    ///
    /// # futures_lite::future::block_on(async {
    /// let bucket = TokenBucket::builder().max(3).build().unwrap();
    /// assert_eq!(bucket.run(async { 42 }).await, 42);
    /// # });
    /// ```
    pub fn run<F: Future>(&self, fut: F) -> BucketRun<'_, C, F> {
        BucketRun::new(self.acquire(), fut)
    }
}

/// Tokens reserved by [`TokenBucket::reserve_many`].
///
/// # Examples
///
/// ```
/// use limiters::{ManualClock, TokenBucket};
///
/// let clock = ManualClock::new();
/// let bucket = TokenBucket::builder().max(2).build_with_clock(clock.clone()).unwrap();
/// let r = bucket.reserve_many(2)?;
/// assert_eq!(r.ready_at(), clock.now());
/// # Ok::<(), limiters::InsufficientCapacity>(())
/// ```
#[must_use = "the tokens stay spent when a BucketReservation is dropped: wait until ready_at() before acting, or cancel() it"]
pub struct BucketReservation<'a, C: Clock> {
    bucket: &'a TokenBucket<C>,
    end: u128,
    n: u32,
    ready_ns: u64,
}

impl<C: Clock> fmt::Debug for BucketReservation<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BucketReservation")
            .field("n", &self.n)
            .field("ready_at", &self.ready_at())
            .finish()
    }
}

impl<C: Clock> BucketReservation<'_, C> {
    /// When the tokens are available.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, TokenBucket};
    ///
    /// let clock = ManualClock::new();
    /// let bucket = TokenBucket::builder().max(1).initial(0).build_with_clock(clock.clone()).unwrap();
    /// assert_eq!(bucket.reserve_many(1)?.ready_at(), clock.now() + Duration::from_secs(1));
    /// # Ok::<(), limiters::InsufficientCapacity>(())
    /// ```
    pub fn ready_at(&self) -> C::Instant {
        self.bucket.instant_at(self.ready_ns)
    }

    /// How long from now until [`ready_at`](Self::ready_at).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, TokenBucket};
    ///
    /// let bucket = TokenBucket::builder().max(1).initial(0).build_with_clock(ManualClock::new()).unwrap();
    /// assert_eq!(bucket.reserve_many(1)?.delay(), Duration::from_secs(1));
    /// # Ok::<(), limiters::InsufficientCapacity>(())
    /// ```
    pub fn delay(&self) -> Duration {
        Duration::from_nanos(self.ready_ns.saturating_sub(self.bucket.now_ns()))
    }

    /// Gives the tokens back if nothing was taken after them and their time
    /// has not come.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{ManualClock, TokenBucket};
    ///
    /// let bucket = TokenBucket::builder().max(1).initial(0).build_with_clock(ManualClock::new()).unwrap();
    /// bucket.reserve_many(1)?.cancel();
    /// assert_eq!(bucket.reserve_many(1)?.delay(), core::time::Duration::from_secs(1));
    /// # Ok::<(), limiters::InsufficientCapacity>(())
    /// ```
    pub fn cancel(self) {
        self.bucket.refund(self.end, self.n, self.ready_ns);
    }
}

pin_project_lite::pin_project! {
    /// Future returned by [`TokenBucket::acquire_many`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping it before it completes gives its tokens back
    /// unless tokens were taken after it (then they stay spent, so later
    /// waiters keep their turns).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::futures::BucketAcquireMany;
    /// use limiters::{SystemClock, TokenBucket};
    ///
    /// # futures_lite::future::block_on(async {
    /// let bucket = TokenBucket::builder().max(2).build().unwrap();
    /// let two: BucketAcquireMany<'_, SystemClock> = bucket.acquire_many(2);
    /// two.await.unwrap();
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct BucketAcquireMany<'a, C: Clock> {
        #[pin]
        inner: ReservedWait<&'a TokenBucket<C>>,
    }
}

impl<C: Clock> fmt::Debug for BucketAcquireMany<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BucketAcquireMany")
            .field("n", &self.inner.n)
            .finish_non_exhaustive()
    }
}

impl<C: Clock> Future for BucketAcquireMany<'_, C> {
    type Output = Result<(), InsufficientCapacity>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}

impl<C: Clock> Reserve for &TokenBucket<C> {
    type Clock = C;
    type Mark = u128;

    fn reserve(&self, n: u32) -> Result<(u128, u64), InsufficientCapacity> {
        TokenBucket::reserve(self, n)
    }

    fn refund(&self, n: u32, end: u128, ready_ns: u64) {
        TokenBucket::refund(self, end, n, ready_ns);
    }

    fn now_ns(&self) -> u64 {
        TokenBucket::now_ns(self)
    }

    fn sleep_until_ns(&self, ns: u64) -> C::Sleep {
        self.clock.sleep_until(self.instant_at(ns))
    }

    fn counters(&self) -> &Counters {
        &self.counters
    }
}

pin_project_lite::pin_project! {
    /// Future returned by [`TokenBucket::acquire`].
    ///
    /// # Cancel safety
    ///
    /// As [`BucketAcquireMany`].
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::futures::BucketAcquire;
    /// use limiters::{SystemClock, TokenBucket};
    ///
    /// # futures_lite::future::block_on(async {
    /// let bucket = TokenBucket::builder().build().unwrap();
    /// let one: BucketAcquire<'_, SystemClock> = bucket.acquire();
    /// one.await;
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct BucketAcquire<'a, C: Clock> {
        #[pin]
        inner: BucketAcquireMany<'a, C>,
    }
}

impl<C: Clock> fmt::Debug for BucketAcquire<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BucketAcquire { .. }")
    }
}

impl<C: Clock> Future for BucketAcquire<'_, C> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.project().inner.poll(cx).map(|result| {
            debug_assert!(result.is_ok(), "max is at least 1");
        })
    }
}

crate::rate::run_future! {
    /// Future returned by [`TokenBucket::run`].
    ///
    /// # Cancel safety
    ///
    /// Dropping it before its token is taken gives the token back as
    /// [`BucketAcquireMany`] does; after that the token is spent, and
    /// dropping it drops the wrapped future.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::futures::BucketRun;
    /// use limiters::{SystemClock, TokenBucket};
    ///
    /// # futures_lite::future::block_on(async {
    /// let bucket = TokenBucket::builder().build().unwrap();
    /// let call: BucketRun<'_, SystemClock, _> = bucket.run(async { 1 });
    /// assert_eq!(call.await, 1);
    /// # });
    /// ```
    BucketRun, BucketAcquire
}

/// Future returned by [`TokenBucket::acquire_within`] and
/// [`TokenBucket::acquire_many_within`] (see [`Within`]).
pub type BucketAcquireWithin<'a, C> = Within<BucketAcquireMany<'a, C>>;

impl<C: Clock> Sealed for BucketAcquireMany<'_, C> {}

impl<C: Clock> Attempt for BucketAcquireMany<'_, C> {
    type Clock = C;
    type Admitted = ();

    fn clock(&self) -> &C {
        &self.inner.limiter.clock
    }

    fn try_now(
        self: Pin<&mut Self>,
        deadline: C::Instant,
    ) -> Option<Result<(), DeadlineError<C::Instant>>> {
        try_check(self.inner.limiter.admit_n(self.inner.n, false), deadline)
    }

    fn refused(&self) {
        self.inner.limiter.counters.deny();
    }

    fn sleeping_until(&self) -> Option<C::Instant> {
        // Later than the check said only if a reservation raced ours.
        self.inner
            .ready_ns()
            .map(|ns| self.inner.limiter.instant_at(ns))
    }

    fn finish(output: Self::Output) -> Result<(), DeadlineError<C::Instant>> {
        output.map_err(Into::into)
    }
}
