//! Rate limiting: [`Quota`], the GCRA [`RateLimiter`], the [`TokenBucket`]
//! and the [`SlidingWindow`].
//!
//! # Which one
//!
//! - [`RateLimiter`] (GCRA) when a service publishes "N per period, bursts of
//!   B": cells are admitted evenly, one every `period / N`, with at most `B`
//!   at once after an idle spell. The state is one atomic word; the quota can
//!   change at run time and `pause_for` honours `Retry-After`.
//! - [`TokenBucket`] when the limit is described as a bucket: up to `max`
//!   tokens, `refill` of them added every `interval`, in discrete lumps (for
//!   example "10 requests every full second, unused ones carried over up to
//!   50").
//! - [`SlidingWindow`] when a service publishes "at most N in any window of
//!   length P" (a rolling second, an hour): up to N at once, never N + 1
//!   inside any window.

/// Defines a `run` future: it waits for `$acquire` (one cell), then polls
/// the wrapped future to completion. `RateRun` and `BucketRun` are both this.
macro_rules! run_future {
    ($(#[$attr:meta])* $name:ident, $acquire:ident) => {
        pin_project_lite::pin_project! {
            $(#[$attr])*
            #[must_use = "futures do nothing unless you .await or poll them"]
            pub struct $name<'a, C: Clock, F> {
                #[pin]
                acquire: $acquire<'a, C>,
                admitted: bool,
                #[pin]
                fut: F,
            }
        }

        impl<'a, C: Clock, F> $name<'a, C, F> {
            pub(crate) fn new(acquire: $acquire<'a, C>, fut: F) -> Self {
                $name {
                    acquire,
                    admitted: false,
                    fut,
                }
            }
        }

        impl<C: Clock, F> core::fmt::Debug for $name<'_, C, F> {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("admitted", &self.admitted)
                    .finish_non_exhaustive()
            }
        }

        impl<C: Clock, F: core::future::Future> core::future::Future for $name<'_, C, F> {
            type Output = F::Output;

            fn poll(
                self: core::pin::Pin<&mut Self>,
                cx: &mut core::task::Context<'_>,
            ) -> core::task::Poll<F::Output> {
                let this = self.project();
                if !*this.admitted {
                    if this.acquire.poll(cx).is_pending() {
                        return core::task::Poll::Pending;
                    }
                    *this.admitted = true;
                }
                this.fut.poll(cx)
            }
        }
    };
}
pub(crate) use run_future;

pub(crate) mod arith;
pub(crate) mod gcra;
pub(crate) mod quota;
pub(crate) mod reciprocal;
pub(crate) mod reservation;
pub(crate) mod reserved;
pub(crate) mod token_bucket;
pub(crate) mod window;

pub use gcra::RateLimiter;
pub use quota::Quota;
pub use reservation::{RateAcquire, RateAcquireMany, RateAcquireWithin, RateRun, Reservation};
pub use token_bucket::{
    BucketAcquire, BucketAcquireMany, BucketAcquireWithin, BucketReservation, BucketRun,
    TokenBucket, TokenBucketBuilder,
};
pub use window::{SlidingWindow, WindowAcquire, WindowAcquireMany, WindowAcquireWithin, WindowRun};
