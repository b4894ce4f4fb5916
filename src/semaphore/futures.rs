//! The semaphore's named futures.

use alloc::sync::Arc;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::raw::{Waiter, COUNTED};
use super::{OwnedPermit, Permit, Semaphore};
use crate::error::AcquireError;

pin_project! {
    /// The future returned by [`Semaphore::acquire`] and
    /// [`Semaphore::acquire_many`] (and their
    /// [`BoundedSemaphore`](crate::BoundedSemaphore) twins).
    ///
    /// It joins the FIFO queue when first polled. It allocates nothing: its
    /// queue node lives inside it, which is why it must be pinned
    /// (`.await` does that for you).
    ///
    /// # Cancel safety
    ///
    /// Dropping it at any point loses no permit: whatever it had collected or
    /// been granted goes to the next waiter.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{futures::Acquire, Semaphore};
    ///
    /// # futures_lite::future::block_on(async {
    /// let sem = Semaphore::new(1);
    /// let fut: Acquire<'_> = sem.acquire();
    /// let permit = fut.await.unwrap();
    /// # drop(permit);
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct Acquire<'a> {
        sem: &'a Semaphore,
        #[pin]
        node: Waiter,
    }

    impl PinnedDrop for Acquire<'_> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            this.node.cancel(&this.sem.raw);
        }
    }
}

impl<'a> Acquire<'a> {
    #[inline]
    pub(crate) fn new(sem: &'a Semaphore, n: usize) -> Self {
        Self {
            sem,
            node: Waiter::new(n),
        }
    }
}

impl<'a> Future for Acquire<'a> {
    type Output = Result<Permit<'a>, AcquireError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let sem: &'a Semaphore = this.sem;
        let n = this.node.num();
        this.node
            .poll_acquire::<COUNTED>(&sem.raw, cx)
            .map_ok(|()| Permit::new(sem, n))
    }
}

impl fmt::Debug for Acquire<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("permits", &self.node.num())
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// The future returned by [`Semaphore::acquire_owned`] and
    /// [`Semaphore::acquire_many_owned`]; it resolves to an [`OwnedPermit`].
    ///
    /// # Cancel safety
    ///
    /// As [`Acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use limiters::{futures::AcquireOwned, Semaphore};
    ///
    /// # futures_lite::future::block_on(async {
    /// let sem = Arc::new(Semaphore::new(1));
    /// let fut: AcquireOwned = sem.acquire_owned();
    /// let permit = fut.await.unwrap();
    /// # drop(permit);
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct AcquireOwned {
        sem: Arc<Semaphore>,
        #[pin]
        node: Waiter,
    }

    impl PinnedDrop for AcquireOwned {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            this.node.cancel(&this.sem.raw);
        }
    }
}

impl AcquireOwned {
    #[inline]
    pub(crate) fn new(sem: Arc<Semaphore>, n: usize) -> Self {
        Self {
            sem,
            node: Waiter::new(n),
        }
    }
}

impl Future for AcquireOwned {
    type Output = Result<OwnedPermit, AcquireError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let n = this.node.num();
        this.node
            .poll_acquire::<COUNTED>(&this.sem.raw, cx)
            .map_ok(|()| OwnedPermit::new(Arc::clone(this.sem), n))
    }
}

impl fmt::Debug for AcquireOwned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireOwned")
            .field("permits", &self.node.num())
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// The future returned by [`Semaphore::run`]: waits for a permit, then
    /// runs the wrapped future while holding it.
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops the wrapped future and then releases the permit (or
    /// leaves the queue).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{futures::Run, Semaphore};
    ///
    /// # futures_lite::future::block_on(async {
    /// let sem = Semaphore::new(1);
    /// let fut: Run<'_, _> = sem.run(async { 7 });
    /// assert_eq!(fut.await, Ok(7));
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct Run<'a, F> {
        // Declared first so it is dropped before the permit is released.
        #[pin]
        future: F,
        #[pin]
        acquire: Acquire<'a>,
        permit: Option<Permit<'a>>,
    }
}

impl<'a, F> Run<'a, F> {
    pub(crate) fn new(acquire: Acquire<'a>, future: F) -> Self {
        Self {
            future,
            acquire,
            permit: None,
        }
    }
}

impl<'a, F: Future> Future for Run<'a, F> {
    type Output = Result<F::Output, AcquireError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if this.permit.is_none() {
            match this.acquire.poll(cx) {
                Poll::Ready(Ok(permit)) => *this.permit = Some(permit),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        let out = core::task::ready!(this.future.poll(cx));
        // Release as soon as the work is done, not when `Run` is dropped.
        *this.permit = None;
        Poll::Ready(Ok(out))
    }
}

impl<F> fmt::Debug for Run<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run")
            .field("holding", &self.permit.is_some())
            .finish_non_exhaustive()
    }
}
