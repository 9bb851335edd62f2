//! Refresh tokens: opaque, stored hashed, rotated on every use, with reuse detection.
//!
//! Every login starts a *family*. Refreshing spends the presented token and issues the next
//! one in its family. Presenting a token that was already spent means it was copied (the
//! legitimate client already used it, or an attacker did): the whole family is revoked, so
//! the newest token stops working too and the user has to log in again.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::jwt::{AccessGrant, JwtAuth, random_id};
use super::{AuthFailure, unauthorized};
use crate::problem::{ApiError, problems};
use crate::store::{StoreError, StoreFuture};

/// Default refresh-token lifetime: 14 days.
pub const DEFAULT_REFRESH_LIFETIME: Duration = Duration::from_secs(14 * 86_400);

/// What a refresh token is stored as: its family, what it grants, and until when.
#[derive(Debug, Clone)]
pub struct RefreshRecord {
    /// The family (one per login).
    pub family: u128,
    /// What the access tokens of this family grant.
    pub grant: AccessGrant,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: u64,
}

/// The outcome of presenting a refresh token.
#[derive(Debug, Clone)]
pub enum Rotation {
    /// The token was live: it is now spent and the next one stored.
    Rotated(RefreshRecord),
    /// The token was already spent: its family is now revoked.
    Reused,
    /// Unknown, expired, or of a revoked family.
    Invalid,
}

/// Where refresh tokens live (hashed). In memory by default; a Redis store can be added
/// without changing callers.
pub trait RefreshStore: Send + Sync + 'static {
    /// Stores a new token.
    fn insert(
        &self,
        token_hash: [u8; 32],
        record: RefreshRecord,
    ) -> StoreFuture<'_, Result<(), StoreError>>;

    /// Atomically spends `token_hash` and stores `next_hash` in the same family, or reports
    /// reuse (revoking the family) or an invalid token.
    fn rotate(
        &self,
        token_hash: &[u8; 32],
        next_hash: [u8; 32],
        next_expires_at: u64,
        now: u64,
    ) -> StoreFuture<'_, Result<Rotation, StoreError>>;

    /// Revokes every token of a family (logout everywhere, suspected theft).
    fn revoke_family(&self, family: u128) -> StoreFuture<'_, Result<(), StoreError>>;
}

#[derive(Debug)]
struct Stored {
    record: RefreshRecord,
    spent: bool,
}

/// Default bound on stored refresh tokens.
pub const DEFAULT_MAX_TOKENS: usize = 1_000_000;

/// Refresh tokens in memory, shared by every worker. Bounded: expired tokens are swept when
/// full, and new logins are refused (503) if that is not enough.
#[derive(Debug)]
pub struct MemoryRefreshStore {
    tokens: DashMap<[u8; 32], Stored>,
    revoked: DashMap<u128, u64>,
    max_tokens: usize,
    count: AtomicUsize,
}

impl Default for MemoryRefreshStore {
    fn default() -> Self {
        MemoryRefreshStore {
            tokens: DashMap::new(),
            revoked: DashMap::new(),
            max_tokens: DEFAULT_MAX_TOKENS,
            count: AtomicUsize::new(0),
        }
    }
}

impl MemoryRefreshStore {
    /// An empty store with the default bound.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the bound on stored tokens.
    pub fn max_tokens(mut self, n: usize) -> Self {
        self.max_tokens = n.max(1);
        self
    }

    fn sweep(&self, now: u64) {
        let mut removed = 0;
        self.tokens.retain(|_, t| {
            let keep = t.record.expires_at > now;
            removed += usize::from(!keep);
            keep
        });
        self.revoked.retain(|_, until| *until > now);
        self.count.fetch_sub(removed, Ordering::Relaxed);
    }

    fn insert_now(
        &self,
        hash: [u8; 32],
        record: RefreshRecord,
        now: u64,
    ) -> Result<(), StoreError> {
        if self.count.load(Ordering::Relaxed) >= self.max_tokens {
            self.sweep(now);
            if self.count.load(Ordering::Relaxed) >= self.max_tokens {
                return Err(StoreError::Full);
            }
        }
        if self
            .tokens
            .insert(
                hash,
                Stored {
                    record,
                    spent: false,
                },
            )
            .is_none()
        {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn rotate_now(
        &self,
        hash: &[u8; 32],
        next: [u8; 32],
        next_expires_at: u64,
        now: u64,
    ) -> Result<Rotation, StoreError> {
        // Spend under the entry's lock, so that two concurrent refreshes with the same token
        // cannot both succeed. The lock is dropped before touching other entries.
        let outcome = {
            let Some(mut stored) = self.tokens.get_mut(hash) else {
                return Ok(Rotation::Invalid);
            };
            let family = stored.record.family;
            if self.revoked.contains_key(&family) || stored.record.expires_at <= now {
                return Ok(Rotation::Invalid);
            }
            if stored.spent {
                Err((family, stored.record.expires_at))
            } else {
                stored.spent = true;
                Ok(stored.record.clone())
            }
        };
        match outcome {
            Ok(record) => {
                let next_record = RefreshRecord {
                    expires_at: next_expires_at,
                    ..record
                };
                self.insert_now(next, next_record.clone(), now)?;
                Ok(Rotation::Rotated(next_record))
            }
            Err((family, until)) => {
                self.revoked.insert(family, until.max(next_expires_at));
                Ok(Rotation::Reused)
            }
        }
    }
}

impl RefreshStore for MemoryRefreshStore {
    fn insert(
        &self,
        token_hash: [u8; 32],
        record: RefreshRecord,
    ) -> StoreFuture<'_, Result<(), StoreError>> {
        StoreFuture::ready(self.insert_now(token_hash, record, unix_now()))
    }

    fn rotate(
        &self,
        token_hash: &[u8; 32],
        next_hash: [u8; 32],
        next_expires_at: u64,
        now: u64,
    ) -> StoreFuture<'_, Result<Rotation, StoreError>> {
        StoreFuture::ready(self.rotate_now(token_hash, next_hash, next_expires_at, now))
    }

    fn revoke_family(&self, family: u128) -> StoreFuture<'_, Result<(), StoreError>> {
        self.revoked
            .insert(family, unix_now() + DEFAULT_REFRESH_LIFETIME.as_secs());
        StoreFuture::ready(Ok(()))
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// An access token and its refresh token, as returned by login and refresh
/// (RFC 6749 §5.1 field names).
#[derive(Debug, Clone, Serialize)]
pub struct TokenPair {
    /// The JWT access token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The opaque refresh token; spent by its first use.
    pub refresh_token: String,
}

/// Logins and refreshes: issues access tokens with a [`JwtAuth`] and rotates refresh tokens
/// in a [`RefreshStore`].
///
/// ```
/// use std::sync::Arc;
/// use secure_api_runtime::auth::jwt::{AccessGrant, JwtAuth};
/// use secure_api_runtime::auth::refresh::{MemoryRefreshStore, TokenService};
///
/// # futures_util::FutureExt::now_or_never(async {
/// let jwt = JwtAuth::hs256(vec![7u8; 32]).issuer("i").audience("a").build().unwrap();
/// let tokens = TokenService::new(jwt, Arc::new(MemoryRefreshStore::new()));
/// let first = tokens.login(AccessGrant::new("alice")).await.unwrap();
/// let second = tokens.refresh(&first.refresh_token).await.unwrap();
/// // The first refresh token is spent: using it again revokes the family...
/// assert!(tokens.refresh(&first.refresh_token).await.is_err());
/// // ...so even the newest one no longer works.
/// assert!(tokens.refresh(&second.refresh_token).await.is_err());
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct TokenService {
    jwt: JwtAuth,
    store: Arc<dyn RefreshStore>,
    refresh_lifetime: Duration,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("jwt", &self.jwt)
            .finish_non_exhaustive()
    }
}

impl TokenService {
    /// A service issuing with `jwt` and keeping refresh tokens in `store`.
    pub fn new(jwt: JwtAuth, store: Arc<dyn RefreshStore>) -> Self {
        TokenService {
            jwt,
            store,
            refresh_lifetime: DEFAULT_REFRESH_LIFETIME,
        }
    }

    /// How long a refresh token lives (default 14 days).
    pub fn refresh_lifetime(mut self, lifetime: Duration) -> Self {
        self.refresh_lifetime = lifetime;
        self
    }

    /// The access-token verifier and issuer.
    pub fn jwt(&self) -> &JwtAuth {
        &self.jwt
    }

    fn pair(&self, grant: &AccessGrant, refresh_token: String) -> Result<TokenPair, ApiError> {
        let access_token = self.jwt.issue(grant).map_err(ApiError::internal)?;
        Ok(TokenPair {
            access_token,
            token_type: "Bearer",
            expires_in: self.jwt.access_lifetime().as_secs(),
            refresh_token,
        })
    }

    /// Starts a session (a new refresh family) for a user whose credentials were checked.
    pub async fn login(&self, grant: AccessGrant) -> Result<TokenPair, ApiError> {
        let token = random_id(32);
        let record = RefreshRecord {
            family: uuid::Uuid::new_v4().as_u128(),
            grant: grant.clone(),
            expires_at: unix_now() + self.refresh_lifetime.as_secs(),
        };
        self.store
            .insert(hash(&token), record)
            .await
            .map_err(|e| ApiError::new(problems::SERVICE_UNAVAILABLE).with_cause(e))?;
        self.pair(&grant, token)
    }

    /// Exchanges a refresh token for a new pair. Any failure is the same 401; reuse of a
    /// spent token also revokes its family (and is logged at warn level).
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, ApiError> {
        if refresh_token.is_empty() || refresh_token.len() > 256 {
            return Err(unauthorized(AuthFailure::Invalid));
        }
        let next = random_id(32);
        let now = unix_now();
        let rotation = self
            .store
            .rotate(
                &hash(refresh_token),
                hash(&next),
                now + self.refresh_lifetime.as_secs(),
                now,
            )
            .await
            .map_err(|e| ApiError::new(problems::SERVICE_UNAVAILABLE).with_cause(e))?;
        match rotation {
            Rotation::Rotated(record) => self.pair(&record.grant, next),
            Rotation::Reused => {
                log::warn!(target: "secure_api::auth", "a spent refresh token was presented again; its family is revoked");
                Err(unauthorized(AuthFailure::Invalid))
            }
            Rotation::Invalid => Err(unauthorized(AuthFailure::Invalid)),
        }
    }
}
