//! Code shared by the examples and `tests/http.rs`: a local HTTP server that
//! enforces its own limits, and small HTTP clients for tokio and smol.
//!
//! Examples include it with `mod support;`, tests with
//! `#[path = "../examples/support/mod.rs"] mod support;`.
#![allow(dead_code)] // each example uses a different part

pub mod client;
pub mod rate_limited_client;
pub mod server;
