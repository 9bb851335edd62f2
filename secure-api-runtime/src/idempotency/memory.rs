//! The in-memory idempotency store: bounded in entries and bytes, expiring by TTL.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry as MapEntry;

use super::{Claim, Digest, IdempotencyStore, StoredResponse};
use crate::clock::{Clock, MonotonicClock};
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

/// Idempotency state in memory, shared by every worker of an app.
///
/// At most `max_entries` keys and `max_bytes` of stored responses are held; when full,
/// expired entries are swept out, and if that is not enough, new claims fail with
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
    bytes: AtomicUsize,
    max_entries: usize,
    max_bytes: usize,
    clock: Arc<dyn Clock>,
}

impl Default for MemoryIdempotencyStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryIdempotencyStore {
    /// A store on the system clock with the default bounds.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(MonotonicClock::new()))
    }

    /// A store on the given clock with the default bounds.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        MemoryIdempotencyStore {
            map: DashMap::new(),
            bytes: AtomicUsize::new(0),
            max_entries: DEFAULT_MAX_ENTRIES,
            max_bytes: DEFAULT_MAX_BYTES,
            clock,
        }
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
        self.map.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes of stored responses.
    pub fn stored_bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    fn sweep(&self, now: u64) {
        let mut freed = 0;
        self.map.retain(|_, e| {
            let keep = e.until() > now;
            if !keep {
                freed += e.bytes();
            }
            keep
        });
        self.bytes.fetch_sub(freed, Ordering::Relaxed);
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
        if !self.map.contains_key(key) && self.map.len() >= self.max_entries {
            self.sweep(now);
            if self.map.len() >= self.max_entries {
                return Err(StoreError::Full);
            }
        }
        match self.map.entry(*key) {
            MapEntry::Vacant(v) => {
                v.insert(Entry {
                    fingerprint: *fingerprint,
                    state: State::InFlight { owner, until },
                });
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
            drop(entry);
            self.sweep(now);
            if self.bytes.load(Ordering::Relaxed) + size > self.max_bytes {
                return Err(StoreError::Full);
            }
            return self.complete_now(key, owner, response, ttl_ms);
        }
        self.bytes.fetch_add(size, Ordering::Relaxed);
        entry.state = State::Done {
            response: Arc::new(response),
            until: now.saturating_add(ttl_ms.saturating_mul(NANOS_PER_MS)),
        };
        Ok(true)
    }

    fn release_now(&self, key: &Digest, owner: u128) -> bool {
        self.map
            .remove_if(
                key,
                |_, e| matches!(e.state, State::InFlight { owner: o, .. } if o == owner),
            )
            .is_some()
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

    #[test]
    fn bounds_refuse_new_claims_rather_than_grow() {
        let clock = FakeClock::new();
        let store = MemoryIdempotencyStore::with_clock(Arc::new(clock.clone()))
            .max_entries(2)
            .max_bytes(200);
        let fp = Digest([0; 32]);
        assert!(now(store.claim(&Digest([1; 32]), &fp, 1, 1_000)).is_ok());
        assert!(now(store.claim(&Digest([2; 32]), &fp, 1, 1_000)).is_ok());
        assert!(matches!(
            now(store.claim(&Digest([3; 32]), &fp, 1, 1_000)),
            Err(StoreError::Full)
        ));
        clock.advance(std::time::Duration::from_millis(1_001));
        assert!(matches!(
            now(store.claim(&Digest([3; 32]), &fp, 1, 1_000)).unwrap(),
            Claim::Acquired
        ));
        let big = StoredResponse {
            status: 200,
            headers: vec![],
            body: vec![0u8; 300].into(),
        };
        assert!(matches!(
            now(store.complete(&Digest([3; 32]), 1, big, 1_000)),
            Err(StoreError::Full)
        ));
    }
}
