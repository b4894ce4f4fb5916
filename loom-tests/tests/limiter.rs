//! Loom models of the composite `Limiter` on `ManualClock`: real threads
//! racing `run` and `acquire` (with drops) and `close`; afterwards every slot
//! is back and nothing was lost or duplicated.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release`.

#[cfg(loom)]
mod models {
    use limiters::{AcquireError, Aimd, Limiter, LimiterBuilder, ManualClock, Quota};
    use loom::future::block_on;
    use loom::sync::atomic::{AtomicUsize, Ordering};
    use loom::sync::Arc;
    use loom::thread;
    use std::time::Duration;

    /// One slot, and a rate whose burst covers every request of the model
    /// (so nobody sleeps on the clock, which no thread advances).
    fn limiter() -> Limiter<ManualClock> {
        LimiterBuilder::with_clock(ManualClock::new())
            .concurrency(1)
            .rate(Quota::per_second(1000).allow_burst(4))
            .build()
            .unwrap()
    }

    /// Two threads race for the one slot, one with `run`, one with
    /// `acquire` then drop: both get it, never at the same time, and the
    /// slot comes back.
    #[test]
    fn run_and_acquire_share_one_slot() {
        loom::model(|| {
            let limiter = limiter();
            let inside = Arc::new(AtomicUsize::new(0));
            let (l2, in2) = (limiter.clone(), inside.clone());
            let t = thread::spawn(move || {
                block_on(l2.run(async {
                    assert_eq!(in2.fetch_add(1, Ordering::SeqCst), 0, "two in flight");
                    in2.fetch_sub(1, Ordering::SeqCst);
                }))
                .unwrap();
            });
            let permit = block_on(limiter.acquire()).unwrap();
            assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two in flight");
            inside.fetch_sub(1, Ordering::SeqCst);
            drop(permit);
            t.join().unwrap();
            assert_eq!(limiter.available_slots(), Some(1));
        });
    }

    /// `close` races a `run` and an `acquire`: each either gets the slot or
    /// fails with `Closed`, nobody hangs (loom reports a lost wake-up as a
    /// deadlock), and the slot comes back.
    #[test]
    fn close_racing_run_and_acquire_loses_nothing() {
        loom::model(|| {
            let limiter = limiter();
            let l2 = limiter.clone();
            let t = thread::spawn(move || match block_on(l2.run(async {})) {
                Ok(()) | Err(AcquireError::Closed) => {}
                Err(e) => panic!("run: {e}"),
            });
            let l3 = limiter.clone();
            let closer = thread::spawn(move || l3.close());
            match block_on(limiter.acquire()) {
                Ok(permit) => drop(permit),
                Err(AcquireError::Closed) => {}
                Err(e) => panic!("acquire: {e}"),
            }
            t.join().unwrap();
            closer.join().unwrap();
            assert!(limiter.is_closed());
            assert_eq!(limiter.available_slots(), Some(1));
        });
    }

    /// An `acquire` polled once (queued behind a held permit) and then
    /// dropped, racing the release: the slot is neither lost nor kept.
    #[test]
    fn cancelled_waiter_racing_a_release_loses_nothing() {
        use std::future::Future;
        use std::pin::pin;
        use std::task::{Context, Poll, Waker};

        loom::model(|| {
            let limiter = limiter();
            let held = block_on(limiter.acquire()).unwrap();
            let t = thread::spawn(move || drop(held));
            {
                let mut fut = pin!(limiter.acquire());
                let mut cx = Context::from_waker(Waker::noop());
                if let Poll::Ready(permit) = fut.as_mut().poll(&mut cx) {
                    drop(permit.unwrap());
                }
            }
            t.join().unwrap();
            assert_eq!(limiter.available_slots(), Some(1));
            drop(block_on(limiter.acquire()).unwrap());
        });
    }

    /// An adaptive limit shrinks (an overload) and grows (a success) in
    /// two threads while a third waits for a slot: nothing held is revoked,
    /// the waiter is served (no lost wake-up), and afterwards the free
    /// slots equal the limit (conservation with a moving total).
    #[test]
    fn adaptive_shrink_and_grow_race_with_a_waiter() {
        loom::model(|| {
            let limiter = LimiterBuilder::with_clock(ManualClock::new())
                .adaptive(Aimd::new().initial(2).max(3))
                .build()
                .unwrap();
            let mut p1 = block_on(limiter.acquire()).unwrap();
            let p2 = block_on(limiter.acquire()).unwrap();
            let l3 = limiter.clone();
            let waiter = thread::spawn(move || drop(block_on(l3.acquire()).unwrap()));
            let shrink = thread::spawn(move || {
                p1.overloaded();
                drop(p1);
            });
            let grow = thread::spawn(move || drop(p2));
            shrink.join().unwrap();
            grow.join().unwrap();
            waiter.join().unwrap();
            let limit = limiter.limit().unwrap();
            assert!((1..=3).contains(&limit), "limit {limit}");
            assert_eq!(limiter.available_slots(), Some(limit));
        });
    }

    /// A request waits at the rate gate (its cell is 1 s away) while
    /// another thread advances the clock: it is woken and admitted at 1 s,
    /// not before, and its slot comes back.
    #[test]
    fn a_request_waiting_at_the_rate_gate_is_admitted_when_its_cell_comes() {
        loom::model(|| {
            let clock = ManualClock::new();
            let limiter = LimiterBuilder::with_clock(clock.clone())
                .concurrency(2)
                .rate(Quota::per_second(1))
                .build()
                .unwrap();
            drop(block_on(limiter.acquire()).unwrap()); // the burst is spent
            let (l2, c2) = (limiter.clone(), clock.clone());
            let waiter = thread::spawn(move || {
                let permit = block_on(l2.acquire()).unwrap();
                let at = c2.now().as_nanos();
                drop(permit);
                at
            });
            clock.advance(Duration::from_millis(500));
            clock.advance(Duration::from_millis(500));
            assert_eq!(waiter.join().unwrap(), 1_000_000_000);
            assert_eq!(limiter.available_slots(), Some(2));
        });
    }

    /// A request waiting at the rate gate races a `pause_for`: whichever
    /// comes first, it is admitted no earlier than the end of the pause.
    #[test]
    fn a_pause_racing_a_request_at_the_rate_gate_holds_it() {
        loom::model(|| {
            let clock = ManualClock::new();
            let limiter = LimiterBuilder::with_clock(clock.clone())
                .rate(Quota::per_second(1))
                .build()
                .unwrap();
            drop(block_on(limiter.acquire()).unwrap());
            let (l2, c2) = (limiter.clone(), clock.clone());
            let waiter = thread::spawn(move || {
                drop(block_on(l2.acquire()).unwrap());
                c2.now().as_nanos()
            });
            let l3 = limiter.clone();
            thread::spawn(move || l3.pause_for(Duration::from_secs(2)))
                .join()
                .unwrap();
            for _ in 0..3 {
                clock.advance(Duration::from_secs(1));
            }
            let admitted_at = waiter.join().unwrap();
            assert!(admitted_at >= 2_000_000_000, "admitted at {admitted_at} ns");
        });
    }

    /// Idle requests on the lock-free word race a `try_acquire`, which
    /// moves the quota's state under the lock, and each other (one of them
    /// may then admit under the lock and move it back): the burst of 3 is
    /// spent exactly, by the three, and a fourth is refused.
    #[test]
    fn idle_admissions_racing_the_locked_path_spend_the_burst_exactly() {
        loom::model(|| {
            let limiter = LimiterBuilder::with_clock(ManualClock::new())
                .rate(Quota::per_second(1).allow_burst(3))
                .build()
                .unwrap();
            let l2 = limiter.clone();
            let idle = thread::spawn(move || drop(block_on(l2.acquire()).unwrap()));
            let l3 = limiter.clone();
            let locked = thread::spawn(move || drop(l3.try_acquire().unwrap()));
            drop(block_on(limiter.acquire()).unwrap());
            idle.join().unwrap();
            locked.join().unwrap();
            assert!(limiter.try_acquire().is_err(), "a fourth cell was admitted");
        });
    }

    /// A limiter without a quota: an idle request races a `pause_for`; one
    /// that starts after the pause returned is admitted no earlier than its
    /// end (its lock-free path must see the pause).
    #[test]
    fn a_request_after_a_pause_on_a_limiter_without_quota_waits_for_its_end() {
        loom::model(|| {
            let clock = ManualClock::new();
            let limiter = LimiterBuilder::with_clock(clock.clone())
                .concurrency(2)
                .build()
                .unwrap();
            let paused = Arc::new(AtomicUsize::new(0));
            let (l2, c2, p2) = (limiter.clone(), clock.clone(), paused.clone());
            let request = thread::spawn(move || {
                let after_pause = p2.load(Ordering::SeqCst) == 1;
                drop(block_on(l2.acquire()).unwrap());
                (after_pause, c2.now().as_nanos())
            });
            limiter.pause_for(Duration::from_secs(2));
            paused.store(1, Ordering::SeqCst);
            for _ in 0..3 {
                clock.advance(Duration::from_secs(1));
            }
            let (after_pause, admitted_at) = request.join().unwrap();
            assert!(
                !after_pause || admitted_at >= 2_000_000_000,
                "admitted at {admitted_at} ns, after the pause began"
            );
        });
    }
}
