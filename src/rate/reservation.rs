//! Waiting on a [`RateLimiter`]: [`Reservation`] and the `acquire` / `run`
//! futures.

use alloc::boxed::Box;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use crate::clock::{Alarm, Clock};
use crate::deadline::{sealed::Sealed, try_check, Attempt, Within};
use crate::error::{DeadlineError, InsufficientCapacity};
use crate::rate::gcra::state::{Reserved, Status, Waiter};
use crate::rate::gcra::RateLimiter;
use crate::wait_list::Node;

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
#[must_use = "the cells stay spent when a Reservation is dropped: wait until ready_at() before acting, or cancel() it"]
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

impl<'a, C: Clock> Reservation<'a, C> {
    /// Admitted at once.
    pub(crate) fn now(limiter: &'a RateLimiter<C>) -> Self {
        Reservation {
            limiter,
            node: None,
            ready_ns: limiter.now_ns(),
        }
    }

    /// Admitted at `ready_ns`; `node` is linked into the limiter's list.
    pub(crate) fn linked(
        limiter: &'a RateLimiter<C>,
        ready_ns: u64,
        node: Pin<Box<Node<Waiter>>>,
    ) -> Self {
        Reservation {
            limiter,
            ready_ns,
            node: Some(node),
        }
    }

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

    /// Gives the cells back, all or nothing: all of them if this is still
    /// the last reservation (no later one, nor an `acquire` or an admitted
    /// `check`, was timed after it) and its time has not come; otherwise
    /// nothing, since later admissions were timed counting on these cells.
    /// All or nothing can never let a later admission's window overrun the
    /// bound.
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
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping it before it completes gives its cells back
    /// unless a later reservation was already timed after them (then they
    /// stay spent, so later waiters keep their slots).
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
        alarm: Alarm<C::Sleep>,
        // When it was queued (ns), for `stats`.
        since: u64,
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

impl<'a, C: Clock> RateAcquireMany<'a, C> {
    pub(crate) fn new(limiter: &'a RateLimiter<C>, n: u32) -> Self {
        RateAcquireMany {
            limiter,
            n,
            phase: Phase::Start,
            node: Node::new(Waiter::UNLINKED),
            alarm: Alarm::new(),
            since: 0,
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
                    match limiter.admit_n(*this.n, false) {
                        Ok(()) => {
                            *this.phase = Phase::Done;
                            return Poll::Ready(Ok(()));
                        }
                        Err(crate::error::RateLimitError::InsufficientCapacity {
                            requested,
                            burst,
                        }) => {
                            *this.phase = Phase::Done;
                            return Poll::Ready(Err(InsufficientCapacity { requested, burst }));
                        }
                        Err(_) => {}
                    }
                    // Cloned before the lock: a `clone` that panics must not
                    // leave cells reserved for a waiter that is never linked.
                    let waker = cx.waker().clone();
                    let mut shared = limiter.lock();
                    match limiter.reserve_locked(&mut shared, *this.n) {
                        Err(e) => {
                            *this.phase = Phase::Done;
                            return Poll::Ready(Err(e));
                        }
                        Ok(Reserved::Now) => {
                            limiter.counters().admit();
                            *this.phase = Phase::Done;
                            return Poll::Ready(Ok(()));
                        }
                        Ok(Reserved::Later(waiter)) => {
                            *this.since = limiter.now_ns();
                            let node: &Node<Waiter> = &this.node;
                            // SAFETY: the node is pinned in this future, which
                            // unlinks it (under this lock) in drop.
                            unsafe {
                                let entry = shared.waiters.entry(node);
                                entry.value = waiter;
                                // Empty before the first link: drops nothing.
                                entry.waker = Some(waker);
                                shared.waiters.link(node);
                            }
                            *this.phase = Phase::Waiting;
                        }
                    }
                }
                Phase::Waiting => {
                    let node: &Node<Waiter> = &this.node;
                    // Cloned before the lock, and the waker it replaces
                    // dropped after it: either may run arbitrary code
                    // (dropping the last handle to a task drops the task,
                    // whose futures may call this limiter). Declared before
                    // the guard, so dropped after it on every path.
                    let waker = cx.waker().clone();
                    let mut shared = limiter.lock();
                    // SAFETY: nodes are only accessed under the limiter's lock.
                    let waiter = unsafe { shared.waiters.entry(node) }.value;
                    if let Some(result) = limiter.settle(&shared, &waiter) {
                        // SAFETY: linked into this list, alive.
                        unsafe { shared.waiters.unlink(node) };
                        drop(shared);
                        if result.is_ok() {
                            let waited = limiter.now_ns().saturating_sub(*this.since);
                            limiter.counters().admit_after(waited);
                        }
                        *this.phase = Phase::Done;
                        return Poll::Ready(result);
                    }
                    let ready_ns = waiter.ready_ns;
                    // SAFETY: as above.
                    let stale = unsafe { shared.waiters.entry(node) }.waker.replace(waker);
                    drop(shared);
                    drop(stale);
                    let arm = |ns| limiter.clock().sleep_until(limiter.instant_at(ns));
                    if this
                        .alarm
                        .as_mut()
                        .poll_until(cx, ready_ns, arm)
                        .is_pending()
                    {
                        return Poll::Pending;
                    }
                    // The deadline passed: settle on the next turn.
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// Future returned by [`RateLimiter::acquire`].
    ///
    /// # Cancel safety
    ///
    /// As [`RateAcquireMany`].
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

impl<'a, C: Clock> RateAcquire<'a, C> {
    pub(crate) fn new(inner: RateAcquireMany<'a, C>) -> Self {
        RateAcquire { inner }
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
    /// # Cancel safety
    ///
    /// Dropping it before its cell is admitted gives the cell back as
    /// [`RateAcquireMany`] does; after that the cell is spent, and dropping
    /// it drops the wrapped future.
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
        try_check(self.limiter.admit_n(self.n, false), deadline)
    }

    fn refused(&self) {
        self.limiter.counters().deny();
    }

    fn sleeping_until(&self) -> Option<C::Instant> {
        self.alarm.armed_at().map(|ns| self.limiter.instant_at(ns))
    }

    fn finish(output: Self::Output) -> Result<(), DeadlineError<C::Instant>> {
        output.map_err(Into::into)
    }
}
