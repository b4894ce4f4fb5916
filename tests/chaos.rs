//! Chaos: thousands of acquires on a two-worker tokio runtime, each under a
//! random timeout, so futures are cancelled for real at every await point
//! (queued, granted but not yet polled, holding the permit). Mixed weights;
//! one run closes the semaphore halfway. At the end every permit must be
//! back, no task may hang, and the permits held at once never exceed the
//! capacity.
//!
//! Each scenario runs on its own thread under a watchdog, so a lost wake-up
//! fails the test with the semaphore's state instead of hanging CI.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use limiters::{AcquireError, BoundedSemaphore, OwnedPermit, Permit, Semaphore};

#[path = "../fuzz/src/sem.rs"]
#[allow(dead_code)]
mod sem;
use sem::Sem;

const TASKS: u64 = 10_000;
const CAPACITY: usize = 8;
/// Far above the few hundred milliseconds a run takes, far below CI's limit.
const WATCHDOG: Duration = Duration::from_secs(30);

/// A small deterministic generator (xorshift64*), one per task.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What happened to the tasks.
#[derive(Default)]
struct Outcomes {
    acquired: AtomicUsize,
    closed: AtomicUsize,
    timed_out_queued: AtomicUsize,
    timed_out_holding: AtomicUsize,
    /// Permits held right now (by tasks that got them), and the most ever.
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl Outcomes {
    /// Counts how a task's `work` (timed out, or ended with `result`) came
    /// out; `holding` says whether it had got its permits. Any error other
    /// than `Closed` fails the test, naming `what`.
    fn record(
        &self,
        result: Result<Result<(), AcquireError>, tokio::time::error::Elapsed>,
        holding: &AtomicBool,
        what: &str,
    ) {
        let counter = match result {
            Ok(Ok(())) => &self.acquired,
            Ok(Err(AcquireError::Closed)) => &self.closed,
            Ok(Err(e)) => panic!("{what}: {e}"),
            Err(_) if holding.load(Ordering::SeqCst) => &self.timed_out_holding,
            Err(_) => &self.timed_out_queued,
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

/// Counts a task's permits as in flight until dropped, even when the task
/// is cancelled while holding them.
struct InFlight<'a> {
    out: &'a Outcomes,
    n: usize,
}

impl<'a> InFlight<'a> {
    fn new(out: &'a Outcomes, n: usize) -> Self {
        let now = out.in_flight.fetch_add(n, Ordering::SeqCst) + n;
        out.max_in_flight.fetch_max(now, Ordering::SeqCst);
        assert!(
            now <= CAPACITY,
            "{now} permits held at once, capacity {CAPACITY}"
        );
        InFlight { out, n }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.out.in_flight.fetch_sub(self.n, Ordering::SeqCst);
    }
}

/// Runs `scenario` on its own thread; fails (instead of hanging) if it does
/// not finish within the watchdog, printing `state()`.
fn with_watchdog(name: &str, state: impl Fn() -> String, scenario: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        scenario();
        let _ = done.send(());
    });
    match finished.recv_timeout(WATCHDOG) {
        Ok(()) => worker.join().unwrap(),
        // The scenario panicked: re-raise its panic.
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(worker.join().unwrap_err())
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{name}: hung for {WATCHDOG:?}; state: {}", state())
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

/// A request weight: mostly 1..=3, sometimes 0 or the whole capacity.
fn weight(rng: &mut Rng) -> usize {
    match rng.below(20) {
        0 => 0,
        1 => CAPACITY,
        k => 1 + (k as usize % 3),
    }
}

/// Holds the permit for a while, across several await points.
async fn hold(rng: &mut Rng) {
    for _ in 0..rng.below(3) {
        tokio::task::yield_now().await;
    }
    if rng.below(2) == 0 {
        tokio::time::sleep(Duration::from_micros(rng.below(1500))).await;
    }
}

/// What a chaos run drives: a semaphore or a limiter.
trait Target: Clone + Send + Sync + 'static {
    fn describe(&self) -> String;
    fn close(&self);
}

impl Target for Limiter {
    fn describe(&self) -> String {
        format!("{self:?}")
    }
    fn close(&self) {
        Limiter::close(self);
    }
}

/// Runs `TASKS` tasks of `task` against `target` on the two-worker runtime
/// under the watchdog, closing `target` after `close_after` if given.
fn drive<T, F>(
    name: &'static str,
    target: T,
    close_after: Option<Duration>,
    task: fn(T, Arc<Outcomes>, u64) -> F,
) -> Arc<Outcomes>
where
    T: Target,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let out = Arc::new(Outcomes::default());
    let (watched, out2) = (target.clone(), Arc::clone(&out));
    with_watchdog(
        name,
        move || watched.describe(),
        move || {
            runtime().block_on(async {
                let tasks: Vec<_> = (0..TASKS)
                    .map(|i| tokio::spawn(task(target.clone(), Arc::clone(&out2), i)))
                    .collect();
                if let Some(after) = close_after {
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        target.close();
                    });
                }
                for t in tasks {
                    t.await.expect("task panicked");
                }
            });
        },
    );
    out
}

/// Every task ended one way, every way happened, nothing is held.
fn check_outcomes(name: &str, out: &Outcomes, acquired: &str) {
    let count = |a: &AtomicUsize| a.load(Ordering::SeqCst);
    eprintln!(
        "{name}: {acquired} {}, closed {}, timed out queued {}, timed out holding {}, most in flight {}",
        count(&out.acquired),
        count(&out.closed),
        count(&out.timed_out_queued),
        count(&out.timed_out_holding),
        count(&out.max_in_flight),
    );
    assert_eq!(
        count(&out.acquired)
            + count(&out.closed)
            + count(&out.timed_out_queued)
            + count(&out.timed_out_holding),
        TASKS as usize
    );
    // Every path was taken, not just the easy one.
    assert!(count(&out.acquired) > 0);
    assert!(count(&out.timed_out_queued) > 0);
    assert!(count(&out.timed_out_holding) > 0);
    assert_eq!(count(&out.in_flight), 0);
}

impl Target for Sem {
    fn describe(&self) -> String {
        Sem::describe(self)
    }
    fn close(&self) {
        Sem::close(self)
    }
}

enum Held<'a> {
    Borrowed(Permit<'a>),
    Owned(OwnedPermit),
}

impl Held<'_> {
    fn num_permits(&self) -> usize {
        match self {
            Held::Borrowed(p) => p.num_permits(),
            Held::Owned(p) => p.num_permits(),
        }
    }
    fn forget(self) {
        match self {
            Held::Borrowed(p) => p.forget(),
            Held::Owned(p) => p.forget(),
        }
    }
}

/// Permits detached with `forget`, given back with `release` when dropped
/// (a callback-style API), also when the task is cancelled.
struct Detached<'a>(&'a BoundedSemaphore, usize);

impl Drop for Detached<'_> {
    fn drop(&mut self) {
        self.0
            .release(self.1)
            .expect("releasing permits this task detached");
    }
}

/// One task: start at a random moment, acquire under a random timeout, hold
/// across await points, release.
async fn task(sem: Sem, out: Arc<Outcomes>, seed: u64) {
    let mut rng = Rng::new(seed);
    tokio::time::sleep(Duration::from_micros(rng.below(300_000))).await;
    let n = weight(&mut rng);
    let owned = rng.below(2) == 0;
    // One task in ten has no timeout: it must finish on its own, so a lost
    // wake-up hangs it and the watchdog reports it.
    let deadline = match rng.below(10) {
        0 => Duration::MAX,
        _ => Duration::from_micros(rng.below(4000)),
    };
    let holding = AtomicBool::new(false);
    let work = async {
        let permit = if owned {
            Held::Owned(sem.acquire_many_owned(n).await?)
        } else {
            Held::Borrowed(sem.acquire_many(n).await?)
        };
        assert_eq!(permit.num_permits(), n);
        holding.store(true, Ordering::SeqCst);
        match &sem {
            // Sometimes detach the permits and give them back by hand.
            Sem::Bounded(bs) if rng.below(4) == 0 => {
                permit.forget();
                let _detached = Detached(bs, n);
                // Declared last, dropped first: counted out before release.
                let _in_flight = InFlight::new(&out, n);
                hold(&mut rng).await;
            }
            _ => {
                let _in_flight = InFlight::new(&out, n);
                hold(&mut rng).await;
                drop(_in_flight);
                drop(permit);
            }
        }
        Ok::<(), AcquireError>(())
    };
    let result = tokio::time::timeout(deadline, work).await;
    out.record(result, &holding, &format!("acquire_many({n})"));
}

/// Runs the chaos on `sem` (closing it after `close_after`, if given) and
/// checks that every permit is back.
fn chaos(name: &'static str, sem: Sem, close_after: Option<Duration>) {
    let out = drive(name, sem.clone(), close_after, task);
    check_outcomes(name, &out, "acquired");
    // Every permit is back, nobody is queued.
    assert_eq!(sem.available_permits(), CAPACITY, "{}", sem.describe());
    assert_eq!(sem.waiters(), 0, "{}", sem.describe());
    if let Sem::Bounded(bs) = &sem {
        assert_eq!(bs.detached(), 0);
        assert_eq!(bs.in_use(), 0);
    }
    let again = futures_lite::future::block_on(sem.acquire_many(CAPACITY));
    if close_after.is_some() {
        assert!(
            out.closed.load(Ordering::SeqCst) > 0,
            "the close hit waiters"
        );
        assert_eq!(again.unwrap_err(), AcquireError::Closed);
    } else {
        assert_eq!(again.unwrap().num_permits(), CAPACITY);
    }
}

#[test]
fn semaphore_survives_ten_thousand_cancelled_acquires() {
    chaos(
        "semaphore",
        Sem::Plain(Arc::new(Semaphore::new(CAPACITY))),
        None,
    );
}

#[test]
fn semaphore_survives_a_close_in_the_middle_of_the_chaos() {
    chaos(
        "semaphore with close",
        Sem::Plain(Arc::new(Semaphore::new(CAPACITY))),
        Some(Duration::from_millis(150)),
    );
}

#[test]
fn bounded_semaphore_survives_chaos_with_forget_and_release() {
    chaos(
        "bounded",
        Sem::Bounded(Arc::new(BoundedSemaphore::new(CAPACITY))),
        None,
    );
}

// --- the composite Limiter ---

use limiters::{Limiter, Quota};

/// One `run` through the limiter: start at a random moment, under a random
/// timeout (so it is cancelled queued for a slot, in the hold queue, as the
/// sleeping head of the rate queue, or while its work runs), and count its
/// slot as in flight while the work runs.
async fn limiter_task(limiter: Limiter, out: Arc<Outcomes>, seed: u64) {
    let mut rng = Rng::new(seed);
    tokio::time::sleep(Duration::from_micros(rng.below(200_000))).await;
    let deadline = match rng.below(10) {
        0 => Duration::MAX,
        _ => Duration::from_micros(rng.below(3000)),
    };
    let holding = AtomicBool::new(false);
    let run = limiter.run(async {
        holding.store(true, Ordering::SeqCst);
        let _in_flight = InFlight::new(&out, 1);
        hold(&mut rng).await;
    });
    out.record(tokio::time::timeout(deadline, run).await, &holding, "run");
}

/// Runs the limiter chaos (closing after `close_after`, if given) and checks
/// that every slot comes back and a fresh request gets through.
fn limiter_chaos(name: &'static str, limiter: Limiter, close_after: Option<Duration>) {
    let out = drive(name, limiter.clone(), close_after, limiter_task);
    check_outcomes(name, &out, "ran");
    // Every slot is back once the last minimum hold is over (real time: the
    // hold is a duration, not a synchronisation).
    let until = std::time::Instant::now() + limiter.min_hold() + Duration::from_secs(5);
    while limiter.available_slots() != Some(CAPACITY) {
        assert!(
            std::time::Instant::now() < until,
            "{name}: slots not back: {limiter:?}"
        );
        std::thread::yield_now();
    }
    let again = futures_lite::future::block_on(limiter.acquire());
    if close_after.is_some() {
        assert!(
            out.closed.load(Ordering::SeqCst) > 0,
            "the close hit waiters"
        );
        assert_eq!(again.unwrap_err(), AcquireError::Closed);
    } else {
        assert_eq!(again.unwrap().weight(), 1);
    }
}

fn fast_limiter(min_hold: Duration) -> Limiter {
    Limiter::builder()
        .concurrency(CAPACITY)
        .rate(Quota::per_second(100_000).allow_burst(20))
        .rate(Quota::per_second(50_000).allow_burst(50))
        .min_hold(min_hold)
        .build()
        .unwrap()
}

#[test]
fn limiter_survives_ten_thousand_cancelled_runs() {
    limiter_chaos("limiter", fast_limiter(Duration::ZERO), None);
}

#[test]
fn limiter_with_min_hold_survives_chaos() {
    limiter_chaos(
        "limiter with min_hold",
        fast_limiter(Duration::from_micros(200)),
        None,
    );
}

#[test]
fn limiter_survives_a_close_in_the_middle_of_the_chaos() {
    limiter_chaos(
        "limiter with close",
        fast_limiter(Duration::ZERO),
        Some(Duration::from_millis(100)),
    );
}
