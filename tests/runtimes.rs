//! The same scenarios under every runtime (tokio, smol, async-std,
//! `futures_lite::future::block_on`, plain threads): nothing in the crate
//! knows an executor.
//!
//! * 200 jobs through `sem.run(..)` and through a composite
//!   `Limiter::run(..)` with a limit of 10: each runtime must see at most 10
//!   (and, since jobs hold their slot until the tenth holder arrives,
//!   exactly 10) running at once, and every job must complete.
//! * The rate limiters on the real `SystemClock` complete, in FIFO order.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use limiters::{Limiter, Quota, Semaphore};

const JOBS: usize = 200;
const LIMIT: usize = 10;

#[derive(Default)]
struct Counts {
    inside: AtomicUsize,
    peak: AtomicUsize,
    done: AtomicUsize,
}

impl Counts {
    fn enter(&self) {
        let now = self.inside.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }

    /// Hold on until the limit is reached (or every remaining job is
    /// inside), so the peak is a real observation, not luck.
    fn should_hold(&self) -> bool {
        self.peak.load(Ordering::SeqCst) < LIMIT
            && self.done.load(Ordering::SeqCst) + self.inside.load(Ordering::SeqCst) < JOBS
    }

    fn leave(&self) {
        self.inside.fetch_sub(1, Ordering::SeqCst);
        self.done.fetch_add(1, Ordering::SeqCst);
    }

    fn check(&self, sem: &Semaphore) {
        assert_eq!(self.peak.load(Ordering::SeqCst), LIMIT);
        assert_eq!(self.done.load(Ordering::SeqCst), JOBS);
        assert_eq!(sem.available_permits(), LIMIT);
        assert_eq!(sem.waiters(), 0);
    }
}

type Yield = Pin<Box<dyn Future<Output = ()> + Send>>;
/// One job: waits for its slot, works, returns 1.
type Job = Pin<Box<dyn Future<Output = usize> + Send>>;

/// What a job does while it holds its slot.
async fn work(counts: &Counts, yield_now: fn() -> Yield) {
    counts.enter();
    while counts.should_hold() {
        yield_now().await;
    }
    yield_now().await;
    counts.leave();
}

/// Runs `JOBS` jobs made by `make` as tasks on a two-worker tokio runtime.
fn on_tokio(make: impl Fn(fn() -> Yield) -> Job) -> usize {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let yield_now: fn() -> Yield = || Box::pin(tokio::task::yield_now());
        let handles: Vec<_> = (0..JOBS).map(|_| tokio::spawn(make(yield_now))).collect();
        let mut total = 0;
        for h in handles {
            total += h.await.unwrap();
        }
        total
    })
}

/// The same on a smol executor.
fn on_smol(make: impl Fn(fn() -> Yield) -> Job) -> usize {
    let ex = smol::Executor::new();
    smol::block_on(ex.run(async {
        let yield_now: fn() -> Yield = || Box::pin(smol::future::yield_now());
        let tasks: Vec<_> = (0..JOBS).map(|_| ex.spawn(make(yield_now))).collect();
        let mut total = 0;
        for t in tasks {
            total += t.await;
        }
        total
    }))
}

/// The same as async-std tasks.
fn on_async_std(make: impl Fn(fn() -> Yield) -> Job) -> usize {
    async_std::task::block_on(async {
        let yield_now: fn() -> Yield = || Box::pin(async_std::task::yield_now());
        let tasks: Vec<_> = (0..JOBS)
            .map(|_| async_std::task::spawn(make(yield_now)))
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await;
        }
        total
    })
}

/// The same, joined inside one `futures_lite::future::block_on`.
fn on_block_on(make: impl Fn(fn() -> Yield) -> Job) -> usize {
    let yield_now: fn() -> Yield = || Box::pin(futures_lite::future::yield_now());
    let jobs = (0..JOBS).map(|_| make(yield_now));
    futures_lite::future::block_on(futures::future::join_all(jobs))
        .into_iter()
        .sum()
}

fn setup() -> (Arc<Semaphore>, Arc<Counts>) {
    (Arc::new(Semaphore::new(LIMIT)), Arc::new(Counts::default()))
}

/// Jobs that pass through `sem.run(..)`.
fn through(sem: &Arc<Semaphore>, counts: &Arc<Counts>) -> impl Fn(fn() -> Yield) -> Job {
    let (sem, counts) = (Arc::clone(sem), Arc::clone(counts));
    move |yield_now| {
        let (sem, counts) = (Arc::clone(&sem), Arc::clone(&counts));
        Box::pin(async move {
            sem.run(work(&counts, yield_now)).await.unwrap();
            1
        })
    }
}

#[test]
fn tokio_multi_thread() {
    let (sem, counts) = setup();
    assert_eq!(on_tokio(through(&sem, &counts)), JOBS);
    counts.check(&sem);
}

#[test]
fn smol() {
    let (sem, counts) = setup();
    assert_eq!(on_smol(through(&sem, &counts)), JOBS);
    counts.check(&sem);
}

#[test]
fn async_std() {
    let (sem, counts) = setup();
    assert_eq!(on_async_std(through(&sem, &counts)), JOBS);
    counts.check(&sem);
}

#[test]
fn futures_lite_block_on() {
    let (sem, counts) = setup();
    assert_eq!(on_block_on(through(&sem, &counts)), JOBS);
    counts.check(&sem);
}

#[test]
fn std_threads_with_acquire_blocking() {
    let (sem, counts) = setup();
    std::thread::scope(|s| {
        for _ in 0..20 {
            s.spawn(|| {
                for _ in 0..JOBS / 20 {
                    let permit = sem.acquire_blocking().unwrap();
                    counts.enter();
                    while counts.should_hold() {
                        std::thread::yield_now();
                    }
                    counts.leave();
                    drop(permit);
                }
            });
        }
    });
    counts.check(&sem);
}

/// The rate limiters with the real `SystemClock` under every runtime: they
/// complete, in order. (Precise timing belongs to the benchmarks.)
mod rate {
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
}

/// The composite `Limiter` (concurrency + a rate on the real clock) through
/// the same 200-job scenario.
mod limiter {
    use super::*;

    fn limiter() -> Limiter {
        Limiter::builder()
            .concurrency(LIMIT)
            .rate(Quota::per_second(100_000).allow_burst(50))
            .build()
            .unwrap()
    }

    /// Jobs that pass through `limiter.run(..)`.
    fn through(limiter: &Limiter, counts: &Arc<Counts>) -> impl Fn(fn() -> Yield) -> Job {
        let (limiter, counts) = (limiter.clone(), Arc::clone(counts));
        move |yield_now| {
            let (limiter, counts) = (limiter.clone(), Arc::clone(&counts));
            Box::pin(async move {
                limiter.run(work(&counts, yield_now)).await.unwrap();
                1
            })
        }
    }

    fn check(counts: &Counts, limiter: &Limiter, total: usize) {
        assert_eq!(total, JOBS);
        assert_eq!(counts.peak.load(Ordering::SeqCst), LIMIT);
        assert_eq!(counts.done.load(Ordering::SeqCst), JOBS);
        assert_eq!(limiter.available_slots(), Some(LIMIT));
    }

    #[test]
    fn tokio_multi_thread() {
        let (l, counts) = (limiter(), Arc::new(Counts::default()));
        check(&counts, &l, on_tokio(through(&l, &counts)));
    }

    #[test]
    fn smol() {
        let (l, counts) = (limiter(), Arc::new(Counts::default()));
        check(&counts, &l, on_smol(through(&l, &counts)));
    }

    #[test]
    fn async_std() {
        let (l, counts) = (limiter(), Arc::new(Counts::default()));
        check(&counts, &l, on_async_std(through(&l, &counts)));
    }

    #[test]
    fn futures_lite_block_on() {
        let (l, counts) = (limiter(), Arc::new(Counts::default()));
        check(&counts, &l, on_block_on(through(&l, &counts)));
    }
}
