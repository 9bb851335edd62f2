//! secure-api's in-memory rate limiter (`MemoryStore`) against `governor` 0.10's keyed
//! limiter, side by side in one process.
//!
//! ```text
//! CARGO_TARGET_DIR=target-bench cargo bench --bench limiter -- \
//!     --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Limiters (each on its default clock: secure-api's `MonotonicClock` reads `std::time::Instant`
//! through an `Arc<dyn Clock>`, governor's `QuantaClock` reads the TSC through `quanta`):
//! - `secure_u64`: `MemoryStore<u64, RandomState>`, the same key type and hasher (SipHash-1-3)
//!   as governor's default `DashMap` store: the like-for-like comparison;
//! - `governor_u64`: `DefaultKeyedRateLimiter<u64>` (`RateLimiter::keyed`);
//! - `secure_app`: `MemoryStore<LimitKey>`, what the app uses: 16-byte keyed-hash keys with the
//!   pass-through hasher. Keys are derived before timing; `key_derivation/derive` times
//!   `KeyDeriver::key` on its own;
//! - `governor_limitkey`: governor keyed by the same `LimitKey`s (default hasher);
//! - `governor_u64_snapshot` (hot key only): governor with `StateInformationMiddleware`, reading
//!   `remaining_burst_capacity()`, i.e. the information secure-api's `Decision` always carries.
//!
//! Every call is allowed (1e9/s with a burst of 1e9), and secure-api's stores have
//! `max_keys(2_000_000)` so nothing is refused in the 1M-key case; `main` asserts both before
//! timing. secure-api's `Decision` and governor's outcome are passed through `black_box`
//! whole, so neither side can skip computing what it returns.
//!
//! Scenarios:
//! 1. `hot_key`: the same key on every call (the allow path on a small map);
//! 2. `distinct_1m`: cycling through 1,000,000 keys (inserts during warm-up, then lookups in
//!    a map of 1M keys);
//! 3. `two_threads`: two threads, each cycling through its own 1,024 keys; the reported time
//!    is wall time / (2 × iterations), i.e. the aggregate time per check
//!    (`one_thread_1024` is the same work on one thread, for the scaling);
//! 4. bytes per key: a counting global allocator measures the live heap of each limiter
//!    after inserting 1,000,000 distinct keys into a fresh one (printed before the timings).
//!
//! Diagnostics: `clock/*` times each clock alone; `hot_key/secure_u64_quanta_clock` runs
//! secure-api's store on governor's quanta clock, to separate the clock from the store.
//!
//! `LIMITER_SKIP_CHECKS=1` skips the checks and scenario 4 (for profiling runs under
//! valgrind with `--profile-time`).

use std::hash::{BuildHasher, Hash, RandomState};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::Criterion;
use governor::clock::{Clock as _, QuantaClock, QuantaInstant, Reference as _};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
// The app's key derivation and the hasher of its limiter map are internals of the runtime;
// this benchmark measures them through its `__private` module.
use secure_api_runtime::__private::{Identity, KeyDeriver, PassThrough};
use secure_api_runtime::clock::{Clock, MonotonicClock};
use secure_api_runtime::throttle::memory::MemoryStore;
use secure_api_runtime::throttle::{LimitKey, Policy, Rate};

/// Live heap bytes, for the bytes-per-key figures.
#[global_allocator]
static GLOBAL: counting_alloc::CountingAlloc = counting_alloc::CountingAlloc;

// ---------------------------------------------------------------------------------------
// The limiters under test
// ---------------------------------------------------------------------------------------

/// 1e9 per second with a burst of 1e9: every call in these benchmarks is allowed.
const HUGE: u32 = 1_000_000_000;
/// Keys in the distinct-keys scenario and in the bytes-per-key measurement.
const DISTINCT: usize = 1_000_000;
/// Keys per thread in the two-thread scenario.
const PER_THREAD: usize = 1_024;
/// A policy id as `#[secure_endpoint]` makes them (an address xor a tier).
const POLICY_ID: u64 = 0x0000_5633_a1b2_c3d0;

fn policy() -> Policy {
    Policy::new("bench", Rate::per_second(HUGE)).with_burst(HUGE)
}

fn quota() -> Quota {
    let n = NonZeroU32::new(HUGE).unwrap();
    Quota::per_second(n).allow_burst(n)
}

/// One limiter under test: `check` charges one unit to `key`, passes the whole outcome
/// through `black_box`, and reports whether it was allowed.
trait Limiter: Sync {
    type Key: Sync;
    fn check(&self, key: &Self::Key) -> bool;
    fn len(&self) -> usize;
}

/// secure-api's store on its default clock (`MonotonicClock`).
struct Secure<K, S> {
    store: MemoryStore<K, S>,
    policy: Policy,
}

impl<K, S> Secure<K, S>
where
    K: Hash + Eq + Clone,
    S: BuildHasher + Clone + Default,
{
    fn new() -> Self {
        Secure {
            store: MemoryStore::new().max_keys(2 * DISTINCT),
            policy: policy(),
        }
    }

    fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Secure {
            store: MemoryStore::with_clock(clock).max_keys(2 * DISTINCT),
            policy: policy(),
        }
    }
}

impl<K, S> Limiter for Secure<K, S>
where
    K: Hash + Eq + Clone + Send + Sync,
    S: BuildHasher + Clone + Default + Send + Sync,
{
    type Key = K;

    #[inline]
    fn check(&self, key: &K) -> bool {
        let outcome = black_box(self.store.check(key, &self.policy, 1));
        matches!(outcome, Ok(d) if d.allowed)
    }

    fn len(&self) -> usize {
        self.store.len()
    }
}

/// governor's keyed limiter with its defaults (`DashMap`, `RandomState`, `QuantaClock`,
/// `NoOpMiddleware`).
struct Governor<K: Hash + Eq + Clone>(DefaultKeyedRateLimiter<K>);

impl<K: Hash + Eq + Clone> Governor<K> {
    fn new() -> Self {
        Governor(RateLimiter::keyed(quota()))
    }
}

impl<K: Hash + Eq + Clone + Send + Sync> Limiter for Governor<K> {
    type Key = K;

    #[inline]
    fn check(&self, key: &K) -> bool {
        black_box(self.0.check_key(key)).is_ok()
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// governor reporting its state, as secure-api's `Decision` always does.
struct GovernorSnapshot(
    RateLimiter<
        u64,
        DefaultKeyedStateStore<u64>,
        governor::clock::DefaultClock,
        StateInformationMiddleware,
    >,
);

impl Limiter for GovernorSnapshot {
    type Key = u64;

    #[inline]
    fn check(&self, key: &u64) -> bool {
        match self.0.check_key(key) {
            Ok(snapshot) => {
                black_box(snapshot.remaining_burst_capacity());
                true
            }
            Err(not_until) => {
                black_box(not_until);
                false
            }
        }
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// governor's quanta clock behind secure-api's `Clock` trait (diagnostic only).
struct QuantaForSecure {
    clock: QuantaClock,
    start: QuantaInstant,
}

impl QuantaForSecure {
    fn new() -> Self {
        let clock = QuantaClock::default();
        let start = clock.now();
        QuantaForSecure { clock, start }
    }
}

impl Clock for QuantaForSecure {
    fn now(&self) -> u64 {
        u64::from(self.clock.now().duration_since(self.start))
    }
}

// ---------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------

fn u64_keys(range: std::ops::Range<u64>) -> Vec<u64> {
    range.collect()
}

/// The `LimitKey`s of the anonymous clients `ip(i)` for `i` in `range`.
fn app_keys(deriver: &KeyDeriver, range: std::ops::Range<u64>) -> Vec<LimitKey> {
    range
        .map(|i| deriver.key(POLICY_ID, &Identity::Ip(ip(i))))
        .collect()
}

/// A public-looking IPv4 address per index.
fn ip(i: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0b00_0000u32.wrapping_add(i as u32)))
}

// ---------------------------------------------------------------------------------------
// Checks and the bytes-per-key measurement (before any timing)
// ---------------------------------------------------------------------------------------

/// Inserts `keys` into a fresh limiter built inside the counting window and reports live
/// heap bytes per key and the time per insert. Asserts every call was allowed.
fn bytes_per_key<L: Limiter>(name: &str, make: impl FnOnce() -> L, keys: &[L::Key]) {
    let ((limiter, allowed, elapsed), live) = counting_alloc::retained(|| {
        let limiter = make();
        let start = Instant::now();
        let mut allowed = 0usize;
        for key in keys {
            allowed += usize::from(limiter.check(key));
        }
        (limiter, allowed, start.elapsed())
    });
    assert_eq!(allowed, keys.len(), "{name}: every insert must be allowed");
    assert_eq!(limiter.len(), keys.len(), "{name}: every key must be kept");
    println!(
        "bytes_per_key/{name:<20} {:>7.2} B/key  ({live} live bytes for {} keys; \
         first insert {:.1} ns/key, single shot)",
        live as f64 / keys.len() as f64,
        keys.len(),
        elapsed.as_nanos() as f64 / keys.len() as f64,
    );
    drop(black_box(limiter));
}

/// Every limiter allows 100,000 calls on one key.
fn check_allow_path<L: Limiter>(name: &str, limiter: &L, key: &L::Key) {
    for _ in 0..100_000 {
        assert!(
            limiter.check(key),
            "{name}: the hot key must always be allowed"
        );
    }
}

fn checks_and_bytes(deriver: &KeyDeriver) {
    let u64s = u64_keys(0..DISTINCT as u64);
    let apps = app_keys(deriver, 0..DISTINCT as u64);

    check_allow_path("secure_u64", &Secure::<u64, RandomState>::new(), &7);
    check_allow_path("governor_u64", &Governor::<u64>::new(), &7);
    check_allow_path(
        "secure_app",
        &Secure::<LimitKey, PassThrough>::new(),
        &apps[7],
    );
    check_allow_path("governor_limitkey", &Governor::<LimitKey>::new(), &apps[7]);

    bytes_per_key("secure_u64", Secure::<u64, RandomState>::new, &u64s);
    bytes_per_key("governor_u64", Governor::<u64>::new, &u64s);
    bytes_per_key("secure_app", Secure::<LimitKey, PassThrough>::new, &apps);
    bytes_per_key("governor_limitkey", Governor::<LimitKey>::new, &apps);
}

// ---------------------------------------------------------------------------------------
// Timed scenarios
// ---------------------------------------------------------------------------------------

fn hot_key(c: &mut Criterion, deriver: &KeyDeriver) {
    let app_key = deriver.key(POLICY_ID, &Identity::Ip(ip(7)));
    let mut g = c.benchmark_group("hot_key");

    let l = Secure::<u64, RandomState>::new();
    g.bench_function("secure_u64", |b| b.iter(|| l.check(black_box(&7))));
    let l = Governor::<u64>::new();
    g.bench_function("governor_u64", |b| b.iter(|| l.check(black_box(&7))));
    let l = Secure::<LimitKey, PassThrough>::new();
    g.bench_function("secure_app", |b| b.iter(|| l.check(black_box(&app_key))));
    let l = Governor::<LimitKey>::new();
    g.bench_function("governor_limitkey", |b| {
        b.iter(|| l.check(black_box(&app_key)))
    });
    let l = GovernorSnapshot(RateLimiter::keyed(quota()).with_middleware());
    g.bench_function("governor_u64_snapshot", |b| {
        b.iter(|| l.check(black_box(&7)))
    });
    // Diagnostic: secure-api's store on governor's clock, to separate clock from store.
    let l = Secure::<u64, RandomState>::with_clock(Arc::new(QuantaForSecure::new()));
    g.bench_function("secure_u64_quanta_clock", |b| {
        b.iter(|| l.check(black_box(&7)))
    });
    g.finish();

    // The clocks alone, as each limiter reads them.
    let mut g = c.benchmark_group("clock");
    let std_clock: Arc<dyn Clock> = Arc::new(MonotonicClock::new());
    g.bench_function("secure_monotonic_dyn", |b| b.iter(|| std_clock.now()));
    let quanta = QuantaClock::default();
    g.bench_function("governor_quanta", |b| b.iter(|| quanta.now()));
    g.finish();
}

/// Cycles through `keys` with one call per iteration.
fn cycle<L: Limiter>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    limiter: &L,
    keys: &[L::Key],
) {
    g.bench_function(name, |b| {
        let mut i = 0usize;
        b.iter(|| {
            let ok = limiter.check(&keys[i]);
            i += 1;
            if i == keys.len() {
                i = 0;
            }
            ok
        })
    });
}

fn distinct(c: &mut Criterion, deriver: &KeyDeriver) {
    let u64s = u64_keys(0..DISTINCT as u64);
    let apps = app_keys(deriver, 0..DISTINCT as u64);
    let mut g = c.benchmark_group("distinct_1m");
    cycle(
        &mut g,
        "secure_u64",
        &Secure::<u64, RandomState>::new(),
        &u64s,
    );
    cycle(&mut g, "governor_u64", &Governor::<u64>::new(), &u64s);
    cycle(
        &mut g,
        "secure_app",
        &Secure::<LimitKey, PassThrough>::new(),
        &apps,
    );
    cycle(
        &mut g,
        "governor_limitkey",
        &Governor::<LimitKey>::new(),
        &apps,
    );
    g.finish();
}

/// Two threads, each doing `iters` checks cycling through its own keys. Returns wall time
/// divided by two: the aggregate time per check.
fn run_two<L: Limiter>(limiter: &L, ranges: &[Vec<L::Key>; 2], iters: u64) -> Duration {
    let barrier = Barrier::new(3);
    let mut start = None;
    std::thread::scope(|s| {
        for keys in ranges {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                let mut i = 0usize;
                for _ in 0..iters {
                    black_box(limiter.check(&keys[i]));
                    i += 1;
                    if i == keys.len() {
                        i = 0;
                    }
                }
            });
        }
        barrier.wait();
        start = Some(Instant::now());
    });
    start.expect("the threads were started").elapsed() / 2
}

fn two<L: Limiter>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    limiter: &L,
    ranges: &[Vec<L::Key>; 2],
) {
    g.bench_function(name, |b| {
        b.iter_custom(|iters| run_two(limiter, ranges, iters))
    });
}

fn two_threads(c: &mut Criterion, deriver: &KeyDeriver) {
    let n = PER_THREAD as u64;
    let far = 1u64 << 32;
    let u64s = [u64_keys(0..n), u64_keys(far..far + n)];
    let apps = [app_keys(deriver, 0..n), app_keys(deriver, n..2 * n)];
    // Baseline for the scaling: one thread cycling through the first thread's keys.
    let mut g = c.benchmark_group("one_thread_1024");
    cycle(
        &mut g,
        "secure_u64",
        &Secure::<u64, RandomState>::new(),
        &u64s[0],
    );
    cycle(&mut g, "governor_u64", &Governor::<u64>::new(), &u64s[0]);
    cycle(
        &mut g,
        "secure_app",
        &Secure::<LimitKey, PassThrough>::new(),
        &apps[0],
    );
    cycle(
        &mut g,
        "governor_limitkey",
        &Governor::<LimitKey>::new(),
        &apps[0],
    );
    g.finish();

    let mut g = c.benchmark_group("two_threads");
    two(
        &mut g,
        "secure_u64",
        &Secure::<u64, RandomState>::new(),
        &u64s,
    );
    two(&mut g, "governor_u64", &Governor::<u64>::new(), &u64s);
    two(
        &mut g,
        "secure_app",
        &Secure::<LimitKey, PassThrough>::new(),
        &apps,
    );
    two(
        &mut g,
        "governor_limitkey",
        &Governor::<LimitKey>::new(),
        &apps,
    );
    g.finish();
}

/// The rest of the per-request cost in the app: deriving the key, and both together.
fn key_derivation(c: &mut Criterion, deriver: &KeyDeriver) {
    let ips: Vec<IpAddr> = (0..1024).map(ip).collect();
    let mut g = c.benchmark_group("key_derivation");
    g.bench_function("derive", |b| {
        let mut i = 0usize;
        b.iter(|| {
            let key = deriver.key(black_box(POLICY_ID), &Identity::Ip(ips[i]));
            i = (i + 1) & 1023;
            key
        })
    });
    let l = Secure::<LimitKey, PassThrough>::new();
    g.bench_function("derive_and_check_secure_app", |b| {
        let mut i = 0usize;
        b.iter(|| {
            let key = deriver.key(black_box(POLICY_ID), &Identity::Ip(ips[i]));
            i = (i + 1) & 1023;
            l.check(&key)
        })
    });
    g.finish();
}

fn main() {
    let deriver = KeyDeriver::default();
    // For profiling runs (`--profile-time`) under valgrind: skip the 4M untimed inserts.
    if std::env::var_os("LIMITER_SKIP_CHECKS").is_none() {
        checks_and_bytes(&deriver);
    }

    let mut c = Criterion::default().configure_from_args();
    hot_key(&mut c, &deriver);
    distinct(&mut c, &deriver);
    two_threads(&mut c, &deriver);
    key_derivation(&mut c, &deriver);
    c.final_summary();
}
