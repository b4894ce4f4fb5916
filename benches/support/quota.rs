//! The admit-all quotas every bench shares (`rate.rs`, scenario 7 in
//! `support::composite`, `instructions.rs`; `memory.rs` uses `nz`).

use std::num::NonZeroU32;

/// `n` as a governor quota argument.
pub fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("non-zero")
}

/// A quota that never denies at benchmark speed: one cell per nanosecond
/// (a check takes longer than that) with a burst of u32::MAX (4.3 s of
/// credit, more than a run takes even on a clock that stands still). The
/// interval is a whole nanosecond, so both crates represent it exactly
/// (governor truncates `1 s / cells` to whole ns: u32::MAX per second would
/// be an interval of 0 for it).
pub fn admit_all() -> limiters::Quota {
    limiters::Quota::per_second(1_000_000_000).allow_burst(u32::MAX)
}

pub fn governor_admit_all() -> governor::Quota {
    governor::Quota::per_second(nz(1_000_000_000)).allow_burst(nz(u32::MAX))
}
