//! Serves a limiter's `stats()` in the Prometheus text format (feature
//! `metrics`): `cargo run --example prometheus --features metrics`.
//!
//! The exporter here only renders the text; in a server, return
//! `handle.render()` from your `/metrics` handler, calling `record` on each
//! limiter's snapshot just before (nothing runs in the background).

use std::time::Duration;

use limiters::{Limiter, Quota};
use metrics_exporter_prometheus::PrometheusBuilder;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let handle = PrometheusBuilder::new().install_recorder()?;
    let limiter = Limiter::builder()
        .concurrency(4)
        .rate(Quota::per_second(100).allow_burst(10))
        .build()?;
    futures_lite::future::block_on(async {
        for i in 0..20u64 {
            limiter.run(async { i }).await?;
        }
        // Shed what cannot start within a millisecond.
        let _ = limiter.run_within(Duration::from_millis(1), async {}).await;
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;

    // What a `/metrics` handler does: publish the snapshot, then render.
    limiter.stats().record("example_api");
    print!("{}", handle.render());
    Ok(())
}
