//! One member of a fleet sharing one quota: takes `requests` cells of the
//! quota `name` (100 per second, burst 10) through a `RedisRateLimiter`,
//! waiting for each. Run it several times at once against one server and
//! the server admits 100 per second in total, not 100 per process.
//!
//! ```text
//! cargo run -p limiters-redis --example fleet -- redis://127.0.0.1:6379/ my-quota 500
//! ```
//!
//! `tests/fleet.rs` runs it 4 times and checks the server's admission log.

use limiters::Quota;
use limiters_redis::RedisRateLimiter;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "redis://127.0.0.1:6379/".into());
    let name = args.next().unwrap_or_else(|| "fleet".into());
    let requests: u32 = args.next().map_or(Ok(500), |n| n.parse())?;

    let client = redis::Client::open(url)?;
    let conn = redis::aio::ConnectionManager::new(client).await?;
    let limiter = RedisRateLimiter::builder(conn, &name, Quota::per_second(100).allow_burst(10))
        .log_admissions()
        // Generous: four processes starting at once on a 2-core machine.
        .timeout(std::time::Duration::from_secs(1))
        .build();
    for i in 0..requests {
        if let Err(e) = limiter.acquire().await {
            eprintln!("fleet: request {i} failed: {e} ({:?})", limiter.stats());
            return Err(e.into());
        }
        // The work the quota protects would start here.
    }
    let stats = limiter.stats();
    println!(
        "admitted {} (asked {} times), {} failures",
        stats.admitted,
        stats.admitted + stats.denied,
        stats.failures()
    );
    Ok(())
}
