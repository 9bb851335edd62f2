//! Time for the policy engine: a monotonic nanosecond counter, injectable for tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A monotonic clock in nanoseconds since an arbitrary start. Never goes backwards.
pub trait Clock: Send + Sync + 'static {
    /// Nanoseconds since the clock's start.
    fn now(&self) -> u64;
}

/// The system's monotonic clock, read through the CPU's invariant time-stamp counter where
/// there is one (`quanta`, calibrated against the OS clock; the OS clock elsewhere).
#[derive(Debug, Clone)]
pub struct MonotonicClock {
    clock: quanta::Clock,
    start: u64,
}

impl MonotonicClock {
    /// A clock starting now.
    pub fn new() -> Self {
        let clock = quanta::Clock::new();
        let start = clock.raw();
        MonotonicClock { clock, start }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    #[inline]
    fn now(&self) -> u64 {
        // u64 nanoseconds last 584 years; a reading behind the start (another core's
        // counter) counts as 0, and the policy engine never goes back in time.
        self.clock.delta_as_nanos(self.start, self.clock.raw())
    }
}

/// The clock of a store: the system clock without dynamic dispatch, or any other.
#[derive(Clone)]
pub(crate) enum StoreClock {
    System(MonotonicClock),
    Other(Arc<dyn Clock>),
}

impl StoreClock {
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        match self {
            StoreClock::System(c) => c.now(),
            StoreClock::Other(c) => c.now(),
        }
    }
}

/// A clock that only moves when told to; for tests.
///
/// ```
/// use secure_api_runtime::clock::{Clock, FakeClock};
/// use std::time::Duration;
/// let clock = FakeClock::new();
/// clock.advance(Duration::from_millis(1500));
/// assert_eq!(clock.now(), 1_500_000_000);
/// ```
#[derive(Debug, Clone, Default)]
pub struct FakeClock {
    now: Arc<AtomicU64>,
}

impl FakeClock {
    /// A clock at 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.now.fetch_add(ns, Ordering::SeqCst);
    }

    /// Sets the clock; ignored if it would go backwards.
    pub fn set(&self, ns: u64) {
        self.now.fetch_max(ns, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
}

/// Wall-clock time in whole seconds since the Unix epoch: the time of token claims (`iat`,
/// `exp`, `nbf`), of revocations and of session lifetimes. Injectable for tests with
/// [`FakeClock`].
pub trait WallClock: Send + Sync + 'static {
    /// Seconds since the Unix epoch.
    fn unix_secs(&self) -> u64;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemWallClock;

impl WallClock for SystemWallClock {
    #[inline]
    fn unix_secs(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// As a wall clock, a `FakeClock` reads as nanoseconds since the Unix epoch: [`set`] it to
/// a realistic time first when the tokens it dates are checked against real ones.
///
/// ```
/// use secure_api_runtime::clock::{FakeClock, WallClock};
/// use std::time::Duration;
/// let clock = FakeClock::new();
/// clock.set(1_700_000_000 * 1_000_000_000);
/// clock.advance(Duration::from_secs(30));
/// assert_eq!(clock.unix_secs(), 1_700_000_030);
/// ```
///
/// [`set`]: FakeClock::set
impl WallClock for FakeClock {
    fn unix_secs(&self) -> u64 {
        self.now() / 1_000_000_000
    }
}
