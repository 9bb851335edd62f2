//! The in-memory idempotency store: bounded in entries and bytes, in total and per client,
//! expiring by TTL, without scans.
//!
//! Its state maps onto Redis keys one to one: a record per scope, and per client a usage
//! counter and an index of completions in completion order (a sorted set), all under the
//! client's hash tag; the global bounds are Redis's own memory limit and TTLs there.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry as MapEntry;

use super::{Claim, Completion, Digest, IdempotencyStore, RecordKey, StoredResponse};
use crate::clock::{Clock, MonotonicClock, StoreClock};
use crate::store::{StoreError, StoreFuture, StoreUsage};

/// Default bound on keys held.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;
/// Default bound on the bytes of stored responses: 64 MiB.
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;
/// By default one client may hold this fraction of each bound: 1/16 of the keys and 1/16 of
/// the bytes (6,250 keys and 4 MiB with the default bounds), so at least 16 clients are
/// needed to fill the store.
pub const DEFAULT_CLIENT_SHARE: usize = 16;

const NANOS_PER_MS: u64 = 1_000_000;
/// Expired completions dropped after each completion, so that expired records do not wait
/// for the store to fill before they go.
const SWEEP_PER_COMPLETION: usize = 2;

/// Expired completions taken out of the expiry index by one completion.
type Expired = [Option<((u64, u64), Digest)>; SWEEP_PER_COMPLETION];

/// The maps' hasher. Their keys are SHA-256 digests of what clients send, so a client can
/// grind keys whose digests share bits; a hasher seeded with secret randomness keeps it from
/// aiming them at one bucket. foldhash's quality variant does that at a fraction of std's
/// SipHash cost, here seeded from the OS's randomness.
type DigestHasher = foldhash::quality::SeedableRandomState;

fn digest_hasher() -> DigestHasher {
    use foldhash::SharedSeed;
    use std::sync::OnceLock;
    static SHARED: OnceLock<SharedSeed> = OnceLock::new();
    // Without OS randomness (never on the platforms actix runs on), foldhash's own random
    // state: address-space layout, time and allocator addresses.
    let (Ok(shared), Ok(own)) = (getrandom::u64(), getrandom::u64()) else {
        return DigestHasher::random();
    };
    DigestHasher::with_seed(own, SHARED.get_or_init(|| SharedSeed::from_u64(shared)))
}

#[derive(Debug)]
struct Entry {
    client: Digest,
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
        outcome: Outcome,
        until: u64,
        /// The completion's sequence number: its place in the indexes.
        seq: u64,
        /// Bytes counted against the budgets.
        bytes: usize,
    },
}

#[derive(Debug)]
enum Outcome {
    Response(Arc<StoredResponse>),
    NotReplayable(u16),
}

impl Entry {
    fn until(&self) -> u64 {
        match self.state {
            State::InFlight { until, .. } | State::Done { until, .. } => until,
        }
    }

    fn is_done(&self, seq: u64) -> bool {
        matches!(self.state, State::Done { seq: s, .. } if s == seq)
    }

    /// What a claim with `fingerprint` finds in this live entry.
    fn answer(&self, fingerprint: &Digest) -> Claim {
        if self.fingerprint != *fingerprint {
            return Claim::Mismatch;
        }
        match &self.state {
            State::InFlight { .. } => Claim::InFlight,
            State::Done {
                outcome: Outcome::Response(response),
                ..
            } => Claim::Completed(response.clone()),
            State::Done {
                outcome: Outcome::NotReplayable(status),
                ..
            } => Claim::NotReplayable { status: *status },
        }
    }
}

/// One client's share of the store.
#[derive(Debug, Default)]
struct ClientState {
    /// Records (running and completed).
    entries: usize,
    /// Bytes of its completed responses.
    bytes: usize,
    /// Its completions, oldest first.
    completed: Completions,
}

/// A completion in its client's index: `(seq, until, scope)`.
type Indexed = (u64, u64, Digest);

/// A client's completions, oldest first, sorted by `seq` (assigned under the client's
/// lock). The oldest is held inline: most clients hold one record, and they allocate
/// nothing for it.
#[derive(Debug, Default)]
struct Completions {
    /// The oldest; `None` only when `rest` is empty too.
    first: Option<Indexed>,
    /// The others, oldest first.
    rest: VecDeque<Indexed>,
}

impl Completions {
    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    fn front(&self) -> Option<&Indexed> {
        self.first.as_ref()
    }

    fn push_back(&mut self, item: Indexed) {
        if self.first.is_none() {
            self.first = Some(item);
        } else {
            self.rest.push_back(item);
        }
    }

    fn pop_front(&mut self) -> Option<Indexed> {
        let first = self.first.take();
        self.first = self.rest.pop_front();
        first
    }

    /// The completions, oldest first.
    #[cfg(test)]
    fn iter(&self) -> impl Iterator<Item = &Indexed> {
        self.first.iter().chain(self.rest.iter())
    }

    /// Removes the completion `seq`, wherever it is.
    fn forget(&mut self, seq: u64) {
        if self.first.is_some_and(|c| c.0 == seq) {
            self.pop_front();
        } else if let Ok(i) = self.rest.binary_search_by_key(&seq, |c| c.0) {
            self.rest.remove(i);
        }
    }
}

impl ClientState {
    fn forget(&mut self, seq: u64) {
        self.completed.forget(seq);
    }
}

/// One client's use of the store, from [`MemoryIdempotencyStore::client_usage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientUsage {
    /// Keys held (running and completed).
    pub entries: usize,
    /// Bytes of stored responses.
    pub bytes: usize,
    /// Completed keys.
    pub completed: usize,
}

/// What a new claim gets when the store, or its client's quota, is full: room made by
/// evicting completed records, or a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NewClaimsWhenFull {
    /// Make room by dropping completed records: expired ones first, then the ones closest
    /// to expiry (the oldest, when they share one TTL); past a client's quota, that client's
    /// own oldest completed records. Under load beyond the bounds the replay window shrinks,
    /// and a warning is logged. Running claims are never dropped. The default.
    #[default]
    EvictOldest,
    /// Refuse new claims (503) until records expire: replay windows are kept in full, at
    /// the price of availability. A client past its quota is refused until its own records
    /// expire; other clients are not affected.
    Reject,
}

/// Idempotency state in memory, shared by every worker of an app.
///
/// # Bounds
///
/// At most `max_entries` keys and `max_bytes` of stored responses are held in total, and at
/// most [`max_entries_per_client`](Self::max_entries_per_client) keys and
/// [`max_bytes_per_client`](Self::max_bytes_per_client) bytes per client (by default
/// 1/[`DEFAULT_CLIENT_SHARE`] of the totals). A client at its quota makes room from its own
/// oldest completed records (or, with [`NewClaimsWhenFull::Reject`], is refused), so one client
/// cannot push out other clients' replay records. When the store as a whole is full,
/// completed records go in expiry order. Running claims are never dropped: when every
/// record of a full store (or of a client at its quota) is running, new claims fail with
/// [`StoreError::Full`] (a 503: an idempotent request is never run unprotected). The bounds
/// are exact under concurrency: a record's place and a response's bytes are taken by
/// compare-and-set before they are stored, so requests racing for the last room never
/// pass a bound together.
///
/// Every index holds exactly one item per completed record, so nothing grows with key
/// reuse, and no operation scans: each takes a few `O(log n)` steps. After each completion
/// up to two expired records are dropped, so expired records do not linger until the store
/// fills.
///
/// ```
/// use secure_api_runtime::idempotency::memory::MemoryIdempotencyStore;
/// use secure_api_runtime::idempotency::{Claim, Completion, Digest, IdempotencyStore,
///     RecordKey, StoredResponse};
///
/// # futures_util::FutureExt::now_or_never(async {
/// let store = MemoryIdempotencyStore::new();
/// let key = RecordKey::new("principal:alice", "/orders", b"key-1");
/// let fp = Digest([2; 32]);
/// assert!(matches!(store.claim(&key, &fp, 7, 60_000).await.unwrap(), Claim::Acquired));
/// assert!(matches!(store.claim(&key, &fp, 8, 60_000).await.unwrap(), Claim::InFlight));
/// // The owner renews its lease while its handler runs.
/// assert!(store.renew(&key, 7, 60_000).await.unwrap());
/// let response = StoredResponse { status: 201, headers: vec![], body: "ok".into() };
/// assert!(store.complete(&key, 7, Completion::Response(response), 60_000).await.unwrap());
/// assert!(matches!(store.claim(&key, &fp, 9, 60_000).await.unwrap(), Claim::Completed(_)));
/// # }).unwrap();
/// ```
pub struct MemoryIdempotencyStore {
    map: DashMap<Digest, Entry, DigestHasher>,
    clients: DashMap<Digest, ClientState, DigestHasher>,
    /// Completed records by `(until, seq)`: expiry order, for sweeping and global eviction.
    expiry: Mutex<BTreeMap<(u64, u64), Digest>>,
    seq: AtomicU64,
    /// Entries held (`DashMap::len` locks every shard; this does not).
    entries: AtomicUsize,
    bytes: AtomicUsize,
    max_entries: usize,
    max_bytes: usize,
    client_max_entries: Option<usize>,
    client_max_bytes: Option<usize>,
    when_full: NewClaimsWhenFull,
    clock: StoreClock,
    last_warning: AtomicU64,
}

// Locks are taken in one order only: a `map` entry, then a `clients` entry, then `expiry`.
// Eviction takes an index item first and releases it before touching `map`. Whoever
// removes or changes a completed record in `map` updates the counters and the indexes, so
// each record is accounted for exactly once.

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
            map: DashMap::with_hasher(digest_hasher()),
            clients: DashMap::with_hasher(digest_hasher()),
            expiry: Mutex::new(BTreeMap::new()),
            seq: AtomicU64::new(0),
            entries: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            max_entries: DEFAULT_MAX_ENTRIES,
            max_bytes: DEFAULT_MAX_BYTES,
            client_max_entries: None,
            client_max_bytes: None,
            when_full: NewClaimsWhenFull::default(),
            clock,
            last_warning: AtomicU64::new(0),
        }
    }

    /// Sets whether a new claim on a full store evicts completed records or is refused.
    pub fn when_full(mut self, policy: NewClaimsWhenFull) -> Self {
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

    /// Sets the most keys (running and completed) one client may hold (default:
    /// `max_entries / 16`, at least 1; never more than `max_entries`).
    ///
    /// ```
    /// use secure_api_runtime::idempotency::memory::MemoryIdempotencyStore;
    /// let store = MemoryIdempotencyStore::new()
    ///     .max_entries(1_000_000)
    ///     .max_bytes(256 << 20)
    ///     .max_entries_per_client(10_000)
    ///     .max_bytes_per_client(8 << 20);
    /// ```
    pub fn max_entries_per_client(mut self, n: usize) -> Self {
        self.client_max_entries = Some(n.max(1));
        self
    }

    /// Sets the most bytes of stored responses one client may hold (default:
    /// `max_bytes / 16`; never more than `max_bytes`). A response larger than this is not
    /// stored: its key keeps a not-replayable marker instead.
    pub fn max_bytes_per_client(mut self, n: usize) -> Self {
        self.client_max_bytes = Some(n);
        self
    }

    /// The per-client bounds in effect: keys and bytes.
    pub fn client_quota(&self) -> (usize, usize) {
        let entries = self
            .client_max_entries
            .unwrap_or(self.max_entries / DEFAULT_CLIENT_SHARE)
            .clamp(1, self.max_entries);
        let bytes = self
            .client_max_bytes
            .unwrap_or(self.max_bytes / DEFAULT_CLIENT_SHARE)
            .min(self.max_bytes);
        (entries, bytes)
    }

    /// The bounds in effect for the whole store: keys, and bytes of stored responses.
    /// [`len`](Self::len) and [`stored_bytes`](Self::stored_bytes) never pass them, not even
    /// while claims and completions race on several threads.
    ///
    /// ```
    /// use secure_api_runtime::idempotency::memory::MemoryIdempotencyStore;
    /// let store = MemoryIdempotencyStore::new().max_entries(1_000).max_bytes(1 << 20);
    /// assert_eq!(store.bounds(), (1_000, 1 << 20));
    /// assert!(store.len() <= store.bounds().0);
    /// ```
    pub fn bounds(&self) -> (usize, usize) {
        (self.max_entries, self.max_bytes)
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

    /// Completed records in the eviction index: exactly the completed keys held, however
    /// often keys are reused.
    pub fn completed_len(&self) -> usize {
        self.expiry.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// What one client (a [`RecordKey::client`]) holds.
    pub fn client_usage(&self, client: &Digest) -> ClientUsage {
        self.clients
            .get(client)
            .map_or_else(ClientUsage::default, |c| ClientUsage {
                entries: c.entries,
                bytes: c.bytes,
                completed: c.completed.len(),
            })
    }

    /// Clients with records held.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    fn lock_expiry(&self) -> std::sync::MutexGuard<'_, BTreeMap<(u64, u64), Digest>> {
        self.expiry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Updates the counters and indexes for a record removed from `map`; `in_expiry`:
    /// whether its completion is still in the expiry index (not when it was just taken
    /// from there).
    fn forget(&self, entry: &Entry, in_expiry: bool) {
        self.entries.fetch_sub(1, Ordering::Relaxed);
        let done = match entry.state {
            State::Done {
                seq, until, bytes, ..
            } => {
                self.bytes.fetch_sub(bytes, Ordering::Relaxed);
                if in_expiry {
                    self.lock_expiry().remove(&(until, seq));
                }
                Some((seq, bytes))
            }
            State::InFlight { .. } => None,
        };
        if let MapEntry::Occupied(mut c) = self.clients.entry(entry.client) {
            let state = c.get_mut();
            state.entries = state.entries.saturating_sub(1);
            if let Some((seq, bytes)) = done {
                state.bytes = state.bytes.saturating_sub(bytes);
                state.forget(seq);
            }
            if state.entries == 0 {
                c.remove();
            }
        }
    }

    /// Removes the completed record `seq` of `scope`, if it is still there (`in_expiry`: as
    /// for [`Self::forget`]).
    fn drop_completed(&self, scope: &Digest, seq: u64, in_expiry: bool) -> bool {
        match self.map.remove_if(scope, |_, e| e.is_done(seq)) {
            Some((_, entry)) => {
                self.forget(&entry, in_expiry);
                true
            }
            None => false,
        }
    }

    /// Drops the completed record closest to expiry (any, or only an expired one under
    /// [`NewClaimsWhenFull::Reject`]). `false` when there is none.
    fn evict_global(&self, now: u64) -> bool {
        let next = {
            let mut expiry = self.lock_expiry();
            match expiry.first_key_value() {
                Some((&(until, _), _))
                    if self.when_full == NewClaimsWhenFull::Reject && until > now =>
                {
                    None
                }
                Some(_) => expiry.pop_first(),
                None => None,
            }
        };
        let Some(((until, seq), scope)) = next else {
            return false;
        };
        if self.drop_completed(&scope, seq, false) && until > now {
            self.warn_shrinking(now);
        }
        true
    }

    /// Drops `client`'s oldest completed record (only if expired under
    /// [`NewClaimsWhenFull::Reject`]). `false` when there is none.
    fn evict_own(&self, client: &Digest, now: u64) -> bool {
        let next = {
            let Some(mut state) = self.clients.get_mut(client) else {
                return false;
            };
            match state.completed.front() {
                Some(&(_, until, _))
                    if self.when_full == NewClaimsWhenFull::Reject && until > now =>
                {
                    None
                }
                Some(_) => state.completed.pop_front(),
                None => None,
            }
        };
        let Some((seq, _, scope)) = next else {
            return false;
        };
        self.drop_completed(&scope, seq, true);
        true
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

    /// Takes one of the store's `max_entries` places, if one is free. A compare-and-set on
    /// the count, so that claims racing for the last place cannot both take it: the count
    /// never passes the bound, and it is never below the records in the map (a place is
    /// taken before its record is inserted, and given back after it is removed).
    fn take_place(&self) -> bool {
        self.entries
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max_entries).then_some(n + 1)
            })
            .is_ok()
    }

    /// Takes `size` bytes of the store's `max_bytes`, if they are free (a compare-and-set,
    /// as [`Self::take_place`]).
    fn take_bytes(&self, size: usize) -> bool {
        self.bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                b.checked_add(size).filter(|&total| total <= self.max_bytes)
            })
            .is_ok()
    }

    /// Gives back a place of `client` taken by [`Self::room_for_entry`] for a record that
    /// was not inserted.
    fn give_back_place(&self, client: &Digest) {
        self.entries.fetch_sub(1, Ordering::Relaxed);
        self.give_back_client_place(client);
    }

    /// Gives back a place in `client`'s quota only.
    fn give_back_client_place(&self, client: &Digest) {
        if let MapEntry::Occupied(mut c) = self.clients.entry(*client) {
            let state = c.get_mut();
            state.entries = state.entries.saturating_sub(1);
            if state.entries == 0 {
                c.remove();
            }
        }
    }

    /// Takes a place for one more record of `client`, in its quota and in the store,
    /// evicting completed records to make room: first the client's own oldest, past its
    /// quota, then the store's closest to expiry. On `Ok` the place is counted; the caller
    /// inserts the record or gives the place back ([`Self::give_back_place`]).
    fn room_for_entry(&self, client: &Digest, now: u64) -> Result<(), StoreError> {
        let (quota, _) = self.client_quota();
        loop {
            {
                // Counted under the client's lock, so racing claims of one client cannot
                // both take its last place.
                let mut state = self.clients.entry(*client).or_default();
                if state.entries < quota {
                    state.entries += 1;
                    break;
                }
            }
            if !self.evict_own(client, now) {
                return Err(StoreError::Full);
            }
        }
        while !self.take_place() {
            if !self.evict_global(now) {
                // Only the client's place was taken.
                self.give_back_client_place(client);
                return Err(StoreError::Full);
            }
        }
        Ok(())
    }

    /// Takes `size` bytes in the store, after making room for them in `client`'s quota and
    /// in the store by evicting completed records. On `Ok` the bytes are counted in the
    /// store's total; [`Self::record`] counts them against the client (and may still find
    /// the client's quota taken by a racing completion of the same client).
    fn room_for_bytes(&self, client: &Digest, size: usize, now: u64) -> Result<(), StoreError> {
        let (_, quota) = self.client_quota();
        if size > quota {
            return Err(StoreError::Full);
        }
        while self
            .clients
            .get(client)
            .is_some_and(|c| c.bytes + size > quota)
        {
            if !self.evict_own(client, now) {
                return Err(StoreError::Full);
            }
        }
        while !self.take_bytes(size) {
            if !self.evict_global(now) {
                return Err(StoreError::Full);
            }
        }
        Ok(())
    }

    fn claim_now(
        &self,
        key: &RecordKey,
        fingerprint: &Digest,
        owner: u128,
        lease_ms: u64,
    ) -> Result<Claim, StoreError> {
        let now = self.clock.now();
        let until = now.saturating_add(lease_ms.saturating_mul(NANOS_PER_MS));
        // The common case first: a new key, with neither the store nor its client at a
        // bound, takes one map entry and one client entry and evicts nothing.
        if self.len() < self.max_entries {
            match self.map.entry(key.scope) {
                MapEntry::Occupied(o) if o.get().until() > now => {
                    return Ok(o.get().answer(fingerprint));
                }
                // An expired record: the general path below takes it over.
                MapEntry::Occupied(_) => {}
                MapEntry::Vacant(v) => {
                    // The store's place first: a client state is only created for a record
                    // that will be inserted.
                    if self.take_place() {
                        let (quota, _) = self.client_quota();
                        let mut client = self.clients.entry(key.client).or_default();
                        if client.entries < quota {
                            client.entries += 1;
                            drop(client);
                            let _entry = v.insert(Entry {
                                client: key.client,
                                fingerprint: *fingerprint,
                                state: State::InFlight { owner, until },
                            });
                            return Ok(Claim::Acquired);
                        }
                        // The client is at its quota: the general path makes room.
                        drop(client);
                        self.entries.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            }
        }
        // Whether this claim holds a place taken by `room_for_entry`.
        let mut placed = false;
        loop {
            let held = match self.map.get(&key.scope) {
                Some(entry) if entry.until() > now => {
                    let answer = entry.answer(fingerprint);
                    drop(entry);
                    if placed {
                        self.give_back_place(&key.client);
                    }
                    return Ok(answer);
                }
                Some(_) => true,
                None => false,
            };
            if !held && !placed {
                self.room_for_entry(&key.client, now)?;
                placed = true;
            }
            match self.map.entry(key.scope) {
                MapEntry::Vacant(v) => {
                    if !placed {
                        // The expired record went meanwhile: a new record needs a place.
                        continue;
                    }
                    // Already counted, in the store and for the client.
                    let _entry = v.insert(Entry {
                        client: key.client,
                        fingerprint: *fingerprint,
                        state: State::InFlight { owner, until },
                    });
                    return Ok(Claim::Acquired);
                }
                MapEntry::Occupied(mut o) => {
                    let entry = o.get_mut();
                    if entry.until() > now {
                        let answer = entry.answer(fingerprint);
                        drop(o);
                        if placed {
                            self.give_back_place(&key.client);
                        }
                        return Ok(answer);
                    }
                    // An expired completion, or a lease nobody renewed: its owner is gone
                    // and the key is free again. It stays counted as a record of the same
                    // client, so a place taken for it is given back.
                    if let State::Done {
                        seq, until, bytes, ..
                    } = entry.state
                    {
                        self.bytes.fetch_sub(bytes, Ordering::Relaxed);
                        if let Some(mut c) = self.clients.get_mut(&entry.client) {
                            c.bytes = c.bytes.saturating_sub(bytes);
                            c.forget(seq);
                        }
                        self.lock_expiry().remove(&(until, seq));
                    }
                    entry.fingerprint = *fingerprint;
                    entry.state = State::InFlight { owner, until };
                    drop(o);
                    if placed {
                        self.give_back_place(&key.client);
                    }
                    return Ok(Claim::Acquired);
                }
            }
        }
    }

    fn renew_now(&self, key: &RecordKey, owner: u128, lease_ms: u64) -> bool {
        let now = self.clock.now();
        let Some(mut entry) = self.map.get_mut(&key.scope) else {
            return false;
        };
        match &mut entry.state {
            State::InFlight { owner: o, until } if *o == owner => {
                let renewed = now.saturating_add(lease_ms.saturating_mul(NANOS_PER_MS));
                *until = (*until).max(renewed);
                true
            }
            _ => false,
        }
    }

    fn complete_now(
        &self,
        key: &RecordKey,
        owner: u128,
        completion: Completion,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let owns = |e: &Entry| matches!(e.state, State::InFlight { owner: o, .. } if o == owner);
        let size = completion.size();
        let mut completion = completion;
        // The common case first: the owner's entry, locked once, and room for the response
        // in the store's and its client's byte budgets without evicting anything.
        {
            let Some(entry) = self.map.get_mut(&key.scope) else {
                return Ok(false);
            };
            if !owns(&entry) {
                return Ok(false);
            }
            if size > self.max_bytes {
                return Err(StoreError::Full);
            }
            if self.take_bytes(size) {
                match self.record_taken(entry, key, completion, ttl_ms, now, size) {
                    Ok(()) => return Ok(true),
                    Err(refused) => completion = refused,
                }
            }
        }
        // Room is made without holding this entry's lock: eviction locks other entries.
        loop {
            self.room_for_bytes(&key.client, size, now)?;
            let give_back = || self.bytes.fetch_sub(size, Ordering::Relaxed);
            let Some(entry) = self.map.get_mut(&key.scope) else {
                give_back();
                return Ok(false);
            };
            if !owns(&entry) {
                drop(entry);
                give_back();
                return Ok(false);
            }
            match self.record_taken(entry, key, completion, ttl_ms, now, size) {
                Ok(()) => return Ok(true),
                // A racing completion of the same client took the room made in its quota:
                // make room again (each pass evicts, or ends with `Full`).
                Err(refused) => completion = refused,
            }
        }
    }

    /// [`Self::record`] in the owned `entry`, whose `size` bytes the caller has taken
    /// ([`Self::take_bytes`]), then the entry's lock released and the expired records it
    /// displaced dropped. When the client's quota refuses it, the bytes are given back and
    /// the completion comes back as `Err`.
    fn record_taken(
        &self,
        mut entry: dashmap::mapref::one::RefMut<'_, Digest, Entry>,
        key: &RecordKey,
        completion: Completion,
        ttl_ms: u64,
        now: u64,
        size: usize,
    ) -> Result<(), Completion> {
        let (_, quota) = self.client_quota();
        let recorded = self.record(&mut entry, key, completion, ttl_ms, now, quota);
        drop(entry);
        match recorded {
            Ok(expired) => {
                self.drop_expired(expired);
                Ok(())
            }
            Err(refused) => {
                self.bytes.fetch_sub(size, Ordering::Relaxed);
                Err(refused)
            }
        }
    }

    /// Completes the locked, owned `entry` with `completion` and indexes it under its client
    /// and in expiry order, taking up to two expired records out of the expiry index, to be
    /// dropped once the entry's lock is released. The caller has counted the completion's
    /// bytes in the store's total ([`Self::take_bytes`]); they are counted against the client
    /// here, under its lock. When the client's bytes would pass `quota`, nothing changes and
    /// the completion comes back as `Err` (the caller gives the store's bytes back).
    fn record(
        &self,
        entry: &mut Entry,
        key: &RecordKey,
        completion: Completion,
        ttl_ms: u64,
        now: u64,
        quota: usize,
    ) -> Result<Expired, Completion> {
        let size = completion.size();
        let until = now.saturating_add(ttl_ms.saturating_mul(NANOS_PER_MS));
        let seq = {
            let mut c = self.clients.entry(entry.client).or_default();
            if c.bytes + size > quota {
                return Err(completion);
            }
            let seq = self.seq.fetch_add(1, Ordering::Relaxed);
            c.bytes += size;
            c.completed.push_back((seq, until, key.scope));
            seq
        };
        // Index the completion and take up to two expired records, under one lock.
        let mut expired = [None; SWEEP_PER_COMPLETION];
        {
            let mut expiry = self.lock_expiry();
            expiry.insert((until, seq), key.scope);
            for slot in &mut expired {
                match expiry.first_key_value() {
                    Some((&(u, _), _)) if u <= now => *slot = expiry.pop_first(),
                    _ => break,
                }
            }
        }
        entry.state = State::Done {
            outcome: match completion {
                Completion::Response(response) => Outcome::Response(Arc::new(response)),
                Completion::NotReplayable { status } => Outcome::NotReplayable(status),
            },
            until,
            seq,
            bytes: size,
        };
        Ok(expired)
    }

    /// Drops the expired records `record` took out of the expiry index (one of them may be
    /// the record just completed, with a TTL of 0: hence after its lock is released).
    fn drop_expired(&self, expired: Expired) {
        for ((_, seq), scope) in expired.into_iter().flatten() {
            self.drop_completed(&scope, seq, false);
        }
    }

    fn release_now(&self, key: &RecordKey, owner: u128) -> bool {
        let removed = self.map.remove_if(
            &key.scope,
            |_, e| matches!(e.state, State::InFlight { owner: o, .. } if o == owner),
        );
        match removed {
            Some((_, entry)) => {
                self.forget(&entry, true);
                true
            }
            None => false,
        }
    }
}

impl IdempotencyStore for MemoryIdempotencyStore {
    fn claim(
        &self,
        key: &RecordKey,
        fingerprint: &Digest,
        owner: u128,
        lease_ms: u64,
    ) -> StoreFuture<'_, Result<Claim, StoreError>> {
        StoreFuture::ready(self.claim_now(key, fingerprint, owner, lease_ms))
    }

    fn renew(
        &self,
        key: &RecordKey,
        owner: u128,
        lease_ms: u64,
    ) -> StoreFuture<'_, Result<bool, StoreError>> {
        StoreFuture::ready(Ok(self.renew_now(key, owner, lease_ms)))
    }

    fn complete(
        &self,
        key: &RecordKey,
        owner: u128,
        completion: Completion,
        ttl_ms: u64,
    ) -> StoreFuture<'_, Result<bool, StoreError>> {
        StoreFuture::ready(self.complete_now(key, owner, completion, ttl_ms))
    }

    fn release(&self, key: &RecordKey, owner: u128) -> StoreFuture<'_, Result<bool, StoreError>> {
        StoreFuture::ready(Ok(self.release_now(key, owner)))
    }

    fn backend(&self) -> &'static str {
        "memory"
    }

    /// The keys held ([`len`](MemoryIdempotencyStore::len)) and the bytes of stored
    /// responses ([`stored_bytes`](MemoryIdempotencyStore::stored_bytes)), against
    /// [`bounds`](MemoryIdempotencyStore::bounds): two atomic loads.
    fn usage(&self) -> Option<StoreUsage> {
        let (max_entries, max_bytes) = self.bounds();
        Some(StoreUsage::new(self.len(), max_entries).with_bytes(self.stored_bytes(), max_bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use futures_util::FutureExt;
    use std::time::Duration;

    fn response(body: &'static str) -> Completion {
        Completion::Response(StoredResponse {
            status: 201,
            headers: vec![(
                actix_web::http::header::CONTENT_TYPE,
                actix_web::http::header::HeaderValue::from_static("text/plain"),
            )],
            body: body.into(),
        })
    }

    fn sized(n: usize) -> Completion {
        Completion::Response(StoredResponse {
            status: 200,
            headers: vec![],
            body: vec![0u8; n].into(),
        })
    }

    fn now<T>(f: StoreFuture<'_, T>) -> T {
        f.now_or_never().expect("memory stores answer at once")
    }

    /// Key `n` of client `c`.
    fn rk(c: u8, n: u8) -> RecordKey {
        let mut scope = [0u8; 32];
        scope[0] = c;
        scope[1] = n;
        RecordKey {
            client: Digest([c; 32]),
            scope: Digest(scope),
        }
    }

    fn key(n: u8) -> RecordKey {
        rk(1, n)
    }

    const FP: Digest = Digest([0; 32]);

    fn store_on(clock: &FakeClock) -> MemoryIdempotencyStore {
        MemoryIdempotencyStore::with_clock(Arc::new(clock.clone()))
    }

    fn acquired(store: &MemoryIdempotencyStore, key: &RecordKey, owner: u128) -> bool {
        matches!(
            now(store.claim(key, &FP, owner, 1_000)),
            Ok(Claim::Acquired)
        )
    }

    fn replays(store: &MemoryIdempotencyStore, key: &RecordKey) -> bool {
        matches!(
            now(store.claim(key, &FP, 999, 1_000)),
            Ok(Claim::Completed(_))
        )
    }

    #[test]
    fn a_stale_owner_cannot_renew_complete_or_release_a_newer_claim() {
        let clock = FakeClock::new();
        let store = store_on(&clock);
        let key = key(1);
        assert!(acquired(&store, &key, 1));
        clock.advance(Duration::from_millis(1_001));
        // Nobody renewed owner 1's lease: it is gone, and owner 2 takes over.
        assert!(acquired(&store, &key, 2));
        assert!(!now(store.renew(&key, 1, 1_000)).unwrap());
        assert!(!now(store.complete(&key, 1, response("stale"), 60_000)).unwrap());
        assert!(!now(store.release(&key, 1)).unwrap());
        assert!(now(store.complete(&key, 2, response("fresh"), 60_000)).unwrap());
        match now(store.claim(&key, &FP, 3, 1_000)).unwrap() {
            Claim::Completed(r) => assert_eq!(r.body, "fresh"),
            other => panic!("{other:?}"),
        }
        // A completed key is no longer a claim: nothing to renew.
        assert!(!now(store.renew(&key, 2, 1_000)).unwrap());
        assert_eq!(store.len(), 1);
        assert_eq!(store.client_usage(&key.client).entries, 1);
    }

    #[test]
    fn a_renewed_claim_is_never_taken_over() {
        let clock = FakeClock::new();
        let store = store_on(&clock);
        let key = key(1);
        assert!(acquired(&store, &key, 1));
        // The owner renews every 300 ms of a 1 s lease, for 5 s: nobody takes over.
        for _ in 0..16 {
            clock.advance(Duration::from_millis(300));
            assert!(now(store.renew(&key, 1, 1_000)).unwrap());
            assert!(matches!(
                now(store.claim(&key, &FP, 2, 1_000)).unwrap(),
                Claim::InFlight
            ));
        }
        // Renewing never shortens a lease.
        assert!(now(store.renew(&key, 1, 10)).unwrap());
        clock.advance(Duration::from_millis(999));
        assert!(matches!(
            now(store.claim(&key, &FP, 2, 1_000)).unwrap(),
            Claim::InFlight
        ));
        // The owner is gone (no renewal for a whole lease): the key is taken over.
        clock.advance(Duration::from_millis(2));
        assert!(acquired(&store, &key, 2));
        assert!(!now(store.renew(&key, 1, 1_000)).unwrap());
        assert!(now(store.renew(&key, 2, 1_000)).unwrap());
        assert_eq!(store.len(), 1, "the take-over reuses the record");
    }

    #[test]
    fn a_not_replayable_marker_answers_retries_and_takes_no_bytes() {
        let clock = FakeClock::new();
        // No byte budget at all: a response cannot be stored, a marker can.
        let store = store_on(&clock).max_bytes(0);
        let key = key(1);
        assert!(acquired(&store, &key, 1));
        assert!(matches!(
            now(store.complete(&key, 1, response("x"), 60_000)),
            Err(StoreError::Full)
        ));
        let marker = Completion::NotReplayable { status: 201 };
        assert!(now(store.complete(&key, 1, marker.clone(), 60_000)).unwrap());
        assert_eq!(store.stored_bytes(), 0);
        assert!(matches!(
            now(store.claim(&key, &FP, 2, 1_000)).unwrap(),
            Claim::NotReplayable { status: 201 }
        ));
        assert!(matches!(
            now(store.claim(&key, &Digest([9; 32]), 2, 1_000)).unwrap(),
            Claim::Mismatch
        ));
        // Not a claim any more: it cannot be released or completed again.
        assert!(!now(store.release(&key, 1)).unwrap());
        assert!(!now(store.complete(&key, 1, marker, 60_000)).unwrap());
        assert_eq!(store.completed_len(), 1);
        // It expires with its TTL like a stored response.
        clock.advance(Duration::from_millis(60_001));
        assert!(acquired(&store, &key, 3));
        assert_eq!(store.completed_len(), 0);
    }

    #[test]
    fn mismatch_release_and_expiry() {
        let clock = FakeClock::new();
        let store = store_on(&clock);
        let key = key(1);
        assert!(matches!(
            now(store.claim(&key, &Digest([2; 32]), 1, 1_000)).unwrap(),
            Claim::Acquired
        ));
        assert!(matches!(
            now(store.claim(&key, &Digest([3; 32]), 2, 1_000)).unwrap(),
            Claim::Mismatch
        ));
        assert!(now(store.release(&key, 1)).unwrap());
        assert_eq!(store.clients(), 0, "a client without records is forgotten");
        assert!(matches!(
            now(store.claim(&key, &Digest([3; 32]), 2, 1_000)).unwrap(),
            Claim::Acquired
        ));
        assert!(now(store.complete(&key, 2, response("x"), 5_000)).unwrap());
        clock.advance(Duration::from_millis(5_001));
        assert!(matches!(
            now(store.claim(&key, &Digest([4; 32]), 3, 1_000)).unwrap(),
            Claim::Acquired
        ));
        assert_eq!(store.stored_bytes(), 0);
        assert_eq!(store.client_usage(&key.client).bytes, 0);
    }

    #[test]
    fn in_flight_claims_are_never_evicted() {
        let clock = FakeClock::new();
        let store = store_on(&clock).max_entries(2).max_entries_per_client(2);
        assert!(acquired(&store, &key(1), 1));
        assert!(acquired(&store, &key(2), 1));
        // Both running: a third claim is refused rather than dropping one.
        assert!(matches!(
            now(store.claim(&key(3), &FP, 1, 1_000)),
            Err(StoreError::Full)
        ));
        assert!(matches!(
            now(store.claim(&rk(2, 3), &FP, 1, 1_000)),
            Err(StoreError::Full)
        ));
        // A lapsed lease frees its own key when that key is claimed again.
        clock.advance(Duration::from_millis(1_001));
        assert!(acquired(&store, &key(1), 2));
    }

    #[test]
    fn a_full_store_drops_the_completed_responses_closest_to_expiry() {
        let clock = FakeClock::new();
        let store = store_on(&clock).max_entries(3);
        // Three clients, one record each: no client is past its quota.
        for c in 1..=3 {
            assert!(acquired(&store, &rk(c, 1), 1));
            assert!(now(store.complete(&rk(c, 1), 1, response("r"), 60_000)).unwrap());
            clock.advance(Duration::from_millis(1));
        }
        // Full of fresh completed responses: the oldest goes, the newer ones stay.
        assert!(acquired(&store, &rk(4, 1), 1));
        assert_eq!(store.len(), 3);
        assert_eq!(store.client_usage(&rk(1, 1).client).entries, 0);
        assert!(replays(&store, &rk(2, 1)));
        assert!(replays(&store, &rk(3, 1)));
        assert_eq!(store.completed_len(), 2);
        assert_eq!(store.clients(), 3);
    }

    #[test]
    fn reject_keeps_replay_windows_until_expiry() {
        let clock = FakeClock::new();
        let store = store_on(&clock)
            .max_entries(1)
            .when_full(NewClaimsWhenFull::Reject);
        assert!(acquired(&store, &key(1), 1));
        assert!(now(store.complete(&key(1), 1, response("r"), 5_000)).unwrap());
        assert!(matches!(
            now(store.claim(&rk(2, 2), &FP, 1, 1_000)),
            Err(StoreError::Full)
        ));
        clock.advance(Duration::from_millis(5_001));
        assert!(acquired(&store, &rk(2, 2), 1));
        assert_eq!(store.stored_bytes(), 0);
        assert_eq!(store.clients(), 1);
    }

    #[test]
    fn the_entry_count_follows_claims_releases_and_evictions() {
        let store = MemoryIdempotencyStore::new()
            .max_entries(2)
            .max_entries_per_client(2);
        for round in 0..5u128 {
            assert!(acquired(&store, &key(1), round));
            assert_eq!(store.len(), 1);
            assert!(now(store.release(&key(1), round)).unwrap());
            assert_eq!(store.len(), 0);
        }
        for n in 0..10 {
            assert!(acquired(&store, &key(n), 1));
            assert!(now(store.complete(&key(n), 1, response("r"), 60_000)).unwrap());
            assert!(store.len() <= 2);
        }
        assert_eq!(store.len(), 2);
        assert_eq!(store.completed_len(), 2);
        assert_eq!(store.client_usage(&key(0).client).entries, 2);
    }

    #[test]
    fn the_byte_bound_holds() {
        let clock = FakeClock::new();
        let store = store_on(&clock)
            .max_bytes(1_000)
            .max_bytes_per_client(1_000);
        for n in 0..50 {
            assert!(acquired(&store, &key(n), 1));
            assert!(now(store.complete(&key(n), 1, sized(300), 60_000)).unwrap());
            assert!(store.stored_bytes() <= 1_000);
        }
        // A response that can never fit is refused, without evicting anything for it.
        let before = store.stored_bytes();
        assert!(acquired(&store, &key(200), 1));
        assert!(matches!(
            now(store.complete(&key(200), 1, sized(2_000), 1_000)),
            Err(StoreError::Full)
        ));
        assert_eq!(store.stored_bytes(), before);
    }

    #[test]
    fn one_client_at_its_record_quota_evicts_only_its_own_oldest_records() {
        let clock = FakeClock::new();
        let store = store_on(&clock).max_entries(64);
        assert_eq!(store.client_quota().0, 4, "1/16 of the keys by default");
        let (alice, bob) = (2, 3);
        assert!(acquired(&store, &rk(bob, 1), 1));
        assert!(now(store.complete(&rk(bob, 1), 1, response("bob"), 60_000)).unwrap());
        for n in 0..100 {
            clock.advance(Duration::from_millis(1));
            assert!(acquired(&store, &rk(alice, n), 1), "{n}");
            assert!(now(store.complete(&rk(alice, n), 1, response("a"), 60_000)).unwrap());
            assert!(store.client_usage(&rk(alice, 0).client).entries <= 4);
        }
        assert!(replays(&store, &rk(bob, 1)), "bob's record is untouched");
        for n in 96..100 {
            assert!(
                replays(&store, &rk(alice, n)),
                "alice keeps her newest: {n}"
            );
        }
        assert!(acquired(&store, &rk(alice, 95), 7), "her oldest went");
        // That claim counts against her quota too: it pushed out her oldest, 96.
        assert_eq!(store.client_usage(&rk(alice, 0).client).entries, 4);
        assert!(replays(&store, &rk(alice, 97)));
        assert_eq!(store.len(), 4 + 1);
    }

    #[test]
    fn one_client_at_its_byte_quota_evicts_only_its_own_oldest_records() {
        let clock = FakeClock::new();
        // The issue's numbers, scaled: a budget of 64 responses.
        let store = store_on(&clock).max_bytes(64 * 1_088);
        let (alice, bob) = (2, 3);
        assert!(acquired(&store, &rk(bob, 1), 1));
        assert!(now(store.complete(&rk(bob, 1), 1, sized(1_024), 60_000)).unwrap());
        for n in 0..64 {
            assert!(acquired(&store, &rk(alice, n), 1));
            assert!(now(store.complete(&rk(alice, n), 1, sized(1_024), 60_000)).unwrap());
            assert!(store.client_usage(&rk(alice, 0).client).bytes <= 4 * 1_088);
        }
        assert!(replays(&store, &rk(bob, 1)), "bob's record is untouched");
        assert!(replays(&store, &rk(alice, 63)));
        assert!(!replays(&store, &rk(alice, 0)));
        assert_eq!(store.client_usage(&rk(alice, 0).client).completed, 4);
    }

    #[test]
    fn reject_refuses_only_the_client_past_its_quota() {
        let clock = FakeClock::new();
        let store = store_on(&clock)
            .max_entries_per_client(2)
            .when_full(NewClaimsWhenFull::Reject);
        for n in 0..2 {
            assert!(acquired(&store, &rk(2, n), 1));
            assert!(now(store.complete(&rk(2, n), 1, response("a"), 5_000)).unwrap());
        }
        assert!(matches!(
            now(store.claim(&rk(2, 9), &FP, 1, 1_000)),
            Err(StoreError::Full)
        ));
        assert!(acquired(&store, &rk(3, 9), 1), "another client is served");
        clock.advance(Duration::from_millis(5_001));
        assert!(
            acquired(&store, &rk(2, 9), 1),
            "once its own records expired"
        );
    }

    #[test]
    fn the_completed_index_stays_bounded_under_key_reuse_with_short_ttls() {
        let clock = FakeClock::new();
        let store = store_on(&clock);
        for round in 0..10_000u128 {
            let key = key((round % 3) as u8);
            assert!(acquired(&store, &key, round));
            assert!(now(store.complete(&key, round, response("r"), 1)).unwrap());
            clock.advance(Duration::from_millis(2));
            assert!(store.completed_len() <= 3, "round {round}");
        }
        assert!(store.len() <= 3);
        assert_eq!(
            store.client_usage(&key(0).client).completed,
            store.completed_len()
        );
    }

    #[test]
    fn expired_records_are_swept_without_waiting_for_the_store_to_fill() {
        let clock = FakeClock::new();
        let store = store_on(&clock);
        for n in 0..100 {
            assert!(acquired(&store, &rk(n, 1), 1));
            assert!(now(store.complete(&rk(n, 1), 1, response("r"), 1_000)).unwrap());
        }
        clock.advance(Duration::from_millis(1_001));
        for n in 100..160 {
            assert!(acquired(&store, &rk(n, 1), 1));
            assert!(now(store.complete(&rk(n, 1), 1, response("r"), 60_000)).unwrap());
        }
        // Each completion dropped two expired records: 120 of the first 100 are gone.
        assert_eq!(store.len(), 60);
        assert_eq!(store.clients(), 60);
    }

    /// Runs `rounds` races of `threads` threads: `setup` makes a store, then every thread
    /// runs `race(store, thread)` at once (released together by a barrier), and `check`
    /// sees the store and the threads' answers.
    fn race<R: Send + 'static>(
        threads: usize,
        rounds: usize,
        setup: impl Fn() -> MemoryIdempotencyStore,
        race: impl Fn(&MemoryIdempotencyStore, usize) -> R + Send + Sync + 'static,
        check: impl Fn(&MemoryIdempotencyStore, Vec<R>),
    ) {
        use std::sync::{Barrier, RwLock};
        let slot = Arc::new(RwLock::new(Arc::new(setup())));
        let start = Arc::new(Barrier::new(threads + 1));
        let done = Arc::new(Barrier::new(threads + 1));
        let race = Arc::new(race);
        let (tx, rx) = std::sync::mpsc::channel();
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (slot, start, done, race, tx) = (
                    slot.clone(),
                    start.clone(),
                    done.clone(),
                    race.clone(),
                    tx.clone(),
                );
                std::thread::spawn(move || {
                    for _ in 0..rounds {
                        start.wait();
                        let store = slot.read().unwrap().clone();
                        tx.send((t, race(&store, t))).unwrap();
                        drop(store);
                        done.wait();
                    }
                })
            })
            .collect();
        for _ in 0..rounds {
            start.wait();
            done.wait();
            let mut answers: Vec<(usize, R)> = rx.try_iter().collect();
            answers.sort_by_key(|a| a.0);
            let store = std::mem::replace(&mut *slot.write().unwrap(), Arc::new(setup()));
            check(&store, answers.into_iter().map(|a| a.1).collect());
        }
        for w in workers {
            w.join().unwrap();
        }
    }

    #[test]
    fn racing_claims_for_the_last_free_record_never_pass_the_entry_bound() {
        race(
            4,
            2_000,
            || {
                let store = MemoryIdempotencyStore::new()
                    .max_entries(4)
                    .max_entries_per_client(4);
                // Three running claims: room for one more record, and nothing to evict.
                for n in 0..3 {
                    assert!(acquired(&store, &rk(0, n), 1));
                }
                store
            },
            |store, t| now(store.claim(&rk(t as u8 + 1, 0), &FP, 1, 60_000)),
            |store, answers| {
                let won = answers
                    .iter()
                    .filter(|a| matches!(a, Ok(Claim::Acquired)))
                    .count();
                assert_eq!(won, 1, "one claim gets the last record: {answers:?}");
                assert!(
                    answers
                        .iter()
                        .all(|a| matches!(a, Ok(Claim::Acquired) | Err(StoreError::Full))),
                    "{answers:?}"
                );
                assert_eq!(store.len(), 4);
                store.assert_consistent();
            },
        );
    }

    #[test]
    fn racing_completions_for_the_last_free_bytes_never_pass_the_byte_bound() {
        race(
            4,
            2_000,
            || {
                let store = MemoryIdempotencyStore::new()
                    .when_full(NewClaimsWhenFull::Reject)
                    .max_bytes(1_000)
                    .max_bytes_per_client(1_000);
                // 700 of 1,000 bytes in use by a record that cannot be evicted before its
                // TTL; each thread holds a claim and completes it with 200 bytes.
                assert!(acquired(&store, &rk(0, 0), 1));
                assert!(now(store.complete(&rk(0, 0), 1, sized(636), 60_000)).unwrap());
                for t in 0..4 {
                    assert!(acquired(&store, &rk(t + 1, 0), 1));
                }
                store
            },
            |store, t| now(store.complete(&rk(t as u8 + 1, 0), 1, sized(136), 60_000)),
            |store, answers| {
                let stored = answers.iter().filter(|a| matches!(a, Ok(true))).count();
                assert_eq!(stored, 1, "one response fits: {answers:?}");
                assert!(store.stored_bytes() <= 1_000, "{}", store.stored_bytes());
                assert_eq!(store.stored_bytes(), 900);
                store.assert_consistent();
            },
        );
    }

    impl MemoryIdempotencyStore {
        /// Checks every counter and index against the records (a full scan: tests only).
        fn assert_consistent(&self) {
            use std::collections::HashMap;
            let mut per_client: HashMap<Digest, (usize, usize, Vec<u64>)> = HashMap::new();
            let mut expiry = BTreeMap::new();
            let (mut entries, mut bytes) = (0, 0);
            for e in self.map.iter() {
                entries += 1;
                let c = per_client.entry(e.client).or_default();
                c.0 += 1;
                if let State::Done {
                    until,
                    seq,
                    bytes: b,
                    ..
                } = e.state
                {
                    bytes += b;
                    c.1 += b;
                    c.2.push(seq);
                    expiry.insert((until, seq), *e.key());
                }
            }
            assert_eq!(self.len(), entries);
            assert_eq!(self.stored_bytes(), bytes);
            assert_eq!(*self.lock_expiry(), expiry);
            assert_eq!(
                self.clients.len(),
                per_client.len(),
                "no empty client states"
            );
            for (client, (entries, bytes, mut seqs)) in per_client {
                seqs.sort_unstable();
                let state = self.clients.get(&client).expect("client state");
                assert_eq!(state.entries, entries);
                assert_eq!(state.bytes, bytes);
                let indexed: Vec<u64> = state.completed.iter().map(|c| c.0).collect();
                assert_eq!(indexed, seqs, "completion order, one item per record");
                assert!(
                    state.completed.first.is_some() || state.completed.rest.is_empty(),
                    "the oldest completion is the inline one"
                );
            }
        }
    }

    #[test]
    fn counters_and_indexes_stay_exact_under_concurrent_use() {
        let clock = FakeClock::new();
        let store = Arc::new(
            store_on(&clock)
                .max_entries(48)
                .max_entries_per_client(16)
                .max_bytes(6_000)
                .max_bytes_per_client(2_000),
        );
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let (store, clock) = (store.clone(), clock.clone());
                std::thread::spawn(move || {
                    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (t + 1);
                    let mut next = move || {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        rng
                    };
                    for i in 0..20_000u64 {
                        // The counts never pass the bounds, not even while others race.
                        assert!(store.len() <= 48, "{}", store.len());
                        assert!(store.stored_bytes() <= 6_000, "{}", store.stored_bytes());
                        let usage = store.client_usage(&rk((i % 5) as u8, 0).client);
                        assert!(usage.entries <= 16 && usage.bytes <= 2_000, "{usage:?}");
                        let r = next();
                        let key = rk((r % 5) as u8, ((r >> 8) % 24) as u8);
                        let owner = u128::from(t << 32 | i);
                        if r % 97 == 0 {
                            clock.advance(Duration::from_millis(3));
                        }
                        let Ok(Claim::Acquired) = now(store.claim(&key, &FP, owner, 5)) else {
                            continue;
                        };
                        let _ = now(store.renew(&key, owner, 5));
                        // Other threads move the clock, so a claim may lapse and be taken
                        // over before its owner finishes: `Ok(false)` is a valid answer.
                        match (r >> 16) % 4 {
                            0 => assert!(now(store.release(&key, owner)).is_ok()),
                            1 => {
                                let marker = Completion::NotReplayable { status: 201 };
                                let marked = now(store.complete(&key, owner, marker, 10));
                                assert!(marked.is_ok(), "a marker always fits");
                            }
                            2 => {} // abandoned: its lease lapses
                            _ => {
                                let size = ((r >> 24) % 600) as usize;
                                let _ = now(store.complete(&key, owner, sized(size), 10));
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        store.assert_consistent();
        assert!(store.len() <= 48);
        assert!(store.stored_bytes() <= 6_000);
    }
}
