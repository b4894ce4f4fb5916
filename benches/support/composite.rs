//! Scenario 7, contended: the one definition `rate.rs` (criterion) and
//! `paired.rs` (alternating pairs) both time. 64 tasks on the shared
//! 2-worker runtime through concurrency 8 and a rate that admits
//! everything, 1,000 runs each, each task's work one `yield_now` (so slots
//! are held across a scheduling point and tasks queue for them).

use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Runtime;

use super::quota::{admit_all, governor_admit_all};
use super::run_tasks;

pub const TASKS: usize = 64;
pub const ROUNDS: usize = 1_000;

/// `Limiter::run` around each task's work; the wall time of one run.
pub fn limiters(rt: &Runtime) -> Duration {
    let limiter = limiters::Limiter::builder()
        .concurrency(8)
        .rate(admit_all())
        .build()
        .expect("limiter");
    run_tasks(rt, TASKS, |_| {
        let limiter = limiter.clone();
        async move {
            for _ in 0..ROUNDS {
                let out = limiter.run(tokio::task::yield_now()).await;
                out.unwrap();
            }
        }
    })
}

/// What a user writes by hand: a tokio `Semaphore` permit, then governor's
/// `until_ready`, around each task's work; the wall time of one run.
pub fn tokio_semaphore_governor(rt: &Runtime) -> Duration {
    let sem = Arc::new(tokio::sync::Semaphore::new(8));
    let gov = Arc::new(governor::RateLimiter::direct(governor_admit_all()));
    run_tasks(rt, TASKS, |_| {
        let (sem, gov) = (Arc::clone(&sem), Arc::clone(&gov));
        async move {
            for _ in 0..ROUNDS {
                let permit = sem.acquire().await.unwrap();
                gov.until_ready().await;
                tokio::task::yield_now().await;
                drop(permit);
            }
        }
    })
}
