//! Waiting on a [`RateLimiter`]: [`Reservation`] and the `acquire` / `run`
//! futures.

use alloc::boxed::Box;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use crate::clock::Clock;
use crate::deadline::{sealed::Sealed, try_check, Attempt, Within};
use crate::error::{DeadlineError, InsufficientCapacity};
use crate::rate::gcra::{RateLimiter, Reserved, Status, Waiter};
use crate::wait_list::Node;

const UNLINKED: Waiter = Waiter {
    gen: 0,
    tat: 0,
    n: 0,
    ready_ns: 0,
    status: Status::Waiting,
    notify: false,
};

impl<C: Clock> RateLimiter<C> {
    /// Waits for one cell.
    ///
    /// # Fairness
    ///
    /// The cell is reserved at the first poll; waiters complete in that
    /// order (see the type's docs).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes gives its cell back unless a
    /// later reservation was already timed after it.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{Quota, RateLimiter};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = RateLimiter::new(Quota::per_second(1_000).allow_burst(5));
    /// for _ in 0..10 {
    ///     limiter.acquire().await; // the last 5 are spaced 1 ms apart
    /// }
    /// # });
    /// ```
    pub fn acquire(&self) -> RateAcquire<'_, C> {
        RateAcquire {
            inner: self.acquire_many(1),
        }
    }

    /// Waits for `n` cells, admitted together.
    ///
    /// # Fairness
    ///
    /// As [`acquire`](Self::acquire): a later `acquire()` never overtakes an
    /// earlier `acquire_many(5)`.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] at once if `n` exceeds the burst (it could
    /// never be admitted), or later if [`set_quota`](Self::set_quota)
    /// lowers the burst below `n` while it waits.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{Quota, RateLimiter};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = RateLimiter::new(Quota::per_second(1_000).allow_burst(10));
    /// limiter.acquire_many(10).await?; // one batch call costing 10 cells
    /// assert!(limiter.acquire_many(11).await.is_err());
    /// # Ok::<(), limiters::InsufficientCapacity>(())
    /// # }).unwrap();
    /// ```
    pub fn acquire_many(&self, n: u32) -> RateAcquireMany<'_, C> {
        RateAcquireMany {
            limiter: self,
            n,
            phase: Phase::Start,
            node: Node::new(UNLINKED),
            sleep: None,
            deadline: 0,
        }
    }

    /// Reserves `n` cells now and says when they are admitted, without
    /// waiting: for callers that schedule work themselves.
    ///
    /// The reservation keeps its place in the queue like a waiting
    /// `acquire_many`, and is re-timed by [`set_quota`](Self::set_quota) and
    /// [`pause_for`](Self::pause_for) ([`Reservation::ready_at`] tells the
    /// current time). Dropping it keeps the cells reserved;
    /// [`Reservation::cancel`] gives them back.
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] if `n` exceeds the burst.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, Quota, RateLimiter};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = RateLimiter::with_clock(Quota::per_second(10), clock.clone());
    /// let first = limiter.reserve_many(1)?;
    /// let second = limiter.reserve_many(1)?;
    /// assert_eq!(first.delay(), Duration::ZERO);
    /// assert_eq!(second.delay(), Duration::from_millis(100));
    /// second.cancel(); // changed our mind: the slot is free again
    /// assert_eq!(limiter.reserve_many(1)?.delay(), Duration::from_millis(100));
    /// # Ok::<(), limiters::InsufficientCapacity>(())
    /// ```
    pub fn reserve_many(&self, n: u32) -> Result<Reservation<'_, C>, InsufficientCapacity> {
        let mut shared = self.lock();
        match self.reserve_locked(&mut shared, n)? {
            Reserved::Now => Ok(Reservation {
                limiter: self,
                node: None,
                ready_ns: self.now_ns(),
            }),
            Reserved::Later(waiter) => {
                let node = Box::pin(Node::new(waiter));
                // SAFETY: the node is pinned in its box, which the reservation
                // owns and unlinks (under this lock) before freeing it.
                unsafe { shared.waiters.link(&node) };
                Ok(Reservation {
                    limiter: self,
                    ready_ns: waiter.ready_ns,
                    node: Some(node),
                })
            }
        }
    }

    /// Runs `fut` once one cell is admitted.
    ///
    /// # Fairness
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before the cell is admitted gives the cell back
    /// as [`acquire`](Self::acquire) does; after that, the cell is spent.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{Quota, RateLimiter};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = RateLimiter::new(Quota::per_second(1_000).allow_burst(3));
    /// let call = |i: u32| async move { i * 2 }; // an API call
    /// let mut answers = Vec::new();
    /// for i in 0..5 {
    ///     answers.push(limiter.run(call(i)).await);
    /// }
    /// assert_eq!(answers, [0, 2, 4, 6, 8]);
    /// # });
    /// ```
    pub fn run<F: Future>(&self, fut: F) -> RateRun<'_, C, F> {
        RateRun {
            acquire: self.acquire(),
            admitted: false,
            fut,
        }
    }
}

/// Cells reserved by [`RateLimiter::reserve_many`].
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use limiters::{ManualClock, Quota, RateLimiter};
///
/// let clock = ManualClock::new();
/// let limiter = RateLimiter::with_clock(Quota::per_second(2).allow_burst(2), clock.clone());
/// let batch = limiter.reserve_many(2)?;
/// assert_eq!(batch.ready_at(), clock.now());
/// let next = limiter.reserve_many(1)?;
/// assert_eq!(next.delay(), Duration::from_millis(500));
/// # Ok::<(), limiters::InsufficientCapacity>(())
/// ```
pub struct Reservation<'a, C: Clock> {
    limiter: &'a RateLimiter<C>,
    /// Linked while its time has not come; `None` if admitted at once.
    node: Option<Pin<Box<Node<Waiter>>>>,
    ready_ns: u64,
}

impl<C: Clock> fmt::Debug for Reservation<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("ready_at", &self.ready_at())
            .finish()
    }
}

impl<C: Clock> Reservation<'_, C> {
    fn ready_ns(&self) -> u64 {
        match &self.node {
            None => self.ready_ns,
            Some(node) => {
                let mut shared = self.limiter.lock();
                // SAFETY: nodes are only accessed under the limiter's lock.
                unsafe { shared.waiters.entry(node) }.value.ready_ns
            }
        }
    }

    /// The instant the cells are admitted (current: quota changes and pauses
    /// move it).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, Quota, RateLimiter};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = RateLimiter::with_clock(Quota::per_second(1), clock.clone());
    /// limiter.check().unwrap();
    /// let r = limiter.reserve_many(1)?;
    /// assert_eq!(r.ready_at(), clock.now() + Duration::from_secs(1));
    /// limiter.pause_for(Duration::from_secs(10));
    /// assert_eq!(r.ready_at(), clock.now() + Duration::from_secs(10));
    /// # Ok::<(), limiters::InsufficientCapacity>(())
    /// ```
    pub fn ready_at(&self) -> C::Instant {
        self.limiter.instant_at(self.ready_ns())
    }

    /// How long from now until [`ready_at`](Self::ready_at) (zero if it has
    /// passed).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, Quota, RateLimiter};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = RateLimiter::with_clock(Quota::per_second(4), clock.clone());
    /// limiter.check().unwrap();
    /// let r = limiter.reserve_many(1)?;
    /// assert_eq!(r.delay(), Duration::from_millis(250));
    /// clock.advance(Duration::from_millis(100));
    /// assert_eq!(r.delay(), Duration::from_millis(150));
    /// # Ok::<(), limiters::InsufficientCapacity>(())
    /// ```
    pub fn delay(&self) -> Duration {
        Duration::from_nanos(self.ready_ns().saturating_sub(self.limiter.now_ns()))
    }

    /// Gives the cells back, if no later reservation was timed after them
    /// and their time has not come (Go's `x/time/rate` rule).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, Quota, RateLimiter};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = RateLimiter::with_clock(Quota::per_second(1), clock.clone());
    /// limiter.check().unwrap();
    /// limiter.reserve_many(1)?.cancel();
    /// assert_eq!(limiter.check().unwrap_err().wait_time(), Duration::from_secs(1));
    /// # Ok::<(), limiters::InsufficientCapacity>(())
    /// ```
    pub fn cancel(mut self) {
        if let Some(node) = self.node.take() {
            let mut shared = self.limiter.lock();
            // SAFETY: the node is alive (we own it) and only linked into
            // this limiter's list; accessed under its lock.
            let waiter = unsafe {
                shared.waiters.unlink(&node);
                shared.waiters.entry(&node).value
            };
            self.limiter.refund(&shared, &waiter);
        }
    }
}

impl<C: Clock> Drop for Reservation<'_, C> {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            let mut shared = self.limiter.lock();
            // SAFETY: as in `cancel`; after unlinking, the box may be freed.
            unsafe { shared.waiters.unlink(&node) };
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Start,
    Waiting,
    Done,
}

pin_project_lite::pin_project! {
    /// Future returned by [`RateLimiter::acquire_many`].
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::futures::RateAcquireMany;
    /// use limiters::{Quota, RateLimiter};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = RateLimiter::new(Quota::per_second(100).allow_burst(4));
    /// let batch: RateAcquireMany<'_, limiters::SystemClock> = limiter.acquire_many(4);
    /// batch.await.unwrap();
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct RateAcquireMany<'a, C: Clock> {
        limiter: &'a RateLimiter<C>,
        n: u32,
        phase: Phase,
        #[pin]
        node: Node<Waiter>,
        #[pin]
        sleep: Option<C::Sleep>,
        deadline: u64,
    }

    impl<'a, C: Clock> PinnedDrop for RateAcquireMany<'a, C> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if *this.phase == Phase::Waiting {
                let node: &Node<Waiter> = &this.node;
                let mut shared = this.limiter.lock();
                // SAFETY: the node is alive until this drop returns and only
                // linked into this limiter's list; accessed under its lock.
                let waiter = unsafe {
                    shared.waiters.unlink(node);
                    shared.waiters.entry(node).value
                };
                if waiter.status == Status::Waiting {
                    this.limiter.refund(&shared, &waiter);
                }
            }
        }
    }
}

impl<C: Clock> fmt::Debug for RateAcquireMany<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateAcquireMany")
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

impl<C: Clock> Future for RateAcquireMany<'_, C> {
    type Output = Result<(), InsufficientCapacity>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let limiter: &RateLimiter<C> = this.limiter;
            match *this.phase {
                Phase::Done => panic!("RateAcquireMany polled after completion"),
                Phase::Start => {
                    // Lock-free fast path: admitted now (nobody queued ahead).
                    match limiter.check_n(*this.n) {
                        Ok(()) => {
                            *this.phase = Phase::Done;
                            return Poll::Ready(Ok(()));
                        }
                        Err(crate::RateLimitError::InsufficientCapacity { requested, burst }) => {
                            *this.phase = Phase::Done;
                            return Poll::Ready(Err(InsufficientCapacity { requested, burst }));
                        }
                        Err(_) => {}
                    }
                    let mut shared = limiter.lock();
                    match limiter.reserve_locked(&mut shared, *this.n) {
                        Err(e) => {
                            *this.phase = Phase::Done;
                            return Poll::Ready(Err(e));
                        }
                        Ok(Reserved::Now) => {
                            *this.phase = Phase::Done;
                            return Poll::Ready(Ok(()));
                        }
                        Ok(Reserved::Later(waiter)) => {
                            let node: &Node<Waiter> = &this.node;
                            // SAFETY: the node is pinned in this future, which
                            // unlinks it (under this lock) in drop.
                            unsafe {
                                let entry = shared.waiters.entry(node);
                                entry.value = waiter;
                                entry.waker = Some(cx.waker().clone());
                                shared.waiters.link(node);
                            }
                            *this.phase = Phase::Waiting;
                        }
                    }
                }
                Phase::Waiting => {
                    let node: &Node<Waiter> = &this.node;
                    let mut shared = limiter.lock();
                    // SAFETY: nodes are only accessed under the limiter's lock.
                    let waiter = unsafe { shared.waiters.entry(node) }.value;
                    if let Some(result) = limiter.settle(&shared, &waiter) {
                        // SAFETY: linked into this list, alive.
                        unsafe { shared.waiters.unlink(node) };
                        *this.phase = Phase::Done;
                        return Poll::Ready(result);
                    }
                    let ready_ns = waiter.ready_ns;
                    // SAFETY: as above.
                    let entry = unsafe { shared.waiters.entry(node) };
                    match &mut entry.waker {
                        Some(waker) if waker.will_wake(cx.waker()) => {}
                        slot => *slot = Some(cx.waker().clone()),
                    }
                    drop(shared);
                    if this.sleep.is_none() || *this.deadline != ready_ns {
                        *this.deadline = ready_ns;
                        let sleep = limiter.clock().sleep_until(limiter.instant_at(ready_ns));
                        this.sleep.set(Some(sleep));
                    }
                    let sleep = this.sleep.as_mut().as_pin_mut().expect("armed above");
                    if sleep.poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    // The deadline passed: settle on the next turn.
                    this.sleep.set(None);
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// Future returned by [`RateLimiter::acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::futures::RateAcquire;
    /// use limiters::{Quota, RateLimiter};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = RateLimiter::new(Quota::per_second(100));
    /// let one: RateAcquire<'_, limiters::SystemClock> = limiter.acquire();
    /// one.await;
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct RateAcquire<'a, C: Clock> {
        #[pin]
        inner: RateAcquireMany<'a, C>,
    }
}

impl<C: Clock> fmt::Debug for RateAcquire<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RateAcquire { .. }")
    }
}

impl<C: Clock> Future for RateAcquire<'_, C> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.project().inner.poll(cx).map(|result| {
            // A burst is at least one cell, so one cell always fits.
            debug_assert!(result.is_ok());
        })
    }
}

crate::rate::run_future! {
    /// Future returned by [`RateLimiter::run`].
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::futures::RateRun;
    /// use limiters::{Quota, RateLimiter};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = RateLimiter::new(Quota::per_second(100));
    /// let call: RateRun<'_, _, _> = limiter.run(async { "answer" });
    /// assert_eq!(call.await, "answer");
    /// # });
    /// ```
    RateRun, RateAcquire
}

impl<C: Clock> RateLimiter<C> {
    /// Waits for one cell, but not past `timeout` from now (on the
    /// limiter's clock): Go's `Wait` with a context deadline.
    ///
    /// A wait known to end after the deadline fails at once with
    /// [`DeadlineError::WouldExceed`], taking nothing and disturbing no
    /// waiter. A zero `timeout` is [`check`](Self::check); a huge one
    /// saturates.
    ///
    /// # Fairness
    ///
    /// As [`acquire`](Self::acquire) once queued.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire); a timeout gives the cell back the same
    /// way.
    ///
    /// # Errors
    ///
    /// [`DeadlineError::WouldExceed`] at once, or [`DeadlineError::TimedOut`]
    /// if a quota change or pause pushed it past the deadline while queued.
    ///
    /// # Examples
    ///
    /// A request worth making only if it can start within 100 ms:
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{DeadlineError, ManualClock, Quota, RateLimiter};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = RateLimiter::with_clock(Quota::per_second(5), ManualClock::new());
    /// let budget = Duration::from_millis(100);
    /// assert!(limiter.acquire_within(budget).await.is_ok());
    /// let err = limiter.acquire_within(budget).await.unwrap_err();
    /// assert!(matches!(err, DeadlineError::WouldExceed { wait, .. } if wait == Duration::from_millis(200)));
    /// # });
    /// ```
    pub fn acquire_within(&self, timeout: Duration) -> RateAcquireWithin<'_, C> {
        self.acquire_many_within(1, timeout)
    }

    /// Waits for `n` cells, admitted together, but not past `timeout` from
    /// now (see [`acquire_within`](Self::acquire_within)).
    ///
    /// # Cancel safety
    ///
    /// As [`acquire_many`](Self::acquire_many).
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
    /// use limiters::{DeadlineError, ManualClock, Quota, RateLimiter};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = RateLimiter::with_clock(Quota::per_second(10).allow_burst(4), ManualClock::new());
    /// let second = Duration::from_secs(1);
    /// assert!(limiter.acquire_many_within(4, second).await.is_ok());
    /// assert!(matches!(
    ///     limiter.acquire_many_within(5, second).await,
    ///     Err(DeadlineError::InsufficientCapacity { requested: 5, burst: 4 })
    /// ));
    /// # });
    /// ```
    pub fn acquire_many_within(&self, n: u32, timeout: Duration) -> RateAcquireWithin<'_, C> {
        Within::new(self.acquire_many(n), timeout)
    }
}

/// Future returned by [`RateLimiter::acquire_within`] and
/// [`RateLimiter::acquire_many_within`] (see [`Within`]).
pub type RateAcquireWithin<'a, C> = Within<RateAcquireMany<'a, C>>;

impl<C: Clock> Sealed for RateAcquireMany<'_, C> {}

impl<C: Clock> Attempt for RateAcquireMany<'_, C> {
    type Clock = C;
    type Admitted = ();

    fn clock(&self) -> &C {
        self.limiter.clock()
    }

    fn try_now(
        self: Pin<&mut Self>,
        deadline: C::Instant,
    ) -> Option<Result<(), DeadlineError<C::Instant>>> {
        try_check(self.limiter.check_n(self.n), deadline)
    }

    fn sleeping_until(&self) -> Option<C::Instant> {
        self.sleep
            .is_some()
            .then(|| self.limiter.instant_at(self.deadline))
    }

    fn finish(output: Self::Output) -> Result<(), DeadlineError<C::Instant>> {
        output.map_err(Into::into)
    }
}
