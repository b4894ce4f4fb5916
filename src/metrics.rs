//! Feature `metrics`: the figures of every `stats()` snapshot, exported
//! through the [`metrics`](https://docs.rs/metrics) facade to whatever
//! recorder the program installed (Prometheus, StatsD, ...).
//!
//! Nothing runs in the background (there is no runtime to run it on): call
//! `record` on a snapshot whenever the figures should be published, for
//! example from the handler that serves `/metrics`, or from a periodic
//! task. Every series carries a `limiter` label with the name you give.
//!
//! | Series | Kind | From |
//! | --- | --- | --- |
//! | `limiters_available` | gauge | permits, slots, cells or tokens available now |
//! | `limiters_in_use` | gauge | permits or slots in use (semaphores, `Limiter` with concurrency) |
//! | `limiters_waiters` | gauge | requests queued |
//! | `limiters_keys` | gauge | keys stored (keyed limiters) |
//! | `limiters_admitted_total` | counter | requests admitted |
//! | `limiters_denied_total` | counter | requests refused (`try_*`, `check*`, deadlines) |
//! | `limiters_waited_total` | counter | admitted requests that waited |
//! | `limiters_wait_seconds_sum` | gauge | time those requests waited, in seconds |
//! | `limiters_wait_seconds_max` | gauge | the longest of those waits, in seconds |
//! | `limiters_pauses_total` | counter | pauses requested (rate limiters, `Limiter`) |
//!
//! `examples/prometheus.rs` serves them in the Prometheus text format.

use metrics::{counter, gauge};

use crate::stats::{KeyedStats, LimiterStats, RateStats, SemaphoreStats, Totals};

fn gauge_of(name: &'static str, limiter: &str, value: f64) {
    gauge!(name, "limiter" => limiter.to_owned()).set(value);
}

fn counter_of(name: &'static str, limiter: &str, value: u64) {
    counter!(name, "limiter" => limiter.to_owned()).absolute(value);
}

#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
impl Totals {
    /// Publishes the totals under the `limiter` label (see the
    /// [module docs](crate::metrics)).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Semaphore;
    ///
    /// let sem = Semaphore::new(1);
    /// sem.stats().totals.record("db");
    /// ```
    pub fn record(&self, limiter: &str) {
        counter_of("limiters_admitted_total", limiter, self.admitted);
        counter_of("limiters_denied_total", limiter, self.denied);
        counter_of("limiters_waited_total", limiter, self.waited);
        gauge_of(
            "limiters_wait_seconds_sum",
            limiter,
            self.wait_total.as_secs_f64(),
        );
        gauge_of(
            "limiters_wait_seconds_max",
            limiter,
            self.wait_max.as_secs_f64(),
        );
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
impl SemaphoreStats {
    /// Publishes the snapshot under the `limiter` label (see the
    /// [module docs](crate::metrics)).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Semaphore;
    ///
    /// let db_pool = Semaphore::new(10);
    /// db_pool.stats().record("db_pool");
    /// ```
    pub fn record(&self, limiter: &str) {
        gauge_of("limiters_available", limiter, self.available as f64);
        gauge_of("limiters_in_use", limiter, self.in_use as f64);
        gauge_of("limiters_waiters", limiter, self.waiters as f64);
        self.totals.record(limiter);
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
impl RateStats {
    /// Publishes the snapshot under the `limiter` label (see the
    /// [module docs](crate::metrics)); `available` is `remaining`.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{Quota, RateLimiter};
    ///
    /// let api = RateLimiter::new(Quota::per_second(50));
    /// api.stats().record("api");
    /// ```
    pub fn record(&self, limiter: &str) {
        gauge_of("limiters_available", limiter, f64::from(self.remaining));
        gauge_of("limiters_waiters", limiter, self.waiters as f64);
        counter_of("limiters_pauses_total", limiter, self.pauses);
        self.totals.record(limiter);
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
impl LimiterStats {
    /// Publishes the snapshot under the `limiter` label (see the
    /// [module docs](crate::metrics)); slot gauges only with a concurrency
    /// limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{Limiter, Quota};
    ///
    /// let limiter = Limiter::builder().concurrency(10).rate(Quota::per_second(50)).build()?;
    /// limiter.stats().record("github");
    /// # Ok::<(), limiters::BuildError>(())
    /// ```
    pub fn record(&self, limiter: &str) {
        if let Some(available) = self.available {
            gauge_of("limiters_available", limiter, available as f64);
        }
        if let Some(in_use) = self.in_use {
            gauge_of("limiters_in_use", limiter, in_use as f64);
        }
        gauge_of("limiters_waiters", limiter, self.waiters as f64);
        counter_of("limiters_pauses_total", limiter, self.pauses);
        self.totals.record(limiter);
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
impl KeyedStats {
    /// Publishes the snapshot under the `limiter` label (see the
    /// [module docs](crate::metrics)).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{KeyedRateLimiter, Quota};
    ///
    /// let per_ip: KeyedRateLimiter<std::net::IpAddr> = KeyedRateLimiter::new(Quota::per_second(5));
    /// per_ip.stats().record("per_ip");
    /// ```
    pub fn record(&self, limiter: &str) {
        gauge_of("limiters_keys", limiter, self.keys as f64);
        gauge_of("limiters_waiters", limiter, self.waiters as f64);
        self.totals.record(limiter);
    }
}
