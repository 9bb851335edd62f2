//! Refresh sessions on Redis: rotation and reuse detection by compare-and-set.

use std::sync::LazyLock;

use ::redis::Script;

use super::{RedisBackend, corrupt, hashed, hex};
use crate::auth::jwt::AccessGrant;
use crate::auth::refresh::{
    Advance, DEFAULT_MAX_SESSIONS_PER_SUBJECT, RefreshStore, Session, SessionId,
};
use crate::store::{StoreError, StoreFuture};

static INDEX: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/session_index.lua")));
static CREATE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/session_create.lua")));
static ADVANCE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/session_advance.lua")));
static REMOVE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/session_remove.lua")));
static TAKE_SUBJECT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/session_take_subject.lua")));

/// The fields of a session's hash, in the order `HMGET` reads them.
const FIELDS: [&str; 8] = ["sub", "grant", "gen", "hash", "cv", "start", "exp", "abs"];

/// Refresh sessions in Redis, shared by every instance of an app: a
/// [`RefreshStore`](crate::auth::refresh::RefreshStore) with the semantics of the in-memory
/// [`MemoryRefreshStore`](crate::auth::refresh::MemoryRefreshStore). A refresh token
/// rotated on one instance is spent on all of them; of two instances racing with one token,
/// exactly one rotates the session, and the other sees reuse (and the
/// [`TokenService`](crate::auth::refresh::TokenService) ends the session).
///
/// Every time is the caller's (the `JwtAuth`'s clock, seconds since the Unix epoch), as the
/// trait says; TTLs are relative to it, so the Redis server's clock does not matter.
///
/// # Keys
///
/// - `<prefix>:rt:s:{<session id>}` (the id's 16 bytes in hex): a hash, one per session,
///   updated in place by every rotation. Fields: `sub` (the subject), `grant` (the current
///   [`AccessGrant`], JSON), `gen` (the generation), `hash` (SHA-256 of the current
///   refresh token), `cv` (the credentials version), `start`, `exp` (the idle end, never
///   past the absolute end) and `abs` (the absolute end), in seconds. `PX` ends with `exp`.
/// - `<prefix>:rt:u:{<subject>}` (hex SHA-256 of the subject): a sorted set of the
///   subject's session ids scored by their absolute end, for revoke-by-subject and the
///   per-subject bound. Ids whose absolute end has passed are dropped at the next login;
///   `PX` ends with the latest absolute end.
///
/// # Operations
///
/// - **create**: one script adds the id to the subject's index (dropping the subject's
///   oldest sessions past [`max_sessions_per_subject`](Self::max_sessions_per_subject),
///   whose hashes are then deleted), then one script stores the session's hash with its
///   TTL. The index is written first, so every stored session can be found by subject.
/// - **get**: one `HMGET`.
/// - **advance**: one script, compare-and-set: it rotates the session only while it is
///   live and still at the presented generation and token hash (and of the grant's
///   subject), so two concurrent refreshes with one token cannot both succeed.
/// - **remove**: one script deletes the hash and returns its subject, then the id leaves
///   the subject's index.
/// - **remove_subject**: one script takes the subject's index and deletes it atomically,
///   then one `DEL` ends every session in it (split by slot on a cluster).
///
/// The session ids and the subject index live in different Redis Cluster slots (a refresh
/// knows only the session id), so a login's two writes are two script runs, in the order
/// that keeps revoke-by-subject complete. The total number of sessions is bounded by
/// Redis's `maxmemory` (a full Redis refuses logins with a 503).
#[derive(Debug, Clone)]
pub struct RedisRefreshStore {
    backend: RedisBackend,
    max_per_subject: usize,
}

impl RedisRefreshStore {
    /// The store of a backend (see [`RedisBackend::refresh_store`]).
    pub fn new(backend: RedisBackend) -> Self {
        RedisRefreshStore {
            backend,
            max_per_subject: DEFAULT_MAX_SESSIONS_PER_SUBJECT,
        }
    }

    /// Sets the most sessions one subject may have (default 100, at least 1): a login past
    /// it ends the subject's oldest session.
    pub fn max_sessions_per_subject(mut self, n: usize) -> Self {
        self.max_per_subject = n.max(1);
        self
    }

    /// The Redis key of a session.
    pub fn session_key(&self, id: SessionId) -> String {
        self.backend.key("rt:s", &hex(&id.0))
    }

    /// The Redis key of a subject's session index.
    pub fn subject_key(&self, subject: &str) -> String {
        self.backend.key("rt:u", &hashed("subject", subject))
    }

    async fn create_now(&self, session: Session, now: u64) -> Result<(), StoreError> {
        if session.expires_at <= now {
            // Already over: nothing to keep.
            return Ok(());
        }
        let id = hex(&session.id.0);
        let mut index = INDEX.key(self.subject_key(session.subject()));
        index
            .arg(&id)
            .arg(session.absolute_expires_at)
            .arg(now)
            .arg(self.max_per_subject);
        let dropped: Vec<String> = self.backend.script(&index).await?;
        if !dropped.is_empty() {
            let mut del = ::redis::cmd("DEL");
            for old in &dropped {
                del.arg(self.backend.key("rt:s", old));
            }
            let _: i64 = self.backend.query(del).await?;
        }
        let grant = serde_json::to_vec(&session.grant)
            .map_err(|_| corrupt("a grant that does not serialise"))?;
        let ttl_ms = (session.expires_at - now).saturating_mul(1_000);
        let mut create = CREATE.key(self.session_key(session.id));
        create
            .arg(ttl_ms)
            .arg("sub")
            .arg(session.subject())
            .arg("grant")
            .arg(grant)
            .arg("gen")
            .arg(session.generation)
            .arg("hash")
            .arg(&session.token_hash[..])
            .arg("cv")
            .arg(session.credentials_version)
            .arg("start")
            .arg(session.started_at)
            .arg("exp")
            .arg(session.expires_at)
            .arg("abs")
            .arg(session.absolute_expires_at);
        let _: i64 = self.backend.script(&create).await?;
        Ok(())
    }

    async fn get_now(&self, id: SessionId, now: u64) -> Result<Option<Session>, StoreError> {
        let mut cmd = ::redis::cmd("HMGET");
        cmd.arg(self.session_key(id)).arg(&FIELDS[..]);
        let fields: Vec<Option<Vec<u8>>> = self.backend.query(cmd).await?;
        let session = decode(id, &fields)?;
        Ok(session.filter(|s| s.expires_at > now))
    }

    async fn advance_now(
        &self,
        id: SessionId,
        generation: u64,
        token_hash: [u8; 32],
        next: Advance,
        now: u64,
    ) -> Result<bool, StoreError> {
        let grant = serde_json::to_vec(&next.grant)
            .map_err(|_| corrupt("a grant that does not serialise"))?;
        let mut advance = ADVANCE.key(self.session_key(id));
        advance
            .arg(generation)
            .arg(&token_hash[..])
            .arg(&next.grant.subject)
            .arg(now)
            .arg(generation.saturating_add(1))
            .arg(&next.token_hash[..])
            .arg(grant)
            .arg(next.expires_at);
        let advanced: i64 = self.backend.script(&advance).await?;
        Ok(advanced == 1)
    }

    async fn remove_now(&self, id: SessionId) -> Result<bool, StoreError> {
        let subject: Option<String> = self
            .backend
            .script(&REMOVE.key(self.session_key(id)))
            .await?;
        let Some(subject) = subject else {
            return Ok(false);
        };
        let mut zrem = ::redis::cmd("ZREM");
        zrem.arg(self.subject_key(&subject)).arg(hex(&id.0));
        let _: i64 = self.backend.query(zrem).await?;
        Ok(true)
    }

    async fn remove_subject_now(&self, subject: &str) -> Result<usize, StoreError> {
        let ids: Vec<String> = self
            .backend
            .script(&TAKE_SUBJECT.key(self.subject_key(subject)))
            .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let mut del = ::redis::cmd("DEL");
        for id in &ids {
            del.arg(self.backend.key("rt:s", id));
        }
        let ended: u64 = self.backend.query(del).await?;
        Ok(usize::try_from(ended).unwrap_or(usize::MAX))
    }
}

/// A session from its hash's fields (all absent: no session).
fn decode(id: SessionId, fields: &[Option<Vec<u8>>]) -> Result<Option<Session>, StoreError> {
    let bad = || corrupt("a session record that does not decode");
    if fields.iter().all(Option::is_none) {
        return Ok(None);
    }
    let [sub, grant, generation, hash, cv, start, exp, abs] = fields else {
        return Err(bad());
    };
    fn field(f: &Option<Vec<u8>>) -> Result<&[u8], StoreError> {
        f.as_deref()
            .ok_or_else(|| corrupt("a session record that does not decode"))
    }
    let number = |f: &Option<Vec<u8>>| -> Result<u64, StoreError> {
        std::str::from_utf8(field(f)?)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)
    };
    let mut grant: AccessGrant = serde_json::from_slice(field(grant)?).map_err(|_| bad())?;
    let subject = std::str::from_utf8(field(sub)?).map_err(|_| bad())?;
    // The subject never changes; the record's own field is the authority.
    if grant.subject != subject {
        grant.subject = subject.to_owned();
    }
    let token_hash: [u8; 32] = field(hash)?.try_into().map_err(|_| bad())?;
    Ok(Some(Session {
        id,
        grant,
        generation: number(generation)?,
        token_hash,
        credentials_version: number(cv)?,
        started_at: number(start)?,
        expires_at: number(exp)?,
        absolute_expires_at: number(abs)?,
    }))
}

impl RefreshStore for RedisRefreshStore {
    fn create(&self, session: Session, now: u64) -> StoreFuture<'_, Result<(), StoreError>> {
        StoreFuture::Pending(Box::pin(async move { self.create_now(session, now).await }))
    }

    fn get(&self, id: SessionId, now: u64) -> StoreFuture<'_, Result<Option<Session>, StoreError>> {
        StoreFuture::Pending(Box::pin(async move { self.get_now(id, now).await }))
    }

    fn advance(
        &self,
        id: SessionId,
        generation: u64,
        token_hash: [u8; 32],
        next: Advance,
        now: u64,
    ) -> StoreFuture<'_, Result<bool, StoreError>> {
        StoreFuture::Pending(Box::pin(async move {
            self.advance_now(id, generation, token_hash, next, now)
                .await
        }))
    }

    fn remove(&self, id: SessionId) -> StoreFuture<'_, Result<bool, StoreError>> {
        StoreFuture::Pending(Box::pin(async move { self.remove_now(id).await }))
    }

    fn remove_subject(&self, subject: &str) -> StoreFuture<'_, Result<usize, StoreError>> {
        let subject = subject.to_owned();
        StoreFuture::Pending(Box::pin(
            async move { self.remove_subject_now(&subject).await },
        ))
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(s: &str) -> Option<Vec<u8>> {
        Some(s.as_bytes().to_vec())
    }

    #[test]
    fn sessions_decode_and_garbage_is_corrupt() {
        let id = SessionId([1; 16]);
        assert!(
            decode(id, &[None, None, None, None, None, None, None, None])
                .unwrap()
                .is_none()
        );
        let grant = serde_json::to_string(&AccessGrant::new("alice").roles(["admin"])).unwrap();
        let mut fields = vec![
            field("alice"),
            field(&grant),
            field("3"),
            Some(vec![9; 32]),
            field("2"),
            field("100"),
            field("200"),
            field("300"),
        ];
        let session = decode(id, &fields).unwrap().unwrap();
        assert_eq!(session.generation, 3);
        assert_eq!(session.grant.roles, ["admin"]);
        assert_eq!(session.token_hash, [9; 32]);
        assert_eq!(
            (
                session.started_at,
                session.expires_at,
                session.absolute_expires_at
            ),
            (100, 200, 300)
        );
        fields[3] = Some(vec![9; 31]);
        assert!(decode(id, &fields).is_err());
        fields[3] = Some(vec![9; 32]);
        fields[2] = field("x");
        assert!(decode(id, &fields).is_err());
        fields[2] = None;
        assert!(decode(id, &fields).is_err());
    }
}
