//! [`RedisRateLimiter`]: one quota, one Redis key, shared by every process
//! that names it.

use core::fmt;
use core::future::Future;
use core::time::Duration;
use std::sync::Arc;

use limiters::{
    AcquireError, Clock, Quota, RateAdmit, RateDecision, RateSource, RateSourceError, Semaphore,
    SystemClock,
};
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::RedisError;

use crate::core::{Call, Core, FailPolicy, RedisStats, Settings};
use crate::error::{BackendError, Error};

/// The command timeout unless [`timeout`](RedisRateLimiterBuilder::timeout)
/// says otherwise: 50 ms.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

/// An exact GCRA rate limiter whose state lives in Redis: every process that
/// builds one with the same name and quota shares one quota ("100 per
/// second across the fleet").
///
/// It has the surface of [`limiters::RateLimiter`] (`check`, `check_n`,
/// `acquire`, `acquire_many`, `run`, `pause_for`, `remaining`), but every
/// method is async: each decision is one round trip to the server, where a
/// Lua script makes it atomically on the server's clock. Clones share one
/// connection, one local queue and one set of counters.
///
/// # Precision
///
/// The script keeps the local limiter's exact integer GCRA (the emission
/// interval is never rounded; see the crate docs), on the server's `TIME`
/// (microseconds), so clients' clocks never matter. In any window of length
/// `W`, the server admits at most `burst + floor(W * cells / period)` cells
/// across all processes. A process learns of its admission half a round
/// trip later; the bound is on the server's admission instants.
///
/// # Fairness
///
/// Within a process, `acquire` and `acquire_many` are FIFO: they queue on a
/// local one-permit [`Semaphore`], and only the head of the queue asks the
/// server, sleeps until the instant the server names, and asks again. A
/// large request at the head is never overtaken by small ones behind it.
///
/// Across processes there is no queue: each process's head asks when its
/// wait ends, and whichever request reaches the server first takes the
/// cell. So the fleet's rate is exact, but no process is promised a share,
/// a small request from one process can overtake a large one waiting in
/// another, and `check` (which never queues) competes with this process's
/// own waiting head as any other process would.
///
/// # Failures
///
/// Every call is bounded by the command timeout (default
/// [`DEFAULT_TIMEOUT`], 50 ms); a timeout, a lost connection or an error
/// reply goes to the [`FailPolicy`] and is counted in
/// [`stats`](Self::stats). If the server restarts without persistence, the
/// quota's state is gone and the limiter starts afresh, with full burst
/// credit (and the script is sent again, once).
///
/// # Examples
///
/// Ten workers, any number of processes, one quota of 100 per second:
///
/// ```no_run
/// use limiters::Quota;
/// use limiters_redis::RedisRateLimiter;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter =
///     RedisRateLimiter::connect("redis://127.0.0.1/", "billing-api", Quota::per_second(100)).await?;
/// limiter.acquire().await?; // waits for the fleet's next free cell
/// // call the API
/// # Ok(()) }
/// ```
pub struct RedisRateLimiter<C: Clock = SystemClock, Conn = ConnectionManager> {
    core: Arc<Core<C, Conn>>,
    key: Arc<str>,
    /// The local FIFO queue: its one permit marks the head.
    gate: Arc<Semaphore>,
}

impl<C: Clock, Conn> Clone for RedisRateLimiter<C, Conn> {
    fn clone(&self) -> Self {
        Self {
            core: Arc::clone(&self.core),
            key: Arc::clone(&self.key),
            gate: Arc::clone(&self.gate),
        }
    }
}

impl<C: Clock, Conn> fmt::Debug for RedisRateLimiter<C, Conn> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("key", &self.key)
            .field("core", &self.core)
            .field("waiters", &self.gate.waiters())
            .finish()
    }
}

/// Builds a [`RedisRateLimiter`]; see [`RedisRateLimiter::builder`].
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use limiters::Quota;
/// use limiters_redis::{FailPolicy, RedisRateLimiter};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis::RedisError> {
/// let client = redis::Client::open("redis://127.0.0.1/")?;
/// let conn = redis::aio::ConnectionManager::new(client).await?;
/// let limiter = RedisRateLimiter::builder(conn, "search", Quota::per_minute(600))
///     .fail_policy(FailPolicy::FailOpen)
///     .timeout(Duration::from_millis(20))
///     .build();
/// # drop(limiter); Ok(()) }
/// ```
#[must_use = "a builder does nothing until build() is called"]
#[derive(Debug)]
pub struct RedisRateLimiterBuilder<C: Clock = SystemClock, Conn = ConnectionManager> {
    settings: Settings<C, Conn>,
    name: String,
}

impl RedisRateLimiter {
    /// Connects to `url` with a [`ConnectionManager`] (which reconnects
    /// after a failure) and builds a limiter with the defaults: fail
    /// closed, a 50 ms timeout, the [`SystemClock`].
    ///
    /// # Errors
    ///
    /// The [`RedisError`] of a bad URL or of the first connection attempt.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use limiters::Quota;
    /// use limiters_redis::RedisRateLimiter;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis::RedisError> {
    /// let limiter = RedisRateLimiter::connect("redis://127.0.0.1/", "geo", Quota::per_second(5)).await?;
    /// # drop(limiter); Ok(()) }
    /// ```
    pub async fn connect(url: &str, name: &str, quota: Quota) -> Result<Self, RedisError> {
        let conn = ConnectionManager::new(redis::Client::open(url)?).await?;
        Ok(Self::builder(conn, name, quota).build())
    }
}

impl<Conn: ConnectionLike + Clone + Send + Sync + 'static> RedisRateLimiter<SystemClock, Conn> {
    /// Starts building a limiter for the quota named `name` (the Redis key
    /// `{name}`: a hash tag, so it works on Redis Cluster) on `conn`: a
    /// [`ConnectionManager`], a multiplexed connection or any other async
    /// [`ConnectionLike`] that clones cheaply.
    ///
    /// Every process must use the same quota for the same name.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use limiters::Quota;
    /// use limiters_redis::RedisRateLimiter;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis::RedisError> {
    /// let client = redis::Client::open("redis://127.0.0.1/")?;
    /// let conn = client.get_multiplexed_async_connection().await?;
    /// let limiter = RedisRateLimiter::builder(conn, "mail", Quota::per_hour(1_000)).build();
    /// # drop(limiter); Ok(()) }
    /// ```
    pub fn builder(
        conn: Conn,
        name: &str,
        quota: Quota,
    ) -> RedisRateLimiterBuilder<SystemClock, Conn> {
        RedisRateLimiterBuilder {
            settings: Settings::new(conn, quota),
            name: name.to_owned(),
        }
    }
}

impl<C: Clock, Conn: ConnectionLike + Clone + Send + Sync + 'static>
    RedisRateLimiterBuilder<C, Conn>
{
    /// What to do when Redis gives no decision (default
    /// [`FailPolicy::FailClosed`]).
    ///
    /// # Examples
    ///
    /// See [`RedisRateLimiterBuilder`].
    pub fn fail_policy(mut self, policy: FailPolicy) -> Self {
        self.settings.policy = policy;
        self
    }

    /// The longest a call waits for the server (default 50 ms) before it
    /// counts as a failure.
    ///
    /// # Examples
    ///
    /// See [`RedisRateLimiterBuilder`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = timeout;
        self
    }

    /// The clock that times the waits and the timeout (the server's clock
    /// times the quota).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(conn: redis::aio::MultiplexedConnection) {
    /// use limiters::{ManualClock, Quota};
    /// use limiters_redis::RedisRateLimiter;
    ///
    /// let limiter = RedisRateLimiter::builder(conn, "k", Quota::per_second(1))
    ///     .clock(ManualClock::new())
    ///     .build();
    /// # drop(limiter); }
    /// ```
    pub fn clock<C2: Clock>(self, clock: C2) -> RedisRateLimiterBuilder<C2, Conn> {
        RedisRateLimiterBuilder {
            settings: self.settings.with_clock(clock),
            name: self.name,
        }
    }

    /// Test support: every admission also pushes the server's time of the
    /// decision (ns since the Unix epoch) onto the list
    /// `{name}:admissions`, for a test that checks the window bound
    /// across processes. Not for production: the list grows without bound.
    #[doc(hidden)]
    pub fn log_admissions(mut self) -> Self {
        self.settings.log = true;
        self
    }

    /// Builds the limiter. Nothing is sent to the server until the first
    /// call.
    ///
    /// # Examples
    ///
    /// See [`RedisRateLimiterBuilder`].
    pub fn build(self) -> RedisRateLimiter<C, Conn> {
        RedisRateLimiter {
            core: Arc::new(Core::new(self.settings)),
            key: format!("{{{}}}", self.name).into(),
            gate: Arc::new(Semaphore::new(1)),
        }
    }
}

impl<C: Clock, Conn: ConnectionLike + Clone + Send + Sync + 'static> RedisRateLimiter<C, Conn> {
    /// The quota.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(limiter: limiters_redis::RedisRateLimiter) {
    /// println!("{} per {:?}", limiter.quota().cells(), limiter.quota().period());
    /// # }
    /// ```
    pub fn quota(&self) -> Quota {
        self.core.quota
    }

    /// The Redis key holding the quota's state (`{name}`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(conn: redis::aio::MultiplexedConnection) {
    /// use limiters::Quota;
    /// use limiters_redis::RedisRateLimiter;
    ///
    /// let limiter = RedisRateLimiter::builder(conn, "search", Quota::per_second(1)).build();
    /// assert_eq!(limiter.key(), "{search}");
    /// # }
    /// ```
    pub fn key(&self) -> &str {
        &self.key
    }

    /// A snapshot of the counters: decisions, failures by kind, and what
    /// the policy did with them.
    ///
    /// # Examples
    ///
    /// See [`RedisStats`].
    pub fn stats(&self) -> RedisStats {
        self.core.stats()
    }

    /// Admits one cell now, or says when it would be admitted. One round
    /// trip; never queues.
    ///
    /// # Errors
    ///
    /// [`Error::NotUntil`] if the quota is used up (also from the local
    /// fallback), [`Error::Backend`] if Redis failed and the policy is
    /// fail-closed.
    ///
    /// # Cancel safety
    ///
    /// Dropping it before it completes may still leave the cell taken on
    /// the server (the command may already have run).
    ///
    /// # Examples
    ///
    /// Answer 429 yourself when the fleet's quota is used up:
    ///
    /// ```no_run
    /// # async fn demo(limiter: limiters_redis::RedisRateLimiter) {
    /// let status = match limiter.check().await {
    ///     Ok(()) => 200,
    ///     Err(limiters_redis::Error::NotUntil(_)) => 429,
    ///     Err(_) => 503,
    /// };
    /// # }
    /// ```
    pub fn check(&self) -> Call<'_, Result<(), Error<C::Instant>>> {
        self.check_n(1)
    }

    /// Admits `n` cells at once, or none.
    ///
    /// # Errors
    ///
    /// [`Error::InsufficientCapacity`] at once (no round trip) if `n`
    /// exceeds the burst; otherwise as [`check`](Self::check).
    ///
    /// # Cancel safety
    ///
    /// As [`check`](Self::check).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(limiter: limiters_redis::RedisRateLimiter) -> Result<(), limiters_redis::Error<std::time::Instant>> {
    /// limiter.check_n(5).await?; // a batch of 5 requests
    /// # Ok(()) }
    /// ```
    pub fn check_n(&self, n: u32) -> Call<'_, Result<(), Error<C::Instant>>> {
        Call::new(self.core.check_n(&self.key, n))
    }

    /// Waits for one cell: queues FIFO behind this process's other waiters,
    /// then asks the server, sleeps until the instant it names and asks
    /// again until admitted.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] if Redis failed and the policy is fail-closed.
    ///
    /// # Cancel safety
    ///
    /// Dropping it while queued or asleep takes nothing; dropping it while
    /// a request is in flight may leave that cell taken on the server. The
    /// next local waiter then becomes the head.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(limiter: limiters_redis::RedisRateLimiter) -> Result<(), limiters_redis::Error<std::time::Instant>> {
    /// for page in 0..10 {
    ///     limiter.acquire().await?;
    ///     // fetch page
    /// #   let _ = page;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn acquire(&self) -> Call<'_, Result<(), Error<C::Instant>>> {
        self.acquire_many(1)
    }

    /// Waits for `n` cells (see [`acquire`](Self::acquire)).
    ///
    /// # Errors
    ///
    /// [`Error::InsufficientCapacity`] at once if `n` exceeds the burst,
    /// [`Error::Backend`] as [`acquire`](Self::acquire).
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(limiter: limiters_redis::RedisRateLimiter) -> Result<(), limiters_redis::Error<std::time::Instant>> {
    /// limiter.acquire_many(3).await?; // a call that costs 3 units
    /// # Ok(()) }
    /// ```
    pub fn acquire_many(&self, n: u32) -> Call<'_, Result<(), Error<C::Instant>>> {
        Call::new(self.core.acquire_n(&self.gate, &self.key, n))
    }

    /// Runs `fut` once a cell is admitted.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire); `fut` is then never polled.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire) before admission; afterwards dropping
    /// it drops `fut`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(limiter: limiters_redis::RedisRateLimiter) -> Result<(), limiters_redis::Error<std::time::Instant>> {
    /// let body = limiter.run(async { "response" }).await?;
    /// # let _ = body; Ok(()) }
    /// ```
    pub fn run<'a, F>(&'a self, fut: F) -> Call<'a, Result<F::Output, Error<C::Instant>>>
    where
        F: Future + Send + 'a,
        F::Output: Send,
    {
        Call::new(async move {
            self.core.acquire_n(&self.gate, &self.key, 1).await?;
            Ok(fut.await)
        })
    }

    /// Admits nothing, in any process, for `duration` from the server's
    /// now. A pause spends no credit: requests made during it are decided
    /// as if made at its end (as [`limiters::RateLimiter::pause_for`]).
    /// For a `Retry-After` answer: one process's 429 pauses the fleet.
    /// Pauses only extend.
    ///
    /// # Errors
    ///
    /// The [`BackendError`] if the pause could not be stored (whatever the
    /// policy: a pause is a command, not a decision).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(limiter: limiters_redis::RedisRateLimiter) -> Result<(), limiters_redis::BackendError> {
    /// use std::time::Duration;
    /// // The API answered 429 with "Retry-After: 30".
    /// limiter.pause_for(Duration::from_secs(30)).await?;
    /// # Ok(()) }
    /// ```
    pub fn pause_for(&self, duration: Duration) -> Call<'_, Result<(), BackendError>> {
        Call::new(self.core.pause_for(&self.key, duration))
    }

    /// How many cells `check_n` would admit right now, fleet-wide (0 during
    /// a pause); for `RateLimit-Remaining` headers.
    ///
    /// # Errors
    ///
    /// The [`BackendError`] if Redis gave no answer (whatever the policy).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(limiter: limiters_redis::RedisRateLimiter) -> Result<(), limiters_redis::BackendError> {
    /// let left = limiter.remaining().await?;
    /// println!("RateLimit-Remaining: {left}");
    /// # Ok(()) }
    /// ```
    pub fn remaining(&self) -> Call<'_, Result<u32, BackendError>> {
        Call::new(self.core.remaining(&self.key))
    }
}

/// The fleet's quota inside a local [`Limiter`](limiters::Limiter):
/// `Limiter::builder().concurrency(10).rate_source(redis_limiter)` gives
/// "10 in flight in this process, the quota across the fleet". The
/// `Limiter`'s own FIFO rate queue orders this process's requests; each
/// decision is one round trip (and one boxed future). A failure the
/// [`FailPolicy`] does not absorb fails the request with
/// [`AcquireError::RateSource`](limiters::AcquireError::RateSource).
impl<C, Conn> RateSource<C::Instant> for RedisRateLimiter<C, Conn>
where
    C: Clock,
    Conn: ConnectionLike + Clone + Send + Sync + 'static,
{
    fn burst(&self) -> u32 {
        self.core.quota.burst()
    }

    fn admit(&self, n: u32) -> RateAdmit<C::Instant> {
        let (core, key) = (Arc::clone(&self.core), Arc::clone(&self.key));
        RateAdmit::pending(async move {
            match core.check_n(&key, n).await {
                Ok(()) => RateDecision::Admitted,
                Err(Error::NotUntil(not_until)) => RateDecision::RetryAt(not_until.earliest()),
                Err(Error::InsufficientCapacity { requested, burst }) => {
                    RateDecision::Failed(AcquireError::ExceedsCapacity {
                        requested: requested as usize,
                        capacity: burst as usize,
                    })
                }
                Err(Error::Backend(e)) => RateDecision::Failed(AcquireError::RateSource(match e {
                    BackendError::Timeout { .. } => RateSourceError::TimedOut,
                    BackendError::Connection(_) => RateSourceError::Unavailable,
                    BackendError::Server(_) => RateSourceError::Failed,
                })),
            }
        })
    }
}
