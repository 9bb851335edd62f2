//! Defaults and bounds that the macros check at compile time and the runtime applies.

/// The replay window of `idempotent` without a `ttl`: 24 hours, in milliseconds.
pub const DEFAULT_TTL_MS: u64 = 24 * 60 * 60 * 1000;

/// The largest count of a sliding-window rate: its log holds one timestamp per admitted
/// request, `8 * count` bytes per client. `#[secure_endpoint]` refuses a larger count and
/// the limiter never keeps more.
pub const MAX_WINDOW_COUNT: u32 = 10_000;
