//! The GCRA arithmetic every rate front shares: [`RateLimiter`], the
//! composite [`Limiter`]'s rate gate and [`KeyedRateLimiter`]. Pure integer
//! functions of a quota, a `tat` and an instant; no state, no atomics.
//!
//! # Implementation details
//!
//! GCRA keeps one number per limit, `tat`, the *theoretical arrival time*.
//! With `t` the emission interval (`period / cells`) and `tau` the burst
//! tolerance (`burst * t`), a request for `n` cells at `now` moves `tat` to
//! `max(tat, now) + n * t` and conforms if that is at most `now + tau`.
//! `t` is rarely a whole number of nanoseconds, so time is counted in
//! *ticks* of `1 / cells` ns: then `t` is exactly `period` ticks and `tau`
//! exactly `burst * period` ticks, and no rounding ever changes the long-run
//! rate. [`Ticks`] and [`Step`] are that arithmetic in `u128` (at most
//! 2^64 ns × 2^32 cells = 2^96 ticks), saturating; [`Admission`] is the same
//! decision on a `tat` kept as a (whole ns, remainder ticks) pair, in 64-bit
//! operations, for the lock-free hot path.
//!
//! [`RateLimiter`]: crate::rate::gcra::RateLimiter
//! [`Limiter`]: crate::limiter::Limiter
//! [`KeyedRateLimiter`]: crate::keyed::KeyedRateLimiter

use crate::rate::quota::Quota;

/// A quota in ticks (`1 / cells` ns): `t` and `tau` are whole numbers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticks {
    /// Emission interval in ticks (= the quota's period in ns).
    pub(crate) t: u128,
    /// Ticks per nanosecond (= the quota's cells).
    pub(crate) cells: u128,
    /// Burst tolerance in ticks (`burst * t`).
    pub(crate) tau: u128,
    pub(crate) burst: u32,
}

impl Ticks {
    pub(crate) fn of(quota: Quota) -> Ticks {
        let t = quota.period_ns() as u128;
        Ticks {
            t,
            cells: quota.cells() as u128,
            tau: quota.burst() as u128 * t,
            burst: quota.burst(),
        }
    }

    /// The tick count of `ns`.
    pub(crate) fn at(&self, ns: u64) -> u128 {
        ns as u128 * self.cells
    }

    /// The first whole nanosecond at or after `ticks`, saturating.
    pub(crate) fn ns_ceil(&self, ticks: u128) -> u64 {
        u64::try_from(ticks.div_ceil(self.cells)).unwrap_or(u64::MAX)
    }

    /// The largest `tat` the state word can hold (2^64 - 1 ns, 584 years).
    pub(crate) fn max_tat(&self) -> u128 {
        u64::MAX as u128 * self.cells + (self.cells - 1)
    }

    /// The ticks of a (whole ns, remainder ticks) pair.
    pub(crate) fn of_pair(&self, (ns, rem): (u64, u32)) -> u128 {
        u128::from(ns) * self.cells + u128::from(rem)
    }

    /// `tat` (clamped to [`Ticks::max_tat`]) as a (whole ns, remainder
    /// ticks) pair.
    pub(crate) fn pair(&self, tat: u128) -> (u64, u32) {
        let tat = tat.min(self.max_tat());
        // Both fit: `tat / cells <= u64::MAX`, `tat % cells < cells`.
        ((tat / self.cells) as u64, (tat % self.cells) as u32)
    }

    /// `n` cells' worth of ticks.
    pub(crate) fn cells_ticks(&self, n: u32) -> u128 {
        n as u128 * self.t
    }

    /// The largest `n` for which a request at `now` conforms with `tat` as
    /// it stands ([`Step::new`] then [`Step::conforms`]): the credit left,
    /// `tau - (max(tat, now) - now)`, in whole cells, and no more than
    /// fits the state word.
    pub(crate) fn remaining(&self, tat: u128, now: u64) -> u32 {
        let now = self.at(now);
        let base = tat.max(now);
        let room = self
            .tau
            .saturating_sub(base - now)
            .min(self.max_tat().saturating_sub(base));
        // At most `tau / t`, the burst: fits a `u32`.
        (room / self.t) as u32
    }

    /// Nanoseconds from `now` until `tat` is in the past, that is until the
    /// whole burst conforms again.
    pub(crate) fn until_full_ns(&self, tat: u128, now: u64) -> u64 {
        self.ns_ceil(tat).saturating_sub(now)
    }
}

/// What a request for `n` cells at `now` would do to `tat`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Step {
    /// `tat` after the request (not yet clamped to [`Ticks::max_tat`]).
    pub(crate) tat: u128,
    /// The first instant, in ticks, at which the request conforms.
    pub(crate) earliest: u128,
}

impl Step {
    pub(crate) fn new(tat: u128, now: u64, n: u32, k: &Ticks) -> Step {
        let new_tat = tat.max(k.at(now)) + k.cells_ticks(n);
        Step {
            tat: new_tat,
            earliest: new_tat.saturating_sub(k.tau),
        }
    }

    /// A reservation: like [`Step::new`] made at the (whole ns) instant it
    /// is admitted. If that instant rounds up past `max(tat, now)`, the
    /// cells are placed from it, as a check made then would place them, so
    /// every admitted slot starts no earlier than its admission (which is
    /// what the window bound rests on).
    pub(crate) fn reserve(tat: u128, now: u64, n: u32, k: &Ticks) -> Step {
        let step = Step::new(tat, now, n, k);
        let ready = k.at(step.earliest_ns(k));
        let start = tat.max(k.at(now)).max(ready);
        Step {
            tat: start + k.cells_ticks(n),
            earliest: step.earliest,
        }
    }

    /// Admitted now, and representable.
    pub(crate) fn conforms(&self, now: u64, k: &Ticks) -> bool {
        self.earliest <= k.at(now) && self.tat <= k.max_tat()
    }

    /// The first whole ns at which it conforms (saturated if `tat` would not
    /// fit the state word: then it is "in 584 years").
    pub(crate) fn earliest_ns(&self, k: &Ticks) -> u64 {
        if self.tat > k.max_tat() {
            u64::MAX
        } else {
            k.ns_ceil(self.earliest)
        }
    }
}

/// What a request for `n` cells at `now` does to a `tat` kept as a pair
/// (whole ns, remainder ticks below `cells`) under `quota`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Admitted: the new `tat` pair.
    Admit(u64, u32),
    /// Denied: the first whole ns at which it would conform.
    Deny(u64),
}

impl Admission {
    /// The decision of [`Step::new`], on the (whole ns, remainder ticks)
    /// pair directly, so an admission costs a few 64-bit operations and one
    /// 64-bit division instead of converting to ticks and back through the
    /// 128-bit division routine. Falls back to [`Step`] where a pair would
    /// overflow (`n * period` beyond `u64`, `tat` near the 584-year limit).
    #[inline]
    pub(crate) fn of(tat: (u64, u32), now: u64, n: u32, quota: Quota) -> Admission {
        Self::in_pairs(tat, now, n, quota).unwrap_or_else(|| Self::in_ticks(tat, now, n, quota))
    }

    #[inline]
    fn in_pairs((ns, rem): (u64, u32), now: u64, n: u32, quota: Quota) -> Option<Admission> {
        let cells = u64::from(quota.cells());
        let period = quota.period_ns();
        let rem = u64::from(rem);
        // max(tat, now): a pair with more whole ns is later, as `rem < cells`.
        let (base_ns, base_rem) = if ns >= now { (ns, rem) } else { (now, 0) };
        // n * t = n * period ticks = (whole ns, remainder) of n * period / cells.
        let ticks = u64::from(n).checked_mul(period)?;
        let (add_ns, add_rem) = (ticks / cells, ticks % cells);
        let mut tat_rem = base_rem + add_rem;
        let mut tat_ns = base_ns.checked_add(add_ns)?;
        if tat_rem >= cells {
            tat_rem -= cells;
            tat_ns = tat_ns.checked_add(1)?;
        }
        // Conforms iff tat - tau <= now, i.e. (tat - now) in ticks <= tau.
        let ahead = u128::from(tat_ns - now) * u128::from(cells) + u128::from(tat_rem);
        let tau = u128::from(quota.burst()) * u128::from(period);
        Some(if ahead <= tau {
            // `tat_rem < cells <= u32::MAX`.
            Admission::Admit(tat_ns, tat_rem as u32)
        } else {
            Admission::Deny(now.saturating_add(Self::wait_ns(ahead - tau, cells)))
        })
    }

    /// `over` ticks past the burst, in whole ns rounded up: a 64-bit
    /// division unless the debt is beyond 2^64 ticks (out of line).
    #[inline]
    fn wait_ns(over: u128, cells: u64) -> u64 {
        match u64::try_from(over) {
            Ok(over) => over.div_ceil(cells),
            Err(_) => Self::wait_ns_wide(over, cells),
        }
    }

    #[cold]
    #[inline(never)]
    fn wait_ns_wide(over: u128, cells: u64) -> u64 {
        u64::try_from(over.div_ceil(u128::from(cells))).unwrap_or(u64::MAX)
    }

    /// The general form, in `u128` ticks, saturating.
    #[cold]
    fn in_ticks(tat: (u64, u32), now: u64, n: u32, quota: Quota) -> Admission {
        let k = Ticks::of(quota);
        let step = Step::new(k.of_pair(tat), now, n, &k);
        if step.conforms(now, &k) {
            let (ns, rem) = k.pair(step.tat);
            Admission::Admit(ns, rem)
        } else {
            Admission::Deny(step.earliest_ns(&k))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Admission, Quota};
    use core::time::Duration;
    use proptest::prelude::*;

    /// Nanosecond values around `0..10^12` mostly, anywhere sometimes.
    fn ns() -> impl Strategy<Value = u64> {
        prop_oneof![
            0..1_000_000_000_000u64,
            any::<u64>(),
            u64::MAX - 1_000_000..=u64::MAX
        ]
    }

    #[test]
    fn pairs_take_everyday_quotas() {
        let quota = Quota::per_second(3).allow_burst(2);
        // tat = 1 s + 1/3 s: 1,333,333,333 ns and 1 tick of 1/3 ns.
        assert_eq!(
            Admission::in_pairs((1_333_333_333, 1), 1_000_000_000, 1, quota),
            Some(Admission::Admit(1_666_666_666, 2))
        );
        // A third cell at once would conform at 1 s + 1/3 s (rounded up).
        assert_eq!(
            Admission::in_pairs((1_666_666_666, 2), 1_000_000_000, 1, quota),
            Some(Admission::Deny(1_333_333_334))
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// The pair arithmetic of the hot path decides exactly as the
        /// general `u128` one, wherever it does not hand over to it.
        #[test]
        fn pairs_agree_with_ticks(
            cells in prop_oneof![1..=1_000u32, any::<u32>().prop_map(|c| c.max(1))],
            period in prop_oneof![1..=10_000_000_000u64, 1..=u64::MAX],
            burst in prop_oneof![1..=10u32, any::<u32>().prop_map(|b| b.max(1))],
            tat_ns in ns(),
            rem in any::<u32>(),
            offset in -10_000_000_000i64..=10_000_000_000,
            n in prop_oneof![1..=3u32, any::<u32>().prop_map(|n| n.max(1))],
        ) {
            let quota = Quota::new(cells, Duration::from_nanos(period)).unwrap().allow_burst(burst);
            let tat = (tat_ns, rem % cells);
            let now = tat_ns.saturating_add_signed(offset);
            if let Some(fast) = Admission::in_pairs(tat, now, n, quota) {
                prop_assert_eq!(fast, Admission::in_ticks(tat, now, n, quota));
            }
        }
    }
}
