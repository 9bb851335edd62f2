//! The in-memory idempotency store: bounded in entries and bytes, expiring by TTL.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry as MapEntry;

use super::{Claim, Digest, IdempotencyStore, StoredResponse};
use crate::clock::{Clock, MonotonicClock, StoreClock};
use crate::store::{StoreError, StoreFuture};

/// Default bound on keys held.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;
/// Default bound on the bytes of stored responses: 64 MiB.
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;

const NANOS_PER_MS: u64 = 1_000_000;

#[derive(Debug)]
struct Entry {
    fingerprint: Digest,
    state: State,
}

#[derive(Debug)]
enum State {
    InFlight {
        owner: u128,
        until: u64,
    },
    Done {
        response: Arc<StoredResponse>,
        until: u64,
    },
}

impl Entry {
    fn until(&self) -> u64 {
        match self.state {
            State::InFlight { until, .. } | State::Done { until, .. } => until,
        }
    }

    fn bytes(&self) -> usize {
        match &self.state {
            State::Done { response, .. } => response.size(),
            State::InFlight { .. } => 0,
        }
    }
}

/// What a full store does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenFull {
    /// Drop the oldest completed responses (expired ones first) to make room: under load
    /// beyond the bounds the replay window shrinks, and a warning is logged. In-flight
    /// claims are never dropped. The default.
    #[default]
    EvictOldest,
    /// Refuse new claims (503) until entries expire: replay windows are kept in full, at
    /// the price of availability.
    Reject,
}

/// Idempotency state in memory, shared by every worker of an app.
///
/// At most `max_entries` keys and `max_bytes` of stored responses are held. Completed
/// responses are queued in completion order; when the store is full the oldest are dropped
/// (or, with [`WhenFull::Reject`], only expired ones), so room is made without scanning
/// the store. When every entry is a running request, new claims fail with
/// [`StoreError::Full`] (a 503: an idempotent request is never run unprotected).
///
/// ```
/// use secure_api_runtime::idempotency::memory::MemoryIdempotencyStore;
/// use secure_api_runtime::idempotency::{Claim, Digest, IdempotencyStore, StoredResponse};
///
/// # futures_util::FutureExt::now_or_never(async {
/// let store = MemoryIdempotencyStore::new();
/// let (key, fp) = (Digest([1; 32]), Digest([2; 32]));
/// assert!(matches!(store.claim(&key, &fp, 7, 60_000).await.unwrap(), Claim::Acquired));
/// assert!(matches!(store.claim(&key, &fp, 8, 60_000).await.unwrap(), Claim::InFlight));
/// let response = StoredResponse { status: 201, headers: vec![], body: "ok".into() };
/// assert!(store.complete(&key, 7, response, 60_000).await.unwrap());
/// assert!(matches!(store.claim(&key, &fp, 9, 60_000).await.unwrap(), Claim::Completed(_)));
/// # }).unwrap();
/// ```
pub struct MemoryIdempotencyStore {
    map: DashMap<Digest, Entry>,
    /// Completed keys in completion order, with the expiry they were stored with.
    completed: Mutex<VecDeque<(Digest, u64)>>,
    /// Entries held (`DashMap::len` locks every shard; this does not).
    entries: AtomicUsize,
    bytes: AtomicUsize,
    max_entries: usize,
    max_bytes: usize,
    when_full: WhenFull,
    clock: StoreClock,
    last_warning: AtomicU64,
}

impl Default for MemoryIdempotencyStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryIdempotencyStore {
    /// A store on the system clock with the default bounds.
    pub fn new() -> Self {
        Self::on(StoreClock::System(MonotonicClock::new()))
    }

    /// A store on the given clock with the default bounds.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self::on(StoreClock::Other(clock))
    }

    fn on(clock: StoreClock) -> Self {
        MemoryIdempotencyStore {
            map: DashMap::new(),
            completed: Mutex::new(VecDeque::new()),
            entries: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            max_entries: DEFAULT_MAX_ENTRIES,
            max_bytes: DEFAULT_MAX_BYTES,
            when_full: WhenFull::default(),
            clock,
            last_warning: AtomicU64::new(0),
        }
    }

    /// Sets what a full store does.
    pub fn when_full(mut self, policy: WhenFull) -> Self {
        self.when_full = policy;
        self
    }

    /// Sets the bound on keys held.
    pub fn max_entries(mut self, n: usize) -> Self {
        self.max_entries = n.max(1);
        self
    }

    /// Sets the bound on bytes of stored responses.
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n;
        self
    }

    /// Keys held (in flight or completed, expired or not).
    pub fn len(&self) -> usize {
        self.entries.load(Ordering::Relaxed)
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of stored responses.
    pub fn stored_bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Drops the oldest completed entry that may go (any, or only an expired one under
    /// [`WhenFull::Reject`]). `false` when there is none: every entry is in flight (or
    /// still fresh).
    fn evict_one(&self, now: u64) -> bool {
        let mut queue = self.completed.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(&(key, until)) = queue.front() {
            if self.when_full == WhenFull::Reject && until > now {
                return false;
            }
            queue.pop_front();
            // Only the completion this queue entry recorded: the key may since have expired
            // and been claimed again.
            let removed = self.map.remove_if(
                &key,
                |_, e| matches!(e.state, State::Done { until: u, .. } if u == until),
            );
            if let Some((_, entry)) = removed {
                self.entries.fetch_sub(1, Ordering::Relaxed);
                self.bytes.fetch_sub(entry.bytes(), Ordering::Relaxed);
                if until > now {
                    self.warn_shrinking(now);
                }
                return true;
            }
        }
        false
    }

    fn warn_shrinking(&self, now: u64) {
        const MINUTE_NS: u64 = 60_000_000_000;
        let last = self.last_warning.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= MINUTE_NS)
            && self
                .last_warning
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            log::warn!(
                target: "secure_api::idempotency",
                "idempotency store full: dropping completed responses before their TTL (raise max_entries / max_bytes)"
            );
        }
    }

    fn claim_now(
        &self,
        key: &Digest,
        fingerprint: &Digest,
        owner: u128,
        lease_ms: u64,
    ) -> Result<Claim, StoreError> {
        let now = self.clock.now();
        let until = now.saturating_add(lease_ms.saturating_mul(NANOS_PER_MS));
        if self.len() >= self.max_entries && !self.map.contains_key(key) {
            while self.len() >= self.max_entries {
                if !self.evict_one(now) {
                    return Err(StoreError::Full);
                }
            }
        }
        match self.map.entry(*key) {
            MapEntry::Vacant(v) => {
                v.insert(Entry {
                    fingerprint: *fingerprint,
                    state: State::InFlight { owner, until },
                });
                self.entries.fetch_add(1, Ordering::Relaxed);
                Ok(Claim::Acquired)
            }
            MapEntry::Occupied(mut o) => {
                let entry = o.get_mut();
                if entry.until() <= now {
                    // Expired, or a lapsed lease: the key is free again.
                    self.bytes.fetch_sub(entry.bytes(), Ordering::Relaxed);
                    *entry = Entry {
                        fingerprint: *fingerprint,
                        state: State::InFlight { owner, until },
                    };
                    return Ok(Claim::Acquired);
                }
                if entry.fingerprint != *fingerprint {
                    return Ok(Claim::Mismatch);
                }
                Ok(match &entry.state {
                    State::InFlight { .. } => Claim::InFlight,
                    State::Done { response, .. } => Claim::Completed(response.clone()),
                })
            }
        }
    }

    fn complete_now(
        &self,
        key: &Digest,
        owner: u128,
        response: StoredResponse,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let size = response.size();
        let Some(mut entry) = self.map.get_mut(key) else {
            return Ok(false);
        };
        if !matches!(entry.state, State::InFlight { owner: o, .. } if o == owner) {
            return Ok(false);
        }
        if self.bytes.load(Ordering::Relaxed) + size > self.max_bytes {
            // Make room without holding this entry's lock (eviction locks other entries).
            drop(entry);
            while self.bytes.load(Ordering::Relaxed) + size > self.max_bytes {
                if !self.evict_one(now) {
                    return Err(StoreError::Full);
                }
            }
            return self.complete_now(key, owner, response, ttl_ms);
        }
        let until = now.saturating_add(ttl_ms.saturating_mul(NANOS_PER_MS));
        self.bytes.fetch_add(size, Ordering::Relaxed);
        entry.state = State::Done {
            response: Arc::new(response),
            until,
        };
        drop(entry);
        self.completed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back((*key, until));
        Ok(true)
    }

    fn release_now(&self, key: &Digest, owner: u128) -> bool {
        let removed = self
            .map
            .remove_if(
                key,
                |_, e| matches!(e.state, State::InFlight { owner: o, .. } if o == owner),
            )
            .is_some();
        if removed {
            self.entries.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }
}

impl IdempotencyStore for MemoryIdempotencyStore {
    fn claim(
        &self,
        key: &Digest,
        fingerprint: &Digest,
        owner: u128,
        lease_ms: u64,
    ) -> StoreFuture<'_, Result<Claim, StoreError>> {
        StoreFuture::ready(self.claim_now(key, fingerprint, owner, lease_ms))
    }

    fn complete(
        &self,
        key: &Digest,
        owner: u128,
        response: StoredResponse,
        ttl_ms: u64,
    ) -> StoreFuture<'_, Result<bool, StoreError>> {
        StoreFuture::ready(self.complete_now(key, owner, response, ttl_ms))
    }

    fn release(&self, key: &Digest, owner: u128) -> StoreFuture<'_, Result<bool, StoreError>> {
        StoreFuture::ready(Ok(self.release_now(key, owner)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use futures_util::FutureExt;

    fn response(body: &'static str) -> StoredResponse {
        StoredResponse {
            status: 201,
            headers: vec![("content-type".into(), b"text/plain".to_vec())],
            body: body.into(),
        }
    }

    fn now<T>(f: StoreFuture<'_, T>) -> T {
        f.now_or_never().expect("memory stores answer at once")
    }

    #[test]
    fn a_stale_owner_cannot_complete_or_release_a_newer_claim() {
        let clock = FakeClock::new();
        let store = MemoryIdempotencyStore::with_clock(Arc::new(clock.clone()));
        let (key, fp) = (Digest([1; 32]), Digest([2; 32]));
        assert!(matches!(
            now(store.claim(&key, &fp, 1, 1_000)).unwrap(),
            Claim::Acquired
        ));
        clock.advance(std::time::Duration::from_millis(1_001));
        // Owner 1's lease lapsed; owner 2 takes over.
        assert!(matches!(
            now(store.claim(&key, &fp, 2, 1_000)).unwrap(),
            Claim::Acquired
        ));
        assert!(!now(store.complete(&key, 1, response("stale"), 60_000)).unwrap());
        assert!(!now(store.release(&key, 1)).unwrap());
        assert!(now(store.complete(&key, 2, response("fresh"), 60_000)).unwrap());
        match now(store.claim(&key, &fp, 3, 1_000)).unwrap() {
            Claim::Completed(r) => assert_eq!(r.body, "fresh"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mismatch_release_and_expiry() {
        let clock = FakeClock::new();
        let store = MemoryIdempotencyStore::with_clock(Arc::new(clock.clone()));
        let key = Digest([1; 32]);
        assert!(matches!(
            now(store.claim(&key, &Digest([2; 32]), 1, 1_000)).unwrap(),
            Claim::Acquired
        ));
        assert!(matches!(
            now(store.claim(&key, &Digest([3; 32]), 2, 1_000)).unwrap(),
            Claim::Mismatch
        ));
        assert!(now(store.release(&key, 1)).unwrap());
        assert!(matches!(
            now(store.claim(&key, &Digest([3; 32]), 2, 1_000)).unwrap(),
            Claim::Acquired
        ));
        assert!(now(store.complete(&key, 2, response("x"), 5_000)).unwrap());
        clock.advance(std::time::Duration::from_millis(5_001));
        assert!(matches!(
            now(store.claim(&key, &Digest([4; 32]), 3, 1_000)).unwrap(),
            Claim::Acquired
        ));
        assert_eq!(store.stored_bytes(), 0);
    }

    fn key(n: u8) -> Digest {
        Digest([n; 32])
    }

    #[test]
    fn in_flight_claims_are_never_evicted() {
        let clock = FakeClock::new();
        let store = MemoryIdempotencyStore::with_clock(Arc::new(clock.clone())).max_entries(2);
        let fp = Digest([0; 32]);
        assert!(now(store.claim(&key(1), &fp, 1, 1_000)).is_ok());
        assert!(now(store.claim(&key(2), &fp, 1, 1_000)).is_ok());
        // Both running: a third claim is refused rather than dropping one.
        assert!(matches!(
            now(store.claim(&key(3), &fp, 1, 1_000)),
            Err(StoreError::Full)
        ));
        // A lapsed lease frees its own key when that key is claimed again.
        clock.advance(std::time::Duration::from_millis(1_001));
        assert!(matches!(
            now(store.claim(&key(1), &fp, 2, 1_000)).unwrap(),
            Claim::Acquired
        ));
    }

    #[test]
    fn a_full_store_drops_the_oldest_completed_responses() {
        let clock = FakeClock::new();
        let store = MemoryIdempotencyStore::with_clock(Arc::new(clock.clone())).max_entries(3);
        let fp = Digest([0; 32]);
        for n in 1..=3 {
            assert!(now(store.claim(&key(n), &fp, 1, 1_000)).is_ok());
            assert!(now(store.complete(&key(n), 1, response("r"), 60_000)).unwrap());
        }
        // Full of fresh completed responses: the oldest goes, the newer ones stay.
        assert!(matches!(
            now(store.claim(&key(4), &fp, 1, 1_000)).unwrap(),
            Claim::Acquired
        ));
        assert_eq!(store.len(), 3);
        assert!(matches!(
            now(store.claim(&key(2), &fp, 9, 1_000)).unwrap(),
            Claim::Completed(_)
        ));
        // Full again (2, 3 done; 4 running): the next new key drops 2, the oldest.
        assert!(matches!(
            now(store.claim(&key(5), &fp, 9, 1_000)).unwrap(),
            Claim::Acquired
        ));
        assert!(matches!(
            now(store.claim(&key(3), &fp, 9, 1_000)).unwrap(),
            Claim::Completed(_)
        ));
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn reject_keeps_replay_windows_until_expiry() {
        let clock = FakeClock::new();
        let store = MemoryIdempotencyStore::with_clock(Arc::new(clock.clone()))
            .max_entries(1)
            .when_full(WhenFull::Reject);
        let fp = Digest([0; 32]);
        assert!(now(store.claim(&key(1), &fp, 1, 1_000)).is_ok());
        assert!(now(store.complete(&key(1), 1, response("r"), 5_000)).unwrap());
        assert!(matches!(
            now(store.claim(&key(2), &fp, 1, 1_000)),
            Err(StoreError::Full)
        ));
        clock.advance(std::time::Duration::from_millis(5_001));
        assert!(matches!(
            now(store.claim(&key(2), &fp, 1, 1_000)).unwrap(),
            Claim::Acquired
        ));
        assert_eq!(store.stored_bytes(), 0);
    }

    #[test]
    fn the_entry_count_follows_claims_releases_and_evictions() {
        let store = MemoryIdempotencyStore::new().max_entries(2);
        let fp = Digest([0; 32]);
        for round in 0..5u128 {
            assert!(now(store.claim(&key(1), &fp, round, 1_000)).is_ok());
            assert_eq!(store.len(), 1);
            assert!(now(store.release(&key(1), round)).unwrap());
            assert_eq!(store.len(), 0);
        }
        for n in 0..10 {
            assert!(now(store.claim(&key(n), &fp, 1, 1_000)).is_ok());
            assert!(now(store.complete(&key(n), 1, response("r"), 60_000)).unwrap());
            assert!(store.len() <= 2);
        }
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn the_byte_bound_holds() {
        let clock = FakeClock::new();
        let store = MemoryIdempotencyStore::with_clock(Arc::new(clock.clone())).max_bytes(1_000);
        let fp = Digest([0; 32]);
        for n in 0..50 {
            assert!(now(store.claim(&key(n), &fp, 1, 1_000)).is_ok());
            let body = StoredResponse {
                status: 200,
                headers: vec![],
                body: vec![0u8; 300].into(),
            };
            assert!(now(store.complete(&key(n), 1, body, 60_000)).unwrap());
            assert!(store.stored_bytes() <= 1_000);
        }
        // A response that can never fit is refused.
        assert!(now(store.claim(&key(200), &fp, 1, 1_000)).is_ok());
        let huge = StoredResponse {
            status: 200,
            headers: vec![],
            body: vec![0u8; 2_000].into(),
        };
        assert!(matches!(
            now(store.complete(&key(200), 1, huge, 1_000)),
            Err(StoreError::Full)
        ));
    }
}
