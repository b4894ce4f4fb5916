//! `RedisRateLimiter` and `KeyedRedisRateLimiter` against a real
//! `redis-server` (started per test on a free loopback port).
//!
//! Time: the quota runs on the server's clock, so these tests pick quotas
//! whose decisions do not depend on how fast the test runs (a burst used up
//! at once is denied whatever the scheduling; a 1-per-hour quota never
//! refills during a test). Elapsed-time bounds appear only where the
//! property *is* "nothing hangs": a fault must end within the timeout.

mod common;

use std::time::{Duration, Instant};

use common::{direct, manager, RedisServer};
use limiters::Quota;
use limiters_redis::{BackendError, Error, FailPolicy, KeyedRedisRateLimiter, RedisRateLimiter};
use redis::AsyncCommands;

macro_rules! server {
    () => {
        match RedisServer::start() {
            Some(server) => server,
            None => return,
        }
    };
}

#[tokio::test]
async fn a_burst_is_admitted_then_denied_with_the_wait_until_the_next_cell() {
    let server = server!();
    let conn = manager(&server).await;
    let limiter =
        RedisRateLimiter::builder(conn, "burst", Quota::per_hour(1).allow_burst(3)).build();
    assert_eq!(limiter.remaining().await.unwrap(), 3);
    for _ in 0..3 {
        limiter.check().await.unwrap();
    }
    assert_eq!(limiter.remaining().await.unwrap(), 0);
    let Err(Error::NotUntil(denied)) = limiter.check().await else {
        panic!("a fourth cell within the hour was admitted");
    };
    // The next cell is an hour after the first admission: a little less
    // than an hour from now.
    assert!(denied.wait_time() <= Duration::from_secs(3600));
    assert!(denied.wait_time() > Duration::from_secs(3500));
    let stats = limiter.stats();
    assert_eq!((stats.admitted, stats.denied, stats.failures()), (3, 1, 0));
}

#[tokio::test]
async fn more_than_the_burst_is_refused_without_a_round_trip() {
    let server = server!();
    let limiter = RedisRateLimiter::builder(
        manager(&server).await,
        "big",
        Quota::per_second(10).allow_burst(5),
    )
    .build();
    let err = limiter.check_n(6).await.unwrap_err();
    assert!(matches!(
        err,
        Error::InsufficientCapacity {
            requested: 6,
            burst: 5
        }
    ));
    let err = limiter.acquire_many(6).await.unwrap_err();
    assert!(matches!(
        err,
        Error::InsufficientCapacity {
            requested: 6,
            burst: 5
        }
    ));
    assert_eq!(limiter.stats(), Default::default());
}

#[tokio::test]
async fn the_key_expires_when_credit_is_full_again() {
    let server = server!();
    let mut redis = direct(&server).await;
    let limiter = RedisRateLimiter::builder(
        manager(&server).await,
        "ttl",
        Quota::per_hour(2).allow_burst(2),
    )
    .build();
    limiter.check().await.unwrap();
    // One cell used of a 2-per-hour quota: full again in 30 minutes.
    let ttl: i64 = redis.pttl("{ttl}").await.unwrap();
    assert!(ttl > 29 * 60_000 && ttl <= 30 * 60_000 + 1, "PTTL {ttl}");
    limiter.check().await.unwrap();
    let ttl: i64 = redis.pttl("{ttl}").await.unwrap();
    assert!(ttl > 59 * 60_000 && ttl <= 60 * 60_000 + 1, "PTTL {ttl}");
}

#[tokio::test]
async fn processes_share_one_quota() {
    let server = server!();
    let quota = Quota::per_hour(1).allow_burst(4);
    // Two limiters on two connections: two processes, as far as Redis knows.
    let a = RedisRateLimiter::builder(manager(&server).await, "shared", quota).build();
    let b = RedisRateLimiter::builder(direct(&server).await, "shared", quota).build();
    a.check_n(3).await.unwrap();
    assert!(matches!(b.check_n(2).await, Err(Error::NotUntil(_))));
    b.check().await.unwrap();
    assert!(matches!(a.check().await, Err(Error::NotUntil(_))));
}

#[tokio::test]
async fn one_process_pause_pauses_the_fleet() {
    let server = server!();
    let quota = Quota::per_second(1_000).allow_burst(10);
    let a = RedisRateLimiter::builder(manager(&server).await, "paused", quota).build();
    let b = RedisRateLimiter::builder(direct(&server).await, "paused", quota).build();
    a.pause_for(Duration::from_secs(30)).await.unwrap();
    let Err(Error::NotUntil(denied)) = b.check().await else {
        panic!("admitted during another process's pause");
    };
    assert!(denied.wait_time() > Duration::from_secs(29));
    assert_eq!(b.remaining().await.unwrap(), 0);
}

#[tokio::test]
async fn acquire_waits_for_the_cell_and_serves_a_process_in_fifo_order() {
    let server = server!();
    // 200 per second, burst 1: each waiter needs the server to name the
    // next slot, 5 ms later.
    let limiter =
        RedisRateLimiter::builder(manager(&server).await, "fifo", Quota::per_second(200)).build();
    let order = std::sync::Mutex::new(Vec::new());
    let waiters = (0..6).map(|i| {
        let (limiter, order) = (&limiter, &order);
        async move {
            limiter.acquire().await.unwrap();
            order.lock().unwrap().push(i);
        }
    });
    let joined = futures_join_all(waiters).await;
    assert_eq!(joined, 6);
    assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4, 5]);
    let stats = limiter.stats();
    assert_eq!(stats.admitted, 6);
    // Waiting means asking again after each named instant, not spinning:
    // at most a few denials per cell.
    assert!(stats.denied <= 6 * 3, "{stats:?}");
}

/// Polls every future in turn (first polls in order, as `join_all` does).
async fn futures_join_all<F: std::future::Future<Output = ()>>(
    futures: impl Iterator<Item = F>,
) -> usize {
    let mut pinned: Vec<_> = futures.map(Box::pin).map(Some).collect();
    let count = pinned.len();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for slot in pinned.iter_mut() {
            if let Some(fut) = slot {
                if fut.as_mut().poll(cx).is_pending() {
                    pending = true;
                } else {
                    *slot = None;
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(count)
        }
    })
    .await
}

#[tokio::test]
async fn the_script_is_sent_again_after_the_server_forgets_it() {
    let server = server!();
    let mut redis = direct(&server).await;
    let limiter = RedisRateLimiter::builder(
        manager(&server).await,
        "flush",
        Quota::per_hour(1).allow_burst(5),
    )
    .build();
    limiter.check().await.unwrap();
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut redis)
        .await
        .unwrap();
    limiter.check().await.unwrap();
    assert_eq!(limiter.remaining().await.unwrap(), 3);
    assert_eq!(limiter.stats().failures(), 0);
}

#[tokio::test]
async fn keyed_quotas_are_independent_and_hash_tagged() {
    let server = server!();
    let mut redis = direct(&server).await;
    let per_user: KeyedRedisRateLimiter<u64> = KeyedRedisRateLimiter::builder(
        manager(&server).await,
        "user",
        Quota::per_hour(1).allow_burst(2),
    )
    .build();
    per_user.check_n(&1, 2).await.unwrap();
    assert!(matches!(per_user.check(&1).await, Err(Error::NotUntil(_))));
    per_user.check(&2).await.unwrap();
    per_user.acquire(&3).await.unwrap();
    assert_eq!(per_user.remaining(&2).await.unwrap(), 1);
    let mut keys: Vec<String> = redis.keys("{user:*").await.unwrap();
    keys.sort();
    assert_eq!(keys, ["{user:1}", "{user:2}", "{user:3}"]);
    assert_eq!(per_user.queued_keys(), 0);
    per_user
        .pause_for(&2, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(matches!(per_user.check(&2).await, Err(Error::NotUntil(_))));
    per_user.check(&3).await.unwrap();
}

// --- faults ---

/// Every policy against a dead server: what it says, within the timeout.
#[tokio::test]
async fn a_dead_server_gets_each_policy_within_the_timeout() {
    let mut server = server!();
    let quota = Quota::per_second(100).allow_burst(10);
    let timeout = Duration::from_millis(50);
    let build = |conn, name: &str, policy| {
        RedisRateLimiter::builder(conn, name, quota)
            .fail_policy(policy)
            .timeout(timeout)
            .build()
    };
    let closed = build(manager(&server).await, "closed", FailPolicy::FailClosed);
    let open = build(manager(&server).await, "open", FailPolicy::FailOpen);
    let share = Quota::per_hour(1).allow_burst(2);
    let local = build(
        manager(&server).await,
        "local",
        FailPolicy::FallbackLocal(share),
    );
    closed.check().await.unwrap();
    open.check().await.unwrap();
    local.check().await.unwrap();

    server.kill();

    let bound = Duration::from_secs(2);
    let start = Instant::now();
    for _ in 0..5 {
        let err = closed.check().await.unwrap_err();
        assert!(matches!(err, Error::Backend(_)), "{err:?}");
        let err = closed.acquire().await.unwrap_err();
        assert!(matches!(err, Error::Backend(_)), "{err:?}");
    }
    assert!(
        start.elapsed() < bound,
        "fail-closed took {:?}",
        start.elapsed()
    );
    let stats = closed.stats();
    assert_eq!(stats.failures(), 10, "{stats:?}");
    assert_eq!((stats.failed_open, stats.fallback_decisions), (0, 0));

    let start = Instant::now();
    for _ in 0..5 {
        open.check().await.unwrap();
        open.acquire().await.unwrap();
    }
    assert!(
        start.elapsed() < bound,
        "fail-open took {:?}",
        start.elapsed()
    );
    let stats = open.stats();
    assert_eq!((stats.failures(), stats.failed_open), (10, 10), "{stats:?}");

    // The local share: 2 per hour here, so exactly 2 admitted.
    let start = Instant::now();
    let admitted = {
        let mut admitted = 0;
        for _ in 0..5 {
            match local.check().await {
                Ok(()) => admitted += 1,
                Err(Error::NotUntil(_)) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        admitted
    };
    assert_eq!(admitted, 2);
    assert!(
        start.elapsed() < bound,
        "fallback took {:?}",
        start.elapsed()
    );
    let stats = local.stats();
    assert_eq!(
        (stats.failures(), stats.fallback_decisions),
        (5, 5),
        "{stats:?}"
    );

    // Pauses and queries report the failure whatever the policy.
    assert!(open.pause_for(Duration::from_secs(1)).await.is_err());
    assert!(local.remaining().await.is_err());
}

#[tokio::test]
async fn a_restarted_server_starts_every_quota_afresh() {
    let mut server = server!();
    let port = server.port;
    let limiter = RedisRateLimiter::builder(
        manager(&server).await,
        "restart",
        Quota::per_hour(1).allow_burst(2),
    )
    .timeout(Duration::from_millis(200))
    .build();
    limiter.check_n(2).await.unwrap();
    assert!(matches!(limiter.check().await, Err(Error::NotUntil(_))));
    server.kill();
    assert!(matches!(limiter.check().await, Err(Error::Backend(_))));
    let _server = RedisServer::start_on(port).expect("restart");
    // The connection manager reconnects in the background; the first calls
    // may still fail. Bounded: 100 tries.
    let mut fresh = None;
    for _ in 0..100 {
        match limiter.check_n(2).await {
            Ok(()) => {
                fresh = Some(());
                break;
            }
            Err(Error::Backend(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("after a restart: {e:?}"),
        }
    }
    // Full burst credit again: the state died with the server.
    assert!(fresh.is_some(), "never reconnected: {:?}", limiter.stats());
}

#[tokio::test]
async fn a_stalled_server_hits_the_timeout() {
    let server = server!();
    let limiter = RedisRateLimiter::builder(manager(&server).await, "slow", Quota::per_second(100))
        .timeout(Duration::from_millis(50))
        .build();
    limiter.check().await.unwrap();
    // DEBUG SLEEP blocks the whole server for 1 s.
    let mut other = direct(&server).await;
    let sleeper = tokio::spawn(async move {
        let _: Result<(), _> = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg("1")
            .query_async(&mut other)
            .await;
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    let err = limiter.check().await.unwrap_err();
    let took = start.elapsed();
    assert!(
        matches!(err, Error::Backend(BackendError::Timeout { after })
            if after == Duration::from_millis(50)),
        "{err:?}"
    );
    assert!(took < Duration::from_millis(900), "took {took:?}");
    assert_eq!(limiter.stats().timeouts, 1);
    sleeper.await.unwrap();
    // And it recovers once the server answers again.
    limiter.check().await.ok();
}

#[cfg(feature = "smol")]
#[test]
fn works_under_smol() {
    let server = server!();
    smol::block_on(async {
        let client = redis::Client::open(server.url()).unwrap();
        let conn = client.get_multiplexed_async_connection().await.unwrap();
        let limiter =
            RedisRateLimiter::builder(conn, "smol", Quota::per_second(1_000).allow_burst(2))
                .build();
        limiter.check_n(2).await.unwrap();
        limiter.acquire().await.unwrap();
        assert_eq!(limiter.stats().admitted, 2); // requests, not cells
    });
}

#[tokio::test]
async fn a_local_limiter_takes_the_fleet_rate_as_a_source() {
    let mut server = server!();
    let fleet = RedisRateLimiter::builder(
        manager(&server).await,
        "composite",
        Quota::per_hour(1).allow_burst(3),
    )
    .build();
    let limiter = limiters::Limiter::builder()
        .concurrency(2)
        .rate_source(fleet.clone())
        .build()
        .unwrap();
    for i in 0..3 {
        assert_eq!(limiter.run(async move { i }).await, Ok(i));
    }
    // The fleet's burst is spent: another process sees it.
    assert_eq!(fleet.remaining().await.unwrap(), 0);
    assert_eq!(fleet.stats().admitted, 3);
    // A weight above the fleet's burst is refused at build.
    let err = limiters::Limiter::builder()
        .rate_source(fleet.clone())
        .weight(4)
        .build()
        .unwrap_err();
    assert_eq!(
        err,
        limiters::BuildError::WeightExceedsBurst {
            weight: 4,
            burst: 3
        }
    );

    server.kill();
    let start = Instant::now();
    let err = limiter.run(async {}).await.unwrap_err();
    assert!(
        matches!(
            err,
            limiters::AcquireError::RateSource(
                limiters::RateSourceError::Unavailable | limiters::RateSourceError::TimedOut
            )
        ),
        "{err:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(limiter.available_slots(), Some(2), "the slot came back");
}
