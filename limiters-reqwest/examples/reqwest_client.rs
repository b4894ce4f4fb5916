//! The README's scenario with reqwest: an API allowing 10 requests in
//! flight and 50 per second, answering 429 with `Retry-After` to anything
//! more (a local server, `examples/support/server.rs` of the limiters
//! crate, refusing the very first request too). 300 requests fired at once
//! through `LimiterMiddleware` all get a 200: the limiter keeps to the
//! limits, and the one `Retry-After` pauses every queued request.
//!
//! ```text
//! cargo run -p limiters-reqwest --example reqwest_client
//! ```

#[path = "../../examples/support/server.rs"]
#[allow(dead_code)] // the crate's own tests use the rest
mod server;

use std::time::{Duration, Instant};

use limiters::{Limiter, Quota};
use limiters_reqwest::{LimiterMiddleware, Throttled};
use reqwest_middleware::ClientBuilder;
use server::{ServerConfig, TestServer};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = TestServer::start(ServerConfig {
        // 200 to 400 ms a request: 50 per second would keep 15 in flight.
        work: |n| Duration::from_millis(200 + (n * 37) % 201),
        fail_first: 1,
        ..ServerConfig::new(10, 50)
    });
    println!(
        "server at {}: 10 in flight, 50 per second, 429 + Retry-After beyond",
        server.addr()
    );

    // The published limits, the rate over 1.2 s: headroom for network
    // jitter (the server counts arrivals, not departures).
    let limiter = Limiter::builder()
        .concurrency(10)
        .rate(Quota::new(50, Duration::from_millis(1_200))?)
        .build()?;
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(LimiterMiddleware::new(limiter).retries(3))
        .build();

    let start = Instant::now();
    let calls = (0..300).map(|i| {
        let request = client.get(server.url(&format!("/item/{i}")));
        async move {
            let response = request.send().await?;
            let throttled = response.extensions().get::<Throttled>().copied();
            let status = response.status().as_u16();
            response.bytes().await?;
            Ok::<_, reqwest_middleware::Error>((status, throttled.unwrap_or_default()))
        }
    });
    let answers = futures::future::join_all(calls).await;
    let elapsed = start.elapsed();

    let ok = answers.iter().filter(|a| matches!(a, Ok((200, _)))).count();
    let refused = answers.iter().filter(|a| matches!(a, Ok((429, _)))).count();
    let retries: u32 = answers.iter().flatten().map(|(_, t)| t.retries).sum();
    let report = server.report();
    println!("caller: {ok} x 200, {refused} x 429, {retries} retried after Retry-After, in {elapsed:.1?}");
    println!(
        "server: {:?}, peak in flight {}, at most {} arrivals in a second",
        report.statuses, report.peak_in_flight, report.max_per_second
    );
    Ok(())
}
