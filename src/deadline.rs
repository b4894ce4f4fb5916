//! Deadlines: the `*_within(timeout)` futures of every rate limiter and of
//! [`Limiter`](crate::Limiter), built as one wrapper, [`Within`], around the
//! primitive's own acquire future.
//!
//! # Implementation details
//!
//! The deadline is `clock.now() + timeout` on the limiter's own clock, taken
//! when the future is created (as tokio's `timeout`), saturating. At the
//! first poll the wrapper asks the primitive, without queueing, whether the
//! request is admitted right now, impossible, or known to be admitted only
//! after the deadline ([`Attempt::try_now`]): the first two end the future
//! as `check` would, the third fails with
//! [`DeadlineError::WouldExceed`] having taken nothing. Otherwise the
//! primitive's future is polled as usual. While it sleeps until a known
//! instant of admission (a rate reservation, the rate stage of a `Limiter`)
//! that is in time, its own timer is enough: whatever moves it later (a
//! pause, a quota change) wakes it. While it waits for something else (a
//! slot), the wrapper sleeps on the clock until the deadline beside it. If
//! the deadline comes first, or the known instant moves past it, the
//! primitive's
//! future is dropped in place, which gives back everything it held exactly
//! as dropping the whole future would, and the wrapper returns
//! [`DeadlineError::TimedOut`].

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use crate::clock::{Alarm, Clock, ClockInstant};
use crate::error::{DeadlineError, NotUntil, RateLimitError};

/// The instant type of an [`Attempt`]'s clock.
type InstantOf<F> = <<F as Attempt>::Clock as Clock>::Instant;

/// What [`Within`] needs of the acquire future it wraps. Sealed: the crate
/// implements it for its own futures.
pub trait Attempt: Future + sealed::Sealed {
    /// The limiter's clock.
    #[doc(hidden)]
    type Clock: Clock;
    /// What an admitted request returns.
    #[doc(hidden)]
    type Admitted;

    #[doc(hidden)]
    fn clock(&self) -> &Self::Clock;

    /// Decides at once, before queueing: `Some` if the request is admitted
    /// now (it is then taken), can never be admitted, or is known to be
    /// admitted only after `deadline` (nothing taken); `None` to queue.
    #[doc(hidden)]
    fn try_now(
        self: Pin<&mut Self>,
        deadline: InstantOf<Self>,
    ) -> Option<Result<Self::Admitted, DeadlineError<InstantOf<Self>>>>;

    /// While queued: the instant the wrapped future sleeps until, if it
    /// knows when it is admitted (at the earliest); `None` while it waits
    /// for something else (a slot, the head of a queue).
    #[doc(hidden)]
    fn sleeping_until(&self) -> Option<InstantOf<Self>> {
        None
    }

    /// Counts a refusal (`WouldExceed`, `TimedOut`) in the primitive's
    /// `stats`.
    #[doc(hidden)]
    fn refused(&self);

    /// The wrapped future's output as the deadline future's.
    #[doc(hidden)]
    fn finish(output: Self::Output) -> Result<Self::Admitted, DeadlineError<InstantOf<Self>>>;
}

pub(crate) mod sealed {
    pub trait Sealed {}
}

/// `now + timeout`, saturating (a huge timeout never overflows).
pub(crate) fn deadline_after<C: Clock>(clock: &C, timeout: Duration) -> C::Instant {
    clock.now().saturating_add(timeout)
}

/// [`Attempt::try_now`] of a rate limiter, from its `check_n`: admitted,
/// impossible, or denied until after `deadline` end the request; a denial
/// that ends in time queues it.
pub(crate) fn try_check<I: ClockInstant>(
    checked: Result<(), RateLimitError<I>>,
    deadline: I,
) -> Option<Result<(), DeadlineError<I>>> {
    match checked {
        Ok(()) => Some(Ok(())),
        Err(RateLimitError::NotUntil(not_until)) => {
            (not_until.earliest() > deadline).then(|| Err(would_exceed(not_until)))
        }
        Err(RateLimitError::InsufficientCapacity { requested, burst }) => {
            Some(Err(DeadlineError::InsufficientCapacity {
                requested,
                burst,
            }))
        }
    }
}

/// A denial whose `earliest` is past the deadline, as the error it is.
pub(crate) fn would_exceed<I: ClockInstant>(not_until: NotUntil<I>) -> DeadlineError<I> {
    DeadlineError::WouldExceed {
        wait: not_until.wait_time(),
        earliest: not_until.earliest(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Start,
    Waiting,
    Done,
}

pin_project_lite::pin_project! {
    /// An acquire future with a deadline: the future returned by every
    /// `acquire_within` / `acquire_many_within` (named by the aliases
    /// [`RateAcquireWithin`](crate::futures::RateAcquireWithin),
    /// [`BucketAcquireWithin`](crate::futures::BucketAcquireWithin),
    /// [`WindowAcquireWithin`](crate::futures::WindowAcquireWithin),
    /// `KeyedRateAcquireWithin` and
    /// [`LimiterAcquireWithin`](crate::futures::LimiterAcquireWithin)).
    ///
    /// Resolves to the primitive's admission, or to a [`DeadlineError`]:
    /// `WouldExceed` at the first poll if the request is known to be
    /// admitted only after the deadline (nothing is taken, no other waiter
    /// is disturbed), `TimedOut` if it was queued and the deadline passed
    /// (or it became known that it would) first.
    ///
    /// # Cancel safety
    ///
    /// Dropping it is dropping the wrapped acquire future: whatever it
    /// holds is given back (see the primitive's `acquire_many`). A timeout
    /// gives back the same way, before the error is returned.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::futures::RateAcquireWithin;
    /// use limiters::{ManualClock, Quota, RateLimiter};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = RateLimiter::with_clock(Quota::per_second(10), ManualClock::new());
    /// let within: RateAcquireWithin<'_, ManualClock> = limiter.acquire_within(Duration::from_secs(1));
    /// within.await.unwrap();
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct Within<F: Attempt> {
        #[pin]
        wait: Option<F>,
        #[pin]
        timer: Alarm<<F::Clock as Clock>::Sleep, InstantOf<F>>,
        deadline: InstantOf<F>,
        phase: Phase,
    }
}

impl<F: Attempt> Within<F> {
    pub(crate) fn new(wait: F, timeout: Duration) -> Self {
        let deadline = deadline_after(wait.clock(), timeout);
        Self {
            wait: Some(wait),
            timer: Alarm::new(),
            deadline,
            phase: Phase::Start,
        }
    }

    /// The instant after which it gives up.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{ManualClock, Quota, RateLimiter};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = RateLimiter::with_clock(Quota::per_second(10), clock.clone());
    /// let within = limiter.acquire_within(Duration::from_millis(250));
    /// assert_eq!(within.deadline(), clock.now() + Duration::from_millis(250));
    /// ```
    pub fn deadline(&self) -> InstantOf<F> {
        self.deadline
    }
}

impl<F: Attempt> Future for Within<F> {
    type Output = Result<F::Admitted, DeadlineError<InstantOf<F>>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let deadline = *this.deadline;
        if *this.phase == Phase::Start {
            let mut wait = this.wait.as_mut().as_pin_mut().expect("not polled yet");
            if let Some(decided) = wait.as_mut().try_now(deadline) {
                if let Err(DeadlineError::WouldExceed { .. }) = decided {
                    wait.refused();
                }
                *this.phase = Phase::Done;
                return Poll::Ready(decided);
            }
            *this.phase = Phase::Waiting;
        }
        let Some(mut wait) = this.wait.as_mut().as_pin_mut() else {
            panic!("a deadline future was polled after it completed");
        };
        if let Poll::Ready(output) = wait.as_mut().poll(cx) {
            this.wait.set(None);
            this.timer.as_mut().disarm();
            *this.phase = Phase::Done;
            return Poll::Ready(F::finish(output));
        }
        match wait.sleeping_until() {
            // Its own timer wakes it in time, and anything that moves it
            // later (a pause, a quota change) wakes it too.
            Some(at) if at <= deadline => {
                this.timer.as_mut().disarm();
                return Poll::Pending;
            }
            // Known to be late: give up now rather than at the deadline.
            Some(_) => {}
            None => {
                let arm = |at| wait.clock().sleep_until(at);
                if this
                    .timer
                    .as_mut()
                    .poll_until(cx, deadline, arm)
                    .is_pending()
                {
                    return Poll::Pending;
                }
            }
        }
        // Give everything back as a drop would, then report.
        wait.refused();
        this.wait.set(None);
        this.timer.as_mut().disarm();
        *this.phase = Phase::Done;
        Poll::Ready(Err(DeadlineError::TimedOut))
    }
}

impl<F: Attempt> fmt::Debug for Within<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Within")
            .field("deadline", &self.deadline)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}
