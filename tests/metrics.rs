//! Feature `metrics`: every `stats()` figure reaches the `metrics` facade
//! under the user's `limiter` label, checked with `metrics-util`'s
//! debugging recorder.
#![cfg(feature = "metrics")]

use std::collections::HashMap;
use std::time::Duration;

use std::future::Future;

use limiters::{KeyedRateLimiter, Limiter, ManualClock, Quota, RateLimiter, Semaphore};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;

/// What `record` published: (kind, name, limiter label) -> value.
fn recorded(record: impl FnOnce()) -> HashMap<(MetricKind, String, String), f64> {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, record);
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let (kind, key) = key.into_parts();
            let label = key
                .labels()
                .find(|l| l.key() == "limiter")
                .expect("every series has a limiter label")
                .value()
                .to_owned();
            let value = match value {
                DebugValue::Counter(v) => v as f64,
                DebugValue::Gauge(v) => v.into_inner(),
                DebugValue::Histogram(_) => panic!("no histograms"),
            };
            ((kind, key.name().to_owned(), label), value)
        })
        .collect()
}

fn gauge(name: &str, label: &str) -> (MetricKind, String, String) {
    (MetricKind::Gauge, name.to_owned(), label.to_owned())
}

fn counter(name: &str, label: &str) -> (MetricKind, String, String) {
    (MetricKind::Counter, name.to_owned(), label.to_owned())
}

#[test]
fn semaphore_figures_reach_the_recorder() {
    let sem = Semaphore::new(3);
    let _held = sem.try_acquire_many(2).unwrap();
    assert!(sem.try_acquire_many(2).is_err());
    let got = recorded(|| sem.stats().record("db"));
    assert_eq!(got[&gauge("limiters_available", "db")], 1.0);
    assert_eq!(got[&gauge("limiters_in_use", "db")], 2.0);
    assert_eq!(got[&gauge("limiters_waiters", "db")], 0.0);
    assert_eq!(got[&counter("limiters_admitted_total", "db")], 1.0);
    assert_eq!(got[&counter("limiters_denied_total", "db")], 1.0);
    assert_eq!(got.len(), 8, "{got:?}");
}

#[test]
fn rate_limiter_figures_carry_wait_times_and_pauses() {
    let clock = ManualClock::new();
    let rl = RateLimiter::with_clock(Quota::per_second(2), clock.clone());
    rl.check().unwrap();
    let mut waiter = Box::pin(rl.acquire());
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    assert!(waiter.as_mut().poll(&mut cx).is_pending());
    clock.advance(Duration::from_millis(500));
    assert!(waiter.as_mut().poll(&mut cx).is_ready());
    rl.pause_for(Duration::from_secs(1));
    let got = recorded(|| rl.stats().record("api"));
    assert_eq!(got[&counter("limiters_admitted_total", "api")], 2.0);
    assert_eq!(got[&counter("limiters_waited_total", "api")], 1.0);
    assert_eq!(got[&gauge("limiters_wait_seconds_sum", "api")], 0.5);
    assert_eq!(got[&gauge("limiters_wait_seconds_max", "api")], 0.5);
    assert_eq!(got[&counter("limiters_pauses_total", "api")], 1.0);
    assert_eq!(got[&gauge("limiters_available", "api")], 0.0);
}

#[test]
fn limiter_and_keyed_figures_use_their_own_labels() {
    let limiter = Limiter::builder()
        .concurrency(4)
        .clock(ManualClock::new())
        .build()
        .unwrap();
    let keyed = KeyedRateLimiter::with_clock(Quota::per_second(1), ManualClock::new());
    keyed.check(&"a").unwrap();
    keyed.check(&"b").unwrap();
    let got = recorded(|| {
        limiter.stats().record("github");
        keyed.stats().record("per_ip");
    });
    assert_eq!(got[&gauge("limiters_available", "github")], 4.0);
    assert_eq!(got[&gauge("limiters_in_use", "github")], 0.0);
    assert_eq!(got[&gauge("limiters_keys", "per_ip")], 2.0);
    assert_eq!(got[&counter("limiters_admitted_total", "per_ip")], 2.0);
    // Counters are absolute: recording twice does not double them.
    let again = recorded(|| {
        keyed.stats().record("per_ip");
        keyed.stats().record("per_ip");
    });
    assert_eq!(again[&counter("limiters_admitted_total", "per_ip")], 2.0);
}
