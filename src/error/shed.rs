//! The errors of the load-shedding forms, [`Limiter::try_acquire`] and
//! [`KeyedLimiter::try_acquire`]: which stage refused, and when to retry.
//!
//! [`Limiter::try_acquire`]: crate::Limiter::try_acquire
//! [`KeyedLimiter::try_acquire`]: crate::KeyedLimiter::try_acquire

use core::fmt;

use super::{exceeds, AcquireError, InsufficientCapacity, NotUntil, RateSourceError};
use crate::clock::ClockInstant;

crate::clock::with_default! {
    /// Why [`Limiter::try_acquire`](crate::Limiter::try_acquire) (or
    /// `try_acquire_many`, `try_run`) admitted nothing: which stage refused
    /// and, where the limiter knows it, when to retry. Nothing was taken: no
    /// slot, no rate cell, no place in a queue.
    ///
    /// For a server that sheds load, [`retry_after`](Self::retry_after) is
    /// the `Retry-After` to send.
    ///
    /// `I` is the limiter's clock's instant ([`std::time::Instant`] for the
    /// default [`SystemClock`](crate::SystemClock)).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{Limiter, LimiterTryError, ManualClock, Quota};
    ///
    /// let limiter = Limiter::builder()
    ///     .rate(Quota::per_second(2))
    ///     .clock(ManualClock::new())
    ///     .build()?;
    /// let _first = limiter.try_acquire()?;
    /// let refused = limiter.try_acquire().unwrap_err();
    /// assert!(matches!(refused, LimiterTryError::Rate(_)));
    /// assert_eq!(refused.retry_after(), Some(Duration::from_millis(500)));
    /// assert_eq!(refused.to_string(), "rate limited: try again in 500ms");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[derive(Clone, Copy)]
    #[non_exhaustive]
    pub enum LimiterTryError<I = std::time::Instant> {
        /// The concurrency stage: too few slots free now, or other requests
        /// are queued for them (no barging). Free again when a holder is
        /// done, which the limiter cannot foresee.
        NoSlot,
        /// The concurrency stage: the slots are free but still count as in
        /// use until the [`min_hold`](crate::LimiterBuilder::min_hold) of
        /// earlier work ends, at the given instant.
        Held(NotUntil<I>),
        /// The rate stage: another request is queued ahead of this one for
        /// the rates (it waits for them to admit it); no barging.
        Queued,
        /// A [`rate`](crate::LimiterBuilder::rate) would admit the cells
        /// only at the given instant (or a rate source named that instant).
        Rate(NotUntil<I>),
        /// A [`window`](crate::LimiterBuilder::window) is full until the
        /// given instant.
        Window(NotUntil<I>),
        /// A [`pause`](crate::Limiter::pause_for) is in force until the
        /// given instant.
        Paused(NotUntil<I>),
        /// A [`RateSource`](crate::RateSource) decides only by waiting (a
        /// quota kept on a server): it was not asked.
        SourcePending,
        /// A rate source gave no decision (as [`AcquireError::RateSource`]).
        RateSource(RateSourceError),
        /// The limiter was closed.
        Closed,
        /// More than the concurrency: never admitted (as
        /// [`AcquireError::ExceedsCapacity`]).
        ExceedsCapacity {
            /// Slots or cells asked for.
            requested: usize,
            /// The most that can ever be admitted at once.
            capacity: usize,
        },
        /// More cells than a rate's burst or a window's size: never
        /// admitted (as [`AcquireError::InsufficientCapacity`]).
        InsufficientCapacity {
            /// Cells asked for.
            requested: u32,
            /// The most cells the limiter can ever admit at once.
            burst: u32,
        },
    }
}

impl<I: ClockInstant> LimiterTryError<I> {
    /// When the stage that refused would admit the request (if nothing
    /// else is admitted first): known for a rate, a window, a pause and a
    /// minimum hold; `None` for the other refusals.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{Limiter, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = Limiter::builder().concurrency(1).clock(clock.clone()).build()?;
    /// limiter.pause_for(Duration::from_secs(30));
    /// let refused = limiter.try_acquire().unwrap_err();
    /// assert_eq!(refused.not_until().unwrap().earliest(), clock.now() + Duration::from_secs(30));
    /// # Ok::<(), limiters::BuildError>(())
    /// ```
    pub fn not_until(&self) -> Option<NotUntil<I>> {
        match *self {
            LimiterTryError::Held(n)
            | LimiterTryError::Rate(n)
            | LimiterTryError::Window(n)
            | LimiterTryError::Paused(n) => Some(n),
            _ => None,
        }
    }

    /// How long until the stage that refused would admit the request: the
    /// `Retry-After` of a `429`. `None` where the limiter cannot know (a
    /// slot is freed when its holder is done).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Limiter;
    ///
    /// let limiter = Limiter::builder().concurrency(1).build()?;
    /// let _held = limiter.try_acquire()?;
    /// assert_eq!(limiter.try_acquire().unwrap_err().retry_after(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn retry_after(&self) -> Option<core::time::Duration> {
        self.not_until().map(|n| n.wait_time())
    }
}

impl<I> fmt::Display for LimiterTryError<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimiterTryError::NoSlot => f.write_str(
                "no concurrency slot free now (all in use, or others queued for one): shed the \
                 request, or wait with acquire()",
            ),
            LimiterTryError::Held(n) => write!(
                f,
                "no concurrency slot free until the minimum hold of earlier work ends: try again \
                 in {:?}",
                core::time::Duration::from_nanos(n.wait_ns)
            ),
            LimiterTryError::Queued => f.write_str(
                "other requests are queued for the rate ahead of this one: shed the request, or \
                 wait with acquire()",
            ),
            LimiterTryError::Rate(n) => n.fmt(f),
            LimiterTryError::Window(n) => {
                write!(f, "window full: try again in {:?}", core::time::Duration::from_nanos(n.wait_ns))
            }
            LimiterTryError::Paused(n) => write!(f, "paused: try again in {:?}", core::time::Duration::from_nanos(n.wait_ns)),
            LimiterTryError::SourcePending => f.write_str(
                "the rate source decides only by waiting (a quota kept on a server): not admitted, \
                 nothing taken; shed with acquire_within() instead",
            ),
            LimiterTryError::RateSource(e) => e.fmt(f),
            LimiterTryError::Closed => AcquireError::Closed.fmt(f),
            LimiterTryError::ExceedsCapacity {
                requested,
                capacity,
            } => exceeds(f, *requested, *capacity),
            LimiterTryError::InsufficientCapacity { requested, burst } => InsufficientCapacity {
                requested: *requested,
                burst: *burst,
            }
            .fmt(f),
        }
    }
}

// By hand, as `NotUntil`'s: they need `I: ClockInstant`.
impl<I: ClockInstant> fmt::Debug for LimiterTryError<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimiterTryError::NoSlot => f.write_str("NoSlot"),
            LimiterTryError::Held(n) => f.debug_tuple("Held").field(n).finish(),
            LimiterTryError::Queued => f.write_str("Queued"),
            LimiterTryError::Rate(n) => f.debug_tuple("Rate").field(n).finish(),
            LimiterTryError::Window(n) => f.debug_tuple("Window").field(n).finish(),
            LimiterTryError::Paused(n) => f.debug_tuple("Paused").field(n).finish(),
            LimiterTryError::SourcePending => f.write_str("SourcePending"),
            LimiterTryError::RateSource(e) => f.debug_tuple("RateSource").field(e).finish(),
            LimiterTryError::Closed => f.write_str("Closed"),
            LimiterTryError::ExceedsCapacity {
                requested,
                capacity,
            } => f
                .debug_struct("ExceedsCapacity")
                .field("requested", requested)
                .field("capacity", capacity)
                .finish(),
            LimiterTryError::InsufficientCapacity { requested, burst } => f
                .debug_struct("InsufficientCapacity")
                .field("requested", requested)
                .field("burst", burst)
                .finish(),
        }
    }
}

impl<I: ClockInstant> LimiterTryError<I> {
    /// What comparisons and hashes look at, besides the variant.
    fn parts(&self) -> (Option<NotUntil<I>>, Option<RateSourceError>, (usize, u64)) {
        match *self {
            LimiterTryError::RateSource(e) => (None, Some(e), (0, 0)),
            LimiterTryError::ExceedsCapacity {
                requested,
                capacity,
            } => (None, None, (requested, capacity as u64)),
            LimiterTryError::InsufficientCapacity { requested, burst } => {
                (None, None, (requested as usize, burst.into()))
            }
            _ => (self.not_until(), None, (0, 0)),
        }
    }
}

impl<I: ClockInstant> PartialEq for LimiterTryError<I> {
    fn eq(&self, other: &Self) -> bool {
        core::mem::discriminant(self) == core::mem::discriminant(other)
            && self.parts() == other.parts()
    }
}

impl<I: ClockInstant> Eq for LimiterTryError<I> {}

impl<I: ClockInstant + core::hash::Hash> core::hash::Hash for LimiterTryError<I> {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        core::mem::discriminant(self).hash(state);
        self.parts().hash(state);
    }
}

#[cfg(feature = "std")]
impl<I: ClockInstant> std::error::Error for LimiterTryError<I> {}

impl<I> From<AcquireError> for LimiterTryError<I> {
    fn from(e: AcquireError) -> Self {
        match e {
            AcquireError::Closed => LimiterTryError::Closed,
            AcquireError::ExceedsCapacity {
                requested,
                capacity,
            } => LimiterTryError::ExceedsCapacity {
                requested,
                capacity,
            },
            AcquireError::RateSource(e) => LimiterTryError::RateSource(e),
            AcquireError::InsufficientCapacity { requested, burst } => {
                LimiterTryError::InsufficientCapacity { requested, burst }
            }
        }
    }
}

crate::clock::with_default! {
    /// Why [`KeyedLimiter::try_acquire`](crate::KeyedLimiter::try_acquire)
    /// (or `try_run`) admitted nothing: the refusal of the key's limiter or
    /// of the global one. Nothing was taken from either.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{KeyedLimiter, KeyedTryError, Limiter, LimiterTryError};
    ///
    /// let per_host = KeyedLimiter::new(Limiter::builder().concurrency(1))?
    ///     .with_global(Limiter::builder().concurrency(8).build()?);
    /// let _held = per_host.try_acquire(&"a.example")?;
    /// let refused = per_host.try_acquire(&"a.example").unwrap_err();
    /// assert_eq!(refused, KeyedTryError::Key(LimiterTryError::NoSlot));
    /// assert_eq!(refused.error(), LimiterTryError::NoSlot);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[derive(Clone, Copy)]
    #[non_exhaustive]
    pub enum KeyedTryError<I = std::time::Instant> {
        /// The key's limiter refused.
        Key(LimiterTryError<I>),
        /// The global limiter refused (or other keys are queued for it).
        Global(LimiterTryError<I>),
    }
}

impl<I: ClockInstant> KeyedTryError<I> {
    /// The refusal, whichever limiter made it.
    ///
    /// # Examples
    ///
    /// See [`KeyedTryError`].
    pub fn error(&self) -> LimiterTryError<I> {
        match *self {
            KeyedTryError::Key(e) | KeyedTryError::Global(e) => e,
        }
    }

    /// As [`LimiterTryError::not_until`].
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{KeyedLimiter, Limiter, ManualClock, Quota};
    ///
    /// let clock = ManualClock::new();
    /// let per_ip = KeyedLimiter::new(Limiter::builder().rate(Quota::per_second(1)).clock(clock.clone()))?;
    /// let _first = per_ip.try_acquire(&[10, 0, 0, 1])?;
    /// let refused = per_ip.try_acquire(&[10, 0, 0, 1]).unwrap_err();
    /// assert_eq!(refused.not_until().unwrap().earliest(), clock.now() + Duration::from_secs(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn not_until(&self) -> Option<NotUntil<I>> {
        self.error().not_until()
    }

    /// As [`LimiterTryError::retry_after`]: the `Retry-After` of a `429`.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{KeyedLimiter, Limiter, ManualClock, Quota};
    ///
    /// let per_ip = KeyedLimiter::new(
    ///     Limiter::builder().rate(Quota::per_second(4)).clock(ManualClock::new()),
    /// )?;
    /// let _first = per_ip.try_acquire(&"10.0.0.1")?;
    /// let refused = per_ip.try_acquire(&"10.0.0.1").unwrap_err();
    /// assert_eq!(refused.retry_after(), Some(Duration::from_millis(250)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn retry_after(&self) -> Option<core::time::Duration> {
        self.error().retry_after()
    }
}

impl<I> fmt::Display for KeyedTryError<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyedTryError::Key(e) => write!(f, "the key's limiter refused: {e}"),
            KeyedTryError::Global(e) => write!(f, "the global limiter refused: {e}"),
        }
    }
}

impl<I: ClockInstant> fmt::Debug for KeyedTryError<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyedTryError::Key(e) => f.debug_tuple("Key").field(e).finish(),
            KeyedTryError::Global(e) => f.debug_tuple("Global").field(e).finish(),
        }
    }
}

impl<I: ClockInstant> PartialEq for KeyedTryError<I> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (KeyedTryError::Key(a), KeyedTryError::Key(b))
            | (KeyedTryError::Global(a), KeyedTryError::Global(b)) => a == b,
            _ => false,
        }
    }
}

impl<I: ClockInstant> Eq for KeyedTryError<I> {}

impl<I: ClockInstant + core::hash::Hash> core::hash::Hash for KeyedTryError<I> {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        core::mem::discriminant(self).hash(state);
        self.error().hash(state);
    }
}

#[cfg(feature = "std")]
impl<I: ClockInstant> std::error::Error for KeyedTryError<I> {}
