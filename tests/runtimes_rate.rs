//! The rate limiters with the real `SystemClock` under every runtime: they
//! complete, in order. (Precise timing belongs to the benchmarks.)

use std::sync::Mutex;
use std::time::Duration;

use limiters::{Quota, RateLimiter, TokenBucket};

/// Ten tasks' worth of acquires and runs at 1000/s: all complete, in the
/// order they first polled.
async fn exercise() {
    let rl = RateLimiter::new(Quota::per_second(1_000).allow_burst(2));
    let order = Mutex::new(Vec::new());
    for i in 0..10 {
        rl.acquire().await;
        rl.run(async { order.lock().unwrap().push(i) }).await;
    }
    rl.acquire_many(2).await.unwrap();
    assert!(rl.acquire_many(3).await.is_err());
    assert_eq!(*order.lock().unwrap(), (0..10).collect::<Vec<_>>());

    let bucket = TokenBucket::builder()
        .max(2)
        .refill(1)
        .interval(Duration::from_millis(1))
        .build()
        .unwrap();
    for _ in 0..5 {
        bucket.acquire().await;
    }
    assert_eq!(bucket.run(async { 7 }).await, 7);
}

/// Ten concurrent waiters, first polled in index order: they are admitted
/// in that order, at 1000/s.
async fn fifo() {
    let rl = RateLimiter::new(Quota::per_second(1_000));
    rl.check().unwrap();
    let order = Mutex::new(Vec::new());
    futures::future::join_all((0..10).map(|i| {
        let (rl, order) = (&rl, &order);
        async move {
            rl.acquire().await;
            order.lock().unwrap().push(i);
        }
    }))
    .await;
    assert_eq!(*order.lock().unwrap(), (0..10).collect::<Vec<_>>());
}

#[test]
fn futures_lite_block_on() {
    futures_lite::future::block_on(exercise());
    futures_lite::future::block_on(fifo());
}

#[tokio::test]
async fn tokio_current_thread() {
    exercise().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_multi_thread() {
    exercise().await;
    fifo().await;
    // Shared across spawned tasks on worker threads.
    let rl = std::sync::Arc::new(RateLimiter::new(Quota::per_second(1_000).allow_burst(5)));
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let rl = rl.clone();
            tokio::spawn(async move { rl.run(async move { i }).await })
        })
        .collect();
    let mut sum = 0;
    for t in tasks {
        sum += t.await.unwrap();
    }
    assert_eq!(sum, 45);
}

#[test]
fn smol() {
    smol::block_on(async {
        exercise().await;
        fifo().await;
    });
}

#[test]
fn async_std() {
    async_std::task::block_on(async {
        exercise().await;
        fifo().await;
    });
}
