//! Error types: the rate limiter's own (`NotUntil`, a request above the
//! burst) and the server's (a timeout, a lost connection, an error reply).

use core::fmt;
use core::time::Duration;

use limiters::{ClockInstant, NotUntil};
use redis::RedisError;

/// Why the shared store gave no decision. Under
/// [`FailPolicy::FailClosed`](crate::FailPolicy::FailClosed) it is returned
/// (inside [`Error::Backend`]); under the other policies it is only counted
/// in the limiter's [`stats`](crate::RedisRateLimiter::stats).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use limiters_redis::BackendError;
///
/// let err = BackendError::Timeout { after: Duration::from_millis(50) };
/// assert_eq!(
///     err.to_string(),
///     "redis did not answer within 50ms: check the server, or raise the limiter's timeout"
/// );
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum BackendError {
    /// No answer within the command timeout (a slow or stalled server, or a
    /// connection still being re-established).
    Timeout {
        /// The timeout in force.
        after: Duration,
    },
    /// The connection failed: refused, reset or closed.
    Connection(RedisError),
    /// The server answered with an error (out of memory, a read-only
    /// replica, scripts disabled, ...) or with a reply the script never
    /// sends.
    Server(RedisError),
}

impl BackendError {
    pub(crate) fn of(e: RedisError) -> BackendError {
        if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
            BackendError::Connection(e)
        } else {
            BackendError::Server(e)
        }
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendError::Timeout { after } => write!(
                f,
                "redis did not answer within {after:?}: check the server, or raise the limiter's timeout"
            ),
            BackendError::Connection(e) => write!(f, "redis connection failed: {e}"),
            BackendError::Server(e) => write!(f, "redis answered with an error: {e}"),
        }
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BackendError::Timeout { .. } => None,
            BackendError::Connection(e) | BackendError::Server(e) => Some(e),
        }
    }
}

/// Why a [`RedisRateLimiter`](crate::RedisRateLimiter) (or keyed) call
/// admitted nothing. `I` is the limiter's clock's instant.
///
/// # Examples
///
/// ```
/// use limiters_redis::Error;
///
/// let err: Error<std::time::Instant> = Error::InsufficientCapacity { requested: 12, burst: 10 };
/// assert_eq!(
///     err.to_string(),
///     "requested 12 cells but the burst is 10: ask for at most 10 or raise the burst (Quota::allow_burst)"
/// );
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Error<I: ClockInstant> {
    /// Not now (only from `check` and `check_n`); admitted at the given
    /// instant if nobody else takes the cells first.
    NotUntil(NotUntil<I>),
    /// More cells than the burst: never admitted, do not retry as is.
    InsufficientCapacity {
        /// Cells asked for.
        requested: u32,
        /// The most cells the quota ever admits at once.
        burst: u32,
    },
    /// The server gave no decision and the policy is
    /// [`FailClosed`](crate::FailPolicy::FailClosed).
    Backend(BackendError),
}

impl<I: ClockInstant> fmt::Display for Error<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotUntil(not_until) => not_until.fmt(f),
            Error::InsufficientCapacity { requested, burst } => write!(
                f,
                "requested {requested} cells but the burst is {burst}: ask for at most {burst} \
                 or raise the burst (Quota::allow_burst)"
            ),
            Error::Backend(e) => e.fmt(f),
        }
    }
}

impl<I: ClockInstant> std::error::Error for Error<I> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Backend(e) => Some(e),
            _ => None,
        }
    }
}

impl<I: ClockInstant> From<BackendError> for Error<I> {
    fn from(e: BackendError) -> Self {
        Error::Backend(e)
    }
}
