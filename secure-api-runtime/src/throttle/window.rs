//! The strict sliding window: a log of the last admissions per client.

use std::collections::VecDeque;

use super::{Decision, Policy};

pub use crate::shared::limits::MAX_WINDOW_COUNT;

/// The admission log of one client: admitted timestamps within the last window, oldest
/// first.
#[derive(Debug, Clone, Default)]
pub struct SlidingWindow {
    log: VecDeque<u64>,
    window: u64,
}

impl SlidingWindow {
    /// An empty log.
    pub fn new(policy: &Policy) -> Self {
        SlidingWindow {
            log: VecDeque::new(),
            window: policy.rate().period_ns(),
        }
    }

    /// Decides a request of `cost` units at `now`: allowed when the requests admitted in
    /// `(now - period, now]` plus `cost` stay within the count. Only an allowed request is
    /// recorded.
    pub fn decide(&mut self, policy: &Policy, now: u64, cost: u32) -> Decision {
        let limit = policy.rate().count().min(MAX_WINDOW_COUNT) as usize;
        self.window = policy.rate().period_ns();
        // An admission at `t` counts until `t + period`.
        while self
            .log
            .front()
            .is_some_and(|&t| t.saturating_add(self.window) <= now)
        {
            self.log.pop_front();
        }
        let cost = cost as usize;
        if self.log.len() + cost <= limit {
            for _ in 0..cost {
                self.log.push_back(now);
            }
            Decision::new(
                true,
                (limit - self.log.len()) as u64,
                1,
                self.expiry(now),
                0,
            )
        } else {
            let retry_after_ns = if cost > limit {
                u64::MAX
            } else {
                // The request fits once enough of the oldest admissions leave the window.
                let must_expire = self.log.len() + cost - limit;
                self.log
                    .get(must_expire - 1)
                    .map_or(0, |&t| t.saturating_add(self.window).saturating_sub(now))
            };
            Decision::new(
                false,
                (limit - self.log.len().min(limit)) as u64,
                1,
                self.expiry(now),
                retry_after_ns.max(1),
            )
        }
    }

    /// Gives back `cost` units admitted earlier by forgetting the `cost` newest admissions
    /// (at most as many as are logged).
    ///
    /// The newest admissions are not necessarily the refunded request's own when others
    /// were admitted after it; the ones kept then count from an earlier instant and leave the
    /// window sooner, by at most the time between the refunded admission and its refund
    /// (for a login, the length of one password check).
    pub fn refund(&mut self, cost: u32) {
        let keep = self.log.len().saturating_sub(cost as usize);
        self.log.truncate(keep);
    }

    /// Nanoseconds until every logged admission has left the window.
    fn expiry(&self, now: u64) -> u64 {
        self.log
            .back()
            .map_or(0, |&t| t.saturating_add(self.window).saturating_sub(now))
    }

    /// Whether the log has nothing in the window any more, so that the key can be dropped.
    pub fn is_stale(&self, now: u64) -> bool {
        self.expiry(now) == 0
    }
}
