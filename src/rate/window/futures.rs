//! Waiting on a [`SlidingWindow`]: the `acquire` and `run` futures.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use super::{SlidingWindow, Status, Waiter};
use crate::clock::{Alarm, Clock};
use crate::deadline::{sealed::Sealed, try_check, Attempt, Within};
use crate::error::{DeadlineError, InsufficientCapacity};
use crate::wait_list::Node;

const UNLINKED: Waiter = Waiter {
    n: 0,
    status: Status::Waiting,
    head: false,
    timer_at: u64::MAX,
};

impl<C: Clock> SlidingWindow<C> {
    /// Waits for one cell.
    ///
    /// # Fairness
    ///
    /// Served in the order of first polls (see the type's docs).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes loses nothing: a queued
    /// future held no cell, and one granted but not yet polled gives its
    /// cell back (the next waiter may take it at once).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use limiters::SlidingWindow;
    ///
    /// # futures_lite::future::block_on(async {
    /// let window = SlidingWindow::new(5, Duration::from_millis(10));
    /// for _ in 0..10 {
    ///     window.acquire().await; // 5 at once, the next 5 ten ms later
    /// }
    /// # });
    /// ```
    pub fn acquire(&self) -> WindowAcquire<'_, C> {
        WindowAcquire {
            inner: self.acquire_many(1),
        }
    }

    /// Waits for `n` cells, admitted together.
    ///
    /// # Fairness
    ///
    /// As [`acquire`](Self::acquire): a later `acquire()` never overtakes an
    /// earlier `acquire_many(5)`, which waits until 5 cells are free at
    /// once.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] at once if `n` exceeds the window's limit
    /// (it could never be admitted).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use limiters::SlidingWindow;
    ///
    /// # futures_lite::future::block_on(async {
    /// let window = SlidingWindow::new(10, Duration::from_secs(1));
    /// window.acquire_many(10).await?; // a batch call costing 10
    /// assert!(window.acquire_many(11).await.is_err());
    /// # Ok::<(), limiters::InsufficientCapacity>(())
    /// # }).unwrap();
    /// ```
    pub fn acquire_many(&self, n: u32) -> WindowAcquireMany<'_, C> {
        WindowAcquireMany {
            window: self,
            n,
            phase: Phase::Start,
            node: Node::new(UNLINKED),
            alarm: Alarm::new(),
            since: 0,
        }
    }

    /// Waits for one cell, but not past `timeout` from now on the window's
    /// clock: for a call only worth making soon. A wait known to end after
    /// the deadline fails at once, taking nothing; a zero `timeout` is
    /// [`check`](Self::check); a huge one saturates.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire); a timeout gives back the same way.
    ///
    /// # Errors
    ///
    /// [`DeadlineError::WouldExceed`] at once (with the earliest instant it
    /// could be admitted), or [`DeadlineError::TimedOut`] if it was queued
    /// and the deadline came first (waiters ahead, a pause, or waiters
    /// granted ahead of it that returned late).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{DeadlineError, ManualClock, SlidingWindow};
    ///
    /// # futures_lite::future::block_on(async {
    /// let window = SlidingWindow::with_clock(1, Duration::from_secs(1), ManualClock::new());
    /// let budget = Duration::from_millis(100);
    /// assert!(window.acquire_within(budget).await.is_ok());
    /// let err = window.acquire_within(budget).await.unwrap_err();
    /// assert!(matches!(err, DeadlineError::WouldExceed { wait, .. } if wait == Duration::from_nanos(1_000_000_001)));
    /// # });
    /// ```
    pub fn acquire_within(&self, timeout: Duration) -> WindowAcquireWithin<'_, C> {
        self.acquire_many_within(1, timeout)
    }

    /// Waits for `n` cells, admitted together, but not past `timeout` from
    /// now (see [`acquire_within`](Self::acquire_within)).
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Errors
    ///
    /// As [`acquire_within`](Self::acquire_within), and
    /// [`DeadlineError::InsufficientCapacity`] at once if `n` exceeds the
    /// limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, SlidingWindow};
    ///
    /// # futures_lite::future::block_on(async {
    /// let window = SlidingWindow::with_clock(4, Duration::from_secs(1), ManualClock::new());
    /// let second = Duration::from_secs(1);
    /// assert!(window.acquire_many_within(4, second).await.is_ok());
    /// assert!(window.acquire_many_within(5, second).await.is_err());
    /// # });
    /// ```
    pub fn acquire_many_within(&self, n: u32, timeout: Duration) -> WindowAcquireWithin<'_, C> {
        Within::new(self.acquire_many(n), timeout)
    }

    /// Runs `fut` once one cell is admitted.
    ///
    /// # Cancel safety
    ///
    /// Before the cell is admitted, as [`acquire`](Self::acquire); after
    /// that, the cell is spent.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use limiters::SlidingWindow;
    ///
    /// # futures_lite::future::block_on(async {
    /// let window = SlidingWindow::new(100, Duration::from_secs(60));
    /// let call = |i: u32| async move { i * 2 }; // an API call
    /// assert_eq!(window.run(call(21)).await, 42);
    /// # });
    /// ```
    pub fn run<F: Future>(&self, fut: F) -> WindowRun<'_, C, F> {
        WindowRun::new(self.acquire(), fut)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Start,
    /// Linked, or granted and unlinked (the node's status says which).
    Queued,
    Done,
}

pin_project_lite::pin_project! {
    /// Future returned by [`SlidingWindow::acquire_many`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping it before it completes loses nothing. A queued
    /// future holds no cell, and one granted but not yet polled gives its
    /// cells back (the next waiter may take them at once).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use limiters::futures::WindowAcquireMany;
    /// use limiters::{SlidingWindow, SystemClock};
    ///
    /// # futures_lite::future::block_on(async {
    /// let window = SlidingWindow::new(4, Duration::from_secs(1));
    /// let batch: WindowAcquireMany<'_, SystemClock> = window.acquire_many(4);
    /// batch.await.unwrap();
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct WindowAcquireMany<'a, C: Clock> {
        window: &'a SlidingWindow<C>,
        n: u32,
        phase: Phase,
        #[pin]
        node: Node<Waiter>,
        #[pin]
        alarm: Alarm<C::Sleep>,
        // When it was queued (ns), for `stats`.
        since: u64,
    }

    impl<'a, C: Clock> PinnedDrop for WindowAcquireMany<'a, C> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if *this.phase != Phase::Queued {
                return;
            }
            let window: &SlidingWindow<C> = this.window;
            let node: &Node<Waiter> = &this.node;
            let mut state = window.lock();
            let was_front = state.waiters.is_front(node);
            // SAFETY: the node is alive until this drop returns and only
            // ever linked into this window's list; accessed under its lock.
            let (status, waker) = unsafe {
                state.waiters.unlink(node);
                let entry = state.waiters.entry(node);
                (entry.value.status, entry.waker.take())
            };
            let state = match status {
                // Granted but never returned: the cells go back, and the
                // head may fit now (or sleep less).
                Status::Granted => {
                    state.granted -= *this.n;
                    window.serve(state, true).0
                }
                // The next one is the head now: it must arm its timer.
                Status::Waiting if was_front => window.serve(state, false).0,
                Status::Waiting => state,
            };
            drop(state);
            drop(waker);
        }
    }
}

impl<C: Clock> fmt::Debug for WindowAcquireMany<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WindowAcquireMany")
            .field("n", &self.n)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl<C: Clock> Future for WindowAcquireMany<'_, C> {
    type Output = Result<(), InsufficientCapacity>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let window: &SlidingWindow<C> = this.window;
        let n = *this.n;
        loop {
            match *this.phase {
                Phase::Done => panic!("WindowAcquireMany polled after completion"),
                Phase::Start => {
                    if let Err(e) = window.capacity(n) {
                        *this.phase = Phase::Done;
                        return Poll::Ready(Err(e));
                    }
                    let mut state = window.lock();
                    let now = window.now_ns();
                    if state.admit_now(n, now) {
                        drop(state);
                        window.counters.admit();
                        *this.phase = Phase::Done;
                        return Poll::Ready(Ok(()));
                    }
                    *this.since = now;
                    let node: &Node<Waiter> = &this.node;
                    // SAFETY: the node is pinned in this future, which
                    // unlinks it (under this lock) in drop. It joins without
                    // a waker: the next turn stores one, cloned outside the
                    // lock.
                    unsafe {
                        state.waiters.entry(node).value = Waiter { n, ..UNLINKED };
                        state.waiters.link(node);
                    }
                    *this.phase = Phase::Queued;
                }
                Phase::Queued => {
                    let waker = cx.waker().clone();
                    let node: &Node<Waiter> = &this.node;
                    let mut state = window.lock();
                    // Our own waker stays out while we serve the queue, so
                    // granting ourselves wakes nobody.
                    // SAFETY: nodes are only accessed under the window's lock.
                    let mine = unsafe { state.waiters.entry(node) }.waker.take();
                    // SAFETY: as above.
                    let status = unsafe { state.waiters.entry(node) }.value.status;
                    let mut now = window.now_ns();
                    if status == Status::Waiting {
                        (state, now) = window.serve(state, false);
                    }
                    // SAFETY: as above.
                    let entry = unsafe { state.waiters.entry(node) };
                    let sleep_until = if entry.value.status == Status::Granted {
                        if now < state.paused_until_ns {
                            // Granted, then a pause came before we ran: our
                            // cells stay ours, but we start after it.
                            let at = state.paused_until_ns;
                            drop(state);
                            drop((mine, waker));
                            Some(at)
                        } else {
                            let head = state.returned(n, now);
                            *this.phase = Phase::Done;
                            drop(state);
                            drop((mine, waker));
                            window.counters.admit_after(now.saturating_sub(*this.since));
                            if let Some(head) = head {
                                head.wake();
                            }
                            return Poll::Ready(Ok(()));
                        }
                    } else {
                        let (keep, spare) = match mine {
                            Some(w) if w.will_wake(&waker) => (w, Some(waker)),
                            other => (waker, other),
                        };
                        entry.waker = Some(keep);
                        if !state.waiters.is_front(node) {
                            drop(state);
                            drop(spare);
                            return Poll::Pending;
                        }
                        let at = state.head_at(n, now);
                        // SAFETY: as above.
                        unsafe { state.waiters.entry(node) }.value.timer_at =
                            at.unwrap_or(u64::MAX);
                        drop(state);
                        drop(spare);
                        at
                    };
                    let Some(at) = sleep_until else {
                        // Woken when granted waiters return.
                        this.alarm.as_mut().disarm();
                        return Poll::Pending;
                    };
                    let arm = |ns| window.clock().sleep_until(window.instant_at(ns));
                    if this.alarm.as_mut().poll_until(cx, at, arm).is_pending() {
                        return Poll::Pending;
                    }
                    // Its time came: serve on the next turn.
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// Future returned by [`SlidingWindow::acquire`].
    ///
    /// # Cancel safety
    ///
    /// As [`WindowAcquireMany`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use limiters::futures::WindowAcquire;
    /// use limiters::{SlidingWindow, SystemClock};
    ///
    /// # futures_lite::future::block_on(async {
    /// let window = SlidingWindow::new(1, Duration::from_secs(1));
    /// let one: WindowAcquire<'_, SystemClock> = window.acquire();
    /// one.await;
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct WindowAcquire<'a, C: Clock> {
        #[pin]
        inner: WindowAcquireMany<'a, C>,
    }
}

impl<C: Clock> fmt::Debug for WindowAcquire<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WindowAcquire { .. }")
    }
}

impl<C: Clock> Future for WindowAcquire<'_, C> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.project().inner.poll(cx).map(|result| {
            // A window admits at least one cell.
            debug_assert!(result.is_ok());
        })
    }
}

crate::rate::run_future! {
    /// Future returned by [`SlidingWindow::run`].
    ///
    /// # Cancel safety
    ///
    /// Dropping it before its cell is admitted loses nothing, as
    /// [`WindowAcquireMany`]; after that the cell is spent, and dropping it
    /// drops the wrapped future.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use limiters::futures::WindowRun;
    /// use limiters::SlidingWindow;
    ///
    /// # futures_lite::future::block_on(async {
    /// let window = SlidingWindow::new(10, Duration::from_secs(1));
    /// let call: WindowRun<'_, _, _> = window.run(async { "answer" });
    /// assert_eq!(call.await, "answer");
    /// # });
    /// ```
    WindowRun, WindowAcquire
}

/// Future returned by [`SlidingWindow::acquire_within`] and
/// [`SlidingWindow::acquire_many_within`] (see [`Within`]).
pub type WindowAcquireWithin<'a, C> = Within<WindowAcquireMany<'a, C>>;

impl<C: Clock> Sealed for WindowAcquireMany<'_, C> {}

impl<C: Clock> Attempt for WindowAcquireMany<'_, C> {
    type Clock = C;
    type Admitted = ();

    fn clock(&self) -> &C {
        self.window.clock()
    }

    fn try_now(
        self: Pin<&mut Self>,
        deadline: C::Instant,
    ) -> Option<Result<(), DeadlineError<C::Instant>>> {
        try_check(self.window.check_n(self.n), deadline)
    }

    fn refused(&self) {
        self.window.counters.deny();
    }

    fn sleeping_until(&self) -> Option<C::Instant> {
        // Only the head sleeps, until the earliest instant it can fit; it
        // re-arms (and so is asked again) if that moves later.
        self.alarm.armed_at().map(|ns| self.window.instant_at(ns))
    }

    fn finish(output: Self::Output) -> Result<(), DeadlineError<C::Instant>> {
        output.map_err(Into::into)
    }
}
