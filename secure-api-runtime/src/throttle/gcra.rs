//! GCRA: the theoretical arrival time (TAT) of the next request, in one `u64` per client.

use super::{Decision, Policy};

/// GCRA parameters derived from a [`Policy`].
///
/// The emission interval is the period divided by the count, rounded *up* to the
/// nanosecond, so rounding can never admit more than the configured rate.
///
/// ```
/// use secure_api_runtime::throttle::{Gcra, Policy, Rate};
/// let gcra = Gcra::new(&Policy::new("default", Rate::per_second(10)).with_burst(2));
/// let (first, tat) = gcra.decide(None, 0, 1);
/// assert!(first.allowed);
/// let (second, tat) = gcra.decide(tat, 0, 1);
/// assert!(second.allowed);
/// let (third, unchanged) = gcra.decide(tat, 0, 1);
/// assert!(!third.allowed);
/// assert_eq!(unchanged, tat);
/// assert_eq!(third.retry_after_ns, 100_000_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    interval: u64,
    burst: u64,
}

impl Gcra {
    /// The GCRA of a policy (its algorithm field is not consulted).
    #[inline]
    pub fn new(policy: &Policy) -> Gcra {
        Gcra {
            interval: policy.interval_ns(),
            burst: u64::from(policy.burst().max(1)),
        }
    }

    /// The emission interval in nanoseconds.
    pub fn interval(&self) -> u64 {
        self.interval
    }

    /// Decides a request of `cost` units at `now` against the stored TAT (`None` for a
    /// client without state). Returns the decision and the TAT to store: the new one when
    /// allowed, the old one (unchanged) when denied.
    #[inline]
    pub fn decide(&self, stored: Option<u64>, now: u64, cost: u32) -> (Decision, Option<u64>) {
        let tat = stored.map_or(now, |t| t.max(now));
        let cost = u64::from(cost);
        let capacity = self.burst.saturating_mul(self.interval);
        let new_tat = tat.saturating_add(cost.saturating_mul(self.interval));
        let horizon = now.saturating_add(capacity);
        if new_tat <= horizon {
            (
                Decision::new(true, horizon - new_tat, self.interval, new_tat - now, 0),
                Some(new_tat),
            )
        } else {
            let retry_after_ns = if cost > self.burst {
                u64::MAX
            } else {
                new_tat - horizon
            };
            (
                Decision::new(
                    false,
                    horizon.saturating_sub(tat),
                    self.interval,
                    tat - now,
                    retry_after_ns,
                ),
                stored,
            )
        }
    }

    /// Gives back `cost` units charged earlier: the TAT to store after refunding them from
    /// `stored` at `now`. The TAT moves back by `cost` emission intervals but never behind
    /// `now` (a full bucket cannot be filled further), so a refund can only undo a charge.
    ///
    /// ```
    /// use secure_api_runtime::throttle::{Gcra, Policy, Rate};
    /// let gcra = Gcra::new(&Policy::new("default", Rate::per_second(10)).with_burst(1));
    /// let (_, tat) = gcra.decide(None, 0, 1);
    /// assert!(!gcra.decide(tat, 0, 1).0.allowed);
    /// let tat = gcra.refund(tat.unwrap(), 0, 1);
    /// assert!(gcra.decide(Some(tat), 0, 1).0.allowed);
    /// // Never more than a full bucket.
    /// assert_eq!(gcra.refund(tat, 0, 5), 0);
    /// ```
    #[inline]
    pub fn refund(&self, stored: u64, now: u64, cost: u32) -> u64 {
        stored
            .saturating_sub(u64::from(cost).saturating_mul(self.interval))
            .max(now)
    }

    /// Whether a stored TAT carries no information any more (the bucket is full again), so
    /// that the key can be dropped without changing any decision.
    pub fn is_stale(tat: u64, now: u64) -> bool {
        tat <= now
    }
}
