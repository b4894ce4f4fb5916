//! [`KeyedRedisRateLimiter`]: one quota per key (per customer, per API
//! token), each shared by every process.

use core::fmt;
use core::future::Future;
use core::marker::PhantomData;
use core::time::Duration;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use limiters::{Clock, Quota, Semaphore, SystemClock};
use redis::aio::{ConnectionLike, ConnectionManager};

use crate::core::{Call, Core, FailPolicy, RedisStats, Settings};
use crate::error::{BackendError, Error};

/// The local FIFO queues of the keys that have waiters.
type Gates = Mutex<HashMap<String, Arc<Semaphore>>>;

/// One exact GCRA quota per key, kept in Redis under `{prefix:key}` (a hash
/// tag, so every key works on Redis Cluster), shared by every process that
/// uses the same prefix and quota.
///
/// The same surface as [`RedisRateLimiter`](crate::RedisRateLimiter), with a
/// key: `check(&key)`, `check_n(&key, n)`, `acquire(&key)`,
/// `acquire_many(&key, n)`, `run(&key, fut)`, `pause_for(&key, d)`,
/// `remaining(&key)`. Idle keys cost nothing: each expires in Redis when it
/// is back to full credit, and a key's local queue exists only while it has
/// waiters.
///
/// # Fairness
///
/// Per key, as [`RedisRateLimiter`](crate::RedisRateLimiter): FIFO within
/// the process, first come first served at the server across processes.
/// Keys never wait for each other.
///
/// # Examples
///
/// "100 per minute per customer" across every server:
///
/// ```no_run
/// use limiters::Quota;
/// use limiters_redis::KeyedRedisRateLimiter;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis::RedisError> {
/// let client = redis::Client::open("redis://127.0.0.1/")?;
/// let conn = redis::aio::ConnectionManager::new(client).await?;
/// let per_customer = KeyedRedisRateLimiter::builder(conn, "customers", Quota::per_minute(100)).build();
/// let customer_id: u64 = 42;
/// let status = if per_customer.check(&customer_id).await.is_ok() { 200 } else { 429 };
/// # let _ = status; Ok(()) }
/// ```
pub struct KeyedRedisRateLimiter<K: ?Sized, C: Clock = SystemClock, Conn = ConnectionManager> {
    core: Arc<Core<C, Conn>>,
    prefix: Arc<str>,
    gates: Arc<Gates>,
    _key: PhantomData<fn(&K)>,
}

impl<K: ?Sized, C: Clock, Conn> Clone for KeyedRedisRateLimiter<K, C, Conn> {
    fn clone(&self) -> Self {
        Self {
            core: Arc::clone(&self.core),
            prefix: Arc::clone(&self.prefix),
            gates: Arc::clone(&self.gates),
            _key: PhantomData,
        }
    }
}

impl<K: ?Sized, C: Clock, Conn> fmt::Debug for KeyedRedisRateLimiter<K, C, Conn> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRedisRateLimiter")
            .field("prefix", &self.prefix)
            .field("core", &self.core)
            .finish_non_exhaustive()
    }
}

/// Builds a [`KeyedRedisRateLimiter`]; see
/// [`KeyedRedisRateLimiter::builder`].
///
/// # Examples
///
/// ```no_run
/// use limiters::Quota;
/// use limiters_redis::{FailPolicy, KeyedRedisRateLimiter};
///
/// # async fn demo(conn: redis::aio::ConnectionManager) {
/// let per_ip = KeyedRedisRateLimiter::<str>::builder(conn, "ip", Quota::per_second(20))
///     .fail_policy(FailPolicy::FallbackLocal(Quota::per_second(5)))
///     .build();
/// # drop(per_ip); }
/// ```
#[must_use = "a builder does nothing until build() is called"]
#[derive(Debug)]
pub struct KeyedRedisRateLimiterBuilder<K: ?Sized, C: Clock = SystemClock, Conn = ConnectionManager>
{
    settings: Settings<C, Conn>,
    prefix: String,
    _key: PhantomData<fn(&K)>,
}

impl<K, Conn> KeyedRedisRateLimiter<K, SystemClock, Conn>
where
    K: fmt::Display + ?Sized,
    Conn: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// Starts building a keyed limiter: `quota` for each key, stored under
    /// `{prefix:key}` (the key as `Display` writes it).
    ///
    /// # Examples
    ///
    /// See [`KeyedRedisRateLimiter`].
    pub fn builder(
        conn: Conn,
        prefix: &str,
        quota: Quota,
    ) -> KeyedRedisRateLimiterBuilder<K, SystemClock, Conn> {
        KeyedRedisRateLimiterBuilder {
            settings: Settings::new(conn, quota),
            prefix: prefix.to_owned(),
            _key: PhantomData,
        }
    }
}

impl<K, C, Conn> KeyedRedisRateLimiterBuilder<K, C, Conn>
where
    K: fmt::Display + ?Sized,
    C: Clock,
    Conn: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// What to do when Redis gives no decision (default
    /// [`FailPolicy::FailClosed`]); a local fallback quota applies per key.
    ///
    /// # Examples
    ///
    /// See [`KeyedRedisRateLimiterBuilder`].
    pub fn fail_policy(mut self, policy: FailPolicy) -> Self {
        self.settings.policy = policy;
        self
    }

    /// The longest a call waits for the server (default 50 ms).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(conn: redis::aio::ConnectionManager) {
    /// use std::time::Duration;
    /// use limiters::Quota;
    /// use limiters_redis::KeyedRedisRateLimiter;
    ///
    /// let limiter = KeyedRedisRateLimiter::<u64>::builder(conn, "user", Quota::per_second(3))
    ///     .timeout(Duration::from_millis(10))
    ///     .build();
    /// # drop(limiter); }
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = timeout;
        self
    }

    /// The clock that times the waits and the timeout.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(conn: redis::aio::ConnectionManager) {
    /// use limiters::{ManualClock, Quota};
    /// use limiters_redis::KeyedRedisRateLimiter;
    ///
    /// let limiter = KeyedRedisRateLimiter::<u64>::builder(conn, "user", Quota::per_second(3))
    ///     .clock(ManualClock::new())
    ///     .build();
    /// # drop(limiter); }
    /// ```
    pub fn clock<C2: Clock>(self, clock: C2) -> KeyedRedisRateLimiterBuilder<K, C2, Conn> {
        KeyedRedisRateLimiterBuilder {
            settings: self.settings.with_clock(clock),
            prefix: self.prefix,
            _key: PhantomData,
        }
    }

    /// Builds the limiter. Nothing is sent until the first call.
    ///
    /// # Examples
    ///
    /// See [`KeyedRedisRateLimiter`].
    pub fn build(self) -> KeyedRedisRateLimiter<K, C, Conn> {
        KeyedRedisRateLimiter {
            core: Arc::new(Core::new(self.settings)),
            prefix: self.prefix.into(),
            gates: Arc::default(),
            _key: PhantomData,
        }
    }
}

impl<K, C, Conn> KeyedRedisRateLimiter<K, C, Conn>
where
    K: fmt::Display + ?Sized,
    C: Clock,
    Conn: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// The Redis key of `key`: `{prefix:key}`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(conn: redis::aio::ConnectionManager) {
    /// use limiters::Quota;
    /// use limiters_redis::KeyedRedisRateLimiter;
    ///
    /// let limiter = KeyedRedisRateLimiter::builder(conn, "user", Quota::per_second(3)).build();
    /// assert_eq!(limiter.redis_key(&7u64), "{user:7}");
    /// # }
    /// ```
    pub fn redis_key(&self, key: &K) -> String {
        format!("{{{}:{key}}}", self.prefix)
    }

    /// The quota of each key.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(limiter: limiters_redis::KeyedRedisRateLimiter<u64>) {
    /// assert!(limiter.quota().burst() >= 1);
    /// # }
    /// ```
    pub fn quota(&self) -> Quota {
        self.core.quota
    }

    /// A snapshot of the counters, over all keys.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(limiter: limiters_redis::KeyedRedisRateLimiter<u64>) {
    /// println!("redis failures so far: {}", limiter.stats().failures());
    /// # }
    /// ```
    pub fn stats(&self) -> RedisStats {
        self.core.stats()
    }

    /// Admits one cell for `key` now, or says when.
    ///
    /// # Errors
    ///
    /// As [`RedisRateLimiter::check`](crate::RedisRateLimiter::check).
    ///
    /// # Cancel safety
    ///
    /// As [`RedisRateLimiter::check`](crate::RedisRateLimiter::check).
    ///
    /// # Examples
    ///
    /// See [`KeyedRedisRateLimiter`].
    pub fn check(&self, key: &K) -> Call<'_, Result<(), Error<C::Instant>>> {
        self.check_n(key, 1)
    }

    /// Admits `n` cells for `key` at once, or none.
    ///
    /// # Errors
    ///
    /// As [`RedisRateLimiter::check_n`](crate::RedisRateLimiter::check_n).
    ///
    /// # Cancel safety
    ///
    /// As [`RedisRateLimiter::check`](crate::RedisRateLimiter::check).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(limiter: limiters_redis::KeyedRedisRateLimiter<str>) {
    /// let admitted = limiter.check_n("tenant-9", 4).await.is_ok();
    /// # let _ = admitted; }
    /// ```
    pub fn check_n(&self, key: &K, n: u32) -> Call<'_, Result<(), Error<C::Instant>>> {
        let key = self.redis_key(key);
        Call::new(async move { self.core.check_n(&key, n).await })
    }

    /// Waits for one cell for `key`, FIFO behind this process's other
    /// waiters for the same key.
    ///
    /// # Errors
    ///
    /// As [`RedisRateLimiter::acquire`](crate::RedisRateLimiter::acquire).
    ///
    /// # Cancel safety
    ///
    /// As [`RedisRateLimiter::acquire`](crate::RedisRateLimiter::acquire).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(limiter: limiters_redis::KeyedRedisRateLimiter<str>) -> Result<(), limiters_redis::Error<std::time::Instant>> {
    /// limiter.acquire("host-a.example").await?;
    /// # Ok(()) }
    /// ```
    pub fn acquire(&self, key: &K) -> Call<'_, Result<(), Error<C::Instant>>> {
        self.acquire_many(key, 1)
    }

    /// Waits for `n` cells for `key`.
    ///
    /// # Errors
    ///
    /// As [`RedisRateLimiter::acquire_many`](crate::RedisRateLimiter::acquire_many).
    ///
    /// # Cancel safety
    ///
    /// As [`RedisRateLimiter::acquire`](crate::RedisRateLimiter::acquire).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(limiter: limiters_redis::KeyedRedisRateLimiter<str>) -> Result<(), limiters_redis::Error<std::time::Instant>> {
    /// limiter.acquire_many("tenant-9", 2).await?;
    /// # Ok(()) }
    /// ```
    pub fn acquire_many(&self, key: &K, n: u32) -> Call<'_, Result<(), Error<C::Instant>>> {
        let key = self.redis_key(key);
        Call::new(async move {
            let gate = KeyGate::join(&self.gates, &key);
            self.core.acquire_n(&gate.gate, &key, n).await
        })
    }

    /// Runs `fut` once a cell for `key` is admitted.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire); `fut` is then never polled.
    ///
    /// # Cancel safety
    ///
    /// As [`RedisRateLimiter::run`](crate::RedisRateLimiter::run).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(limiter: limiters_redis::KeyedRedisRateLimiter<str>) -> Result<(), limiters_redis::Error<std::time::Instant>> {
    /// let n = limiter.run("tenant-9", async { 1 + 1 }).await?;
    /// # let _ = n; Ok(()) }
    /// ```
    pub fn run<'a, F>(&'a self, key: &K, fut: F) -> Call<'a, Result<F::Output, Error<C::Instant>>>
    where
        F: Future + Send + 'a,
        F::Output: Send,
    {
        let acquire = self.acquire(key);
        Call::new(async move {
            acquire.await?;
            Ok(fut.await)
        })
    }

    /// Admits nothing for `key`, in any process, for `duration` (see
    /// [`RedisRateLimiter::pause_for`](crate::RedisRateLimiter::pause_for)).
    ///
    /// # Errors
    ///
    /// The [`BackendError`] if the pause could not be stored.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(limiter: limiters_redis::KeyedRedisRateLimiter<str>) -> Result<(), limiters_redis::BackendError> {
    /// limiter.pause_for("host-a.example", std::time::Duration::from_secs(60)).await?;
    /// # Ok(()) }
    /// ```
    pub fn pause_for(&self, key: &K, duration: Duration) -> Call<'_, Result<(), BackendError>> {
        let key = self.redis_key(key);
        Call::new(async move { self.core.pause_for(&key, duration).await })
    }

    /// How many cells `check_n(key, _)` would admit right now.
    ///
    /// # Errors
    ///
    /// The [`BackendError`] if Redis gave no answer.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(limiter: limiters_redis::KeyedRedisRateLimiter<str>) -> Result<(), limiters_redis::BackendError> {
    /// let left = limiter.remaining("tenant-9").await?;
    /// # let _ = left; Ok(()) }
    /// ```
    pub fn remaining(&self, key: &K) -> Call<'_, Result<u32, BackendError>> {
        let key = self.redis_key(key);
        Call::new(async move { self.core.remaining(&key).await })
    }

    /// Keys with a local queue right now (keys that have waiters in this
    /// process).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(limiter: limiters_redis::KeyedRedisRateLimiter<str>) {
    /// assert_eq!(limiter.queued_keys(), 0);
    /// # }
    /// ```
    pub fn queued_keys(&self) -> usize {
        self.gates.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// A waiter's hold on its key's local queue; the last one out removes it.
struct KeyGate<'a> {
    gates: &'a Gates,
    key: &'a str,
    gate: Arc<Semaphore>,
}

impl<'a> KeyGate<'a> {
    fn join(gates: &'a Gates, key: &'a str) -> Self {
        let mut map = gates.lock().unwrap_or_else(|e| e.into_inner());
        let gate = Arc::clone(
            map.entry(key.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(1))),
        );
        drop(map);
        KeyGate { gates, key, gate }
    }
}

impl Drop for KeyGate<'_> {
    fn drop(&mut self) {
        let mut map = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        // Joiners clone under this lock, so a count of 2 (the map's and
        // ours) means nobody else waits on this key.
        let removed = if Arc::strong_count(&self.gate) == 2 {
            map.remove(self.key)
        } else {
            None
        };
        drop(map);
        drop(removed);
    }
}
