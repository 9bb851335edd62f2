//! The rate limiter against reference models, under concurrency, and within its memory
//! bound.

use std::collections::VecDeque;
use std::hash::RandomState;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use secure_api_runtime::clock::FakeClock;
use secure_api_runtime::throttle::memory::{MemoryStore, UntrackedClients};
use secure_api_runtime::throttle::{Algorithm, Gcra, LimitKey, Policy, Rate};

/// Counts live heap bytes, to check the store's memory bound.
#[global_allocator]
static ALLOC: counting_alloc::CountingAlloc = counting_alloc::CountingAlloc;

/// A token bucket in integer nanoseconds: the straightforward model GCRA must agree with.
struct Bucket {
    level: u64,
    cap: u64,
    interval: u64,
    last: u64,
}

impl Bucket {
    fn new(policy: &Policy) -> Self {
        let interval = Gcra::new(policy).interval();
        let cap = u64::from(policy.burst()) * interval;
        Bucket {
            level: cap,
            cap,
            interval,
            last: 0,
        }
    }

    fn take(&mut self, now: u64, cost: u32) -> (bool, u64) {
        self.level = (self.level + (now - self.last)).min(self.cap);
        self.last = now;
        let need = u64::from(cost) * self.interval;
        if self.level >= need {
            self.level -= need;
            (true, 0)
        } else {
            (false, need - self.level)
        }
    }
}

/// Keeps every admission: at most `count` in `(now - period, now]`.
struct Log {
    admitted: VecDeque<u64>,
    count: usize,
    period: u64,
}

impl Log {
    fn take(&mut self, now: u64, cost: u32) -> bool {
        let in_window = self
            .admitted
            .iter()
            .filter(|&&t| t + self.period > now)
            .count();
        if in_window + cost as usize <= self.count {
            for _ in 0..cost {
                self.admitted.push_back(now);
            }
            true
        } else {
            false
        }
    }
}

fn policy_strategy() -> impl Strategy<Value = Policy> {
    (1u32..40, prop_oneof![Just(1u64), Just(60)], 1u32..40).prop_map(|(count, secs, burst)| {
        let rate = if secs == 1 {
            Rate::per_second(count)
        } else {
            Rate::per_minute(count)
        };
        Policy::new("p", rate).with_burst(burst)
    })
}

fn trace() -> impl Strategy<Value = Vec<(u64, u32)>> {
    proptest::collection::vec((0u64..200_000_000, 1u32..4), 1..300)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn gcra_agrees_with_a_token_bucket(policy in policy_strategy(), trace in trace()) {
        let clock = FakeClock::new();
        let store = MemoryStore::<u64, RandomState>::with_clock(Arc::new(clock.clone()));
        let mut model = Bucket::new(&policy);
        let mut now = 0;
        for (gap, cost) in trace {
            now += gap;
            clock.set(now);
            let got = store.check(&1, &policy, cost).unwrap();
            let (allowed, wait) = model.take(now, cost);
            prop_assert_eq!(got.allowed, allowed, "at {} cost {}", now, cost);
            if !allowed && cost <= policy.burst() {
                prop_assert_eq!(got.retry_after_ns, wait);
            }
        }
    }

    #[test]
    fn sliding_window_agrees_with_a_full_log(count in 1u32..20, trace in trace()) {
        let clock = FakeClock::new();
        let store = MemoryStore::<u64, RandomState>::with_clock(Arc::new(clock.clone()));
        let policy = Policy::new("w", Rate::per_second(count)).with_algorithm(Algorithm::SlidingWindow);
        let mut model = Log { admitted: VecDeque::new(), count: count as usize, period: 1_000_000_000 };
        let mut now = 0;
        for (gap, cost) in trace {
            now += gap * 3;
            clock.set(now);
            let got = store.check(&1, &policy, cost).unwrap();
            prop_assert_eq!(got.allowed, model.take(now, cost), "at {}", now);
        }
    }
}

#[test]
fn gcra_allows_exactly_burst_plus_rate_per_period() {
    for (count, burst) in [(100u32, 100u32), (10, 1), (50, 7), (1000, 20)] {
        let clock = FakeClock::new();
        let store = MemoryStore::<u64, RandomState>::with_clock(Arc::new(clock.clone()));
        let policy = Policy::new("p", Rate::per_second(count)).with_burst(burst);
        let mut allowed = 0;
        // Ask every 100 µs through one whole second, both ends included.
        for step in 0..=10_000u64 {
            clock.set(step * 100_000);
            allowed += u32::from(store.check(&1, &policy, 1).unwrap().allowed);
        }
        assert_eq!(allowed, burst + count, "{count}/s burst {burst}");
    }
}

#[test]
fn sliding_window_never_exceeds_n_in_any_window() {
    let clock = FakeClock::new();
    let store = MemoryStore::<u64, RandomState>::with_clock(Arc::new(clock.clone()));
    let policy = Policy::new("w", Rate::per_second(5)).with_algorithm(Algorithm::SlidingWindow);
    let mut admitted = Vec::new();
    for step in 0..5_000u64 {
        let now = step * 1_000_000 + (step * 7919 % 997);
        clock.set(now);
        if store.check(&1, &policy, 1).unwrap().allowed {
            admitted.push(now);
        }
    }
    for (i, &start) in admitted.iter().enumerate() {
        let in_window = admitted[i..]
            .iter()
            .take_while(|&&t| t < start + 1_000_000_000)
            .count();
        assert!(
            in_window <= 5,
            "{in_window} admissions in the window from {start}"
        );
    }
    assert!(
        admitted.len() >= 5 * 4,
        "the window refills: {}",
        admitted.len()
    );
}

#[test]
fn two_threads_on_one_key_never_beat_the_model() {
    for _ in 0..20 {
        let clock = FakeClock::new();
        let store = Arc::new(MemoryStore::<u64, RandomState>::with_clock(Arc::new(
            clock.clone(),
        )));
        let policy = Policy::new("p", Rate::per_second(1000)).with_burst(50);
        let allowed = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (store, allowed, clock) = (store.clone(), allowed.clone(), clock.clone());
                std::thread::spawn(move || {
                    for i in 0..20_000u64 {
                        if i % 100 == 0 {
                            clock.advance(Duration::from_micros(50));
                        }
                        if store.check(&7, &policy, 1).unwrap().allowed {
                            allowed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // The model: the burst plus one token per millisecond of elapsed time.
        let elapsed_ms = clock_now(&clock) / 1_000_000;
        let max = 50 + elapsed_ms as u32;
        let got = allowed.load(Ordering::Relaxed);
        assert!(got <= max, "{got} allowed, the model allows {max}");
        assert!(got >= 50, "{got}");
    }
}

fn clock_now(clock: &FakeClock) -> u64 {
    use secure_api_runtime::clock::Clock;
    clock.now()
}

#[test]
fn a_frozen_clock_admits_exactly_the_burst_across_threads() {
    let clock = FakeClock::new();
    let store = Arc::new(MemoryStore::<u64, RandomState>::with_clock(Arc::new(clock)));
    let policy = Policy::new("p", Rate::per_second(10)).with_burst(1000);
    let allowed = Arc::new(AtomicU32::new(0));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (store, allowed) = (store.clone(), allowed.clone());
            std::thread::spawn(move || {
                for _ in 0..5_000 {
                    if store.check(&3, &policy, 1).unwrap().allowed {
                        allowed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(allowed.load(Ordering::Relaxed), 1000);
}

#[test]
fn a_million_distinct_keys_stay_within_the_memory_bound() {
    const MAX_KEYS: usize = 100_000;
    // An entry is 24 bytes (16-byte key, 8-byte cell); with the map's control bytes and
    // spare capacity, measured peaks are about 65 bytes per tracked key.
    const BYTES_PER_KEY: isize = 80;
    let clock = FakeClock::new();
    let policy = Policy::new("p", Rate::per_second(10));
    let ((store, rejected, peak), end) = counting_alloc::retained(|| {
        let store = MemoryStore::<LimitKey>::with_clock(Arc::new(clock.clone())).max_keys(MAX_KEYS);
        let mut rejected = 0;
        let mut peak = 0isize;
        for i in 0..1_000_000u64 {
            if i % 1000 == 0 {
                // 1,000 new clients per millisecond: a client's state goes stale after 100 ms.
                clock.advance(Duration::from_millis(1));
            }
            let key = LimitKey([i.wrapping_mul(0x9E37_79B9_7F4A_7C15), i]);
            if store.check(&key, &policy, 1).is_err() {
                rejected += 1;
            }
            assert!(store.len() <= MAX_KEYS);
            if i % 10_000 == 0 {
                peak = peak.max(counting_alloc::live_bytes());
            }
        }
        (store, rejected, peak)
    });
    let peak = peak.max(end);
    let bound = MAX_KEYS as isize * BYTES_PER_KEY;
    eprintln!(
        "1M keys: {} tracked, {rejected} rejected while full, peak {peak} bytes ({} per tracked key max)",
        store.len(),
        peak / MAX_KEYS as isize
    );
    assert!(peak <= bound, "peak {peak} bytes over the bound {bound}");

    // With room to spare, nothing is refused.
    let store = MemoryStore::<LimitKey>::with_clock(Arc::new(clock.clone()))
        .max_keys(10)
        .when_full(UntrackedClients::Allow);
    for i in 0..1000u64 {
        assert!(store.check(&LimitKey([i, i]), &policy, 1).unwrap().allowed);
    }
    assert!(store.len() <= 10);
}
