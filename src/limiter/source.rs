//! [`RateSource`]: a rate a [`Limiter`](crate::Limiter) asks instead of
//! keeping it itself (a [`RateLimiter`] shared with other code, or a quota
//! kept on a server for a whole fleet, like `limiters-redis`).

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use crate::clock::{Clock, ClockInstant};
use crate::error::{AcquireError, RateLimitError};
use crate::rate::RateLimiter;

/// What a [`Limiter`](crate::Limiter) needs of a rate it does not keep: a
/// decision for `n` cells now (admitted, not before an instant, or failed)
/// and the most cells it ever admits at once.
///
/// Add one with [`LimiterBuilder::rate_source`](crate::LimiterBuilder::rate_source).
/// The head of the limiter's rate queue asks every source once its own
/// quotas would admit it (so a shared cell is never spent while a local
/// rate still makes the request wait), sleeps until the instant a source
/// names and asks again; a source that admitted is not asked again for the
/// same request. Sources are asked in the order they were added.
///
/// `I` is the instant of the limiter's clock.
///
/// # Examples
///
/// A `RateLimiter` shared between a `Limiter` and code that calls `check`
/// directly:
///
/// ```
/// use std::sync::Arc;
/// use limiters::{Limiter, Quota, RateLimiter};
///
/// # futures_lite::future::block_on(async {
/// let shared = Arc::new(RateLimiter::new(Quota::per_second(50).allow_burst(5)));
/// let limiter = Limiter::builder().concurrency(4).rate_source(Arc::clone(&shared)).build()?;
/// limiter.run(async {}).await?;
/// assert_eq!(shared.remaining(), 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub trait RateSource<I: ClockInstant>: Send + Sync + 'static {
    /// The most cells it ever admits at once; a limiter whose weight is
    /// above it refuses to build, and a request above it fails with
    /// [`AcquireError::ExceedsCapacity`].
    fn burst(&self) -> u32;

    /// Asks for `n` cells now.
    fn admit(&self, n: u32) -> RateAdmit<I>;
}

/// A [`RateSource`]'s answer.
///
/// # Examples
///
/// ```
/// use limiters::{ManualInstant, RateDecision};
///
/// let decision: RateDecision<ManualInstant> = RateDecision::Admitted;
/// assert_eq!(decision, RateDecision::Admitted);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RateDecision<I> {
    /// The cells are taken: the request may start.
    Admitted,
    /// Not now: ask again at this instant.
    RetryAt(I),
    /// No decision, and none will come by retrying: the request fails with
    /// this error.
    Failed(AcquireError),
}

/// The future of [`RateSource::admit`]: either a decision at hand (no
/// allocation) or a boxed future (one allocation per decision, for a source
/// that asks a server: the round trip dwarfs it).
///
/// # Cancel safety
///
/// Dropping it drops the source's future. What that gives back is the
/// source's to say: a decision already taken on a server (cells spent
/// there) is not undone by the drop.
///
/// # Examples
///
/// ```
/// use limiters::{ManualInstant, RateAdmit, RateDecision};
///
/// # futures_lite::future::block_on(async {
/// let at_once: RateAdmit<ManualInstant> = RateAdmit::ready(RateDecision::Admitted);
/// assert_eq!(at_once.await, RateDecision::Admitted);
/// let remote = RateAdmit::<ManualInstant>::pending(async { RateDecision::Admitted });
/// assert_eq!(remote.await, RateDecision::Admitted);
/// # });
/// ```
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct RateAdmit<I> {
    inner: Admit<I>,
}

enum Admit<I> {
    Ready(Option<RateDecision<I>>),
    Pending(Pin<Box<dyn Future<Output = RateDecision<I>> + Send>>),
}

// SAFETY: a `RateAdmit` is only ever used through `Pin<&mut Self>` (`poll`)
// or by value; `&RateAdmit` gives access to nothing inside (`Debug` prints
// a constant). So sharing a `&RateAdmit` between threads cannot touch the
// boxed future, which need not be `Sync` (as `std::sync::Exclusive`).
unsafe impl<I: Send> Sync for RateAdmit<I> {}

// The boxed future is pinned on the heap and the ready decision is never
// pinned: moving a `RateAdmit` moves neither.
impl<I> Unpin for RateAdmit<I> {}

impl<I> RateAdmit<I> {
    /// A decision already made (a local source).
    ///
    /// # Examples
    ///
    /// See [`RateAdmit`].
    pub fn ready(decision: RateDecision<I>) -> Self {
        Self {
            inner: Admit::Ready(Some(decision)),
        }
    }

    /// A decision still to come (a remote source): boxed once.
    ///
    /// # Examples
    ///
    /// See [`RateAdmit`].
    pub fn pending(fut: impl Future<Output = RateDecision<I>> + Send + 'static) -> Self {
        Self {
            inner: Admit::Pending(Box::pin(fut)),
        }
    }
}

impl<I> RateAdmit<I> {
    /// The decision if it is at hand, without polling: a pending one is
    /// dropped unpolled, so nothing was asked of its source.
    pub(crate) fn decided(self) -> Option<RateDecision<I>> {
        match self.inner {
            Admit::Ready(decision) => decision,
            Admit::Pending(_) => None,
        }
    }
}

impl<I> Future for RateAdmit<I> {
    type Output = RateDecision<I>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<RateDecision<I>> {
        match &mut self.get_mut().inner {
            Admit::Ready(decision) => Poll::Ready(
                decision
                    .take()
                    .expect("RateAdmit polled after it completed"),
            ),
            Admit::Pending(fut) => fut.as_mut().poll(cx),
        }
    }
}

impl<I> fmt::Debug for RateAdmit<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RateAdmit { .. }")
    }
}

/// A local [`RateLimiter`] as a source: decided at once, no allocation.
impl<C: Clock> RateSource<C::Instant> for RateLimiter<C> {
    fn burst(&self) -> u32 {
        self.quota().burst()
    }

    fn admit(&self, n: u32) -> RateAdmit<C::Instant> {
        RateAdmit::ready(match self.check_n(n) {
            Ok(()) => RateDecision::Admitted,
            Err(RateLimitError::NotUntil(not_until)) => RateDecision::RetryAt(not_until.earliest()),
            Err(RateLimitError::InsufficientCapacity { requested, burst }) => {
                RateDecision::Failed(AcquireError::ExceedsCapacity {
                    requested: requested as usize,
                    capacity: burst as usize,
                })
            }
        })
    }
}

/// A source shared with other code.
impl<I: ClockInstant, S: RateSource<I>> RateSource<I> for Arc<S> {
    fn burst(&self) -> u32 {
        (**self).burst()
    }

    fn admit(&self, n: u32) -> RateAdmit<I> {
        (**self).admit(n)
    }
}
