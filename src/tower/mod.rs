//! [tower](https://docs.rs/tower) middleware (feature `tower`): the
//! limiters where HTTP servers and clients already put their limits.
//!
//! * [`LimiterLayer`] wraps any `tower::Service` (a hyper or reqwest-style
//!   client, a database pool, a server's handler) in a [`Limiter`]: every
//!   call waits fairly for a concurrency slot and the rate cells, and holds
//!   the slot until its response is ready. Clones of the service share one
//!   limiter, and waiters are served in order.
//! * [`KeyedRateLimitLayer`] puts a [`KeyedRateLimiter`] in front of an HTTP
//!   server: one rate per client (by peer IP, by `X-Forwarded-For`, by API
//!   key: any [`KeyExtractor`]). A request over its client's limit is
//!   answered `429 Too Many Requests` without reaching the inner service,
//!   with `Retry-After` and the IETF `RateLimit-Policy` / `RateLimit`
//!   headers.
//!
//! Only `tower-service`, `tower-layer` and `http` are dependencies: the
//! layers plug into `tower::ServiceBuilder`, axum's `Router::layer` and
//! hyper's `service_fn` stacks alike.
//!
//! [`Limiter`]: crate::Limiter
//! [`KeyedRateLimiter`]: crate::KeyedRateLimiter

mod keyed;
mod service;

pub use self::keyed::{
    ForwardedFor, KeyExtractor, KeyedRateLimitLayer, KeyedRateLimitService, KeyedResponseFuture,
    PeerIp,
};
pub use self::service::{LimiterLayer, LimiterService, ResponseFuture};

/// The error type of [`LimiterService`]: the inner service's error, or the
/// limiter's [`AcquireError`](crate::AcquireError) (closed, or a weight it
/// can never admit), boxed. Find out which with `downcast_ref`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
