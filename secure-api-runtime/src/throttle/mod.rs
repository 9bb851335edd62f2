//! Rate limiting: the policy engine (GCRA and a strict sliding window), keys, decisions and
//! the store interface. No actix types here; the endpoint runtime adapts it to requests.
//!
//! - [`Gcra`]: the generic cell rate algorithm, the exact equivalent of a token bucket of
//!   `burst` tokens refilled at `rate`, kept in one `u64` per client (the theoretical arrival
//!   time). A denial changes nothing.
//! - [`window::SlidingWindow`]: at most `count` requests in any window of `period`, exactly
//!   (a log of the last `count` admissions per client).
//! - [`memory::MemoryStore`]: both, in memory, bounded in keys, shared by all workers.

pub mod gcra;
pub mod memory;
pub mod window;

use std::fmt;

use crate::shared::units::{self, RATE_UNITS};
pub use crate::store::{StoreError, StoreFuture, StoreUsage};
pub use gcra::Gcra;

/// Nanoseconds per second.
pub const NANOS_PER_SEC: u64 = 1_000_000_000;

/// `count` requests per `period_ns` nanoseconds.
///
/// ```
/// use secure_api_runtime::throttle::Rate;
/// let rate: Rate = "100/min".parse().unwrap();
/// assert_eq!(rate, Rate::per_minute(100));
/// assert!("0/s".parse::<Rate>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    count: u32,
    period_ns: u64,
}

impl Rate {
    /// `count` per `period_ns`; `None` when either is zero.
    pub const fn new(count: u32, period_ns: u64) -> Option<Rate> {
        if count == 0 || period_ns == 0 {
            None
        } else {
            Some(Rate { count, period_ns })
        }
    }

    const fn per(count: u32, secs: u64) -> Rate {
        let count = if count == 0 { 1 } else { count };
        Rate {
            count,
            period_ns: secs * NANOS_PER_SEC,
        }
    }

    /// `count` per second (at least 1).
    pub const fn per_second(count: u32) -> Rate {
        Rate::per(count, 1)
    }

    /// `count` per minute (at least 1).
    pub const fn per_minute(count: u32) -> Rate {
        Rate::per(count, 60)
    }

    /// `count` per hour (at least 1).
    pub const fn per_hour(count: u32) -> Rate {
        Rate::per(count, 3600)
    }

    /// `count` per day (at least 1).
    pub const fn per_day(count: u32) -> Rate {
        Rate::per(count, 86_400)
    }

    /// Requests per period.
    pub const fn count(&self) -> u32 {
        self.count
    }

    /// The period in nanoseconds.
    pub const fn period_ns(&self) -> u64 {
        self.period_ns
    }

    /// The period in whole seconds, rounded up.
    pub const fn period_secs(&self) -> u64 {
        self.period_ns.div_ceil(NANOS_PER_SEC)
    }
}

/// Why a rate string was refused: a message that says what is wrong and how to write the
/// rate, the same one `#[secure_endpoint(rate = "...")]` reports at compile time.
///
/// ```
/// use secure_api_runtime::throttle::Rate;
/// let err = "100/sec".parse::<Rate>().unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "unknown rate unit `sec`; expected one of: `s`, `min`, `h`, `day`"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateParseError(String);

impl fmt::Display for RateParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RateParseError {}

/// `N/unit` with a unit of `s`, `min`, `h` or `day`, without whitespace: the grammar of
/// `#[secure_endpoint(rate = "...")]`.
impl std::str::FromStr for Rate {
    type Err = RateParseError;

    fn from_str(s: &str) -> Result<Rate, RateParseError> {
        let (count, secs) = units::rate(s).map_err(RateParseError)?;
        Ok(Rate::per(count, secs))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match RATE_UNITS
            .iter()
            .find(|(_, secs)| secs * NANOS_PER_SEC == self.period_ns)
        {
            Some((unit, _)) => write!(f, "{}/{unit}", self.count),
            None => write!(f, "{}/{}ns", self.count, self.period_ns),
        }
    }
}

/// Which algorithm a policy uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// GCRA (token bucket): `burst` at once, then `rate`.
    #[default]
    Gcra,
    /// At most `count` in any window of `period`.
    SlidingWindow,
}

/// A rate-limit policy: the rate, the burst (GCRA only), the algorithm, and the name sent in
/// the `RateLimit` fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Policy {
    name: &'static str,
    rate: Rate,
    burst: u32,
    algorithm: Algorithm,
    /// The GCRA emission interval, computed once: the period divided by the count, rounded
    /// up to the nanosecond so that rounding never admits more than the rate.
    interval_ns: u64,
}

impl Policy {
    /// A GCRA policy whose burst equals the rate's count.
    pub const fn new(name: &'static str, rate: Rate) -> Policy {
        let interval = rate.period_ns.div_ceil(rate.count as u64);
        Policy {
            name,
            rate,
            burst: rate.count,
            algorithm: Algorithm::Gcra,
            interval_ns: if interval == 0 { 1 } else { interval },
        }
    }

    /// The GCRA emission interval in nanoseconds.
    pub const fn interval_ns(&self) -> u64 {
        self.interval_ns
    }

    /// Sets the burst (GCRA): how many requests a rested client may send at once. At least 1.
    pub const fn with_burst(mut self, burst: u32) -> Policy {
        self.burst = if burst == 0 { 1 } else { burst };
        self
    }

    /// Sets the algorithm.
    pub const fn with_algorithm(mut self, algorithm: Algorithm) -> Policy {
        self.algorithm = algorithm;
        self
    }

    /// The name used in `RateLimit-Policy`.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The rate.
    pub const fn rate(&self) -> Rate {
        self.rate
    }

    /// The burst (GCRA).
    pub const fn burst(&self) -> u32 {
        self.burst
    }

    /// The algorithm.
    pub const fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// The outcome of one rate-limit check, with what the `RateLimit` fields report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Nanoseconds until the client's quota is fully restored.
    pub reset_ns: u64,
    /// When denied: nanoseconds until this request would be allowed.
    pub retry_after_ns: u64,
    /// Unused capacity, in units of `per_request`: `remaining()` divides the two only when
    /// a header needs it, off the decision's hot path.
    slack: u64,
    per_request: u64,
}

impl Decision {
    /// A decision with `slack / per_request` requests remaining.
    pub const fn new(
        allowed: bool,
        slack: u64,
        per_request: u64,
        reset_ns: u64,
        retry_after_ns: u64,
    ) -> Self {
        Decision {
            allowed,
            reset_ns,
            retry_after_ns,
            slack,
            per_request: if per_request == 0 { 1 } else { per_request },
        }
    }

    /// Requests the client may still send right now.
    pub fn remaining(&self) -> u32 {
        u32::try_from(self.slack / self.per_request).unwrap_or(u32::MAX)
    }

    /// Seconds until a retry can succeed, rounded up and at least 1 (for `Retry-After`).
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after_ns.div_ceil(NANOS_PER_SEC).max(1)
    }

    /// Seconds until the quota is fully restored, rounded up.
    pub fn reset_secs(&self) -> u64 {
        self.reset_ns.div_ceil(NANOS_PER_SEC)
    }
}

/// A key of a rate-limit store: a 128-bit keyed hash of the policy and the client identity,
/// so that clients cannot choose colliding keys and every key has the same small size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LimitKey(pub [u64; 2]);

/// Where rate-limit state lives. One store serves a whole app (all workers); the in-memory
/// [`memory::MemoryStore`] is the default and a Redis store can be added without changing
/// callers.
///
/// Each operation reads and writes one record (the key's GCRA TAT or its sliding-window
/// log) atomically, so that a networked store implements it as one script run (Redis Lua)
/// on one key with a TTL of the time until the record carries no information.
pub trait RateLimitStore: Send + Sync + 'static {
    /// Charges `cost` units to `key` under `policy` if the client has them, and reports the
    /// decision. A denial changes nothing.
    fn acquire(
        &self,
        key: LimitKey,
        policy: &Policy,
        cost: u32,
    ) -> StoreFuture<'_, Result<Decision, StoreError>>;

    /// Gives back `cost` units that an allowed [`acquire`](RateLimitStore::acquire) of the
    /// same `key` and `policy` charged, when the work they paid for turned out not to count
    /// (a login helper reserves a unit of an account's failure budget before checking the
    /// password and refunds it when the password was right, so that concurrent guesses
    /// cannot overrun the budget and successes cost nothing).
    ///
    /// Contract, which networked stores implement in one atomic step:
    /// - GCRA: `tat = max(tat - cost * interval, now)` ([`Gcra::refund`]); a record at or
    ///   behind `now` may be deleted.
    /// - sliding window: drop the `cost` newest admissions of the log
    ///   ([`window::SlidingWindow::refund`]; in Redis, `ZPOPMAX key cost` on the sorted set
    ///   of admission times).
    /// - A key without a record is left alone (nothing is created), and a refund never
    ///   raises a client above its full capacity.
    /// - Refunding more than was charged is the caller's error; the store only guarantees
    ///   the bound above.
    fn refund(
        &self,
        key: LimitKey,
        policy: &Policy,
        cost: u32,
    ) -> StoreFuture<'_, Result<(), StoreError>>;

    /// Whether several processes share this store (a network store such as Redis), so that
    /// their keys must agree: [`SecureApiBuilder::build`](crate::api::SecureApiBuilder::build)
    /// then requires a [key secret](crate::api::SecureApiBuilder::key_secret). `false` (the
    /// default) for stores that live in one process.
    fn is_shared(&self) -> bool {
        false
    }

    /// The name of the backend, for the `backend` label of the store metrics
    /// ([`crate::telemetry::metrics`]): `"memory"` for the in-memory store, `"redis"` for the
    /// Redis store, and `"custom"` (the default) for other stores. A fixed name, never
    /// built from configuration: labels must stay bounded.
    fn backend(&self) -> &'static str {
        "custom"
    }

    /// How full the store is, for the gauges of
    /// [`SecureApi::record_store_gauges`](crate::api::SecureApi::record_store_gauges):
    /// counters the store keeps anyway, never a scan (it is read every few seconds while
    /// requests run). `None` (the default, and the Redis stores', whose size Redis itself
    /// reports) when the store does not know it cheaply.
    fn usage(&self) -> Option<StoreUsage> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::units::RATE_CASES;

    /// `Rate::from_str` accepts and refuses what `#[secure_endpoint(rate = "...")]` does,
    /// with the same messages: both read the shared table.
    #[test]
    fn parses_the_endpoint_grammar() {
        for (input, expected) in RATE_CASES {
            let parsed = input
                .parse::<Rate>()
                .map(|r| (r.count(), r.period_secs()))
                .map_err(|e| e.to_string());
            assert_eq!(parsed, expected.map_err(str::to_owned), "{input:?}");
        }
    }

    #[test]
    fn displays_what_it_parses() {
        for text in ["100/s", "10/min", "1/h", "5/day", "4294967295/s"] {
            assert_eq!(text.parse::<Rate>().unwrap().to_string(), text);
        }
        assert_eq!(
            Rate::per_minute(100).to_string().parse(),
            Ok(Rate::per_minute(100))
        );
    }
}
