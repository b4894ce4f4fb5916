//! [`LimiterLayer`] and [`LimiterService`]: a [`Limiter`] around any tower
//! service.

use alloc::boxed::Box;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::BoxError;
use crate::clock::Clock;
use crate::limiter::{Limiter, LimiterAcquire, LimiterPermit};

/// Puts a [`Limiter`] in front of a tower service: see [`LimiterService`].
///
/// # Examples
///
/// A client allowed 10 requests in flight and 50 per second, shared by every
/// clone of the service:
///
/// ```
/// use limiters::tower::LimiterLayer;
/// use limiters::{Limiter, Quota};
/// use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
///
/// # futures_lite::future::block_on(async {
/// let limiter = Limiter::builder()
///     .concurrency(10)
///     .rate(Quota::per_second(50))
///     .build()?;
/// let mut client = ServiceBuilder::new()
///     .layer(LimiterLayer::new(limiter))
///     .service(service_fn(|request: u32| async move {
///         Ok::<_, std::convert::Infallible>(request * 2) // your HTTP call here
///     }));
/// let answer = client.ready().await?.call(21).await?;
/// assert_eq!(answer, 42);
/// # Ok::<(), limiters::tower::BoxError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct LimiterLayer<C: Clock> {
    limiter: Limiter<C>,
}

impl<C: Clock> LimiterLayer<C> {
    /// A layer whose services all share `limiter` (and with it every other
    /// clone of `limiter`).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::tower::LimiterLayer;
    /// use limiters::Limiter;
    ///
    /// let layer = LimiterLayer::new(Limiter::builder().concurrency(4).build().unwrap());
    /// # let _ = layer;
    /// ```
    pub fn new(limiter: Limiter<C>) -> Self {
        Self { limiter }
    }
}

impl<S, C: Clock> Layer<S> for LimiterLayer<C> {
    type Service = LimiterService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        LimiterService::new(inner, self.limiter.clone())
    }
}

impl<C: Clock> fmt::Debug for LimiterLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimiterLayer")
            .field("limiter", &self.limiter)
            .finish()
    }
}

/// A tower service whose calls pass through a [`Limiter`].
///
/// [`poll_ready`](Service::poll_ready) first waits for the limiter (a
/// concurrency slot, then the rate cells, in FIFO order with every other
/// user of the limiter), then for the inner service. [`call`](Service::call)
/// moves the permit into the [`ResponseFuture`], which holds the slot until
/// the response is produced, the call fails, or the future is dropped (and
/// at least the limiter's [`min_hold`](crate::LimiterBuilder::min_hold)).
///
/// A service made ready holds its permit until `call`. Dropping it instead
/// gives the permit back, as does dropping it while it waits. A clone
/// shares the limiter but is not ready: it waits for its own permit.
///
/// # Fairness
///
/// Services are queued in the order their `poll_ready` first waited, with
/// every other acquire of the same limiter (the limiter's FIFO guarantee).
///
/// # Errors
///
/// The error type is [`BoxError`]: the inner service's error, or the
/// limiter's [`AcquireError`](crate::AcquireError) when it is closed or its
/// weight can never be admitted (`err.downcast_ref::<AcquireError>()`).
///
/// # Examples
///
/// ```
/// use limiters::tower::LimiterService;
/// use limiters::Limiter;
/// use tower::{service_fn, Service, ServiceExt};
///
/// # futures_lite::future::block_on(async {
/// let limiter = Limiter::builder().concurrency(1).build()?;
/// let inner = service_fn(|name: &'static str| async move {
///     Ok::<_, std::convert::Infallible>(format!("hello {name}"))
/// });
/// let mut service = LimiterService::new(inner, limiter.clone());
/// let response = service.ready().await?.call("world");
/// assert_eq!(limiter.available_slots(), Some(0)); // held by the response future
/// assert_eq!(response.await?, "hello world");
/// assert_eq!(limiter.available_slots(), Some(1));
/// # Ok::<(), limiters::tower::BoxError>(())
/// # }).unwrap();
/// ```
pub struct LimiterService<S, C: Clock> {
    inner: S,
    limiter: Limiter<C>,
    /// The acquire in progress (or the last one, finished, kept so the
    /// next one reuses its allocation).
    acquire: Option<Pin<Box<LimiterAcquire<C>>>>,
    waiting: bool,
    /// The permit of a ready service, handed to the next `call`.
    permit: Option<LimiterPermit<C>>,
}

impl<S, C: Clock> LimiterService<S, C> {
    /// Wraps `inner` in `limiter` (what [`LimiterLayer`] does).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::tower::LimiterService;
    /// use limiters::Limiter;
    ///
    /// let limiter = Limiter::builder().concurrency(2).build().unwrap();
    /// let service = LimiterService::new(tower::service_fn(|x: u8| async move { Ok::<_, ()>(x) }), limiter);
    /// # let _ = service;
    /// ```
    pub fn new(inner: S, limiter: Limiter<C>) -> Self {
        Self {
            inner,
            limiter,
            acquire: None,
            waiting: false,
            permit: None,
        }
    }

    /// The limiter.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::tower::LimiterService;
    /// use limiters::Limiter;
    ///
    /// let service = LimiterService::new((), Limiter::builder().concurrency(2).build().unwrap());
    /// assert_eq!(service.limiter().concurrency(), Some(2));
    /// ```
    pub fn limiter(&self) -> &Limiter<C> {
        &self.limiter
    }

    /// The inner service.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::tower::LimiterService;
    /// use limiters::Limiter;
    ///
    /// let service = LimiterService::new("inner", Limiter::builder().concurrency(2).build().unwrap());
    /// assert_eq!(*service.get_ref(), "inner");
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::tower::LimiterService;
    /// use limiters::Limiter;
    ///
    /// let mut service = LimiterService::new(1, Limiter::builder().concurrency(2).build().unwrap());
    /// *service.get_mut() += 1;
    /// assert_eq!(service.into_inner(), 2);
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service; a permit held by a ready service goes back.
    ///
    /// # Examples
    ///
    /// See [`get_mut`](Self::get_mut).
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, C: Clock> Clone for LimiterService<S, C> {
    /// A service sharing the limiter, not ready: it waits for its own
    /// permit (tower's contract for clones).
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), self.limiter.clone())
    }
}

impl<S, C: Clock> fmt::Debug for LimiterService<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimiterService")
            .field("limiter", &self.limiter)
            .field("waiting", &self.waiting)
            .field("ready", &self.permit.is_some())
            .finish_non_exhaustive()
    }
}

impl<S, Request, C> Service<Request> for LimiterService<S, C>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
    C: Clock,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    /// Waits for a permit from the limiter, then for the inner service.
    ///
    /// # Errors
    ///
    /// The limiter's [`AcquireError`](crate::AcquireError), or the inner
    /// service's error (the permit is then given back).
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.permit.is_none() {
            if !self.waiting {
                let fresh = self.limiter.acquire();
                match &mut self.acquire {
                    Some(acquire) => acquire.set(fresh),
                    None => self.acquire = Some(Box::pin(fresh)),
                }
                self.waiting = true;
            }
            let acquire = self.acquire.as_mut().expect("an acquire was started");
            let admitted = ready!(acquire.as_mut().poll(cx));
            self.waiting = false;
            self.permit = Some(admitted?);
        }
        let ready = ready!(self.inner.poll_ready(cx));
        if ready.is_err() {
            self.permit = None;
        }
        Poll::Ready(ready.map_err(Into::into))
    }

    /// Calls the inner service; the permit rides in the response future.
    ///
    /// # Panics
    ///
    /// If `poll_ready` has not returned `Ready(Ok(()))` since the last call
    /// (tower's contract).
    fn call(&mut self, request: Request) -> Self::Future {
        let permit = self
            .permit
            .take()
            .expect("LimiterService::call without a ready poll_ready: call poll_ready first");
        ResponseFuture {
            inner: self.inner.call(request),
            permit: Some(permit),
        }
    }
}

pin_project! {
    /// The response future of [`LimiterService`]: the inner service's
    /// future, holding the limiter's permit until it completes.
    ///
    /// # Cancel safety
    ///
    /// Dropping it gives the permit back (after the limiter's minimum hold).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::tower::{LimiterService, ResponseFuture};
    /// use limiters::{Limiter, SystemClock};
    /// use tower::{service_fn, Service, ServiceExt};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = Limiter::builder().concurrency(1).build()?;
    /// let inner = service_fn(|x: u32| async move { Ok::<_, std::convert::Infallible>(x) });
    /// let mut service = LimiterService::new(inner, limiter.clone());
    /// let response = service.ready().await?.call(7);
    /// drop(response); // cancelled: the slot goes back
    /// assert_eq!(limiter.available_slots(), Some(1));
    /// # Ok::<(), limiters::tower::BoxError>(())
    /// # }).unwrap();
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct ResponseFuture<F, C: Clock> {
        #[pin]
        inner: F,
        permit: Option<LimiterPermit<C>>,
    }
}

impl<F, T, E, C> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Clock,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = ready!(this.inner.poll(cx));
        // The response is produced: the slot goes back now, not when the
        // caller drops this future.
        *this.permit = None;
        Poll::Ready(output.map_err(Into::into))
    }
}

impl<F, C: Clock> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseFuture { .. }")
    }
}
