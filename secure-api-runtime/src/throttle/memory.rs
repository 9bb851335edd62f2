//! The in-memory store: lock-free GCRA cells and sliding-window logs in sharded maps,
//! bounded in keys.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::window::SlidingWindow;
use super::{
    Algorithm, Decision, Gcra, LimitKey, Policy, RateLimitStore, StoreError, StoreFuture,
    StoreUsage,
};
use crate::clock::{Clock, MonotonicClock, StoreClock};

pub(crate) mod pass_through;
use pass_through::PassThrough;

/// Whether a full store lets through the requests of clients it cannot track: a new client
/// arriving when `max_keys` clients are tracked and none could be swept out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UntrackedClients {
    /// Refuse the request (503 with `Retry-After`): memory stays bounded and no client
    /// escapes its limit. The default.
    #[default]
    Reject,
    /// Let the request through without tracking it (so without a limit): availability over
    /// strictness.
    Allow,
}

/// Default bound on tracked clients.
pub const DEFAULT_MAX_KEYS: usize = 1_000_000;

/// How often, at most, a full store sweeps for stale keys.
const SWEEP_EVERY_NS: u64 = 100_000_000;

/// Rate-limit state in memory, shared by every worker of an app.
///
/// - GCRA state is one `AtomicU64` per key, updated by compare-and-swap; a denial writes
///   nothing.
/// - At most `max_keys` keys are tracked. When full, keys whose state carries no
///   information (a full bucket, an empty window) are swept out, which changes no decision;
///   if the store is still full, [`UntrackedClients`] decides whether a new client is
///   refused or let through untracked.
///
/// Generic over the key and its hasher so that it can be measured against other limiters
/// with the same key type; the app uses [`LimitKey`] with a pass-through hasher (the key
/// already is a keyed hash).
///
/// ```
/// use secure_api_runtime::throttle::memory::MemoryStore;
/// use secure_api_runtime::throttle::{Policy, Rate};
/// use secure_api_runtime::clock::FakeClock;
/// use std::sync::Arc;
///
/// let store = MemoryStore::<u64>::with_clock(Arc::new(FakeClock::new()));
/// let policy = Policy::new("default", Rate::per_second(2));
/// assert!(store.check(&7, &policy, 1).unwrap().allowed);
/// assert!(store.check(&7, &policy, 1).unwrap().allowed);
/// assert!(!store.check(&7, &policy, 1).unwrap().allowed);
/// assert!(store.check(&8, &policy, 1).unwrap().allowed);
/// ```
pub struct MemoryStore<K = LimitKey, S = PassThrough> {
    gcra: DashMap<K, AtomicU64, S>,
    windows: DashMap<K, Mutex<SlidingWindow>, S>,
    keys: AtomicUsize,
    max_keys: usize,
    when_full: UntrackedClients,
    clock: StoreClock,
    /// Held while sweeping: one sweep at a time, and a full store's new client waits for
    /// the sweep in progress instead of being refused while it frees room.
    sweeping: Mutex<()>,
    last_sweep: AtomicU64,
}

impl<K: Hash + Eq + Clone, S: BuildHasher + Clone + Default> MemoryStore<K, S> {
    /// A store on the system clock with the default bounds.
    pub fn new() -> Self {
        Self::on(StoreClock::System(MonotonicClock::new()))
    }

    /// A store on the given clock with the default bounds.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self::on(StoreClock::Other(clock))
    }

    fn on(clock: StoreClock) -> Self {
        MemoryStore {
            gcra: DashMap::with_hasher(S::default()),
            windows: DashMap::with_hasher(S::default()),
            keys: AtomicUsize::new(0),
            max_keys: DEFAULT_MAX_KEYS,
            when_full: UntrackedClients::default(),
            clock,
            sweeping: Mutex::new(()),
            last_sweep: AtomicU64::new(0),
        }
    }

    /// Sets the bound on tracked keys (at least 1).
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys.max(1);
        self
    }

    /// Sets whether new clients are refused or let through untracked when the store is
    /// full.
    pub fn when_full(mut self, policy: UntrackedClients) -> Self {
        self.when_full = policy;
        self
    }

    /// The most keys the store tracks (see [`max_keys`](Self::max_keys)).
    /// [`len`](Self::len) never passes it, not even while new clients race for the last
    /// room.
    ///
    /// ```
    /// use secure_api_runtime::throttle::memory::MemoryStore;
    /// let store: MemoryStore = MemoryStore::new().max_keys(10_000);
    /// assert_eq!(store.bound(), 10_000);
    /// ```
    pub fn bound(&self) -> usize {
        self.max_keys
    }

    /// The number of tracked keys.
    pub fn len(&self) -> usize {
        self.keys.load(Ordering::Relaxed)
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The current time of the store's clock, in nanoseconds.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Charges `cost` to `key` under `policy` at the store's current time.
    #[inline]
    pub fn check(&self, key: &K, policy: &Policy, cost: u32) -> Result<Decision, StoreError> {
        let now = self.clock.now();
        match policy.algorithm() {
            Algorithm::Gcra => self.check_gcra(key, policy, cost, now),
            Algorithm::SlidingWindow => self.check_window(key, policy, cost, now),
        }
    }

    #[inline]
    fn check_gcra(
        &self,
        key: &K,
        policy: &Policy,
        cost: u32,
        now: u64,
    ) -> Result<Decision, StoreError> {
        let gcra = Gcra::new(policy);
        if let Some(cell) = self.gcra.get(key) {
            return Ok(Self::update(&gcra, &cell, now, cost));
        }
        // A new client: a denial (cost above the burst) stores nothing.
        let (decision, tat) = gcra.decide(None, now, cost);
        let Some(tat) = tat else {
            return Ok(decision);
        };
        if !self.reserve(now)? {
            return Ok(decision);
        }
        Ok(
            self.insert_new(&self.gcra, key, AtomicU64::new(tat), decision, |cell| {
                Self::update(&gcra, cell, now, cost)
            }),
        )
    }

    /// The compare-and-swap loop on one GCRA cell.
    #[inline]
    fn update(gcra: &Gcra, cell: &AtomicU64, now: u64, cost: u32) -> Decision {
        let mut current = cell.load(Ordering::Acquire);
        loop {
            let (decision, tat) = gcra.decide(Some(current), now, cost);
            match tat {
                Some(tat) if decision.allowed => {
                    match cell.compare_exchange_weak(
                        current,
                        tat,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => return decision,
                        Err(actual) => current = actual,
                    }
                }
                _ => return decision,
            }
        }
    }

    fn check_window(
        &self,
        key: &K,
        policy: &Policy,
        cost: u32,
        now: u64,
    ) -> Result<Decision, StoreError> {
        if let Some(log) = self.windows.get(key) {
            let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
            return Ok(log.decide(policy, now, cost));
        }
        let mut fresh = SlidingWindow::new(policy);
        let decision = fresh.decide(policy, now, cost);
        if !decision.allowed || !self.reserve(now)? {
            return Ok(decision);
        }
        Ok(
            self.insert_new(&self.windows, key, Mutex::new(fresh), decision, |log| {
                log.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .decide(policy, now, cost)
            }),
        )
    }

    /// Gives back `cost` units charged to `key` under `policy` (see
    /// [`RateLimitStore::refund`]); a key without state is left alone.
    ///
    /// ```
    /// use secure_api_runtime::throttle::memory::MemoryStore;
    /// use secure_api_runtime::throttle::{Algorithm, Policy, Rate};
    /// use secure_api_runtime::clock::FakeClock;
    /// use std::sync::Arc;
    ///
    /// let store = MemoryStore::<u64>::with_clock(Arc::new(FakeClock::new()));
    /// let policy = Policy::new("failures", Rate::per_minute(1))
    ///     .with_algorithm(Algorithm::SlidingWindow);
    /// assert!(store.check(&7, &policy, 1).unwrap().allowed);
    /// store.refund(&7, &policy, 1);
    /// assert!(store.check(&7, &policy, 1).unwrap().allowed);
    /// assert!(!store.check(&7, &policy, 1).unwrap().allowed);
    /// ```
    pub fn refund(&self, key: &K, policy: &Policy, cost: u32) {
        let now = self.clock.now();
        match policy.algorithm() {
            Algorithm::Gcra => {
                let Some(cell) = self.gcra.get(key) else {
                    return;
                };
                let gcra = Gcra::new(policy);
                let mut current = cell.load(Ordering::Acquire);
                loop {
                    let tat = gcra.refund(current, now, cost);
                    match cell.compare_exchange_weak(
                        current,
                        tat,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => return,
                        Err(actual) => current = actual,
                    }
                }
            }
            Algorithm::SlidingWindow => {
                if let Some(log) = self.windows.get(key) {
                    log.lock().unwrap_or_else(|p| p.into_inner()).refund(cost);
                }
            }
        }
    }

    /// Stores `fresh` (already decided as `decision`) for a new key whose room is reserved;
    /// if another worker inserted the key meanwhile, gives the room back and decides
    /// against that entry instead.
    fn insert_new<V>(
        &self,
        map: &DashMap<K, V, S>,
        key: &K,
        fresh: V,
        decision: Decision,
        existing: impl FnOnce(&V) -> Decision,
    ) -> Decision {
        match map.entry(key.clone()) {
            Entry::Vacant(v) => {
                v.insert(fresh);
                decision
            }
            Entry::Occupied(o) => {
                self.keys.fetch_sub(1, Ordering::Relaxed);
                existing(o.get())
            }
        }
    }

    /// Reserves room for one more key: `Ok(true)` when there is room, `Ok(false)` to let the
    /// request through untracked, `Err(Full)` to reject it.
    fn reserve(&self, now: u64) -> Result<bool, StoreError> {
        if self.take_room() {
            return Ok(true);
        }
        self.sweep_or_wait(now, true);
        if self.take_room() {
            return Ok(true);
        }
        match self.when_full {
            UntrackedClients::Reject => Err(StoreError::Full),
            UntrackedClients::Allow => Ok(false),
        }
    }

    /// Counts one more key if there is room: a compare-and-set, so that the count never
    /// passes `max_keys`, not even for a moment while new clients race for the last room.
    fn take_room(&self) -> bool {
        self.keys
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max_keys).then_some(n + 1)
            })
            .is_ok()
    }

    /// Drops every key whose state no longer affects any decision. Runs at most once per
    /// 100 ms and never concurrently with itself (a call during another sweep returns at
    /// once).
    pub fn sweep(&self, now: u64) {
        self.sweep_or_wait(now, false);
    }

    /// [`sweep`](Self::sweep); with `wait`, a call during another sweep waits for it to
    /// finish (the room a full store's new client needs may be what that sweep frees).
    fn sweep_or_wait(&self, now: u64, wait: bool) {
        let due = || {
            let last = self.last_sweep.load(Ordering::Relaxed);
            last == 0 || now.saturating_sub(last) >= SWEEP_EVERY_NS
        };
        if !due() {
            return;
        }
        let _sweeping = match self.sweeping.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) if !wait => return,
            Err(TryLockError::WouldBlock) => {
                drop(self.sweeping.lock().unwrap_or_else(PoisonError::into_inner));
                return;
            }
        };
        if !due() {
            return;
        }
        let mut removed = 0usize;
        self.gcra.retain(|_, tat| {
            let keep = !Gcra::is_stale(tat.load(Ordering::Acquire), now);
            removed += usize::from(!keep);
            keep
        });
        self.windows.retain(|_, log| {
            let keep = !log
                .get_mut()
                .unwrap_or_else(|p| p.into_inner())
                .is_stale(now);
            removed += usize::from(!keep);
            keep
        });
        self.keys.fetch_sub(removed, Ordering::Relaxed);
        self.last_sweep.store(now.max(1), Ordering::Relaxed);
    }
}

impl<K: Hash + Eq + Clone, S: BuildHasher + Clone + Default> Default for MemoryStore<K, S> {
    fn default() -> Self {
        Self::new()
    }
}

impl RateLimitStore for MemoryStore<LimitKey, PassThrough> {
    fn acquire(
        &self,
        key: LimitKey,
        policy: &Policy,
        cost: u32,
    ) -> StoreFuture<'_, Result<Decision, StoreError>> {
        StoreFuture::ready(self.check(&key, policy, cost))
    }

    fn refund(
        &self,
        key: LimitKey,
        policy: &Policy,
        cost: u32,
    ) -> StoreFuture<'_, Result<(), StoreError>> {
        MemoryStore::refund(self, &key, policy, cost);
        StoreFuture::ready(Ok(()))
    }

    fn backend(&self) -> &'static str {
        "memory"
    }

    /// The tracked keys ([`len`](MemoryStore::len)) of at most
    /// [`bound`](MemoryStore::bound): one atomic load.
    fn usage(&self) -> Option<StoreUsage> {
        Some(StoreUsage::new(self.len(), self.bound()))
    }
}

impl Hash for LimitKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0[0]);
        state.write_u64(self.0[1]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use crate::throttle::Rate;
    use std::time::Duration;

    fn store(clock: &FakeClock) -> MemoryStore {
        MemoryStore::with_clock(Arc::new(clock.clone()))
    }

    #[test]
    fn a_gcra_refund_undoes_a_charge_and_no_more() {
        let clock = FakeClock::new();
        let store = store(&clock);
        let key = LimitKey([1, 2]);
        let policy = Policy::new("p", Rate::per_minute(3));
        for _ in 0..3 {
            assert!(store.check(&key, &policy, 1).unwrap().allowed);
        }
        assert!(!store.check(&key, &policy, 1).unwrap().allowed);
        MemoryStore::refund(&store, &key, &policy, 1);
        assert!(store.check(&key, &policy, 1).unwrap().allowed);
        assert!(!store.check(&key, &policy, 1).unwrap().allowed);
        // Refunding far more than was charged only fills the bucket.
        MemoryStore::refund(&store, &key, &policy, 100);
        for _ in 0..3 {
            assert!(store.check(&key, &policy, 1).unwrap().allowed);
        }
        assert!(!store.check(&key, &policy, 1).unwrap().allowed);
    }

    #[test]
    fn a_window_refund_forgets_the_newest_admissions() {
        let clock = FakeClock::new();
        let store = store(&clock);
        let key = LimitKey([3, 4]);
        let policy = Policy::new("p", Rate::per_minute(2)).with_algorithm(Algorithm::SlidingWindow);
        assert!(store.check(&key, &policy, 1).unwrap().allowed);
        clock.advance(Duration::from_secs(10));
        assert!(store.check(&key, &policy, 1).unwrap().allowed);
        let denied = store.check(&key, &policy, 1).unwrap();
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after_secs(), 50);
        MemoryStore::refund(&store, &key, &policy, 1);
        let allowed = store.check(&key, &policy, 1).unwrap();
        assert!(allowed.allowed);
        assert_eq!(allowed.remaining(), 0);
        MemoryStore::refund(&store, &key, &policy, 5);
        assert_eq!(store.check(&key, &policy, 1).unwrap().remaining(), 1);
    }

    #[test]
    fn the_key_count_never_passes_the_bound_while_new_clients_race() {
        use std::sync::atomic::AtomicBool;
        let clock = FakeClock::new();
        // Full of keys that are not stale (the clock does not move): every new client is
        // refused, and none may be counted, not even for a moment.
        let store = Arc::new(store(&clock).max_keys(8));
        let policy = Policy::new("p", Rate::per_minute(3));
        for k in 0..8 {
            assert!(store.check(&LimitKey([k, 0]), &policy, 1).unwrap().allowed);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut most = 0;
                while !stop.load(Ordering::Relaxed) {
                    most = most.max(store.len());
                }
                most
            })
        };
        let clients: Vec<_> = (0..3u64)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for n in 0..20_000 {
                        let refused = store.check(&LimitKey([100 + t, n]), &policy, 1);
                        assert!(matches!(refused, Err(StoreError::Full)));
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        assert_eq!(sampler.join().unwrap(), 8, "len() never passed max_keys");
        assert_eq!(store.len(), 8);
        assert_eq!(store.bound(), 8);
    }

    #[test]
    fn new_clients_of_a_full_store_wait_for_the_sweep_that_makes_room() {
        use std::sync::Barrier;
        const STALE: u64 = 100_000;
        const CLIENTS: u64 = 4;
        let clock = FakeClock::new();
        let store = Arc::new(store(&clock).max_keys(STALE as usize));
        let policy = Policy::new("p", Rate::per_second(1));
        for round in 0..3 {
            // Full of keys that are stale a second later; sweeping them takes a while.
            // Keys as the deriver makes them: uniformly spread (the map's hasher passes them
            // through).
            for k in 0..STALE {
                let key = LimitKey([(k + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15), round]);
                assert!(store.check(&key, &policy, 1).unwrap().allowed);
            }
            clock.advance(Duration::from_secs(2));
            // New clients arrive together: one sweeps, the others must wait for the room it
            // frees rather than be refused while it works.
            let barrier = Arc::new(Barrier::new(CLIENTS as usize));
            let clients: Vec<_> = (0..CLIENTS)
                .map(|c| {
                    let (store, barrier) = (store.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        let key = LimitKey([(c + 1).wrapping_mul(0xc2b2_ae3d_27d4_eb4f), round]);
                        store.check(&key, &policy, 1)
                    })
                })
                .collect();
            for client in clients {
                let decision = client.join().unwrap();
                assert!(decision.is_ok_and(|d| d.allowed), "round {round}: refused");
            }
            assert_eq!(store.len(), CLIENTS as usize);
            // The clients' own keys go stale too, before the next round fills the store.
            clock.advance(Duration::from_secs(2));
            store.sweep(clock.now());
        }
    }

    #[actix_rt::test]
    async fn refunding_an_unknown_key_creates_nothing() {
        let clock = FakeClock::new();
        let store = store(&clock);
        let gcra = Policy::new("p", Rate::per_minute(3));
        let window = gcra.with_algorithm(Algorithm::SlidingWindow);
        RateLimitStore::refund(&store, LimitKey([5, 6]), &gcra, 1)
            .await
            .unwrap();
        RateLimitStore::refund(&store, LimitKey([5, 6]), &window, 1)
            .await
            .unwrap();
        assert!(store.is_empty());
    }
}
