//! Rate limiting: [`Quota`], the GCRA [`RateLimiter`] and the
//! [`TokenBucket`].
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

pub(crate) mod gcra;
pub(crate) mod quota;
pub(crate) mod reservation;
pub(crate) mod token_bucket;

pub use gcra::RateLimiter;
pub use quota::Quota;
pub use reservation::{RateAcquire, RateAcquireMany, RateRun, Reservation};
pub use token_bucket::{
    BucketAcquire, BucketAcquireMany, BucketReservation, BucketRun, TokenBucket, TokenBucketBuilder,
};
