//! `limiters::tower`: `LimiterService` polled by hand over tower-test's mock
//! (readiness, hand-off when a response future drops, no permit lost across
//! clone and drop), and in a real stack, a hyper client behind
//! `ServiceBuilder::new().layer(LimiterLayer::new(..))` against a local
//! server that counts in-flight requests and arrivals per second.
#![cfg(feature = "tower")]

#[path = "../examples/support/mod.rs"]
mod support;

use std::task::Poll;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use limiters::tower::{LimiterLayer, LimiterService};
use limiters::{AcquireError, Limiter, ManualClock, Quota};
use support::client::tokio_client;
use support::server::{ServerConfig, TestServer};
use tower::{ServiceBuilder, ServiceExt};
use tower_test::mock::{self, Mock, Spawn};

type Svc = LimiterService<Mock<&'static str, &'static str>, ManualClock>;

fn limiter(slots: usize, clock: &ManualClock) -> Limiter<ManualClock> {
    Limiter::builder()
        .concurrency(slots)
        .clock(clock.clone())
        .build()
        .unwrap()
}

fn is_ready(svc: &mut Spawn<Svc>) -> bool {
    match svc.poll_ready() {
        Poll::Ready(Ok(())) => true,
        Poll::Ready(Err(e)) => panic!("poll_ready failed: {e}"),
        Poll::Pending => false,
    }
}

fn clone_of(svc: &Spawn<Svc>) -> Spawn<Svc> {
    Spawn::new(svc.get_ref().clone())
}

#[tokio::test]
async fn poll_ready_pends_while_full_and_a_dropped_response_future_hands_over() {
    let clock = ManualClock::new();
    let limiter = limiter(2, &clock);
    let (mut a, mut handle) = mock::spawn_layer(LimiterLayer::new(limiter.clone()));
    let mut b = clone_of(&a);
    let mut c = clone_of(&a);
    let mut d = clone_of(&a);

    assert!(is_ready(&mut a));
    let fa = a.call("a");
    assert!(is_ready(&mut b));
    let fb = b.call("b");
    assert_eq!(limiter.available_slots(), Some(0));
    // Full: c, then d, queue.
    assert!(!is_ready(&mut c));
    assert!(!is_ready(&mut d));

    // Dropping a's response future (cancelled) hands its slot to c, the
    // first waiter, and wakes c only.
    drop(fa);
    assert!(c.is_woken());
    assert!(!d.is_woken());
    assert!(is_ready(&mut c));
    assert!(!is_ready(&mut d));

    // b's response arrives: the slot goes back when the response is
    // produced, to d.
    let request = handle.next_request().await.unwrap();
    let request_b = handle.next_request().await.unwrap();
    assert_eq!(request.0, "a");
    assert_eq!(request_b.0, "b");
    request_b.1.send_response("ok b");
    // Still holding the completed future: the slot went back on completion.
    let mut fb = Box::pin(fb);
    assert_eq!((&mut fb).await.unwrap(), "ok b");
    assert!(d.is_woken());
    assert!(is_ready(&mut d));
    drop((c, d, fb));
    assert_eq!(limiter.available_slots(), Some(2));
}

#[test]
fn ready_services_dropped_or_cloned_lose_no_permit() {
    let clock = ManualClock::new();
    let limiter = limiter(1, &clock);
    let (mut a, _handle) = mock::spawn_layer::<&str, &str, _>(LimiterLayer::new(limiter.clone()));
    assert!(is_ready(&mut a));
    // A clone of a ready service is not ready: it waits for its own permit.
    let mut clone = clone_of(&a);
    assert!(!is_ready(&mut clone));
    let mut waiting = clone_of(&a);
    assert!(!is_ready(&mut waiting));
    // A ready service dropped without a call gives its permit back, to the
    // first waiter.
    drop(a);
    assert!(clone.is_woken());
    assert!(is_ready(&mut clone));
    // Polling again while ready keeps the one permit.
    assert!(is_ready(&mut clone));
    assert_eq!(limiter.available_slots(), Some(0));
    // A waiting service dropped gives its place back; the ready one its
    // permit.
    drop(waiting);
    drop(clone);
    assert_eq!(limiter.available_slots(), Some(1));
}

#[tokio::test]
async fn a_finished_response_keeps_the_slot_for_min_hold() {
    let clock = ManualClock::new();
    let limiter = Limiter::builder()
        .concurrency(1)
        .min_hold(Duration::from_secs(1))
        .clock(clock.clone())
        .build()
        .unwrap();
    let (mut a, mut handle) = mock::spawn_layer(LimiterLayer::new(limiter.clone()));
    let mut b = clone_of(&a);
    assert!(is_ready(&mut a));
    let response = a.call("a");
    handle.next_request().await.unwrap().1.send_response("ok");
    assert_eq!(response.await.unwrap(), "ok");
    assert!(!is_ready(&mut b));
    clock.advance(Duration::from_millis(999));
    assert!(!is_ready(&mut b));
    clock.advance(Duration::from_millis(1));
    assert!(b.is_woken());
    assert!(is_ready(&mut b));
}

#[test]
fn a_closed_limiter_is_an_acquire_error() {
    let clock = ManualClock::new();
    let limiter = limiter(1, &clock);
    let (mut a, _handle) = mock::spawn_layer::<&str, &str, _>(LimiterLayer::new(limiter.clone()));
    assert!(is_ready(&mut a));
    let mut b = clone_of(&a);
    assert!(!is_ready(&mut b));
    limiter.close();
    assert!(b.is_woken());
    match b.poll_ready() {
        Poll::Ready(Err(e)) => {
            assert_eq!(
                e.downcast_ref::<AcquireError>(),
                Some(&AcquireError::Closed)
            )
        }
        other => panic!("expected the closed error, got {other:?}"),
    }
}

#[test]
#[should_panic(expected = "call poll_ready first")]
fn call_without_poll_ready_panics() {
    let clock = ManualClock::new();
    let (mut a, _handle) =
        mock::spawn_layer::<&str, &str, _>(LimiterLayer::new(limiter(1, &clock)));
    drop(a.call("a"));
}

/// A real client stack: hyper-util's pooled client behind the layer, 40
/// requests at once against a server allowing 5 in flight and 20 per
/// second. The server counts: every request a 200, never more than 5 in
/// flight or 20 arrivals in a rolling second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_client_behind_the_layer_respects_the_server() {
    let server = TestServer::start(ServerConfig {
        work: |n| Duration::from_millis(100 + (n * 37) % 150),
        ..ServerConfig::new(5, 20)
    });
    // The server's limits, the rate measured over 1.2 s for headroom.
    let limiter = Limiter::builder()
        .concurrency(5)
        .rate(Quota::new(20, Duration::from_millis(1_200)).unwrap())
        .build()
        .unwrap();
    let client = ServiceBuilder::new()
        .layer(LimiterLayer::new(limiter))
        .service(tokio_client());
    let calls = (0..40).map(|i| {
        let request = hyper::Request::get(server.url(&format!("/item/{i}")))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let client = client.clone();
        tokio::spawn(async move {
            let response = client.oneshot(request).await?;
            let status = response.status().as_u16();
            response.into_body().collect().await?;
            Ok::<_, limiters::tower::BoxError>(status)
        })
    });
    let statuses: Vec<u16> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|joined| joined.unwrap().unwrap())
        .collect();
    let report = server.report();
    println!("tower + hyper client: {report:?}");
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert_eq!(report.count(200), 40, "{report:?}");
    assert!(report.peak_in_flight <= 5, "{report:?}");
    assert!(report.max_per_second <= 20, "{report:?}");
}

mod keyed_layer {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use http::{Request, Response};
    use limiters::tower::{ForwardedFor, KeyedRateLimitLayer};
    use limiters::{KeyedRateLimiter, ManualClock, Quota};
    use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

    /// (status, RateLimit-Policy, RateLimit, Retry-After) of each response.
    type Seen = (u16, Option<String>, Option<String>, Option<String>);

    async fn send<S>(server: &mut S, client: Option<&str>) -> Seen
    where
        S: Service<Request<()>, Response = Response<String>, Error = Infallible>,
    {
        let mut request = Request::builder();
        if let Some(ip) = client {
            request = request.header("x-forwarded-for", ip);
        }
        let response = server
            .ready()
            .await
            .unwrap()
            .call(request.body(()).unwrap())
            .await
            .unwrap();
        let header = |name| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        (
            response.status().as_u16(),
            header("ratelimit-policy"),
            header("ratelimit"),
            header("retry-after"),
        )
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    fn server(
        quota: Quota,
        clock: &ManualClock,
        headers_when_admitted: bool,
    ) -> (
        impl Service<Request<()>, Response = Response<String>, Error = Infallible>,
        Arc<AtomicUsize>,
    ) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let per_client = KeyedRateLimiter::with_clock(quota, clock.clone());
        let service = ServiceBuilder::new()
            .layer(
                KeyedRateLimitLayer::new(per_client, ForwardedFor)
                    .headers_when_admitted(headers_when_admitted),
            )
            .service(service_fn(move |_: Request<()>| {
                counted.fetch_add(1, Ordering::Relaxed);
                async { Ok::<_, Infallible>(Response::new(String::from("ok"))) }
            }));
        (service, calls)
    }

    /// Retry-After and the reset round a fractional second up; the policy
    /// states the steady rate over the period rounded up to whole seconds.
    #[tokio::test]
    async fn fractional_seconds_round_up() {
        let clock = ManualClock::new();
        // One request every 1.5 s.
        let quota = Quota::new(1, Duration::from_millis(1_500)).unwrap();
        let (mut server, calls) = server(quota, &clock, true);
        let policy = some("\"default\";q=1;w=2");
        let a = Some("192.0.2.1");
        assert_eq!(
            send(&mut server, a).await,
            (200, policy.clone(), some("\"default\";r=0;t=2"), None)
        );
        assert_eq!(
            send(&mut server, a).await,
            (429, policy.clone(), some("\"default\";r=0;t=2"), some("2"))
        );
        clock.advance(Duration::from_millis(1_499));
        assert_eq!(
            send(&mut server, a).await,
            (429, policy.clone(), some("\"default\";r=0;t=1"), some("1"))
        );
        clock.advance(Duration::from_millis(1));
        assert_eq!(send(&mut server, a).await.0, 200);
        // The refusals never reached the inner service.
        assert_eq!(calls.load(Ordering::Relaxed), 2);
    }

    /// Requests without a key pass unlimited and without headers; with the
    /// headers turned off for admitted responses, only refusals carry them.
    #[tokio::test]
    async fn no_key_passes_and_admitted_headers_can_be_turned_off() {
        let clock = ManualClock::new();
        let quota = Quota::per_minute(90).allow_burst(2);
        let (mut server, calls) = server(quota, &clock, false);
        for _ in 0..5 {
            assert_eq!(send(&mut server, None).await, (200, None, None, None));
        }
        let a = Some("192.0.2.1");
        assert_eq!(send(&mut server, a).await, (200, None, None, None));
        assert_eq!(send(&mut server, a).await, (200, None, None, None));
        // 90 per minute: a cell every 666.67 ms; the burst of 2 is whole in
        // 1.33 s.
        assert_eq!(
            send(&mut server, a).await,
            (
                429,
                some("\"default\";q=90;w=60"),
                some("\"default\";r=0;t=2"),
                some("1")
            )
        );
        assert_eq!(calls.load(Ordering::Relaxed), 7);
    }
}

/// Every public type of `limiters::tower` can move between threads and be
/// shared, as axum and hyper require of services and their futures.
#[test]
fn tower_types_are_send_and_sync() {
    use limiters::tower::{ForwardedFor, PeerIp, ResponseFuture};
    use limiters::tower::{KeyedRateLimitLayer, KeyedRateLimitService, KeyedResponseFuture};
    use limiters::SystemClock;
    use std::net::IpAddr;

    fn send_sync<T: Send + Sync>() {}
    type Inner = tower::util::BoxCloneSyncService<http::Request<()>, http::Response<()>, ()>;
    type Fut = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), ()>> + Send + Sync>>;
    send_sync::<LimiterLayer<SystemClock>>();
    send_sync::<LimiterService<Inner, SystemClock>>();
    send_sync::<ResponseFuture<Fut, SystemClock>>();
    send_sync::<KeyedRateLimitLayer<IpAddr, PeerIp, SystemClock>>();
    send_sync::<KeyedRateLimitService<Inner, IpAddr, ForwardedFor, SystemClock>>();
    send_sync::<KeyedResponseFuture<Fut, ()>>();
}
