//! [`KeyedRateLimitLayer`]: per-client rate limits for an HTTP server,
//! answered with `429 Too Many Requests` and the standard headers.

use alloc::sync::Arc;
use core::fmt;
use core::future::Future;
use core::hash::Hash;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;
use std::net::{IpAddr, SocketAddr};

use http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::clock::Clock;
use crate::keyed::KeyedRateLimiter;
use crate::rate::Quota;

/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers).
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` (draft-ietf-httpapi-ratelimit-headers).
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Picks the rate-limit key of a request: the client's IP, an API key, a
/// user id. `None` means the request is not limited (see
/// [`KeyedRateLimitLayer`] for how to give such requests a shared bucket
/// instead).
///
/// Implemented by every `Fn(&http::Request<B>) -> Option<K>` closure, by
/// [`PeerIp`] and by [`ForwardedFor`].
///
/// # Examples
///
/// Limiting by API key:
///
/// ```
/// use http::Request;
/// use limiters::tower::KeyExtractor;
///
/// let api_key = |req: &Request<()>| {
///     req.headers().get("x-api-key").and_then(|v| v.to_str().ok()).map(str::to_owned)
/// };
/// let req = Request::builder().header("x-api-key", "k-123").body(()).unwrap();
/// assert_eq!(api_key.extract(&req), Some("k-123".to_owned()));
/// ```
pub trait KeyExtractor<B> {
    /// The key type.
    type Key;

    /// The key of `request`, or `None` to let it pass unlimited.
    fn extract(&self, request: &Request<B>) -> Option<Self::Key>;
}

impl<B, K, F> KeyExtractor<B> for F
where
    F: Fn(&Request<B>) -> Option<K>,
{
    type Key = K;

    fn extract(&self, request: &Request<B>) -> Option<K> {
        self(request)
    }
}

/// The key is the peer's IP address, read from a [`SocketAddr`] in the
/// request's extensions.
///
/// hyper puts nothing there by itself: insert the address your accept loop
/// got (`request.extensions_mut().insert(peer)` in the `service_fn`). axum
/// keeps it as its own `ConnectInfo<SocketAddr>` type (when served with
/// `into_make_service_with_connect_info::<SocketAddr>()`), which this crate
/// does not depend on; use a closure there:
///
/// ```
/// # use axum::{body::Body, extract::ConnectInfo};
/// # use std::net::SocketAddr;
/// let peer_ip = |req: &http::Request<Body>| {
///     req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
/// };
/// # let _ = peer_ip;
/// ```
///
/// # Examples
///
/// ```
/// use std::net::SocketAddr;
/// use limiters::tower::{KeyExtractor, PeerIp};
///
/// let peer: SocketAddr = "192.0.2.7:50123".parse().unwrap();
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(peer);
/// assert_eq!(PeerIp.extract(&req), Some(peer.ip()));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct PeerIp;

impl<B> KeyExtractor<B> for PeerIp {
    type Key = IpAddr;

    fn extract(&self, request: &Request<B>) -> Option<IpAddr> {
        request.extensions().get::<SocketAddr>().map(SocketAddr::ip)
    }
}

/// The key is the client IP your reverse proxy appended to
/// `X-Forwarded-For`: the **last** address of the last `X-Forwarded-For`
/// header (an address with a port is accepted too).
///
/// # Spoofing
///
/// Anyone can send `X-Forwarded-For`; only what *your* proxy appended can be
/// trusted. Use this only behind exactly one proxy that appends the peer
/// address (nginx's `$proxy_add_x_forwarded_for`, most load balancers), and
/// never on a server clients reach directly: there every client picks its own
/// key and escapes its limit. Behind a chain of proxies, take the address the
/// first of yours appended with your own extractor. The first (leftmost)
/// address is whatever the client claimed.
///
/// # Examples
///
/// ```
/// use std::net::IpAddr;
/// use limiters::tower::{ForwardedFor, KeyExtractor};
///
/// let req = http::Request::builder()
///     .header("x-forwarded-for", "10.0.0.1, 198.51.100.4") // claimed, then added by the proxy
///     .body(())
///     .unwrap();
/// assert_eq!(ForwardedFor.extract(&req), Some("198.51.100.4".parse::<IpAddr>().unwrap()));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct ForwardedFor;

impl<B> KeyExtractor<B> for ForwardedFor {
    type Key = IpAddr;

    fn extract(&self, request: &Request<B>) -> Option<IpAddr> {
        let header = request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .next_back()?;
        let last = header.to_str().ok()?.rsplit(',').next()?.trim();
        last.parse::<IpAddr>()
            .ok()
            .or_else(|| last.parse::<SocketAddr>().ok().map(|a| a.ip()))
    }
}

/// Per-client rate limits for an HTTP server: see [`KeyedRateLimitService`].
///
/// Built from a [`KeyedRateLimiter`] (every client gets its quota) and a
/// [`KeyExtractor`] that names the client of a request.
///
/// A request whose extractor returns `None` passes unlimited and without
/// rate-limit headers. To give all of them one shared bucket instead, map
/// `None` to a key of their own in the extractor
/// (`|req| Some(peer_ip(req).unwrap_or(IpAddr::from([0, 0, 0, 0])))`).
///
/// # Headers
///
/// The `RateLimit-Policy` and `RateLimit` fields follow
/// [draft-ietf-httpapi-ratelimit-headers-09](https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/09/)
/// (March 2025): structured-field lists of one item, the policy name
/// `"default"`, with these parameters:
///
/// * `RateLimit-Policy: "default";q=Q;w=W`: the quota's long-run rate, `Q`
///   requests per `W` seconds. `W` is the quota's period rounded up to a
///   whole second (at least 1) and `Q` the requests the quota admits in `W`
///   seconds at its steady rate (`Quota::per_second(5)`: `q=5;w=1`;
///   `Quota::per_minute(90)`: `q=90;w=60`). A client may send up to the
///   burst at once after an idle spell.
/// * `RateLimit: "default";r=R;t=T`: `R` requests the client may send right
///   now ([`KeyedRateLimiter::remaining`]), and `T` the seconds until its
///   whole burst is back ([`KeyedRateLimiter::until_full`], rounded up).
/// * `Retry-After: N` on a 429: whole seconds until one request is admitted
///   again, rounded up (RFC 9110 allows no fractions).
///
/// # Examples
///
/// 5 requests per second per client IP, bursts of 5, behind one reverse
/// proxy:
///
/// ```
/// use http::{Request, Response, StatusCode};
/// use limiters::tower::{ForwardedFor, KeyedRateLimitLayer};
/// use limiters::{KeyedRateLimiter, ManualClock, Quota};
/// use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
///
/// # futures_lite::future::block_on(async {
/// let per_client = KeyedRateLimiter::with_clock(Quota::per_second(5).allow_burst(5), ManualClock::new());
/// let mut server = ServiceBuilder::new()
///     .layer(KeyedRateLimitLayer::new(per_client, ForwardedFor))
///     .service(service_fn(|_req: Request<()>| async {
///         Ok::<_, std::convert::Infallible>(Response::new(String::from("hello")))
///     }));
/// let request = || Request::builder().header("x-forwarded-for", "198.51.100.4").body(()).unwrap();
/// for remaining in (0..5).rev() {
///     let response = server.ready().await?.call(request()).await?;
///     assert_eq!(response.status(), StatusCode::OK);
///     assert_eq!(response.headers()["ratelimit"], format!("\"default\";r={remaining};t=1").as_str());
/// }
/// let refused = server.ready().await?.call(request()).await?;
/// assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
/// assert_eq!(refused.headers()["retry-after"], "1"); // 200 ms, rounded up
/// assert_eq!(refused.headers()["ratelimit-policy"], "\"default\";q=5;w=1");
/// # Ok::<(), std::convert::Infallible>(())
/// # }).unwrap();
/// ```
pub struct KeyedRateLimitLayer<K, X, C: Clock> {
    limiter: Arc<KeyedRateLimiter<K, C>>,
    extractor: X,
    policy: HeaderValue,
    headers_when_admitted: bool,
}

impl<K, X, C> KeyedRateLimitLayer<K, X, C>
where
    K: Hash + Eq + Clone,
    C: Clock,
{
    /// A layer limiting each key `extractor` finds to `limiter`'s quota.
    /// Pass an `Arc` to keep a handle on the limiter (to read
    /// [`len`](KeyedRateLimiter::len) or [`remaining`](KeyedRateLimiter::remaining)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::IpAddr;
    /// use std::sync::Arc;
    /// use limiters::tower::{KeyedRateLimitLayer, PeerIp};
    /// use limiters::{KeyedRateLimiter, Quota};
    ///
    /// let per_client: Arc<KeyedRateLimiter<IpAddr>> =
    ///     Arc::new(KeyedRateLimiter::new(Quota::per_second(5).allow_burst(5)));
    /// let layer = KeyedRateLimitLayer::new(Arc::clone(&per_client), PeerIp);
    /// # let _ = layer;
    /// ```
    pub fn new(limiter: impl Into<Arc<KeyedRateLimiter<K, C>>>, extractor: X) -> Self {
        let limiter = limiter.into();
        let policy = policy_header(limiter.quota());
        Self {
            limiter,
            extractor,
            policy,
            headers_when_admitted: true,
        }
    }

    /// Whether admitted responses carry `RateLimit-Policy` and `RateLimit`
    /// (default: yes). Refusals always carry them, with `Retry-After`.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::tower::{KeyedRateLimitLayer, PeerIp};
    /// use limiters::{KeyedRateLimiter, Quota};
    ///
    /// let per_client = KeyedRateLimiter::<std::net::IpAddr>::new(Quota::per_second(5));
    /// let quiet = KeyedRateLimitLayer::new(per_client, PeerIp).headers_when_admitted(false);
    /// # let _ = quiet;
    /// ```
    pub fn headers_when_admitted(self, on: bool) -> Self {
        Self {
            headers_when_admitted: on,
            ..self
        }
    }
}

impl<K, X: Clone, C: Clock> Clone for KeyedRateLimitLayer<K, X, C> {
    fn clone(&self) -> Self {
        Self {
            limiter: Arc::clone(&self.limiter),
            extractor: self.extractor.clone(),
            policy: self.policy.clone(),
            headers_when_admitted: self.headers_when_admitted,
        }
    }
}

impl<S, K, X: Clone, C: Clock> Layer<S> for KeyedRateLimitLayer<K, X, C> {
    type Service = KeyedRateLimitService<S, K, X, C>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedRateLimitService {
            inner,
            layer: self.clone(),
        }
    }
}

impl<K, X, C: Clock> fmt::Debug for KeyedRateLimitLayer<K, X, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimitLayer")
            .field("limiter", &self.limiter)
            .field("headers_when_admitted", &self.headers_when_admitted)
            .finish_non_exhaustive()
    }
}

/// An HTTP service that admits each client's requests at its quota and
/// answers the others itself.
///
/// For a request whose key (from the [`KeyExtractor`]) is over its limit,
/// the inner service is not called: the answer is `429 Too Many Requests`
/// with an empty body, `Retry-After`, `RateLimit-Policy` and `RateLimit`
/// (see the [header formats](KeyedRateLimitLayer#headers)). Admitted requests go to the
/// inner service, and their responses get `RateLimit-Policy` and `RateLimit`
/// added unless [turned off](KeyedRateLimitLayer::headers_when_admitted).
/// The check and the header values are taken together, under the key's
/// lock, so they agree.
///
/// The 429's body is the response body type's `Default` (empty for axum's
/// `Body`, `String`, `Full` and `Empty`).
///
/// `poll_ready` is the inner service's: a refused request leaves the inner
/// service ready for the next one.
///
/// # Examples
///
/// See [`KeyedRateLimitLayer`].
pub struct KeyedRateLimitService<S, K, X, C: Clock> {
    inner: S,
    layer: KeyedRateLimitLayer<K, X, C>,
}

impl<S: Clone, K, X: Clone, C: Clock> Clone for KeyedRateLimitService<S, K, X, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S, K, X, C: Clock> fmt::Debug for KeyedRateLimitService<S, K, X, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimitService")
            .field("layer", &self.layer)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResB, K, X, C> Service<Request<B>> for KeyedRateLimitService<S, K, X, C>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    ResB: Default,
    X: KeyExtractor<B, Key = K>,
    K: Hash + Eq + Clone,
    C: Clock,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = KeyedResponseFuture<S::Future, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let layer = &self.layer;
        let Some(key) = layer.extractor.extract(&request) else {
            return KeyedResponseFuture::new(Some(self.inner.call(request)), None, None);
        };
        let report = layer.limiter.check_report(&key);
        let headers = (report.wait.is_some() || layer.headers_when_admitted).then(|| {
            let ratelimit = format!(
                "\"default\";r={};t={}",
                report.remaining,
                secs_ceil(report.until_full)
            );
            (layer.policy.clone(), header_value(ratelimit))
        });
        match report.wait {
            None => KeyedResponseFuture::new(Some(self.inner.call(request)), None, headers),
            Some(wait) => {
                let mut refused = Response::new(ResB::default());
                *refused.status_mut() = StatusCode::TOO_MANY_REQUESTS;
                refused
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(secs_ceil(wait)));
                KeyedResponseFuture::new(None, Some(refused), headers)
            }
        }
    }
}

/// Whole seconds, rounded up.
fn secs_ceil(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn header_value(value: String) -> HeaderValue {
    HeaderValue::try_from(value).expect("digits, quotes and ASCII letters only")
}

/// `"default";q=Q;w=W`: see the module docs.
fn policy_header(quota: Quota) -> HeaderValue {
    let period_ns = quota.period().as_nanos().max(1);
    let w = period_ns.div_ceil(1_000_000_000).max(1);
    let q = u128::from(quota.cells()) * w * 1_000_000_000 / period_ns;
    header_value(format!("\"default\";q={q};w={w}"))
}

pin_project! {
    /// The response future of [`KeyedRateLimitService`]: the inner
    /// service's response with the rate-limit headers added, or the 429
    /// ready at once.
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops the inner service's future. The client's cell was
    /// taken when `call` admitted the request and stays spent: the request
    /// did arrive.
    ///
    /// # Examples
    ///
    /// See [`KeyedRateLimitLayer`].
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct KeyedResponseFuture<F, ResB> {
        #[pin]
        inner: Option<F>,
        refused: Option<Response<ResB>>,
        headers: Option<(HeaderValue, HeaderValue)>,
    }
}

impl<F, ResB> KeyedResponseFuture<F, ResB> {
    fn new(
        inner: Option<F>,
        refused: Option<Response<ResB>>,
        headers: Option<(HeaderValue, HeaderValue)>,
    ) -> Self {
        Self {
            inner,
            refused,
            headers,
        }
    }
}

impl<F, ResB, E> Future for KeyedResponseFuture<F, ResB>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<ResB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match this.refused.take() {
            Some(refused) => refused,
            None => {
                let inner = this
                    .inner
                    .as_pin_mut()
                    .expect("KeyedResponseFuture polled after it completed");
                match inner.poll(cx) {
                    Poll::Ready(Ok(response)) => response,
                    other => return other,
                }
            }
        };
        if let Some((policy, ratelimit)) = this.headers.take() {
            let headers = response.headers_mut();
            headers.insert(RATELIMIT_POLICY, policy);
            headers.insert(RATELIMIT, ratelimit);
        }
        Poll::Ready(Ok(response))
    }
}

impl<F, ResB> fmt::Debug for KeyedResponseFuture<F, ResB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedResponseFuture")
            .field("refused", &self.refused.is_some())
            .finish_non_exhaustive()
    }
}
