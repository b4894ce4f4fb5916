//! [`Throttle`]: a stream whose items are yielded only as a limiter admits
//! them (feature `stream`).
//!
//! Each item is pulled from the inner stream first, then waits for its
//! admission through the limiter's own `acquire`, so it queues FIFO with
//! every other user of the same limiter and is yielded at the instant it is
//! admitted.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{ready, Context, Poll};

use futures_core::stream::{FusedStream, Stream};

use crate::clock::Clock;
use crate::error::AcquireError;
use crate::limiter::{Limiter, LimiterAcquire, LimiterPermit};
use crate::rate::{BucketAcquire, RateAcquire, RateLimiter, TokenBucket};

/// A limiter a [`Throttle`] can wait on. Sealed: implemented by
/// [`RateLimiter`], [`TokenBucket`] and [`Limiter`].
pub trait Admit: sealed::Sealed {
    /// The wait for one item's admission.
    #[doc(hidden)]
    type Wait<'a>: Future
    where
        Self: 'a;

    #[doc(hidden)]
    fn wait(&self) -> Self::Wait<'_>;

    /// Whether the wait admitted the item (`false`: the limiter is closed,
    /// and the stream ends).
    #[doc(hidden)]
    fn admitted(output: <Self::Wait<'_> as Future>::Output) -> bool;
}

mod sealed {
    pub trait Sealed {}
}

impl<C: Clock> sealed::Sealed for RateLimiter<C> {}

impl<C: Clock> Admit for RateLimiter<C> {
    type Wait<'a> = RateAcquire<'a, C>;

    fn wait(&self) -> RateAcquire<'_, C> {
        self.acquire()
    }

    fn admitted((): ()) -> bool {
        true
    }
}

impl<C: Clock> sealed::Sealed for TokenBucket<C> {}

impl<C: Clock> Admit for TokenBucket<C> {
    type Wait<'a> = BucketAcquire<'a, C>;

    fn wait(&self) -> BucketAcquire<'_, C> {
        self.acquire()
    }

    fn admitted((): ()) -> bool {
        true
    }
}

impl<C: Clock> sealed::Sealed for Limiter<C> {}

impl<C: Clock> Admit for Limiter<C> {
    type Wait<'a> = LimiterAcquire<C>;

    fn wait(&self) -> LimiterAcquire<C> {
        self.acquire()
    }

    fn admitted(output: Result<LimiterPermit<C>, AcquireError>) -> bool {
        // The permit is dropped here: the slot goes back at once (after the
        // minimum hold, if one is set); the rate cells are spent.
        output.is_ok()
    }
}

pin_project_lite::pin_project! {
    /// A stream that yields the items of another only as a limiter admits
    /// them: from [`RateLimiter::throttle`], [`TokenBucket::throttle`] and
    /// [`Limiter::throttle`].
    ///
    /// Each item is pulled from the inner stream, then waits for one
    /// admission (FIFO with every other user of the limiter), and is yielded
    /// when admitted. It ends when the inner stream ends, or when a
    /// [`Limiter`] is closed.
    ///
    /// # Cancel safety
    ///
    /// Dropping it while an item waits gives the admission back as dropping
    /// the limiter's `acquire` future does (the rate cell is refunded unless
    /// a later reservation depends on it); the waiting item, already pulled
    /// from the inner stream, is dropped with it.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use limiters::{futures::Throttle, Quota, RateLimiter};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = RateLimiter::new(Quota::per_second(1_000).allow_burst(5));
    /// let urls = futures::stream::iter(["/a", "/b", "/c"]);
    /// let paced: Throttle<'_, RateLimiter, _> = limiter.throttle(urls);
    /// assert_eq!(paced.collect::<Vec<_>>().await, ["/a", "/b", "/c"]);
    /// # });
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct Throttle<'a, L, S>
    where
        L: Admit,
        S: Stream,
    {
        limiter: &'a L,
        #[pin]
        stream: S,
        #[pin]
        wait: Option<L::Wait<'a>>,
        item: Option<S::Item>,
        done: bool,
    }
}

impl<'a, L: Admit, S: Stream> Throttle<'a, L, S> {
    fn new(limiter: &'a L, stream: S) -> Self {
        Self {
            limiter,
            stream,
            wait: None,
            item: None,
            done: false,
        }
    }

    /// The inner stream.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{ManualClock, Quota, RateLimiter};
    ///
    /// let limiter = RateLimiter::with_clock(Quota::per_second(1), ManualClock::new());
    /// let paced = limiter.throttle(futures::stream::iter(0..3));
    /// assert_eq!(paced.get_ref().size_hint(), (3, Some(3)));
    /// # use futures::Stream;
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The inner stream, and the item waiting for admission if any (it was
    /// already pulled from the stream).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{ManualClock, Quota, RateLimiter};
    ///
    /// let limiter = RateLimiter::with_clock(Quota::per_second(1), ManualClock::new());
    /// let (stream, waiting) = limiter.throttle(futures::stream::iter(0..3)).into_inner();
    /// assert!(waiting.is_none());
    /// # drop(stream);
    /// ```
    pub fn into_inner(self) -> (S, Option<S::Item>) {
        (self.stream, self.item)
    }
}

impl<'a, L: Admit, S: Stream> Stream for Throttle<'a, L, S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        loop {
            if let Some(wait) = this.wait.as_mut().as_pin_mut() {
                let output = ready!(wait.poll(cx));
                this.wait.set(None);
                if L::admitted(output) {
                    return Poll::Ready(this.item.take());
                }
                // Closed: end the stream (the item is dropped outside any
                // lock, here).
                *this.done = true;
                *this.item = None;
            }
            if *this.done {
                return Poll::Ready(None);
            }
            match ready!(this.stream.as_mut().poll_next(cx)) {
                None => {
                    *this.done = true;
                    return Poll::Ready(None);
                }
                Some(item) => {
                    *this.item = Some(item);
                    let limiter: &'a L = this.limiter;
                    this.wait.set(Some(limiter.wait()));
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (0, Some(0));
        }
        let waiting = usize::from(self.item.is_some());
        let (low, high) = self.stream.size_hint();
        (
            low.saturating_add(waiting),
            high.and_then(|h| h.checked_add(waiting)),
        )
    }
}

impl<'a, L: Admit, S: Stream> FusedStream for Throttle<'a, L, S> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<L: Admit, S: Stream> fmt::Debug for Throttle<'_, L, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttle")
            .field("waiting", &self.item.is_some())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<C: Clock> RateLimiter<C> {
    /// Yields the items of `stream` only as this limiter admits them, one
    /// cell per item, at an exact rate and in FIFO order with every other
    /// user of the limiter.
    ///
    /// # Cancel safety
    ///
    /// See [`Throttle`].
    ///
    /// # Examples
    ///
    /// Paging through an API that allows 10 requests a second:
    ///
    /// ```
    /// use futures::StreamExt;
    /// use limiters::{Quota, RateLimiter};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = RateLimiter::new(Quota::per_second(1_000).allow_burst(2));
    /// let pages = limiter.throttle(futures::stream::iter(1..=4));
    /// let fetched: Vec<u32> = pages.then(|page| async move { page * 10 }).collect().await;
    /// assert_eq!(fetched, [10, 20, 30, 40]);
    /// # });
    /// ```
    pub fn throttle<S: Stream>(&self, stream: S) -> Throttle<'_, Self, S> {
        Throttle::new(self, stream)
    }
}

impl<C: Clock> TokenBucket<C> {
    /// Yields the items of `stream` only as this bucket admits them, one
    /// token per item (see [`RateLimiter::throttle`]).
    ///
    /// # Cancel safety
    ///
    /// See [`Throttle`].
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use limiters::TokenBucket;
    ///
    /// # futures_lite::future::block_on(async {
    /// let bucket = TokenBucket::builder().max(3).build().unwrap();
    /// let events = bucket.throttle(futures::stream::iter(["a", "b", "c"]));
    /// assert_eq!(events.count().await, 3);
    /// # });
    /// ```
    pub fn throttle<S: Stream>(&self, stream: S) -> Throttle<'_, Self, S> {
        Throttle::new(self, stream)
    }
}

impl<C: Clock> Limiter<C> {
    /// Yields the items of `stream` only as this limiter admits them: each
    /// item passes the limiter as one [`acquire`](Self::acquire) (the
    /// configured weight of every rate).
    ///
    /// Concurrency does not limit items: the stream cannot tell when its
    /// consumer is done with one, so the slot an item passes through is
    /// given back as it is yielded (after the minimum hold, if one is set).
    /// The stream ends if the limiter is closed.
    ///
    /// # Cancel safety
    ///
    /// See [`Throttle`].
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use limiters::{Limiter, Quota};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = Limiter::builder().rate(Quota::per_second(1_000).allow_burst(3)).build()?;
    /// let jobs = limiter.throttle(futures::stream::iter(0..3));
    /// assert_eq!(jobs.collect::<Vec<_>>().await, [0, 1, 2]);
    /// # Ok::<(), limiters::BuildError>(())
    /// # }).unwrap();
    /// ```
    pub fn throttle<S: Stream>(&self, stream: S) -> Throttle<'_, Self, S> {
        Throttle::new(self, stream)
    }
}
