//! `KeyedRateLimitLayer` in a real axum server on 127.0.0.1 (the app of
//! `examples/axum_server.rs`), driven by a real HTTP client from two source
//! addresses, 127.0.0.1 and 127.0.0.2: two clients with separate budgets.
//! The limiter runs on a `ManualClock`, so every status and header value is
//! exact.
#![cfg(feature = "tower")]

#[path = "../examples/support/axum_app.rs"]
mod axum_app;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use limiters::{KeyedRateLimiter, ManualClock, Quota};

/// What one response carried.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    status: u16,
    ratelimit: String,
    retry_after: Option<String>,
}

fn seen(status: u16, r: u32, t: u64, retry_after: Option<&str>) -> Seen {
    Seen {
        status,
        ratelimit: format!("\"default\";r={r};t={t}"),
        retry_after: retry_after.map(str::to_owned),
    }
}

struct Peer {
    client: Client<HttpConnector, Empty<Bytes>>,
    url: String,
}

impl Peer {
    fn new(ip: &str, url: &str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(ip.parse::<IpAddr>().unwrap()));
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            url: url.to_owned(),
        }
    }

    /// `n` requests, one after the other.
    async fn get(&self, n: usize) -> Vec<Seen> {
        let mut seen = Vec::new();
        for _ in 0..n {
            let response = self.client.get(self.url.parse().unwrap()).await.unwrap();
            let headers = response.headers().clone();
            let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(
                text("ratelimit-policy").as_deref(),
                Some("\"default\";q=5;w=1"),
                "every response names the policy"
            );
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            // Refusals never reached the handler.
            assert_eq!(
                &body[..],
                if status == 200 {
                    &b"hello\n"[..]
                } else {
                    &b""[..]
                }
            );
            seen.push(Seen {
                status,
                ratelimit: text("ratelimit").unwrap(),
                retry_after: text("retry-after"),
            });
        }
        seen
    }
}

#[tokio::test]
async fn per_client_ip_statuses_and_headers_are_exact() {
    let clock = ManualClock::new();
    // 5 requests per second per client IP, bursts of 5: a cell every 200 ms.
    let per_client = Arc::new(KeyedRateLimiter::with_clock(
        Quota::per_second(5).allow_burst(5),
        clock.clone(),
    ));
    let app =
        axum_app::app(Arc::clone(&per_client)).into_make_service_with_connect_info::<SocketAddr>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hello", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let a = Peer::new("127.0.0.1", &url);
    let b = Peer::new("127.0.0.2", &url);

    // A burst of 7 from A: 5 admitted (remaining 4..0, the burst whole
    // again within a second), then 429 with Retry-After: 1 (200 ms, rounded
    // up).
    let ok = |r| seen(200, r, 1, None);
    let refused = seen(429, 0, 1, Some("1"));
    let expected_a = [
        ok(4),
        ok(3),
        ok(2),
        ok(1),
        ok(0),
        refused.clone(),
        refused.clone(),
    ];
    assert_eq!(a.get(7).await, expected_a);
    // B's budget is its own.
    assert_eq!(b.get(3).await, [ok(4), ok(3), ok(2)]);
    assert_eq!(per_client.remaining(&"127.0.0.1".parse().unwrap()), 0);
    assert_eq!(per_client.remaining(&"127.0.0.2".parse().unwrap()), 2);

    // 200 ms later A has earned one request back, and no more.
    clock.advance(Duration::from_millis(200));
    assert_eq!(a.get(2).await, [ok(0), refused]);
    // B took 3 cells 200 ms ago: 3 remain, the burst is whole in 400 ms.
    assert_eq!(b.get(1).await, [seen(200, 2, 1, None)]);

    // After a quiet second and a half both have their whole burst again.
    clock.advance(Duration::from_millis(1_500));
    assert_eq!(a.get(1).await, [ok(4)]);
    assert_eq!(b.get(1).await, [ok(4)]);

    // A: 7 x 200 and 3 x 429; B: 5 x 200.
    server.abort();
}
