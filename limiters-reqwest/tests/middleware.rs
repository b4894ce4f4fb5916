//! `LimiterMiddleware` in a real reqwest client against a local server that
//! enforces 10 requests in flight and 50 per second and answers `429` with
//! `Retry-After` (../examples/support/server.rs, independent of the
//! limiters crate), and reqwest-ratelimit against the same server.
//! Assertions are on what the server and the caller saw, and on the order
//! of events on the limiter's clock, never on how long anything took.

#[path = "../../examples/support/server.rs"]
#[allow(dead_code)] // the crate's own tests use the rest
mod server;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Extensions;
use limiters::{Clock, Limiter, Quota, RateLimiter, SystemClock};
use limiters_reqwest::{LimiterMiddleware, Throttled};
use reqwest::{Request, Response};
use reqwest_middleware::{ClientBuilder, Middleware, Next};
use server::{ServerConfig, TestServer};

const REQUESTS: usize = 300;

/// 10 in flight, 50 per rolling second, requests working 200 to 400 ms
/// (so 50 per second would keep 15 in flight: both limits bind);
/// the first request is refused with `Retry-After: 1` whatever the load.
fn server() -> TestServer {
    TestServer::start(ServerConfig {
        work: |n| Duration::from_millis(200 + (n * 37) % 201),
        fail_first: 1,
        ..ServerConfig::new(10, 50)
    })
}

/// Records, on the limiter's clock, when each request leaves for the
/// server and when a refusal comes back. It sits inside the limiter's
/// middleware, so a request is recorded in the same poll that admitted it.
#[derive(Clone, Default)]
struct Recorder {
    sent: Arc<Mutex<Vec<Instant>>>,
    refused: Arc<Mutex<Vec<Instant>>>,
}

#[async_trait::async_trait]
impl Middleware for Recorder {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        self.sent.lock().unwrap().push(SystemClock.now());
        let response = next.run(request, extensions).await?;
        if response.status() == 429 {
            self.refused.lock().unwrap().push(SystemClock.now());
        }
        Ok(response)
    }
}

/// On a current-thread runtime no other task runs between a refusal's
/// arrival and the pause it starts, nor between an admission and its send:
/// the order of `sent` and `refused` is the order of admissions and pauses.
#[tokio::test(flavor = "current_thread")]
async fn no_429_reaches_the_caller_and_retry_after_pauses_every_queued_request() {
    let server = server();
    // The server's limits, the rate measured over 1.2 s for headroom
    // (network jitter can bunch arrivals into the server's window).
    let limiter = Limiter::builder()
        .concurrency(10)
        .rate(Quota::new(50, Duration::from_millis(1_200)).unwrap())
        .build()
        .unwrap();
    let recorder = Recorder::default();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(LimiterMiddleware::new(limiter).retries(3))
        .with(recorder.clone())
        .build();
    let calls = (0..REQUESTS).map(|i| {
        let request = client.get(server.url(&format!("/item/{i}")));
        async move {
            let response = request.send().await.unwrap();
            let throttled = *response.extensions().get::<Throttled>().unwrap();
            let status = response.status().as_u16();
            response.bytes().await.unwrap();
            (status, throttled)
        }
    });
    let answers = futures::future::join_all(calls).await;
    let report = server.report();

    let at_caller_429 = answers.iter().filter(|(status, _)| *status == 429).count();
    let retries: u32 = answers.iter().map(|(_, t)| t.retries).sum();
    let sent = recorder.sent.lock().unwrap().clone();
    let refused = recorder.refused.lock().unwrap().clone();
    let first_refusal = refused[0];
    let after: Vec<Duration> = sent
        .iter()
        .filter(|&&at| at > first_refusal)
        .map(|&at| at - first_refusal)
        .collect();
    println!(
        "limiters-reqwest: caller saw {} x 200 and {at_caller_429} x 429; server {report:?}; \
         {retries} retries; {} requests sent after the first 429, the earliest {:?} after it",
        answers.iter().filter(|(status, _)| *status == 200).count(),
        after.len(),
        after.iter().min(),
    );

    assert_eq!(at_caller_429, 0);
    assert!(answers.iter().all(|(status, _)| *status == 200));
    assert_eq!(report.count(200), REQUESTS as u64, "{report:?}");
    assert!(report.peak_in_flight <= 10, "{report:?}");
    // Every refusal the server sent was retried, the forced one included.
    assert!(report.count(429) >= 1);
    assert_eq!(u64::from(retries), report.count(429));
    // The Retry-After: 1 paused every request still queued at the first
    // refusal (the retry included): none left before a second had passed.
    assert!(
        after.len() > REQUESTS / 2,
        "{} sent after the refusal",
        after.len()
    );
    assert!(
        after.iter().all(|&wait| wait >= Duration::from_secs(1)),
        "sent {:?} after the refusal",
        after.iter().min()
    );
}

/// reqwest-ratelimit with the same rate: it awaits a permit before each
/// request and nothing else, so the server's concurrency limit and its
/// Retry-After reach the caller as 429s. Measured, for the README.
#[tokio::test(flavor = "current_thread")]
async fn reqwest_ratelimit_lets_429s_through() {
    struct Rate(RateLimiter);
    impl reqwest_ratelimit::RateLimiter for Rate {
        fn acquire_permit(&self) -> impl std::future::Future<Output = ()> + Send + '_ {
            self.0.acquire()
        }
    }
    let server = server();
    let rate = Rate(RateLimiter::new(
        Quota::new(50, Duration::from_millis(1_200)).unwrap(),
    ));
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(reqwest_ratelimit::all(rate))
        .build();
    let calls = (0..REQUESTS).map(|i| {
        let request = client.get(server.url(&format!("/item/{i}")));
        async move { request.send().await.unwrap().status().as_u16() }
    });
    let statuses = futures::future::join_all(calls).await;
    let at_caller_429 = statuses.iter().filter(|&&s| s == 429).count();
    let report = server.report();
    println!(
        "reqwest-ratelimit: caller saw {at_caller_429} x 429 of {REQUESTS}; server {report:?}"
    );
    // At least the forced refusal; the rest depends on how many requests
    // the rate alone lets pile up past 10 in flight.
    assert!(at_caller_429 >= 1);
    assert_eq!(report.count(429), at_caller_429 as u64);
}
