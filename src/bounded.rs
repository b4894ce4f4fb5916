//! [`BoundedSemaphore`]: a semaphore whose count can never exceed its
//! capacity.

use alloc::sync::Arc;
use core::fmt;
use core::future::Future;

// `AcquireError` is named in code only by the blocking acquires.
#[cfg_attr(not(all(feature = "std", not(loom))), allow(unused_imports))]
use crate::error::{AcquireError, OverRelease, TryAcquireError};
use crate::semaphore::{Acquire, AcquireOwned, OwnedPermit, Permit, Run, Semaphore};

/// A FIFO-fair semaphore with a fixed capacity that refuses over-release.
///
/// It behaves as a [`Semaphore`] (same fairness, cancel safety and memory
/// ordering), with two differences:
///
/// * A request for more permits than the capacity fails at once with
///   [`AcquireError::ExceedsCapacity`] instead of waiting forever (and,
///   at the head of the queue, blocking every later waiter behind it).
/// * Permits detached with [`Permit::forget`] can be given back with
///   [`release`](Self::release), and releasing more than were detached is an
///   error ([`OverRelease`]), so the count can never exceed the capacity.
///
/// # Examples
///
/// A connection pool of 4 whose checkout and return happen in different
/// places (e.g. a callback API), so the permit cannot simply be dropped:
///
/// ```
/// use limiters::BoundedSemaphore;
///
/// # futures_lite::future::block_on(async {
/// let pool = BoundedSemaphore::new(4);
/// pool.acquire().await?.forget(); // check out
/// assert_eq!(pool.in_use(), 1);
/// pool.release(1)?; // return it
/// assert!(pool.release(1).is_err()); // a bug: returned twice
/// assert_eq!(pool.available_permits(), 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[repr(transparent)]
pub struct BoundedSemaphore {
    // `repr(transparent)`: an `Arc<BoundedSemaphore>` can be viewed as an
    // `Arc<Semaphore>` for owned permits (see `as_semaphore`).
    sem: Semaphore,
}

impl BoundedSemaphore {
    crate::sync::const_fn! {
        /// Creates a bounded semaphore with `capacity` permits, all available.
        ///
        /// # Panics
        ///
        /// If `capacity` exceeds [`Semaphore::MAX_PERMITS`].
        ///
        /// # Examples
        ///
        /// ```
        /// use limiters::BoundedSemaphore;
        ///
        /// static DB: BoundedSemaphore = BoundedSemaphore::new(16);
        /// assert_eq!(DB.capacity(), 16);
        /// ```
        #[track_caller]
        pub fn new(capacity: usize) -> Self {
            assert!(
                capacity <= Semaphore::MAX_PERMITS,
                "BoundedSemaphore::new: capacity must be at most Semaphore::MAX_PERMITS (usize::MAX >> 2)"
            );
            Self {
                sem: Semaphore::new_bounded(capacity),
            }
        }
    }

    /// The fixed number of permits.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::BoundedSemaphore;
    ///
    /// assert_eq!(BoundedSemaphore::new(3).capacity(), 3);
    /// ```
    pub fn capacity(&self) -> usize {
        self.sem.raw.capacity()
    }

    /// Permits available right now (0 while anyone is queued).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::BoundedSemaphore;
    ///
    /// let bs = BoundedSemaphore::new(3);
    /// let _p = bs.try_acquire().unwrap();
    /// assert_eq!(bs.available_permits(), 2);
    /// ```
    pub fn available_permits(&self) -> usize {
        self.sem.available_permits()
    }

    /// Permits not available: held by permits, detached with
    /// [`Permit::forget`], or collected by queued waiters.
    /// Always `capacity() - available_permits()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::BoundedSemaphore;
    ///
    /// let bs = BoundedSemaphore::new(3);
    /// let _p = bs.try_acquire_many(2).unwrap();
    /// assert_eq!(bs.in_use(), 2);
    /// ```
    pub fn in_use(&self) -> usize {
        self.capacity() - self.available_permits()
    }

    /// Gives back `n` permits that were detached with [`Permit::forget`] or
    /// [`OwnedPermit::forget`]. Queued waiters are served first.
    ///
    /// # Errors
    ///
    /// [`OverRelease`] if fewer than `n` permits are detached: releasing them
    /// would push the count above the capacity. Nothing is released then.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::BoundedSemaphore;
    ///
    /// let bs = BoundedSemaphore::new(2);
    /// bs.try_acquire_many(2).unwrap().forget();
    /// assert!(bs.release(2).is_ok());
    /// let err = bs.release(1).unwrap_err();
    /// assert_eq!(err.to_string(),
    ///     "released 1 permit but Permit::forget detached only 0: \
    ///      releasing more would exceed the capacity");
    /// ```
    pub fn release(&self, n: usize) -> Result<(), OverRelease> {
        self.sem.raw.reattach(n).map_err(|detached| OverRelease {
            released: n,
            detached,
        })?;
        self.sem.raw.release(n);
        Ok(())
    }

    /// Waits for one permit. See [`Semaphore::acquire`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: nothing is lost when the future is dropped.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Closed`] if closed first.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::BoundedSemaphore;
    ///
    /// # futures_lite::future::block_on(async {
    /// let bs = BoundedSemaphore::new(1);
    /// let permit = bs.acquire().await.unwrap();
    /// assert_eq!(bs.in_use(), 1);
    /// # drop(permit);
    /// # });
    /// ```
    #[inline]
    pub fn acquire(&self) -> Acquire<'_> {
        self.sem.acquire()
    }

    /// Waits for `n` permits. See [`Semaphore::acquire_many`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: nothing is lost when the future is dropped.
    ///
    /// # Errors
    ///
    /// [`AcquireError::ExceedsCapacity`] at once if `n > capacity()`;
    /// [`AcquireError::Closed`] if closed first.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{AcquireError, BoundedSemaphore};
    ///
    /// # futures_lite::future::block_on(async {
    /// let bs = BoundedSemaphore::new(10);
    /// assert_eq!(
    ///     bs.acquire_many(12).await.unwrap_err(),
    ///     AcquireError::ExceedsCapacity { requested: 12, capacity: 10 }
    /// );
    /// # });
    /// ```
    #[inline]
    pub fn acquire_many(&self, n: usize) -> Acquire<'_> {
        self.sem.acquire_many(n)
    }

    /// Takes one permit now if available and nobody is queued.
    ///
    /// # Errors
    ///
    /// As [`Semaphore::try_acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::BoundedSemaphore;
    ///
    /// let bs = BoundedSemaphore::new(1);
    /// let _p = bs.try_acquire().unwrap();
    /// assert!(bs.try_acquire().is_err());
    /// ```
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>, TryAcquireError> {
        self.sem.try_acquire()
    }

    /// Takes `n` permits now if available and nobody is queued.
    ///
    /// # Errors
    ///
    /// As [`Semaphore::try_acquire_many`]; `ExceedsCapacity` if
    /// `n > capacity()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{BoundedSemaphore, TryAcquireError};
    ///
    /// let bs = BoundedSemaphore::new(2);
    /// assert!(matches!(bs.try_acquire_many(3), Err(TryAcquireError::ExceedsCapacity { .. })));
    /// ```
    #[inline]
    pub fn try_acquire_many(&self, n: usize) -> Result<Permit<'_>, TryAcquireError> {
        self.sem.try_acquire_many(n)
    }

    /// Waits for one owned permit. See [`Semaphore::acquire_owned`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: nothing is lost when the future is dropped.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Closed`] if closed first.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use limiters::BoundedSemaphore;
    ///
    /// # futures_lite::future::block_on(async {
    /// let bs = Arc::new(BoundedSemaphore::new(1));
    /// let permit = bs.acquire_owned().await.unwrap();
    /// std::thread::spawn(move || drop(permit)).join().unwrap();
    /// assert_eq!(bs.available_permits(), 1);
    /// # });
    /// ```
    pub fn acquire_owned(self: &Arc<Self>) -> AcquireOwned {
        as_semaphore(self).acquire_owned()
    }

    /// Waits for `n` owned permits. See [`Semaphore::acquire_many_owned`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: nothing is lost when the future is dropped.
    ///
    /// # Errors
    ///
    /// As [`acquire_many`](Self::acquire_many).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use limiters::BoundedSemaphore;
    ///
    /// # futures_lite::future::block_on(async {
    /// let bs = Arc::new(BoundedSemaphore::new(3));
    /// assert_eq!(bs.acquire_many_owned(2).await.unwrap().num_permits(), 2);
    /// # });
    /// ```
    pub fn acquire_many_owned(self: &Arc<Self>, n: usize) -> AcquireOwned {
        as_semaphore(self).acquire_many_owned(n)
    }

    /// Takes one owned permit now if available and nobody is queued.
    ///
    /// # Errors
    ///
    /// As [`Semaphore::try_acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use limiters::BoundedSemaphore;
    ///
    /// let bs = Arc::new(BoundedSemaphore::new(1));
    /// assert!(bs.try_acquire_owned().is_ok());
    /// ```
    pub fn try_acquire_owned(self: &Arc<Self>) -> Result<OwnedPermit, TryAcquireError> {
        as_semaphore(self).try_acquire_owned()
    }

    /// Takes `n` owned permits now if available and nobody is queued.
    ///
    /// # Errors
    ///
    /// As [`try_acquire_many`](Self::try_acquire_many).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use limiters::BoundedSemaphore;
    ///
    /// let bs = Arc::new(BoundedSemaphore::new(4));
    /// assert_eq!(bs.try_acquire_many_owned(4).unwrap().num_permits(), 4);
    /// ```
    pub fn try_acquire_many_owned(
        self: &Arc<Self>,
        n: usize,
    ) -> Result<OwnedPermit, TryAcquireError> {
        as_semaphore(self).try_acquire_many_owned(n)
    }

    /// Blocks the current thread until a permit is available. See
    /// [`Semaphore::acquire_blocking`].
    ///
    /// # Errors
    ///
    /// [`AcquireError::Closed`] if closed first.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::BoundedSemaphore;
    ///
    /// let bs = BoundedSemaphore::new(1);
    /// let permit = bs.acquire_blocking().unwrap();
    /// # drop(permit);
    /// ```
    #[cfg(all(feature = "std", not(loom)))]
    pub fn acquire_blocking(&self) -> Result<Permit<'_>, AcquireError> {
        self.sem.acquire_blocking()
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
    /// use limiters::BoundedSemaphore;
    ///
    /// let bs = BoundedSemaphore::new(2);
    /// assert!(bs.acquire_many_blocking(3).is_err()); // more than capacity
    /// ```
    #[cfg(all(feature = "std", not(loom)))]
    pub fn acquire_many_blocking(&self, n: usize) -> Result<Permit<'_>, AcquireError> {
        self.sem.acquire_many_blocking(n)
    }

    /// Runs `fut` while holding one permit. See [`Semaphore::run`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future releases the permit or the place in the queue.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Closed`] if closed before the permit is granted.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::BoundedSemaphore;
    ///
    /// # futures_lite::future::block_on(async {
    /// let bs = BoundedSemaphore::new(2);
    /// assert_eq!(bs.run(async { 1 + 1 }).await, Ok(2));
    /// # });
    /// ```
    pub fn run<F: Future>(&self, fut: F) -> Run<'_, F> {
        self.sem.run(fut)
    }

    /// Closes the semaphore. See [`Semaphore::close`].
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::BoundedSemaphore;
    ///
    /// let bs = BoundedSemaphore::new(1);
    /// bs.close();
    /// assert!(bs.try_acquire().is_err());
    /// ```
    pub fn close(&self) {
        self.sem.close();
    }

    /// Whether [`close`](Self::close) was called.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::BoundedSemaphore;
    ///
    /// let bs = BoundedSemaphore::new(1);
    /// assert!(!bs.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.sem.is_closed()
    }

    /// How many acquirers are queued.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::BoundedSemaphore;
    ///
    /// assert_eq!(BoundedSemaphore::new(1).waiters(), 0);
    /// ```
    pub fn waiters(&self) -> usize {
        self.sem.waiters()
    }

    /// A snapshot for dashboards (see [`Semaphore::stats`]); `in_use` is
    /// [`in_use`](Self::in_use).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::BoundedSemaphore;
    ///
    /// let bs = BoundedSemaphore::new(4);
    /// let held = bs.try_acquire_many(3).unwrap();
    /// let stats = bs.stats();
    /// assert_eq!((stats.available, stats.in_use, stats.totals.admitted), (1, 3, 1));
    /// # drop(held);
    /// ```
    pub fn stats(&self) -> crate::stats::SemaphoreStats {
        // The plain figure leaves out detached permits; a bounded
        // semaphore counts them as in use.
        crate::stats::SemaphoreStats {
            in_use: self.in_use(),
            ..self.sem.stats()
        }
    }

    /// Permits detached with `forget` and not yet released: the most that
    /// [`release`](Self::release) accepts right now.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::BoundedSemaphore;
    ///
    /// let bs = BoundedSemaphore::new(3);
    /// bs.try_acquire_many(2).unwrap().forget();
    /// assert_eq!(bs.detached(), 2);
    /// ```
    pub fn detached(&self) -> usize {
        self.sem.raw.detached()
    }
}

/// Views an `Arc<BoundedSemaphore>` as the `Arc<Semaphore>` inside it.
fn as_semaphore(this: &Arc<BoundedSemaphore>) -> Arc<Semaphore> {
    let ptr = Arc::into_raw(Arc::clone(this)).cast::<Semaphore>();
    // SAFETY: `BoundedSemaphore` is `repr(transparent)` over `Semaphore`, so
    // both have the same size and alignment, which is what `Arc::from_raw`
    // requires of a pointer that came from `Arc::<BoundedSemaphore>::into_raw`.
    // The strong count taken by the clone is handed over to the new `Arc`.
    unsafe { Arc::from_raw(ptr) }
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedSemaphore")
            .field("capacity", &self.capacity())
            .field("available_permits", &self.available_permits())
            .field("detached", &self.detached())
            .field("waiters", &self.waiters())
            .field("closed", &self.is_closed())
            .finish()
    }
}
