//! Revocation of access tokens before they expire: one token (`jti`), one session (`sid`,
//! every access token of a refresh family) or a whole subject (every token issued up to a
//! moment).
//!
//! [`JwtAuth::verify`](super::jwt::JwtAuth::verify) consults a [`Revocation`] store for every
//! token (in the endpoint runtime, after the signature and claims checks). Every entry is
//! kept exactly as long as a token it matches could still verify, and no longer:
//!
//! | entry | matches | kept until |
//! | --- | --- | --- |
//! | token id | the token with that `jti` | its `exp` + leeway |
//! | session | every token with that `sid` | the revocation + 15 min + 2 × leeway |
//! | subject | every token of that `sub` with `iat` ≤ the revocation's second | the revocation + 15 min + leeway |
//!
//! Subject revocation compares whole seconds (`iat` is a whole number of seconds): a token
//! issued in the same second as the revocation is refused too, even if it was issued just
//! after it. A client that logs in or refreshes in that second gets a token that is refused;
//! its next refresh, a second later, gets one that works.
//!
//! The store answers with a [`StoreFuture`], so that the coming Redis store can check all
//! three in one round trip (one `MGET`; entries are keys with TTLs).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use crate::store::{StoreError, StoreFuture, StoreUsage};

/// What a revocation check sees of a verified access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRef<'a> {
    /// The token's id (`jti`).
    pub token_id: &'a str,
    /// The subject (`sub`).
    pub subject: &'a str,
    /// The session (`sid`), for tokens issued by a [`TokenService`](super::refresh::TokenService).
    pub session_id: Option<&'a str>,
    /// When the token was issued (`iat`), seconds since the Unix epoch.
    pub issued_at: u64,
}

/// Where revocations of access tokens are kept. Checked on every authenticated request, so
/// an implementation should answer "nothing revoked" cheaply.
///
/// Every `until` is a time in seconds since the Unix epoch after which the entry can no
/// longer match a token that verifies; the store may forget it then (a TTL in Redis). A
/// store that cannot keep an entry must fail (for example [`StoreError::Full`]) rather than
/// forget a live one: that would bring revoked tokens back.
pub trait Revocation: Send + Sync + 'static {
    /// Whether `token` is revoked, by its id, its session or its subject, at `now`.
    fn is_revoked(
        &self,
        token: TokenRef<'_>,
        now: u64,
    ) -> StoreFuture<'_, Result<bool, StoreError>>;

    /// Revokes the token with id `token_id` until `until`.
    fn revoke_token(
        &self,
        token_id: &str,
        until: u64,
        now: u64,
    ) -> StoreFuture<'_, Result<(), StoreError>>;

    /// Revokes every token of session `session_id` until `until`.
    fn revoke_session(
        &self,
        session_id: &str,
        until: u64,
        now: u64,
    ) -> StoreFuture<'_, Result<(), StoreError>>;

    /// Revokes every token of `subject` issued at or before `revoked_at`, until `until`.
    /// A second revocation of the same subject moves `revoked_at` forward.
    fn revoke_subject(
        &self,
        subject: &str,
        revoked_at: u64,
        until: u64,
        now: u64,
    ) -> StoreFuture<'_, Result<(), StoreError>>;

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

/// `(until, kind, key)` of every entry, earliest first.
type ExpiryQueue = BinaryHeap<Reverse<(u64, Kind, Arc<str>)>>;

/// The default bound on revocation entries held in memory.
pub const DEFAULT_MAX_REVOCATIONS: usize = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Token,
    Session,
    Subject,
}

/// Revocations in memory, shared by every worker: the default of
/// [`JwtAuth`](super::jwt::JwtAuth).
///
/// Checking costs one atomic load per kind while nothing of that kind is revoked, and one
/// map lookup per kind in use. Revoking takes a lock and first drops the entries that
/// expired (an expiry queue, so no scan of the whole list). Bounded: at
/// [`max_entries`](Self::max_entries) live entries a new revocation fails with
/// [`StoreError::Full`] (a 503 to the caller that asked for it); live entries are never
/// evicted, since that would make revoked tokens valid again.
///
/// ```
/// use secure_api_runtime::auth::revocation::{RevokedTokens, Revocation, TokenRef};
/// use futures_util::FutureExt;
///
/// let revoked = RevokedTokens::new();
/// let token = TokenRef { token_id: "t1", subject: "alice", session_id: None, issued_at: 100 };
/// revoked.revoke_subject("alice", 100, 1_000, 100).now_or_never().unwrap().unwrap();
/// assert!(revoked.is_revoked(token, 150).now_or_never().unwrap().unwrap());
/// // Tokens issued after the revocation's second are not affected.
/// let later = TokenRef { issued_at: 101, ..token };
/// assert!(!revoked.is_revoked(later, 150).now_or_never().unwrap().unwrap());
/// ```
#[derive(Debug)]
pub struct RevokedTokens {
    tokens: DashMap<Arc<str>, u64>,
    sessions: DashMap<Arc<str>, u64>,
    /// Subject → (revoked at, until).
    subjects: DashMap<Arc<str>, (u64, u64)>,
    counts: [AtomicUsize; 3],
    /// Every entry's `until`, earliest first. An entry whose `until` was moved later has a
    /// stale item here too; items count against the bound, so the queue stays bounded.
    expiry: Mutex<ExpiryQueue>,
    max_entries: usize,
}

impl Default for RevokedTokens {
    fn default() -> Self {
        RevokedTokens {
            tokens: DashMap::new(),
            sessions: DashMap::new(),
            subjects: DashMap::new(),
            counts: Default::default(),
            expiry: Mutex::new(BinaryHeap::new()),
            max_entries: DEFAULT_MAX_REVOCATIONS,
        }
    }
}

impl RevokedTokens {
    /// An empty list bounded at [`DEFAULT_MAX_REVOCATIONS`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the bound on entries (at least 1).
    pub fn max_entries(mut self, max: usize) -> Self {
        self.max_entries = max.max(1);
        self
    }

    /// Entries held: live ones, and expired ones not yet dropped (they are dropped by the
    /// next revocation).
    pub fn len(&self) -> usize {
        self.counts.iter().map(|c| c.load(Ordering::Acquire)).sum()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most entries held (see [`max_entries`](Self::max_entries)): [`len`](Self::len)
    /// never passes it; a revocation that would is refused.
    ///
    /// ```
    /// use secure_api_runtime::auth::revocation::RevokedTokens;
    /// assert_eq!(RevokedTokens::new().max_entries(500).bound(), 500);
    /// ```
    pub fn bound(&self) -> usize {
        self.max_entries
    }

    fn count(&self, kind: Kind) -> &AtomicUsize {
        &self.counts[kind as usize]
    }

    fn check(&self, token: TokenRef<'_>, now: u64) -> bool {
        let live = |until: u64| until >= now;
        if self.count(Kind::Token).load(Ordering::Acquire) > 0
            && self.tokens.get(token.token_id).is_some_and(|u| live(*u))
        {
            return true;
        }
        if let Some(sid) = token.session_id
            && self.count(Kind::Session).load(Ordering::Acquire) > 0
            && self.sessions.get(sid).is_some_and(|u| live(*u))
        {
            return true;
        }
        self.count(Kind::Subject).load(Ordering::Acquire) > 0
            && self
                .subjects
                .get(token.subject)
                .is_some_and(|e| live(e.1) && token.issued_at <= e.0)
    }

    /// Drops every entry whose `until` is before `now`: each entry is popped once, so the
    /// cost is amortised over the revocations that added them.
    fn purge(&self, queue: &mut ExpiryQueue, now: u64) {
        while let Some(Reverse((until, _, _))) = queue.peek()
            && *until < now
        {
            let Some(Reverse((until, kind, key))) = queue.pop() else {
                break;
            };
            // Only if the entry still ends then (it may have been extended since).
            let removed = match kind {
                Kind::Token => self.tokens.remove_if(&key, |_, u| *u == until).is_some(),
                Kind::Session => self.sessions.remove_if(&key, |_, u| *u == until).is_some(),
                Kind::Subject => self.subjects.remove_if(&key, |_, e| e.1 == until).is_some(),
            };
            if removed {
                self.count(kind).fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    fn insert(
        &self,
        kind: Kind,
        key: &str,
        revoked_at: u64,
        until: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        if until < now {
            // It could not match a token that verifies any more.
            return Ok(());
        }
        let mut queue = self.expiry.lock().unwrap_or_else(PoisonError::into_inner);
        self.purge(&mut queue, now);
        let full = queue.len() >= self.max_entries;
        let key: Arc<str> = Arc::from(key);
        // Every change of the maps happens under the queue's lock.
        let inserted = match kind {
            Kind::Token => upsert(&self.tokens, key.clone(), until, full)?,
            Kind::Session => upsert(&self.sessions, key.clone(), until, full)?,
            Kind::Subject => match self.subjects.entry(key.clone()) {
                Entry::Occupied(mut e) => {
                    let moves = e.get().1 < until;
                    if moves && full {
                        return Err(StoreError::Full);
                    }
                    let entry = e.get_mut();
                    entry.0 = entry.0.max(revoked_at);
                    entry.1 = entry.1.max(until);
                    Inserted::Existing { moved: moves }
                }
                Entry::Vacant(_) if full => return Err(StoreError::Full),
                Entry::Vacant(e) => {
                    e.insert((revoked_at, until));
                    Inserted::New
                }
            },
        };
        match inserted {
            Inserted::New => {
                self.count(kind).fetch_add(1, Ordering::AcqRel);
                queue.push(Reverse((until, kind, key)));
            }
            Inserted::Existing { moved: true } => queue.push(Reverse((until, kind, key))),
            Inserted::Existing { moved: false } => {}
        }
        Ok(())
    }
}

enum Inserted {
    New,
    /// An existing entry, whose end `moved` later (it then needs a new queue item).
    Existing {
        moved: bool,
    },
}

/// Inserts `key` until `until`, or moves an existing entry's end later. A full list
/// refuses anything that would add a queue item.
fn upsert(
    map: &DashMap<Arc<str>, u64>,
    key: Arc<str>,
    until: u64,
    full: bool,
) -> Result<Inserted, StoreError> {
    match map.entry(key) {
        Entry::Occupied(e) if *e.get() >= until => Ok(Inserted::Existing { moved: false }),
        _ if full => Err(StoreError::Full),
        Entry::Occupied(mut e) => {
            *e.get_mut() = until;
            Ok(Inserted::Existing { moved: true })
        }
        Entry::Vacant(e) => {
            e.insert(until);
            Ok(Inserted::New)
        }
    }
}

impl Revocation for RevokedTokens {
    fn is_revoked(
        &self,
        token: TokenRef<'_>,
        now: u64,
    ) -> StoreFuture<'_, Result<bool, StoreError>> {
        StoreFuture::ready(Ok(self.check(token, now)))
    }

    fn revoke_token(
        &self,
        token_id: &str,
        until: u64,
        now: u64,
    ) -> StoreFuture<'_, Result<(), StoreError>> {
        StoreFuture::ready(self.insert(Kind::Token, token_id, 0, until, now))
    }

    fn revoke_session(
        &self,
        session_id: &str,
        until: u64,
        now: u64,
    ) -> StoreFuture<'_, Result<(), StoreError>> {
        StoreFuture::ready(self.insert(Kind::Session, session_id, 0, until, now))
    }

    fn revoke_subject(
        &self,
        subject: &str,
        revoked_at: u64,
        until: u64,
        now: u64,
    ) -> StoreFuture<'_, Result<(), StoreError>> {
        StoreFuture::ready(self.insert(Kind::Subject, subject, revoked_at, until, now))
    }

    fn backend(&self) -> &'static str {
        "memory"
    }

    /// The entries held ([`len`](RevokedTokens::len)) of at most
    /// [`bound`](RevokedTokens::bound): three atomic loads.
    fn usage(&self) -> Option<StoreUsage> {
        Some(StoreUsage::new(self.len(), self.bound()))
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    fn token(jti: &'static str, sub: &'static str, iat: u64) -> TokenRef<'static> {
        TokenRef {
            token_id: jti,
            subject: sub,
            session_id: Some("s1"),
            issued_at: iat,
        }
    }

    fn revoked(store: &RevokedTokens, t: TokenRef<'_>, now: u64) -> bool {
        store.is_revoked(t, now).now_or_never().unwrap().unwrap()
    }

    #[test]
    fn each_kind_matches_until_its_end_and_no_longer() {
        let store = RevokedTokens::new();
        let t = token("j1", "alice", 100);
        assert!(!revoked(&store, t, 100));
        store
            .revoke_token("j1", 200, 100)
            .now_or_never()
            .unwrap()
            .unwrap();
        assert!(revoked(&store, t, 200), "kept through its last second");
        assert!(!revoked(&store, t, 201));

        store
            .revoke_session("s1", 300, 100)
            .now_or_never()
            .unwrap()
            .unwrap();
        assert!(revoked(&store, token("j2", "bob", 250), 300));
        assert!(!revoked(
            &store,
            TokenRef {
                session_id: Some("s2"),
                ..token("j2", "bob", 250)
            },
            300
        ));

        store
            .revoke_subject("carol", 150, 400, 150)
            .now_or_never()
            .unwrap()
            .unwrap();
        let c = |iat| TokenRef {
            session_id: None,
            ..token("j3", "carol", iat)
        };
        assert!(revoked(&store, c(150), 160), "same second: refused");
        assert!(revoked(&store, c(120), 400));
        assert!(!revoked(&store, c(151), 160));
        assert!(!revoked(&store, c(120), 401));
        // A second revocation moves the moment forward.
        store
            .revoke_subject("carol", 170, 420, 170)
            .now_or_never()
            .unwrap()
            .unwrap();
        assert!(revoked(&store, c(160), 410));
    }

    #[test]
    fn expired_entries_are_dropped_and_the_list_is_bounded() {
        let store = RevokedTokens::new().max_entries(2);
        let revoke = |id: &str, until, now| store.revoke_token(id, until, now).now_or_never();
        revoke("a", 110, 100).unwrap().unwrap();
        revoke("b", 120, 100).unwrap().unwrap();
        // Full: a third live entry is refused, never evicting a live one.
        assert!(matches!(
            revoke("c", 130, 100).unwrap(),
            Err(StoreError::Full)
        ));
        assert!(revoked(&store, token("a", "x", 0), 105));
        // Re-revoking an entry without moving it needs no room.
        revoke("a", 105, 100).unwrap().unwrap();
        // Once `a` has ended, it is dropped and there is room again.
        revoke("c", 130, 111).unwrap().unwrap();
        assert_eq!(store.len(), 2);
        assert!(!revoked(&store, token("a", "x", 0), 111));
        assert!(revoked(&store, token("c", "x", 0), 111));
        // An entry that already ended is not stored.
        revoke("d", 90, 111).unwrap().unwrap();
        assert_eq!(store.len(), 2);
        revoke("e", 600, 500).unwrap().unwrap();
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn an_extended_entry_survives_its_first_end() {
        let store = RevokedTokens::new();
        store
            .revoke_session("s1", 110, 100)
            .now_or_never()
            .unwrap()
            .unwrap();
        store
            .revoke_session("s1", 150, 105)
            .now_or_never()
            .unwrap()
            .unwrap();
        // The purge at 120 pops the stale item for 110 but keeps the entry.
        store
            .revoke_token("other", 130, 120)
            .now_or_never()
            .unwrap()
            .unwrap();
        assert!(revoked(&store, token("j", "x", 0), 140));
        assert_eq!(store.len(), 2);
    }
}
