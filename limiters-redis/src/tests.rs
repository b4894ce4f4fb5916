//! The script against the local limiter: the same (time, request) sequence
//! through [`limiters::RateLimiter`] on a `ManualClock` and through the Lua
//! script on a real server with the time injected, decision by decision.

#[path = "../tests/common/server.rs"]
mod server;

use core::time::Duration;
use std::sync::atomic::{AtomicU64, Ordering};

use limiters::{ManualClock, Quota, RateLimitError, RateLimiter};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use redis::aio::MultiplexedConnection;

use crate::core::{Core, Settings};
use crate::script::{Op, Reply};
use server::RedisServer;

#[derive(Clone, Copy, Debug)]
enum Step {
    Take(u32),
    Pause(Duration),
    Peek,
}

fn quota() -> impl Strategy<Value = Quota> {
    let cells = prop_oneof![
        1..=10u32,
        1..=1_000_000u32,
        any::<u32>().prop_map(|c| c.max(1))
    ];
    let period = prop_oneof![
        Just(1_000_000_000u64),
        1..=10_000_000_000u64,
        1..=3_600_000_000_000_000u64
    ];
    let burst = prop_oneof![1..=10u32, 1..=1_000u32, any::<u32>().prop_map(|b| b.max(1))];
    // The local limiter counts time in u64 ns from its creation and denies
    // anything past 584 years; the script counts from the epoch and clamps
    // at 2^40 s. Both are exact below a century of burst tolerance.
    const CENTURY_NS: u128 = 100 * 365 * 86_400 * 1_000_000_000;
    (cells, period, burst)
        .prop_filter(
            "burst tolerance within a century",
            |&(cells, period, burst)| {
                u128::from(burst) * u128::from(period) / u128::from(cells) <= CENTURY_NS
            },
        )
        .prop_map(|(cells, period, burst)| {
            Quota::new(cells, Duration::from_nanos(period))
                .unwrap()
                .allow_burst(burst)
        })
}

/// (nanoseconds to advance, step) pairs.
fn steps(burst: u32) -> impl Strategy<Value = Vec<(u64, Step)>> {
    let n = prop_oneof![
        6 => 1..=burst.min(3),
        2 => 1..=burst,
        1 => Just(burst.saturating_add(1)),
    ];
    let step = prop_oneof![
        8 => n.prop_map(Step::Take),
        1 => (0..5_000_000_000u64).prop_map(|ns| Step::Pause(Duration::from_nanos(ns))),
        1 => Just(Step::Peek),
    ];
    let advance = prop_oneof![
        Just(0u64),
        0..1_000u64,
        0..100_000_000u64,
        0..10_000_000_000u64
    ];
    prop::collection::vec((advance, step), 1..40)
}

/// The server time at the manual clock's start: a real epoch, plus a part
/// second, so the script's carries between seconds, ns and ticks are used.
const EPOCH_S: u64 = 1_764_000_000;
const EPOCH_NS: u64 = 987_654_321;

#[test]
fn the_script_decides_exactly_as_the_local_limiter() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let conn: MultiplexedConnection = rt.block_on(async {
        let client = redis::Client::open(server.url()).unwrap();
        client.get_multiplexed_async_connection().await.unwrap()
    });
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    let mut runner = TestRunner::new(Config::with_cases(cases));
    let strategy = quota().prop_flat_map(|q| (Just(q), steps(q.burst())));
    let next_key = AtomicU64::new(0);
    let compared = AtomicU64::new(0);
    let take = |core: &Core<ManualClock, MultiplexedConnection>, key: &str, n, now| {
        rt.block_on(core.call(key, Op::Take(n), now)).unwrap()
    };
    let expected = |local: &RateLimiter<ManualClock>, n| match local.check_n(n) {
        Ok(()) => Ok(Reply::Admitted),
        Err(RateLimitError::NotUntil(not_until)) => Ok(Reply::Wait(not_until.wait_time())),
        Err(e) => Err(TestCaseError::fail(format!("{e:?}"))),
    };
    runner
        .run(&strategy, |(quota, steps)| {
            let key = format!("{{case:{}}}", next_key.fetch_add(1, Ordering::Relaxed));
            let clock = ManualClock::new();
            let local = RateLimiter::with_clock(quota, clock.clone());
            let mut settings = Settings::new(conn.clone(), quota).with_clock(clock.clone());
            settings.timeout = Duration::from_secs(5);
            let core = Core::new(settings);
            let mut elapsed = 0u64;
            for (advance, step) in steps {
                clock.advance(Duration::from_nanos(advance));
                elapsed += advance;
                let at_ns = EPOCH_NS + elapsed;
                let now = Some((
                    EPOCH_S + at_ns / 1_000_000_000,
                    (at_ns % 1_000_000_000) as u32,
                ));
                match step {
                    Step::Take(n) if n > quota.burst() => {
                        // Refused before any round trip, as locally.
                        let redis = rt.block_on(core.check_n(&key, n));
                        let redis_refused = matches!(
                            redis,
                            Err(crate::Error::InsufficientCapacity { requested, burst })
                                if requested == n && burst == quota.burst()
                        );
                        let local_refused = matches!(
                            local.check_n(n),
                            Err(RateLimitError::InsufficientCapacity { .. })
                        );
                        prop_assert!(redis_refused && local_refused);
                    }
                    Step::Take(n) => {
                        let redis = take(&core, &key, n, now);
                        prop_assert_eq!(
                            redis,
                            expected(&local, n)?,
                            "check_n({}) at +{} ns",
                            n,
                            elapsed
                        );
                        compared.fetch_add(1, Ordering::Relaxed);
                    }
                    Step::Pause(d) => {
                        local.pause_for(d);
                        let redis = rt.block_on(core.call(&key, Op::Pause(d), now)).unwrap();
                        prop_assert_eq!(redis, Reply::Paused);
                    }
                    Step::Peek => {
                        // `remaining` is the most cells a check_n at this
                        // instant admits: one more is denied (unless that
                        // is above the burst), exactly that many admitted.
                        let Reply::Remaining(left) =
                            rt.block_on(core.call(&key, Op::Peek, now)).unwrap()
                        else {
                            return Err(TestCaseError::fail("peek answered something else"));
                        };
                        prop_assert!(left <= quota.burst());
                        let mut probes = vec![];
                        if left < quota.burst() {
                            probes.push((left + 1, false));
                        }
                        if left > 0 {
                            probes.push((left, true));
                        }
                        for (n, admitted) in probes {
                            let redis = take(&core, &key, n, now);
                            prop_assert_eq!(
                                redis == Reply::Admitted,
                                admitted,
                                "remaining {}",
                                left
                            );
                            prop_assert_eq!(redis, expected(&local, n)?);
                            compared.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    eprintln!(
        "compared {} decisions over {cases} cases",
        compared.into_inner()
    );
}
