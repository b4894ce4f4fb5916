//! The crate's main job, for real: 200 HTTP requests to a server that allows
//! 10 in flight and 50 per rolling second.
//!
//! ```text
//! cargo run --example http_burst
//! ```
//!
//! First the naive way, `join_all` over 200 requests: most are answered
//! `429 Too Many Requests`. Then every request goes through one `Limiter`
//! built from the server's published limits, and every one is answered
//! `200`, as fast as the limits allow.
//!
//! The server (in `examples/support/server.rs`) runs in this process on
//! 127.0.0.1 and enforces its limits itself; it knows nothing of this
//! crate. The client is hyper-util's pooled HTTP/1.1 client on tokio.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use limiters::Limiter;
use support::client::{tokio_client, tokio_get, Answer, BoxError};
use support::server::{ServerConfig, TestServer};

const REQUESTS: usize = 200;
const MAX_CONCURRENT: usize = 10;
const MAX_PER_SECOND: usize = 50;

/// Each request keeps the server busy 150 to 250 ms (200 ms on average), so
/// 10 in flight also means about 50 per second: both limits matter.
fn work(n: u64) -> Duration {
    Duration::from_millis(150 + (n * 37) % 101)
}

fn status_counts(answers: &[Result<Answer, BoxError>]) -> BTreeMap<u16, usize> {
    let mut counts = BTreeMap::new();
    for answer in answers {
        let status = answer.as_ref().map_or(0, |a| a.status);
        *counts.entry(status).or_default() += 1;
    }
    counts
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let server = TestServer::start(ServerConfig {
        work,
        ..ServerConfig::new(MAX_CONCURRENT, MAX_PER_SECOND)
    });
    println!(
        "server {}: at most {MAX_CONCURRENT} in flight and {MAX_PER_SECOND} per rolling second, else 429",
        server.url("")
    );
    let client = tokio_client();

    // 1. Naive: fire everything at once.
    let start = Instant::now();
    let naive = futures::future::join_all(
        (0..REQUESTS).map(|i| tokio_get(&client, &server.url(&format!("/item/{i}")))),
    )
    .await;
    let report = server.report();
    println!(
        "naive join_all:  {:?} in {:.2} s (the server saw {} in flight at once)",
        status_counts(&naive),
        start.elapsed().as_secs_f64(),
        report.peak_in_flight,
    );

    // 2. Through a Limiter matching the published limits: at most 10 in
    // flight, at most 50 in any window, the window stretched to 1.02 s: the
    // server counts arrivals, not our starts, and 20 ms of headroom keeps
    // network jitter from squeezing 51 requests into its second.
    let limiter = Limiter::builder()
        .concurrency(MAX_CONCURRENT)
        .window(MAX_PER_SECOND as u32, Duration::from_millis(1_020))
        .build()?;

    // The naive burst was told to come back later: honour it.
    let retry_after = naive
        .iter()
        .filter_map(|a| a.as_ref().ok()?.retry_after)
        .max()
        .unwrap_or_default();
    println!(
        "the server said Retry-After: {} s; limiter.pause_for it",
        retry_after.as_secs()
    );
    limiter.pause_for(retry_after);
    limiter.run(async {}).await?; // waits out the pause
    server.reset_report();

    let start = Instant::now();
    let limited = futures::future::join_all((0..REQUESTS).map(|i| {
        let url = server.url(&format!("/item/{i}"));
        let client = &client;
        let limiter = &limiter;
        async move { limiter.run(tokio_get(client, &url)).await? }
    }))
    .await;
    let elapsed = start.elapsed().as_secs_f64();
    let report = server.report();
    println!(
        "through Limiter: {:?} in {:.2} s",
        status_counts(&limited),
        elapsed
    );
    println!(
        "achieved {:.1} requests/s against a limit of {MAX_PER_SECOND}/s; \
         the server saw at most {} in any second and {} in flight at once (limit {MAX_CONCURRENT})",
        REQUESTS as f64 / elapsed,
        report.max_per_second,
        report.peak_in_flight,
    );
    if report.count(429) > 0 || report.total() != REQUESTS as u64 {
        return Err(format!("the limited run was not clean: {report:?}").into());
    }
    Ok(())
}
