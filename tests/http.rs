//! The crate's main job, end to end: real HTTP requests to a local server
//! that enforces its own limits (independent of this crate) and counts what
//! it sees. Assertions are on the server's counts, never on timings.

#[path = "../examples/support/mod.rs"]
mod support;

use support::client::{smol_get, tokio_client, tokio_get};
use support::server::{ServerConfig, TestServer};

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
