//! A `RateLimitedClient` on smol (no tokio in the client): every request goes
//! through one `Limiter`, and a `429` pauses the whole limiter for the
//! server's `Retry-After`, then the request is retried. No request is lost.
//!
//! ```text
//! cargo run --example smol_client
//! ```
//!
//! The client believes the API allows 8 in flight and 20 per second; the
//! server (its own limits, in this process on 127.0.0.1) really allows 3 and
//! 10. The client runs into 429s, backs off as told, and still gets every
//! answer. The client is in `examples/support/rate_limited_client.rs`.

mod support;

use std::time::{Duration, Instant};

use limiters::{Limiter, Quota};
use support::client::BoxError;
use support::rate_limited_client::RateLimitedClient;
use support::server::{ServerConfig, TestServer};

const ITEMS: usize = 40;

fn main() -> Result<(), BoxError> {
    let server = TestServer::start(ServerConfig {
        work: |n| Duration::from_millis(40 + (n * 7) % 41),
        ..ServerConfig::new(3, 10)
    });
    println!(
        "server {}: really allows 3 in flight and 10 per second",
        server.url("")
    );

    // What the (outdated) documentation says: 8 in flight, 20 per second.
    let limiter = Limiter::builder()
        .concurrency(8)
        .rate(Quota::per_second(20))
        .build()?;
    println!("client limiter: 8 in flight, 20 per second");
    let client = RateLimitedClient::new(limiter);

    let start = Instant::now();
    let urls: Vec<String> = (0..ITEMS)
        .map(|i| server.url(&format!("/items/{i}")))
        .collect();
    let bodies = smol::block_on(futures::future::join_all(
        urls.iter().map(|url| client.get_json(url)),
    ));
    let elapsed = start.elapsed().as_secs_f64();

    let mut answered = 0;
    for (i, body) in bodies.iter().enumerate() {
        let body = body.as_ref().map_err(|e| format!("item {i}: {e}"))?;
        assert_eq!(body["path"], format!("/items/{i}"));
        answered += 1;
    }
    let report = server.report();
    println!(
        "{answered}/{ITEMS} answered in {elapsed:.2} s; the client recovered from {} \
         refusals (429 + Retry-After); server statuses {:?}",
        client.refused(),
        report.statuses
    );
    if answered != ITEMS {
        return Err("some requests were lost".into());
    }
    Ok(())
}
