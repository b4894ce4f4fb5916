//! The FIFO-fair, weighted, closable [`Semaphore`] and its permits.

mod futures;
pub(crate) mod raw;

use alloc::sync::Arc;
use core::fmt;
use core::future::Future;

pub use self::futures::{Acquire, AcquireOwned, Run};
pub(crate) use self::raw::RawSemaphore;
use crate::stats::SemaphoreStats;
// `AcquireError` is named in code only by the blocking acquires.
#[cfg_attr(not(all(feature = "std", not(loom))), allow(unused_imports))]
use crate::error::{AcquireError, TryAcquireError};

/// A counting semaphore that serves waiters strictly in FIFO order.
///
/// A semaphore holds a number of permits. [`acquire`](Self::acquire) waits
/// for one; the [`Permit`] it returns gives it back when dropped. Use it to
/// cap how many calls are in flight at once, e.g. "at most 10 requests to this
/// API at a time". (It does not cap calls *per second*: for that, see
/// `RateLimiter`, or combine both with `Limiter`.)
///
/// # Fairness
///
/// Waiters are served strictly in the order in which they were first polled,
/// and nobody barges:
///
/// * [`try_acquire`](Self::try_acquire) fails while anyone is queued, even if
///   permits would be available for it;
/// * a released permit is handed directly to the waiter at the head of the
///   queue, so a newcomer can never take it between the release and the
///   moment the woken waiter runs;
/// * a large [`acquire_many(n)`](Self::acquire_many) at the head of the queue
///   collects permits until it has `n`, and smaller requests behind it wait
///   (head-of-line blocking), so large requests never starve.
///
/// A release wakes exactly the waiters whose requests it completes: `k`
/// releases to `k` single-permit waiters wake all `k` of them.
///
/// # Cancel safety
///
/// Every acquire future can be dropped at any point without losing a permit
/// or a wake-up: permits it had collected while queued, or that were granted
/// to it but not yet turned into a [`Permit`], go to the next waiter (or back
/// to the semaphore). This makes `acquire` safe in `select!` and under
/// timeouts.
///
/// # Memory ordering
///
/// Acquiring a permit synchronizes with the release that made it available:
/// what a task wrote before dropping its permit is visible to the next task
/// that acquires it, as with a lock.
///
/// # Examples
///
/// At most 3 of 10 jobs run at once:
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use limiters::Semaphore;
///
/// # futures_lite::future::block_on(async {
/// let sem = Semaphore::new(3);
/// let running = AtomicUsize::new(0);
/// let jobs = (0..10).map(|i| {
///     let running = &running;
///     sem.run(async move {
///         let now = running.fetch_add(1, Ordering::SeqCst) + 1;
///         assert!(now <= 3);
///         futures_lite::future::yield_now().await;
///         running.fetch_sub(1, Ordering::SeqCst);
///         i * 2
///     })
/// });
/// let results = futures::future::join_all(jobs).await;
/// let total: i32 = results.into_iter().map(Result::unwrap).sum();
/// assert_eq!(total, 90);
/// # });
/// ```
pub struct Semaphore {
    pub(crate) raw: RawSemaphore,
}

// The state word, the locked wait list, `total`, `capacity` and the stats
// counts (56 B of them, 24 for the owner thread's lock-free slots);
// nothing only a `BoundedSemaphore` needs (it was 120 B with a detached
// count and a `bounded` flag). 64-bit std build.
#[cfg(all(not(loom), feature = "std", target_pointer_width = "64"))]
const _: () = assert!(core::mem::size_of::<Semaphore>() <= 128);

impl Semaphore {
    /// The most permits a semaphore can hold: `usize::MAX >> 2`.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Semaphore;
    ///
    /// let sem = Semaphore::new(Semaphore::MAX_PERMITS);
    /// assert_eq!(sem.available_permits(), usize::MAX >> 2);
    /// ```
    pub const MAX_PERMITS: usize = raw::MAX_PERMITS;

    crate::sync::const_fn! {
        /// Creates a semaphore with `permits` permits.
        ///
        /// This is a `const fn`, so a semaphore can live in a `static`.
        ///
        /// # Panics
        ///
        /// If `permits` exceeds [`Semaphore::MAX_PERMITS`].
        ///
        /// # Examples
        ///
        /// ```
        /// use limiters::Semaphore;
        ///
        /// // At most 8 concurrent calls to the API, process-wide.
        /// static API: Semaphore = Semaphore::new(8);
        /// assert_eq!(API.available_permits(), 8);
        /// ```
        #[track_caller]
        pub fn new(permits: usize) -> Self {
            assert!(
                permits <= Self::MAX_PERMITS,
                "Semaphore::new: permits must be at most Semaphore::MAX_PERMITS (usize::MAX >> 2)"
            );
            Self {
                raw: RawSemaphore::new(permits, Self::MAX_PERMITS),
            }
        }
    }

    crate::sync::const_fn! {
        pub(crate) fn new_bounded(capacity: usize) -> Self {
            Self {
                raw: RawSemaphore::new(capacity, capacity),
            }
        }
    }

    /// Waits for one permit.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future gives back anything it had been
    /// granted, and the next waiter proceeds. Its place in the queue is lost.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Closed`] if the semaphore is closed before the permit
    /// is granted.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Semaphore;
    ///
    /// # futures_lite::future::block_on(async {
    /// let sem = Semaphore::new(1);
    /// let permit = sem.acquire().await?;
    /// assert_eq!(sem.available_permits(), 0);
    /// drop(permit);
    /// assert_eq!(sem.available_permits(), 1);
    /// # Ok::<(), limiters::AcquireError>(())
    /// # }).unwrap();
    /// ```
    #[inline]
    pub fn acquire(&self) -> Acquire<'_> {
        Acquire::new(self, 1)
    }

    /// Waits for `n` permits at once (a weighted acquire).
    ///
    /// The request waits in the queue as a whole: while it is at the head it
    /// collects released permits until it has `n`, and no later request
    /// overtakes it. `acquire_many(0)` completes at once.
    ///
    /// A plain semaphore can gain permits ([`add_permits`](Self::add_permits)),
    /// so asking for more than it holds in all is not an error: the request
    /// waits until enough permits are added (and blocks the queue behind it
    /// meanwhile). Use a [`BoundedSemaphore`](crate::BoundedSemaphore) to
    /// have such a request refused at once with
    /// [`AcquireError::ExceedsCapacity`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: permits collected while queued go to the next waiter.
    ///
    /// # Errors
    ///
    /// * [`AcquireError::ExceedsCapacity`] at once if `n` exceeds
    ///   [`Semaphore::MAX_PERMITS`] (it could never be served);
    /// * [`AcquireError::Closed`] if the semaphore is closed first.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Semaphore;
    ///
    /// # futures_lite::future::block_on(async {
    /// // A budget of 100 units; a big job takes 40 of them.
    /// let budget = Semaphore::new(100);
    /// let big = budget.acquire_many(40).await.unwrap();
    /// assert_eq!(big.num_permits(), 40);
    /// assert_eq!(budget.available_permits(), 60);
    /// # });
    /// ```
    #[inline]
    pub fn acquire_many(&self, n: usize) -> Acquire<'_> {
        Acquire::new(self, n)
    }

    /// Takes one permit if one is available now and nobody is queued.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::NoPermits`] if no permit is available or others are
    /// waiting (no barging), [`TryAcquireError::Closed`] if closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{Semaphore, TryAcquireError};
    ///
    /// let sem = Semaphore::new(1);
    /// let permit = sem.try_acquire().unwrap();
    /// assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
    /// drop(permit);
    /// assert!(sem.try_acquire().is_ok());
    /// ```
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>, TryAcquireError> {
        self.try_acquire_many(1)
    }

    /// Takes `n` permits if they are available now and nobody is queued.
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire), plus
    /// [`TryAcquireError::ExceedsCapacity`] if `n` exceeds
    /// [`Semaphore::MAX_PERMITS`].
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Semaphore;
    ///
    /// let sem = Semaphore::new(5);
    /// let three = sem.try_acquire_many(3).unwrap();
    /// assert!(sem.try_acquire_many(3).is_err());
    /// assert_eq!(three.num_permits(), 3);
    /// ```
    #[inline]
    pub fn try_acquire_many(&self, n: usize) -> Result<Permit<'_>, TryAcquireError> {
        self.raw.try_acquire(n)?;
        Ok(Permit::new(self, n))
    }

    /// Waits for one permit that owns a handle to the semaphore, so it can be
    /// moved into a spawned task.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`acquire`](Self::acquire).
    ///
    /// # Errors
    ///
    /// [`AcquireError::Closed`] if the semaphore is closed first.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use limiters::Semaphore;
    ///
    /// # futures_lite::future::block_on(async {
    /// let sem = Arc::new(Semaphore::new(2));
    /// let permit = sem.acquire_owned().await.unwrap();
    /// let worker = std::thread::spawn(move || {
    ///     // ... the permit travels with the work ...
    ///     drop(permit);
    /// });
    /// worker.join().unwrap();
    /// assert_eq!(sem.available_permits(), 2);
    /// # });
    /// ```
    #[inline]
    pub fn acquire_owned(self: &Arc<Self>) -> AcquireOwned {
        AcquireOwned::new(Arc::clone(self), 1)
    }

    /// Waits for `n` permits, owning a handle to the semaphore.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`acquire_many`](Self::acquire_many).
    ///
    /// # Errors
    ///
    /// As [`acquire_many`](Self::acquire_many).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use limiters::Semaphore;
    ///
    /// # futures_lite::future::block_on(async {
    /// let sem = Arc::new(Semaphore::new(4));
    /// let permit = sem.acquire_many_owned(3).await.unwrap();
    /// assert_eq!(permit.num_permits(), 3);
    /// # });
    /// ```
    #[inline]
    pub fn acquire_many_owned(self: &Arc<Self>, n: usize) -> AcquireOwned {
        AcquireOwned::new(Arc::clone(self), n)
    }

    /// Takes one owned permit if available now and nobody is queued.
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use limiters::Semaphore;
    ///
    /// let sem = Arc::new(Semaphore::new(1));
    /// let permit = sem.try_acquire_owned().unwrap();
    /// assert!(sem.try_acquire_owned().is_err());
    /// drop(permit);
    /// ```
    #[inline]
    pub fn try_acquire_owned(self: &Arc<Self>) -> Result<OwnedPermit, TryAcquireError> {
        self.try_acquire_many_owned(1)
    }

    /// Takes `n` owned permits if available now and nobody is queued.
    ///
    /// # Errors
    ///
    /// As [`try_acquire_many`](Self::try_acquire_many).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use limiters::Semaphore;
    ///
    /// let sem = Arc::new(Semaphore::new(3));
    /// let two = sem.try_acquire_many_owned(2).unwrap();
    /// assert_eq!(two.num_permits(), 2);
    /// ```
    pub fn try_acquire_many_owned(
        self: &Arc<Self>,
        n: usize,
    ) -> Result<OwnedPermit, TryAcquireError> {
        self.raw.try_acquire(n)?;
        Ok(OwnedPermit::new(Arc::clone(self), n))
    }

    /// Blocks the current thread until a permit is available.
    ///
    /// For plain threads; never call it from async code (it would block the
    /// executor). Blocking waiters share the same FIFO queue as async ones.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Closed`] if the semaphore is closed first.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Semaphore;
    ///
    /// let sem = Semaphore::new(2);
    /// std::thread::scope(|s| {
    ///     for _ in 0..4 {
    ///         s.spawn(|| {
    ///             let _permit = sem.acquire_blocking().unwrap();
    ///             // at most 2 threads are here at once
    ///         });
    ///     }
    /// });
    /// assert_eq!(sem.available_permits(), 2);
    /// ```
    #[cfg(all(feature = "std", not(loom)))]
    pub fn acquire_blocking(&self) -> Result<Permit<'_>, AcquireError> {
        crate::block::block_on(self.acquire())
    }

    /// Blocks the current thread until `n` permits are available.
    ///
    /// # Errors
    ///
    /// As [`acquire_many`](Self::acquire_many).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Semaphore;
    ///
    /// let sem = Semaphore::new(4);
    /// let permit = sem.acquire_many_blocking(3).unwrap();
    /// assert_eq!(sem.available_permits(), 1);
    /// drop(permit);
    /// ```
    #[cfg(all(feature = "std", not(loom)))]
    pub fn acquire_many_blocking(&self, n: usize) -> Result<Permit<'_>, AcquireError> {
        crate::block::block_on(self.acquire_many(n))
    }

    /// Runs `fut` while holding one permit: waits for the permit, then polls
    /// `fut` to completion, then releases the permit.
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future at any point releases the permit (or the
    /// place in the queue) and drops `fut`.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Closed`] if the semaphore is closed before the permit
    /// is granted; `fut` is then never polled.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Semaphore;
    ///
    /// # futures_lite::future::block_on(async {
    /// let sem = Semaphore::new(10);
    /// let body = sem.run(async { "response" }).await?;
    /// assert_eq!(body, "response");
    /// # Ok::<(), limiters::AcquireError>(())
    /// # }).unwrap();
    /// ```
    pub fn run<F: Future>(&self, fut: F) -> Run<'_, F> {
        Run::new(self.acquire(), fut)
    }

    /// Adds `n` permits, handing them to queued waiters first.
    ///
    /// # Panics
    ///
    /// If the semaphore would then have more than
    /// [`Semaphore::MAX_PERMITS`] permits in all (available, held and
    /// collected by waiters). The check comes before any change, so nothing
    /// is added or granted then, and giving held permits back can never
    /// overflow.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Semaphore;
    ///
    /// // Scale a worker pool up at runtime.
    /// let pool = Semaphore::new(4);
    /// pool.add_permits(4);
    /// assert_eq!(pool.available_permits(), 8);
    /// ```
    #[track_caller]
    pub fn add_permits(&self, n: usize) {
        self.raw.add_permits(n);
    }

    /// Removes up to `n` *available* permits and returns how many were
    /// removed. Permits held by others are not affected; to shrink by permits
    /// currently held, acquire them and [`forget`](Permit::forget) them.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Semaphore;
    ///
    /// // Scale a pool down.
    /// let pool = Semaphore::new(8);
    /// let _held = pool.try_acquire_many(6).unwrap();
    /// assert_eq!(pool.forget_permits(4), 2);
    /// assert_eq!(pool.available_permits(), 0);
    /// ```
    pub fn forget_permits(&self, n: usize) -> usize {
        self.raw.forget_permits(n)
    }

    /// Closes the semaphore. Every queued and later acquire fails with
    /// [`AcquireError::Closed`]. Permits already held stay valid and are
    /// returned normally when dropped; permits that queued waiters had
    /// collected become available again.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{AcquireError, Semaphore};
    ///
    /// # futures_lite::future::block_on(async {
    /// let sem = Semaphore::new(1);
    /// let held = sem.acquire().await.unwrap();
    /// sem.close();
    /// assert!(sem.is_closed());
    /// assert_eq!(sem.acquire().await.unwrap_err(), AcquireError::Closed);
    /// drop(held);
    /// assert_eq!(sem.available_permits(), 1);
    /// # });
    /// ```
    pub fn close(&self) {
        self.raw.close();
    }

    /// Whether [`close`](Self::close) was called.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Semaphore;
    ///
    /// let sem = Semaphore::new(1);
    /// assert!(!sem.is_closed());
    /// sem.close();
    /// assert!(sem.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.raw.is_closed()
    }

    /// Permits available right now. While anyone is queued this is 0:
    /// released permits go straight to the queue.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Semaphore;
    ///
    /// let sem = Semaphore::new(3);
    /// let _p = sem.try_acquire().unwrap();
    /// assert_eq!(sem.available_permits(), 2);
    /// ```
    pub fn available_permits(&self) -> usize {
        self.raw.available_permits()
    }

    /// How many acquirers are queued (polled at least once, not yet served).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::pin::pin;
    /// use std::task::{Context, Waker};
    /// use std::future::Future;
    /// use limiters::Semaphore;
    ///
    /// let sem = Semaphore::new(0);
    /// let mut waiting = pin!(sem.acquire());
    /// assert!(waiting.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
    /// assert_eq!(sem.waiters(), 1);
    /// ```
    pub fn waiters(&self) -> usize {
        self.raw.waiters()
    }

    /// A snapshot for dashboards: permits available and in use, waiters,
    /// and the totals admitted, refused (`try_acquire*`) and queued since
    /// creation. Cheap: a few loads and one short lock for the waiter count.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Semaphore;
    ///
    /// let sem = Semaphore::new(1);
    /// let held = sem.try_acquire().unwrap();
    /// assert!(sem.try_acquire().is_err());
    /// let stats = sem.stats();
    /// assert_eq!((stats.available, stats.in_use), (0, 1));
    /// assert_eq!((stats.totals.admitted, stats.totals.denied), (1, 1));
    /// # drop(held);
    /// ```
    pub fn stats(&self) -> SemaphoreStats {
        SemaphoreStats {
            available: self.raw.available_permits(),
            in_use: self.raw.in_use(),
            waiters: self.raw.waiters(),
            closed: self.raw.is_closed(),
            totals: self.raw.counters.snapshot(),
        }
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.raw.fmt(f)
    }
}

impl Default for Semaphore {
    /// A semaphore with no permits (add them with
    /// [`add_permits`](Semaphore::add_permits)).
    fn default() -> Self {
        Self::new(0)
    }
}

/// Permits taken from a [`Semaphore`] or
/// [`BoundedSemaphore`](crate::BoundedSemaphore), given back when dropped.
///
/// # Examples
///
/// ```
/// use limiters::Semaphore;
///
/// let sem = Semaphore::new(4);
/// {
///     let _permit = sem.try_acquire_many(3).unwrap();
///     assert_eq!(sem.available_permits(), 1);
/// } // dropped here
/// assert_eq!(sem.available_permits(), 4);
/// ```
#[must_use = "the permits are released as soon as the Permit is dropped"]
pub struct Permit<'a> {
    sem: &'a Semaphore,
    permits: usize,
}

/// Permits that own a handle (`Arc`) to their semaphore, so they can move
/// into spawned tasks. Given back when dropped.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use limiters::{OwnedPermit, Semaphore};
///
/// let sem = Arc::new(Semaphore::new(1));
/// let permit: OwnedPermit = sem.try_acquire_owned().unwrap();
/// std::thread::spawn(move || drop(permit)).join().unwrap();
/// assert_eq!(sem.available_permits(), 1);
/// ```
#[must_use = "the permits are released as soon as the OwnedPermit is dropped"]
pub struct OwnedPermit {
    sem: Arc<Semaphore>,
    permits: usize,
}

/// The methods both permit types share, written once.
macro_rules! permit_methods {
    ($sem:ident => $same:expr) => {
        /// How many permits this holds.
        ///
        /// # Examples
        ///
        /// ```
        /// use limiters::Semaphore;
        ///
        /// let sem = Semaphore::new(5);
        /// assert_eq!(sem.try_acquire_many(2).unwrap().num_permits(), 2);
        /// ```
        pub fn num_permits(&self) -> usize {
            self.permits
        }

        /// Detaches the permits without giving them back: the semaphore
        /// shrinks by that many for good. On a
        /// [`BoundedSemaphore`](crate::BoundedSemaphore), detached permits can
        /// later be returned with
        /// [`release`](crate::BoundedSemaphore::release).
        ///
        /// # Examples
        ///
        /// ```
        /// use limiters::Semaphore;
        ///
        /// let sem = Semaphore::new(3);
        /// sem.try_acquire().unwrap().forget();
        /// assert_eq!(sem.available_permits(), 2);
        /// ```
        pub fn forget(mut self) {
            self.$sem.raw.detach(self.permits);
            self.permits = 0;
        }

        /// Splits `n` permits off into a new permit. Returns `None` (and
        /// changes nothing) if this holds fewer than `n`.
        ///
        /// # Examples
        ///
        /// ```
        /// use limiters::Semaphore;
        ///
        /// let sem = Semaphore::new(5);
        /// let mut five = sem.try_acquire_many(5).unwrap();
        /// let two = five.split(2).unwrap();
        /// assert_eq!((five.num_permits(), two.num_permits()), (3, 2));
        /// drop(two);
        /// assert_eq!(sem.available_permits(), 2);
        /// assert!(five.split(4).is_none());
        /// ```
        pub fn split(&mut self, n: usize) -> Option<Self> {
            if n > self.permits {
                return None;
            }
            self.permits -= n;
            Some(Self {
                $sem: self.$sem.clone(),
                permits: n,
            })
        }

        /// Moves the permits of `other` into this one.
        ///
        /// # Panics
        ///
        /// If `other` comes from a different semaphore. `other` is then
        /// dropped during the unwind and its permits go back to their own
        /// semaphore: nothing is lost.
        ///
        /// # Examples
        ///
        /// ```
        /// use limiters::Semaphore;
        ///
        /// let sem = Semaphore::new(5);
        /// let mut a = sem.try_acquire_many(2).unwrap();
        /// a.merge(sem.try_acquire_many(3).unwrap());
        /// assert_eq!(a.num_permits(), 5);
        /// ```
        #[track_caller]
        pub fn merge(&mut self, mut other: Self) {
            let same: bool = {
                let $sem = (&self.$sem, &other.$sem);
                $same
            };
            assert!(
                same,
                "merge: the permits come from two different semaphores; merge only permits of one semaphore"
            );
            self.permits += other.permits;
            other.permits = 0;
        }
    };
}

impl<'a> Permit<'a> {
    #[inline]
    pub(crate) fn new(sem: &'a Semaphore, permits: usize) -> Self {
        Self { sem, permits }
    }

    permit_methods!(sem => core::ptr::eq(*sem.0, *sem.1));
}

impl OwnedPermit {
    #[inline]
    pub(crate) fn new(sem: Arc<Semaphore>, permits: usize) -> Self {
        Self { sem, permits }
    }

    permit_methods!(sem => Arc::ptr_eq(sem.0, sem.1));
}

impl Drop for Permit<'_> {
    #[inline]
    fn drop(&mut self) {
        self.sem.raw.release(self.permits);
    }
}

impl Drop for OwnedPermit {
    #[inline]
    fn drop(&mut self) {
        self.sem.raw.release(self.permits);
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("permits", &self.permits)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for OwnedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit")
            .field("permits", &self.permits)
            .finish_non_exhaustive()
    }
}
