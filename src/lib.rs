//! Runtime-agnostic limiters: call an API as fast as its limits allow, and
//! no faster.
//!
//! Async code is fast enough to overwhelm what it calls: fire 500 requests
//! with `join_all` and the server answers 429, throttles or bans. Pass every
//! call through a limiter instead. Every primitive here is a plain `Future`
//! built on [`event-listener`](https://docs.rs/event-listener)-style waking
//! with no executor dependency: the same limiter works from tokio, smol,
//! async-std, `futures_lite::future::block_on` or a plain thread.
//!
//! * [`Semaphore`]: at most `n` at once. Weighted, closable, cancel-safe and
//!   strictly FIFO (no barging, direct hand-off, exact wake-ups).
//! * [`BoundedSemaphore`]: a semaphore whose
//!   [`release`](BoundedSemaphore::release) refuses to push the count above
//!   its capacity.
//!
//! # Examples
//!
//! At most 10 requests in flight, whatever the runtime:
//!
//! ```
//! use limiters::Semaphore;
//!
//! async fn fetch(id: u32) -> u32 { id } // your HTTP call here
//!
//! # futures_lite::future::block_on(async {
//! let limit = Semaphore::new(10);
//! let calls = (0..500).map(|id| limit.run(fetch(id)));
//! let answers = futures::future::join_all(calls).await;
//! assert!(answers.iter().all(Result::is_ok));
//! # });
//! ```
//!
//! # Guarantees
//!
//! * **FIFO fairness**: waiters are served in the order they first polled;
//!   `try_acquire*` fails while anyone is queued; a large `acquire_many` at
//!   the head is never starved by small ones behind it.
//! * **Direct hand-off, exact wake-ups**: a release grants its permits to the
//!   waiters that can now proceed and wakes exactly those.
//! * **Cancel safety**: dropping any future at any point loses no permit and
//!   no wake-up.
//! * **Conservation**: available + held + granted-to-waiters is always the
//!   total; checked with loom and fuzzing.
//! * **No allocation per wait**: a queued waiter lives inside its future.
//!
//! # Features
//!
//! * `std` (default): blocking acquires for plain threads
//!   ([`Semaphore::acquire_blocking`]). Without it the crate is `no_std` (it
//!   needs `alloc`) and uses a spin lock for its short critical sections.
//! * `async-io` (default, implies `std`): the timer behind the system clock.
//! * `loom`: forwards `event-listener/loom`, for the models in `loom-tests/`
//!   (built with `RUSTFLAGS="--cfg loom"`).
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs, missing_debug_implementations, unsafe_op_in_unsafe_fn)]

extern crate alloc;

#[cfg(all(feature = "std", not(loom)))]
mod block;
mod bounded;
mod clock;
mod error;
mod rate;
mod semaphore;
mod sync;
mod wait_list;

pub use bounded::BoundedSemaphore;
pub use clock::{Clock, ClockInstant, ManualClock, ManualInstant, ManualSleep};
#[cfg(feature = "async-io")]
pub use clock::{SystemClock, SystemSleep};
pub use error::{AcquireError, OverRelease, TryAcquireError};
pub use error::{InsufficientCapacity, NotUntil, QuotaError, RateLimitError, TokenBucketError};
pub use rate::{
    BucketReservation, Quota, RateLimiter, Reservation, TokenBucket, TokenBucketBuilder,
};
pub use semaphore::{OwnedPermit, Permit, Semaphore};

/// Every named future the crate returns, for callers that store them.
pub mod futures {
    pub use crate::rate::{
        BucketAcquire, BucketAcquireMany, BucketRun, RateAcquire, RateAcquireMany, RateRun,
    };
    pub use crate::semaphore::{Acquire, AcquireOwned, Run};
}
