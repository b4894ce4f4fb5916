//! The wait of a limiter that reserves its cells at the first poll and then
//! only sleeps until they are due: [`TokenBucket`](crate::TokenBucket) and
//! [`KeyedRateLimiter`](crate::KeyedRateLimiter). One future serves both
//! (`BucketAcquireMany` and `KeyedRateAcquireMany` wrap it): reserve, sleep,
//! and refund if dropped before the cells are due.
//!
//! The GCRA [`RateLimiter`](crate::RateLimiter) and the
//! [`SlidingWindow`](crate::SlidingWindow) queue their waiters instead
//! (a quota change or a pause re-times them), so they have futures of their
//! own; all of them sleep through [`Alarm`].

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use crate::clock::{Alarm, Clock};
use crate::error::InsufficientCapacity;
use crate::stats::Counters;

/// What [`ReservedWait`] needs of its limiter.
pub(crate) trait Reserve {
    type Clock: Clock;
    /// What a refund checks to know the reservation is still the last one
    /// (the limiter's state right after it).
    type Mark: Copy;

    /// Reserves `n` cells: the mark and the instant (ns) they are due.
    fn reserve(&self, n: u32) -> Result<(Self::Mark, u64), InsufficientCapacity>;
    /// Gives the `n` cells of the reservation `mark` back, if it is still the
    /// last one and its cells are not yet due.
    fn refund(&self, n: u32, mark: Self::Mark, ready_ns: u64);
    fn now_ns(&self) -> u64;
    /// The clock's sleep until `ns`.
    fn sleep_until_ns(&self, ns: u64) -> <Self::Clock as Clock>::Sleep;
    fn counters(&self) -> &Counters;
}

#[derive(Clone, Copy, Debug)]
enum State<M> {
    Start,
    Waiting { mark: M, ready_ns: u64, since: u64 },
    Done,
}

pin_project_lite::pin_project! {
    /// Reserves `n` cells at the first poll, then sleeps until they are due.
    pub(crate) struct ReservedWait<L: Reserve> {
        pub(crate) limiter: L,
        pub(crate) n: u32,
        state: State<L::Mark>,
        #[pin]
        alarm: Alarm<<L::Clock as Clock>::Sleep>,
    }

    impl<L: Reserve> PinnedDrop for ReservedWait<L> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let State::Waiting { mark, ready_ns, .. } = *this.state {
                this.limiter.refund(*this.n, mark, ready_ns);
            }
        }
    }
}

impl<L: Reserve> ReservedWait<L> {
    pub(crate) fn new(limiter: L, n: u32) -> Self {
        ReservedWait {
            limiter,
            n,
            state: State::Start,
            alarm: Alarm::new(),
        }
    }

    /// When its reserved cells are due (ns), once reserved and until done.
    pub(crate) fn ready_ns(&self) -> Option<u64> {
        match self.state {
            State::Waiting { ready_ns, .. } => Some(ready_ns),
            _ => None,
        }
    }
}

impl<L: Reserve> Future for ReservedWait<L> {
    type Output = Result<(), InsufficientCapacity>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let limiter: &L = this.limiter;
        let (ready_ns, since, due) = match *this.state {
            State::Start => {
                let (mark, ready_ns) = match limiter.reserve(*this.n) {
                    Ok(reserved) => reserved,
                    Err(e) => {
                        *this.state = State::Done;
                        return Poll::Ready(Err(e));
                    }
                };
                let now = limiter.now_ns();
                if ready_ns <= now {
                    limiter.counters().admit();
                    *this.state = State::Done;
                    return Poll::Ready(Ok(()));
                }
                *this.state = State::Waiting {
                    mark,
                    ready_ns,
                    since: now,
                };
                (ready_ns, now, false)
            }
            State::Waiting {
                ready_ns, since, ..
            } => (ready_ns, since, ready_ns <= limiter.now_ns()),
            State::Done => panic!("a rate limiter's acquire future polled after it completed"),
        };
        let arm = |ns| limiter.sleep_until_ns(ns);
        if !due && this.alarm.poll_until(cx, ready_ns, arm).is_pending() {
            return Poll::Pending;
        }
        let waited = limiter.now_ns().saturating_sub(since);
        limiter.counters().admit_after(waited);
        *this.state = State::Done;
        Poll::Ready(Ok(()))
    }
}
