//! Access-token revocations on Redis: keys with TTLs, checked in one round trip.

use std::sync::LazyLock;

use ::redis::Script;

use super::{RedisBackend, corrupt, hashed};
use crate::auth::revocation::{Revocation, TokenRef};
use crate::store::{StoreError, StoreFuture};

static REVOKE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/revoke.lua")));

/// Revocations of access tokens in Redis, shared by every instance of an app: a
/// [`Revocation`](crate::auth::revocation::Revocation) store with the semantics of the
/// in-memory [`RevokedTokens`](crate::auth::revocation::RevokedTokens). A logout or a
/// revoke-by-subject on one instance refuses the tokens on every instance at once.
///
/// # Keys
///
/// One string per revoked thing, named by a SHA-256 digest (hex) of it and holding
/// `revoked_at:until` in seconds of the caller's clock:
///
/// - `<prefix>:rv:t:{<jti>}`: one token (`revoked_at` is 0);
/// - `<prefix>:rv:s:{<sid>}`: every token of a session (`revoked_at` is 0);
/// - `<prefix>:rv:u:{<subject>}`: every token of a subject issued at or before
///   `revoked_at`.
///
/// An entry matches through its `until` second and expires (`PX`) one second after it,
/// when it can no longer match a token that verifies. Revoking again never shortens an
/// entry or moves `revoked_at` back (one script run: the later `until`, the later
/// `revoked_at`). A check reads the token's, its session's and its subject's entries with
/// one `MGET` (split by slot on a cluster).
///
/// Nothing bounds the entries but Redis's `maxmemory`: run Redis with
/// `maxmemory-policy noeviction`, so that a full Redis refuses a revocation (a 503 to the
/// caller) instead of evicting a live one, which would make revoked tokens valid again.
#[derive(Debug, Clone)]
pub struct RedisRevocation {
    backend: RedisBackend,
}

impl RedisRevocation {
    /// The store of a backend (see [`RedisBackend::revocation_store`]).
    pub fn new(backend: RedisBackend) -> Self {
        RedisRevocation { backend }
    }

    /// The Redis key of a token id's revocation.
    pub fn token_key(&self, token_id: &str) -> String {
        self.backend.key("rv:t", &hashed("jti", token_id))
    }

    /// The Redis key of a session's revocation.
    pub fn session_key(&self, session_id: &str) -> String {
        self.backend.key("rv:s", &hashed("sid", session_id))
    }

    /// The Redis key of a subject's revocation.
    pub fn subject_key(&self, subject: &str) -> String {
        self.backend.key("rv:u", &hashed("subject", subject))
    }

    async fn check(&self, token: TokenRef<'_>, now: u64) -> Result<bool, StoreError> {
        let mut mget = ::redis::cmd("MGET");
        mget.arg(self.token_key(token.token_id))
            .arg(self.subject_key(token.subject));
        if let Some(sid) = token.session_id {
            mget.arg(self.session_key(sid));
        }
        let entries: Vec<Option<String>> = self.backend.query(mget).await?;
        for (i, entry) in entries.iter().enumerate() {
            let Some(entry) = entry else { continue };
            let (revoked_at, until) = parse(entry)?;
            if until < now {
                continue;
            }
            // Entry 1 is the subject's: it matches tokens issued up to its moment.
            if i != 1 || token.issued_at <= revoked_at {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn revoke(
        &self,
        key: String,
        revoked_at: u64,
        until: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        if until < now {
            // It could not match a token that verifies any more.
            return Ok(());
        }
        let mut invocation = REVOKE.key(key);
        invocation.arg(revoked_at).arg(until).arg(now);
        let _: i64 = self.backend.script(&invocation).await?;
        Ok(())
    }
}

/// `revoked_at:until`.
fn parse(entry: &str) -> Result<(u64, u64), StoreError> {
    entry
        .split_once(':')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .ok_or_else(|| corrupt("a revocation entry that does not decode"))
}

impl Revocation for RedisRevocation {
    fn is_revoked(
        &self,
        token: TokenRef<'_>,
        now: u64,
    ) -> StoreFuture<'_, Result<bool, StoreError>> {
        let token_id = token.token_id.to_owned();
        let subject = token.subject.to_owned();
        let session_id = token.session_id.map(str::to_owned);
        let issued_at = token.issued_at;
        StoreFuture::Pending(Box::pin(async move {
            let token = TokenRef {
                token_id: &token_id,
                subject: &subject,
                session_id: session_id.as_deref(),
                issued_at,
            };
            self.check(token, now).await
        }))
    }

    fn revoke_token(
        &self,
        token_id: &str,
        until: u64,
        now: u64,
    ) -> StoreFuture<'_, Result<(), StoreError>> {
        let key = self.token_key(token_id);
        StoreFuture::Pending(Box::pin(self.revoke(key, 0, until, now)))
    }

    fn revoke_session(
        &self,
        session_id: &str,
        until: u64,
        now: u64,
    ) -> StoreFuture<'_, Result<(), StoreError>> {
        let key = self.session_key(session_id);
        StoreFuture::Pending(Box::pin(self.revoke(key, 0, until, now)))
    }

    fn revoke_subject(
        &self,
        subject: &str,
        revoked_at: u64,
        until: u64,
        now: u64,
    ) -> StoreFuture<'_, Result<(), StoreError>> {
        let key = self.subject_key(subject);
        StoreFuture::Pending(Box::pin(self.revoke(key, revoked_at, until, now)))
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse() {
        assert_eq!(parse("0:17").unwrap(), (0, 17));
        assert_eq!(
            parse("1700000000:1700000900").unwrap(),
            (1_700_000_000, 1_700_000_900)
        );
        for bad in ["", "17", ":", "a:1", "1:b", "-1:2"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
