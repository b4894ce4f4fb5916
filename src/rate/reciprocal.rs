//! [`Divisor`]: exact `u64` division by a divisor fixed at construction,
//! without a division instruction.
//!
//! # Implementation details
//!
//! A hardware 64-bit division takes tens of cycles on many CPUs; a
//! multiplication takes three. With `m = floor((2^64 - 1) / d)`, the
//! estimate `q = floor(n * m / 2^64)` (the high half of one 64x64-bit
//! product) is `floor(n / d)` or one less, for every `n < 2^64`:
//!
//! - `m <= 2^64 / d`, so `n * m / 2^64 <= n / d`;
//! - `m >= (2^64 - d) / d = 2^64 / d - 1`, so
//!   `n * m / 2^64 >= n / d - n / 2^64 > n / d - 1`.
//!
//! So `r = n - q * d` lies in `[0, 2d)`, and one comparison with `d` fixes
//! both quotient and remainder. The unit tests check the bound at the
//! edges (`d = 1`, powers of two, `u64::MAX`, `n` next to multiples of
//! `d`) and on random pairs.

use core::num::NonZeroU64;

/// `d` and its reciprocal (see the module docs).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Divisor {
    d: NonZeroU64,
    m: u64,
}

impl Divisor {
    /// Division by `d`.
    pub(crate) const fn new(d: NonZeroU64) -> Divisor {
        Divisor {
            d,
            m: u64::MAX / d.get(),
        }
    }

    /// The divisor.
    #[inline(always)]
    pub(crate) const fn get(self) -> u64 {
        self.d.get()
    }

    /// The divisor, known not to be zero.
    #[inline(always)]
    pub(crate) const fn get_nonzero(self) -> NonZeroU64 {
        self.d
    }

    /// `(n / d, n % d)`, exact for every `n`.
    #[inline(always)]
    pub(crate) const fn div_rem(self, n: u64) -> (u64, u64) {
        let d = self.d.get();
        // The estimate is `n / d` or one less (module docs): `q * d <= n`,
        // and `r < 2d`.
        let q = ((n as u128 * self.m as u128) >> 64) as u64;
        let r = n - q * d;
        if r >= d {
            (q + 1, r - d)
        } else {
            (q, r)
        }
    }

    /// `n / d`, rounded down.
    #[inline(always)]
    pub(crate) const fn div(self, n: u64) -> u64 {
        self.div_rem(n).0
    }

    /// `n / d`, rounded up.
    #[inline(always)]
    pub(crate) const fn div_ceil(self, n: u64) -> u64 {
        let (q, r) = self.div_rem(n);
        q + (r != 0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::Divisor;
    use alloc::vec;
    use core::num::NonZeroU64;

    fn check(d: u64, n: u64) {
        let div = Divisor::new(NonZeroU64::new(d).unwrap());
        assert_eq!(div.div_rem(n), (n / d, n % d), "{n} / {d}");
        assert_eq!(div.div_ceil(n), n.div_ceil(d), "{n} / {d} rounded up");
    }

    #[test]
    fn exact_at_the_edges() {
        let mut divisors = vec![1, 2, 3, 7, 10, 1_000_000, 1_000_000_000, 3_600_000_000_000];
        for shift in 0..64 {
            divisors.extend([1u64 << shift, (1u64 << shift) - 1, (1u64 << shift) + 1]);
        }
        divisors.extend([u64::MAX, u64::MAX - 1, u64::MAX / 2, u64::MAX / 3]);
        divisors.retain(|&d| d != 0);
        for &d in &divisors {
            let mut ns = vec![0, 1, 2, u64::MAX, u64::MAX - 1, u64::MAX / 2];
            for k in [1u64, 2, 3, 1_000, u64::MAX / d, u64::MAX / d - 1] {
                let Some(at) = k.checked_mul(d).filter(|&at| at != 0) else {
                    continue;
                };
                ns.extend([at, at - 1, at.saturating_add(1)]);
            }
            for n in ns {
                check(d, n);
            }
        }
    }

    #[test]
    fn exact_on_random_pairs() {
        // xorshift64*: reproducible, no dependency.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        // Fewer under Miri, which runs them a thousand times slower.
        for _ in 0..if cfg!(miri) { 2_000 } else { 200_000 } {
            let (a, b) = (next(), next());
            // Divisors and dividends of every magnitude.
            let d = (a >> (b % 64)).max(1);
            let n = b >> (a % 64);
            check(d, n);
            check(d, u64::MAX - n);
        }
    }
}
