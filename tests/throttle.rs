//! `throttle(stream)`, polled by hand on a `ManualClock`: items are yielded
//! at exactly the limiter's admission instants, FIFO with other users of the
//! same limiter; dropping mid-wait refunds; size_hint passes through.
#![cfg(feature = "stream")]

mod common;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::CountingWaker;
use futures::stream::{self, FusedStream, Stream};
use limiters::{Limiter, ManualClock, Quota, RateLimiter, TokenBucket};

/// A stream polled by hand with its own counting waker.
struct Polled<S> {
    stream: Pin<Box<S>>,
    counter: Arc<CountingWaker>,
    waker: Waker,
}

impl<S: Stream> Polled<S> {
    fn new(stream: S) -> Self {
        let counter = Arc::new(CountingWaker::default());
        Self {
            stream: Box::pin(stream),
            waker: Waker::from(counter.clone()),
            counter,
        }
    }

    fn next(&mut self) -> Poll<Option<S::Item>> {
        self.stream
            .as_mut()
            .poll_next(&mut Context::from_waker(&self.waker))
    }

    fn wakes(&self) -> usize {
        self.counter.count()
    }
}

const NS: Duration = Duration::from_nanos(1);

#[test]
fn hundred_items_at_twenty_per_second_come_at_the_gcra_instants() {
    let clock = ManualClock::new();
    let limiter = RateLimiter::with_clock(Quota::per_second(20).allow_burst(4), clock.clone());
    let start = clock.now();
    let mut paced = Polled::new(limiter.throttle(stream::iter(0..100)));
    let mut yielded_at = Vec::new();
    for i in 0..100u64 {
        // GCRA: the burst of 4 at once, then one every 50 ms.
        let at = Duration::from_millis(50 * i.saturating_sub(3));
        let now = clock.now() - start;
        if at > now {
            assert_eq!(paced.next(), Poll::Pending, "item {i} before its instant");
            clock.advance(at - now - NS);
            assert_eq!(paced.next(), Poll::Pending, "item {i} one ns early");
            let wakes = paced.wakes();
            clock.advance(NS);
            assert_eq!(paced.wakes(), wakes + 1, "woken at its instant");
        }
        assert_eq!(paced.next(), Poll::Ready(Some(i)));
        yielded_at.push(clock.now() - start);
    }
    assert_eq!(paced.next(), Poll::Ready(None));
    assert!(paced.stream.is_terminated());
    assert_eq!(yielded_at.len(), 100);
    assert_eq!(yielded_at[99], Duration::from_millis(50 * 96));
}

#[test]
fn two_streams_on_one_limiter_interleave_fairly() {
    let clock = ManualClock::new();
    let limiter = RateLimiter::with_clock(Quota::per_second(1), clock.clone());
    limiter.check().unwrap(); // both streams start queued
    let start = clock.now();
    let mut a = Polled::new(limiter.throttle(stream::iter(["a0", "a1", "a2", "a3"])));
    let mut b = Polled::new(limiter.throttle(stream::iter(["b0", "b1", "b2", "b3"])));
    let mut order = Vec::new();
    // Each second: poll both (a ready one yields, then queues its next item
    // behind the other's), then let one second pass.
    for _ in 0..9 {
        for s in [&mut a, &mut b] {
            while let Poll::Ready(Some(item)) = s.next() {
                order.push((item, (clock.now() - start).as_secs()));
            }
        }
        clock.advance(Duration::from_secs(1));
    }
    assert_eq!(
        order,
        [
            ("a0", 1),
            ("b0", 2),
            ("a1", 3),
            ("b1", 4),
            ("a2", 5),
            ("b2", 6),
            ("a3", 7),
            ("b3", 8)
        ]
    );
}

#[test]
fn a_throttled_stream_waits_behind_earlier_acquires() {
    let clock = ManualClock::new();
    let limiter = RateLimiter::with_clock(Quota::per_second(1), clock.clone());
    limiter.check().unwrap();
    let mut first = common::Probe::new(limiter.acquire());
    assert!(!first.poll()); // at 1 s
    let mut paced = Polled::new(limiter.throttle(stream::iter([1, 2])));
    assert_eq!(paced.next(), Poll::Pending); // at 2 s
    clock.advance(Duration::from_secs(1));
    assert_eq!((first.wakes(), paced.wakes()), (1, 0));
    assert!(first.poll());
    clock.advance(Duration::from_secs(1));
    assert_eq!(paced.wakes(), 1);
    assert_eq!(paced.next(), Poll::Ready(Some(1)));
}

#[test]
fn dropping_mid_wait_refunds_the_cell() {
    let clock = ManualClock::new();
    let limiter = RateLimiter::with_clock(Quota::per_second(1), clock.clone());
    let mut paced = Polled::new(limiter.throttle(stream::iter(0..3)));
    assert_eq!(paced.next(), Poll::Ready(Some(0)));
    assert_eq!(paced.next(), Poll::Pending); // item 1 holds the cell at 1 s
    assert_eq!(
        limiter.check().unwrap_err().wait_time(),
        Duration::from_secs(2)
    );
    drop(paced);
    assert_eq!(
        limiter.check().unwrap_err().wait_time(),
        Duration::from_secs(1),
        "the cell at 1 s is free again"
    );
    // The same for a token bucket.
    let bucket = TokenBucket::builder()
        .max(1)
        .build_with_clock(clock.clone())
        .unwrap();
    let mut paced = Polled::new(bucket.throttle(stream::iter(0..3)));
    assert_eq!(paced.next(), Poll::Ready(Some(0)));
    assert_eq!(paced.next(), Poll::Pending);
    drop(paced);
    clock.advance(Duration::from_secs(1));
    assert_eq!(bucket.available(), 1, "the token came back");
}

#[test]
fn size_hint_passes_through_and_counts_the_waiting_item() {
    let limiter = RateLimiter::with_clock(Quota::per_second(1), ManualClock::new());
    let mut paced = Polled::new(limiter.throttle(stream::iter(0..10)));
    assert_eq!(paced.stream.size_hint(), (10, Some(10)));
    assert_eq!(paced.next(), Poll::Ready(Some(0)));
    assert_eq!(paced.stream.size_hint(), (9, Some(9)));
    assert_eq!(paced.next(), Poll::Pending);
    assert_eq!(
        paced.stream.size_hint(),
        (9, Some(9)),
        "8 in the stream + 1 waiting"
    );
    let unknown = limiter.throttle(stream::repeat(1));
    assert_eq!(unknown.size_hint(), (usize::MAX, None));
}

#[test]
fn a_limiter_stream_takes_rate_cells_and_ends_on_close() {
    let clock = ManualClock::new();
    let limiter = Limiter::builder()
        .concurrency(1)
        .rate(Quota::per_second(2))
        .clock(clock.clone())
        .build()
        .unwrap();
    let mut paced = Polled::new(limiter.throttle(stream::iter(0..5)));
    assert_eq!(paced.next(), Poll::Ready(Some(0)));
    assert_eq!(
        limiter.available_slots(),
        Some(1),
        "concurrency does not apply to yielded items"
    );
    assert_eq!(paced.next(), Poll::Pending);
    clock.advance(Duration::from_millis(500));
    assert_eq!(paced.next(), Poll::Ready(Some(1)));
    assert_eq!(paced.next(), Poll::Pending);
    limiter.close();
    assert_eq!(paced.wakes(), 2);
    assert_eq!(paced.next(), Poll::Ready(None));
    assert!(paced.stream.is_terminated());
    assert_eq!(limiter.available_slots(), Some(1));
}

#[test]
fn throttle_is_send_sync_and_debug() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    let limiter = RateLimiter::with_clock(Quota::per_second(1), ManualClock::new());
    let paced = limiter.throttle(stream::iter(0..3));
    send_sync(&paced);
    assert_eq!(
        format!("{paced:?}"),
        "Throttle { waiting: false, done: false, .. }"
    );
    let limiter = Limiter::builder().concurrency(1).build().unwrap();
    send_sync(&limiter.throttle(stream::iter(0..3)));
}
