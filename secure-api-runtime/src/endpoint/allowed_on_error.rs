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

/// Per endpoint: when its last line was written (nanoseconds since [`EPOCH`], plus one, so
/// that 0 means never), and how many requests were allowed without a line since then.
#[derive(Default)]
struct Throttle {
    last_line: AtomicU64,
    suppressed: AtomicU64,
}

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// One entry per endpoint (by its spec's address), created on its first store failure: as
/// many entries as the binary has endpoints.
static THROTTLES: LazyLock<DashMap<usize, Throttle>> = LazyLock::new(DashMap::new);

/// Records that a request of `spec` went on unlimited because its store failed with
/// `err`, and writes the warn line when the endpoint's interval has passed.
pub(crate) fn record(spec: &'static EndpointSpec, err: &StoreError) {
    let now = u64::try_from(EPOCH.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1;
    let throttle = THROTTLES
        .entry(spec as *const EndpointSpec as usize)
        .or_default();
    let last = throttle.last_line.load(Ordering::Relaxed);
    let due = last == 0 || now.saturating_sub(last) >= INTERVAL.as_nanos() as u64;
    if due
        && throttle
            .last_line
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        let suppressed = throttle.suppressed.swap(0, Ordering::Relaxed);
        log::warn!(
            target: TARGET,
            "endpoint `{}`: rate-limit store failed, request allowed without a limit \\
             (on_store_error = allow); {suppressed} more allowed since the last such line: {err}",
            spec.name
        );
    } else {
        throttle.suppressed.fetch_add(1, Ordering::Relaxed);
    }
}
