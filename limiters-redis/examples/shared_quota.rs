//! The README's "Sharing a quota across processes" example, built by CI so
//! it stays copy-pasteable. Needs a Redis server on 127.0.0.1:6379.

use limiters::{Limiter, Quota};
use limiters_redis::{FailPolicy, RedisRateLimiter};
use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // In every process: 100 per second, bursts of 10, across all of them.
    let client = redis::Client::open("redis://127.0.0.1/")?;
    let conn = redis::aio::ConnectionManager::new(client).await?;
    let fleet =
        RedisRateLimiter::builder(conn, "partner-api", Quota::per_second(100).allow_burst(10))
            // If Redis is down, each of 4 processes allows itself a quarter.
            .fail_policy(FailPolicy::FallbackLocal(
                Quota::per_second(25).allow_burst(3),
            ))
            .timeout(Duration::from_millis(50))
            .build();

    // Either wait for the fleet's next cell directly...
    fleet.acquire().await?;
    // ...or inside a local Limiter: 10 in flight here, 100/s fleet-wide.
    let limiter = Limiter::builder()
        .concurrency(10)
        .rate_source(fleet.clone())
        .build()?;
    let body = limiter.run(async { "call the partner API here" }).await?;
    println!("{body}; {:?}", fleet.stats());
    Ok(())
}
