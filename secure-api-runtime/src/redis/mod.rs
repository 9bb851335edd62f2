//! Every store on Redis, so that several instances of an app act as one (feature `redis`).
//!
//! One [`RedisBackend`] holds one multiplexed, auto-reconnecting connection (a
//! [`ConnectionManager`], or a Redis Cluster connection)
//! shared by every worker and every store; no request opens a connection. It yields an
//! implementation of every store trait:
//!
//! | store | trait | type |
//! | --- | --- | --- |
//! | rate limits (GCRA and the strict sliding window) | [`RateLimitStore`](crate::throttle::RateLimitStore) | [`RedisRateLimitStore`] |
//! | idempotency keys | [`IdempotencyStore`](crate::idempotency::IdempotencyStore) | [`RedisIdempotencyStore`] |
//! | refresh sessions (refresh-token families) | [`RefreshStore`](crate::auth::refresh::RefreshStore) | [`RedisRefreshStore`] |
//! | access-token revocation (`jti`, session, subject) | [`Revocation`](crate::auth::revocation::Revocation) | [`RedisRevocation`] |
//!
//! ```no_run
//! use std::sync::Arc;
//! use secure_api_runtime::SecureApi;
//! use secure_api_runtime::auth::jwt::{AccessGrant, JwtAuth};
//! use secure_api_runtime::auth::refresh::{AccountStatus, SessionInfo, TokenService};
//! use secure_api_runtime::redis::RedisBackend;
//!
//! # async fn run(jwt_secret: Vec<u8>, refresh_key: [u8; 32], key_secret: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {
//! // Once, before `HttpServer::new`: every worker and every store share the connection.
//! let redis = RedisBackend::builder()
//!     .key_prefix("orders-api")
//!     .connect("redis://127.0.0.1:6379/")
//!     .await?;
//! let jwt = JwtAuth::hs256(jwt_secret)
//!     .issuer("https://auth.example")
//!     .audience("orders-api")
//!     .revocation(Arc::new(redis.revocation_store()))
//!     .build()?;
//! let accounts = |s: &SessionInfo| AccountStatus::Active(AccessGrant::new(&s.subject));
//! // Every instance shares the refresh-token key, so any of them can rotate any session.
//! let tokens = TokenService::new(jwt.clone(), Arc::new(redis.refresh_store()), Arc::new(accounts))
//!     .refresh_key(refresh_key)?;
//! // Every instance shares the key secret too, so that they derive the same rate-limit
//! // keys (required with a shared store: `build` refuses one without it).
//! let api = SecureApi::builder()
//!     .key_secret(key_secret)?
//!     .rate_limit_store(Arc::new(redis.rate_limit_store()))
//!     .idempotency_store(Arc::new(redis.idempotency_store()))
//!     .jwt(jwt)
//!     .build();
//! # let _ = (api, tokens); Ok(()) }
//! ```
//!
//! # Semantics
//!
//! Each store keeps the semantics of its in-memory counterpart (the same shared conformance
//! tests run against both), with these differences:
//! - **Time.** The rate limiter and the idempotency store read the Redis server's clock
//!   (`TIME` inside their scripts), so the clocks of the app's instances do not matter.
//!   Rate-limit arithmetic is in microseconds (Redis's clock resolution, and exact in Lua's
//!   numbers), with the GCRA emission interval rounded *up* to the microsecond, so rounding
//!   never admits more than the rate. Sessions and revocations take the caller's time (the
//!   `JwtAuth`'s clock), as their traits say, and become Redis TTLs relative to it.
//! - **Bounds.** Per-client and per-subject bounds are kept as in memory (idempotency
//!   quotas, sessions per subject). The global bounds of the in-memory stores (total keys and
//!   bytes) are Redis's own `maxmemory`: every key has a TTL, so Redis holds no stale state.
//!   Configure `maxmemory-policy noeviction`, so that a full Redis refuses writes (a 503 here)
//!   rather than silently evicting a revocation or an idempotency record.
//! - **Failures.** A timeout, a lost connection or an error reply is
//!   [`StoreError::Backend`] (a [`BackendError`] inside), which the endpoint answers with its
//!   fail-closed 503 and `Retry-After`, unless its rate limit was told to let requests
//!   through (`#[secure_endpoint(on_store_error = "allow")]`, or the app's
//!   [`on_limiter_error`](crate::api::SecureApiBuilder::on_limiter_error)); idempotency and
//!   authentication checks always fail closed. The connection reconnects in the background; service
//!   recovers when Redis is back, without restarting the app. Redis without persistence
//!   forgets every record when it restarts (limits reset, idempotency keys can run again):
//!   enable AOF persistence where replays must survive a Redis restart.
//!
//! # Keys
//!
//! Every key starts with the backend's [key prefix](RedisBackendBuilder::key_prefix)
//! (default `secure-api`), so that apps sharing one Redis never collide, and holds a hash tag
//! (`{...}`): what one script reads and writes together sits in one Redis Cluster slot. No
//! key name holds a client address, a principal, a token or an idempotency key in clear:
//! they are hashed first (only a session's record holds its subject and grant, as values).
//! Every key has a TTL, set just past the moment its state stops mattering.
//!
//! | key | type | holds | TTL |
//! | --- | --- | --- | --- |
//! | `<prefix>:rl:g:{<limit key>}` | string | GCRA theoretical arrival time, µs | until the bucket is full again |
//! | `<prefix>:rl:w:{<limit key>}` | list | sliding-window admission times, µs, oldest first | until the newest admission leaves the window |
//! | `<prefix>:idem:{<client>}:<scope>` | string | an idempotency claim or completion | the lease, then the replay TTL |
//! | `<prefix>:idem:{<client>}#live` | sorted set | the client's records, scored by expiry (ms) | the latest expiry |
//! | `<prefix>:idem:{<client>}#done` | sorted set | the client's completions, scored by completion time (µs) | the latest expiry |
//! | `<prefix>:idem:{<client>}#size` | hash | bytes of each stored response, and their total | the latest expiry |
//! | `<prefix>:rt:s:{<session id>}` | hash | one refresh session | until its idle end (never past its absolute end) |
//! | `<prefix>:rt:u:{<subject>}` | sorted set | a subject's session ids, scored by absolute end | the latest absolute end |
//! | `<prefix>:rv:t:{<jti>}` | string | token revocation: `0:until` (s) | until `until` has passed |
//! | `<prefix>:rv:s:{<sid>}` | string | session revocation: `0:until` (s) | until `until` has passed |
//! | `<prefix>:rv:u:{<subject>}` | string | subject revocation: `revoked_at:until` (s) | until `until` has passed |
//!
//! `<limit key>` is the hex of the already derived [`LimitKey`](crate::throttle::LimitKey),
//! a keyed hash of the policy (method, route, tier) and the client under the app's
//! [key secret](crate::api::SecureApiBuilder::key_secret), which every instance must share
//! (`build` refuses the Redis rate-limit store without one);
//! `<client>` and `<scope>` the hex of [`RecordKey`](crate::idempotency::RecordKey)'s
//! digests; `<session id>` the hex of a [`SessionId`](crate::auth::refresh::SessionId);
//! `<subject>`, `<jti>` and `<sid>` hex SHA-256 digests. Each store's documentation
//! describes its records and scripts.
//!
//! Redis 7.0 or later (tested on 7.0.15), a single node or a cluster. The scripts are
//! loaded on first use and run by `EVALSHA` (loaded again after a Redis restart).

mod idempotency;
mod limiter;
mod revocation;
mod sessions;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Cmd, ErrorKind, FromRedisValue, Pipeline, RedisFuture, ScriptInvocation, Value};
use sha2::{Digest as _, Sha256};

use crate::store::StoreError;

pub use ::redis::cluster::ClusterClient;
pub use ::redis::{Client, RedisError};
pub use idempotency::RedisIdempotencyStore;
pub use limiter::RedisRateLimitStore;
pub use revocation::RedisRevocation;
pub use sessions::RedisRefreshStore;

/// The default key prefix.
pub const DEFAULT_KEY_PREFIX: &str = "secure-api";
/// The default timeout of one Redis call: 50 ms.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);
/// The default timeout of one attempt to (re)connect: 1 s.
pub const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);
/// The default longest pause between two reconnection attempts: 1 s.
pub const DEFAULT_MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// The longest key prefix accepted.
pub const MAX_KEY_PREFIX_LEN: usize = 64;

/// Why a Redis store could not answer: inside [`StoreError::Backend`], for logs and for
/// callers that want to tell a timeout from a failure (`downcast_ref::<BackendError>()`).
#[derive(Debug)]
pub enum BackendError {
    /// Redis did not answer within the backend's [timeout](RedisBackendBuilder::timeout)
    /// (slow, overloaded, or reconnecting).
    Timeout(Duration),
    /// The connection failed or Redis answered with an error.
    Redis(RedisError),
    /// Redis answered something no script of this crate returns, or a record that does not
    /// decode: another program wrote under this backend's key prefix.
    Corrupt(&'static str),
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendError::Timeout(t) => write!(f, "redis did not answer within {t:?}"),
            BackendError::Redis(e) => write!(f, "redis failed: {e}"),
            BackendError::Corrupt(what) => write!(f, "unexpected data in redis: {what}"),
        }
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BackendError::Redis(e) => Some(e),
            _ => None,
        }
    }
}

impl BackendError {
    /// Whether this is a timeout (of this crate, or of the connection's own response
    /// timer).
    pub fn is_timeout(&self) -> bool {
        match self {
            BackendError::Timeout(_) => true,
            BackendError::Redis(e) => e.is_timeout(),
            BackendError::Corrupt(_) => false,
        }
    }
}

fn backend(e: BackendError) -> StoreError {
    StoreError::Backend(Box::new(e))
}

pub(crate) fn corrupt(what: &'static str) -> StoreError {
    backend(BackendError::Corrupt(what))
}

/// The one connection of a backend: a single node or a cluster. Both multiplex every
/// request over their connections and reconnect by themselves; cloning is cheap.
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

struct Inner {
    connection: Connection,
    prefix: String,
    timeout: Duration,
}

/// A connection to Redis (one node or a cluster) and the settings every Redis store shares:
/// the key prefix and the per-call timeout. Cheap to clone; build it once, outside
/// `HttpServer::new`, and take the stores from it.
///
/// Connecting needs a running Tokio runtime (an actix-web `main`, or `actix_rt::System`):
/// the connection's driver runs as a task on it, and every actix worker shares it.
#[derive(Clone)]
pub struct RedisBackend {
    inner: Arc<Inner>,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("key_prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .field(
                "cluster",
                &matches!(self.inner.connection, Connection::Cluster(_)),
            )
            .finish()
    }
}

/// Configures and connects a [`RedisBackend`].
///
/// ```no_run
/// use std::time::Duration;
/// use secure_api_runtime::redis::RedisBackend;
///
/// # async fn run() -> Result<(), secure_api_runtime::redis::RedisError> {
/// let redis = RedisBackend::builder()
///     .key_prefix("billing")
///     .timeout(Duration::from_millis(20))
///     .connect("redis://10.0.0.5:6379/")
///     .await?;
/// # let _ = redis; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedisBackendBuilder {
    prefix: String,
    timeout: Duration,
    connection_timeout: Duration,
    max_reconnect_delay: Duration,
}

impl Default for RedisBackendBuilder {
    fn default() -> Self {
        RedisBackendBuilder {
            prefix: DEFAULT_KEY_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
            max_reconnect_delay: DEFAULT_MAX_RECONNECT_DELAY,
        }
    }
}

impl RedisBackendBuilder {
    /// The prefix of every key (default [`DEFAULT_KEY_PREFIX`]): give each app sharing a
    /// Redis its own. 1 to [`MAX_KEY_PREFIX_LEN`] printable ASCII characters without `{`,
    /// `}` or spaces (braces would change the keys' Redis Cluster hash tags); checked by
    /// `connect`.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long one Redis call may take (default 50 ms). A call that takes longer fails
    /// with [`BackendError::Timeout`] (a 503 to the request), so a slow or unreachable Redis
    /// delays requests by at most this much per call instead of hanging them. A request
    /// makes one call per store it uses (a login or a logout, two or three).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long one attempt to (re)connect may take (default 1 s). Reconnection runs in
    /// the background; requests meanwhile fail after their own [`timeout`](Self::timeout).
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The longest pause between two attempts to reconnect a lost connection (default 1 s;
    /// attempts back off exponentially from 10 ms up to it): at most how long service takes
    /// to come back after Redis does.
    pub fn max_reconnect_delay(mut self, delay: Duration) -> Self {
        self.max_reconnect_delay = delay.max(Duration::from_millis(10));
        self
    }

    fn check_prefix(&self) -> Result<(), RedisError> {
        let p = &self.prefix;
        if p.is_empty()
            || p.len() > MAX_KEY_PREFIX_LEN
            || !p
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}')
        {
            return Err(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "the key prefix must be 1 to 64 printable ASCII characters without braces or spaces",
            )));
        }
        Ok(())
    }

    /// Connects to the Redis at `url` (`redis://[user:password@]host:port/[db]`, or
    /// `rediss://` where the `redis` crate's TLS features are enabled). Fails when the
    /// prefix is invalid or the first connection cannot be made.
    pub async fn connect(self, url: &str) -> Result<RedisBackend, RedisError> {
        self.check_prefix()?;
        self.connect_client(Client::open(url)?).await
    }

    /// Connects with a configured [`Client`].
    pub async fn connect_client(self, client: Client) -> Result<RedisBackend, RedisError> {
        self.check_prefix()?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(self.timeout))
            .set_connection_timeout(Some(self.connection_timeout))
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(self.max_reconnect_delay);
        let manager = ConnectionManager::new_with_config(client, config).await?;
        Ok(self.finish(Connection::Single(manager)))
    }

    /// Connects to a Redis Cluster through any of its `nodes` (`redis://host:port/` URLs).
    pub async fn connect_cluster<I, S>(self, nodes: I) -> Result<RedisBackend, RedisError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.check_prefix()?;
        let nodes: Vec<String> = nodes.into_iter().map(|n| n.as_ref().to_owned()).collect();
        let client = ClusterClient::builder(nodes)
            .connection_timeout(self.connection_timeout)
            .response_timeout(self.timeout)
            .build()?;
        self.connect_cluster_client(client).await
    }

    /// Connects to a Redis Cluster with a configured [`ClusterClient`].
    pub async fn connect_cluster_client(
        self,
        client: ClusterClient,
    ) -> Result<RedisBackend, RedisError> {
        self.check_prefix()?;
        let connection = client.get_async_connection().await?;
        Ok(self.finish(Connection::Cluster(connection)))
    }

    fn finish(self, connection: Connection) -> RedisBackend {
        RedisBackend {
            inner: Arc::new(Inner {
                connection,
                prefix: self.prefix,
                timeout: self.timeout,
            }),
        }
    }
}

impl RedisBackend {
    /// A builder with the defaults.
    pub fn builder() -> RedisBackendBuilder {
        RedisBackendBuilder::default()
    }

    /// Connects to the Redis at `url` with the defaults.
    pub async fn connect(url: &str) -> Result<RedisBackend, RedisError> {
        RedisBackend::builder().connect(url).await
    }

    /// The prefix of every key.
    pub fn key_prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The timeout of one call.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// Whether this backend talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner.connection, Connection::Cluster(_))
    }

    /// The rate-limit store (GCRA and the strict sliding window, one script run per
    /// decision).
    pub fn rate_limit_store(&self) -> RedisRateLimitStore {
        RedisRateLimitStore::new(self.clone())
    }

    /// The idempotency store, with the default per-client quotas.
    pub fn idempotency_store(&self) -> RedisIdempotencyStore {
        RedisIdempotencyStore::new(self.clone())
    }

    /// The refresh-session store, with the default bound on sessions per subject.
    pub fn refresh_store(&self) -> RedisRefreshStore {
        RedisRefreshStore::new(self.clone())
    }

    /// The access-token revocation store.
    pub fn revocation_store(&self) -> RedisRevocation {
        RedisRevocation::new(self.clone())
    }

    /// Checks that Redis answers (`PING`) within the timeout, for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let reply: String = self.query(::redis::cmd("PING")).await?;
        if reply == "PONG" {
            Ok(())
        } else {
            Err(corrupt("PING was not answered with PONG"))
        }
    }

    /// `<prefix>:<kind>:{<tag>}`.
    pub(crate) fn key(&self, kind: &str, tag: &str) -> String {
        let mut key = String::with_capacity(self.inner.prefix.len() + kind.len() + tag.len() + 4);
        key.push_str(&self.inner.prefix);
        key.push(':');
        key.push_str(kind);
        key.push_str(":{");
        key.push_str(tag);
        key.push('}');
        key
    }

    /// Runs `call` on the connection within the timeout.
    async fn within<T, F, Fut>(&self, call: F) -> Result<T, StoreError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let connection = self.inner.connection.clone();
        match tokio::time::timeout(self.inner.timeout, call(connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(backend(BackendError::Redis(e))),
            Err(_) => Err(backend(BackendError::Timeout(self.inner.timeout))),
        }
    }

    /// Runs a script (`EVALSHA`, loading it on `NOSCRIPT`) within the timeout.
    pub(crate) async fn script<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.within(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await
    }

    /// Runs a command within the timeout.
    pub(crate) async fn query<T: FromRedisValue>(&self, cmd: Cmd) -> Result<T, StoreError> {
        self.within(|mut c| async move { cmd.query_async(&mut c).await })
            .await
    }
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// Hex SHA-256 of a domain and a value: the tag of a key named by a client-controlled
/// string, bounded in length and free of braces.
pub(crate) fn hashed(domain: &str, value: &str) -> String {
    let mut h = Sha256::new();
    h.update((domain.len() as u64).to_le_bytes());
    h.update(domain.as_bytes());
    h.update(value.as_bytes());
    hex(&h.finalize())
}

/// An integer reply as `u64` (negative numbers are corrupt).
pub(crate) fn int(value: &Value) -> Result<u64, StoreError> {
    match value {
        Value::Int(n) => u64::try_from(*n).map_err(|_| corrupt("a negative number")),
        _ => Err(corrupt("a reply that is not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_hashes() {
        assert_eq!(hex(&[0, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hashed("a", "b").len(), 64);
        assert_ne!(hashed("a", "b"), hashed("ab", ""));
    }

    #[test]
    fn prefixes_are_checked() {
        for bad in ["", "a{b", "a}b", "a b", &"x".repeat(65)] {
            assert!(
                RedisBackend::builder()
                    .key_prefix(bad)
                    .check_prefix()
                    .is_err(),
                "{bad:?}"
            );
        }
        assert!(
            RedisBackend::builder()
                .key_prefix("app-1:v2")
                .check_prefix()
                .is_ok()
        );
    }
}
