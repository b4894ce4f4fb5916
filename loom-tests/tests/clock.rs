//! Loom models of `ManualClock`'s sleepers: a sleep registering, waking,
//! being dropped and the clock advancing, all racing. The sleepers live in
//! the crate's intrusive wait list, whose cells loom checks here.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release`.

#[cfg(loom)]
mod models {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Waker};
    use std::time::Duration;

    use limiters::{Clock, ManualClock};
    use loom::future::block_on;
    use loom::thread;

    fn sleepers(clock: &ManualClock) -> String {
        // The only public view of the sleeper list's length.
        let debug = format!("{clock:?}");
        debug[debug.find("sleepers").unwrap()..].to_owned()
    }

    /// A sleep registering while another thread advances the clock past its
    /// deadline: it is woken (the model would deadlock otherwise) no earlier
    /// than its deadline, and leaves the list.
    #[test]
    fn sleep_registering_racing_advance_is_woken() {
        loom::model(|| {
            let clock = ManualClock::new();
            let deadline = clock.now() + Duration::from_secs(1);
            let sleeper = {
                let clock = clock.clone();
                thread::spawn(move || {
                    block_on(clock.sleep_until(deadline));
                    clock.now().as_nanos()
                })
            };
            clock.advance(Duration::from_millis(500));
            clock.advance(Duration::from_millis(500));
            assert!(sleeper.join().unwrap() >= 1_000_000_000);
            assert_eq!(sleepers(&clock), "sleepers: 0 }");
        });
    }

    /// Two sleepers with different deadlines, the clock advanced by a third
    /// thread in two steps: each wakes at or after its own deadline, and a
    /// sleep dropped while linked (polled once, then dropped) racing the
    /// same advances leaves nothing behind.
    #[test]
    fn sleepers_and_a_dropped_sleep_racing_advance() {
        loom::model(|| {
            let clock = ManualClock::new();
            let start = clock.now();
            let sleep_for = |ms: u64| {
                let clock = clock.clone();
                thread::spawn(move || {
                    block_on(clock.sleep_until(start + Duration::from_millis(ms)));
                    (clock.now().as_nanos(), ms * 1_000_000)
                })
            };
            let early = sleep_for(1);
            let late = sleep_for(2);
            let advancer = {
                let clock = clock.clone();
                thread::spawn(move || {
                    clock.advance(Duration::from_millis(1));
                    clock.advance(Duration::from_millis(1));
                })
            };
            {
                // Dropped while (maybe) linked: unlinked under the lock, its
                // waker dropped, whatever `advance` is doing.
                let mut dropped = pin!(clock.sleep_until(start + Duration::from_millis(2)));
                let _ = dropped
                    .as_mut()
                    .poll(&mut Context::from_waker(Waker::noop()));
            }
            advancer.join().unwrap();
            for sleeper in [early, late] {
                let (woke_at, deadline) = sleeper.join().unwrap();
                assert!(
                    woke_at >= deadline,
                    "woke at {woke_at} ns, deadline {deadline} ns"
                );
            }
            assert_eq!(sleepers(&clock), "sleepers: 0 }");
        });
    }
}
