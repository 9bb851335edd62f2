//! Sessions: refresh tokens that rotate on every use, with reuse detection, an account check
//! on every refresh, idle and absolute lifetimes, logout and revoke-by-subject.
//!
//! Every login starts a *session* (a refresh family), stored as **one record**: its subject
//! and current grant, its current refresh token's hash and *generation*, when it started
//! and when it ends. Refreshing spends the presented token and moves the session to the
//! next generation; the record is updated in place, so a session costs the same however
//! often it rotates.
//!
//! A refresh token names its session and generation and carries an HMAC (keyed by
//! [`TokenService::refresh_key`]): only tokens this service issued count. Presenting an
//! *older* token of a live session means it was copied (the legitimate client already used
//! it, or an attacker did): the session is ended, so the newest token stops working too,
//! and so do the session's access tokens. A token that does not verify, however it names
//! a session, is only a 401: nobody can end someone else's session by naming it.
//!
//! Every refresh asks the app's [`AccountCheck`] for the account's current grant, so a
//! deleted, disabled or demoted user, or one whose credentials changed, does not keep the
//! login-time grant. A session ends after [`TokenService::idle_lifetime`] without a refresh
//! (14 days) and, however often it is refreshed, [`TokenService::absolute_lifetime`] after
//! the login (30 days).
//!
//! Ending sessions: [`TokenService::logout`] ends the session of an access token, and its
//! access tokens at once (a session revocation in [`JwtAuth`]'s store);
//! [`TokenService::revoke_subject`] ends every session of a subject and refuses its
//! outstanding access tokens at once.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::jwt::{AccessGrant, AuthConfigError, JwtAuth, MAX_ACCESS_LIFETIME, random_bytes};
use super::{AuthFailure, Principal, unauthorized};
use crate::api::SecureApi;
use crate::problem::{ApiError, AuditMark, problems};
use crate::store::{StoreError, StoreFuture, StoreUsage};
use crate::telemetry::audit::{
    AuditDetail, AuditKind, AuthFailureClass, RevokedScope, StoreKind, StoreOutcome,
};

/// Default idle lifetime: a session not refreshed for 14 days ends.
pub const DEFAULT_IDLE_LIFETIME: Duration = Duration::from_secs(14 * 86_400);
/// Default absolute lifetime: every session ends 30 days after its login.
pub const DEFAULT_ABSOLUTE_LIFETIME: Duration = Duration::from_secs(30 * 86_400);
/// The shortest refresh-token key: 256 bits.
pub const MIN_REFRESH_KEY_BYTES: usize = 32;
/// `Retry-After` of the 503 answered when the session store is full.
pub const FULL_RETRY_AFTER_SECS: u32 = 30;

/// The id of a session (a refresh family): 128 random bits. Access tokens carry it as
/// their `sid` claim, in base64url ([`Display`](fmt::Display) and [`FromStr`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub [u8; 16]);

impl SessionId {
    /// A new random id.
    pub fn random() -> Self {
        SessionId(random_bytes())
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

/// A string that is not a session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidSessionId;

impl fmt::Display for InvalidSessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a session id")
    }
}

impl std::error::Error for InvalidSessionId {}

impl FromStr for SessionId {
    type Err = InvalidSessionId;

    fn from_str(s: &str) -> Result<Self, InvalidSessionId> {
        let mut id = [0u8; 16];
        match base64::engine::general_purpose::URL_SAFE_NO_PAD.decode_slice(s, &mut id) {
            Ok(16) if s.len() == 22 => Ok(SessionId(id)),
            _ => Err(InvalidSessionId),
        }
    }
}

/// The record of one session: everything a refresh needs, updated in place by each
/// rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The session's id.
    pub id: SessionId,
    /// The grant of the session's latest access token; its subject never changes.
    pub grant: AccessGrant,
    /// How many times the session was refreshed: the generation of its current token.
    pub generation: u64,
    /// SHA-256 of the current refresh token.
    pub token_hash: [u8; 32],
    /// The credentials version given at login (see [`TokenService::login_with_version`]).
    pub credentials_version: u64,
    /// The login, seconds since the Unix epoch.
    pub started_at: u64,
    /// When the session ends unless refreshed (never after `absolute_expires_at`).
    pub expires_at: u64,
    /// When the session ends however often it is refreshed.
    pub absolute_expires_at: u64,
}

impl Session {
    /// The subject.
    pub fn subject(&self) -> &str {
        &self.grant.subject
    }
}

/// The next state of a session after a refresh (see [`RefreshStore::advance`]).
#[derive(Debug, Clone)]
pub struct Advance {
    /// SHA-256 of the next refresh token.
    pub token_hash: [u8; 32],
    /// The grant the account check returned.
    pub grant: AccessGrant,
    /// The new end unless refreshed (already capped at the absolute end).
    pub expires_at: u64,
}

/// Where sessions live: one record per session, keyed by its id, with an index by subject.
/// In memory by default ([`MemoryRefreshStore`]); the coming Redis store keeps a hash per
/// session with a TTL, a sorted set per subject, and does [`advance`](Self::advance) as a
/// compare-and-set script.
///
/// Every time is seconds since the Unix epoch; a session whose `expires_at` is at or before
/// `now` is gone.
pub trait RefreshStore: Send + Sync + 'static {
    /// Stores a new session. [`StoreError::Full`] when there is no room (nothing changes);
    /// a store may first end the subject's oldest session when the subject has too many.
    fn create(&self, session: Session, now: u64) -> StoreFuture<'_, Result<(), StoreError>>;

    /// The live session `id`.
    fn get(&self, id: SessionId, now: u64) -> StoreFuture<'_, Result<Option<Session>, StoreError>>;

    /// Atomically moves the live session `id` from `generation` (whose token hashes to
    /// `token_hash`) to the next generation. `false`, changing nothing, when the session is
    /// gone or no longer at that generation and hash (a concurrent refresh spent it).
    /// Never needs room: the record is updated in place.
    fn advance(
        &self,
        id: SessionId,
        generation: u64,
        token_hash: [u8; 32],
        next: Advance,
        now: u64,
    ) -> StoreFuture<'_, Result<bool, StoreError>>;

    /// Ends session `id`; `false` if there was none.
    fn remove(&self, id: SessionId) -> StoreFuture<'_, Result<bool, StoreError>>;

    /// Ends every session of `subject` (through the subject index, without a scan), and
    /// says how many there were.
    fn remove_subject(&self, subject: &str) -> StoreFuture<'_, Result<usize, StoreError>>;

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

/// Default bound on sessions held in memory.
pub const DEFAULT_MAX_SESSIONS: usize = 1_000_000;
/// Default bound on the sessions of one subject.
pub const DEFAULT_MAX_SESSIONS_PER_SUBJECT: usize = 100;

/// How many expired sessions a write drops on its way (all of them when the store is full).
const PURGE_STEP: usize = 16;

#[derive(Debug, Default)]
struct State {
    sessions: HashMap<SessionId, Session>,
    /// `(expires_at, id)` of every session: expired sessions are dropped from the front.
    expiry: BTreeSet<(u64, SessionId)>,
    /// Every subject's sessions, oldest first.
    by_subject: HashMap<String, Vec<SessionId>>,
}

impl State {
    fn remove(&mut self, id: SessionId) -> Option<Session> {
        let session = self.sessions.remove(&id)?;
        self.expiry.remove(&(session.expires_at, id));
        if let Some(ids) = self.by_subject.get_mut(session.subject()) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                self.by_subject.remove(session.subject());
            }
        }
        Some(session)
    }

    /// Drops up to `budget` expired sessions, earliest first.
    fn purge(&mut self, now: u64, budget: usize) {
        for _ in 0..budget {
            match self.expiry.first() {
                Some(&(at, id)) if at <= now => {
                    self.remove(id);
                }
                _ => break,
            }
        }
    }
}

/// Sessions in memory, shared by every worker: one record per session, an expiry index and
/// a subject index, under one lock (every operation is a few map updates).
///
/// Bounded: at [`max_sessions`](Self::max_sessions) a login is refused (503, nothing
/// changes) once expired sessions have been dropped; a refresh never needs room. A subject
/// with [`max_sessions_per_subject`](Self::max_sessions_per_subject) sessions loses its
/// oldest one at its next login, so one account cannot fill the store. Writes drop expired
/// sessions from the expiry index as they go, so no operation scans the store.
#[derive(Debug)]
pub struct MemoryRefreshStore {
    state: Mutex<State>,
    max_sessions: usize,
    max_per_subject: usize,
}

impl Default for MemoryRefreshStore {
    fn default() -> Self {
        MemoryRefreshStore {
            state: Mutex::new(State::default()),
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_per_subject: DEFAULT_MAX_SESSIONS_PER_SUBJECT,
        }
    }
}

impl MemoryRefreshStore {
    /// An empty store with the default bounds.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the bound on sessions (at least 1).
    pub fn max_sessions(mut self, n: usize) -> Self {
        self.max_sessions = n.max(1);
        self
    }

    /// Sets the bound on the sessions of one subject (at least 1).
    pub fn max_sessions_per_subject(mut self, n: usize) -> Self {
        self.max_per_subject = n.max(1);
        self
    }

    /// Sessions held (live, and expired ones not yet dropped).
    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    /// The sessions of `subject` held, never more than the per-subject bound.
    pub fn subject_len(&self, subject: &str) -> usize {
        self.lock().by_subject.get(subject).map_or(0, Vec::len)
    }

    /// The bounds in effect: sessions in total, and sessions of one subject. [`len`](Self::len)
    /// and [`subject_len`](Self::subject_len) never pass them.
    ///
    /// ```
    /// use secure_api_runtime::auth::refresh::MemoryRefreshStore;
    /// let store = MemoryRefreshStore::new()
    ///     .max_sessions(10_000)
    ///     .max_sessions_per_subject(5);
    /// assert_eq!(store.bounds(), (10_000, 5));
    /// assert_eq!(store.subject_len("alice"), 0);
    /// ```
    pub fn bounds(&self) -> (usize, usize) {
        (self.max_sessions, self.max_per_subject)
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update leaves the state consistent before anything can panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn create_now(&self, session: Session, now: u64) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.purge(now, PURGE_STEP);
        let subject_sessions = state.by_subject.get(session.subject()).map_or(0, Vec::len);
        if subject_sessions >= self.max_per_subject
            && let Some(&oldest) = state
                .by_subject
                .get(session.subject())
                .and_then(|ids| ids.first())
        {
            state.remove(oldest);
        }
        if state.sessions.len() >= self.max_sessions {
            state.purge(now, usize::MAX);
            if state.sessions.len() >= self.max_sessions {
                return Err(StoreError::Full);
            }
        }
        let id = session.id;
        state.remove(id);
        state.expiry.insert((session.expires_at, id));
        state
            .by_subject
            .entry(session.subject().to_owned())
            // Most subjects have one session: no room for four from the start.
            .or_insert_with(|| Vec::with_capacity(1))
            .push(id);
        state.sessions.insert(id, session);
        Ok(())
    }

    fn advance_now(
        &self,
        id: SessionId,
        generation: u64,
        token_hash: [u8; 32],
        next: Advance,
        now: u64,
    ) -> bool {
        let mut state = self.lock();
        state.purge(now, PURGE_STEP);
        let Some(session) = state.sessions.get_mut(&id) else {
            return false;
        };
        if session.expires_at <= now
            || session.generation != generation
            || !same_hash(&session.token_hash, &token_hash)
            || next.grant.subject != session.grant.subject
        {
            return false;
        }
        let old_expiry = session.expires_at;
        session.generation += 1;
        session.token_hash = next.token_hash;
        session.grant = next.grant;
        session.expires_at = next.expires_at.min(session.absolute_expires_at);
        let new_expiry = session.expires_at;
        state.expiry.remove(&(old_expiry, id));
        state.expiry.insert((new_expiry, id));
        true
    }

    fn remove_subject_now(&self, subject: &str) -> usize {
        let mut state = self.lock();
        let ids = state.by_subject.remove(subject).unwrap_or_default();
        for id in &ids {
            if let Some(session) = state.sessions.remove(id) {
                state.expiry.remove(&(session.expires_at, *id));
            }
        }
        ids.len()
    }
}

impl RefreshStore for MemoryRefreshStore {
    fn create(&self, session: Session, now: u64) -> StoreFuture<'_, Result<(), StoreError>> {
        StoreFuture::ready(self.create_now(session, now))
    }

    fn get(&self, id: SessionId, now: u64) -> StoreFuture<'_, Result<Option<Session>, StoreError>> {
        let state = self.lock();
        let session = state.sessions.get(&id).filter(|s| s.expires_at > now);
        StoreFuture::ready(Ok(session.cloned()))
    }

    fn advance(
        &self,
        id: SessionId,
        generation: u64,
        token_hash: [u8; 32],
        next: Advance,
        now: u64,
    ) -> StoreFuture<'_, Result<bool, StoreError>> {
        StoreFuture::ready(Ok(self.advance_now(id, generation, token_hash, next, now)))
    }

    fn remove(&self, id: SessionId) -> StoreFuture<'_, Result<bool, StoreError>> {
        StoreFuture::ready(Ok(self.lock().remove(id).is_some()))
    }

    fn remove_subject(&self, subject: &str) -> StoreFuture<'_, Result<usize, StoreError>> {
        StoreFuture::ready(Ok(self.remove_subject_now(subject)))
    }

    fn backend(&self) -> &'static str {
        "memory"
    }

    /// The sessions held ([`len`](MemoryRefreshStore::len)) of at most
    /// [`max_sessions`](MemoryRefreshStore::max_sessions): the map's length, under the
    /// store's lock.
    fn usage(&self) -> Option<StoreUsage> {
        Some(StoreUsage::new(self.len(), self.max_sessions))
    }
}

/// Compares two hashes in constant time.
fn same_hash(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// What the [`AccountCheck`] is shown of a session being refreshed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session's subject.
    pub subject: String,
    /// The session's id (the `sid` of its access tokens).
    pub session_id: SessionId,
    /// The login, seconds since the Unix epoch: compare it with when the account's
    /// credentials last changed.
    pub started_at: u64,
    /// The credentials version given at login ([`TokenService::login_with_version`]; 0
    /// with [`TokenService::login`]).
    pub credentials_version: u64,
    /// The grant of the session's latest access token.
    pub grant: AccessGrant,
}

/// The account check's answer for a session being refreshed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountStatus {
    /// The account may go on, with this grant (its current roles, permissions and tier;
    /// its subject is ignored: a session never changes subject).
    Active(AccessGrant),
    /// The account no longer exists.
    Gone,
    /// The account is disabled.
    Disabled,
    /// The account's credentials changed since the login (a new password, a reset): the
    /// session must log in again.
    CredentialsChanged,
}

impl AccountStatus {
    fn refusal(&self) -> Option<&'static str> {
        match self {
            AccountStatus::Active(_) => None,
            AccountStatus::Gone => Some("account gone"),
            AccountStatus::Disabled => Some("account disabled"),
            AccountStatus::CredentialsChanged => Some("credentials changed"),
        }
    }
}

/// The app's account lookup, consulted by [`TokenService::refresh`] on every refresh: the
/// current grant of the session's account, or a refusal (which ends the session: the same
/// 401 as any failed refresh). A failure ([`StoreError`]) is a 503 and spends nothing.
///
/// A real app looks the user up in its database and returns a boxed future
/// ([`StoreFuture::Pending`]); a closure `Fn(&SessionInfo) -> AccountStatus` is an
/// `AccountCheck` that answers at once:
///
/// ```
/// use secure_api_runtime::auth::jwt::AccessGrant;
/// use secure_api_runtime::auth::refresh::{AccountCheck, AccountStatus, SessionInfo};
///
/// let check = |session: &SessionInfo| match session.subject.as_str() {
///     "alice" => AccountStatus::Active(AccessGrant::new("alice").roles(["user"])),
///     "mallory" => AccountStatus::Disabled,
///     _ => AccountStatus::Gone,
/// };
/// # fn is_check(_: &impl AccountCheck) {}
/// # is_check(&check);
/// ```
pub trait AccountCheck: Send + Sync + 'static {
    /// The account's status for `session`.
    fn check(&self, session: SessionInfo) -> StoreFuture<'_, Result<AccountStatus, StoreError>>;
}

impl<F> AccountCheck for F
where
    F: Fn(&SessionInfo) -> AccountStatus + Send + Sync + 'static,
{
    fn check(&self, session: SessionInfo) -> StoreFuture<'_, Result<AccountStatus, StoreError>> {
        StoreFuture::ready(Ok(self(&session)))
    }
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

/// The refresh token's layout: a version byte, the session id, the generation (big
/// endian), 16 random bytes, then the first 16 bytes of the HMAC-SHA256 of all that.
const TOKEN_VERSION: u8 = 1;
const TOKEN_BODY: usize = 1 + 16 + 8 + 16;
const TOKEN_TAG: usize = 16;
const TOKEN_BYTES: usize = TOKEN_BODY + TOKEN_TAG;
/// Base64url without padding of [`TOKEN_BYTES`].
const TOKEN_CHARS: usize = (TOKEN_BYTES * 4).div_ceil(3);

/// What a verified refresh token names.
struct Presented {
    session: SessionId,
    generation: u64,
}

/// Logins, refreshes and the ending of sessions: issues access tokens with a [`JwtAuth`],
/// keeps sessions in a [`RefreshStore`], asks an [`AccountCheck`] on every refresh, and
/// records revocations in the `JwtAuth`'s revocation store. Its time is the `JwtAuth`'s
/// clock ([`JwtAuthBuilder::clock`](super::jwt::JwtAuthBuilder::clock)).
///
/// ```
/// use std::sync::Arc;
/// use secure_api_runtime::auth::jwt::{AccessGrant, JwtAuth};
/// use secure_api_runtime::auth::refresh::{
///     AccountStatus, MemoryRefreshStore, SessionInfo, TokenService,
/// };
///
/// # futures_util::FutureExt::now_or_never(async {
/// let jwt = JwtAuth::hs256(vec![7u8; 32]).issuer("i").audience("a").build().unwrap();
/// // The account check: here every account exists with no roles.
/// let accounts = |s: &SessionInfo| AccountStatus::Active(AccessGrant::new(&s.subject));
/// let tokens = TokenService::new(jwt.clone(), Arc::new(MemoryRefreshStore::new()), Arc::new(accounts));
/// let first = tokens.login(AccessGrant::new("alice")).await.unwrap();
/// let second = tokens.refresh(&first.refresh_token).await.unwrap();
/// // The first refresh token is spent: using it again ends the session...
/// assert!(tokens.refresh(&first.refresh_token).await.is_err());
/// // ...so even the newest one no longer works, nor does the session's access token.
/// assert!(tokens.refresh(&second.refresh_token).await.is_err());
/// assert!(jwt.verify(&second.access_token).await.is_err());
///
/// // Logging out ends a session and its access tokens.
/// let pair = tokens.login(AccessGrant::new("alice")).await.unwrap();
/// let principal = jwt.verify(&pair.access_token).await.unwrap();
/// tokens.logout(&principal).await.unwrap();
/// assert!(jwt.verify(&pair.access_token).await.is_err());
/// assert!(tokens.refresh(&pair.refresh_token).await.is_err());
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct TokenService {
    jwt: JwtAuth,
    store: Arc<dyn RefreshStore>,
    accounts: Arc<dyn AccountCheck>,
    idle_lifetime: u64,
    absolute_lifetime: u64,
    key: Hmac<Sha256>,
    /// Whether `store` is already in an app's timing decorator ([`Self::telemetry`]).
    instrumented: bool,
    /// The app whose telemetry gets events raised outside an endpoint request.
    audit: Option<SecureApi>,
}

impl fmt::Debug for TokenService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenService")
            .field("jwt", &self.jwt)
            .field("idle_lifetime", &self.idle_lifetime)
            .field("absolute_lifetime", &self.absolute_lifetime)
            .finish_non_exhaustive()
    }
}

/// The 503 of a store or account check that cannot answer now.
fn unavailable(e: StoreError) -> ApiError {
    let retry = match e {
        StoreError::Full => FULL_RETRY_AFTER_SECS,
        StoreError::Backend(_) => 1,
    };
    ApiError::new(problems::SERVICE_UNAVAILABLE)
        .with_header(RETRY_AFTER, HeaderValue::from(retry))
        .with_cause(e)
}

fn refused() -> ApiError {
    unauthorized(AuthFailure::Invalid)
}

impl TokenService {
    /// A service issuing with `jwt`, keeping sessions in `store` and asking `accounts` on
    /// every refresh. The refresh-token key is random (see
    /// [`refresh_key`](Self::refresh_key) for several instances sharing a store).
    pub fn new(
        jwt: JwtAuth,
        store: Arc<dyn RefreshStore>,
        accounts: Arc<dyn AccountCheck>,
    ) -> Self {
        if !jwt.has_revocation() {
            log::warn!(
                target: "secure_api::auth",
                "the JwtAuth of this TokenService has no revocation store: logout and revoke_subject end refresh sessions, but access tokens already issued stay valid until they expire"
            );
        }
        TokenService {
            jwt,
            store,
            accounts,
            idle_lifetime: DEFAULT_IDLE_LIFETIME.as_secs(),
            absolute_lifetime: DEFAULT_ABSOLUTE_LIFETIME.as_secs(),
            key: keyed(&random_bytes::<32>()),
            instrumented: false,
            audit: None,
        }
    }

    /// Joins this service to the telemetry of `api`.
    ///
    /// **Audit events.** `api`'s [audit sink](crate::api::SecureApiBuilder::audit_sink)
    /// and metrics get this service's events when they are raised outside an endpoint
    /// request (a background job, a test); inside a `#[secure_endpoint]` handler they
    /// always go through the request's app, with its endpoint, client and principal.
    /// Without it, they go to the process-wide [`SecureApi::global`]. The events:
    /// `refresh_reuse` (an older refresh token presented again, or one token used twice at
    /// once), `auth_failed` with class `refresh_invalid` (every other refused refresh),
    /// `revoked` (logout, [`revoke_subject`](Self::revoke_subject)) and `store_failure` (a
    /// session or revocation store that cannot answer: the request is refused with a 503).
    /// None carries a token or a hash of one.
    ///
    /// **Metrics.** Reports this service's stores in the [metrics](crate::telemetry::metrics) of `api`,
    /// when `api` was built with [`metrics`](crate::api::SecureApiBuilder::metrics) on
    /// (otherwise nothing changes): every call of its session store is timed
    /// (`secure_api_store_call_duration_seconds`, `store="sessions"`), and so are the calls
    /// of its `JwtAuth`'s revocation store, if no app times them yet; the session store's
    /// size is reported in `api`'s gauges ([`SecureApi::record_store_gauges`]) unless
    /// `api` already reports the session store of another live service. The histogram and
    /// gauges are registered now, with the recorder installed now. Calling it again, on
    /// this service or a clone, changes nothing.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use secure_api_runtime::SecureApi;
    /// use secure_api_runtime::auth::jwt::{AccessGrant, JwtAuth};
    /// use secure_api_runtime::auth::refresh::{
    ///     AccountStatus, MemoryRefreshStore, SessionInfo, TokenService,
    /// };
    ///
    /// let jwt = JwtAuth::hs256(vec![7u8; 32]).issuer("i").audience("a").build().unwrap();
    /// let api = SecureApi::builder().jwt(jwt.clone()).metrics(true).build();
    /// let accounts = |s: &SessionInfo| AccountStatus::Active(AccessGrant::new(&s.subject));
    /// let tokens = TokenService::new(jwt, Arc::new(MemoryRefreshStore::new()), Arc::new(accounts))
    ///     .telemetry(&api);
    /// ```
    ///
    /// [`SecureApi::record_store_gauges`]: crate::api::SecureApi::record_store_gauges
    pub fn telemetry(mut self, api: &SecureApi) -> Self {
        self.audit = Some(api.clone());
        if !self.instrumented
            && let Some(metrics) = api.store_metrics()
        {
            self.store = metrics.attach_sessions(self.store, &self.jwt);
            self.instrumented = true;
        }
        self
    }

    /// Emits one event of this service.
    fn emit(
        &self,
        kind: AuditKind,
        error_id: Option<uuid::Uuid>,
        detail: impl FnOnce() -> AuditDetail,
    ) {
        crate::telemetry::emit_from_handler(self.audit.as_ref(), kind, error_id, detail);
    }

    /// The 503 of `store` failing, emitted as a `store_failure` (failed closed).
    fn store_failed(&self, store: StoreKind, e: StoreError) -> ApiError {
        let class = crate::telemetry::store_error_class(&e);
        let err = unavailable(e);
        crate::telemetry::store_failure_from_handler(
            self.audit.as_ref(),
            store,
            StoreOutcome::FailedClosed,
            Some(err.id()),
            class,
        );
        err
    }

    /// The 503 of the session store failing.
    fn sessions_failed(&self, e: StoreError) -> ApiError {
        self.store_failed(StoreKind::Sessions, e)
    }

    /// The 503 of the revocation store failing.
    fn revocation_failed(&self, e: StoreError) -> ApiError {
        self.store_failed(StoreKind::Revocation, e)
    }

    /// The 401 of a refused refresh token, emitted as `auth_failed` (`refresh_invalid`).
    fn refused_refresh(&self) -> ApiError {
        let err = refused().with_audit(AuditMark::Emitted);
        self.emit(AuditKind::AuthFailed, Some(err.id()), || {
            AuditDetail::AuthFailed {
                class: AuthFailureClass::RefreshInvalid,
            }
        });
        err
    }

    /// Ends session `id` after its refresh token was reused, and answers the 401 (or the
    /// 503 of a store that could not end it), emitted as `refresh_reuse`.
    async fn reused(&self, session: &Session, concurrent: bool) -> ApiError {
        let err = match self.end(session.id).await {
            Ok(()) => refused(),
            Err(e) => e,
        }
        .with_audit(AuditMark::Emitted);
        self.emit(AuditKind::RefreshReuse, Some(err.id()), || {
            AuditDetail::RefreshReuse {
                subject: session.subject().to_owned(),
                family: hex(&session.id.0),
                concurrent,
            }
        });
        err
    }

    /// How long a session lives without a refresh (default 14 days).
    pub fn idle_lifetime(mut self, lifetime: Duration) -> Self {
        self.idle_lifetime = lifetime.as_secs().max(1);
        self
    }

    /// How long a session lives after its login however often it is refreshed (default 30
    /// days). A refresh never extends a session past it.
    pub fn absolute_lifetime(mut self, lifetime: Duration) -> Self {
        self.absolute_lifetime = lifetime.as_secs().max(1);
        self
    }

    /// The key refresh tokens are authenticated with (HMAC-SHA256, at least 256 bits).
    /// Random per process by default; instances that share a session store must share it,
    /// and changing it invalidates every refresh token.
    pub fn refresh_key(mut self, key: impl AsRef<[u8]>) -> Result<Self, AuthConfigError> {
        let key = key.as_ref();
        if key.len() < MIN_REFRESH_KEY_BYTES {
            return Err(AuthConfigError::WeakHmacKey { bytes: key.len() });
        }
        self.key = keyed(key);
        Ok(self)
    }

    /// The access-token verifier and issuer.
    pub fn jwt(&self) -> &JwtAuth {
        &self.jwt
    }

    fn mint(&self, session: SessionId, generation: u64) -> String {
        let mut token = [0u8; TOKEN_BYTES];
        token[0] = TOKEN_VERSION;
        token[1..17].copy_from_slice(&session.0);
        token[17..25].copy_from_slice(&generation.to_be_bytes());
        token[25..TOKEN_BODY].copy_from_slice(&random_bytes::<16>());
        let mut mac = self.key.clone();
        mac.update(&token[..TOKEN_BODY]);
        let tag = mac.finalize().into_bytes();
        token[TOKEN_BODY..].copy_from_slice(&tag[..TOKEN_TAG]);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token)
    }

    /// The session and generation a token names, if this service issued it.
    fn open(&self, token: &str) -> Option<Presented> {
        if token.len() != TOKEN_CHARS {
            return None;
        }
        let mut raw = [0u8; TOKEN_BYTES];
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode_slice(token, &mut raw)
            .ok()?;
        if n != TOKEN_BYTES || raw[0] != TOKEN_VERSION {
            return None;
        }
        let mut mac = self.key.clone();
        mac.update(&raw[..TOKEN_BODY]);
        mac.verify_truncated_left(&raw[TOKEN_BODY..]).ok()?;
        let mut session = [0u8; 16];
        session.copy_from_slice(&raw[1..17]);
        let mut generation = [0u8; 8];
        generation.copy_from_slice(&raw[17..25]);
        Some(Presented {
            session: SessionId(session),
            generation: u64::from_be_bytes(generation),
        })
    }

    fn pair(
        &self,
        grant: &AccessGrant,
        session: SessionId,
        refresh: String,
    ) -> Result<TokenPair, ApiError> {
        let access_token = self
            .jwt
            .issue_in_session(grant, &session.to_string())
            .map_err(ApiError::internal)?;
        Ok(TokenPair {
            access_token,
            token_type: "Bearer",
            expires_in: self.jwt.access_lifetime().as_secs(),
            refresh_token: refresh,
        })
    }

    /// Starts a session for a user whose credentials were checked, with credentials
    /// version 0.
    pub async fn login(&self, grant: AccessGrant) -> Result<TokenPair, ApiError> {
        self.login_with_version(grant, 0).await
    }

    /// Starts a session recording the account's current credentials version (a counter
    /// bumped on every password change, for example): the [`AccountCheck`] sees it in
    /// [`SessionInfo::credentials_version`] and answers
    /// [`AccountStatus::CredentialsChanged`] once the account's version moved on. A full
    /// store is a 503 with `Retry-After`.
    pub async fn login_with_version(
        &self,
        grant: AccessGrant,
        credentials_version: u64,
    ) -> Result<TokenPair, ApiError> {
        let now = self.jwt.now();
        let id = SessionId::random();
        let refresh = self.mint(id, 0);
        let pair = self.pair(&grant, id, refresh)?;
        let absolute_expires_at = now.saturating_add(self.absolute_lifetime);
        let session = Session {
            id,
            grant,
            generation: 0,
            token_hash: hash(&pair.refresh_token),
            credentials_version,
            started_at: now,
            expires_at: now
                .saturating_add(self.idle_lifetime)
                .min(absolute_expires_at),
            absolute_expires_at,
        };
        self.store
            .create(session, now)
            .await
            .map_err(|e| self.sessions_failed(e))?;
        Ok(pair)
    }

    /// Exchanges a refresh token for a new pair, with the grant the [`AccountCheck`]
    /// returns now. Every failure is the same 401: a token this service did not issue, a
    /// session that ended (logout, revocation, idle or absolute lifetime), a refusal by the
    /// account check (which also ends the session). An older token of a live session (a
    /// copy) ends the session, logged at warn level. A store or account check that cannot
    /// answer is a 503 with `Retry-After`, and the token is not spent.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, ApiError> {
        let Some(presented) = self.open(refresh_token) else {
            log::debug!(target: "secure_api::auth", "refresh refused: not a token of this service");
            return Err(self.refused_refresh());
        };
        let now = self.jwt.now();
        let id = presented.session;
        let Some(session) = self
            .store
            .get(id, now)
            .await
            .map_err(|e| self.sessions_failed(e))?
        else {
            log::debug!(target: "secure_api::auth", "refresh refused: the session has ended");
            return Err(self.refused_refresh());
        };
        let presented_hash = hash(refresh_token);
        if presented.generation < session.generation {
            log::warn!(target: "secure_api::auth", "an older refresh token of session {id} was presented again; the session is ended");
            return Err(self.reused(&session, false).await);
        }
        if presented.generation != session.generation
            || !same_hash(&presented_hash, &session.token_hash)
        {
            log::warn!(target: "secure_api::auth", "refresh refused: a token of session {id} that it never held");
            return Err(self.refused_refresh());
        }
        let info = SessionInfo {
            subject: session.grant.subject.clone(),
            session_id: id,
            started_at: session.started_at,
            credentials_version: session.credentials_version,
            grant: session.grant.clone(),
        };
        let status = self
            .accounts
            .check(info)
            .await
            .map_err(|e| self.store_failed(StoreKind::Accounts, e))?;
        let mut grant = match status {
            AccountStatus::Active(grant) => grant,
            refusal => {
                log::info!(
                    target: "secure_api::auth",
                    "refresh refused: {}; session {id} ended",
                    refusal.refusal().unwrap_or_default()
                );
                self.end(id).await?;
                return Err(self.refused_refresh());
            }
        };
        grant.subject = session.grant.subject.clone();
        let refresh = self.mint(id, session.generation + 1);
        let pair = self.pair(&grant, id, refresh)?;
        let next = Advance {
            token_hash: hash(&pair.refresh_token),
            grant,
            expires_at: now
                .saturating_add(self.idle_lifetime)
                .min(session.absolute_expires_at),
        };
        let advanced = self
            .store
            .advance(id, session.generation, presented_hash, next, now)
            .await
            .map_err(|e| self.sessions_failed(e))?;
        if !advanced {
            // Spent by a concurrent refresh since it was read (or ended meanwhile): two
            // uses of one token, handled as reuse.
            log::warn!(target: "secure_api::auth", "a refresh token of session {id} was used twice at once; the session is ended");
            return Err(self.reused(&session, true).await);
        }
        Ok(pair)
    }

    /// Ends session `id` and its access tokens.
    async fn end(&self, id: SessionId) -> Result<(), ApiError> {
        self.store
            .remove(id)
            .await
            .map_err(|e| self.sessions_failed(e))?;
        if self.jwt.has_revocation() {
            self.jwt
                .revoke_session_unaudited(&id.to_string())
                .await
                .map_err(|e| self.revocation_failed(e))?;
        }
        Ok(())
    }

    /// Logs out: ends the session of a verified access token (its `sid`), so that its
    /// refresh token and every access token of the session, the presented one included,
    /// are refused at once. A token outside any session (issued by
    /// [`JwtAuth::issue`]) is revoked by its `jti`. Only the access token is needed: it
    /// names the session and proves the caller holds it. A client whose access token has
    /// expired refreshes first.
    ///
    /// A principal whose `sid` names a session of another subject (only possible with a
    /// principal made by the app's own middleware) changes nothing.
    pub async fn logout(&self, principal: &Principal) -> Result<(), ApiError> {
        let now = self.jwt.now();
        let Some(sid) = principal.session_id.as_deref() else {
            if let Some(jti) = principal.token_id.as_deref()
                && self.jwt.has_revocation()
            {
                let latest_exp = now + MAX_ACCESS_LIFETIME.as_secs() + self.jwt.leeway().as_secs();
                self.jwt
                    .revoke_token_unaudited(jti, latest_exp)
                    .await
                    .map_err(|e| self.revocation_failed(e))?;
                self.emit(AuditKind::Revoked, None, || AuditDetail::Revoked {
                    scope: RevokedScope::Token,
                    subject: Some(principal.subject.clone()),
                    session: None,
                });
            }
            return Ok(());
        };
        let session = match sid.parse::<SessionId>() {
            Ok(id) => self
                .store
                .get(id, now)
                .await
                .map_err(|e| self.sessions_failed(e))?
                .map(|s| (id, s)),
            Err(_) => None,
        };
        if let Some((id, session)) = &session
            && session.grant.subject != principal.subject
        {
            log::warn!(target: "secure_api::auth", "logout refused: session {id} is not the principal's");
            return Ok(());
        }
        // The access tokens first: when a store refuses (503), either nothing has changed
        // or the session's access tokens are already refused, and a retry finishes the
        // job. Never the other way round, which would leave live access tokens behind a
        // spent refresh token.
        let revoking = self.jwt.has_revocation();
        if revoking {
            self.jwt
                .revoke_session_unaudited(sid)
                .await
                .map_err(|e| self.revocation_failed(e))?;
        }
        let ended = session.is_some();
        if let Some((id, _)) = session {
            self.store
                .remove(id)
                .await
                .map_err(|e| self.sessions_failed(e))?;
        }
        // One event for the one decision (not one per store written); none when nothing
        // was ended (no revocation store, and the session had already ended).
        if revoking || ended {
            self.emit(AuditKind::Revoked, None, || AuditDetail::Revoked {
                scope: RevokedScope::Session,
                subject: Some(principal.subject.clone()),
                session: Some(session_label(sid)),
            });
        }
        Ok(())
    }

    /// Ends every session of `subject` and refuses its outstanding access tokens at once
    /// (every token issued up to this second; see
    /// [`revocation`](super::revocation)). For deleted users, "log out everywhere", or a
    /// password change. Returns how many sessions were ended.
    pub async fn revoke_subject(&self, subject: &str) -> Result<usize, ApiError> {
        let ended = self
            .store
            .remove_subject(subject)
            .await
            .map_err(|e| self.sessions_failed(e))?;
        if self.jwt.has_revocation() {
            self.jwt
                .revoke_subject_unaudited(subject)
                .await
                .map_err(|e| self.revocation_failed(e))?;
        }
        self.emit(AuditKind::Revoked, None, || AuditDetail::Revoked {
            scope: RevokedScope::Subject,
            subject: Some(subject.to_owned()),
            session: None,
        });
        Ok(ended)
    }
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// How events name a session given by its `sid`: the id's 32 hex digits when it is a
/// session of a [`TokenService`], else the `sid` as given (a provider's session id).
pub(crate) fn session_label(sid: &str) -> String {
    match sid.parse::<SessionId>() {
        Ok(id) => hex(&id.0),
        Err(_) => sid.to_owned(),
    }
}

fn keyed(key: &[u8]) -> Hmac<Sha256> {
    match <Hmac<Sha256> as hmac::Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use futures_util::FutureExt;

    use super::*;
    use crate::auth::revocation::RevokedTokens;
    use crate::clock::FakeClock;

    const DAY: Duration = Duration::from_secs(86_400);
    const START: u64 = 1_800_000_000;

    struct Fixture {
        clock: FakeClock,
        jwt: JwtAuth,
        store: Arc<MemoryRefreshStore>,
        revoked: Arc<RevokedTokens>,
    }

    fn fixture(store: MemoryRefreshStore) -> Fixture {
        fixture_with(store, RevokedTokens::new())
    }

    fn fixture_with(store: MemoryRefreshStore, revoked: RevokedTokens) -> Fixture {
        let clock = FakeClock::new();
        clock.set(START * 1_000_000_000);
        let revoked = Arc::new(revoked);
        let jwt = JwtAuth::hs256(vec![7u8; 32])
            .issuer("i")
            .audience("a")
            .clock(Arc::new(clock.clone()))
            .revocation(revoked.clone())
            .build()
            .unwrap();
        Fixture {
            clock,
            jwt,
            store: Arc::new(store),
            revoked,
        }
    }

    impl Fixture {
        fn service(&self, accounts: impl AccountCheck) -> TokenService {
            TokenService::new(self.jwt.clone(), self.store.clone(), Arc::new(accounts))
        }

        fn verifies(&self, access: &str) -> bool {
            self.jwt.verify(access).now_or_never().unwrap().is_ok()
        }
    }

    fn everyone(session: &SessionInfo) -> AccountStatus {
        AccountStatus::Active(AccessGrant::new(&session.subject))
    }

    fn run<T>(f: impl Future<Output = T>) -> T {
        f.now_or_never().expect("in-memory stores answer at once")
    }

    fn status(err: &ApiError) -> u16 {
        err.problem().status()
    }

    fn retry_after(err: &ApiError) -> Option<String> {
        err.headers()
            .find(|(name, _)| *name == RETRY_AFTER)
            .map(|(_, v)| v.to_str().unwrap().to_owned())
    }

    #[test]
    fn refusals_end_the_session_and_its_access_tokens() {
        let f = fixture(MemoryRefreshStore::new());
        let disabled = Arc::new(AtomicBool::new(false));
        let version = Arc::new(AtomicU64::new(1));
        let (d, v) = (disabled.clone(), version.clone());
        let tokens = f.service(move |s: &SessionInfo| {
            if s.subject == "gone" {
                AccountStatus::Gone
            } else if d.load(Ordering::SeqCst) {
                AccountStatus::Disabled
            } else if s.credentials_version != v.load(Ordering::SeqCst) {
                AccountStatus::CredentialsChanged
            } else {
                everyone(s)
            }
        });
        let cases: [(&str, &dyn Fn()); 3] = [
            ("gone", &|| {}),
            ("alice", &|| disabled.store(true, Ordering::SeqCst)),
            ("bob", &|| {
                disabled.store(false, Ordering::SeqCst);
                version.store(2, Ordering::SeqCst);
            }),
        ];
        for (user, change) in cases {
            let pair = run(tokens.login_with_version(AccessGrant::new(user), 1)).unwrap();
            change();
            let err = run(tokens.refresh(&pair.refresh_token)).unwrap_err();
            assert_eq!(status(&err), 401, "{user}");
            assert!(f.store.is_empty(), "{user}: the session ended");
            assert!(
                !f.verifies(&pair.access_token),
                "{user}: so did its access token"
            );
        }
        // A session started at the new version goes on.
        let pair = run(tokens.login_with_version(AccessGrant::new("bob"), 2)).unwrap();
        assert!(run(tokens.refresh(&pair.refresh_token)).is_ok());
    }

    #[test]
    fn a_refresh_carries_the_current_grant() {
        let f = fixture(MemoryRefreshStore::new());
        let roles = Arc::new(Mutex::new(vec!["admin"]));
        let r = roles.clone();
        let tokens = f.service(move |_: &SessionInfo| {
            // The subject of the returned grant is ignored.
            AccountStatus::Active(AccessGrant::new("someone-else").roles(r.lock().unwrap().clone()))
        });
        let pair = run(tokens.login(AccessGrant::new("ada").roles(["admin"]))).unwrap();
        *roles.lock().unwrap() = vec!["user"];
        let next = run(tokens.refresh(&pair.refresh_token)).unwrap();
        let principal = run(f.jwt.verify(&next.access_token)).unwrap();
        assert_eq!(principal.subject, "ada");
        assert_eq!(principal.roles, ["user"]);
        assert_eq!(
            principal.session_id,
            run(f.jwt.verify(&pair.access_token)).unwrap().session_id
        );
    }

    #[test]
    fn the_absolute_lifetime_caps_every_refresh() {
        let f = fixture(MemoryRefreshStore::new());
        let tokens = f.service(everyone);
        let mut pair = run(tokens.login(AccessGrant::new("alice"))).unwrap();
        // Refreshed every 10 days, within the 14-day idle lifetime...
        for _ in 0..2 {
            f.clock.advance(10 * DAY);
            pair = run(tokens.refresh(&pair.refresh_token)).unwrap();
        }
        f.clock.advance(9 * DAY);
        pair = run(tokens.refresh(&pair.refresh_token)).unwrap();
        // ...the session still ends 30 days after the login: the day-29 refresh did not
        // extend it.
        f.clock.advance(DAY - Duration::from_secs(1));
        let last = run(tokens.refresh(&pair.refresh_token)).unwrap();
        f.clock.advance(Duration::from_secs(1));
        let err = run(tokens.refresh(&last.refresh_token)).unwrap_err();
        assert_eq!(status(&err), 401);

        // The idle lifetime: 14 days without a refresh.
        let pair = run(tokens.login(AccessGrant::new("bob"))).unwrap();
        f.clock.advance(14 * DAY);
        assert_eq!(
            status(&run(tokens.refresh(&pair.refresh_token)).unwrap_err()),
            401
        );

        // Both are configurable.
        let tokens = tokens
            .idle_lifetime(Duration::from_secs(60))
            .absolute_lifetime(Duration::from_secs(90));
        let pair = run(tokens.login(AccessGrant::new("carol"))).unwrap();
        f.clock.advance(Duration::from_secs(50));
        let pair = run(tokens.refresh(&pair.refresh_token)).unwrap();
        f.clock.advance(Duration::from_secs(40));
        assert!(run(tokens.refresh(&pair.refresh_token)).is_err());
    }

    #[test]
    fn revoke_subject_ends_every_session_of_the_subject() {
        let f = fixture(MemoryRefreshStore::new());
        let tokens = f.service(everyone);
        let alice: Vec<TokenPair> = (0..3)
            .map(|_| run(tokens.login(AccessGrant::new("alice"))).unwrap())
            .collect();
        let bob = run(tokens.login(AccessGrant::new("bob"))).unwrap();
        assert_eq!(run(tokens.revoke_subject("alice")).unwrap(), 3);
        for pair in &alice {
            assert!(!f.verifies(&pair.access_token));
            assert_eq!(
                status(&run(tokens.refresh(&pair.refresh_token)).unwrap_err()),
                401
            );
        }
        assert_eq!(f.store.len(), 1);
        assert!(f.verifies(&bob.access_token));
        assert!(run(tokens.refresh(&bob.refresh_token)).is_ok());
        // A login after the revocation's second works.
        f.clock.advance(Duration::from_secs(1));
        let again = run(tokens.login(AccessGrant::new("alice"))).unwrap();
        assert!(f.verifies(&again.access_token));
    }

    #[test]
    fn logout_ends_one_session_and_every_access_token_of_it() {
        let f = fixture(MemoryRefreshStore::new());
        let tokens = f.service(everyone);
        let first = run(tokens.login(AccessGrant::new("alice"))).unwrap();
        let second = run(tokens.refresh(&first.refresh_token)).unwrap();
        let other = run(tokens.login(AccessGrant::new("alice"))).unwrap();
        let principal = run(f.jwt.verify(&second.access_token)).unwrap();
        run(tokens.logout(&principal)).unwrap();
        assert!(!f.verifies(&first.access_token));
        assert!(!f.verifies(&second.access_token));
        assert!(run(tokens.refresh(&second.refresh_token)).is_err());
        assert!(f.verifies(&other.access_token));
        assert!(run(tokens.refresh(&other.refresh_token)).is_ok());

        // A principal naming someone else's session changes nothing.
        let bob = run(tokens.login(AccessGrant::new("bob"))).unwrap();
        let mut forged = run(f.jwt.verify(&bob.access_token)).unwrap();
        forged.subject = "mallory".into();
        run(tokens.logout(&forged)).unwrap();
        assert!(f.verifies(&bob.access_token));
        assert!(run(tokens.refresh(&bob.refresh_token)).is_ok());

        // A token outside any session is revoked by its id.
        let plain = f.jwt.issue(&AccessGrant::new("carol")).unwrap();
        run(tokens.logout(&run(f.jwt.verify(&plain)).unwrap())).unwrap();
        assert!(!f.verifies(&plain));
    }

    #[test]
    fn a_logout_the_revocation_store_refuses_changes_nothing_and_can_be_retried() {
        let f = fixture_with(
            MemoryRefreshStore::new(),
            RevokedTokens::new().max_entries(1),
        );
        let tokens = f.service(everyone);
        let first = run(tokens.login(AccessGrant::new("alice"))).unwrap();
        let second = run(tokens.login(AccessGrant::new("alice"))).unwrap();
        run(tokens.logout(&run(f.jwt.verify(&first.access_token)).unwrap())).unwrap();
        // The revocation store is full: the second logout is a 503, and the session is
        // exactly as it was (not a spent refresh token beside a live access token).
        let principal = run(f.jwt.verify(&second.access_token)).unwrap();
        assert_eq!(status(&run(tokens.logout(&principal)).unwrap_err()), 503);
        assert!(f.verifies(&second.access_token));
        // Once the first revocation has expired there is room: the retry, with a fresh
        // access token of the same session, ends it.
        f.clock.advance(Duration::from_secs(20 * 60));
        let second = run(tokens.refresh(&second.refresh_token)).unwrap();
        let principal = run(f.jwt.verify(&second.access_token)).unwrap();
        run(tokens.logout(&principal)).unwrap();
        assert!(!f.verifies(&second.access_token));
        assert!(run(tokens.refresh(&second.refresh_token)).is_err());
    }

    #[test]
    fn a_full_store_refuses_logins_with_a_503_and_refresh_still_works() {
        let f = fixture(MemoryRefreshStore::new().max_sessions(2));
        let tokens = f.service(everyone);
        let a = run(tokens.login(AccessGrant::new("alice"))).unwrap();
        let b = run(tokens.login(AccessGrant::new("bob"))).unwrap();
        let err = run(tokens.login(AccessGrant::new("carol"))).unwrap_err();
        assert_eq!(status(&err), 503);
        assert_eq!(retry_after(&err).as_deref(), Some("30"));
        // Refreshing needs no room: the session's record is updated in place.
        let a2 = run(tokens.refresh(&a.refresh_token)).unwrap();
        let a3 = run(tokens.refresh(&a2.refresh_token)).unwrap();
        // Room is made by a logout; then the login works.
        run(tokens.logout(&run(f.jwt.verify(&b.access_token)).unwrap())).unwrap();
        assert!(run(tokens.login(AccessGrant::new("carol"))).is_ok());
        assert!(run(tokens.refresh(&a3.refresh_token)).is_ok());
    }

    #[test]
    fn an_account_check_that_cannot_answer_spends_nothing() {
        struct Flaky(AtomicBool);
        impl AccountCheck for Flaky {
            fn check(
                &self,
                session: SessionInfo,
            ) -> StoreFuture<'_, Result<AccountStatus, StoreError>> {
                if self.0.swap(false, Ordering::SeqCst) {
                    StoreFuture::ready(Err(StoreError::Backend("database down".into())))
                } else {
                    // As a network check would: a pending future.
                    StoreFuture::Pending(Box::pin(async move { Ok(everyone(&session)) }))
                }
            }
        }
        let f = fixture(MemoryRefreshStore::new());
        let tokens = f.service(Flaky(AtomicBool::new(true)));
        let pair = run(tokens.login(AccessGrant::new("alice"))).unwrap();
        let err = run(tokens.refresh(&pair.refresh_token)).unwrap_err();
        assert_eq!(status(&err), 503);
        assert_eq!(retry_after(&err).as_deref(), Some("1"));
        // The same token still works: nothing was spent.
        let next = run(tokens.refresh(&pair.refresh_token)).unwrap();
        assert!(run(tokens.refresh(&next.refresh_token)).is_ok());
    }

    #[test]
    fn long_lived_sessions_rotating_many_times_do_not_fill_the_store() {
        // Room for 600 sessions: 500 always-on sessions rotating every 10 minutes for
        // 200 minutes would have needed 10,500 records at one per rotation.
        let f = fixture(MemoryRefreshStore::new().max_sessions(600));
        let tokens = f.service(everyone);
        let mut refresh: Vec<String> = (0..500)
            .map(|i| {
                run(tokens.login(AccessGrant::new(format!("user{i}"))))
                    .unwrap()
                    .refresh_token
            })
            .collect();
        for _ in 0..20 {
            f.clock.advance(Duration::from_secs(600));
            for token in &mut refresh {
                *token = run(tokens.refresh(token)).unwrap().refresh_token;
            }
        }
        assert_eq!(f.store.len(), 500);
        // And new logins still fit.
        assert!(run(tokens.login(AccessGrant::new("newcomer"))).is_ok());
    }

    #[test]
    fn an_older_token_ends_the_session_but_a_forged_one_does_not() {
        let f = fixture(MemoryRefreshStore::new());
        let tokens = f.service(everyone);
        let first = run(tokens.login(AccessGrant::new("alice"))).unwrap();
        let second = run(tokens.refresh(&first.refresh_token)).unwrap();
        let sid: SessionId = run(f.jwt.verify(&second.access_token))
            .unwrap()
            .session_id
            .unwrap()
            .parse()
            .unwrap();
        let other_key = f.service(everyone).refresh_key([9u8; 32]).unwrap();
        let mut bad_tag = tokens.mint(sid, 0).into_bytes();
        let last = bad_tag.len() - 2;
        bad_tag[last] = if bad_tag[last] == b'A' { b'B' } else { b'A' };
        let forged = [
            // Naming the session, at an older generation, under another key.
            other_key.mint(sid, 0),
            // The right layout with a broken tag.
            String::from_utf8(bad_tag).unwrap(),
            // Garbage of the right length, and of any other.
            "A".repeat(TOKEN_CHARS),
            "not a token".to_owned(),
            String::new(),
        ];
        for token in &forged {
            assert_eq!(
                status(&run(tokens.refresh(token)).unwrap_err()),
                401,
                "{token}"
            );
        }
        // None of them touched the session.
        assert!(f.verifies(&second.access_token));
        let third = run(tokens.refresh(&second.refresh_token)).unwrap();

        // A genuine older token of the session: reuse. The session ends, its newest
        // refresh token and its access tokens with it.
        assert_eq!(
            status(&run(tokens.refresh(&first.refresh_token)).unwrap_err()),
            401
        );
        assert_eq!(
            status(&run(tokens.refresh(&third.refresh_token)).unwrap_err()),
            401
        );
        assert!(!f.verifies(&third.access_token));
        assert!(f.store.is_empty());
        assert_eq!(f.revoked.len(), 1, "one session revocation");
    }

    #[test]
    fn a_shared_key_lets_instances_share_a_store() {
        let f = fixture(MemoryRefreshStore::new());
        let key = [3u8; 32];
        let a = f.service(everyone).refresh_key(key).unwrap();
        let b = f.service(everyone).refresh_key(key).unwrap();
        let pair = run(a.login(AccessGrant::new("alice"))).unwrap();
        assert!(run(b.refresh(&pair.refresh_token)).is_ok());
        assert!(matches!(
            f.service(everyone).refresh_key([1u8; 31]),
            Err(AuthConfigError::WeakHmacKey { bytes: 31 })
        ));
    }

    #[test]
    fn expired_sessions_are_dropped_by_later_writes_and_subjects_are_capped() {
        let f = fixture(MemoryRefreshStore::new().max_sessions_per_subject(2));
        let tokens = f.service(everyone).idle_lifetime(Duration::from_secs(100));
        for i in 0..10 {
            run(tokens.login(AccessGrant::new(format!("u{i}")))).unwrap();
        }
        assert_eq!(f.store.len(), 10);
        f.clock.advance(Duration::from_secs(100));
        run(tokens.login(AccessGrant::new("late"))).unwrap();
        assert_eq!(f.store.len(), 1, "expired sessions were dropped on the way");

        // A third session of one subject ends its oldest.
        let one = run(tokens.login(AccessGrant::new("many"))).unwrap();
        let two = run(tokens.login(AccessGrant::new("many"))).unwrap();
        let three = run(tokens.login(AccessGrant::new("many"))).unwrap();
        assert!(run(tokens.refresh(&one.refresh_token)).is_err());
        assert!(run(tokens.refresh(&two.refresh_token)).is_ok());
        assert!(run(tokens.refresh(&three.refresh_token)).is_ok());
        assert_eq!(f.store.len(), 3);
    }

    #[test]
    fn session_ids_round_trip() {
        let id = SessionId::random();
        assert_eq!(id.to_string().parse::<SessionId>(), Ok(id));
        assert!("short".parse::<SessionId>().is_err());
        assert!("A".repeat(23).parse::<SessionId>().is_err());
        assert!("!".repeat(22).parse::<SessionId>().is_err());
        assert_eq!(TOKEN_CHARS, 76);
    }
}
