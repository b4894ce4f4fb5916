//! A local HTTP/1.1 server that enforces its own limits, independent of the
//! `limiters` crate, and records what it saw.
//!
//! It plays the part of a real API with published limits: at most
//! `max_concurrent` requests in flight and at most `max_per_second` requests
//! admitted in any rolling second. A request over either limit is answered
//! `429 Too Many Requests` with a `Retry-After` header (whole seconds, as HTTP
//! requires). Every admitted request "works" for a while before answering
//! `200` with a small JSON body.
//!
//! The server runs on its own thread with its own single-threaded tokio
//! runtime, so clients on any runtime (tokio, smol, ...) can talk to it, and
//! it stops when the [`TestServer`] is dropped.
//!
//! What it records ([`Report`]) is measured at the server, from every
//! arrival, rejected or not: the status counts, the peak number of requests
//! in flight at once, and the largest number of arrivals in any rolling
//! second. A client that respects the limits shows no `429`, a peak at most
//! `max_concurrent` and a per-second maximum at most `max_per_second`.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// The rolling window the per-second limit is measured over.
const WINDOW: Duration = Duration::from_secs(1);

/// The limits the server enforces and how long each admitted request works.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Requests in flight at once; the next one gets a 429.
    pub max_concurrent: usize,
    /// Requests admitted in any rolling second; the next one gets a 429.
    pub max_per_second: usize,
    /// How long admitted request number `n` (from 0) works before answering.
    pub work: fn(u64) -> Duration,
    /// The first `fail_first` requests are answered 429 with
    /// `Retry-After: 1` whatever the load (to test a client's retry path).
    pub fail_first: u64,
}

impl ServerConfig {
    /// A server with these limits whose requests each work for `work`.
    pub fn new(max_concurrent: usize, max_per_second: usize) -> Self {
        Self {
            max_concurrent,
            max_per_second,
            work: |_| Duration::from_millis(20),
            fail_first: 0,
        }
    }
}

/// What the server saw, counted at the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Responses by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// The most requests in flight at once (every arrival counts, rejected
    /// or not, from the moment its headers are parsed until it is answered).
    pub peak_in_flight: usize,
    /// The most arrivals in any rolling second (rejected ones included).
    pub max_per_second: usize,
}

impl Report {
    /// Requests answered in total.
    pub fn total(&self) -> u64 {
        self.statuses.values().sum()
    }

    /// How many were answered with `status`.
    pub fn count(&self, status: u16) -> u64 {
        self.statuses.get(&status).copied().unwrap_or(0)
    }
}

#[derive(Default)]
struct State {
    report: Report,
    arrivals_seen: u64,
    admitted_seen: u64,
    in_flight: usize,
    /// Arrival instants within the last rolling second (for the report).
    arrivals: VecDeque<Instant>,
    /// Admission instants within the last rolling second (for the limit).
    admitted: VecDeque<Instant>,
}

/// Drops instants that left the rolling window `(now - 1s, now]`.
fn trim(window: &mut VecDeque<Instant>, now: Instant) {
    while window
        .front()
        .is_some_and(|&t| now.duration_since(t) >= WINDOW)
    {
        window.pop_front();
    }
}

enum Verdict {
    Admit(u64),
    Reject { retry_after_secs: u64 },
}

struct Shared {
    config: ServerConfig,
    state: Mutex<State>,
}

impl Shared {
    fn arrive(&self) -> Verdict {
        let now = Instant::now();
        let mut s = self.state.lock().unwrap();
        let n = s.arrivals_seen;
        s.arrivals_seen += 1;
        s.in_flight += 1;
        s.report.peak_in_flight = s.report.peak_in_flight.max(s.in_flight);
        trim(&mut s.arrivals, now);
        s.arrivals.push_back(now);
        s.report.max_per_second = s.report.max_per_second.max(s.arrivals.len());
        trim(&mut s.admitted, now);

        if n < self.config.fail_first || s.in_flight > self.config.max_concurrent {
            return Verdict::Reject {
                retry_after_secs: 1,
            };
        }
        if s.admitted.len() >= self.config.max_per_second {
            // The oldest admission leaves the window first; round up to whole
            // seconds as Retry-After requires.
            let oldest = s.admitted[0];
            let wait = WINDOW.saturating_sub(now.duration_since(oldest));
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Verdict::Reject {
                retry_after_secs: secs.max(1),
            };
        }
        s.admitted.push_back(now);
        let k = s.admitted_seen;
        s.admitted_seen += 1;
        Verdict::Admit(k)
    }

    /// Called when the response is ready, before it is written: a client can
    /// only see the answer after the server stopped counting the request.
    fn leave(&self, status: StatusCode) {
        let mut s = self.state.lock().unwrap();
        s.in_flight -= 1;
        *s.report.statuses.entry(status.as_u16()).or_default() += 1;
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let response = match self.arrive() {
            Verdict::Admit(n) => {
                tokio::time::sleep((self.config.work)(n)).await;
                let body = format!("{{\"n\":{n},\"path\":\"{}\"}}", req.uri().path());
                Response::builder()
                    .status(StatusCode::OK)
                    .header(CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .unwrap()
            }
            Verdict::Reject { retry_after_secs } => Response::builder()
                .status(StatusCode::TOO_MANY_REQUESTS)
                .header(RETRY_AFTER, retry_after_secs.to_string())
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from_static(
                    b"{\"error\":\"too many requests\"}",
                )))
                .unwrap(),
        };
        self.leave(response.status());
        response
    }
}

/// A running server; stops (and joins its thread) when dropped.
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server on `127.0.0.1` on a free port.
    pub fn start(config: ServerConfig) -> Self {
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(State::default()),
        });
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("test-server-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                    loop {
                        let stream = tokio::select! {
                            _ = &mut stopped => break,
                            accepted = listener.accept() => match accepted {
                                Ok((stream, _)) => stream,
                                Err(_) => continue,
                            },
                        };
                        let _ = stream.set_nodelay(true);
                        let shared = Arc::clone(&serving);
                        tokio::spawn(async move {
                            let service = service_fn(move |req| {
                                let shared = Arc::clone(&shared);
                                async move { Ok::<_, Infallible>(shared.handle(req).await) }
                            });
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                });
            })
            .expect("spawn the server thread");
        Self {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The limits it enforces.
    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// What the server saw so far.
    pub fn report(&self) -> Report {
        self.shared.state.lock().unwrap().report.clone()
    }

    /// Starts a new report. The limits keep their state: requests admitted
    /// in the last second still count against the rate limit.
    pub fn reset_report(&self) {
        let mut s = self.shared.state.lock().unwrap();
        s.report = Report {
            peak_in_flight: s.in_flight,
            ..Report::default()
        };
        s.arrivals.clear();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
