//! [`KeyedRateLimiter`]: one exact GCRA per key.

use core::fmt;
use core::future::Future;
use core::hash::Hash;
use core::pin::Pin;
use core::task::{ready, Context, Poll};
use core::time::Duration;

use pin_project_lite::pin_project;

use super::Shards;
#[cfg(feature = "async-io")]
use crate::clock::SystemClock;
use crate::clock::{Clock, ClockInstant};
use crate::deadline::{sealed::Sealed, try_check, Attempt, Within};
use crate::error::{DeadlineError, InsufficientCapacity, NotUntil, RateLimitError};
use crate::rate::arith::{Step, Ticks};
use crate::rate::quota::Quota;
use crate::rate::reserved::{Reserve, ReservedWait};
use crate::stats::{Counters, KeyedStats};

/// Idle keys (full credit) a [`KeyedRateLimiter`] lets stay, over all its
/// shards, before it sweeps them: a client that comes back within that many
/// other keys finds its entry instead of inserting a new one (and sweeping
/// for it), and 16,384 entries of a `u64` key take 384 KiB.
const IDLE_KEYS: usize = 16_384;

crate::clock::with_default! {
    /// One rate per key, e.g. per client IP or per API token: each key
    /// gets the same [`Quota`], enforced with the exact GCRA of
    /// [`RateLimiter`](crate::RateLimiter) (at most `burst + floor(W *
    /// cells / period)` cells per key in any window of length `W`).
    ///
    /// A key costs one hash-map entry (the key and one 128-bit `tat`: 24
    /// bytes for a `u64` key). Keys whose credit is full again are evicted
    /// automatically as new keys arrive, once more than 16,384 are stored,
    /// so memory stays bounded by about twice the keys active in the last
    /// `burst` emission intervals plus those 16,384, however many distinct
    /// keys pass through. [`len`](Self::len) shows how many are stored.
    ///
    /// # Fairness
    ///
    /// Per key, [`acquire`](Self::acquire) reserves its cells when first
    /// polled and completes in that order; [`check`](Self::check) never
    /// takes cells a waiter reserved. Keys are independent.
    ///
    /// # Scalability
    ///
    /// The keys live in a sharded map (a lock per shard, shards chosen by
    /// hash, four per core): a check of a known key hashes it once, holds
    /// one shard's lock for one probe of its table and never waits for keys
    /// elsewhere.
    ///
    /// # Examples
    ///
    /// A server limiting each client to 5 requests per second, bursts of
    /// 10, answering 429 itself:
    ///
    /// ```
    /// use std::net::IpAddr;
    /// use limiters::{KeyedRateLimiter, ManualClock, Quota};
    ///
    /// let per_client = KeyedRateLimiter::with_clock(
    ///     Quota::per_second(5).allow_burst(10),
    ///     ManualClock::new(),
    /// );
    /// let alice: IpAddr = "192.0.2.1".parse().unwrap();
    /// let bob: IpAddr = "192.0.2.2".parse().unwrap();
    /// let status = |ip| if per_client.check(&ip).is_ok() { 200 } else { 429 };
    /// let alice_answers: Vec<u16> = (0..12).map(|_| status(alice)).collect();
    /// assert_eq!(alice_answers.iter().filter(|&&s| s == 429).count(), 2);
    /// assert_eq!(status(bob), 200); // Alice's burst does not touch Bob
    /// assert_eq!(per_client.len(), 2);
    /// ```
    pub struct KeyedRateLimiter<K, C: Clock = SystemClock> {
        quota: Quota,
        ticks: Ticks,
        clock: C,
        base: C::Instant,
        keys: Shards<K, Tat>,
        counters: Counters,
    }
}

#[cfg(feature = "async-io")]
impl<K: Hash + Eq + Clone> KeyedRateLimiter<K> {
    /// A keyed limiter on the [`SystemClock`]: `quota` for each key.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{KeyedRateLimiter, Quota};
    ///
    /// let per_token: KeyedRateLimiter<String> = KeyedRateLimiter::new(Quota::per_minute(60));
    /// assert!(per_token.check(&"token-a".to_string()).is_ok());
    /// ```
    pub fn new(quota: Quota) -> Self {
        Self::with_clock(quota, SystemClock)
    }
}

impl<K: Hash + Eq + Clone, C: Clock> KeyedRateLimiter<K, C> {
    /// A keyed limiter reading time from `clock`.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{KeyedRateLimiter, ManualClock, Quota};
    ///
    /// let limiter = KeyedRateLimiter::with_clock(Quota::per_second(1), ManualClock::new());
    /// assert!(limiter.check(&1u32).is_ok());
    /// assert!(limiter.check(&1u32).is_err());
    /// ```
    pub fn with_clock(quota: Quota, clock: C) -> Self {
        let base = clock.origin();
        Self {
            quota,
            ticks: Ticks::of(quota),
            clock,
            base,
            keys: Shards::new(IDLE_KEYS),
            counters: Counters::new(),
        }
    }

    fn now_ns(&self) -> u64 {
        self.clock.nanos_since(self.base)
    }

    fn instant_at(&self, ns: u64) -> C::Instant {
        self.base.saturating_add(Duration::from_nanos(ns))
    }

    /// Full credit: the same as a key never seen.
    fn idle(&self, now: u64) -> impl Fn(&Tat) -> bool + '_ {
        move |tat: &Tat| tat.get() <= self.ticks.at(now)
    }

    /// Admits one cell for `key` now, or says when it would be.
    ///
    /// # Errors
    ///
    /// [`NotUntil`] with the earliest instant one cell conforms for `key`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use limiters::{KeyedRateLimiter, ManualClock, Quota};
    ///
    /// let limiter = KeyedRateLimiter::with_clock(Quota::per_second(2), ManualClock::new());
    /// limiter.check(&"a").unwrap();
    /// let denied = limiter.check(&"a").unwrap_err();
    /// assert_eq!(denied.wait_time(), Duration::from_millis(500));
    /// ```
    pub fn check(&self, key: &K) -> Result<(), NotUntil<C::Instant>> {
        match self.check_n(key, 1) {
            Ok(()) => Ok(()),
            Err(RateLimitError::NotUntil(not_until)) => Err(not_until),
            Err(RateLimitError::InsufficientCapacity { .. }) => {
                unreachable!("a burst is at least 1 cell")
            }
        }
    }

    /// Admits `n` cells for `key` at once, or none.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::InsufficientCapacity`] if `n` exceeds the burst,
    /// [`RateLimitError::NotUntil`] if not now.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{KeyedRateLimiter, ManualClock, Quota, RateLimitError};
    ///
    /// let limiter = KeyedRateLimiter::with_clock(Quota::per_second(10).allow_burst(5), ManualClock::new());
    /// limiter.check_n(&7, 5).unwrap();
    /// assert!(matches!(limiter.check_n(&7, 1), Err(RateLimitError::NotUntil(_))));
    /// assert!(matches!(limiter.check_n(&8, 6), Err(RateLimitError::InsufficientCapacity { .. })));
    /// ```
    pub fn check_n(&self, key: &K, n: u32) -> Result<(), RateLimitError<C::Instant>> {
        self.admit_n(key, n, true)
    }

    /// [`check_n`](Self::check_n); a refusal is counted in `stats` only if
    /// `count_refusal` (`acquire_within`'s refused check may go on to wait).
    #[inline]
    fn admit_n(
        &self,
        key: &K,
        n: u32,
        count_refusal: bool,
    ) -> Result<(), RateLimitError<C::Instant>> {
        let burst = self.ticks.burst;
        if n > burst {
            if count_refusal {
                self.counters.deny();
            }
            return Err(RateLimitError::InsufficientCapacity {
                requested: n,
                burst,
            });
        }
        let now = self.now_ns();
        match self.check_then(key, n, now, count_refusal, |_, _| ()) {
            (None, ()) => Ok(()),
            (Some(at), ()) => Err(RateLimitError::NotUntil(NotUntil::at_ns(
                self.base, at, now,
            ))),
        }
    }

    /// Admits `n` cells for `key` at `now` (`None`) or returns the first ns
    /// at which they would conform, with `after(quota, tat)` on the key's
    /// `tat` right after, under the same lock. The admission is counted in
    /// `stats`, and a refusal if `count_refusal`, in the shard's tally.
    #[inline]
    fn check_then<R>(
        &self,
        key: &K,
        n: u32,
        now: u64,
        count_refusal: bool,
        after: impl FnOnce(&Ticks, u128) -> R,
    ) -> (Option<u64>, R) {
        let k = &self.ticks;
        let checked =
            self.keys
                .with_entry(key, None, self.idle(now), Tat::default, |tat, tally| {
                    let step = Step::new(tat.get(), now, n, k);
                    let denied = if step.conforms(now, k) {
                        *tat = Tat::new(step.tat);
                        tally.admit();
                        None
                    } else {
                        if count_refusal {
                            tally.deny();
                        }
                        Some(step.earliest_ns(k))
                    };
                    (denied, after(k, tat.get()))
                });
        checked.expect("no key limit")
    }

    /// [`check`](Self::check) and the key's state right after it, under one
    /// lock: what an HTTP layer writes into its headers.
    #[cfg(feature = "tower")]
    pub(crate) fn check_report(&self, key: &K) -> KeyReport {
        let now = self.now_ns();
        let (denied, (remaining, until_full_ns)) = self.check_then(key, 1, now, true, |k, tat| {
            (k.remaining(tat, now), k.until_full_ns(tat, now))
        });
        KeyReport {
            wait: denied.map(|at| Duration::from_nanos(at.saturating_sub(now))),
            remaining,
            until_full: Duration::from_nanos(until_full_ns),
        }
    }

    /// Cells a check for `key` could take right now: the largest `n` for
    /// which [`check_n(key, n)`](Self::check_n) would succeed at this
    /// instant, computed without taking anything (a key never seen, or
    /// evicted, has the whole burst). See
    /// [`RateLimiter::remaining`](crate::RateLimiter::remaining).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{KeyedRateLimiter, ManualClock, Quota};
    ///
    /// let limiter = KeyedRateLimiter::with_clock(Quota::per_second(5).allow_burst(5), ManualClock::new());
    /// limiter.check_n(&"alice", 3).unwrap();
    /// assert_eq!(limiter.remaining(&"alice"), 2);
    /// assert_eq!(limiter.remaining(&"bob"), 5);
    /// ```
    pub fn remaining(&self, key: &K) -> u32 {
        let now = self.now_ns();
        let tat = self.keys.with_existing(key, |tat| tat.get()).unwrap_or(0);
        self.ticks.remaining(tat, now)
    }

    /// A snapshot for dashboards: keys stored and the totals admitted,
    /// refused and waited since creation, over all keys. Cheap: two loads
    /// per shard (each counts its own checks) and a few more, no lock.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{KeyedRateLimiter, ManualClock, Quota};
    ///
    /// let per_client = KeyedRateLimiter::with_clock(Quota::per_second(1), ManualClock::new());
    /// per_client.check(&1).unwrap();
    /// assert!(per_client.check(&1).is_err());
    /// let stats = per_client.stats();
    /// assert_eq!((stats.keys, stats.totals.admitted, stats.totals.denied), (1, 1, 1));
    /// ```
    pub fn stats(&self) -> KeyedStats {
        let mut totals = self.counters.snapshot();
        let (admitted, denied) = self.keys.tally();
        totals.admitted += admitted;
        totals.denied += denied;
        KeyedStats {
            keys: self.keys.len(),
            waiters: 0,
            totals,
        }
    }

    /// Time until `key` has its whole burst again if it takes nothing more
    /// (zero for a key with full credit). See
    /// [`RateLimiter::until_full`](crate::RateLimiter::until_full).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use limiters::{KeyedRateLimiter, ManualClock, Quota};
    ///
    /// let limiter = KeyedRateLimiter::with_clock(Quota::per_second(5).allow_burst(5), ManualClock::new());
    /// limiter.check_n(&"alice", 3).unwrap();
    /// assert_eq!(limiter.until_full(&"alice"), Duration::from_millis(600));
    /// assert_eq!(limiter.until_full(&"bob"), Duration::ZERO);
    /// ```
    pub fn until_full(&self, key: &K) -> Duration {
        let now = self.now_ns();
        let tat = self.keys.with_existing(key, |tat| tat.get()).unwrap_or(0);
        Duration::from_nanos(self.ticks.until_full_ns(tat, now))
    }

    /// Waits for one cell for `key`.
    ///
    /// # Cancel safety
    ///
    /// The cell is reserved at the first poll. Dropping the future before
    /// its time gives the cell back if no later reservation for the same key
    /// was timed after it.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{KeyedRateLimiter, Quota};
    ///
    /// # futures_lite::future::block_on(async {
    /// let per_host = KeyedRateLimiter::new(Quota::per_second(1_000).allow_burst(2));
    /// for _ in 0..3 {
    ///     per_host.acquire(&"example.org").await;
    /// }
    /// # });
    /// ```
    pub fn acquire(&self, key: &K) -> KeyedRateAcquire<'_, K, C> {
        KeyedRateAcquire {
            inner: self.acquire_many(key, 1),
        }
    }

    /// Waits for `n` cells for `key`, admitted together.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] at once if `n` exceeds the burst.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{KeyedRateLimiter, Quota};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = KeyedRateLimiter::new(Quota::per_second(100).allow_burst(10));
    /// limiter.acquire_many(&"batch", 10).await.unwrap();
    /// assert!(limiter.acquire_many(&"batch", 11).await.is_err());
    /// # });
    /// ```
    pub fn acquire_many(&self, key: &K, n: u32) -> KeyedRateAcquireMany<'_, K, C> {
        KeyedRateAcquireMany {
            inner: ReservedWait::new(
                KeyedSlot {
                    limiter: self,
                    key: key.clone(),
                },
                n,
            ),
        }
    }

    /// Blocks the current thread until one cell is admitted for `key`: the
    /// blocking form of [`acquire`](Self::acquire).
    ///
    /// For plain threads; never call it from async code (it would block the
    /// executor). Blocking waiters share the FIFO queue of async ones.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{KeyedRateLimiter, Quota};
    ///
    /// let per_host = KeyedRateLimiter::new(Quota::per_second(1_000).allow_burst(2));
    /// for _ in 0..3 {
    ///     per_host.acquire_blocking(&"example.org"); // the third waits 1 ms
    /// }
    /// ```
    #[cfg(not(loom))]
    pub fn acquire_blocking(&self, key: &K) {
        crate::block::block_on(self.acquire(key))
    }

    /// Blocks the current thread until `n` cells are admitted together for
    /// `key`: the blocking form of [`acquire_many`](Self::acquire_many).
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
    /// use limiters::{KeyedRateLimiter, Quota};
    ///
    /// let limiter = KeyedRateLimiter::new(Quota::per_second(100).allow_burst(10));
    /// assert!(limiter.acquire_many_blocking(&"batch", 10).is_ok());
    /// assert!(limiter.acquire_many_blocking(&"batch", 11).is_err());
    /// ```
    #[cfg(not(loom))]
    pub fn acquire_many_blocking(&self, key: &K, n: u32) -> Result<(), InsufficientCapacity> {
        crate::block::block_on(self.acquire_many(key, n))
    }

    /// Waits for one cell for `key`, but not past `timeout` from now on the
    /// limiter's clock. A wait known to end after the deadline fails at once
    /// with [`DeadlineError::WouldExceed`], taking nothing; a zero `timeout`
    /// is [`check`](Self::check); a huge one saturates.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Errors
    ///
    /// [`DeadlineError::WouldExceed`] at once. (A key's reservations never
    /// move, so a request queued in time is served in time.)
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{DeadlineError, KeyedRateLimiter, ManualClock, Quota};
    ///
    /// # futures_lite::future::block_on(async {
    /// let per_user = KeyedRateLimiter::with_clock(Quota::per_second(2), ManualClock::new());
    /// let budget = Duration::from_millis(100);
    /// assert!(per_user.acquire_within(&"ann", budget).await.is_ok());
    /// let again = per_user.acquire_within(&"ann", budget).await;
    /// assert!(matches!(again, Err(DeadlineError::WouldExceed { .. })));
    /// assert!(per_user.acquire_within(&"bob", budget).await.is_ok());
    /// # });
    /// ```
    pub fn acquire_within(&self, key: &K, timeout: Duration) -> KeyedRateAcquireWithin<'_, K, C> {
        self.acquire_many_within(key, 1, timeout)
    }

    /// Waits for `n` cells for `key`, admitted together, but not past
    /// `timeout` from now (see [`acquire_within`](Self::acquire_within)).
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Errors
    ///
    /// As [`acquire_within`](Self::acquire_within), and
    /// [`DeadlineError::InsufficientCapacity`] at once if `n` exceeds the
    /// burst.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{KeyedRateLimiter, ManualClock, Quota};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = KeyedRateLimiter::with_clock(Quota::per_second(10).allow_burst(3), ManualClock::new());
    /// let second = Duration::from_secs(1);
    /// assert!(limiter.acquire_many_within(&1, 3, second).await.is_ok());
    /// assert!(limiter.acquire_many_within(&1, 4, second).await.is_err());
    /// # });
    /// ```
    pub fn acquire_many_within(
        &self,
        key: &K,
        n: u32,
        timeout: Duration,
    ) -> KeyedRateAcquireWithin<'_, K, C> {
        Within::new(self.acquire_many(key, n), timeout)
    }

    /// Keys stored now: those that used credit recently, plus idle ones not
    /// yet swept (see the type's docs).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{KeyedRateLimiter, ManualClock, Quota};
    ///
    /// let limiter = KeyedRateLimiter::with_clock(Quota::per_second(1), ManualClock::new());
    /// limiter.check(&"a").unwrap();
    /// assert_eq!(limiter.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is stored.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{KeyedRateLimiter, Quota};
    ///
    /// assert!(KeyedRateLimiter::<u64>::new(Quota::per_second(1)).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every key whose credit is full now (this also happens on its
    /// own as keys are added).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use limiters::{KeyedRateLimiter, ManualClock, Quota};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = KeyedRateLimiter::with_clock(Quota::per_second(1), clock.clone());
    /// limiter.check(&"a").unwrap();
    /// clock.advance(Duration::from_secs(1));
    /// limiter.evict_idle();
    /// assert!(limiter.is_empty());
    /// ```
    pub fn evict_idle(&self) {
        self.keys.sweep(self.idle(self.now_ns()));
    }

    /// The quota every key gets.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{KeyedRateLimiter, Quota};
    ///
    /// let limiter = KeyedRateLimiter::<u8>::new(Quota::per_hour(100));
    /// assert_eq!(limiter.quota(), Quota::per_hour(100));
    /// ```
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// Reserves `n` cells for `key`: `(tat after, instant admitted)`.
    fn reserve(&self, key: &K, n: u32) -> (u128, u64) {
        let k = self.ticks;
        let now = self.now_ns();
        self.keys
            .with_entry(key, None, self.idle(now), Tat::default, |tat, _| {
                // As `RateLimiter` reserves: the slot starts no earlier
                // than the whole ns at which it is admitted.
                let step = Step::reserve(tat.get(), now, n, &k);
                let after = step.tat.min(k.max_tat());
                *tat = Tat::new(after);
                (after, step.earliest_ns(&k))
            })
            .expect("no key limit")
    }

    /// Gives back `n` cells reserved for `key` if that reservation is still
    /// the last (the key's `tat` is still `tat`) and its time has not come.
    fn refund(&self, key: &K, n: u32, tat: u128, ready_ns: u64) {
        if ready_ns <= self.now_ns() {
            return;
        }
        let cells = self.ticks.cells_ticks(n);
        self.keys.with_existing(key, |current| {
            if current.get() == tat {
                *current = Tat::new(tat - cells);
            }
        });
    }
}

impl<K, C: Clock> fmt::Debug for KeyedRateLimiter<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimiter")
            .field("quota", &self.quota)
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// A key's `tat` (in ticks, see [`Ticks`]) as two 64-bit halves: aligned
/// to 8 bytes, so an entry with a `u64` key takes 24 bytes where a `u128`
/// (aligned to 16) would take 32.
#[derive(Clone, Copy, Default)]
struct Tat([u64; 2]);

impl Tat {
    #[inline]
    fn new(ticks: u128) -> Tat {
        Tat([ticks as u64, (ticks >> 64) as u64])
    }

    #[inline]
    fn get(self) -> u128 {
        u128::from(self.0[1]) << 64 | u128::from(self.0[0])
    }
}

/// A key's state after one check (see `KeyedRateLimiter::check_report`).
#[cfg(feature = "tower")]
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyReport {
    /// `Some(wait)` if the check was denied.
    pub(crate) wait: Option<Duration>,
    /// Cells admissible right after the check.
    pub(crate) remaining: u32,
    /// Time until the key's burst is full again.
    pub(crate) until_full: Duration,
}

/// A key of a [`KeyedRateLimiter`]: what a [`ReservedWait`] reserves on.
pub(crate) struct KeyedSlot<'a, K, C: Clock> {
    limiter: &'a KeyedRateLimiter<K, C>,
    key: K,
}

impl<K: Hash + Eq + Clone, C: Clock> Reserve for KeyedSlot<'_, K, C> {
    type Clock = C;
    type Mark = u128;

    fn reserve(&self, n: u32) -> Result<(u128, u64), InsufficientCapacity> {
        let burst = self.limiter.ticks.burst;
        if n > burst {
            return Err(InsufficientCapacity {
                requested: n,
                burst,
            });
        }
        Ok(self.limiter.reserve(&self.key, n))
    }

    fn refund(&self, n: u32, tat: u128, ready_ns: u64) {
        self.limiter.refund(&self.key, n, tat, ready_ns);
    }

    fn now_ns(&self) -> u64 {
        self.limiter.now_ns()
    }

    fn sleep_until_ns(&self, ns: u64) -> C::Sleep {
        self.limiter.clock.sleep_until(self.limiter.instant_at(ns))
    }

    fn counters(&self) -> &Counters {
        &self.limiter.counters
    }
}

pin_project! {
    /// The future returned by [`KeyedRateLimiter::acquire_many`].
    ///
    /// # Cancel safety
    ///
    /// See [`KeyedRateLimiter::acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{futures::KeyedRateAcquireMany, KeyedRateLimiter, Quota, SystemClock};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = KeyedRateLimiter::new(Quota::per_second(100).allow_burst(3));
    /// let fut: KeyedRateAcquireMany<'_, &str, SystemClock> = limiter.acquire_many(&"k", 3);
    /// fut.await.unwrap();
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct KeyedRateAcquireMany<'a, K, C: Clock>
    where
        K: Hash,
        K: Eq,
        K: Clone,
    {
        #[pin]
        inner: ReservedWait<KeyedSlot<'a, K, C>>,
    }
}

impl<K: Hash + Eq + Clone, C: Clock> Future for KeyedRateAcquireMany<'_, K, C> {
    type Output = Result<(), InsufficientCapacity>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}

impl<K, C: Clock> fmt::Debug for KeyedRateAcquireMany<'_, K, C>
where
    K: Hash + Eq + Clone,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateAcquireMany")
            .field("n", &self.inner.n)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// The future returned by [`KeyedRateLimiter::acquire`].
    ///
    /// # Cancel safety
    ///
    /// See [`KeyedRateLimiter::acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{futures::KeyedRateAcquire, KeyedRateLimiter, Quota, SystemClock};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = KeyedRateLimiter::new(Quota::per_second(100));
    /// let fut: KeyedRateAcquire<'_, u32, SystemClock> = limiter.acquire(&1);
    /// fut.await;
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct KeyedRateAcquire<'a, K, C: Clock>
    where
        K: Hash,
        K: Eq,
        K: Clone,
    {
        #[pin]
        inner: KeyedRateAcquireMany<'a, K, C>,
    }
}

impl<K: Hash + Eq + Clone, C: Clock> Future for KeyedRateAcquire<'_, K, C> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let result = ready!(self.project().inner.poll(cx));
        result.expect("one cell never exceeds a burst");
        Poll::Ready(())
    }
}

impl<K: Hash + Eq + Clone, C: Clock> fmt::Debug for KeyedRateAcquire<'_, K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyedRateAcquire { .. }")
    }
}

/// The future returned by [`KeyedRateLimiter::acquire_within`] and
/// [`KeyedRateLimiter::acquire_many_within`] (see [`Within`]).
pub type KeyedRateAcquireWithin<'a, K, C> = Within<KeyedRateAcquireMany<'a, K, C>>;

impl<K: Hash + Eq + Clone, C: Clock> Sealed for KeyedRateAcquireMany<'_, K, C> {}

impl<K: Hash + Eq + Clone, C: Clock> Attempt for KeyedRateAcquireMany<'_, K, C> {
    type Clock = C;
    type Admitted = ();

    fn clock(&self) -> &C {
        &self.inner.limiter.limiter.clock
    }

    fn try_now(
        self: Pin<&mut Self>,
        deadline: C::Instant,
    ) -> Option<Result<(), DeadlineError<C::Instant>>> {
        let slot = &self.inner.limiter;
        try_check(
            slot.limiter.admit_n(&slot.key, self.inner.n, false),
            deadline,
        )
    }

    fn refused(&self) {
        self.inner.limiter.limiter.counters.deny();
    }

    fn sleeping_until(&self) -> Option<C::Instant> {
        // Later than the check said only if a reservation raced ours.
        self.inner
            .ready_ns()
            .map(|ns| self.inner.limiter.limiter.instant_at(ns))
    }

    fn finish(output: Self::Output) -> Result<(), DeadlineError<C::Instant>> {
        output.map_err(Into::into)
    }
}
