//! Error types. Every error is a small `Copy` value that carries the numbers
//! behind it, and its `Display` message says what to do about it.

use core::fmt;

use crate::clock::ClockInstant;

mod shed;
pub use shed::{KeyedTryError, LimiterTryError};

/// Why an `acquire` future finished without permits.
///
/// # Examples
///
/// ```
/// use limiters::{AcquireError, Semaphore};
///
/// # futures_lite::future::block_on(async {
/// let sem = Semaphore::new(2);
/// sem.close();
/// assert_eq!(sem.acquire().await.unwrap_err(), AcquireError::Closed);
///
/// let too_many = Semaphore::MAX_PERMITS + 1;
/// assert!(matches!(
///     Semaphore::new(2).acquire_many(too_many).await,
///     Err(AcquireError::ExceedsCapacity { .. })
/// ));
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
// `repr(usize)`: a word-sized tag, so every variant's fields start at the
// next word. With the default one-byte tag, `RateSource`'s one-byte payload
// sits at offset 1, and every move of an `acquire` future's output (a
// `Result<Permit, AcquireError>`) copies the 7 bytes after the tag in two
// overlapping 4-byte moves, which the CPU cannot forward from store to load:
// the uncontended `acquire().await` + drop took 13.2 ns instead of 6.5, at
// the same instruction count. The tag's spare values still give
// `Result<Permit, _>` its niche (24 bytes either way).
#[repr(usize)]
pub enum AcquireError {
    /// The semaphore (or limiter) was closed before the permits were granted.
    Closed,
    /// More permits were requested than the semaphore can ever hold, so the
    /// request could never be served. It fails at once instead of waiting
    /// forever.
    ExceedsCapacity {
        /// Permits asked for.
        requested: usize,
        /// The most permits that can ever be available at once.
        capacity: usize,
    },
    /// A [`Limiter`](crate::Limiter)'s [`RateSource`](crate::RateSource)
    /// (a quota kept on a server) gave no decision; the request was not
    /// admitted and holds nothing.
    RateSource(RateSourceError),
    /// More cells than a rate stage of a [`Limiter`](crate::Limiter) admits
    /// at once (a quota's burst or a window's size), so the request could
    /// never be served. It fails at once.
    InsufficientCapacity {
        /// Cells asked for.
        requested: u32,
        /// The most cells the limiter can ever admit at once.
        burst: u32,
    },
}

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AcquireError::Closed => f.write_str("closed: no more permits will be granted"),
            AcquireError::ExceedsCapacity {
                requested,
                capacity,
            } => exceeds(f, requested, capacity),
            AcquireError::RateSource(e) => e.fmt(f),
            AcquireError::InsufficientCapacity { requested, burst } => {
                InsufficientCapacity { requested, burst }.fmt(f)
            }
        }
    }
}

/// Why a [`RateSource`](crate::RateSource) gave no decision.
///
/// # Examples
///
/// ```
/// use limiters::{AcquireError, RateSourceError};
///
/// let err = AcquireError::RateSource(RateSourceError::TimedOut);
/// assert_eq!(
///     err.to_string(),
///     "the shared rate source did not answer in time: not admitted; check the source or \
///      raise its timeout"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RateSourceError {
    /// No answer within the source's timeout.
    TimedOut,
    /// The source could not be reached (connection refused, reset, closed).
    Unavailable,
    /// The source answered with an error.
    Failed,
}

impl fmt::Display for RateSourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RateSourceError::TimedOut => {
                "the shared rate source did not answer in time: not admitted; check the source \
                 or raise its timeout"
            }
            RateSourceError::Unavailable => {
                "the shared rate source is unreachable: not admitted; check the connection"
            }
            RateSourceError::Failed => {
                "the shared rate source answered with an error: not admitted; check the source"
            }
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for RateSourceError {}

/// `n` `noun`s, or `1 noun`: messages carry their numbers in plain English.
struct Count(u128, &'static str);

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.0 == 1 { "" } else { "s" };
        write!(f, "{} {}{s}", self.0, self.1)
    }
}

pub(super) fn exceeds(
    f: &mut fmt::Formatter<'_>,
    requested: usize,
    capacity: usize,
) -> fmt::Result {
    write!(
        f,
        "requested {} but capacity is {capacity}: ask for at most {capacity}",
        Count(requested as u128, "permit")
    )
}

#[cfg(feature = "std")]
impl std::error::Error for AcquireError {}

/// Why a `try_acquire` call returned without permits.
///
/// # Examples
///
/// ```
/// use limiters::{Semaphore, TryAcquireError};
///
/// let sem = Semaphore::new(1);
/// let _held = sem.try_acquire().unwrap();
/// assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TryAcquireError {
    /// Not enough permits are available right now, or other acquirers are
    /// queued ahead (no barging: a newcomer never overtakes a waiter).
    NoPermits,
    /// The semaphore was closed.
    Closed,
    /// More permits were requested than the semaphore can ever hold.
    ExceedsCapacity {
        /// Permits asked for.
        requested: usize,
        /// The most permits that can ever be available at once.
        capacity: usize,
    },
    /// More cells than a rate stage of a [`Limiter`](crate::Limiter) admits
    /// at once (as [`AcquireError::InsufficientCapacity`]).
    InsufficientCapacity {
        /// Cells asked for.
        requested: u32,
        /// The most cells the limiter can ever admit at once.
        burst: u32,
    },
}

impl fmt::Display for TryAcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TryAcquireError::NoPermits => f.write_str(
                "no permits available now: try again later, or wait with acquire() until \
                     enough are released or added",
            ),
            TryAcquireError::Closed => f.write_str("closed: no more permits will be granted"),
            TryAcquireError::ExceedsCapacity {
                requested,
                capacity,
            } => exceeds(f, requested, capacity),
            TryAcquireError::InsufficientCapacity { requested, burst } => {
                InsufficientCapacity { requested, burst }.fmt(f)
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for TryAcquireError {}

impl From<AcquireError> for TryAcquireError {
    fn from(e: AcquireError) -> Self {
        match e {
            AcquireError::Closed => TryAcquireError::Closed,
            AcquireError::ExceedsCapacity {
                requested,
                capacity,
            } => TryAcquireError::ExceedsCapacity {
                requested,
                capacity,
            },
            // Only a Limiter's rate source fails so; semaphores never do.
            AcquireError::RateSource(_) => TryAcquireError::NoPermits,
            AcquireError::InsufficientCapacity { requested, burst } => {
                TryAcquireError::InsufficientCapacity { requested, burst }
            }
        }
    }
}

/// [`BoundedSemaphore::release`](crate::BoundedSemaphore::release) was asked
/// to return more permits than were detached with
/// [`Permit::forget`](crate::Permit::forget), which would push the count
/// above capacity. Nothing was released.
///
/// # Examples
///
/// ```
/// use limiters::{BoundedSemaphore, OverRelease};
///
/// let bs = BoundedSemaphore::new(2);
/// bs.try_acquire().unwrap().forget();
/// let err: OverRelease = bs.release(2).unwrap_err();
/// assert_eq!((err.released, err.detached), (2, 1));
/// assert_eq!(bs.release(1), Ok(()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct OverRelease {
    /// Permits the caller tried to release.
    pub released: usize,
    /// Permits that were detached with `forget` and may be released.
    pub detached: usize,
}

impl fmt::Display for OverRelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "released {} but Permit::forget detached only {}: \
             releasing more would exceed the capacity",
            Count(self.released as u128, "permit"),
            self.detached
        )
    }
}

#[cfg(feature = "std")]
impl std::error::Error for OverRelease {}

// --- rate limiting ---

/// Why [`Quota::new`](crate::Quota::new) refused its arguments.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use limiters::{Quota, QuotaError};
///
/// assert_eq!(Quota::new(0, Duration::from_secs(1)), Err(QuotaError::ZeroCells));
/// assert_eq!(Quota::new(5, Duration::ZERO), Err(QuotaError::ZeroPeriod));
/// assert!(Quota::new(5, Duration::from_secs(1)).is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QuotaError {
    /// The quota admits no cells per period: a limiter could never admit
    /// anything.
    ZeroCells,
    /// The period is zero: the rate would be infinite.
    ZeroPeriod,
    /// The period is longer than 2^64 - 1 nanoseconds (about 584 years).
    PeriodTooLong,
}

impl fmt::Display for QuotaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QuotaError::ZeroCells => {
                "a quota of zero cells admits nothing: allow at least 1 cell per period"
            }
            QuotaError::ZeroPeriod => {
                "a quota period of zero is an infinite rate: use a period of at least 1ns"
            }
            QuotaError::PeriodTooLong => {
                "the quota period is longer than 2^64 - 1 ns (about 584 years): use a shorter period"
            }
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for QuotaError {}

crate::clock::with_default! {
    /// A rate limiter said no: the request conforms at [`earliest`](Self::earliest)
    /// and not before.
    ///
    /// `I` is the limiter's clock's instant ([`std::time::Instant`] for the
    /// default [`SystemClock`](crate::SystemClock)).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, Quota, RateLimiter};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = RateLimiter::with_clock(Quota::per_second(4), clock.clone());
    /// limiter.check().unwrap();
    /// let denied = limiter.check().unwrap_err();
    /// assert_eq!(denied.wait_time(), Duration::from_millis(250));
    /// assert_eq!(denied.earliest(), clock.now() + Duration::from_millis(250));
    /// assert_eq!(denied.to_string(), "rate limited: try again in 250ms");
    /// ```
    #[derive(Clone, Copy)]
    pub struct NotUntil<I = std::time::Instant> {
        // `earliest` is `base + after_ns`, computed when asked: a limiter
        // that refuses passes its origin and a count of nanoseconds, so a
        // refusal costs no instant arithmetic unless somebody reads it.
        base: I,
        after_ns: u64,
        wait_ns: u64,
    }
}

impl<I: ClockInstant> NotUntil<I> {
    /// A denial admitted at `earliest`, `wait` after the decision: for rate
    /// sources outside this crate (a limiter whose state lives on a server)
    /// that answer with the same error as the local limiters.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{Clock, ManualClock, NotUntil};
    ///
    /// let clock = ManualClock::new();
    /// let wait = Duration::from_millis(40);
    /// let denied = NotUntil::new(clock.now() + wait, wait);
    /// assert_eq!(denied.wait_time(), wait);
    /// ```
    ///
    /// A `wait` beyond `u64::MAX` nanoseconds (584 years) is kept as that.
    pub fn new(earliest: I, wait: core::time::Duration) -> Self {
        Self {
            base: earliest,
            after_ns: 0,
            wait_ns: crate::clock::nanos(wait),
        }
    }

    /// A refusal until `earliest_ns` nanoseconds after `origin`, decided
    /// `now_ns` nanoseconds after it.
    #[inline]
    pub(crate) fn at_ns(origin: I, earliest_ns: u64, now_ns: u64) -> Self {
        Self {
            base: origin,
            after_ns: earliest_ns,
            wait_ns: earliest_ns.saturating_sub(now_ns),
        }
    }

    /// The earliest instant at which the same request would be admitted (if
    /// nothing else is admitted first).
    pub fn earliest(&self) -> I {
        match self.after_ns {
            0 => self.base,
            ns => self
                .base
                .saturating_add(core::time::Duration::from_nanos(ns)),
        }
    }

    /// How long from the moment of the decision until
    /// [`earliest`](Self::earliest).
    pub fn wait_time(&self) -> core::time::Duration {
        core::time::Duration::from_nanos(self.wait_ns)
    }
}

impl<I: ClockInstant> PartialEq for NotUntil<I> {
    fn eq(&self, other: &Self) -> bool {
        self.earliest() == other.earliest() && self.wait_ns == other.wait_ns
    }
}

impl<I: ClockInstant> Eq for NotUntil<I> {}

impl<I: ClockInstant + core::hash::Hash> core::hash::Hash for NotUntil<I> {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.earliest().hash(state);
        self.wait_ns.hash(state);
    }
}

impl<I: ClockInstant> fmt::Debug for NotUntil<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotUntil")
            .field("earliest", &self.earliest())
            .field("wait", &self.wait_time())
            .finish()
    }
}

impl<I> fmt::Display for NotUntil<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rate limited: try again in {:?}",
            core::time::Duration::from_nanos(self.wait_ns)
        )
    }
}

#[cfg(feature = "std")]
impl<I: ClockInstant> std::error::Error for NotUntil<I> {}

/// A request for more cells than the limiter's burst: it could never be
/// admitted, so it fails at once instead of waiting forever.
///
/// # Examples
///
/// ```
/// use limiters::{Quota, RateLimiter};
///
/// let limiter = RateLimiter::new(Quota::per_second(100).allow_burst(10));
/// let err = limiter.reserve_many(12).unwrap_err();
/// assert_eq!((err.requested, err.burst), (12, 10));
/// assert_eq!(
///     err.to_string(),
///     "requested 12 cells but the burst is 10: ask for at most 10 or raise the burst \
///      (Quota::allow_burst, the token bucket's max or the window's n)"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct InsufficientCapacity {
    /// Cells asked for.
    pub requested: u32,
    /// The most cells the limiter can ever admit at once.
    pub burst: u32,
}

impl fmt::Display for InsufficientCapacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "requested {} but the burst is {}: ask for at most {} or raise the burst \
             (Quota::allow_burst, the token bucket's max or the window's n)",
            Count(self.requested.into(), "cell"),
            self.burst,
            self.burst
        )
    }
}

#[cfg(feature = "std")]
impl std::error::Error for InsufficientCapacity {}

crate::clock::with_default! {
    /// Why [`check_n`](crate::RateLimiter::check_n) did not admit its cells.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{ManualClock, Quota, RateLimitError, RateLimiter};
    ///
    /// let limiter = RateLimiter::with_clock(Quota::per_second(10).allow_burst(5), ManualClock::new());
    /// assert!(limiter.check_n(5).is_ok());
    /// assert!(matches!(limiter.check_n(1), Err(RateLimitError::NotUntil(_))));
    /// assert!(matches!(
    ///     limiter.check_n(6),
    ///     Err(RateLimitError::InsufficientCapacity { requested: 6, burst: 5 })
    /// ));
    /// ```
    #[derive(Clone, Copy)]
    #[non_exhaustive]
    pub enum RateLimitError<I = std::time::Instant> {
        /// Not now; the cells would be admitted at the given instant.
        NotUntil(NotUntil<I>),
        /// More cells than the burst: never admitted, do not retry as is.
        InsufficientCapacity {
            /// Cells asked for.
            requested: u32,
            /// The most cells the limiter can ever admit at once.
            burst: u32,
        },
    }
}

impl<I> fmt::Display for RateLimitError<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateLimitError::NotUntil(not_until) => not_until.fmt(f),
            RateLimitError::InsufficientCapacity { requested, burst } => InsufficientCapacity {
                requested: *requested,
                burst: *burst,
            }
            .fmt(f),
        }
    }
}

// By hand, as `NotUntil`'s: they need `I: ClockInstant`.
impl<I: ClockInstant> fmt::Debug for RateLimitError<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateLimitError::NotUntil(not_until) => {
                f.debug_tuple("NotUntil").field(not_until).finish()
            }
            RateLimitError::InsufficientCapacity { requested, burst } => f
                .debug_struct("InsufficientCapacity")
                .field("requested", requested)
                .field("burst", burst)
                .finish(),
        }
    }
}

impl<I: ClockInstant> PartialEq for RateLimitError<I> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (RateLimitError::NotUntil(a), RateLimitError::NotUntil(b)) => a == b,
            (
                RateLimitError::InsufficientCapacity { requested, burst },
                RateLimitError::InsufficientCapacity {
                    requested: other_requested,
                    burst: other_burst,
                },
            ) => (requested, burst) == (other_requested, other_burst),
            _ => false,
        }
    }
}

impl<I: ClockInstant> Eq for RateLimitError<I> {}

impl<I: ClockInstant + core::hash::Hash> core::hash::Hash for RateLimitError<I> {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        core::mem::discriminant(self).hash(state);
        match self {
            RateLimitError::NotUntil(not_until) => not_until.hash(state),
            RateLimitError::InsufficientCapacity { requested, burst } => {
                (requested, burst).hash(state)
            }
        }
    }
}

#[cfg(feature = "std")]
impl<I: ClockInstant> std::error::Error for RateLimitError<I> {}

impl<I> From<NotUntil<I>> for RateLimitError<I> {
    fn from(not_until: NotUntil<I>) -> Self {
        RateLimitError::NotUntil(not_until)
    }
}

impl<I> From<InsufficientCapacity> for RateLimitError<I> {
    fn from(e: InsufficientCapacity) -> Self {
        RateLimitError::InsufficientCapacity {
            requested: e.requested,
            burst: e.burst,
        }
    }
}

crate::clock::with_default! {
    /// Why an `acquire_within` / `run_within` future ended without
    /// admission: the deadline could not be met, or the request failed as
    /// its plain `acquire` would have.
    ///
    /// `I` is the limiter's clock's instant ([`std::time::Instant`] for the
    /// default [`SystemClock`](crate::SystemClock)).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{DeadlineError, ManualClock, Quota, RateLimiter};
    ///
    /// # futures_lite::future::block_on(async {
    /// let clock = ManualClock::new();
    /// let limiter = RateLimiter::with_clock(Quota::per_second(2), clock.clone());
    /// limiter.acquire_within(Duration::ZERO).await?; // the burst
    /// let late = limiter.acquire_within(Duration::from_millis(100)).await.unwrap_err();
    /// assert_eq!(
    ///     late,
    ///     DeadlineError::WouldExceed {
    ///         wait: Duration::from_millis(500),
    ///         earliest: clock.now() + Duration::from_millis(500),
    ///     }
    /// );
    /// assert_eq!(
    ///     late.to_string(),
    ///     "admission is 500ms away, past the deadline: allow a longer timeout or shed the request"
    /// );
    /// # Ok::<(), DeadlineError<limiters::ManualInstant>>(())
    /// # }).unwrap();
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub enum DeadlineError<I = std::time::Instant> {
        /// Known at once to be admitted only after the deadline: failed
        /// without queueing, nothing taken, no other waiter disturbed.
        WouldExceed {
            /// How long from the call until `earliest`.
            wait: core::time::Duration,
            /// The earliest instant the request would have been admitted (if
            /// nothing else is admitted first).
            earliest: I,
        },
        /// Queued, and the deadline passed (or it became known that
        /// admission would come after it) first: everything the request
        /// held was given back, as if its future had been dropped.
        TimedOut,
        /// The limiter was closed before admission.
        Closed,
        /// More than the concurrency or a burst: never admitted (as
        /// [`AcquireError::ExceedsCapacity`]).
        ExceedsCapacity {
            /// Slots or cells asked for.
            requested: usize,
            /// The most that can ever be admitted at once.
            capacity: usize,
        },
        /// More cells than the burst: never admitted (as
        /// [`InsufficientCapacity`]).
        InsufficientCapacity {
            /// Cells asked for.
            requested: u32,
            /// The most cells the limiter can ever admit at once.
            burst: u32,
        },
        /// A [`Limiter`](crate::Limiter)'s rate source gave no decision (as
        /// [`AcquireError::RateSource`]).
        RateSource(RateSourceError),
    }
}

impl<I> fmt::Display for DeadlineError<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DeadlineError::WouldExceed { wait, .. } => write!(
                f,
                "admission is {wait:?} away, past the deadline: allow a longer timeout or shed \
                 the request"
            ),
            DeadlineError::TimedOut => f.write_str(
                "timed out while queued: everything held was given back; allow a longer timeout \
                 or shed the request",
            ),
            DeadlineError::Closed => AcquireError::Closed.fmt(f),
            DeadlineError::ExceedsCapacity {
                requested,
                capacity,
            } => exceeds(f, requested, capacity),
            DeadlineError::InsufficientCapacity { requested, burst } => {
                InsufficientCapacity { requested, burst }.fmt(f)
            }
            DeadlineError::RateSource(e) => e.fmt(f),
        }
    }
}

#[cfg(feature = "std")]
impl<I: fmt::Debug> std::error::Error for DeadlineError<I> {}

impl<I> From<InsufficientCapacity> for DeadlineError<I> {
    fn from(e: InsufficientCapacity) -> Self {
        DeadlineError::InsufficientCapacity {
            requested: e.requested,
            burst: e.burst,
        }
    }
}

impl<I> From<AcquireError> for DeadlineError<I> {
    fn from(e: AcquireError) -> Self {
        match e {
            AcquireError::Closed => DeadlineError::Closed,
            AcquireError::ExceedsCapacity {
                requested,
                capacity,
            } => DeadlineError::ExceedsCapacity {
                requested,
                capacity,
            },
            AcquireError::RateSource(e) => DeadlineError::RateSource(e),
            AcquireError::InsufficientCapacity { requested, burst } => {
                DeadlineError::InsufficientCapacity { requested, burst }
            }
        }
    }
}

/// Why [`TokenBucketBuilder::build`](crate::TokenBucketBuilder::build)
/// refused its settings.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use limiters::{TokenBucket, TokenBucketError};
///
/// let err = TokenBucket::builder().max(5).refill(10).build().unwrap_err();
/// assert_eq!(err, TokenBucketError::RefillExceedsMax { refill: 10, max: 5 });
/// assert_eq!(
///     TokenBucket::builder().interval(Duration::ZERO).build().unwrap_err(),
///     TokenBucketError::ZeroInterval
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenBucketError {
    /// `max` is zero: the bucket could never hold a token.
    ZeroMax,
    /// `refill` is zero: the bucket would never refill.
    ZeroRefill,
    /// `interval` is zero: the refill rate would be infinite.
    ZeroInterval,
    /// `interval` is longer than 2^64 - 1 nanoseconds (about 584 years).
    IntervalTooLong,
    /// `refill` is larger than `max`: the extra tokens would always be lost.
    RefillExceedsMax {
        /// Tokens added per interval.
        refill: u32,
        /// Bucket capacity.
        max: u32,
    },
    /// `initial` is larger than `max`.
    InitialExceedsMax {
        /// Tokens at creation.
        initial: u32,
        /// Bucket capacity.
        max: u32,
    },
}

impl fmt::Display for TokenBucketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TokenBucketError::ZeroMax => {
                f.write_str("a token bucket with max 0 admits nothing: set max to at least 1")
            }
            TokenBucketError::ZeroRefill => {
                f.write_str("a token bucket with refill 0 never refills: set refill to at least 1")
            }
            TokenBucketError::ZeroInterval => f.write_str(
                "a refill interval of zero is an infinite rate: use an interval of at least 1ns",
            ),
            TokenBucketError::IntervalTooLong => f.write_str(
                "the refill interval is longer than 2^64 - 1 ns (about 584 years): use a shorter interval",
            ),
            TokenBucketError::RefillExceedsMax { refill, max } => write!(
                f,
                "refill is {refill} tokens but max is {max}: set refill to at most {max} or raise max"
            ),
            TokenBucketError::InitialExceedsMax { initial, max } => write!(
                f,
                "initial is {initial} tokens but max is {max}: set initial to at most {max} or raise max"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for TokenBucketError {}

// --- composite limiter ---

/// Why [`LimiterBuilder::build`](crate::LimiterBuilder::build) refused a configuration.
///
/// # Examples
///
/// ```
/// use limiters::{BuildError, Limiter};
///
/// let err = Limiter::builder().concurrency(0).build().unwrap_err();
/// assert_eq!(err, BuildError::ZeroConcurrency);
/// assert_eq!(err.to_string(), "concurrency(0) would never admit anything: allow at least 1");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BuildError {
    /// Neither a concurrency limit nor a rate: the limiter would limit
    /// nothing.
    NoLimits,
    /// `concurrency(0)`: nothing could ever be admitted.
    ZeroConcurrency,
    /// More slots than a semaphore can hold.
    ConcurrencyTooLarge {
        /// Slots asked for.
        requested: usize,
        /// [`Semaphore::MAX_PERMITS`](crate::Semaphore::MAX_PERMITS).
        max: usize,
    },
    /// `min_hold` holds a concurrency slot; without `concurrency(n)` there is
    /// none.
    MinHoldWithoutConcurrency,
    /// `weight(0)`: calls would pass without counting.
    ZeroWeight,
    /// Each call would need more slots than there are.
    WeightExceedsConcurrency {
        /// The weight of one call.
        weight: u32,
        /// The concurrency limit.
        concurrency: usize,
    },
    /// Each call would need more cells at once than a rate's burst allows.
    WeightExceedsBurst {
        /// The weight of one call.
        weight: u32,
        /// The smallest burst among the rates.
        burst: u32,
    },
    /// A [`window`](crate::LimiterBuilder::window) admits nothing (`n` of
    /// 0) or has a zero or too long period.
    InvalidWindow(QuotaError),
    /// Each call would need more cells than a window admits in a period.
    WeightExceedsWindow {
        /// The weight of one call.
        weight: u32,
        /// The window's `n`.
        limit: u32,
    },
    /// More [`rate_source`](crate::LimiterBuilder::rate_source)s than
    /// [`MAX_RATE_SOURCES`](crate::LimiterBuilder::MAX_RATE_SOURCES).
    TooManyRateSources {
        /// Sources added.
        count: usize,
        /// The most a limiter takes.
        max: usize,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BuildError::NoLimits => f.write_str(
                "no limits configured: set concurrency(n), window(n, period) and/or rate(quota) before build()",
            ),
            BuildError::ZeroConcurrency => {
                f.write_str("concurrency(0) would never admit anything: allow at least 1")
            }
            BuildError::ConcurrencyTooLarge { requested, max } => {
                write!(f, "concurrency({requested}) exceeds the maximum of {max} slots")
            }
            BuildError::MinHoldWithoutConcurrency => f.write_str(
                "min_hold needs a concurrency limit: add concurrency(n), or use a rate instead",
            ),
            BuildError::ZeroWeight => {
                f.write_str("weight(0) would let every call through: use a weight of at least 1")
            }
            BuildError::WeightExceedsConcurrency {
                weight,
                concurrency,
            } => write!(
                f,
                "weight {weight} exceeds concurrency {concurrency}: no call could ever be admitted; \
                 raise the concurrency or lower the weight"
            ),
            BuildError::WeightExceedsBurst { weight, burst } => write!(
                f,
                "weight {weight} exceeds a rate's burst of {burst}: no call could ever be admitted; \
                 use allow_burst({weight}) or lower the weight"
            ),
            BuildError::InvalidWindow(e) => write!(f, "invalid window: {e}"),
            BuildError::WeightExceedsWindow { weight, limit } => write!(
                f,
                "weight {weight} exceeds a window of {limit}: no call could ever be admitted; \
                 raise the window's n to at least {weight} or lower the weight"
            ),
            BuildError::TooManyRateSources { count, max } => write!(
                f,
                "{count} rate sources exceed the maximum of {max} per limiter: \
                 combine them into fewer sources"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for BuildError {}
