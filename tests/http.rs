//! The crate's main job, end to end: real HTTP requests to a local server
//! that enforces its own limits (independent of this crate) and counts what
//! it sees. Assertions are on the server's counts, never on timings.

#[path = "../examples/support/mod.rs"]
mod support;

use std::time::Duration;

use limiters::{Limiter, Quota};
use support::client::{smol_get, tokio_client, tokio_get};
use support::rate_limited_client::RateLimitedClient;
use support::server::{Report, ServerConfig, TestServer};

const MAX_CONCURRENT: usize = 5;
const MAX_PER_SECOND: usize = 20;
const REQUESTS: usize = 40;

/// Requests work 200 to 400 ms, so 5 in flight do about 17 per second, as
/// many as the client's rate: both limits bind, in turns.
fn burst_server() -> TestServer {
    TestServer::start(ServerConfig {
        work: |n| Duration::from_millis(200 + (n * 13) % 201),
        ..ServerConfig::new(MAX_CONCURRENT, MAX_PER_SECOND)
    })
}

/// The server's published limits; the rate measured over 1.2 s, leaving
/// 200 ms of headroom for scheduling and network jitter on a loaded
/// machine (assertions are on counts, so the margin only buys robustness).
fn matching_limiter() -> Limiter {
    Limiter::builder()
        .concurrency(MAX_CONCURRENT)
        .rate(Quota::new(MAX_PER_SECOND as u32, Duration::from_millis(1_200)).unwrap())
        .build()
        .unwrap()
}

fn assert_clean(report: &Report, requests: usize) {
    assert_eq!(report.count(200), requests as u64, "{report:?}");
    assert_eq!(report.count(429), 0, "{report:?}");
    assert!(report.peak_in_flight <= MAX_CONCURRENT, "{report:?}");
    assert!(report.max_per_second <= MAX_PER_SECOND, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limited_burst_under_tokio_gets_no_429() {
    let server = burst_server();
    let client = tokio_client();
    let limiter = matching_limiter();
    let answers = futures::future::join_all(
        (0..REQUESTS).map(|i| limiter.run(tokio_get(&client, &server.url(&format!("/t/{i}"))))),
    )
    .await;
    assert!(answers
        .iter()
        .all(|a| matches!(a, Ok(Ok(a)) if a.status == 200)));
    let report = server.report();
    eprintln!("tokio burst: {report:?}");
    assert_clean(&report, REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limited_burst_of_spawned_tasks_under_tokio_gets_no_429() {
    // Clones share one state: each task carries its own clone.
    let server = burst_server();
    let client = tokio_client();
    let limiter = matching_limiter();
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let limiter = limiter.clone();
            let get = tokio_get(&client, &server.url(&format!("/s/{i}")));
            tokio::spawn(async move { limiter.run(get).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().unwrap().status, 200);
    }
    assert_clean(&server.report(), REQUESTS);
}

#[test]
fn limited_burst_under_smol_gets_no_429() {
    let server = burst_server();
    let limiter = matching_limiter();
    let answers = smol::block_on(futures::future::join_all(
        (0..REQUESTS).map(|i| limiter.run(smol_get(&server.url(&format!("/m/{i}"))))),
    ));
    assert!(answers
        .iter()
        .all(|a| matches!(a, Ok(Ok(a)) if a.status == 200)));
    let report = server.report();
    eprintln!("smol burst: {report:?}");
    assert_clean(&report, REQUESTS);
}

#[test]
fn retry_after_client_recovers_from_forced_429s() {
    // The server refuses its first 3 requests whatever the load.
    let server = TestServer::start(ServerConfig {
        fail_first: 3,
        ..ServerConfig::new(MAX_CONCURRENT, MAX_PER_SECOND)
    });
    let client = RateLimitedClient::new(matching_limiter());
    let urls: Vec<String> = (0..12).map(|i| server.url(&format!("/r/{i}"))).collect();
    let bodies = smol::block_on(futures::future::join_all(
        urls.iter().map(|url| client.get_json(url)),
    ));
    for (i, body) in bodies.into_iter().enumerate() {
        let body = body.unwrap();
        assert_eq!(
            body["path"],
            format!("/r/{i}"),
            "every request answered, none lost"
        );
    }
    let report = server.report();
    assert_eq!(report.count(429), 3, "{report:?}");
    assert_eq!(report.count(200), 12, "{report:?}");
    assert_eq!(client.refused(), 3);
}

/// The server really enforces its limits: a burst fired with `join_all` and
/// only a semaphore (which caps calls in flight, not calls per second) gets
/// 429s, and every 429 carries a Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semaphore_alone_gets_429s_under_tokio() {
    let server = TestServer::start(ServerConfig::new(10, 50));
    let client = tokio_client();
    let sem = limiters::Semaphore::new(10);
    let url = server.url("/item");
    let answers =
        futures::future::join_all((0..200).map(|_| sem.run(tokio_get(&client, &url)))).await;
    let mut retry_afters = 0;
    for answer in answers {
        let answer = answer.unwrap().unwrap();
        if answer.status == 429 {
            assert!(answer.retry_after.is_some());
            retry_afters += 1;
        }
    }
    let report = server.report();
    assert_eq!(report.total(), 200);
    assert!(report.count(429) > 0, "{report:?}");
    assert_eq!(report.count(429), retry_afters);
    assert!(report.peak_in_flight <= 10, "{report:?}");
}

/// The same without any limiter, from smol: most requests are refused.
#[test]
fn naive_burst_gets_429s_under_smol() {
    let server = TestServer::start(ServerConfig::new(10, 50));
    let url = server.url("/item");
    let answers = smol::block_on(futures::future::join_all((0..100).map(|_| smol_get(&url))));
    assert!(answers.iter().all(Result::is_ok));
    let report = server.report();
    assert_eq!(report.total(), 100);
    assert!(report.count(429) > 0, "{report:?}");
}
