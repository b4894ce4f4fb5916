//! The same scenario under every runtime: 200 jobs through `sem.run(..)`
//! with a limit of 10. The semaphore knows no executor, so each runtime must
//! see at most 10 (and, since jobs hold their permit until the tenth holder
//! arrives, exactly 10) running at once, and every job must complete.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use limiters::Semaphore;

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

async fn job(sem: Arc<Semaphore>, counts: Arc<Counts>, yield_now: impl Fn() -> Yield) -> usize {
    sem.run(async {
        counts.enter();
        while counts.should_hold() {
            yield_now().await;
        }
        yield_now().await;
        counts.leave();
    })
    .await
    .unwrap();
    1
}

type Yield = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

fn setup() -> (Arc<Semaphore>, Arc<Counts>) {
    (Arc::new(Semaphore::new(LIMIT)), Arc::new(Counts::default()))
}

#[test]
fn tokio_multi_thread() {
    let (sem, counts) = setup();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let total: usize = rt.block_on(async {
        let handles: Vec<_> = (0..JOBS)
            .map(|_| {
                tokio::spawn(job(sem.clone(), counts.clone(), || {
                    Box::pin(tokio::task::yield_now())
                }))
            })
            .collect();
        let mut total = 0;
        for h in handles {
            total += h.await.unwrap();
        }
        total
    });
    assert_eq!(total, JOBS);
    counts.check(&sem);
}

#[test]
fn smol() {
    let (sem, counts) = setup();
    let total: usize = smol::block_on(async {
        let ex = smol::Executor::new();
        ex.run(async {
            let tasks: Vec<_> = (0..JOBS)
                .map(|_| {
                    ex.spawn(job(sem.clone(), counts.clone(), || {
                        Box::pin(smol::future::yield_now())
                    }))
                })
                .collect();
            let mut total = 0;
            for t in tasks {
                total += t.await;
            }
            total
        })
        .await
    });
    assert_eq!(total, JOBS);
    counts.check(&sem);
}

#[test]
fn async_std() {
    let (sem, counts) = setup();
    let total: usize = async_std::task::block_on(async {
        let tasks: Vec<_> = (0..JOBS)
            .map(|_| {
                async_std::task::spawn(job(sem.clone(), counts.clone(), || {
                    Box::pin(async_std::task::yield_now())
                }))
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await;
        }
        total
    });
    assert_eq!(total, JOBS);
    counts.check(&sem);
}

#[test]
fn futures_lite_block_on() {
    let (sem, counts) = setup();
    let jobs = (0..JOBS).map(|_| {
        job(sem.clone(), counts.clone(), || {
            Box::pin(futures_lite::future::yield_now())
        })
    });
    let results = futures_lite::future::block_on(futures::future::join_all(jobs));
    assert_eq!(results.iter().sum::<usize>(), JOBS);
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
