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
use crate::error::{AcquireError, BuildError, KeyedTryError};
use crate::limiter::{Limiter, LimiterAcquire, LimiterBuilder, LimiterPermit, Outcome, TryRun};
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
            keys: Shards::new(0),
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
                |limiter, _| limiter.clone(),
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
        KeyedRun {
            future: fut,
            acquire: self.acquire(key),
            permit: None,
            admitted: false,
        }
    }

    /// Waits until `key`'s limiter and then the global limiter (if any)
    /// admit one request (of each one's configured weight), in the order
    /// of stages in the type's docs: the form of [`run`](Self::run) that
    /// hands over the permit.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: see [`KeyedAcquire`].
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{KeyedLimiter, Limiter};
    ///
    /// # futures_lite::future::block_on(async {
    /// let per_host = KeyedLimiter::new(Limiter::builder().concurrency(2))?;
    /// let permit = per_host.acquire(&"a.example").await?;
    /// assert_eq!(permit.key().weight(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn acquire(&self, key: &K) -> KeyedAcquire<C> {
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
        KeyedAcquire {
            key_acquire: Some(key_acquire),
            turn_wait,
            global_acquire,
            key_permit: None,
            turn: None,
            done: false,
        }
    }

    /// Blocks the current thread until `key`'s limiter and the global one
    /// admit a request: the blocking form of [`acquire`](Self::acquire).
    ///
    /// For plain threads; never call it from async code (it would block the
    /// executor). Blocking waiters share the FIFO queues of async ones.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{KeyedLimiter, Limiter};
    ///
    /// let per_host = KeyedLimiter::new(Limiter::builder().concurrency(1))?
    ///     .with_global(Limiter::builder().concurrency(4).build()?);
    /// std::thread::scope(|s| {
    ///     for _ in 0..3 {
    ///         s.spawn(|| {
    ///             let _permit = per_host.acquire_blocking(&"a.example").unwrap();
    ///             // one thread at a time for this host
    ///         });
    ///     }
    /// });
    /// # Ok::<(), limiters::BuildError>(())
    /// ```
    #[cfg(not(loom))]
    pub fn acquire_blocking(&self, key: &K) -> Result<KeyedPermit<C>, AcquireError> {
        crate::block::block_on(self.acquire(key))
    }

    /// Admits one request for `key` now, in the key's limiter and the
    /// global one, or refuses at once with nothing taken from either: the
    /// load-shedding form of [`acquire`](Self::acquire) (a per-client-IP
    /// server answering `429`). As [`Limiter::try_acquire`], across both
    /// limiters: it never overtakes a request queued for the key's stages,
    /// the global ones or the turn to queue for them, and it takes the
    /// key's and the global rate cells at one instant or neither (a global
    /// refusal spends none of the key's).
    ///
    /// # Errors
    ///
    /// [`KeyedTryError::Key`] or [`KeyedTryError::Global`] with the
    /// [`LimiterTryError`](crate::LimiterTryError) of the limiter that
    /// refused; `Global(Queued)` while other keys wait for the global
    /// limiter.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{KeyedLimiter, KeyedTryError, Limiter, LimiterTryError, ManualClock, Quota};
    ///
    /// let clock = ManualClock::new();
    /// let per_ip = KeyedLimiter::new(Limiter::builder().rate(Quota::per_second(1)).clock(clock.clone()))?
    ///     .with_global(Limiter::builder().concurrency(2).clock(clock).build()?);
    /// let _a = per_ip.try_acquire(&"10.0.0.1")?;
    /// assert!(matches!(per_ip.try_acquire(&"10.0.0.1"), Err(KeyedTryError::Key(LimiterTryError::Rate(_)))));
    /// let _b = per_ip.try_acquire(&"10.0.0.2")?;
    /// assert_eq!(per_ip.try_acquire(&"10.0.0.3").unwrap_err(), KeyedTryError::Global(LimiterTryError::NoSlot));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_acquire(&self, key: &K) -> Result<KeyedPermit<C>, KeyedTryError<C::Instant>> {
        let limiter = self.limiter_for(key);
        match &self.global {
            None => {
                let key = limiter.try_acquire().map_err(KeyedTryError::Key)?;
                Ok(KeyedPermit { key, global: None })
            }
            Some(global) => {
                let (key, global) = global.try_acquire_with(&limiter, || self.fair.try_turn())?;
                Ok(KeyedPermit {
                    key,
                    global: Some(global),
                })
            }
        }
    }

    /// Runs `fut` if `key`'s limiter and the global one admit it now, or
    /// refuses at once (`fut` is then dropped unpolled): the load-shedding
    /// form of [`run`](Self::run). The decision is made in this call; the
    /// returned future holds the permit until `fut` completes.
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire).
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future drops `fut`, then the permit.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{KeyedLimiter, Limiter};
    ///
    /// # futures_lite::future::block_on(async {
    /// let per_user = KeyedLimiter::new(Limiter::builder().concurrency(1))?;
    /// let work = per_user.try_run(&"alice", async { 1 })?;
    /// assert!(per_user.try_run(&"alice", async { 2 }).is_err()); // alice's slot is taken
    /// assert_eq!(work.await, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn try_run<F: Future>(
        &self,
        key: &K,
        fut: F,
    ) -> Result<KeyedTryRun<C, F>, KeyedTryError<C::Instant>> {
        let mut permit = self.try_acquire(key)?;
        // Dropped before the work completes: says nothing about the server.
        permit.set_outcome(Outcome::Ignore);
        Ok(TryRun::new(permit, fut))
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

crate::clock::with_default! {
    /// What [`KeyedLimiter::acquire`] and [`KeyedLimiter::try_acquire`]
    /// return: the right to start one request for a key, in the key's
    /// limiter and in the global one (if any). Dropping it gives both back,
    /// the key's first.
    ///
    /// It owns handles to both limiters, so it can move into a spawned task
    /// or another thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{KeyedLimiter, Limiter};
    ///
    /// let per_host = KeyedLimiter::new(Limiter::builder().concurrency(2))?
    ///     .with_global(Limiter::builder().concurrency(8).build()?);
    /// let permit = per_host.try_acquire(&"a.example")?;
    /// assert_eq!(permit.global().unwrap().weight(), 1);
    /// assert_eq!(per_host.global().unwrap().available_slots(), Some(7));
    /// drop(permit);
    /// assert_eq!(per_host.global().unwrap().available_slots(), Some(8));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use = "the slots are released as soon as the KeyedPermit is dropped"]
    pub struct KeyedPermit<C: Clock = SystemClock> {
        // Dropped first: the key's slot goes back before the global one.
        key: LimiterPermit<C>,
        global: Option<LimiterPermit<C>>,
    }
}

impl<C: Clock> KeyedPermit<C> {
    /// The key's limiter's permit.
    ///
    /// # Examples
    ///
    /// See [`KeyedPermit`].
    pub fn key(&self) -> &LimiterPermit<C> {
        &self.key
    }

    /// The global limiter's permit, if the keyed limiter has one.
    ///
    /// # Examples
    ///
    /// See [`KeyedPermit`].
    pub fn global(&self) -> Option<&LimiterPermit<C>> {
        self.global.as_ref()
    }

    /// Sets what the request reports to an adaptive limit, in the key's
    /// limiter and the global one (see [`LimiterPermit::set_outcome`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{Aimd, KeyedLimiter, Limiter, Outcome};
    ///
    /// let per_host = KeyedLimiter::new(Limiter::builder().adaptive(Aimd::new().initial(10)))?;
    /// let mut permit = per_host.try_acquire(&"a.example")?;
    /// permit.set_outcome(Outcome::Overload); // the host answered 503
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_outcome(&mut self, outcome: Outcome) {
        self.key.set_outcome(outcome);
        if let Some(global) = &mut self.global {
            global.set_outcome(outcome);
        }
    }
}

impl<C: Clock> fmt::Debug for KeyedPermit<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedPermit")
            .field("key", &self.key)
            .field("global", &self.global)
            .finish()
    }
}

pin_project! {
    /// The future returned by [`KeyedLimiter::acquire`]: passes the key's
    /// stages and the global ones in the order the type's docs give, and
    /// resolves to a [`KeyedPermit`].
    ///
    /// # Cancel safety
    ///
    /// Dropping it at any point gives back everything it holds in the key's
    /// and the global limiter, and its turn to queue for the global one.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{futures::KeyedAcquire, KeyedLimiter, Limiter, SystemClock};
    ///
    /// # futures_lite::future::block_on(async {
    /// let keyed = KeyedLimiter::new(Limiter::builder().concurrency(1)).unwrap();
    /// let fut: KeyedAcquire<SystemClock> = keyed.acquire(&"k");
    /// assert!(fut.await.is_ok());
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct KeyedAcquire<C: Clock> {
        // The key's stages (only its slots, with a global limiter).
        #[pin]
        key_acquire: Option<LimiterAcquire<C>>,
        // Waits for the turn to queue for the global limiter.
        turn_wait: Option<TurnWait>,
        // The global stages, taking the key's rate at the same instant.
        #[pin]
        global_acquire: Option<LimiterAcquire<C>>,
        key_permit: Option<LimiterPermit<C>>,
        // Given back after `global_acquire` is dropped.
        turn: Option<Turn>,
        done: bool,
    }
}

impl<C: Clock> Future for KeyedAcquire<C> {
    type Output = Result<KeyedPermit<C>, AcquireError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        assert!(!*this.done, "KeyedAcquire polled after it completed");
        if let Some(acquire) = this.key_acquire.as_mut().as_pin_mut() {
            let permit = ready!(acquire.poll(cx));
            this.key_acquire.set(None);
            match permit {
                Ok(permit) => *this.key_permit = Some(permit),
                Err(e) => {
                    *this.done = true;
                    return Poll::Ready(Err(e));
                }
            }
        }
        if let Some(wait) = this.turn_wait.as_mut() {
            *this.turn = Some(ready!(Pin::new(wait).poll(cx)));
            *this.turn_wait = None;
        }
        let mut global = None;
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
                Ok(permit) => global = Some(permit),
                Err(e) => {
                    *this.key_permit = None;
                    *this.done = true;
                    return Poll::Ready(Err(e));
                }
            }
        }
        *this.done = true;
        let mut key = this.key_permit.take().expect("the key's stages passed");
        if let Some(global) = &global {
            key.admitted_with(global);
        }
        Poll::Ready(Ok(KeyedPermit { key, global }))
    }
}

impl<C: Clock> fmt::Debug for KeyedAcquire<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedAcquire")
            .field("done", &self.done)
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
        #[pin]
        acquire: KeyedAcquire<C>,
        permit: Option<KeyedPermit<C>>,
        admitted: bool,
    }
}

impl<C: Clock, F: Future> Future for KeyedRun<C, F> {
    type Output = Result<F::Output, AcquireError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if !*this.admitted {
            *this.permit = Some(ready!(this.acquire.poll(cx))?);
            *this.admitted = true;
        }
        let out = ready!(this.future.poll(cx));
        // Release as soon as the work is done, not when `KeyedRun` is
        // dropped.
        *this.permit = None;
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

/// The future returned by [`KeyedLimiter::try_run`]: runs the wrapped
/// future holding its [`KeyedPermit`] (see [`TryRun`]).
pub type KeyedTryRun<C, F> = TryRun<KeyedPermit<C>, F>;

impl<C: Clock, F: Future> Future for TryRun<KeyedPermit<C>, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.poll_run(cx, |permit| permit.set_outcome(Outcome::Success))
    }
}
