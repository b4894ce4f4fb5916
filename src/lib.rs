//! Runtime-agnostic limiters: call an API as fast as its limits allow, and
//! no faster.
//!
//! Async code is fast enough to overwhelm what it calls: fire 500 requests
//! with `join_all` and the server answers 429, throttles or bans. Pass every
//! call through a limiter instead. Every primitive here is a plain `Future`
//! with no executor dependency: the same limiter works from tokio, smol,
//! async-std, `futures_lite::future::block_on` or a plain thread. Nothing is
//! spawned; time comes from a [`Clock`] ([`SystemClock`] sleeps on
//! `async-io`'s timer, [`ManualClock`] is advanced by hand in tests).
//!
//! * [`Semaphore`]: at most `n` at once. Weighted, closable, cancel-safe and
//!   strictly FIFO (no barging, direct hand-off, exact wake-ups).
//! * [`BoundedSemaphore`]: a semaphore whose
//!   [`release`](BoundedSemaphore::release) refuses to push the count above
//!   its capacity.
//! * [`SlidingWindow`]: "at most `n` in any window of length `period`", the
//!   way servers publish and enforce limits: up to `n` at once, never
//!   `n + 1` inside any window; exact, FIFO-fair, with Retry-After pauses.
//! * [`RateLimiter`]: exact integer GCRA, "`n` per period, bursts of `b`",
//!   smooth pacing with lock-free checks, FIFO-fair waiting, reservations,
//!   runtime quota changes and Retry-After pauses. [`TokenBucket`]: the same
//!   surface with discrete refills.
//! * [`Limiter`]: concurrency + any number of windows and rates + a minimum
//!   hold time, around any future with [`Limiter::run`]. [`KeyedLimiter`] and
//!   [`KeyedRateLimiter`]: the same per key (per host, per client IP), with
//!   idle keys evicted.
//!
//! # Sharing a limiter
//!
//! One convention for every primitive: a [`Semaphore`], [`BoundedSemaphore`],
//! [`RateLimiter`], [`TokenBucket`] or [`KeyedRateLimiter`] is a plain value;
//! share it between tasks through an `Arc` (or a `static`), and its methods
//! borrow it. [`Limiter`] and [`KeyedLimiter`] are already handles:
//! `Clone` shares one state, and their futures own a handle, so they are
//! `'static` and can be moved into a spawned task as they are.
//!
//! ```
//! use std::sync::Arc;
//! use limiters::{Limiter, Quota, RateLimiter};
//!
//! # futures_lite::future::block_on(async {
//! let rate = Arc::new(RateLimiter::new(Quota::per_second(1_000).allow_burst(4)));
//! let limiter = Limiter::builder().concurrency(2).build().unwrap();
//! let tasks: Vec<_> = (0..4)
//!     .map(|i| {
//!         let (rate, limiter) = (Arc::clone(&rate), limiter.clone());
//!         std::thread::spawn(move || {
//!             futures_lite::future::block_on(async move {
//!                 rate.acquire().await;
//!                 limiter.run(async move { i * 2 }).await.unwrap()
//!             })
//!         })
//!     })
//!     .collect();
//! let answers: Vec<u32> = tasks.into_iter().map(|t| t.join().unwrap()).collect();
//! assert_eq!(answers, [0, 2, 4, 6]);
//! # });
//! ```
//!
//! # `use limiters::prelude::*`
//!
//! The crate's [`futures`] module (every named future) shares its name with
//! the `futures` crate, so `use limiters::*;` shadows that crate (`cannot
//! find future in futures`). Import [`prelude`] instead: every type and
//! trait of the crate, without the `futures` module.
//!
//! # Examples
//!
//! An API allows 10 requests in flight, 50 per rolling second and 1,000 per
//! hour:
//!
//! ```
//! use std::time::Duration;
//! use limiters::Limiter;
//!
//! async fn call_api(id: u32) -> u32 { id } // your HTTP call here
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # futures_lite::future::block_on(async {
//! let limiter = Limiter::builder()
//!     .concurrency(10)                          // at most 10 in flight
//!     .window(50, Duration::from_secs(1))       // at most 50 in any second...
//!     .window(1_000, Duration::from_secs(3600)) // ...and 1,000 in any hour
//!     .build()?;
//! // 50 calls: all start at once (10 at a time), well inside both windows.
//! let calls = (0..50).map(|id| limiter.run(call_api(id)));
//! let answers = futures::future::join_all(calls).await;
//! assert!(answers.iter().all(Result::is_ok));
//! # Ok(())
//! # })
//! # }
//! ```
//!
//! `cargo run --example http_burst` shows it against a real local HTTP
//! server that enforces those limits itself: 200 requests fired naively get
//! mostly 429s; through a `Limiter`, all 200 get a 200.
//!
//! A call only worth making soon gets a deadline, on the limiter's own
//! clock: a wait known to end too late fails at once and takes nothing, a
//! request that times out while queued gives everything back:
//!
//! ```
//! use core::time::Duration;
//! use limiters::{DeadlineError, ManualClock, Quota, RateLimiter};
//!
//! # futures_lite::future::block_on(async {
//! let limiter = RateLimiter::with_clock(Quota::per_second(10), ManualClock::new());
//! let budget = Duration::from_millis(50);
//! assert!(limiter.acquire_within(budget).await.is_ok());
//! // The next cell is 100 ms away: shed the request instead of queueing.
//! let shed = limiter.acquire_within(budget).await;
//! assert!(matches!(shed, Err(DeadlineError::WouldExceed { .. })));
//! # });
//! ```
//!
//! A server that sheds load decides without waiting:
//! [`Limiter::try_run`] and [`Limiter::try_acquire`] (and
//! [`KeyedLimiter::try_run`] per key) admit now or take nothing, and the
//! [`LimiterTryError`] names the stage that refused and, for a rate, a
//! window or a pause, the `Retry-After`
//! ([`retry_after`](LimiterTryError::retry_after)).
//!
//! A stream of work is paced with `throttle` (feature `stream`): each item is
//! yielded only when the limiter admits it, FIFO with every other user:
//!
//! ```
//! # #[cfg(feature = "stream")]
//! # futures_lite::future::block_on(async {
//! use futures::StreamExt;
//! use limiters::{Quota, RateLimiter};
//!
//! let limiter = RateLimiter::new(Quota::per_second(1_000).allow_burst(10));
//! let pages = limiter.throttle(futures::stream::iter(1..=3));
//! assert_eq!(pages.collect::<Vec<_>>().await, [1, 2, 3]);
//! # });
//! ```
//!
//! Every primitive has a cheap `stats()` snapshot for dashboards and logs
//! (feature `metrics` publishes it through the `metrics` facade):
//!
//! ```
//! use limiters::{ManualClock, Quota, RateLimiter};
//!
//! let limiter = RateLimiter::with_clock(Quota::per_second(10).allow_burst(2), ManualClock::new());
//! for _ in 0..3 {
//!     let _ = limiter.check();
//! }
//! let stats = limiter.stats();
//! assert_eq!((stats.totals.admitted, stats.totals.denied, stats.remaining), (2, 1, 0));
//! ```
//!
//! # Choosing a limiter
//!
//! An API publishes its limits in two shapes, and they need different tools:
//!
//! * **"At most N requests in flight"**: a *concurrency* limit, a
//!   [`Semaphore`] or `Limiter::builder().concurrency(n)`. It does **not**
//!   cap calls per second: if each call takes 20 ms, 10 slots let through
//!   500 calls a second, and an API that allows 50 per second answers the
//!   other 450 with `429 Too Many Requests`.
//! * **"At most N requests per second / minute / hour"**: a *rate* limit. A
//!   server that publishes one almost always counts requests in a window and
//!   answers the `N + 1`-th with 429: use a [`SlidingWindow`], or
//!   `Limiter::builder().window(n, period)`. It admits up to N at once and
//!   never N + 1 inside any window of that length. It does **not** cap how
//!   many calls are in flight: if the server slows down, calls pile up.
//!
//! Most APIs publish both, and a client that respects only one of them still
//! gets 429s: use a [`Limiter`] with both. It takes the concurrency slot
//! first and the window (and rate) cells second, so they govern when work
//! starts.
//!
//! When is a window not the right rate tool?
//!
//! * **Smooth pacing**: to spread load evenly (a fragile backend, a crawler
//!   being polite, a server that enforces a token or leaky bucket of its
//!   own), use the GCRA [`RateLimiter`] (or `Limiter::builder().rate(..)`):
//!   one cell every `period / N`. [`Quota::per_second(n)`](Quota::per_second)
//!   has a burst of **1** unless you add
//!   [`allow_burst(b)`](Quota::allow_burst); with a burst of `b`, up to
//!   `b + N` can pass in one window of length `period`, which a windowed
//!   server would refuse.
//! * **Refills in lumps** ("10 every full second, unused ones carried over
//!   up to 50"): a [`TokenBucket`].
//!
//! | You need | Use |
//! | --- | --- |
//! | at most N at once | [`Semaphore`], or [`Limiter`] with `concurrency(n)` |
//! | a budget that must never be over-released | [`BoundedSemaphore`] |
//! | a published "N per period" (at most N in any window, up to N at once) | [`SlidingWindow`], or [`Limiter`] with `window(n, period)` |
//! | N per period paced smoothly, one every `period / N`, bursts of B | [`RateLimiter`] with `Quota::per_second(n).allow_burst(b)` |
//! | N tokens refilled every interval, in lumps | [`TokenBucket`] |
//! | several of the above around any future | [`Limiter`] |
//! | each call holds its slot at least `d` | [`Limiter`] with `concurrency(n).min_hold(d)` |
//! | the same limits per host or per user, plus a global cap shared fairly across them | [`KeyedLimiter`] |
//! | a concurrency limit nobody published, found from latency and 429s | [`Limiter`] with `adaptive(Gradient::new())` ([`Gradient`], [`Aimd`], or your [`Algorithm`]) |
//! | N per period per client IP, on a server | [`KeyedRateLimiter`] with `check(&ip)` |
//! | the server answered 429 with `Retry-After` | [`Limiter::pause_for`] / [`SlidingWindow::pause_for`] / [`RateLimiter::pause_for`] |
//!
//! Rules of thumb: match the published limits minus a little headroom (a
//! server counts requests when they *arrive*, and network jitter can put 51
//! into its "50 per second" window); share one limiter (clones of a
//! `Limiter` share one state); honour `Retry-After` on the limiter, so every
//! queued request waits too.
//!
//! Coming from tokio's or async-lock's semaphore, governor, leaky-bucket,
//! tower's `RateLimit`, reqwest-ratelimit, aiolimiter or Go's
//! `x/time/rate`? The repository's `docs/comparison.md` maps each onto the
//! types here and says where the semantics differ.
//!
//! # Guarantees
//!
//! * **FIFO fairness**: waiters are served in the order they first polled;
//!   `try_acquire*` and `check` never barge past a waiter; a large
//!   `acquire_many` at the head is never starved by small ones behind it.
//! * **Direct hand-off, exact wake-ups**: a release grants its permits to the
//!   waiters that can now proceed and wakes exactly those; a rate waiter
//!   sleeps once, until its own slot.
//! * **Cancel safety**: dropping any future at any point loses no permit and
//!   no wake-up; a cancelled rate reservation refunds what no later
//!   reservation depends on.
//! * **Conservation**: available + held + granted to waiters is always the
//!   total (loom, fuzzing, proptest).
//! * **Exact rates**: at most `b + floor(W * n / period)` cells in any window
//!   of length `W`, in integer arithmetic: 300,000,000 per second is exactly
//!   that. Idle time never builds more than `b` of credit. A sliding window
//!   of `n` per `period` never admits `n + 1` in any closed window of length
//!   `period`.
//! * **No allocation per wait**: every queued waiter lives inside its future.
//! * **Clear errors**: impossible requests, zero rates, over-release and
//!   overflow get named errors whose messages say what to do.
//!
//! # Features
//!
//! * `std` (default): blocking acquires for plain threads
//!   ([`Semaphore::acquire_blocking`]), `std::error::Error` for the errors,
//!   and the keyed limiters. Without it the crate is `no_std` (it needs
//!   `alloc`) and its locks spin. Most critical sections are a few
//!   pointer updates, but re-timing a rate limiter's queue
//!   (`set_quota`, `pause_*`) walks every waiter while holding the lock,
//!   and other threads spin for that long.
//! * `async-io` (default, implies `std`): [`SystemClock`], the real-time
//!   clock that sleeps on `async-io`'s timer, and the default clock type of
//!   the rate limiters and `Limiter`. Without it, use [`ManualClock`] or your
//!   own [`Clock`].
//! * `stream` (default): [`RateLimiter::throttle`], [`TokenBucket::throttle`]
//!   and [`Limiter::throttle`], a [`futures_core::Stream`] whose items are
//!   yielded only as the limiter admits them. Adds `futures-core`.
//! * `tower`: the `limiters::tower` module, a [`Limiter`] as a tower layer
//!   (`LimiterLayer`) and per-client HTTP rate limits answered `429` with
//!   `Retry-After` and the IETF `RateLimit` headers
//!   (`KeyedRateLimitLayer`). Adds `tower-service`, `tower-layer` and
//!   `http`; implies `std`.
//! * `metrics`: `record(label)` on every `stats()` snapshot, publishing its
//!   figures as gauges and counters through the `metrics` facade with a
//!   `limiter` label (see the `limiters::metrics` module). Adds `metrics`;
//!   implies `std`.
#![cfg_attr(not(feature = "std"), no_std)]
// docs.rs builds with `--cfg docsrs` on nightly, where `doc_cfg` badges every
// feature-gated item with its feature, explicit `doc(cfg)` or not.
#![cfg_attr(docsrs, feature(doc_cfg))]
// The docs are written for the default features (docs.rs builds all of
// them); without some, links to the items they gate have no target.
#![cfg_attr(
    not(all(feature = "std", feature = "async-io", feature = "stream")),
    allow(rustdoc::broken_intra_doc_links)
)]
#![warn(missing_docs, missing_debug_implementations, unsafe_op_in_unsafe_fn)]

extern crate alloc;

#[cfg(all(feature = "std", not(loom)))]
mod block;
mod bounded;
mod clock;
mod deadline;
mod error;
#[cfg(feature = "std")]
mod keyed;
mod limiter;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
mod rate;
mod semaphore;
mod stats;
mod sync;
#[cfg(feature = "stream")]
mod throttle;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;
mod wait_list;

pub use bounded::BoundedSemaphore;
pub use clock::{Clock, ClockInstant, ManualClock, ManualInstant, ManualSleep};
#[cfg(feature = "async-io")]
#[cfg_attr(docsrs, doc(cfg(feature = "async-io")))]
pub use clock::{SystemClock, SystemSleep};
pub use error::{AcquireError, DeadlineError, OverRelease, RateSourceError, TryAcquireError};
pub use error::{
    BuildError, InsufficientCapacity, NotUntil, QuotaError, RateLimitError, TokenBucketError,
};
pub use error::{KeyedTryError, LimiterTryError};
#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
pub use keyed::{KeyedLimiter, KeyedPermit, KeyedRateLimiter};
pub use limiter::{Aimd, Algorithm, Gradient, Outcome, Sample};
pub use limiter::{Limiter, LimiterBuilder, LimiterPermit, RateAdmit, RateDecision, RateSource};
pub use rate::{
    BucketReservation, Quota, RateLimiter, Reservation, SlidingWindow, TokenBucket,
    TokenBucketBuilder,
};
pub use semaphore::{OwnedPermit, Permit, Semaphore};
pub use stats::{KeyedStats, LimiterStats, RateStats, SemaphoreStats, Totals};

/// The crate's types and traits for a glob import, without the
/// [`futures`] module (whose name would shadow the `futures` crate).
///
/// # Examples
///
/// ```
/// use limiters::prelude::*;
///
/// let limiter = RateLimiter::with_clock(Quota::per_second(5), ManualClock::new());
/// assert!(limiter.check().is_ok());
/// ```
pub mod prelude {
    pub use crate::{
        AcquireError, BoundedSemaphore, BucketReservation, BuildError, Clock, ClockInstant,
        DeadlineError, InsufficientCapacity, KeyedTryError, Limiter, LimiterBuilder, LimiterPermit,
        LimiterTryError, ManualClock, ManualInstant, ManualSleep, NotUntil, OverRelease,
        OwnedPermit, Permit, Quota, QuotaError, RateLimitError, RateLimiter, Reservation,
        Semaphore, SlidingWindow, TokenBucket, TokenBucketBuilder, TokenBucketError,
        TryAcquireError,
    };
    #[cfg(feature = "std")]
    pub use crate::{KeyedLimiter, KeyedPermit, KeyedRateLimiter};
    #[cfg(feature = "async-io")]
    pub use crate::{SystemClock, SystemSleep};
}

/// Every named future the crate returns, for callers that store them.
pub mod futures {
    pub use crate::deadline::{Attempt, Within};
    #[cfg(feature = "std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub use crate::keyed::{
        KeyedAcquire, KeyedRateAcquire, KeyedRateAcquireMany, KeyedRateAcquireWithin, KeyedRun,
        KeyedTryRun,
    };
    pub use crate::limiter::{
        LimiterAcquire, LimiterAcquireWithin, LimiterRun, LimiterRunWithin, LimiterTryRun, TryRun,
    };
    pub use crate::rate::{
        BucketAcquire, BucketAcquireMany, BucketAcquireWithin, BucketRun, RateAcquire,
        RateAcquireMany, RateAcquireWithin, RateRun, WindowAcquire, WindowAcquireMany,
        WindowAcquireWithin, WindowRun,
    };
    pub use crate::semaphore::{Acquire, AcquireOwned, Run};
    #[cfg(feature = "stream")]
    pub use crate::throttle::{Admit, Throttle};
    #[cfg(feature = "tower")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
    pub use crate::tower::{KeyedResponseFuture, ResponseFuture};
}
