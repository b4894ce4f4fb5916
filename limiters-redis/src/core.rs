//! What the single and the keyed limiter share: the connection, the quota,
//! the failure policy, the command timeout and the counters.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;
use std::sync::atomic::{AtomicU64, Ordering};

use limiters::{
    Clock, ClockInstant, KeyedRateLimiter, NotUntil, Quota, RateLimitError, Semaphore, SystemClock,
};
use redis::aio::ConnectionLike;

use crate::error::{BackendError, Error};
use crate::limiter::DEFAULT_TIMEOUT;
use crate::script::{Invocation, Op, Reply};

/// What a limiter does when Redis gives no decision (a timeout, a lost
/// connection, an error reply).
///
/// # Examples
///
/// ```
/// use limiters::Quota;
/// use limiters_redis::FailPolicy;
///
/// // 4 processes share 100/s: if Redis is down, each allows itself a quarter.
/// let policy = FailPolicy::FallbackLocal(Quota::per_second(25).allow_burst(3));
/// assert_ne!(policy, FailPolicy::default());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailPolicy {
    /// Admit nothing: the call fails with
    /// [`Error::Backend`](crate::Error::Backend). The default: a quota that
    /// protects someone else (a paid API, a fragile backend) is never
    /// exceeded.
    #[default]
    FailClosed,
    /// Admit the request without a decision (counted in
    /// [`RedisStats::failed_open`]): for limits that protect nothing vital,
    /// where availability matters more.
    FailOpen,
    /// Decide in this process with this quota (the process's share of the
    /// fleet's quota, for example `total / processes`), per key, until
    /// Redis answers again. Counted in [`RedisStats::fallback_decisions`].
    FallbackLocal(Quota),
}

/// A snapshot of a Redis limiter's counters since it was built.
///
/// Every decision Redis made is either `admitted` or `denied`; every call
/// it gave no decision for is exactly one of `timeouts`,
/// `connection_errors` and `server_errors`, and then, by the policy, also
/// one of `failed_open` and `fallback_decisions` (or neither: fail closed).
///
/// # Examples
///
/// ```no_run
/// # async fn demo(limiter: limiters_redis::RedisRateLimiter) {
/// let stats = limiter.stats();
/// if stats.failures() > 0 {
///     eprintln!("redis failed {} times: {stats:?}", stats.failures());
/// }
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStats {
    /// Requests Redis admitted.
    pub admitted: u64,
    /// Requests Redis denied (each retry of a waiting `acquire` counts).
    pub denied: u64,
    /// Calls that got no answer within the timeout.
    pub timeouts: u64,
    /// Calls whose connection failed.
    pub connection_errors: u64,
    /// Calls the server answered with an error.
    pub server_errors: u64,
    /// Requests admitted without a decision ([`FailPolicy::FailOpen`]).
    pub failed_open: u64,
    /// Requests decided by the local fallback quota
    /// ([`FailPolicy::FallbackLocal`]), admitted or not.
    pub fallback_decisions: u64,
}

impl RedisStats {
    /// Calls Redis gave no decision for: `timeouts + connection_errors +
    /// server_errors`.
    ///
    /// # Examples
    ///
    /// ```
    /// let stats = limiters_redis::RedisStats::default();
    /// assert_eq!(stats.failures(), 0);
    /// ```
    pub fn failures(&self) -> u64 {
        self.timeouts + self.connection_errors + self.server_errors
    }
}

#[derive(Default)]
struct Counters {
    admitted: AtomicU64,
    denied: AtomicU64,
    timeouts: AtomicU64,
    connection_errors: AtomicU64,
    server_errors: AtomicU64,
    failed_open: AtomicU64,
    fallback_decisions: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    // Relaxed: a statistic, read as a snapshot; it orders nothing.
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The state every clone and every key of a limiter shares.
pub(crate) struct Core<C: Clock, Conn> {
    pub(crate) conn: Conn,
    pub(crate) clock: C,
    pub(crate) quota: Quota,
    pub(crate) policy: FailPolicy,
    pub(crate) timeout: Duration,
    /// The local limiter of [`FailPolicy::FallbackLocal`].
    fallback: Option<KeyedRateLimiter<String, C>>,
    sha: String,
    counters: Counters,
    /// Log admissions to `<key>:admissions` (tests).
    pub(crate) log: bool,
}

impl<C: Clock, Conn> fmt::Debug for Core<C, Conn> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("quota", &self.quota)
            .field("policy", &self.policy)
            .field("timeout", &self.timeout)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<C: Clock, Conn> Core<C, Conn> {
    pub(crate) fn stats(&self) -> RedisStats {
        let c = &self.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        RedisStats {
            admitted: get(&c.admitted),
            denied: get(&c.denied),
            timeouts: get(&c.timeouts),
            connection_errors: get(&c.connection_errors),
            server_errors: get(&c.server_errors),
            failed_open: get(&c.failed_open),
            fallback_decisions: get(&c.fallback_decisions),
        }
    }
}

/// What both limiters' builders collect: everything a [`Core`] is made
/// of.
#[derive(Debug)]
pub(crate) struct Settings<C, Conn> {
    pub(crate) conn: Conn,
    pub(crate) clock: C,
    pub(crate) quota: Quota,
    pub(crate) policy: FailPolicy,
    pub(crate) timeout: Duration,
    pub(crate) log: bool,
}

impl<Conn> Settings<SystemClock, Conn> {
    /// The defaults: fail closed, [`DEFAULT_TIMEOUT`], the system clock.
    pub(crate) fn new(conn: Conn, quota: Quota) -> Self {
        Settings {
            conn,
            clock: SystemClock,
            quota,
            policy: FailPolicy::FailClosed,
            timeout: DEFAULT_TIMEOUT,
            log: false,
        }
    }
}

impl<C, Conn> Settings<C, Conn> {
    /// The same settings on another clock.
    pub(crate) fn with_clock<C2>(self, clock: C2) -> Settings<C2, Conn> {
        Settings {
            conn: self.conn,
            clock,
            quota: self.quota,
            policy: self.policy,
            timeout: self.timeout,
            log: self.log,
        }
    }
}

impl<C: Clock, Conn: ConnectionLike + Clone + Send + Sync + 'static> Core<C, Conn> {
    pub(crate) fn new(settings: Settings<C, Conn>) -> Self {
        let Settings {
            conn,
            clock,
            quota,
            policy,
            timeout,
            log,
        } = settings;
        let fallback = match policy {
            FailPolicy::FallbackLocal(share) => {
                Some(KeyedRateLimiter::with_clock(share, clock.clone()))
            }
            _ => None,
        };
        Self {
            conn,
            clock,
            quota,
            policy,
            timeout,
            fallback,
            sha: crate::script::sha(),
            counters: Counters::default(),
            log,
        }
    }

    /// One script call, within the timeout; failures counted.
    pub(crate) async fn call(
        &self,
        key: &str,
        op: Op,
        now: Option<(u64, u32)>,
    ) -> Result<Reply, BackendError> {
        let log = self.log.then(|| format!("{key}:admissions"));
        let invocation = Invocation {
            key,
            log: log.as_deref(),
            quota: self.quota,
            op,
            now,
        };
        let mut conn = self.conn.clone();
        let request = async {
            invocation
                .run(&mut conn, &self.sha)
                .await
                .map_err(BackendError::of)
        };
        let deadline = self.clock.now().saturating_add(self.timeout);
        let timeout = async {
            self.clock.sleep_until(deadline).await;
            Err(BackendError::Timeout {
                after: self.timeout,
            })
        };
        let result = futures_lite::future::or(request, timeout).await;
        let c = &self.counters;
        match &result {
            Ok(Reply::Admitted) => bump(&c.admitted),
            Ok(Reply::Wait(_)) => bump(&c.denied),
            Ok(_) => {}
            Err(BackendError::Timeout { .. }) => bump(&c.timeouts),
            Err(BackendError::Connection(_)) => bump(&c.connection_errors),
            Err(BackendError::Server(_)) => bump(&c.server_errors),
        }
        result
    }

    /// Admits `n` cells for `key` now, or says when; a failure goes to the
    /// policy.
    pub(crate) async fn check_n(&self, key: &str, n: u32) -> Result<(), Error<C::Instant>> {
        let burst = self.quota.burst();
        if n > burst {
            return Err(Error::InsufficientCapacity {
                requested: n,
                burst,
            });
        }
        match self.call(key, Op::Take(n), None).await {
            Ok(Reply::Wait(wait)) => {
                let earliest = self.clock.now().saturating_add(wait);
                Err(Error::NotUntil(NotUntil::new(earliest, wait)))
            }
            Ok(_) => Ok(()),
            Err(e) => self.on_failure(key, n, e),
        }
    }

    fn on_failure(&self, key: &str, n: u32, e: BackendError) -> Result<(), Error<C::Instant>> {
        match self.policy {
            FailPolicy::FailOpen => {
                bump(&self.counters.failed_open);
                Ok(())
            }
            FailPolicy::FallbackLocal(_) => {
                bump(&self.counters.fallback_decisions);
                let fallback = self.fallback.as_ref().expect("built with the policy");
                fallback
                    .check_n(&key.to_owned(), n)
                    .map_err(|local| match local {
                        RateLimitError::NotUntil(not_until) => Error::NotUntil(not_until),
                        RateLimitError::InsufficientCapacity { requested, burst } => {
                            Error::InsufficientCapacity { requested, burst }
                        }
                        _ => Error::Backend(e),
                    })
            }
            _ => Err(Error::Backend(e)),
        }
    }

    /// Waits for `n` cells for `key`, behind `gate` (this process's FIFO
    /// queue for the key): ask, sleep until the instant the answer names,
    /// ask again.
    pub(crate) async fn acquire_n(
        &self,
        gate: &Semaphore,
        key: &str,
        n: u32,
    ) -> Result<(), Error<C::Instant>> {
        let burst = self.quota.burst();
        if n > burst {
            return Err(Error::InsufficientCapacity {
                requested: n,
                burst,
            });
        }
        let _head = gate.acquire().await.expect("the gate is never closed");
        loop {
            match self.check_n(key, n).await {
                Err(Error::NotUntil(not_until)) => {
                    self.clock.sleep_until(not_until.earliest()).await;
                }
                done => return done,
            }
        }
    }

    pub(crate) async fn pause_for(&self, key: &str, d: Duration) -> Result<(), BackendError> {
        self.call(key, Op::Pause(d), None).await.map(|_| ())
    }

    pub(crate) async fn remaining(&self, key: &str) -> Result<u32, BackendError> {
        match self.call(key, Op::Peek, None).await? {
            Reply::Remaining(n) => Ok(n),
            _ => unreachable!("a peek's reply is checked by the parser"),
        }
    }
}

/// A boxed future with a name: what every limiter call returns. One
/// allocation per call, next to a network round trip.
pub struct Call<'a, T> {
    inner: Pin<Box<dyn Future<Output = T> + Send + 'a>>,
}

impl<'a, T> Call<'a, T> {
    pub(crate) fn new(fut: impl Future<Output = T> + Send + 'a) -> Self {
        Self {
            inner: Box::pin(fut),
        }
    }
}

impl<T> Future for Call<'_, T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        self.inner.as_mut().poll(cx)
    }
}

impl<T> fmt::Debug for Call<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Call { .. }")
    }
}
