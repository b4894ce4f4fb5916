//! A per-host crawler: one `KeyedLimiter` gives every host its own limits
//! (2 in flight, 5 per second), a global `Limiter` caps the crawler at 6 in
//! flight overall, and a host that answers 429 is paused on its own
//! (`pause_for(&host, Retry-After)`) while the others go on.
//!
//! ```text
//! cargo run --example crawler
//! ```
//!
//! Three local servers stand in for three hosts with different real limits:
//! one roomier than the crawler's per-host default, one just above it, one
//! stricter (1 in flight, 2 per second), which answers 429 until the
//! crawler has backed off enough. Every page is fetched.

mod support;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use limiters::{KeyedLimiter, Limiter, Quota};
use support::client::{tokio_client, tokio_get, BoxError};
use support::server::{ServerConfig, TestServer};

const PAGES_PER_HOST: usize = 10;

#[derive(Debug, Default)]
struct HostStats {
    pages: usize,
    refused: usize,
    last_page_at: f64,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let hosts = [
        ("roomy", TestServer::start(ServerConfig::new(8, 40))),
        ("snug", TestServer::start(ServerConfig::new(2, 6))),
        ("strict", TestServer::start(ServerConfig::new(1, 2))),
    ];
    for (name, server) in &hosts {
        let c = server.config();
        println!(
            "host {name:>6} at {}: {} in flight, {} per second",
            server.url(""),
            c.max_concurrent,
            c.max_per_second
        );
    }

    let per_host = Limiter::builder().concurrency(2).rate(Quota::per_second(5));
    let crawler =
        KeyedLimiter::new(per_host)?.with_global(Limiter::builder().concurrency(6).build()?);
    println!("crawler: per host 2 in flight and 5 per second; 6 in flight overall");

    let client = tokio_client();
    let stats = Mutex::new(BTreeMap::<&str, HostStats>::new());
    let start = Instant::now();
    let (crawler, client, stats) = (&crawler, &client, &stats);
    let fetches = hosts.iter().flat_map(|(name, server)| {
        (0..PAGES_PER_HOST).map(move |page| {
            let url = server.url(&format!("/page/{page}"));
            let host = name.to_string();
            async move {
                loop {
                    let answer = crawler.run(&host, tokio_get(client, &url)).await??;
                    if answer.status == 200 {
                        let mut stats = stats.lock().unwrap();
                        let s = stats.entry(*name).or_default();
                        s.pages += 1;
                        s.last_page_at = start.elapsed().as_secs_f64();
                        return Ok::<_, BoxError>(());
                    }
                    // 429: this host only waits; the others go on.
                    stats.lock().unwrap().entry(*name).or_default().refused += 1;
                    let wait = answer.retry_after.unwrap_or(Duration::from_secs(1));
                    crawler.pause_for(&host, wait);
                }
            }
        })
    });
    for result in futures::future::join_all(fetches).await {
        result?;
    }
    for (name, s) in stats.lock().unwrap().iter() {
        println!(
            "{name:>6}: {} pages, {} refused and retried, done after {:.2} s",
            s.pages, s.refused, s.last_page_at
        );
    }
    println!(
        "all {} pages in {:.2} s; {} host limiters still stored",
        hosts.len() * PAGES_PER_HOST,
        start.elapsed().as_secs_f64(),
        crawler.len()
    );
    Ok(())
}
