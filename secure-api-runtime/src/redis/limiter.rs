//! The rate limiter on Redis: one script run (one round trip) per decision.

use std::sync::LazyLock;

use ::redis::{Script, Value};

use super::{RedisBackend, corrupt, hex, int};
use crate::store::{StoreError, StoreFuture};
use crate::throttle::window::MAX_WINDOW_COUNT;
use crate::throttle::{Algorithm, Decision, LimitKey, Policy, RateLimitStore};

static GCRA_ACQUIRE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/gcra_acquire.lua")));
static GCRA_REFUND: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/gcra_refund.lua")));
static WINDOW_ACQUIRE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/window_acquire.lua")));
static WINDOW_REFUND: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/window_refund.lua")));

/// Nanoseconds per microsecond: Redis's clock resolution, and the unit of the scripts.
const NANOS_PER_MICRO: u64 = 1_000;

/// Rate-limit state in Redis, shared by every instance of an app: a
/// [`RateLimitStore`](crate::throttle::RateLimitStore) with the semantics of the in-memory
/// [`MemoryStore`](crate::throttle::memory::MemoryStore), decided by one Lua script run
/// (`EVALSHA`) per request on the Redis server's clock (`TIME`), so the instances' clocks do
/// not matter.
///
/// # Keys
///
/// One key per client and policy, named by the already derived
/// [`LimitKey`](crate::throttle::LimitKey) (`<hex>`, 32 digits) and hash-tagged on it:
///
/// - **GCRA**: `<prefix>:rl:g:{<hex>}`, a string holding the theoretical arrival time (TAT)
///   in microseconds of the server's clock. An admission moves it forward by `cost`
///   emission intervals and sets `PX` to just after the TAT, when the bucket is full again
///   and the key carries no information; a denial writes nothing. The emission interval is
///   the period divided by the count rounded *up* to the microsecond (never more than the
///   rate, at most 1 µs per request stricter than in memory).
/// - **Sliding window**: `<prefix>:rl:w:{<hex>}`, a list of admission times (µs, oldest
///   first; at most the policy's count, and at most
///   [`MAX_WINDOW_COUNT`](crate::throttle::window::MAX_WINDOW_COUNT)). Each decision drops
///   the admissions that left the window from the front; an admission appends `cost`
///   entries and sets `PX` to the window (plus 1 ms), when the newest has left it.
///
/// A refund is one script run too: GCRA moves the TAT back (never behind now; a full bucket
/// is deleted), the window pops its `cost` newest entries (`RPOP key cost`) and moves the
/// TTL back. A key without state is left alone.
#[derive(Debug, Clone)]
pub struct RedisRateLimitStore {
    backend: RedisBackend,
}

impl RedisRateLimitStore {
    /// The store of a backend (see [`RedisBackend::rate_limit_store`]).
    pub fn new(backend: RedisBackend) -> Self {
        RedisRateLimitStore { backend }
    }

    /// The Redis key of `key` under `policy`.
    pub fn redis_key(&self, key: LimitKey, policy: &Policy) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&key.0[0].to_be_bytes());
        bytes[8..].copy_from_slice(&key.0[1].to_be_bytes());
        let kind = match policy.algorithm() {
            Algorithm::Gcra => "rl:g",
            Algorithm::SlidingWindow => "rl:w",
        };
        self.backend.key(kind, &hex(&bytes))
    }

    /// Charges `cost` to `key` under `policy` (see [`RateLimitStore::acquire`]).
    pub async fn check(
        &self,
        key: LimitKey,
        policy: &Policy,
        cost: u32,
    ) -> Result<Decision, StoreError> {
        let redis_key = self.redis_key(key, policy);
        match policy.algorithm() {
            Algorithm::Gcra => {
                let interval = micros(policy.interval_ns());
                let reply: Vec<Value> = self
                    .backend
                    .script(
                        GCRA_ACQUIRE
                            .key(redis_key)
                            .arg(interval)
                            .arg(policy.burst().max(1))
                            .arg(cost),
                    )
                    .await?;
                let [allowed, slack, reset, retry] = decision_reply(&reply)?;
                Ok(Decision::new(
                    allowed == 1,
                    slack,
                    interval,
                    reset.saturating_mul(NANOS_PER_MICRO),
                    retry,
                ))
            }
            Algorithm::SlidingWindow => {
                let limit = policy.rate().count().min(MAX_WINDOW_COUNT);
                let reply: Vec<Value> = self
                    .backend
                    .script(
                        WINDOW_ACQUIRE
                            .key(redis_key)
                            .arg(micros(policy.rate().period_ns()))
                            .arg(limit)
                            .arg(cost),
                    )
                    .await?;
                let [allowed, remaining, expiry, retry] = decision_reply(&reply)?;
                Ok(Decision::new(
                    allowed == 1,
                    remaining,
                    1,
                    expiry.saturating_mul(NANOS_PER_MICRO),
                    retry,
                ))
            }
        }
    }

    /// Gives back `cost` units charged to `key` under `policy` (see
    /// [`RateLimitStore::refund`]).
    pub async fn give_back(
        &self,
        key: LimitKey,
        policy: &Policy,
        cost: u32,
    ) -> Result<(), StoreError> {
        if cost == 0 {
            return Ok(());
        }
        let redis_key = self.redis_key(key, policy);
        let _: i64 = match policy.algorithm() {
            Algorithm::Gcra => {
                self.backend
                    .script(
                        GCRA_REFUND
                            .key(redis_key)
                            .arg(micros(policy.interval_ns()))
                            .arg(cost),
                    )
                    .await?
            }
            Algorithm::SlidingWindow => {
                self.backend
                    .script(
                        WINDOW_REFUND
                            .key(redis_key)
                            .arg(micros(policy.rate().period_ns()))
                            .arg(cost),
                    )
                    .await?
            }
        };
        Ok(())
    }
}

/// Nanoseconds as microseconds, rounded up (at least 1).
fn micros(ns: u64) -> u64 {
    ns.div_ceil(NANOS_PER_MICRO).max(1)
}

/// `{allowed, a, b, retry µs}`; the retry in nanoseconds, `u64::MAX` for never (-1).
fn decision_reply(reply: &[Value]) -> Result<[u64; 4], StoreError> {
    let [allowed, a, b, retry] = reply else {
        return Err(corrupt("a rate-limit decision of the wrong shape"));
    };
    let retry = match retry {
        Value::Int(-1) => u64::MAX,
        other => int(other)?.saturating_mul(NANOS_PER_MICRO),
    };
    Ok([int(allowed)?, int(a)?, int(b)?, retry])
}

impl RateLimitStore for RedisRateLimitStore {
    fn acquire(
        &self,
        key: LimitKey,
        policy: &Policy,
        cost: u32,
    ) -> StoreFuture<'_, Result<Decision, StoreError>> {
        let policy = *policy;
        StoreFuture::Pending(Box::pin(
            async move { self.check(key, &policy, cost).await },
        ))
    }

    fn refund(
        &self,
        key: LimitKey,
        policy: &Policy,
        cost: u32,
    ) -> StoreFuture<'_, Result<(), StoreError>> {
        let policy = *policy;
        StoreFuture::Pending(Box::pin(
            async move { self.give_back(key, &policy, cost).await },
        ))
    }

    /// Every instance connected to the Redis shares it: `SecureApiBuilder::build` requires
    /// a key secret with it.
    fn is_shared(&self) -> bool {
        true
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_round_up_to_the_microsecond() {
        assert_eq!(micros(1), 1);
        assert_eq!(micros(1_000), 1);
        assert_eq!(micros(1_001), 2);
        assert_eq!(micros(333_333_334), 333_334);
    }

    #[test]
    fn decisions_decode() {
        let reply = [Value::Int(0), Value::Int(5), Value::Int(7), Value::Int(-1)];
        assert_eq!(decision_reply(&reply).unwrap(), [0, 5, 7, u64::MAX]);
        let reply = [Value::Int(1), Value::Int(5), Value::Int(7), Value::Int(3)];
        assert_eq!(decision_reply(&reply).unwrap(), [1, 5, 7, 3_000]);
        assert!(decision_reply(&reply[..3]).is_err());
    }
}
