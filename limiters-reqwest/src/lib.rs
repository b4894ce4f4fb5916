//! [reqwest-middleware](https://docs.rs/reqwest-middleware) for
//! [`limiters`]: pass every request of a `reqwest` client through a
//! [`Limiter`], and let the server's `Retry-After` pause it.
//!
//! * Every request passes through [`Limiter::acquire`]: it waits, in FIFO
//!   order, for a concurrency slot and then for every rate's cells, so rates
//!   pace when requests *start*.
//! * The slot is held until the response's **headers** arrive (the body is
//!   then the caller's to read, outside the limit). A limit on requests in
//!   flight counts what the server is working on, which ends when it
//!   answers.
//! * A `429 Too Many Requests`, or a `503 Service Unavailable` with
//!   `Retry-After` (delta-seconds or an HTTP-date), pauses the **whole**
//!   limiter ([`Limiter::pause_for`]) before its slot goes back: every
//!   request queued behind it waits too, instead of hitting the server and
//!   collecting its own 429.
//! * Optionally ([`LimiterMiddleware::retries`]), the refused request is
//!   sent again through the same limiter, after the pause, up to a bound;
//!   only for idempotent methods unless
//!   [`retry_any_method`](LimiterMiddleware::retry_any_method) says
//!   otherwise, and only when its body can be cloned. The response carries
//!   a [`Throttled`] extension: how many retries it took and how long it
//!   waited for the limiter.
//!
//! It is a crate of its own so that `limiters` itself stays free of
//! network dependencies.
//!
//! # Examples
//!
//! An API allowing 10 requests in flight and 50 per second:
//!
//! ```no_run
//! use limiters::{Limiter, Quota};
//! use limiters_reqwest::{LimiterMiddleware, Throttled};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let limiter = Limiter::builder()
//!     .concurrency(10)
//!     .rate(Quota::per_second(50))
//!     .build()?;
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(LimiterMiddleware::new(limiter).retries(3))
//!     .build();
//! let response = client.get("http://127.0.0.1:8080/items/1").send().await?;
//! let throttled = response.extensions().get::<Throttled>().copied().unwrap_or_default();
//! println!("{} after {} retries, {:?} waiting", response.status(), throttled.retries, throttled.waited);
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs, missing_debug_implementations)]

use std::fmt;
use std::time::{Duration, SystemTime};

use http::{Extensions, Method, StatusCode};
use limiters::{Clock, ClockInstant, Limiter};
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};

/// What the middleware did for one response, in its extensions
/// (`response.extensions().get::<Throttled>()`).
///
/// # Examples
///
/// See the [crate docs](crate#examples).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Throttled {
    /// Times the request was sent again after a refusal.
    pub retries: u32,
    /// Time spent waiting for the limiter, over every attempt (queueing,
    /// pacing and `Retry-After` pauses).
    pub waited: Duration,
}

/// A `reqwest_middleware::Middleware` passing every request through a
/// [`Limiter`]; see the [crate docs](crate).
///
/// Clones of a `Limiter` share one state, so one limiter can serve several
/// clients (or a client and hand-written calls through [`Limiter::run`]).
///
/// # Errors
///
/// A closed limiter (or a request weight it can never admit) fails the
/// request with `reqwest_middleware::Error::Middleware` wrapping the
/// [`AcquireError`](limiters::AcquireError).
///
/// # Examples
///
/// See the [crate docs](crate#examples).
#[derive(Clone)]
pub struct LimiterMiddleware<C: Clock = limiters::SystemClock> {
    limiter: Limiter<C>,
    retries: u32,
    retry_any_method: bool,
}

impl<C: Clock> LimiterMiddleware<C> {
    /// Every request through `limiter`; refusals are returned to the caller
    /// (after pausing the limiter) until [`retries`](Self::retries) is set.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Limiter;
    /// use limiters_reqwest::LimiterMiddleware;
    ///
    /// let middleware = LimiterMiddleware::new(Limiter::builder().concurrency(4).build().unwrap());
    /// # let _ = middleware;
    /// ```
    pub fn new(limiter: Limiter<C>) -> Self {
        Self {
            limiter,
            retries: 0,
            retry_any_method: false,
        }
    }

    /// Sends a refused request (a `429`, or a `503` with `Retry-After`)
    /// again, at most `retries` times, through the same limiter (so after
    /// the pause the refusal started). Only idempotent methods (`GET`,
    /// `HEAD`, `OPTIONS`, `TRACE`, `PUT`, `DELETE`) and bodies that can be
    /// cloned are retried. Default: 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Limiter;
    /// use limiters_reqwest::LimiterMiddleware;
    ///
    /// let limiter = Limiter::builder().concurrency(4).build().unwrap();
    /// let middleware = LimiterMiddleware::new(limiter).retries(3);
    /// # let _ = middleware;
    /// ```
    pub fn retries(self, retries: u32) -> Self {
        Self { retries, ..self }
    }

    /// Retries every method, `POST` and `PATCH` included: for APIs that
    /// promise a refused request had no effect.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Limiter;
    /// use limiters_reqwest::LimiterMiddleware;
    ///
    /// let limiter = Limiter::builder().concurrency(4).build().unwrap();
    /// let middleware = LimiterMiddleware::new(limiter).retries(2).retry_any_method(true);
    /// # let _ = middleware;
    /// ```
    pub fn retry_any_method(self, on: bool) -> Self {
        Self {
            retry_any_method: on,
            ..self
        }
    }

    /// The limiter.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Limiter;
    /// use limiters_reqwest::LimiterMiddleware;
    ///
    /// let middleware = LimiterMiddleware::new(Limiter::builder().concurrency(4).build().unwrap());
    /// assert_eq!(middleware.limiter().concurrency(), Some(4));
    /// ```
    pub fn limiter(&self) -> &Limiter<C> {
        &self.limiter
    }

    fn may_retry(&self, method: &Method) -> bool {
        self.retry_any_method
            || matches!(
                *method,
                Method::GET
                    | Method::HEAD
                    | Method::OPTIONS
                    | Method::TRACE
                    | Method::PUT
                    | Method::DELETE
            )
    }
}

impl<C: Clock> fmt::Debug for LimiterMiddleware<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimiterMiddleware")
            .field("limiter", &self.limiter)
            .field("retries", &self.retries)
            .field("retry_any_method", &self.retry_any_method)
            .finish()
    }
}

/// Whether `response` is a refusal, and the pause its `Retry-After` asks
/// for (`Some(ZERO)` for a refusal without one, or with a date passed).
fn refusal(response: &Response) -> Option<Duration> {
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_retry_after);
    match response.status() {
        StatusCode::TOO_MANY_REQUESTS => Some(retry_after.unwrap_or(Duration::ZERO)),
        StatusCode::SERVICE_UNAVAILABLE => retry_after,
        _ => None,
    }
}

/// `Retry-After` (RFC 9110, 10.2.3): delta-seconds or an HTTP-date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(
        date.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[async_trait::async_trait]
impl<C: Clock> Middleware for LimiterMiddleware<C> {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let retry = self.retries > 0 && self.may_retry(request.method());
        let mut request = request;
        let mut throttled = Throttled::default();
        loop {
            // Before sending: a streaming body cannot be sent twice.
            let again = if retry && throttled.retries < self.retries {
                request.try_clone()
            } else {
                None
            };
            let asked = self.limiter.clock().now();
            let permit = self
                .limiter
                .acquire()
                .await
                .map_err(reqwest_middleware::Error::middleware)?;
            throttled.waited += permit.admitted_at().saturating_duration_since(asked);
            let mut response = next.clone().run(request, extensions).await?;
            // Headers are here. Pause before the slot goes back, so that no
            // queued request slips out between the two.
            let refused = refusal(&response);
            if let Some(pause) = refused {
                if !pause.is_zero() {
                    self.limiter.pause_for(pause);
                }
            }
            drop(permit);
            match (refused, again) {
                (Some(_), Some(again)) => {
                    throttled.retries += 1;
                    request = again;
                }
                _ => {
                    response.extensions_mut().insert(throttled);
                    return Ok(response);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_retry_after;
    use std::time::{Duration, SystemTime};

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        let in_a_minute = SystemTime::now() + Duration::from_secs(61);
        let date = httpdate::fmt_http_date(in_a_minute);
        let pause = parse_retry_after(&date).unwrap();
        // Dates have whole seconds: 60 to 61 s from now.
        assert!(
            pause > Duration::from_secs(59) && pause <= Duration::from_secs(61),
            "{pause:?}"
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }
}
