//! The composite [`Limiter`]: a concurrency limit, any number of sliding
//! windows and rates, and a minimum hold in front of any future, with
//! `limiter.run(fut)`.

mod adaptive;
mod futures;
mod shed;
mod source;
mod state;

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::future::Future;
use core::time::Duration;

pub use self::adaptive::{Aimd, Algorithm, Gradient, Outcome, Sample};
pub use self::futures::{LimiterAcquire, LimiterRun, LimiterRunWithin};
pub use self::shed::{LimiterTryRun, TryRun};
pub use self::source::{RateAdmit, RateDecision, RateSource};
use self::state::{Admitted, Inner};
use crate::clock::Clock;
#[cfg(feature = "async-io")]
use crate::clock::SystemClock;
use crate::deadline::Within;
use crate::error::BuildError;
use crate::rate::quota::Quota;
use crate::semaphore::Semaphore;
use crate::stats::LimiterStats;

/// The future returned by [`Limiter::acquire_within`] (see
/// [`Within`](crate::futures::Within)).
pub type LimiterAcquireWithin<C> = Within<LimiterAcquire<C>>;

crate::clock::with_default! {
    /// Wraps any future in every limit an API publishes: at most `n` in
    /// flight, one or more rates ("10 per second *and* 1,000 per hour"),
    /// and a minimum time each call holds its slot.
    ///
    /// Build one with [`Limiter::builder`], then pass every call through
    /// [`run`](Self::run) (or hold a [`LimiterPermit`] from
    /// [`acquire`](Self::acquire)). It works from any runtime: nothing is
    /// spawned, time comes from the limiter's [`Clock`].
    ///
    /// `Limiter` is a handle: clones share one state, so every clone
    /// counts against the same limits: cloning a handle (or a service
    /// wrapped in it) never multiplies the limit.
    ///
    /// # Order of stages
    ///
    /// A request passes three stages, in this order:
    ///
    /// 1. **concurrency**: it waits for `weight` slots of a FIFO
    ///    [`Semaphore`];
    /// 2. **minimum hold**: if slots were given back before their
    ///    [`min_hold`](LimiterBuilder::min_hold) ended, it waits until
    ///    they really are free;
    /// 3. **rate**: it waits, in FIFO order, until every
    ///    [`window`](LimiterBuilder::window) and every
    ///    [`rate`](LimiterBuilder::rate) admits `weight` cells (and no
    ///    [`pause`](Self::pause_for) is in force), and takes them all at
    ///    that instant.
    ///
    /// Taking the slot first means the rate governs when work actually
    /// starts: a request never spends a rate cell and then waits for a
    /// slot. Slots are released when the work completes, panics or is
    /// dropped, but not before `min_hold` has passed since it started.
    ///
    /// # Fairness
    ///
    /// Both queues are FIFO: requests are admitted in the order they
    /// reached the concurrency queue (or the rate queue, without a
    /// concurrency limit). The head of the rate queue sleeps exactly
    /// until the first instant every quota admits it, so the limiter
    /// never idles while all its limits would admit the head.
    ///
    /// # Cancel safety
    ///
    /// Dropping a [`run`](Self::run) or [`acquire`](Self::acquire)
    /// future at any await gives back everything it holds: its place in
    /// a queue, its slot, the head of the rate queue. Rate cells are only
    /// taken at the instant of admission, so a cancelled request never
    /// spends one.
    ///
    /// # Minimum hold
    ///
    /// With [`min_hold(d)`](LimiterBuilder::min_hold), a slot counts as
    /// in use for at least `d` from admission, even if the work finished
    /// (or was dropped, or panicked) sooner: `concurrency(n)` plus
    /// `min_hold(d)` admits at most `n` requests in any window of length
    /// `d`. A slot released early goes back to the semaphore at once but
    /// leaves a record "busy until `t`" behind; requests that receive a
    /// slot queue (FIFO) behind those records, and only the head of that
    /// queue sleeps on the clock, until exactly the instant enough of
    /// them expire (or a release frees a slot sooner). Nothing is
    /// spawned, `run` returns its output as soon as the future
    /// completes, and no timer is left behind when nobody waits.
    ///
    /// # Examples
    ///
    /// A client of an API that allows 10 requests in flight and 50 per
    /// second fires 200 calls at once and lets the limiter pace them:
    ///
    /// ```
    /// use limiters::{Limiter, Quota};
    ///
    /// async fn call_api(id: u32) -> u32 { id } // your HTTP call here
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = Limiter::builder()
    ///     .concurrency(10)
    ///     .rate(Quota::per_second(50).allow_burst(50))
    ///     .build()?;
    /// let calls = (0..200).map(|id| limiter.run(call_api(id)));
    /// let answers = futures::future::join_all(calls).await;
    /// assert!(answers.iter().all(Result::is_ok));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub struct Limiter<C: Clock = SystemClock> {
        inner: Arc<Inner<C>>,
    }

    /// What [`Limiter::acquire`] returns: the right to start one unit of
    /// work (of the permit's weight). Dropping it gives the slot back,
    /// after the minimum hold if one is set.
    ///
    /// It owns a handle to the limiter, so it can move into a spawned
    /// task or another thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Limiter;
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = Limiter::builder().concurrency(1).build().unwrap();
    /// let permit = limiter.acquire().await.unwrap();
    /// assert_eq!(permit.weight(), 1);
    /// assert_eq!(limiter.available_slots(), Some(0));
    /// drop(permit);
    /// assert_eq!(limiter.available_slots(), Some(1));
    /// # });
    /// ```
    #[must_use = "the slot is released as soon as the LimiterPermit is dropped"]
    pub struct LimiterPermit<C: Clock = SystemClock> {
        inner: Arc<Inner<C>>,
        admitted: Admitted,
        // Reported to an adaptive limit when dropped.
        outcome: Outcome,
    }

    /// Builds a [`Limiter`]; see [`Limiter::builder`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use limiters::{Limiter, Quota};
    ///
    /// let limiter = Limiter::builder()
    ///     .concurrency(4)
    ///     .rate(Quota::per_second(10)) // paced: one every 100 ms
    ///     .window(1_000, Duration::from_secs(3600)) // at most 1,000 in any hour
    ///     .min_hold(Duration::from_millis(100))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(limiter.concurrency(), Some(4));
    /// ```
    #[must_use = "a builder does nothing until build() is called"]
    pub struct LimiterBuilder<C: Clock = SystemClock> {
        clock: C,
        concurrency: Option<usize>,
        quotas: Vec<Quota>,
        windows: Vec<(u32, Duration)>,
        adaptive: Option<adaptive::Factory>,
        min_hold: Option<Duration>,
        weight: u32,
        sources: Vec<Arc<dyn RateSource<C::Instant>>>,
    }
}

#[cfg(feature = "async-io")]
#[cfg_attr(docsrs, doc(cfg(feature = "async-io")))]
impl Limiter {
    /// Starts building a limiter on the [`SystemClock`]; set at least one of
    /// [`concurrency`](LimiterBuilder::concurrency) and
    /// [`rate`](LimiterBuilder::rate).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{Limiter, Quota};
    ///
    /// let limiter = Limiter::builder().rate(Quota::per_second(5)).build().unwrap();
    /// assert_eq!(limiter.concurrency(), None);
    /// ```
    pub fn builder() -> LimiterBuilder {
        LimiterBuilder::with_clock(SystemClock)
    }
}

impl<C: Clock> LimiterBuilder<C> {
    /// The most [`rate_source`](Self::rate_source)s one limiter takes;
    /// [`build`](Self::build) refuses more with
    /// [`BuildError::TooManyRateSources`].
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::LimiterBuilder;
    ///
    /// assert_eq!(LimiterBuilder::<limiters::SystemClock>::MAX_RATE_SOURCES, 65_535);
    /// ```
    pub const MAX_RATE_SOURCES: usize = u16::MAX as usize;

    /// A builder whose limiter reads time from `clock` (the only way to start
    /// one without the `async-io` feature).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{LimiterBuilder, ManualClock, Quota};
    ///
    /// let limiter = LimiterBuilder::with_clock(ManualClock::new())
    ///     .rate(Quota::per_second(1))
    ///     .build()
    ///     .unwrap();
    /// # drop(limiter);
    /// ```
    pub fn with_clock(clock: C) -> Self {
        Self {
            clock,
            concurrency: None,
            quotas: Vec::new(),
            windows: Vec::new(),
            adaptive: None,
            min_hold: None,
            weight: 1,
            sources: Vec::new(),
        }
    }

    /// At most `n` requests (of weight 1) in flight at once, served in FIFO
    /// order. Setting it again replaces the value.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Limiter;
    ///
    /// let limiter = Limiter::builder().concurrency(8).build().unwrap();
    /// assert_eq!(limiter.available_slots(), Some(8));
    /// ```
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = Some(n);
        self.adaptive = None;
        self
    }

    /// An adaptive concurrency limit instead of a fixed one: it starts at
    /// the algorithm's initial limit and moves between its bounds with
    /// what each request reports: [`run`](Limiter::run) counts a completed
    /// future as [`Outcome::Success`] and a dropped one as
    /// [`Outcome::Ignore`]; with [`acquire`](Limiter::acquire), mark the
    /// permit ([`LimiterPermit::overloaded`] on a 429 or 503, or a
    /// timeout). Latency is measured on the limiter's clock, from admission
    /// to release. Replaces [`concurrency`](Self::concurrency) (setting
    /// either replaces the other).
    ///
    /// The limit shrinks without revoking anything: permits released above
    /// it are forgotten. It grows by handing new permits to the head of the
    /// queue, in FIFO order. A minimum hold counts against the algorithm's
    /// maximum limit, not the current one.
    ///
    /// # Examples
    ///
    /// A client that finds how much a server takes, and backs off on 429:
    ///
    /// ```
    /// use limiters::{Gradient, Limiter, Quota};
    ///
    /// async fn call() -> u16 { 200 } // your HTTP call: the status
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = Limiter::builder()
    ///     .adaptive(Gradient::new().initial(10).max(200))
    ///     .rate(Quota::per_second(500).allow_burst(50))
    ///     .build()?;
    /// let mut permit = limiter.acquire().await?;
    /// if call().await == 429 {
    ///     permit.overloaded(); // shrinks the limit when the permit drops
    /// }
    /// drop(permit);
    /// assert_eq!(limiter.limit(), Some(11)); // a success at flat latency: +10%
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn adaptive<A: Algorithm + Clone + Sync>(mut self, algorithm: A) -> Self {
        self.adaptive = Some(Arc::new(move || Box::new(algorithm.clone())));
        self.concurrency = None;
        self
    }

    /// Adds a rate (GCRA: cells paced evenly, bursts of the quota's burst,
    /// 1 by default). Every rate added must admit a request:
    /// `.rate(10/s, burst 10).rate(100/min)` allows bursts up to 10 and
    /// averages at most 100 a minute. For a limit a server publishes as "N
    /// per period", prefer [`window`](Self::window).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{Limiter, Quota};
    ///
    /// let limiter = Limiter::builder()
    ///     .rate(Quota::per_second(10).allow_burst(10))
    ///     .rate(Quota::per_minute(100))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(limiter.quotas().len(), 2);
    /// ```
    pub fn rate(mut self, quota: Quota) -> Self {
        self.quotas.push(quota);
        self
    }

    /// Adds a sliding window: at most `n` requests start in any window of
    /// length `period`, and up to `n` at once after an idle spell. Use it
    /// for a limit a server publishes and enforces ("1,000 per hour", "50
    /// per rolling second"): unlike a rate with a burst, it never lets
    /// request `n + 1` into any window. Repeatable, like
    /// [`rate`](Self::rate); every window and rate must admit a request.
    /// Exact up to [`SlidingWindow::EXACT_MAX`](crate::SlidingWindow::EXACT_MAX)
    /// (4,096) cells, conservative above (see
    /// [`SlidingWindow`'s memory notes](crate::SlidingWindow#memory)).
    ///
    /// # Examples
    ///
    /// 50 per rolling second and 1,000 per hour, the whole allowance usable
    /// at once:
    ///
    /// ```
    /// use std::time::Duration;
    /// use limiters::Limiter;
    ///
    /// let limiter = Limiter::builder()
    ///     .window(50, Duration::from_secs(1))
    ///     .window(1_000, Duration::from_secs(3600))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(limiter.windows(), [(50, Duration::from_secs(1)), (1_000, Duration::from_secs(3600))]);
    /// ```
    pub fn window(mut self, n: u32, period: Duration) -> Self {
        self.windows.push((n, period));
        self
    }

    /// Each slot stays in use for at least `d` from admission, even when the
    /// work finishes sooner (the "sleep inside the semaphore" pattern, without
    /// delaying the caller). Needs [`concurrency`](Self::concurrency).
    ///
    /// # Examples
    ///
    /// At most 2 calls start in any 1-second window, however fast they are:
    ///
    /// ```
    /// use std::time::Duration;
    /// use limiters::Limiter;
    ///
    /// let limiter = Limiter::builder()
    ///     .concurrency(2)
    ///     .min_hold(Duration::from_secs(1))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(limiter.min_hold(), Duration::from_secs(1));
    /// ```
    pub fn min_hold(mut self, d: Duration) -> Self {
        self.min_hold = Some(d);
        self
    }

    /// What [`run`](Limiter::run) and [`acquire`](Limiter::acquire) charge:
    /// slots and cells per call (default 1). For example, an API whose
    /// every call of this kind costs 5 units.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{Limiter, Quota};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = Limiter::builder()
    ///     .rate(Quota::per_second(100).allow_burst(10))
    ///     .weight(5)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(limiter.acquire().await.unwrap().weight(), 5);
    /// # });
    /// ```
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// Adds a rate this limiter asks instead of keeping: a shared
    /// [`RateLimiter`](crate::RateLimiter) (`Arc<RateLimiter>`), or a quota
    /// kept on a server for a whole fleet (`limiters-redis`'s
    /// `RedisRateLimiter`). With `.concurrency(10).rate_source(fleet)`:
    /// 10 in flight in this process, the fleet's rate across all of them.
    ///
    /// The head of the rate queue asks each source once the limiter's own
    /// quotas admit it, sleeps until the instant a source names, and asks
    /// again; a source's failure fails the request with
    /// [`AcquireError::RateSource`](crate::AcquireError::RateSource) (the
    /// source's own policy decides whether it fails). A limiter without
    /// sources pays one branch per request for this.
    ///
    /// Set the [`clock`](Self::clock) first: a source's decisions are
    /// instants of it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use limiters::{Limiter, Quota, RateLimiter};
    ///
    /// let org_wide = Arc::new(RateLimiter::new(Quota::per_second(100)));
    /// let limiter = Limiter::builder()
    ///     .concurrency(10)
    ///     .rate_source(Arc::clone(&org_wide))
    ///     .build()
    ///     .unwrap();
    /// # drop(limiter);
    /// ```
    pub fn rate_source(mut self, source: impl RateSource<C::Instant>) -> Self {
        self.sources.push(Arc::new(source));
        self
    }

    /// Reads time from `clock` instead (a [`ManualClock`](crate::ManualClock)
    /// in tests).
    ///
    /// # Panics
    ///
    /// If a [`rate_source`](Self::rate_source) was added before: its
    /// decisions are instants of the old clock. Set the clock first.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{Limiter, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = Limiter::builder().concurrency(1).clock(clock.clone()).build().unwrap();
    /// assert_eq!(limiter.clock().now(), clock.now());
    /// ```
    #[track_caller]
    pub fn clock<C2: Clock>(self, clock: C2) -> LimiterBuilder<C2> {
        assert!(
            self.sources.is_empty(),
            "LimiterBuilder::clock: set the clock before rate_source(), whose decisions are \
             instants of the clock"
        );
        LimiterBuilder {
            clock,
            concurrency: self.concurrency,
            quotas: self.quotas,
            windows: self.windows,
            adaptive: self.adaptive,
            min_hold: self.min_hold,
            weight: self.weight,
            sources: Vec::new(),
        }
    }

    /// Checks the limits and builds the limiter.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] naming what is wrong: no limit at all, a
    /// concurrency of 0 (or above [`Semaphore::MAX_PERMITS`]), a
    /// `min_hold` without a concurrency limit, a weight of 0, or a weight
    /// that no call could ever get (above the concurrency or a rate's
    /// burst), or more than [`MAX_RATE_SOURCES`](Self::MAX_RATE_SOURCES)
    /// rate sources.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{BuildError, Limiter, Quota};
    ///
    /// assert_eq!(Limiter::builder().build().unwrap_err(), BuildError::NoLimits);
    /// let err = Limiter::builder().rate(Quota::per_second(5)).weight(2).build().unwrap_err();
    /// assert_eq!(err, BuildError::WeightExceedsBurst { weight: 2, burst: 1 });
    /// ```
    pub fn build(mut self) -> Result<Limiter<C>, BuildError> {
        let algorithm = self.adaptive.as_ref().map(|make| make());
        if let Some(algorithm) = &algorithm {
            self.concurrency = Some(algorithm.max_limit().max(1));
        }
        if self.concurrency.is_none()
            && self.quotas.is_empty()
            && self.windows.is_empty()
            && self.sources.is_empty()
        {
            return Err(BuildError::NoLimits);
        }
        for &(n, period) in &self.windows {
            crate::rate::window::validate(n, period).map_err(BuildError::InvalidWindow)?;
        }
        if let Some(n) = self.concurrency {
            if n == 0 {
                return Err(BuildError::ZeroConcurrency);
            }
            if n > Semaphore::MAX_PERMITS {
                return Err(BuildError::ConcurrencyTooLarge {
                    requested: n,
                    max: Semaphore::MAX_PERMITS,
                });
            }
            if self.weight as usize > n {
                return Err(BuildError::WeightExceedsConcurrency {
                    weight: self.weight,
                    concurrency: n,
                });
            }
        }
        let min_hold = self.min_hold.unwrap_or(Duration::ZERO);
        if self.concurrency.is_none() && !min_hold.is_zero() {
            return Err(BuildError::MinHoldWithoutConcurrency);
        }
        if self.weight == 0 {
            return Err(BuildError::ZeroWeight);
        }
        if let Some(q) = self.quotas.iter().find(|q| q.burst() < self.weight) {
            return Err(BuildError::WeightExceedsBurst {
                weight: self.weight,
                burst: q.burst(),
            });
        }
        if let Some(&(n, _)) = self.windows.iter().find(|&&(n, _)| n < self.weight) {
            return Err(BuildError::WeightExceedsWindow {
                weight: self.weight,
                limit: n,
            });
        }
        if self.sources.len() > Self::MAX_RATE_SOURCES {
            return Err(BuildError::TooManyRateSources {
                count: self.sources.len(),
                max: Self::MAX_RATE_SOURCES,
            });
        }
        if let Some(s) = self.sources.iter().find(|s| s.burst() < self.weight) {
            return Err(BuildError::WeightExceedsBurst {
                weight: self.weight,
                burst: s.burst(),
            });
        }
        let inner = Inner::new(
            self.clock,
            self.concurrency,
            min_hold,
            self.quotas,
            self.windows,
            self.weight,
            self.sources,
        );
        let inner = match algorithm {
            Some(algorithm) => inner.with_adaptive(algorithm),
            None => inner,
        };
        Ok(Limiter {
            inner: Arc::new(inner),
        })
    }
}

impl<C: Clock> Limiter<C> {
    /// Runs `fut` once the limiter admits it (one slot and one cell of every
    /// rate, or the configured weight), then gives the slot back as soon as
    /// `fut` completes.
    ///
    /// The returned future owns a handle to the limiter: it is `'static`
    /// whenever `fut` is, so it can be spawned.
    ///
    /// # Cancel safety
    ///
    /// Dropping it at any point gives back its place in the queues and its
    /// slot (after the minimum hold, if `fut` had started), and spends no
    /// rate cell unless `fut` had been admitted. If `fut` panics, unwinding
    /// drops the permit, and the slot comes back the same way.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Closed`](crate::AcquireError::Closed) if the limiter is closed before admission
    /// (`fut` is then never polled).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{Limiter, Quota};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = Limiter::builder().concurrency(10).rate(Quota::per_second(1_000)).build()?;
    /// let body = limiter.run(async { "response" }).await?;
    /// assert_eq!(body, "response");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn run<F: Future>(&self, fut: F) -> LimiterRun<C, F> {
        LimiterRun::new(Arc::clone(&self.inner), self.inner.weight, fut)
    }

    /// Waits until the limiter admits one request of the configured weight
    /// (see [`LimiterBuilder::weight`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: see [`LimiterAcquire`].
    ///
    /// # Errors
    ///
    /// [`AcquireError::Closed`](crate::AcquireError::Closed) if the limiter is closed before admission.
    ///
    /// # Examples
    ///
    /// Hold the permit across several steps of one logical request:
    ///
    /// ```
    /// use limiters::Limiter;
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = Limiter::builder().concurrency(2).build().unwrap();
    /// let permit = limiter.acquire().await?;
    /// // ... connect, send, read ...
    /// drop(permit);
    /// # Ok::<(), limiters::AcquireError>(())
    /// # }).unwrap();
    /// ```
    pub fn acquire(&self) -> LimiterAcquire<C> {
        self.acquire_many(self.inner.weight)
    }

    /// Waits until the limiter admits a request of `weight`: `weight` slots
    /// and `weight` cells of every rate, all at once.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: see [`LimiterAcquire`].
    ///
    /// # Errors
    ///
    /// * [`AcquireError::ExceedsCapacity`](crate::AcquireError::ExceedsCapacity) at once if `weight` exceeds the
    ///   concurrency, [`AcquireError::InsufficientCapacity`](crate::AcquireError::InsufficientCapacity)
    ///   if it exceeds a rate's burst or a window's size (it could never be admitted);
    /// * [`AcquireError::Closed`](crate::AcquireError::Closed) if the limiter is closed first.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{AcquireError, Limiter, Quota};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = Limiter::builder()
    ///     .concurrency(10)
    ///     .rate(Quota::per_second(100).allow_burst(20))
    ///     .build()
    ///     .unwrap();
    /// let batch = limiter.acquire_many(8).await.unwrap();
    /// assert_eq!(limiter.available_slots(), Some(2));
    /// drop(batch);
    /// assert_eq!(
    ///     limiter.acquire_many(11).await.unwrap_err(),
    ///     AcquireError::ExceedsCapacity { requested: 11, capacity: 10 }
    /// );
    /// # });
    /// ```
    pub fn acquire_many(&self, weight: u32) -> LimiterAcquire<C> {
        LimiterAcquire::new(Arc::clone(&self.inner), weight)
    }

    /// Blocks the current thread until the limiter admits one call: the
    /// blocking form of [`acquire`](Self::acquire).
    ///
    /// For plain threads; never call it from async code (it would block the
    /// executor). Blocking waiters share the FIFO queue of async ones.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Limiter;
    ///
    /// let limiter = Limiter::builder().concurrency(2).build()?;
    /// std::thread::scope(|s| {
    ///     for _ in 0..4 {
    ///         s.spawn(|| {
    ///             let _permit = limiter.acquire_blocking().unwrap();
    ///             // at most 2 threads are here at once
    ///         });
    ///     }
    /// });
    /// # Ok::<(), limiters::BuildError>(())
    /// ```
    #[cfg(all(feature = "std", not(loom)))]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn acquire_blocking(&self) -> Result<LimiterPermit<C>, crate::error::AcquireError> {
        crate::block::block_on(self.acquire())
    }

    /// Blocks the current thread until the limiter admits a call of
    /// `weight`: the blocking form of [`acquire_many`](Self::acquire_many).
    ///
    /// For plain threads; never call it from async code (it would block the
    /// executor). Blocking waiters share the FIFO queue of async ones.
    ///
    /// # Errors
    ///
    /// As [`acquire_many`](Self::acquire_many).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Limiter;
    ///
    /// let limiter = Limiter::builder().concurrency(4).build()?;
    /// assert_eq!(limiter.acquire_many_blocking(3).unwrap().weight(), 3);
    /// assert!(limiter.acquire_many_blocking(5).is_err());
    /// # Ok::<(), limiters::BuildError>(())
    /// ```
    #[cfg(all(feature = "std", not(loom)))]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn acquire_many_blocking(
        &self,
        weight: u32,
    ) -> Result<LimiterPermit<C>, crate::error::AcquireError> {
        crate::block::block_on(self.acquire_many(weight))
    }

    /// Waits until the limiter admits one request of the configured weight,
    /// but not past `timeout` from now on the limiter's clock.
    ///
    /// The concurrency wait counts against the same deadline. A request
    /// that the rates alone would admit only after the deadline fails at
    /// once ([`DeadlineError::WouldExceed`](crate::DeadlineError::WouldExceed),
    /// nothing taken); one that gets its slot too late to meet the rates by
    /// the deadline gives the slot back at once
    /// ([`DeadlineError::TimedOut`](crate::DeadlineError::TimedOut)). A zero
    /// `timeout` admits only what is admissible right now; a huge one
    /// saturates.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: see [`LimiterAcquire`]. A timeout gives back the same
    /// way.
    ///
    /// # Errors
    ///
    /// [`DeadlineError`](crate::DeadlineError): `WouldExceed`, `TimedOut`,
    /// or the errors of [`acquire`](Self::acquire) (`Closed`,
    /// `ExceedsCapacity`).
    ///
    /// # Examples
    ///
    /// A handler with a 2-second budget sheds load instead of queueing past
    /// it:
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{DeadlineError, Limiter, ManualClock, Quota};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = Limiter::builder()
    ///     .concurrency(4)
    ///     .rate(Quota::per_second(1))
    ///     .clock(ManualClock::new())
    ///     .build()?;
    /// let budget = Duration::from_secs(2);
    /// let first = limiter.acquire_within(budget).await?;
    /// drop(first);
    /// let second = limiter.acquire_within(Duration::from_millis(500)).await;
    /// assert!(matches!(second, Err(DeadlineError::WouldExceed { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn acquire_within(&self, timeout: Duration) -> LimiterAcquireWithin<C> {
        self.acquire_many_within(self.inner.weight, timeout)
    }

    /// Waits until the limiter admits a request of `weight` (as
    /// [`acquire_many`](Self::acquire_many)), but not past `timeout` from
    /// now (as [`acquire_within`](Self::acquire_within)).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: see [`LimiterAcquire`].
    ///
    /// # Errors
    ///
    /// As [`acquire_within`](Self::acquire_within), and
    /// [`DeadlineError::ExceedsCapacity`](crate::DeadlineError::ExceedsCapacity)
    /// at once if `weight` exceeds the concurrency,
    /// [`DeadlineError::InsufficientCapacity`](crate::DeadlineError::InsufficientCapacity)
    /// if it exceeds a rate's burst.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{DeadlineError, Limiter, ManualClock, Quota};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = Limiter::builder()
    ///     .concurrency(8)
    ///     .rate(Quota::per_second(10).allow_burst(5))
    ///     .clock(ManualClock::new())
    ///     .build()?;
    /// let batch = limiter.acquire_many_within(5, Duration::from_secs(1)).await?;
    /// assert_eq!(batch.weight(), 5);
    /// let too_big = limiter.acquire_many_within(6, Duration::from_secs(1)).await;
    /// assert!(matches!(too_big, Err(DeadlineError::InsufficientCapacity { requested: 6, burst: 5 })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn acquire_many_within(&self, weight: u32, timeout: Duration) -> LimiterAcquireWithin<C> {
        Within::new(self.acquire_many(weight), timeout)
    }

    /// Runs `fut` once the limiter admits it, unless admission does not come
    /// within `timeout` (see [`acquire_within`](Self::acquire_within)): then
    /// `fut` is dropped without being polled.
    ///
    /// The deadline covers admission only: once `fut` runs, it runs to
    /// completion.
    ///
    /// # Cancel safety
    ///
    /// As [`run`](Self::run).
    ///
    /// # Errors
    ///
    /// As [`acquire_within`](Self::acquire_within).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{DeadlineError, Limiter, ManualClock, Quota};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = Limiter::builder()
    ///     .rate(Quota::per_second(10))
    ///     .clock(ManualClock::new())
    ///     .build()?;
    /// let budget = Duration::from_millis(50);
    /// assert_eq!(limiter.run_within(budget, async { "sent" }).await?, "sent");
    /// // The next slot is 100 ms away: shed this call instead.
    /// let shed = limiter.run_within(budget, async { "sent" }).await;
    /// assert!(matches!(shed, Err(DeadlineError::WouldExceed { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn run_within<F: Future>(&self, timeout: Duration, fut: F) -> LimiterRunWithin<C, F> {
        LimiterRunWithin::new(self.acquire_within(timeout), fut)
    }

    /// For a key's limiter under a global one: only the slot stages
    /// (concurrency and minimum hold); the key's rate is taken by
    /// [`acquire_with`](Self::acquire_with) on the global limiter.
    #[cfg(feature = "std")]
    pub(crate) fn acquire_slots(&self) -> LimiterAcquire<C> {
        self.acquire().slots_only()
    }

    /// A fresh limiter counting time from `other`'s base, so instants
    /// convert between them for free (a key's limiter and the global one).
    #[cfg(feature = "std")]
    pub(crate) fn sharing_base_with(mut self, other: &Limiter<C>) -> Self {
        let inner = Arc::get_mut(&mut self.inner).expect("a fresh limiter is not shared");
        inner.share_base(&other.inner);
        self
    }

    /// Tells this limiter apart from others (not from its clones) while
    /// it lives.
    #[cfg(feature = "std")]
    pub(crate) fn id(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    /// For the global limiter over `key`'s: this limiter's stages, with
    /// `key`'s rate queue passed before this one's and both rates taken at
    /// the same instant, so they govern one start time.
    #[cfg(feature = "std")]
    pub(crate) fn acquire_with(&self, key: &Limiter<C>) -> LimiterAcquire<C> {
        self.acquire().with_co(Arc::clone(&key.inner))
    }

    /// Admits nothing for `d` from now: what to do when the server answers
    /// `429` with `Retry-After`. Requests already queued wait too, in order.
    /// A pause spends no rate's credit: when it ends, each rate admits what
    /// it would have admitted then without the pause (so a one-second pause
    /// leaves an hourly budget intact). A shorter pause than one in force
    /// changes nothing. Work already admitted is not affected.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use limiters::{Limiter, ManualClock, Quota};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = Limiter::builder()
    ///     .rate(Quota::per_second(10))
    ///     .clock(clock.clone())
    ///     .build()
    ///     .unwrap();
    /// // The server answered 429 with "Retry-After: 30".
    /// limiter.pause_for(Duration::from_secs(30));
    /// assert_eq!(limiter.paused_until(), Some(clock.now() + Duration::from_secs(30)));
    /// ```
    pub fn pause_for(&self, d: Duration) {
        let until = self.inner.now_ns().saturating_add(crate::clock::nanos(d));
        self.inner.pause_until_ns(until);
    }

    /// Admits nothing before `instant` (see [`pause_for`](Self::pause_for)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use limiters::{Limiter, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = Limiter::builder().concurrency(4).clock(clock.clone()).build().unwrap();
    /// let reset = clock.now() + Duration::from_secs(60); // e.g. X-RateLimit-Reset
    /// limiter.pause_until(reset);
    /// assert_eq!(limiter.paused_until(), Some(reset));
    /// clock.advance(Duration::from_secs(60));
    /// assert_eq!(limiter.paused_until(), None);
    /// ```
    pub fn pause_until(&self, instant: C::Instant) {
        let until = self.inner.ns_of(instant);
        self.inner.pause_until_ns(until);
    }

    /// The end of the pause in force, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Limiter;
    ///
    /// let limiter = Limiter::builder().concurrency(1).build().unwrap();
    /// assert_eq!(limiter.paused_until(), None);
    /// ```
    pub fn paused_until(&self) -> Option<C::Instant> {
        let until = self.inner.paused_until_ns();
        (until > self.inner.now_ns()).then(|| self.inner.instant_at(until))
    }

    /// Closes the limiter: every queued and later request fails with
    /// [`AcquireError::Closed`](crate::AcquireError::Closed). Permits already handed out stay valid and
    /// are given back normally.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{AcquireError, Limiter};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = Limiter::builder().concurrency(1).build().unwrap();
    /// limiter.close();
    /// assert!(limiter.is_closed());
    /// assert_eq!(limiter.run(async {}).await, Err(AcquireError::Closed));
    /// # });
    /// ```
    pub fn close(&self) {
        self.inner.close();
    }

    /// Whether [`close`](Self::close) was called (on any clone).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Limiter;
    ///
    /// let limiter = Limiter::builder().concurrency(1).build().unwrap();
    /// let clone = limiter.clone();
    /// clone.close();
    /// assert!(limiter.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.inner.gate.is_closed()
    }

    /// The concurrency limit now: the adaptive limit
    /// ([`LimiterBuilder::adaptive`]), or the fixed one; `None` without a
    /// concurrency limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{Aimd, Limiter};
    ///
    /// let limiter = Limiter::builder().adaptive(Aimd::new().initial(8).max(64)).build().unwrap();
    /// assert_eq!(limiter.limit(), Some(8));
    /// assert_eq!(limiter.concurrency(), Some(64)); // the largest it can become
    /// ```
    pub fn limit(&self) -> Option<usize> {
        let slots = self.inner.slots.as_ref()?;
        Some(
            slots
                .adaptive
                .as_ref()
                .map_or(slots.capacity, |a| a.limit()),
        )
    }

    /// The concurrency limit, if one is set (with an adaptive limit, the
    /// largest it can become; see [`limit`](Self::limit)).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Limiter;
    ///
    /// assert_eq!(Limiter::builder().concurrency(3).build().unwrap().concurrency(), Some(3));
    /// ```
    pub fn concurrency(&self) -> Option<usize> {
        self.inner.slots.as_ref().map(|s| s.capacity)
    }

    /// Slots free right now (none while requests are queued for them, or
    /// held past their work by the minimum hold); `None` without a
    /// concurrency limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Limiter;
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = Limiter::builder().concurrency(3).build().unwrap();
    /// let _p = limiter.acquire().await.unwrap();
    /// assert_eq!(limiter.available_slots(), Some(2));
    /// # });
    /// ```
    pub fn available_slots(&self) -> Option<usize> {
        let slots = self.inner.slots.as_ref()?;
        let ghosts = if slots.has_hold() {
            slots.held_by_ghosts(self.inner.now_ns())
        } else {
            0
        };
        Some(slots.sem.available_permits().saturating_sub(ghosts))
    }

    /// A snapshot for dashboards: slots in use and free, requests waiting,
    /// pauses, and the totals admitted, refused (by a deadline) and waited
    /// since creation, over every clone. Cheap: a few loads and short locks.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{Limiter, ManualClock};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = Limiter::builder().concurrency(1).clock(ManualClock::new()).build()?;
    /// let held = limiter.acquire().await?;
    /// let refused = limiter.acquire_within(Duration::ZERO).await;
    /// assert!(refused.is_err());
    /// let stats = limiter.stats();
    /// assert_eq!((stats.in_use, stats.available), (Some(1), Some(0)));
    /// assert_eq!((stats.totals.admitted, stats.totals.denied), (1, 1));
    /// # drop(held);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn stats(&self) -> LimiterStats {
        let available = self.available_slots();
        LimiterStats {
            in_use: self
                .concurrency()
                .zip(available)
                .map(|(n, free)| n.saturating_sub(free)),
            available,
            waiters: self.inner.waiters(),
            pauses: self.inner.pauses(),
            closed: self.is_closed(),
            totals: self.inner.counters.snapshot(),
        }
    }

    /// The rates, in the order they were added.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{Limiter, Quota};
    ///
    /// let limiter = Limiter::builder().rate(Quota::per_minute(60)).build().unwrap();
    /// assert_eq!(limiter.quotas(), [Quota::per_minute(60)]);
    /// ```
    pub fn quotas(&self) -> &[Quota] {
        &self.inner.quotas
    }

    /// The sliding windows `(n, period)`, in the order they were added.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use limiters::Limiter;
    ///
    /// let limiter = Limiter::builder().window(100, Duration::from_secs(60)).build().unwrap();
    /// assert_eq!(limiter.windows(), [(100, Duration::from_secs(60))]);
    /// ```
    pub fn windows(&self) -> &[(u32, Duration)] {
        &self.inner.windows
    }

    /// The minimum hold (zero if none).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use limiters::Limiter;
    ///
    /// assert_eq!(Limiter::builder().concurrency(1).build().unwrap().min_hold(), Duration::ZERO);
    /// ```
    pub fn min_hold(&self) -> Duration {
        let ns = self.inner.slots.as_ref().map_or(0, |s| s.min_hold_ns);
        Duration::from_nanos(ns)
    }

    /// The limiter's clock.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{Limiter, ManualClock};
    ///
    /// let limiter = Limiter::builder().concurrency(1).clock(ManualClock::new()).build().unwrap();
    /// assert_eq!(limiter.clock().now().as_nanos(), 0);
    /// ```
    pub fn clock(&self) -> &C {
        &self.inner.clock
    }
}

#[cfg(feature = "std")]
impl<C: Clock> Limiter<C> {
    /// Nobody holds or waits on it and its limits are as if fresh: dropping
    /// it and building a new one later changes nothing. Exact while the
    /// caller prevents new clones (the keyed map's shard lock does).
    pub(crate) fn is_idle(&self) -> bool {
        Arc::strong_count(&self.inner) == 1 && self.inner.is_fresh()
    }
}

impl<C: Clock> Clone for LimiterBuilder<C> {
    fn clone(&self) -> Self {
        Self {
            clock: self.clock.clone(),
            concurrency: self.concurrency,
            quotas: self.quotas.clone(),
            windows: self.windows.clone(),
            adaptive: self.adaptive.clone(),
            min_hold: self.min_hold,
            weight: self.weight,
            sources: self.sources.clone(),
        }
    }
}

impl<C: Clock> Clone for Limiter<C> {
    /// Another handle to the same limiter: both count against one state.
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C: Clock> fmt::Debug for Limiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("concurrency", &self.concurrency())
            .field("available_slots", &self.available_slots())
            .field("quotas", &self.inner.quotas)
            .field("windows", &self.inner.windows)
            .field("rate_sources", &self.inner.sources.len())
            .field("min_hold", &self.min_hold())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl<C: Clock> fmt::Debug for LimiterBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimiterBuilder")
            .field("concurrency", &self.concurrency)
            .field("quotas", &self.quotas)
            .field("windows", &self.windows)
            .field("rate_sources", &self.sources.len())
            .field("adaptive", &self.adaptive.is_some())
            .field("min_hold", &self.min_hold)
            .field("weight", &self.weight)
            .finish_non_exhaustive()
    }
}

impl<C: Clock> LimiterPermit<C> {
    pub(crate) fn new(inner: Arc<Inner<C>>, admitted: Admitted) -> Self {
        Self {
            inner,
            admitted,
            outcome: Outcome::Success,
        }
    }

    /// Reports that the server was overloaded (a 429 or 503, a timeout):
    /// an adaptive limit ([`LimiterBuilder::adaptive`]) shrinks when the
    /// permit is dropped. Without one, nothing changes.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{Aimd, Limiter};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = Limiter::builder().adaptive(Aimd::new().initial(10)).build().unwrap();
    /// let mut permit = limiter.acquire().await.unwrap();
    /// permit.overloaded(); // the server answered 429
    /// drop(permit);
    /// assert_eq!(limiter.limit(), Some(5)); // AIMD halves it
    /// # });
    /// ```
    pub fn overloaded(&mut self) {
        self.outcome = Outcome::Overload;
    }

    /// Reports that this request says nothing about the server (it was
    /// cancelled, or failed on the client's side): an adaptive limit
    /// ignores it.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{Aimd, Limiter};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = Limiter::builder().adaptive(Aimd::new().initial(10)).build().unwrap();
    /// let mut permit = limiter.acquire().await.unwrap();
    /// permit.ignore();
    /// drop(permit);
    /// assert_eq!(limiter.limit(), Some(10));
    /// # });
    /// ```
    pub fn ignore(&mut self) {
        self.outcome = Outcome::Ignore;
    }

    /// Sets what this request reports to an adaptive limit (the default is
    /// [`Outcome::Success`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{Limiter, Outcome};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = Limiter::builder().concurrency(1).build().unwrap();
    /// let mut permit = limiter.acquire().await.unwrap();
    /// permit.set_outcome(Outcome::Overload); // no adaptive limit: no effect
    /// # });
    /// ```
    pub fn set_outcome(&mut self, outcome: Outcome) {
        self.outcome = outcome;
    }

    /// Counts `self` (a key's slots-only permit) as admitted when `global`
    /// was, for its minimum hold.
    #[cfg(feature = "std")]
    pub(crate) fn admitted_with(&mut self, global: &LimiterPermit<C>) {
        self.admitted.admitted_ns = global.inner.ns_in(&self.inner, global.admitted.admitted_ns);
    }

    /// The weight this permit was admitted with.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Limiter;
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = Limiter::builder().concurrency(4).build().unwrap();
    /// assert_eq!(limiter.acquire_many(3).await.unwrap().weight(), 3);
    /// # });
    /// ```
    pub fn weight(&self) -> u32 {
        self.admitted.weight()
    }

    /// The instant the request was admitted (its minimum hold counts from
    /// here).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{Limiter, ManualClock};
    ///
    /// # futures_lite::future::block_on(async {
    /// let clock = ManualClock::new();
    /// let limiter = Limiter::builder().concurrency(1).clock(clock.clone()).build().unwrap();
    /// let permit = limiter.acquire().await.unwrap();
    /// assert_eq!(permit.admitted_at(), clock.now());
    /// # });
    /// ```
    pub fn admitted_at(&self) -> C::Instant {
        self.inner.instant_at(self.admitted.admitted_ns)
    }
}

impl<C: Clock> Drop for LimiterPermit<C> {
    fn drop(&mut self) {
        self.admitted.release(&self.inner, self.outcome);
    }
}

impl<C: Clock> fmt::Debug for LimiterPermit<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimiterPermit")
            .field("weight", &self.admitted.weight())
            .field("admitted_at", &self.admitted_at())
            .finish_non_exhaustive()
    }
}
