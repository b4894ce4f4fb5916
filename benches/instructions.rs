//! Instructions per operation: the figure that does not drift with the load
//! of a shared machine. `benches/instructions.sh` runs this binary under
//! valgrind's callgrind, which counts the instructions executed inside each
//! call of [`counted`] (and nothing else); the script divides by [`ITERS`],
//! compares `limiters`' rows with `benches/instruction-budgets.txt` and fails
//! when one grew more than 10%.
//!
//! Every operation runs single-threaded on a warm object, the way the
//! criterion benches time it, and futures are polled by hand with a no-op
//! waker: the count is the library's work, with no executor in it. Each row is
//! `operation implementation`; the peers (tokio, governor, a tokio semaphore +
//! governor pair) run the same operation for the ratio.
//!
//! Clock reads: `SystemClock` and governor's default clock are read for real
//! (under valgrind a `clock_gettime` through the vDSO costs its instructions,
//! a TSC read is one instruction), the `*_manual_clock` rows take the clock
//! out of the count.
//!
//! Run alone (`cargo bench --bench instructions`) it only executes the loops
//! and prints the row names, in the order callgrind dumps them.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

// The admit-all quotas of the timed benches, alone (the rest of `support`
// is criterion's and tokio's).
#[path = "support/quota.rs"]
mod quota;
use quota::{admit_all, governor_admit_all, nz};

/// Operations per measured call: enough that the loop and the call around
/// it vanish in the division (they cost a few instructions in all).
const ITERS: u64 = 2_000;

/// Distinct keys in the many-keys keyed row.
const KEYS: u64 = 10_000;

/// Runs `op` [`ITERS`] times. Callgrind collects only inside this function
/// (`--toggle-collect`) and writes one profile after each call
/// (`--dump-after`), so each row gets its own count. Never inlined, so the
/// symbol exists for callgrind to match.
#[inline(never)]
fn counted(mut op: impl FnMut()) {
    for _ in 0..ITERS {
        op();
    }
}

/// Prints the row name, warms `op` up (first-call costs such as a lazily
/// initialised clock or thread-local stay out of the count), then measures.
fn row(operation: &str, implementation: &str, mut op: impl FnMut()) {
    println!("{operation} {implementation}");
    for _ in 0..16 {
        op();
    }
    counted(op);
}

/// Polls `fut` once with a no-op waker; an uncontended operation must be
/// ready at once.
fn ready<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("an uncontended operation must complete on its first poll"),
    }
}

fn token_bucket(max: u32, initial: u32, refill: u32, interval: Duration) -> limiters::TokenBucket {
    limiters::TokenBucket::builder()
        .max(max)
        .initial(initial)
        .refill(refill)
        .interval(interval)
        .build()
        .expect("token bucket")
}

fn semaphores() {
    let sem = limiters::Semaphore::new(1);
    row("try_acquire_drop", "limiters", || {
        drop(black_box(sem.try_acquire().unwrap()))
    });
    let bounded = limiters::BoundedSemaphore::new(1);
    row("try_acquire_drop", "limiters_bounded", || {
        drop(black_box(bounded.try_acquire().unwrap()))
    });
    let tokio_sem = tokio::sync::Semaphore::new(1);
    row("try_acquire_drop", "tokio", || {
        drop(black_box(tokio_sem.try_acquire().unwrap()))
    });

    row("acquire_await_drop", "limiters", || {
        drop(black_box(ready(sem.acquire()).unwrap()))
    });
    row("acquire_await_drop", "limiters_bounded", || {
        drop(black_box(ready(bounded.acquire()).unwrap()))
    });
    row("acquire_await_drop", "tokio", || {
        drop(black_box(ready(tokio_sem.acquire()).unwrap()))
    });

    // Contended: the permit is held, so `acquire` queues; dropping the
    // holder hands the permit to it under the lock; the second poll finds
    // it granted. The wait list's whole hot path: link, hand-off, unlink.
    row("acquire_queued_handoff", "limiters", || {
        let held = sem.try_acquire().unwrap();
        drop(black_box(queued_then_granted(sem.acquire(), held)))
    });
    row("acquire_queued_handoff", "tokio", || {
        let held = tokio_sem.try_acquire().unwrap();
        drop(black_box(queued_then_granted(tokio_sem.acquire(), held)))
    });
}

/// Polls `fut` (which must queue), drops `held` (which must grant it), and
/// polls it again.
fn queued_then_granted<F: Future, H>(fut: F, held: H) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    assert!(fut.as_mut().poll(&mut cx).is_pending(), "must queue");
    drop(held);
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("dropping the holder must grant the queued acquire"),
    }
}

fn rate() {
    let rl = limiters::RateLimiter::new(admit_all());
    row("check_admit", "limiters", || black_box(rl.check()).unwrap());
    let tb = token_bucket(u32::MAX, u32::MAX, u32::MAX, Duration::from_millis(1));
    row("check_admit", "limiters_token_bucket", || {
        black_box(tb.check()).unwrap()
    });
    let gov = governor::RateLimiter::direct(governor_admit_all());
    row("check_admit", "governor", || {
        black_box(gov.check()).unwrap()
    });

    // One cell per hour, spent up front: every later check denies.
    let rl = limiters::RateLimiter::new(limiters::Quota::per_hour(1));
    rl.check().unwrap();
    row("check_deny", "limiters", || {
        black_box(rl.check()).unwrap_err();
    });
    let tb = token_bucket(1, 0, 1, Duration::from_secs(3600));
    row("check_deny", "limiters_token_bucket", || {
        black_box(tb.check()).unwrap_err();
    });
    let gov = governor::RateLimiter::direct(governor::Quota::per_hour(nz(1)));
    gov.check().unwrap();
    row("check_deny", "governor", || {
        black_box(gov.check()).unwrap_err();
    });

    let fake = governor::clock::FakeRelativeClock::default();
    let rl = limiters::RateLimiter::with_clock(admit_all(), limiters::ManualClock::new());
    row("check_admit_manual_clock", "limiters", || {
        black_box(rl.check()).unwrap()
    });
    let gov = governor::RateLimiter::direct_with_clock(governor_admit_all(), fake.clone());
    row("check_admit_manual_clock", "governor", || {
        black_box(gov.check()).unwrap()
    });
    let rl = limiters::RateLimiter::with_clock(
        limiters::Quota::per_hour(1),
        limiters::ManualClock::new(),
    );
    rl.check().unwrap();
    row("check_deny_manual_clock", "limiters", || {
        black_box(rl.check()).unwrap_err();
    });
    let gov = governor::RateLimiter::direct_with_clock(governor::Quota::per_hour(nz(1)), fake);
    gov.check().unwrap();
    row("check_deny_manual_clock", "governor", || {
        black_box(gov.check()).unwrap_err();
    });
}

fn keyed() {
    for (operation, keys) in [("keyed_check_1", 1), ("keyed_check_10k", KEYS)] {
        let rl = limiters::KeyedRateLimiter::<u64>::new(admit_all());
        for k in 0..keys {
            rl.check(&k).unwrap();
        }
        let mut key = 0;
        row(operation, "limiters", || {
            key = (key + 1) % keys;
            black_box(rl.check(black_box(&key))).unwrap()
        });
        let gov = governor::RateLimiter::keyed(governor_admit_all());
        for k in 0..keys {
            gov.check_key(&k).unwrap();
        }
        let mut key = 0;
        row(operation, "governor", || {
            key = (key + 1) % keys;
            black_box(gov.check_key(black_box(&key))).unwrap()
        });
    }
}

fn composite() {
    let limiter = limiters::Limiter::builder()
        .concurrency(16)
        .rate(admit_all())
        .build()
        .expect("limiter");
    let mut i = 0u64;
    row("run_uncontended", "limiters", || {
        i += 1;
        black_box(ready(limiter.run(async { black_box(i) })).unwrap());
    });

    // A key's limiter under a global one (the fair turn across keys must
    // cost little here): one key, neither limit ever waits.
    let keyed = limiters::KeyedLimiter::<u64>::new(
        limiters::Limiter::builder()
            .concurrency(16)
            .rate(admit_all()),
    )
    .expect("keyed")
    .with_global(
        limiters::Limiter::builder()
            .concurrency(64)
            .rate(admit_all())
            .build()
            .expect("global"),
    );
    row("keyed_run_uncontended", "limiters", || {
        i += 1;
        black_box(ready(keyed.run(&1, async { black_box(i) })).unwrap());
    });

    // What a user writes by hand without the composite: a tokio semaphore
    // for concurrency, then governor for the rate.
    let sem = tokio::sync::Semaphore::new(16);
    let gov = governor::RateLimiter::direct(governor_admit_all());
    row("run_uncontended", "tokio_semaphore_governor", || {
        i += 1;
        black_box(ready(async {
            let permit = sem.acquire().await.unwrap();
            gov.until_ready().await;
            let out = async { black_box(i) }.await;
            drop(permit);
            out
        }));
    });
}

/// Contended: the one slot is held, so `run` queues for it; dropping the
/// holder hands the slot over and the second poll passes the rate and
/// runs. The holder is taken the same way (slot and rate) by both.
fn composite_queued() {
    let mut i = 0u64;
    let limiter = limiters::Limiter::builder()
        .concurrency(1)
        .rate(admit_all())
        .build()
        .expect("limiter");
    row("run_queued_handoff", "limiters", || {
        i += 1;
        let held = ready(limiter.acquire()).unwrap();
        black_box(queued_then_granted(limiter.run(async { black_box(i) }), held).unwrap());
    });
    let sem = tokio::sync::Semaphore::new(1);
    let gov = governor::RateLimiter::direct(governor_admit_all());
    row("run_queued_handoff", "tokio_semaphore_governor", || {
        i += 1;
        let held = ready(async {
            let permit = sem.acquire().await.unwrap();
            gov.until_ready().await;
            permit
        });
        black_box(queued_then_granted(
            async {
                let permit = sem.acquire().await.unwrap();
                gov.until_ready().await;
                let out = async { black_box(i) }.await;
                drop(permit);
                out
            },
            held,
        ));
    });
}

fn main() {
    // The loop alone: what every row's figure includes besides the operation.
    row("empty_loop", "baseline", || black_box(()));
    semaphores();
    rate();
    keyed();
    composite();
    composite_queued();
}
