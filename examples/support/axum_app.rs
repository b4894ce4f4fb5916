//! The axum application of `examples/axum_server.rs`, shared with
//! `tests/axum.rs`: every route limited per client IP by a
//! `KeyedRateLimiter`, refused requests answered 429 with `Retry-After`
//! and the `RateLimit-Policy` / `RateLimit` headers.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::Router;
use limiters::tower::KeyedRateLimitLayer;
use limiters::{Clock, KeyedRateLimiter};

/// `GET /hello`, limited per peer IP (axum's `ConnectInfo`, so serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()`).
pub fn app<C: Clock>(per_client: Arc<KeyedRateLimiter<IpAddr, C>>) -> Router {
    let peer_ip = |req: &http::Request<Body>| {
        req.extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
    };
    Router::new()
        .route("/hello", get(|| async { "hello\n" }))
        .layer(KeyedRateLimitLayer::new(per_client, peer_ip))
}
