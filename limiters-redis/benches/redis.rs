//! Decisions per second and latency of `RedisRateLimiter::check` against a
//! local `redis-server`, one at a time and with 64 in flight on one
//! multiplexed connection (which pipelines them), beside the naive fixed
//! window many services use (`INCR` + `EXPIRE` in one round trip).
//!
//! Run by hand (CI only builds it):
//!
//! ```text
//! cargo bench -p limiters-redis --bench redis
//! ```
//!
//! It starts its own `redis-server` on a free loopback port (as the tests
//! do). Figures are in BENCHMARKS.md.

#[path = "../tests/common/server.rs"]
mod server;

use std::future::Future;
use std::time::{Duration, Instant};

use limiters::Quota;
use limiters_redis::RedisRateLimiter;
use redis::aio::MultiplexedConnection;

const SEQUENTIAL: usize = 20_000;
const IN_FLIGHT: usize = 64;
const BATCHES: usize = 500;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("run with `cargo bench -p limiters-redis --bench redis`");
        return;
    }
    let Some(server) = server::RedisServer::start() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = redis::Client::open(server.url()).unwrap();
        let conn = client.get_multiplexed_async_connection().await.unwrap();
        let version: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn.clone())
            .await
            .unwrap();
        let version = version
            .lines()
            .find(|l| l.starts_with("redis_version"))
            .unwrap_or("?")
            .to_string();
        println!("{version}, client and server on one 2-core machine, loopback");
        println!("{:<44} {:>12} {:>9} {:>9}", "", "decisions/s", "p50", "p99");

        // A quota that admits everything: the cost of a decision does not
        // depend on its outcome (one script call either way).
        let quota = Quota::per_second(1_000_000_000).allow_burst(1_000_000);
        let limiter = RedisRateLimiter::builder(conn.clone(), "bench", quota)
            .timeout(Duration::from_secs(1))
            .build();
        limiter.check().await.unwrap(); // loads the script
        report(
            "RedisRateLimiter::check, 1 in flight",
            sequential(|| async { limiter.check().await.unwrap() }).await,
        );
        report(
            &format!("RedisRateLimiter::check, {IN_FLIGHT} in flight"),
            concurrent(|| async { limiter.check().await.unwrap() }).await,
        );
        let window = || {
            let mut conn: MultiplexedConnection = conn.clone();
            async move {
                let (count,): (u64,) = redis::pipe()
                    .incr("{naive}", 1)
                    .cmd("EXPIRE")
                    .arg("{naive}")
                    .arg(1)
                    .arg("NX")
                    .ignore()
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                std::hint::black_box(count);
            }
        };
        report(
            "INCR + EXPIRE fixed window, 1 in flight",
            sequential(window).await,
        );
        report(
            &format!("INCR + EXPIRE fixed window, {IN_FLIGHT} in flight"),
            concurrent(window).await,
        );
    });
}

/// (decisions per second, latencies)
async fn sequential<F: Future<Output = ()>>(mut call: impl FnMut() -> F) -> (f64, Vec<Duration>) {
    let mut latencies = Vec::with_capacity(SEQUENTIAL);
    let start = Instant::now();
    for _ in 0..SEQUENTIAL {
        let t = Instant::now();
        call().await;
        latencies.push(t.elapsed());
    }
    (SEQUENTIAL as f64 / start.elapsed().as_secs_f64(), latencies)
}

/// `IN_FLIGHT` calls at a time, `BATCHES` times: (decisions per second,
/// each call's latency).
async fn concurrent<F: Future<Output = ()>>(mut call: impl FnMut() -> F) -> (f64, Vec<Duration>) {
    let mut latencies = Vec::with_capacity(BATCHES * IN_FLIGHT);
    let start = Instant::now();
    for _ in 0..BATCHES {
        let calls = (0..IN_FLIGHT).map(|_| {
            let fut = call();
            async move {
                let t = Instant::now();
                fut.await;
                t.elapsed()
            }
        });
        let mut joined = Vec::with_capacity(IN_FLIGHT);
        let mut pinned: Vec<_> = calls.map(Box::pin).collect();
        std::future::poll_fn(|cx| {
            pinned.retain_mut(|f| match f.as_mut().poll(cx) {
                std::task::Poll::Ready(d) => {
                    joined.push(d);
                    false
                }
                std::task::Poll::Pending => true,
            });
            if pinned.is_empty() {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        latencies.extend(joined);
    }
    (
        (BATCHES * IN_FLIGHT) as f64 / start.elapsed().as_secs_f64(),
        latencies,
    )
}

fn report(name: &str, (rate, mut latencies): (f64, Vec<Duration>)) {
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "{name:<44} {rate:>12.0} {:>9.1?} {:>9.1?}",
        at(0.50),
        at(0.99)
    );
}
