//! Loom models of the rate limiter's state machine on `ManualClock`: real
//! threads racing checks, reservations, cancels, quota changes and pauses.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release`.

#[cfg(loom)]
mod models {
    use std::future::Future;
    use std::sync::Arc;
    use std::task::{Context, Waker};
    use std::time::Duration;

    use limiters::{ManualClock, Quota, RateLimiter};
    use loom::future::block_on;
    use loom::thread;

    fn limiter(quota: Quota) -> (ManualClock, Arc<RateLimiter<ManualClock>>) {
        let clock = ManualClock::new();
        (
            clock.clone(),
            Arc::new(RateLimiter::with_clock(quota, clock)),
        )
    }

    /// Three concurrent checks at one instant admit exactly the burst, as
    /// every sequential order of them does.
    #[test]
    fn concurrent_checks_admit_what_a_sequential_order_admits() {
        loom::model(|| {
            let (_clock, rl) = limiter(Quota::per_second(10).allow_burst(2));
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let rl = rl.clone();
                    thread::spawn(move || rl.check().is_ok())
                })
                .collect();
            let mine = rl.check().is_ok();
            let admitted = threads
                .into_iter()
                .map(|t| t.join().unwrap())
                .chain([mine])
                .filter(|ok| *ok)
                .count();
            assert_eq!(admitted, 2);
        });
    }

    /// `check_n(2)` racing `check()` with a burst of 2: exactly one of them
    /// wins, as in either sequential order.
    #[test]
    fn check_n_racing_check_is_linearizable() {
        loom::model(|| {
            let (_clock, rl) = limiter(Quota::per_second(10).allow_burst(2));
            let rl2 = rl.clone();
            let t = thread::spawn(move || rl2.check_n(2).is_ok());
            let one = rl.check().is_ok();
            let two = t.join().unwrap();
            assert!(one ^ two, "check {one}, check_n(2) {two}");
        });
    }

    /// Checks racing the first quota change, which moves the limiter from
    /// its 8-byte word to the 16-byte one: no cell is admitted twice or
    /// lost, whichever check lands on which word.
    #[test]
    fn checks_racing_the_move_to_the_wide_word_admit_exactly_the_burst() {
        loom::model(|| {
            let quota = Quota::per_second(10).allow_burst(2);
            let (_clock, rl) = limiter(quota);
            let rl2 = rl.clone();
            let t = thread::spawn(move || {
                usize::from(rl2.check().is_ok()) + usize::from(rl2.check().is_ok())
            });
            // The same quota: the credit used is kept as it is.
            rl.set_quota(quota);
            let mine = usize::from(rl.check().is_ok());
            assert_eq!(t.join().unwrap() + mine, 2);
        });
    }

    /// A reservation cancelled while a check races it: the check is never
    /// admitted early, and the refundable cell comes back.
    #[test]
    fn reserve_cancel_racing_check_neither_over_admits_nor_loses_a_cell() {
        loom::model(|| {
            let (clock, rl) = limiter(Quota::per_second(1));
            rl.check().unwrap();
            let rl2 = rl.clone();
            let t = thread::spawn(move || {
                let r = rl2.reserve_many(1).unwrap();
                r.cancel();
            });
            assert!(rl.check().is_err());
            t.join().unwrap();
            // Refunded: the next cell is at 1 s, not 2 s.
            clock.advance(Duration::from_secs(1));
            assert!(rl.check().is_ok());
            assert!(rl.check().is_err());
        });
    }

    /// Two reservations, one cancelled: whether its cell comes back depends
    /// on the order, and the kept one is never doubled up with a check.
    #[test]
    fn cancel_refunds_only_what_no_later_reservation_depends_on() {
        loom::model(|| {
            let (clock, rl) = limiter(Quota::per_second(1));
            rl.check().unwrap();
            let rl2 = rl.clone();
            let t = thread::spawn(move || rl2.reserve_many(1).unwrap().cancel());
            let kept = rl.reserve_many(1).unwrap();
            t.join().unwrap();
            let kept_at = kept.ready_at().as_nanos();
            assert!(kept_at == 1_000_000_000 || kept_at == 2_000_000_000);
            clock.advance(Duration::from_secs(2));
            // At 2 s a check is admitted only if the kept reservation is not
            // also there (burst 1).
            assert_eq!(rl.check().is_ok(), kept_at == 1_000_000_000);
        });
    }

    /// `pause_for` racing a waiting `acquire`: the acquire is admitted no
    /// earlier than the end of the pause.
    #[test]
    fn pause_racing_acquire_holds() {
        loom::model(|| {
            let (clock, rl) = limiter(Quota::per_second(1));
            rl.check().unwrap();
            let (rl1, clock1) = (rl.clone(), clock.clone());
            let waiter = thread::spawn(move || {
                block_on(rl1.acquire());
                clock1.now().as_nanos()
            });
            let rl2 = rl.clone();
            thread::spawn(move || rl2.pause_for(Duration::from_secs(2)))
                .join()
                .unwrap();
            for _ in 0..3 {
                clock.advance(Duration::from_secs(1));
            }
            let admitted_at = waiter.join().unwrap();
            assert!(admitted_at >= 2_000_000_000, "admitted at {admitted_at} ns");
        });
    }

    /// `set_quota` racing a waiting `acquire`: re-timed to the new quota
    /// whichever comes first, and admitted.
    #[test]
    fn set_quota_racing_acquire_retimes_it() {
        loom::model(|| {
            let (clock, rl) = limiter(Quota::per_second(1));
            rl.check().unwrap();
            let (rl1, clock1) = (rl.clone(), clock.clone());
            let waiter = thread::spawn(move || {
                block_on(rl1.acquire());
                clock1.now().as_nanos()
            });
            let rl2 = rl.clone();
            thread::spawn(move || rl2.set_quota(Quota::per_second(2)))
                .join()
                .unwrap();
            clock.advance(Duration::from_millis(499));
            clock.advance(Duration::from_millis(1));
            let admitted_at = waiter.join().unwrap();
            assert_eq!(admitted_at, 500_000_000);
            // The new quota applies after it: next cell at 1 s.
            assert_eq!(
                rl.check().unwrap_err().wait_time(),
                Duration::from_millis(500)
            );
        });
    }

    /// Two acquirers queued (the list's plainest use with more than one
    /// node), then waiting in threads of their own while the clock reaches
    /// their cells: both are admitted (the model would deadlock on a lost
    /// wake-up) and spend exactly their cells.
    #[test]
    fn two_queued_acquirers_racing_the_clock() {
        loom::model(|| {
            let (clock, rl) = limiter(Quota::per_second(1));
            rl.check().unwrap();
            let waiters = [queued(&rl), queued(&rl)].map(wait_in_thread);
            for _ in 0..2 {
                clock.advance(Duration::from_secs(1));
            }
            for t in waiters {
                t.join().unwrap();
            }
            assert_eq!(rl.stats().waiters, 0);
            // Cells at 1 s and 2 s spent: the next is at 3 s.
            assert_eq!(rl.check().unwrap_err().wait_time(), Duration::from_secs(1));
        });
    }

    /// Two queued acquirers waiting in their threads, racing a third that
    /// queues behind them and is cancelled: the cancelled cell, the last,
    /// is given back, and both acquirers are admitted.
    #[test]
    fn two_queued_acquirers_racing_a_cancel() {
        loom::model(|| {
            let (clock, rl) = limiter(Quota::per_second(1));
            rl.check().unwrap();
            let waiters = [queued(&rl), queued(&rl)].map(wait_in_thread);
            let canceller = {
                let rl = rl.clone();
                thread::spawn(move || {
                    let mut fut = std::pin::pin!(rl.acquire());
                    let pending = fut
                        .as_mut()
                        .poll(&mut Context::from_waker(Waker::noop()))
                        .is_pending();
                    assert!(pending, "queued behind the others");
                })
            };
            canceller.join().unwrap();
            for _ in 0..2 {
                clock.advance(Duration::from_secs(1));
            }
            for t in waiters {
                t.join().unwrap();
            }
            assert_eq!(rl.stats().waiters, 0);
            // The refund makes 3 s the next cell again: nothing is lost.
            assert_eq!(rl.check().unwrap_err().wait_time(), Duration::from_secs(1));
        });
    }

    /// Two queued acquirers waiting in their threads, racing a `set_quota`
    /// that doubles the rate: both are re-timed (to 0.5 s and 1 s) however
    /// the change interleaves with their polls, and admitted then.
    #[test]
    fn two_queued_acquirers_racing_set_quota() {
        loom::model(|| {
            let (clock, rl) = limiter(Quota::per_second(1));
            rl.check().unwrap();
            let waiters = [queued(&rl), queued(&rl)].map(wait_in_thread);
            let rl2 = rl.clone();
            thread::spawn(move || rl2.set_quota(Quota::per_second(2)))
                .join()
                .unwrap();
            for _ in 0..2 {
                clock.advance(Duration::from_millis(500));
            }
            for t in waiters {
                t.join().unwrap();
            }
            assert_eq!(rl.stats().waiters, 0);
            // Cells at 0.5 s and 1 s spent: the next is at 1.5 s.
            assert_eq!(
                rl.check().unwrap_err().wait_time(),
                Duration::from_millis(500)
            );
        });
    }

    type Waiting = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

    /// An `acquire` of one cell, polled once here: it is queued.
    fn queued(rl: &Arc<RateLimiter<ManualClock>>) -> Waiting {
        let rl = rl.clone();
        let mut fut: Waiting = Box::pin(async move { rl.acquire().await });
        let pending = fut
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending();
        assert!(pending, "the burst is spent: it queues");
        fut
    }

    /// Waits for `fut` in a thread of its own.
    fn wait_in_thread(fut: Waiting) -> thread::JoinHandle<()> {
        thread::spawn(move || block_on(fut))
    }
}
