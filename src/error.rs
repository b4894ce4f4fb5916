//! Error types. Every error is a small `Copy` value that carries the numbers
//! behind it, and its `Display` message says what to do about it.

use core::fmt;

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
}

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AcquireError::Closed => {
                f.write_str("semaphore closed: no more permits will be granted")
            }
            AcquireError::ExceedsCapacity {
                requested,
                capacity,
            } => exceeds(f, requested, capacity),
        }
    }
}

fn exceeds(f: &mut fmt::Formatter<'_>, requested: usize, capacity: usize) -> fmt::Result {
    write!(
        f,
        "requested {requested} permits but capacity is {capacity}: ask for at most {capacity}"
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
}

impl fmt::Display for TryAcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TryAcquireError::NoPermits => {
                f.write_str("no permits available now: wait with acquire() or try again later")
            }
            TryAcquireError::Closed => {
                f.write_str("semaphore closed: no more permits will be granted")
            }
            TryAcquireError::ExceedsCapacity {
                requested,
                capacity,
            } => exceeds(f, requested, capacity),
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
            "released {} permits but only {} were detached with Permit::forget: \
             releasing more would exceed the capacity",
            self.released, self.detached
        )
    }
}

#[cfg(feature = "std")]
impl std::error::Error for OverRelease {}
