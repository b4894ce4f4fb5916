//! An axum server limiting each client IP to 5 requests per second, bursts
//! of 5, with `limiters::tower::KeyedRateLimitLayer`: over the limit a
//! client gets `429 Too Many Requests` with `Retry-After` and the IETF
//! `RateLimit-Policy` / `RateLimit` headers, without reaching the handler.
//!
//! ```text
//! cargo run --example axum_server --features tower            # demo, then exit
//! cargo run --example axum_server --features tower -- --serve # keep serving on 127.0.0.1:3000
//! ```
//!
//! The demo starts the server on a free port, sends 7 requests at once from
//! 127.0.0.1 and 3 from 127.0.0.2 (two clients, two budgets) and prints
//! what each got.

#[path = "support/axum_app.rs"]
mod axum_app;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use limiters::{KeyedRateLimiter, Quota};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let per_client = Arc::new(KeyedRateLimiter::new(Quota::per_second(5).allow_burst(5)));
    let app = axum_app::app(per_client).into_make_service_with_connect_info::<SocketAddr>();

    if std::env::args().any(|arg| arg == "--serve") {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
        println!("serving http://127.0.0.1:3000/hello (5 requests/s per client IP)");
        axum::serve(listener, app).await?;
        return Ok(());
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hello", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    for (client_ip, requests) in [("127.0.0.1", 7), ("127.0.0.2", 3)] {
        // The whole 127.0.0.0/8 is loopback on Linux: a second source
        // address is a second client.
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(client_ip.parse::<IpAddr>()?));
        let client: Client<_, Empty<Bytes>> =
            Client::builder(TokioExecutor::new()).build(connector);
        let calls = (0..requests).map(|_| client.get(url.parse().unwrap()));
        for response in futures::future::join_all(calls).await {
            let response = response?;
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .map_or("-", |v| v.to_str().unwrap_or("?"))
                    .to_owned()
            };
            println!(
                "{client_ip}: {} RateLimit: {}  Retry-After: {}  RateLimit-Policy: {}",
                response.status(),
                header("ratelimit"),
                header("retry-after"),
                header("ratelimit-policy"),
            );
        }
    }
    Ok(())
}
