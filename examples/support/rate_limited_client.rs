//! `RateLimitedClient`: an HTTP client that respects a server's limits and
//! recovers when the server says otherwise.
//!
//! It holds one [`Limiter`] (configured from the limits the server
//! publishes) and sends every request through it. If the server answers
//! `429 Too Many Requests` anyway (its real limits are stricter, or other
//! clients share them), the client pauses the *whole* limiter for the
//! `Retry-After` the server gave (every queued request waits too, not just
//! the one that was refused) and tries again. No request is lost.
//!
//! It speaks HTTP with [`smol_get`], which runs on any executor.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use limiters::Limiter;

use super::client::{smol_get, BoxError};

/// An HTTP client behind a [`Limiter`], retrying `429` after `Retry-After`.
#[derive(Debug)]
pub struct RateLimitedClient {
    limiter: Limiter,
    max_attempts: u32,
    refused: AtomicU64,
}

impl RateLimitedClient {
    /// A client whose requests all pass through `limiter` (clones of it
    /// share its limits, so several clients can share one budget).
    pub fn new(limiter: Limiter) -> Self {
        Self {
            limiter,
            max_attempts: 10,
            refused: AtomicU64::new(0),
        }
    }

    /// `GET url` and parse the body as JSON. A `429` pauses the limiter
    /// for the `Retry-After` (1 s if the server gave none) and retries, up
    /// to 10 attempts in all.
    pub async fn get_json(&self, url: &str) -> Result<serde_json::Value, BoxError> {
        for _ in 0..self.max_attempts {
            let answer = self.limiter.run(smol_get(url)).await??;
            match answer.status {
                200 => return Ok(serde_json::from_slice(&answer.body)?),
                429 => {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    let wait = answer.retry_after.unwrap_or(Duration::from_secs(1));
                    self.limiter.pause_for(wait);
                }
                status => return Err(format!("GET {url}: unexpected status {status}").into()),
            }
        }
        Err(format!(
            "GET {url}: still refused after {} attempts",
            self.max_attempts
        )
        .into())
    }

    /// How many `429` answers it has recovered from so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// The limiter in front of the requests.
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }
}
