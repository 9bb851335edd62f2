//! The warn-level log of requests that a rate limit let through because its store failed
//! (`on_store_error = "allow"`): at most one line per endpoint every [`INTERVAL`], with the
//! number of such requests since the previous line, so that a store outage under load does
//! not flood the log.
//!
//! A line names the endpoint and the store's error, never the client: nothing beyond what
//! the endpoint's other logs carry.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;

use super::EndpointSpec;
use crate::store::StoreError;

/// The shortest time between two lines about one endpoint.
pub(crate) const INTERVAL: Duration = Duration::from_secs(10);

/// The log target of these lines.
pub(crate) const TARGET: &str = "secure_api::rate_limit";

/// One endpoint's log state: when its last line was written (nanoseconds on the caller's
/// clock, plus one, so that 0 means never), and how many requests were allowed without a
/// line since then.
#[derive(Default)]
struct Throttle {
    last_line: AtomicU64,
    suppressed: AtomicU64,
}

impl Throttle {
    /// Counts one allowed request at `now_ns`: `Some(n)` when a line is due now, `n` being
    /// the requests allowed since the last line (not counting this one); `None` when it is
    /// counted for the next line. Of concurrent callers, one gets the line.
    fn record(&self, now_ns: u64) -> Option<u64> {
        let now = now_ns.saturating_add(1);
        let last = self.last_line.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= INTERVAL.as_nanos() as u64;
        if due
            && self
                .last_line
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// One entry per endpoint (by its spec's address), created on its first store failure: as
/// many entries as the binary has endpoints.
static THROTTLES: LazyLock<DashMap<usize, Throttle>> = LazyLock::new(DashMap::new);

/// Records that a request of `spec` went on unlimited because its store failed with
/// `err`, and writes the warn line when the endpoint's interval has passed.
pub(crate) fn record(spec: &'static EndpointSpec, err: &StoreError) {
    let now = u64::try_from(EPOCH.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let due = THROTTLES
        .entry(spec as *const EndpointSpec as usize)
        .or_default()
        .record(now);
    if let Some(suppressed) = due {
        log::warn!(
            target: TARGET,
            "endpoint `{}`: the rate-limit store failed and on_store_error = allow let the \
             request through without a limit ({suppressed} more since the last such line): {err}",
            spec.name
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn one_line_per_interval_with_the_count_of_the_others() {
        let t = Throttle::default();
        assert_eq!(t.record(0), Some(0), "the first failure is logged at once");
        for i in 1..=5 {
            assert_eq!(t.record(i * SEC), None);
        }
        assert_eq!(t.record(9 * SEC), None);
        // 10 s after the first line: the next line counts the six in between.
        assert_eq!(t.record(10 * SEC), Some(6));
        assert_eq!(t.record(10 * SEC + 1), None);
        assert_eq!(t.record(25 * SEC), Some(1));
        assert_eq!(t.record(40 * SEC), Some(0));
    }
}
