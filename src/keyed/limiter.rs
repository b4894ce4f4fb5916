//! [`KeyedLimiter`]: a [`Limiter`] per key, plus an optional global one.

use alloc::sync::Arc;
use core::fmt;
use core::future::Future;
use core::hash::Hash;
use core::pin::Pin;
use core::task::{ready, Context, Poll};
use core::time::Duration;

use pin_project_lite::pin_project;

use super::fair::{Fair, Turn, TurnWait};
use super::Shards;
use crate::clock::Clock;
#[cfg(feature = "async-io")]
use crate::clock::SystemClock;
use crate::error::AcquireError;
use crate::error::BuildError;
use crate::limiter::LimiterAcquire;
use crate::limiter::{Limiter, LimiterBuilder, LimiterPermit};
use crate::stats::{KeyedStats, Totals};

crate::clock::with_default! {
    /// A [`Limiter`] per key (e.g. per host), built from one template,
    /// plus an optional global `Limiter` that every request also passes:
    /// "at most 2 requests in flight and 5 per second *per host*, 20 in
    /// flight overall".
    ///
    /// # Order of stages
    ///
    /// The order of [`Limiter`] (slots first, then rates), across both
    /// limiters:
    ///
    /// 1. the key's slots (its concurrency, then its minimum hold);
    /// 2. the global slots;
    /// 3. the key's rate queue: its head waits until every quota of the
    ///    key admits it (and no pause of the key is in force), taking
    ///    nothing yet;
    /// 4. the global rate queue: its head waits until the global quotas
    ///    admit it too, and takes the key's cells and the global cells
    ///    at that one instant, when the work starts.
    ///
    /// So a request for a busy key never holds a global slot while it
    /// waits for its key's slot, and the rates govern when work starts:
    /// a key's rate cell is never spent while its request still waits
    /// for the global stage (then requests to one host would pile up
    /// behind a busy or paused global limiter and start together). A
    /// request does hold its key's rate queue while it waits for the
    /// global rate, which delays only its own key; if the key is paused
    /// meanwhile, it leaves the global rate queue until the pause ends.
    ///
    /// # Fairness
    ///
    /// Within a key, requests are served in FIFO order. Across keys, the
    /// global limiter is shared by deficit round robin, not in one FIFO
    /// queue: a key with 1,000 requests queued does not make a key that
    /// sends one wait behind all of them. Requests that passed their
    /// key's slots take turns to queue for the global limiter (one at a
    /// time holds the turn, until the global limiter admits it or while
    /// it waits only for its own key's rate); the turn goes
    /// round the keys with requests waiting, each getting as many turns
    /// per round as its weight (default 1, see
    /// [`with_weights`](Self::with_weights)). A key that starts waiting
    /// joins the end of the round, so it is served within one round; a
    /// key with nothing queued takes nothing. Keys sharing the overflow
    /// limiter (see "Memory") share one place in the round.
    ///
    /// The turn is handed to the chosen request directly, and a request
    /// dropped while waiting for it (or just after being chosen) passes
    /// it on: nothing is lost. An uncontended request takes and gives
    /// back the free turn without allocating.
    ///
    /// # Memory
    ///
    /// A key's limiter is created on first use and evicted automatically
    /// once idle: nobody holds or waits on it, no minimum hold or pause
    /// is in force, and every rate has full credit (so a new limiter
    /// would behave exactly the same). Eviction is amortized over
    /// insertions; memory stays proportional to the keys recently busy,
    /// however many distinct keys pass through. [`len`](Self::len)
    /// shows how many are stored.
    ///
    /// With [`with_max_keys(n)`](Self::with_max_keys), at most about `n`
    /// keys are stored. When that many are busy, a request for a new key
    /// goes through one shared *overflow* limiter (built from the same
    /// template) instead of its own: limits are never exceeded, they are
    /// only shared among the overflowing keys until others go idle.
    ///
    /// # Cancel safety
    ///
    /// As [`Limiter::run`]: dropping a [`run`](Self::run) future at any
    /// point gives back everything it holds in both limiters.
    ///
    /// # Examples
    ///
    /// A crawler: per host 2 in flight and 10 per second, 8 in flight
    /// overall:
    ///
    /// ```
    /// use limiters::{KeyedLimiter, Limiter, Quota};
    ///
    /// async fn fetch(url: &str) -> usize { url.len() } // your HTTP GET
    ///
    /// # futures_lite::future::block_on(async {
    /// let per_host = Limiter::builder().concurrency(2).rate(Quota::per_second(10));
    /// let crawler = KeyedLimiter::new(per_host)?
    ///     .with_global(Limiter::builder().concurrency(8).build()?);
    /// let urls = ["a.example/1", "a.example/2", "b.example/1"];
    /// let fetches = urls.iter().map(|url| {
    ///     let host = url.split('/').next().unwrap().to_string();
    ///     let crawler = &crawler;
    ///     async move { crawler.run(&host, fetch(url)).await }
    /// });
    /// let sizes = futures::future::join_all(fetches).await;
    /// assert!(sizes.iter().all(Result::is_ok));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub struct KeyedLimiter<K, C: Clock = SystemClock> {
        template: LimiterBuilder<C>,
        global: Option<Limiter<C>>,
        // Who queues for the global limiter next: see "Fairness".
        fair: Arc<Fair>,
        weights: Option<Weights<K>>,
        max_keys: Option<usize>,
        overflow: Limiter<C>,
        keys: Shards<K, Limiter<C>>,
    }
}

/// A key's share of the global limiter (see [`KeyedLimiter::with_weights`]).
type Weights<K> = Arc<dyn Fn(&K) -> u32 + Send + Sync>;

impl<K: Hash + Eq + Clone, C: Clock> KeyedLimiter<K, C> {
    /// Every key gets a limiter built from `template`.
    ///
    /// # Errors
    ///
    /// The template's [`BuildError`], if it is not a valid limiter.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{BuildError, KeyedLimiter, Limiter};
    ///
    /// let per_host = KeyedLimiter::<String>::new(Limiter::builder().concurrency(4))?;
    /// assert!(per_host.is_empty());
    /// assert_eq!(KeyedLimiter::<String>::new(Limiter::builder()).unwrap_err(), BuildError::NoLimits);
    /// # Ok::<(), BuildError>(())
    /// ```
    pub fn new(template: LimiterBuilder<C>) -> Result<Self, BuildError> {
        let overflow = template.clone().build()?;
        Ok(Self {
            template,
            global: None,
            fair: Arc::new(Fair::new()),
            weights: None,
            max_keys: None,
            overflow,
            keys: Shards::new(),
        })
    }

    /// Every request also passes `global`, in the order described under
    /// "Order of stages" in the type's docs.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{KeyedLimiter, Limiter, Quota};
    ///
    /// let keyed = KeyedLimiter::<u32>::new(Limiter::builder().concurrency(1))
    ///     .unwrap()
    ///     .with_global(Limiter::builder().rate(Quota::per_second(100)).build().unwrap());
    /// assert!(keyed.global().is_some());
    /// ```
    pub fn with_global(mut self, global: Limiter<C>) -> Self {
        self.global = Some(global);
        if self.overflow.is_idle() {
            self.overflow = self.build_key();
        }
        self
    }

    /// Gives each key a weight in the fair share of the global limiter
    /// (default 1; 0 counts as 1): while keys are backlogged, a key of
    /// weight `w` gets `w` turns for every turn of a key of weight 1. See
    /// "Fairness" in the type's docs. `weight` is asked when a key starts
    /// waiting for the global limiter.
    ///
    /// # Examples
    ///
    /// Paying tenants get three times the share of free ones when the
    /// global budget is tight:
    ///
    /// ```
    /// use limiters::{KeyedLimiter, Limiter};
    ///
    /// let tenants = KeyedLimiter::<String>::new(Limiter::builder().concurrency(10))?
    ///     .with_global(Limiter::builder().concurrency(20).build()?)
    ///     .with_weights(|tenant: &String| if tenant.starts_with("paid-") { 3 } else { 1 });
    /// # drop(tenants);
    /// # Ok::<(), limiters::BuildError>(())
    /// ```
    pub fn with_weights(mut self, weight: impl Fn(&K) -> u32 + Send + Sync + 'static) -> Self {
        self.weights = Some(Arc::new(weight));
        self
    }

    /// Stores at most about `max` keys; see "Memory" in the type's docs for
    /// what happens when that many are busy.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{KeyedLimiter, Limiter};
    ///
    /// let keyed = KeyedLimiter::<u64>::new(Limiter::builder().concurrency(1))
    ///     .unwrap()
    ///     .with_max_keys(10_000);
    /// # drop(keyed);
    /// ```
    pub fn with_max_keys(mut self, max: usize) -> Self {
        self.max_keys = Some(max);
        self
    }

    /// A fresh limiter for a key, counting time from the global limiter's
    /// base so the two convert instants for free.
    fn build_key(&self) -> Limiter<C> {
        let limiter = self
            .template
            .clone()
            .build()
            .expect("the template was validated in KeyedLimiter::new");
        match &self.global {
            Some(global) => limiter.sharing_base_with(global),
            None => limiter,
        }
    }

    /// The key's limiter, created if needed (or the overflow limiter).
    fn limiter_for(&self, key: &K) -> Limiter<C> {
        self.keys
            .with_entry(
                key,
                self.max_keys,
                Limiter::is_idle,
                || self.build_key(),
                |limiter| limiter.clone(),
            )
            .unwrap_or_else(|| self.overflow.clone())
    }

    /// Runs `fut` once `key`'s limiter and then the global limiter (if any)
    /// admit it; gives both back as soon as it completes.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`Limiter::run`].
    ///
    /// # Errors
    ///
    /// [`AcquireError::Closed`] if the global limiter is closed (or the
    /// key's limiter, with [`close_key`](Self::close_key)).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{KeyedLimiter, Limiter};
    ///
    /// # futures_lite::future::block_on(async {
    /// let per_user = KeyedLimiter::new(Limiter::builder().concurrency(1))?;
    /// assert_eq!(per_user.run(&"alice", async { 1 }).await?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn run<F: Future>(&self, key: &K, fut: F) -> KeyedRun<C, F> {
        let limiter = self.limiter_for(key);
        let (key_acquire, turn_wait, global_acquire) = match &self.global {
            Some(global) => {
                let weight = self.weights.as_ref().map_or(1, |weight| weight(key));
                (
                    limiter.acquire_slots(),
                    Some(self.fair.turn(limiter.id(), weight)),
                    Some(global.acquire_with(&limiter)),
                )
            }
            None => (limiter.acquire(), None, None),
        };
        KeyedRun {
            future: fut,
            key_acquire: Some(key_acquire),
            turn_wait,
            global_acquire,
            key_permit: None,
            global_permit: None,
            turn: None,
            admitted: false,
        }
    }

    /// Pauses `key`'s limiter for `d` (a `Retry-After` from one host); other
    /// keys go on.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use limiters::{KeyedLimiter, Limiter, ManualClock};
    ///
    /// let per_host = KeyedLimiter::new(Limiter::builder().concurrency(2).clock(ManualClock::new()))?;
    /// per_host.pause_for(&"slow.example", Duration::from_secs(30));
    /// assert_eq!(per_host.len(), 1); // kept while paused
    /// # Ok::<(), limiters::BuildError>(())
    /// ```
    pub fn pause_for(&self, key: &K, d: Duration) {
        self.limiter_for(key).pause_for(d);
    }

    /// Closes `key`'s limiter: its queued and later requests fail with
    /// [`AcquireError::Closed`] until the key is evicted (once idle).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{AcquireError, KeyedLimiter, Limiter};
    ///
    /// # futures_lite::future::block_on(async {
    /// let per_host = KeyedLimiter::new(Limiter::builder().concurrency(2))?;
    /// per_host.close_key(&"banned.example");
    /// assert_eq!(per_host.run(&"banned.example", async {}).await, Err(AcquireError::Closed));
    /// # Ok::<(), limiters::BuildError>(())
    /// # }).unwrap();
    /// ```
    pub fn close_key(&self, key: &K) {
        self.limiter_for(key).close();
    }

    /// Keys stored now: busy ones, plus idle ones not yet evicted.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{KeyedLimiter, Limiter};
    ///
    /// # futures_lite::future::block_on(async {
    /// let keyed = KeyedLimiter::new(Limiter::builder().concurrency(1))?;
    /// keyed.run(&1, async {}).await?;
    /// assert_eq!(keyed.len(), 1); // idle, evicted at the next sweep
    /// keyed.evict_idle();
    /// assert_eq!(keyed.len(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is stored.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{KeyedLimiter, Limiter};
    ///
    /// assert!(KeyedLimiter::<u8>::new(Limiter::builder().concurrency(1)).unwrap().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every idle key now (this also happens on its own as keys are
    /// added).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{KeyedLimiter, Limiter};
    ///
    /// let keyed = KeyedLimiter::<u8>::new(Limiter::builder().concurrency(1)).unwrap();
    /// keyed.evict_idle();
    /// ```
    pub fn evict_idle(&self) {
        self.keys.sweep(Limiter::is_idle);
    }

    /// The global limiter, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{KeyedLimiter, Limiter};
    ///
    /// assert!(KeyedLimiter::<u8>::new(Limiter::builder().concurrency(1)).unwrap().global().is_none());
    /// ```
    pub fn global(&self) -> Option<&Limiter<C>> {
        self.global.as_ref()
    }

    /// A snapshot for dashboards: keys stored, and the requests waiting and
    /// the totals over the keys' limiters stored now (an evicted key's
    /// figures leave with it). The global limiter has its own
    /// [`stats`](Limiter::stats). Takes each shard's lock in turn.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{KeyedLimiter, Limiter, ManualClock};
    ///
    /// # futures_lite::future::block_on(async {
    /// let per_host = KeyedLimiter::new(Limiter::builder().concurrency(2).clock(ManualClock::new()))?;
    /// per_host.run(&"a.example", async {}).await?;
    /// per_host.run(&"b.example", async {}).await?;
    /// let stats = per_host.stats();
    /// assert_eq!(stats.totals.admitted, stats.keys as u64); // one each, if not yet evicted
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn stats(&self) -> KeyedStats {
        let (waiters, totals) = self.keys.fold((0, Totals::default()), |(w, t), limiter| {
            let s = limiter.stats();
            (w + s.waiters, t.add(s.totals))
        });
        KeyedStats {
            keys: self.keys.len(),
            waiters,
            totals,
        }
    }
}

impl<K, C: Clock> fmt::Debug for KeyedLimiter<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedLimiter")
            .field("template", &self.template)
            .field("global", &self.global)
            .field("fair", &self.fair)
            .field("max_keys", &self.max_keys)
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// The future returned by [`KeyedLimiter::run`].
    ///
    /// # Cancel safety
    ///
    /// Dropping it gives back everything it holds in the key's and the
    /// global limiter.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{futures::KeyedRun, KeyedLimiter, Limiter, SystemClock};
    ///
    /// # futures_lite::future::block_on(async {
    /// let keyed = KeyedLimiter::new(Limiter::builder().concurrency(1)).unwrap();
    /// let fut: KeyedRun<SystemClock, _> = keyed.run(&"k", async { 3 });
    /// assert_eq!(fut.await, Ok(3));
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct KeyedRun<C: Clock, F> {
        // Declared first: dropped before the permits are released.
        #[pin]
        future: F,
        // The key's stages (only its slots, with a global limiter).
        #[pin]
        key_acquire: Option<LimiterAcquire<C>>,
        // Waits for the turn to queue for the global limiter.
        turn_wait: Option<TurnWait>,
        // The global stages, taking the key's rate at the same instant.
        #[pin]
        global_acquire: Option<LimiterAcquire<C>>,
        key_permit: Option<LimiterPermit<C>>,
        global_permit: Option<LimiterPermit<C>>,
        // Given back after `global_acquire` is dropped.
        turn: Option<Turn>,
        admitted: bool,
    }
}

impl<C: Clock, F: Future> Future for KeyedRun<C, F> {
    type Output = Result<F::Output, AcquireError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if !*this.admitted {
            if let Some(acquire) = this.key_acquire.as_mut().as_pin_mut() {
                let permit = ready!(acquire.poll(cx));
                this.key_acquire.set(None);
                *this.key_permit = Some(permit?);
            }
            if let Some(wait) = this.turn_wait.as_mut() {
                *this.turn = Some(ready!(Pin::new(wait).poll(cx)));
                *this.turn_wait = None;
            }
            if let Some(mut acquire) = this.global_acquire.as_mut().as_pin_mut() {
                let Poll::Ready(permit) = acquire.as_mut().poll(cx) else {
                    if acquire.waits_for_co() {
                        // Waiting for its own key's rate, it no longer
                        // competes with other keys: let the next one queue.
                        *this.turn = None;
                    }
                    return Poll::Pending;
                };
                this.global_acquire.set(None);
                *this.turn = None;
                match permit {
                    Ok(global) => {
                        if let Some(key) = this.key_permit.as_mut() {
                            key.admitted_with(&global);
                        }
                        *this.global_permit = Some(global);
                    }
                    Err(e) => {
                        *this.key_permit = None;
                        return Poll::Ready(Err(e));
                    }
                }
            }
            *this.admitted = true;
        }
        let out = ready!(this.future.poll(cx));
        // Release as soon as the work is done, not when `KeyedRun` is
        // dropped.
        *this.key_permit = None;
        *this.global_permit = None;
        Poll::Ready(Ok(out))
    }
}

impl<C: Clock, F> fmt::Debug for KeyedRun<C, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRun")
            .field("admitted", &self.admitted)
            .finish_non_exhaustive()
    }
}
