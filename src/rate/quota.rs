//! [`Quota`]: how many cells per period, and how many at once.

use core::fmt;
use core::time::Duration;

use crate::error::QuotaError;

/// A GCRA rate: `cells` per `period`, paced evenly (one cell every
/// `period / cells`), with a default burst of **1** cell
/// ([`allow_burst`](Self::allow_burst) raises it).
///
/// `Quota::per_hour(1_000)` alone admits one call every 3.6 s. For a limit a
/// server publishes as "1,000 per hour" (at most 1,000 in any hour, all at
/// once if you like) use a sliding window instead:
/// [`SlidingWindow`](crate::SlidingWindow) or
/// [`LimiterBuilder::window`](crate::LimiterBuilder::window). A burst of `b`
/// lets up to `b + cells` through in one period, which such a server
/// refuses.
///
/// The rate is kept exactly as given (cells per period), never as a rounded
/// interval, so `Quota::per_second(300_000_000)` admits 300,000,000 cells per
/// second, not 333,333,333.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use limiters::Quota;
///
/// // "100 requests per second, bursts of 10"
/// let api = Quota::per_second(100).allow_burst(10);
/// assert_eq!((api.cells(), api.period(), api.burst()), (100, Duration::from_secs(1), 10));
///
/// // A limit read from configuration: validated, not panicking.
/// let from_config = Quota::new(1_000, Duration::from_secs(3600))?;
/// assert_eq!(from_config.burst(), 1);
/// # Ok::<(), limiters::QuotaError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    cells: u32,
    period_ns: u64,
    burst: u32,
}

impl fmt::Debug for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quota")
            .field("cells", &self.cells)
            .field("period", &self.period())
            .field("burst", &self.burst)
            .finish()
    }
}

impl Quota {
    /// `cells` per `per`, burst 1: the fallible form for values read at run
    /// time.
    ///
    /// # Errors
    ///
    /// [`QuotaError::ZeroCells`] if `cells` is 0, [`QuotaError::ZeroPeriod`]
    /// if `per` is zero, [`QuotaError::PeriodTooLong`] if `per` exceeds
    /// 2^64 - 1 nanoseconds.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::Quota;
    ///
    /// // 3 per 10 seconds: exact, an interval of 3.333... s is never rounded.
    /// let quota = Quota::new(3, Duration::from_secs(10))?;
    /// assert_eq!(quota.cells(), 3);
    /// # Ok::<(), limiters::QuotaError>(())
    /// ```
    pub const fn new(cells: u32, per: Duration) -> Result<Quota, QuotaError> {
        if cells == 0 {
            return Err(QuotaError::ZeroCells);
        }
        let nanos = per.as_nanos();
        if nanos == 0 {
            return Err(QuotaError::ZeroPeriod);
        }
        if nanos > u64::MAX as u128 {
            return Err(QuotaError::PeriodTooLong);
        }
        Ok(Quota {
            cells,
            period_ns: nanos as u64,
            burst: 1,
        })
    }

    const fn per(cells: u32, period_ns: u64) -> Quota {
        Quota {
            cells,
            period_ns,
            burst: 1,
        }
    }

    /// `cells` per second, burst 1.
    ///
    /// # Panics
    ///
    /// If `cells` is 0 (use [`Quota::new`] for values that may be zero).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Quota;
    ///
    /// assert_eq!(Quota::per_second(300_000_000).cells(), 300_000_000);
    /// ```
    #[track_caller]
    pub const fn per_second(cells: u32) -> Quota {
        assert!(
            cells > 0,
            "Quota::per_second(0): a quota must allow at least 1 cell per second"
        );
        Quota::per(cells, 1_000_000_000)
    }

    /// `cells` per minute, burst 1.
    ///
    /// # Panics
    ///
    /// If `cells` is 0 (use [`Quota::new`] for values that may be zero).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::Quota;
    ///
    /// assert_eq!(Quota::per_minute(60).period(), Duration::from_secs(60));
    /// ```
    #[track_caller]
    pub const fn per_minute(cells: u32) -> Quota {
        assert!(
            cells > 0,
            "Quota::per_minute(0): a quota must allow at least 1 cell per minute"
        );
        Quota::per(cells, 60_000_000_000)
    }

    /// `cells` per hour, burst 1.
    ///
    /// # Panics
    ///
    /// If `cells` is 0 (use [`Quota::new`] for values that may be zero).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Quota;
    ///
    /// // "1,000 per hour", all of them at once if they arrive together
    /// let hourly = Quota::per_hour(1_000).allow_burst(1_000);
    /// assert_eq!(hourly.burst(), 1_000);
    /// ```
    #[track_caller]
    pub const fn per_hour(cells: u32) -> Quota {
        assert!(
            cells > 0,
            "Quota::per_hour(0): a quota must allow at least 1 cell per hour"
        );
        Quota::per(cells, 3_600_000_000_000)
    }

    /// The longest span of credit a quota keeps: 2^63 ns, about 292 years.
    /// A burst is at most the cells this span earns (see
    /// [`allow_burst`](Self::allow_burst)).
    pub const MAX_BURST_SPAN: Duration = Duration::from_nanos(1 << 63);

    /// The same rate, admitting up to `burst` cells at once after an idle
    /// spell. Idle time never builds more than `burst` cells of credit.
    ///
    /// Any burst up to `u32::MAX` is valid at any rate, but the credit is
    /// kept to what [`MAX_BURST_SPAN`](Self::MAX_BURST_SPAN) (2^63 ns)
    /// earns, so that every request within the burst is representable: the
    /// burst kept, which [`burst`](Self::burst) reports and every limiter
    /// enforces, is `min(burst, floor(2^63 * cells / period_in_ns))`, and at
    /// least 1. That only bites for slow rates (over 2.1 s per cell): for
    /// `Quota::per_hour(1)` it is 2,562,047 cells.
    ///
    /// # Panics
    ///
    /// If `burst` is 0: a limiter with no burst could admit nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Quota;
    ///
    /// assert_eq!(Quota::per_second(1).allow_burst(u32::MAX).burst(), u32::MAX);
    /// // 2,562,047 hours is 2^63 ns: the most credit a quota keeps.
    /// assert_eq!(Quota::per_hour(1).allow_burst(u32::MAX).burst(), 2_562_047);
    /// ```
    #[track_caller]
    #[must_use]
    pub const fn allow_burst(self, burst: u32) -> Quota {
        assert!(
            burst > 0,
            "Quota::allow_burst(0): the burst must be at least 1 cell"
        );
        let most = (1u128 << 63) * self.cells as u128 / self.period_ns as u128;
        let burst = if (burst as u128) < most {
            burst
        } else if most > 1 {
            most as u32
        } else {
            1
        };
        Quota { burst, ..self }
    }

    /// Cells admitted per [`period`](Self::period).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Quota;
    ///
    /// assert_eq!(Quota::per_minute(30).cells(), 30);
    /// ```
    pub const fn cells(&self) -> u32 {
        self.cells
    }

    /// The period over which [`cells`](Self::cells) are admitted.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::Quota;
    ///
    /// assert_eq!(Quota::per_hour(1).period(), Duration::from_secs(3600));
    /// ```
    pub const fn period(&self) -> Duration {
        Duration::from_nanos(self.period_ns)
    }

    /// The most cells admitted at once (default 1).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::Quota;
    ///
    /// assert_eq!(Quota::per_second(5).burst(), 1);
    /// ```
    pub const fn burst(&self) -> u32 {
        self.burst
    }

    pub(crate) const fn period_ns(&self) -> u64 {
        self.period_ns
    }

    /// Packs the quota into one word for the limiter's lock-free reads.
    pub(crate) const fn pack(&self) -> u128 {
        self.period_ns as u128 | (self.cells as u128) << 64 | (self.burst as u128) << 96
    }

    pub(crate) const fn unpack(word: u128) -> Quota {
        Quota {
            period_ns: word as u64,
            cells: (word >> 64) as u32,
            burst: (word >> 96) as u32,
        }
    }
}
