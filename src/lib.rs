//! Runtime-agnostic limiters for async and sync Rust.
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs, missing_debug_implementations, unsafe_op_in_unsafe_fn)]

extern crate alloc;

mod clock;
mod error;
mod rate;
mod sync;
mod wait_list;

pub use clock::{Clock, ClockInstant, ManualClock, ManualInstant, ManualSleep};
#[cfg(feature = "async-io")]
pub use clock::{SystemClock, SystemSleep};
pub use error::{AcquireError, OverRelease, TryAcquireError};
pub use error::{InsufficientCapacity, NotUntil, QuotaError, RateLimitError, TokenBucketError};
pub use rate::{
    BucketReservation, Quota, RateLimiter, Reservation, TokenBucket, TokenBucketBuilder,
};

/// The futures returned by the crate's primitives, named so they can be
/// stored in structs.
pub mod futures {
    pub use crate::rate::{
        BucketAcquire, BucketAcquireMany, BucketRun, RateAcquire, RateAcquireMany, RateRun,
    };
}
