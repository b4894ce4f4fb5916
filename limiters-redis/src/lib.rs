//! One exact rate limit shared by many processes: the GCRA of
//! [`limiters::RateLimiter`] with its state in Redis (or Valkey, which speaks
//! the same protocol).
//!
//! Ten workers behind one API key, a fleet of servers allowing "100 per
//! minute per customer": with a local limiter each process gets the whole
//! quota. [`RedisRateLimiter`] (one quota) and [`KeyedRedisRateLimiter`] (one
//! quota per key) keep it in Redis instead, and decide atomically on the
//! server, with the same exact integer arithmetic as the local limiter.
//!
//! # How it decides
//!
//! One Lua script, sent once (EVALSHA, falling back to EVAL when the server
//! answers NOSCRIPT), reads the server's `TIME`, applies GCRA to the key's
//! *theoretical arrival time* and stores it with a TTL of the time until
//! full credit, so idle keys expire. The emission interval `period / cells`
//! is kept as a fraction: Lua's numbers are doubles, so every quantity
//! travels as *(seconds, nanoseconds, ticks of 1/cells ns)* and the script
//! only adds, subtracts and compares them, every part below 2^53. The
//! decisions equal [`limiters::RateLimiter`]'s on the same timeline (a
//! proptest drives both). A request for more cells than the burst is
//! refused at once, without a round trip. A pause (`Retry-After`) is stored
//! in the same key, so one process's 429 pauses the fleet.
//!
//! # Waiting and fairness
//!
//! `acquire` asks once, sleeps on the limiter's [`Clock`](limiters::Clock)
//! until the instant the server named, and asks again. Within a process,
//! waiters queue FIFO on a local semaphore and only the head asks; across
//! processes whichever request reaches the server first wins a free cell
//! (see [`RedisRateLimiter`]'s `# Fairness`).
//!
//! # Failures
//!
//! Every call has a timeout (default 50 ms), and a [`FailPolicy`] says what
//! a failure means: [`FailClosed`](FailPolicy::FailClosed) (an
//! [`Error::Backend`]), [`FailOpen`](FailPolicy::FailOpen) (admit) or
//! [`FallbackLocal`](FailPolicy::FallbackLocal) (decide in this process
//! with its share of the quota). Every failure is counted in
//! [`RedisStats`]. A restarted server (without persistence) has lost every
//! key: the quotas start afresh, with full burst credit.
//!
//! # Composing with `limiters::Limiter`
//!
//! [`RedisRateLimiter`] implements [`limiters::RateSource`], so
//! `Limiter::builder().concurrency(10).rate_source(redis_limiter)` gives "10
//! in flight in this process, 100 per second across the fleet":
//!
//! ```no_run
//! use limiters::{Limiter, Quota};
//! use limiters_redis::RedisRateLimiter;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let fleet = RedisRateLimiter::connect("redis://127.0.0.1/", "partner-api", Quota::per_second(100)).await?;
//! let limiter = Limiter::builder().concurrency(10).rate_source(fleet).build()?;
//! let answer = limiter.run(async { "call the partner API here" }).await?;
//! # let _ = answer; Ok(()) }
//! ```
//!
//! # Features
//!
//! * `tokio` (default): the redis client on tokio (redis's `tokio-comp`).
//! * `smol`: the redis client on smol / async-io (redis's `smol-comp`).
//!
//! At least one is needed (the redis client's connections run on one of
//! them); with both, the client picks tokio inside a tokio runtime.
//!
//! # Examples
//!
//! ```no_run
//! use limiters::Quota;
//! use limiters_redis::RedisRateLimiter;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // In every process of the fleet:
//! let limiter =
//!     RedisRateLimiter::connect("redis://127.0.0.1/", "partner-api", Quota::per_second(100).allow_burst(10))
//!         .await?;
//! for _ in 0..1_000 {
//!     limiter.acquire().await?; // 100 per second across all processes
//!     // call the partner API
//! }
//! # Ok(()) }
//! ```
#![warn(missing_docs, missing_debug_implementations)]

#[cfg(not(any(feature = "tokio", feature = "smol")))]
compile_error!("limiters-redis needs a runtime for its redis connections: enable the feature \"tokio\" or \"smol\"");

mod core;
mod error;
mod keyed;
mod limiter;
mod script;
#[cfg(test)]
mod tests;

pub use crate::core::{FailPolicy, RedisStats};
pub use crate::error::{BackendError, Error};
pub use crate::keyed::{KeyedRedisRateLimiter, KeyedRedisRateLimiterBuilder};
pub use crate::limiter::{RedisRateLimiter, RedisRateLimiterBuilder, DEFAULT_TIMEOUT};

/// The futures the limiters return, for callers that store them.
pub mod futures {
    pub use crate::core::Call;
}
