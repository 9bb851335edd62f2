//! [`SecureApi`]: the state an app's endpoints share (rate-limit store, client-IP rules,
//! defaults), built once, outside `HttpServer::new`, so that every worker uses the same
//! stores.

use std::sync::{Arc, OnceLock};

use actix_web::HttpMessage;
use actix_web::HttpRequest;

use crate::auth::jwt::JwtAuth;
use crate::client::{ClientIpConfig, ForwardedHeader, IpNet};
use crate::client_key::KeyDeriver;
use crate::clock::Clock;
use crate::idempotency::IdempotencyStore;
use crate::idempotency::memory::MemoryIdempotencyStore;
use crate::inventory::{EndpointInfo, Finding, Inventory};
use crate::layer::{SecureLayer, SecurityHeaders};
use crate::store::OnStoreError;
use crate::telemetry::Telemetry;
use crate::telemetry::audit::{AuditSink, LogSink};
use crate::telemetry::stores::{self, StoreMetrics};
use crate::throttle::memory::{DEFAULT_MAX_KEYS, MemoryStore, UntrackedClients};
use crate::throttle::{Policy, Rate, RateLimitStore};

/// The default per-client rate of endpoints that do not set `rate`.
pub const DEFAULT_RATE: Rate = Rate::per_second(100);

/// The shared state of a secure-api app.
///
/// Build it once and install its layer in every worker's `App`:
///
/// ```no_run
/// use actix_web::{App, HttpServer};
/// use secure_api_runtime::prelude::*;
///
/// # async fn run() -> std::io::Result<()> {
/// let secure = SecureApi::builder()
///     .trust_proxy("10.0.0.0/8".parse().unwrap())
///     .default_rate("50/s".parse().unwrap())
///     .build();
/// HttpServer::new(move || App::new().wrap(secure.layer()))
///     .bind("127.0.0.1:8080")?
///     .run()
///     .await
/// # }
/// ```
///
/// Endpoints of an app without a `SecureApi` layer (`SecureLayer::default()`) use one
/// process-wide default state, so they are still limited, and limited across all workers.
#[derive(Clone)]
pub struct SecureApi {
    inner: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) limiter: Arc<dyn RateLimitStore>,
    pub(crate) keys: KeyDeriver,
    pub(crate) client_ip: ClientIpConfig,
    /// The policy of endpoints without `rate`, built once from the default rate and burst.
    pub(crate) default_policy: Policy,
    pub(crate) headers: SecurityHeaders,
    pub(crate) idempotency: Arc<dyn IdempotencyStore>,
    pub(crate) idempotency_lease_ms: u64,
    pub(crate) max_stored_response: usize,
    pub(crate) jwt: Option<JwtAuth>,
    /// What rate limits do when their store fails, for endpoints without `on_store_error`.
    pub(crate) on_limiter_error: OnStoreError,
    /// The audit sink and the metrics' handles.
    pub(crate) telemetry: Telemetry,
    /// The store gauges and their background refresh, when metrics are on (the stores
    /// above are then in timing decorators).
    pub(crate) store_metrics: Option<StoreMetrics>,
}

/// The shortest key secret accepted by [`SecureApiBuilder::key_secret`]: 32 bytes (256
/// bits).
pub const MIN_KEY_SECRET_LEN: usize = 32;

/// A key secret shorter than [`MIN_KEY_SECRET_LEN`] bytes.
///
/// ```
/// use secure_api_runtime::SecureApi;
/// let err = SecureApi::builder().key_secret("too short").unwrap_err();
/// assert_eq!(err.len(), 9);
/// assert_eq!(
///     err.to_string(),
///     "the key secret has 9 bytes; at least 32 random bytes are required"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySecretError {
    len: usize,
}

impl KeySecretError {
    /// The length in bytes of the refused secret.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the refused secret was empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Display for KeySecretError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the key secret has {} bytes; at least {MIN_KEY_SECRET_LEN} random bytes are required",
            self.len
        )
    }
}

impl std::error::Error for KeySecretError {}

/// A [`SecureApiBuilder`] configuration that must not start, reported by
/// [`SecureApiBuilder::try_build`] (and as the panic of [`SecureApiBuilder::build`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// The rate-limit store is shared by several processes (Redis), but no
    /// [key secret](SecureApiBuilder::key_secret) was configured: each process would
    /// derive its own keys, and the instances would not share their limits.
    SharedStoreWithoutKeySecret,
    /// [`strict_inventory`](SecureApiBuilder::strict_inventory) is on, and these endpoints
    /// fail the inventory's review: each with why (an endpoint flagged for two reasons is
    /// listed twice). The list judges every endpoint linked into the program.
    UnreviewedEndpoints(Vec<Finding>),
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::SharedStoreWithoutKeySecret => f.write_str(
                "the rate-limit store is shared between processes, but no key secret is \
                 configured: set the same `SecureApiBuilder::key_secret` (at least 32 random \
                 bytes) on every instance",
            ),
            BuildError::UnreviewedEndpoints(findings) => {
                write!(
                    f,
                    "strict_inventory: {} finding(s) in the endpoint inventory:",
                    findings.len()
                )?;
                for finding in findings {
                    write!(f, "\n  - {finding}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for BuildError {}

/// Default lease of an idempotency claim: how long a claim survives without renewal. A
/// running request renews it every third of the lease, so this is how long a key stays
/// blocked after its process crashed, not a limit on how long a handler may run.
pub const DEFAULT_IDEMPOTENCY_LEASE_MS: u64 = 60_000;
/// Default largest response stored for idempotent replay: 1 MiB.
pub const DEFAULT_MAX_STORED_RESPONSE: usize = 1 << 20;
/// Default interval of the store gauges' background refresh (see
/// [`SecureApiBuilder::metrics_interval`]): 10 s.
pub const DEFAULT_METRICS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

impl std::fmt::Debug for SecureApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureApi")
            .field("client_ip", &self.inner.client_ip)
            .field("default_policy", &self.inner.default_policy)
            .finish_non_exhaustive()
    }
}

impl SecureApi {
    /// A builder with the defaults.
    pub fn builder() -> SecureApiBuilder {
        SecureApiBuilder::default()
    }

    /// The middleware that installs this state for every request, along with the problem
    /// conversion and the security headers (see [`SecureLayer`]).
    pub fn layer(&self) -> SecureLayer {
        SecureLayer::for_api(self.clone())
    }

    /// The process-wide default state, used by apps without a `SecureApi` layer.
    pub fn global() -> &'static SecureApi {
        static GLOBAL: OnceLock<SecureApi> = OnceLock::new();
        // Built at an app's first request: no inventory in the log then.
        GLOBAL.get_or_init(|| SecureApi::builder().log_inventory(false).build())
    }

    /// The state installed for this request, else the process-wide default.
    pub fn of(req: &HttpRequest) -> SecureApi {
        match req.extensions().get::<RequestContext>() {
            Some(ctx) => ctx.api.clone(),
            None => SecureApi::global().clone(),
        }
    }

    /// A reference to this app that does not keep it alive.
    pub(crate) fn downgrade(&self) -> std::sync::Weak<Shared> {
        Arc::downgrade(&self.inner)
    }

    /// The app of `weak`, while it lives.
    pub(crate) fn upgrade(weak: &std::sync::Weak<Shared>) -> Option<SecureApi> {
        weak.upgrade().map(|inner| SecureApi { inner })
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.inner
    }

    /// The client-IP rules.
    pub fn client_ip(&self) -> &ClientIpConfig {
        &self.inner.client_ip
    }

    /// The endpoint inventory: every `#[secure_endpoint]` linked into the program, with its
    /// policies and this app's defaults (its default rate and store-failure policy; body
    /// limits from the default [`InputLimits`](crate::input::InputLimits), see
    /// [`Inventory::with_input_limits`]). See [`crate::inventory`].
    ///
    /// ```
    /// use secure_api_runtime::prelude::*;
    ///
    /// #[secure_endpoint(get("/doc/health"), public, rate = "unlimited")]
    /// async fn health() -> HttpResponse {
    ///     HttpResponse::Ok().finish()
    /// }
    ///
    /// let inventory = SecureApi::builder().build().inventory();
    /// let entry = inventory.endpoints().iter().find(|e| e.handler == "health").unwrap();
    /// assert_eq!(entry.rate.value, "unlimited");
    /// println!("{inventory}"); // the table
    /// ```
    pub fn inventory(&self) -> Inventory {
        Inventory::of(self)
    }

    /// Sets the store gauges ([`crate::telemetry::metrics`]: `secure_api_store_entries`,
    /// `secure_api_store_max_entries`, and for the in-memory idempotency store
    /// `secure_api_store_bytes` and `secure_api_store_max_bytes`) of every store of this app
    /// that reports its size: the rate-limit and idempotency stores, the revocation store of
    /// its [`JwtAuth`], and the session store of a
    /// [`TokenService`](crate::auth::refresh::TokenService) given this app with
    /// [`TokenService::telemetry`](crate::auth::refresh::TokenService::telemetry). Only the
    /// in-memory stores report their size, from counters they keep (no scan). Does nothing
    /// without [`metrics`](SecureApiBuilder::metrics).
    ///
    /// A background thread already calls it every
    /// [`metrics_interval`](SecureApiBuilder::metrics_interval); call it to set the gauges
    /// now, before an exporter renders them.
    ///
    /// ```
    /// use secure_api_runtime::SecureApi;
    ///
    /// let api = SecureApi::builder().metrics(true).build();
    /// api.record_store_gauges();
    /// ```
    pub fn record_store_gauges(&self) {
        if let Some(metrics) = &self.inner.store_metrics {
            metrics.record(&self.inner);
        }
    }

    /// The store metrics, when metrics are on.
    pub(crate) fn store_metrics(&self) -> Option<&StoreMetrics> {
        self.inner.store_metrics.as_ref()
    }

    /// [`inventory`](Self::inventory)'s endpoints, sorted by path then method.
    pub fn endpoints(&self) -> Vec<EndpointInfo> {
        self.inventory().into_endpoints()
    }

    /// Logs the inventory's table at info level (target `secure_api::inventory`), with
    /// the review's findings at warn level. [`SecureApiBuilder::build`] does it once per
    /// process on its own (see [`SecureApiBuilder::log_inventory`]); call this to log it
    /// again, e.g. after a change of the log's configuration.
    pub fn log_inventory(&self) {
        let inventory = self.inventory();
        log::info!(
            target: "secure_api::inventory",
            "{} endpoint(s):\n{inventory}",
            inventory.len()
        );
        let findings = inventory.findings();
        if !findings.is_empty() {
            let lines: Vec<String> = findings.iter().map(|f| format!("  - {f}")).collect();
            log::warn!(
                target: "secure_api::inventory",
                "{} finding(s) in the endpoint inventory:\n{}",
                findings.len(),
                lines.join("\n")
            );
        }
    }
}

/// Whether an app's inventory was logged in this process.
static INVENTORY_LOGGED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// What the layer leaves in a request's extensions for the endpoint: the app's state, and
/// room for the endpoint's input limits, so that one extension (one allocation) carries both.
pub(crate) struct RequestContext {
    pub(crate) api: SecureApi,
    /// Set by an endpoint with `max_body`, read by its extractors.
    pub(crate) limits: std::cell::Cell<Option<crate::input::InputLimits>>,
}

/// Configures a [`SecureApi`].
pub struct SecureApiBuilder {
    limiter: Option<Arc<dyn RateLimitStore>>,
    clock: Option<Arc<dyn Clock>>,
    client_ip: ClientIpConfig,
    default_rate: Rate,
    default_burst: Option<u32>,
    max_keys: usize,
    when_full: UntrackedClients,
    headers: SecurityHeaders,
    idempotency: Option<Arc<dyn IdempotencyStore>>,
    idempotency_lease_ms: u64,
    max_stored_response: usize,
    jwt: Option<JwtAuth>,
    keys: Option<KeyDeriver>,
    on_limiter_error: OnStoreError,
    strict_inventory: bool,
    log_inventory: bool,
    audit_sink: Option<Arc<dyn AuditSink>>,
    metrics: bool,
    metrics_interval: std::time::Duration,
}

impl std::fmt::Debug for SecureApiBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key secret.
        f.debug_struct("SecureApiBuilder")
            .field("client_ip", &self.client_ip)
            .field("default_rate", &self.default_rate)
            .field("key_secret", &self.keys.is_some())
            .field("on_limiter_error", &self.on_limiter_error)
            .field("strict_inventory", &self.strict_inventory)
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl Default for SecureApiBuilder {
    fn default() -> Self {
        SecureApiBuilder {
            limiter: None,
            clock: None,
            client_ip: ClientIpConfig::default(),
            default_rate: DEFAULT_RATE,
            default_burst: None,
            max_keys: DEFAULT_MAX_KEYS,
            when_full: UntrackedClients::default(),
            headers: SecurityHeaders::default(),
            idempotency: None,
            idempotency_lease_ms: DEFAULT_IDEMPOTENCY_LEASE_MS,
            max_stored_response: DEFAULT_MAX_STORED_RESPONSE,
            jwt: None,
            keys: None,
            on_limiter_error: OnStoreError::FailClosed,
            strict_inventory: false,
            log_inventory: true,
            audit_sink: None,
            metrics: false,
            metrics_interval: DEFAULT_METRICS_INTERVAL,
        }
    }
}

impl SecureApiBuilder {
    /// Trusts a reverse proxy (or a network of them): its forwarding header is believed when
    /// finding the client IP.
    pub fn trust_proxy(mut self, net: IpNet) -> Self {
        self.client_ip = self.client_ip.trust(net);
        self
    }

    /// Trusts every network of a comma-separated list (`"10.0.0.0/8, 192.168.0.1"`), as
    /// read from configuration. An entry that does not parse is an error, not skipped.
    ///
    /// ```
    /// use secure_api_runtime::SecureApi;
    /// assert!(SecureApi::builder().trust_proxies("10.0.0.0/8, ::1").is_ok());
    /// assert!(SecureApi::builder().trust_proxies("10.0.0.0/8, nonsense").is_err());
    /// ```
    pub fn trust_proxies(mut self, list: &str) -> Result<Self, crate::client::IpNetParseError> {
        for net in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            self = self.trust_proxy(net.parse()?);
        }
        Ok(self)
    }

    /// Which header the trusted proxies write (default `X-Forwarded-For`).
    pub fn forwarded_header(mut self, header: ForwardedHeader) -> Self {
        self.client_ip = self.client_ip.header(header);
        self
    }

    /// How many trusted proxy hops are walked at most (default 8).
    pub fn max_proxy_hops(mut self, hops: usize) -> Self {
        self.client_ip = self.client_ip.max_hops(hops);
        self
    }

    /// The prefix IPv6 clients are grouped by (default /64).
    pub fn ipv6_prefix(mut self, prefix: u8) -> Self {
        self.client_ip = self.client_ip.ipv6_prefix(prefix);
        self
    }

    /// The per-client rate of endpoints that do not set `rate` (default 100/s).
    pub fn default_rate(mut self, rate: Rate) -> Self {
        self.default_rate = rate;
        self
    }

    /// The burst of the default rate (default: the rate's count).
    pub fn default_burst(mut self, burst: u32) -> Self {
        self.default_burst = Some(burst.max(1));
        self
    }

    /// The most clients the in-memory limiter tracks (default 1,000,000).
    pub fn max_tracked_clients(mut self, max: usize) -> Self {
        self.max_keys = max;
        self
    }

    /// What the in-memory limiter does with new clients when full (default: reject, 503).
    pub fn when_limiter_full(mut self, policy: UntrackedClients) -> Self {
        self.when_full = policy;
        self
    }

    /// Replaces the rate-limit store (the in-memory store by default).
    pub fn rate_limit_store(mut self, store: Arc<dyn RateLimitStore>) -> Self {
        self.limiter = Some(store);
        self
    }

    /// The clock of the in-memory stores (tests use a `FakeClock`).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The security headers set on every response.
    pub fn security_headers(mut self, headers: SecurityHeaders) -> Self {
        self.headers = headers;
        self
    }

    /// Replaces the idempotency store (the in-memory store by default, with its default
    /// bounds and per-client quotas). To change the in-memory store's bounds, pass one:
    ///
    /// ```
    /// use std::sync::Arc;
    /// use secure_api_runtime::SecureApi;
    /// use secure_api_runtime::idempotency::memory::MemoryIdempotencyStore;
    ///
    /// let store = MemoryIdempotencyStore::new()
    ///     .max_bytes(256 << 20)
    ///     .max_bytes_per_client(4 << 20);
    /// let api = SecureApi::builder().idempotency_store(Arc::new(store)).build();
    /// ```
    pub fn idempotency_store(mut self, store: Arc<dyn IdempotencyStore>) -> Self {
        self.idempotency = Some(store);
        self
    }

    /// How long an idempotency claim survives without renewal (default 60 s).
    ///
    /// While a handler runs, its claim is renewed every third of the lease, so a slow
    /// handler keeps its key however long it takes, and a retry gets 409 (or, with `wait`,
    /// the result). A retry takes the key over only when nobody renewed the claim for a
    /// whole lease: the process crashed or stalled. A shorter lease frees the keys of a
    /// crashed process sooner, at the cost of more renewals (one store call per handler
    /// per third of the lease).
    pub fn idempotency_lease(mut self, lease: std::time::Duration) -> Self {
        self.idempotency_lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1);
        self
    }

    /// The largest response body stored for idempotent replay (default 1 MiB). A larger or
    /// streaming response of an idempotent endpoint is sent to its client as it is, and its
    /// key is kept as completed without a response: retries get the 422
    /// `idempotency-response-not-replayable` problem with the original status, and the
    /// handler does not run again.
    pub fn max_stored_response(mut self, bytes: usize) -> Self {
        self.max_stored_response = bytes;
        self
    }

    /// The access-token verifier for endpoints with `auth` (and for principals on other
    /// endpoints). Build it with [`JwtAuth::hs256`] and friends: weak keys and missing
    /// issuer or audience are start-up errors there.
    pub fn jwt(mut self, jwt: JwtAuth) -> Self {
        self.jwt = Some(jwt);
        self
    }

    /// The secret that rate-limit keys are derived from, shared by every instance of the
    /// app: at least [`MIN_KEY_SECRET_LEN`] (32) bytes, random, kept like a password. Read
    /// it from configuration; an error when it is too short (the same shape as
    /// [`trust_proxies`](Self::trust_proxies)).
    ///
    /// A client's key under a policy is a keyed hash of the policy (method, route and tier)
    /// and the client (address or principal). With the same secret, every instance derives
    /// the same keys and so shares limits through a shared store (Redis); without one, each
    /// process draws a random hashing key, which is right for the in-memory stores and is
    /// refused at [`build`](Self::build) with a shared store. The secret is not kept: only
    /// a hashing key derived from it. Changing it starts every client's limits afresh.
    ///
    /// ```
    /// use secure_api_runtime::SecureApi;
    /// # fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let secret = "an example secret of at least 32 bytes, random in real life";
    /// let api = SecureApi::builder().key_secret(secret)?.build();
    /// # Ok(()) }
    /// # run().unwrap();
    /// assert!(SecureApi::builder().key_secret([0u8; 16]).is_err());
    /// ```
    pub fn key_secret(mut self, secret: impl AsRef<[u8]>) -> Result<Self, KeySecretError> {
        let secret = secret.as_ref();
        if secret.len() < MIN_KEY_SECRET_LEN {
            return Err(KeySecretError { len: secret.len() });
        }
        self.keys = Some(KeyDeriver::from_secret(secret));
        Ok(self)
    }

    /// What rate limits do when their store cannot answer (Redis down, slow or refusing
    /// writes), for endpoints that do not choose with `on_store_error`:
    /// [`OnStoreError::FailClosed`] (the default) answers a 503 problem with
    /// `Retry-After: 1`; [`OnStoreError::Allow`] lets the request through unlimited and
    /// logs it at warn level (at most one line per endpoint every
    /// 10 seconds, with the count of requests allowed since the last line).
    ///
    /// This applies to endpoints' rate limits only. Idempotency and authentication checks
    /// (revocations, sessions, and the login guard's per-account failure limit) always fail
    /// closed, and a full in-memory store follows its own
    /// [`when_limiter_full`](Self::when_limiter_full) policy.
    ///
    /// ```
    /// use secure_api_runtime::SecureApi;
    /// use secure_api_runtime::store::OnStoreError;
    /// let api = SecureApi::builder().on_limiter_error(OnStoreError::Allow).build();
    /// ```
    pub fn on_limiter_error(mut self, policy: OnStoreError) -> Self {
        self.on_limiter_error = policy;
        self
    }

    /// Refuses to build (a [`BuildError::UnreviewedEndpoints`] from
    /// [`try_build`](Self::try_build), a panic from [`build`](Self::build)) while the
    /// endpoint inventory has findings ([`Inventory::findings`]): endpoints with neither
    /// `auth` nor `public`, and endpoints that may change state (POST, PUT, PATCH, DELETE,
    /// or without a route in the attribute) without `idempotent`. Off by default.
    ///
    /// The inventory is the program's, not the app's: every `#[secure_endpoint]` linked
    /// into the binary is judged, whether or not this app mounts it.
    ///
    /// ```
    /// use secure_api_runtime::SecureApi;
    /// use secure_api_runtime::api::BuildError;
    /// use secure_api_runtime::prelude::*;
    ///
    /// #[secure_endpoint(post("/doc/strict"), auth)]
    /// async fn not_idempotent() -> HttpResponse {
    ///     HttpResponse::Ok().finish()
    /// }
    ///
    /// let err = SecureApi::builder().strict_inventory(true).try_build().unwrap_err();
    /// let BuildError::UnreviewedEndpoints(findings) = err else { panic!() };
    /// assert!(findings.iter().any(|f| f.handler == "not_idempotent"));
    /// ```
    ///
    /// A program whose every endpoint says who may call it, and makes its state-changing
    /// requests idempotent, starts:
    ///
    /// ```standalone_crate
    /// use secure_api_runtime::prelude::*;
    ///
    /// #[secure_endpoint(post("/doc/reviewed"), auth(roles("editor")), idempotent)]
    /// async fn reviewed() -> HttpResponse {
    ///     HttpResponse::Created().finish()
    /// }
    ///
    /// #[secure_endpoint(get("/doc/reviewed"), public)]
    /// async fn read() -> HttpResponse {
    ///     HttpResponse::Ok().finish()
    /// }
    ///
    /// assert!(SecureApi::builder().strict_inventory(true).try_build().is_ok());
    /// ```
    pub fn strict_inventory(mut self, strict: bool) -> Self {
        self.strict_inventory = strict;
        self
    }

    /// Whether [`build`](Self::build) logs the endpoint inventory (on by default): the
    /// table at info level, and the review's findings at warn level, target
    /// `secure_api::inventory`, by the first app built in the process that logs it (apps
    /// are built once, outside `HttpServer::new`; a second app does not log it again). See
    /// [`SecureApi::log_inventory`].
    pub fn log_inventory(mut self, log: bool) -> Self {
        self.log_inventory = log;
        self
    }

    /// Where the audit events of this app go (see [`crate::telemetry::audit`]): by default
    /// a [`LogSink`], one rate-limited line per event through `log` (target
    /// `secure_api::audit`). [`Discard`](crate::telemetry::audit::Discard) turns them off.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use secure_api_runtime::SecureApi;
    /// use secure_api_runtime::telemetry::audit::Discard;
    ///
    /// let api = SecureApi::builder().audit_sink(Arc::new(Discard)).build();
    /// ```
    pub fn audit_sink(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit_sink = Some(sink);
        self
    }

    /// Whether this app records [metrics](crate::telemetry::metrics) through the `metrics`
    /// facade (off by default). Their handles are registered at [`build`](Self::build)
    /// with the recorder installed then: install the exporter first.
    ///
    /// With metrics on, the rate-limit and idempotency stores are wrapped in timing
    /// decorators (`secure_api_store_call_duration_seconds`), and so is the revocation
    /// store of the [`jwt`](Self::jwt) verifier, for every clone of that `JwtAuth` (by the
    /// first app with metrics built with it); the store gauges are set at build and
    /// refreshed in the background (see [`metrics_interval`](Self::metrics_interval)). A
    /// [`TokenService`](crate::auth::refresh::TokenService) joins with
    /// [`TokenService::telemetry`](crate::auth::refresh::TokenService::telemetry). With
    /// metrics off, nothing is wrapped and no thread is started.
    ///
    /// ```
    /// use secure_api_runtime::SecureApi;
    ///
    /// // metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
    /// let api = SecureApi::builder().metrics(true).build();
    /// ```
    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    /// How often a background thread (`secure-api-gauges`, one per app with
    /// [`metrics`](Self::metrics) on) sets the store gauges, as
    /// [`SecureApi::record_store_gauges`] does: every 10 s by default. The thread holds the
    /// app weakly and ends when the app is dropped. `Duration::ZERO` starts no thread: the
    /// gauges are then set at build and when the app calls `record_store_gauges`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use secure_api_runtime::SecureApi;
    ///
    /// let api = SecureApi::builder()
    ///     .metrics(true)
    ///     .metrics_interval(Duration::from_secs(30))
    ///     .build();
    /// ```
    pub fn metrics_interval(mut self, every: std::time::Duration) -> Self {
        self.metrics_interval = every;
        self
    }

    /// Builds the state.
    ///
    /// # Panics
    ///
    /// When the configuration must not start (see [`try_build`](Self::try_build)): a
    /// shared rate-limit store without a [key secret](Self::key_secret), or endpoint
    /// inventory findings under [`strict_inventory`](Self::strict_inventory).
    pub fn build(self) -> SecureApi {
        match self.try_build() {
            Ok(api) => api,
            Err(e) => panic!("SecureApi configuration refused: {e}"),
        }
    }

    /// Builds the state, or says why this configuration must not start.
    ///
    /// ```
    /// use secure_api_runtime::SecureApi;
    /// assert!(SecureApi::builder().try_build().is_ok());
    /// ```
    pub fn try_build(self) -> Result<SecureApi, BuildError> {
        let keys = match self.keys {
            Some(keys) => keys,
            None if self.limiter.as_ref().is_some_and(|l| l.is_shared()) => {
                return Err(BuildError::SharedStoreWithoutKeySecret);
            }
            None => KeyDeriver::random(),
        };
        let clock = self.clock;
        let limiter = self.limiter.unwrap_or_else(|| {
            let store = match &clock {
                Some(clock) => MemoryStore::with_clock(clock.clone()),
                None => MemoryStore::new(),
            };
            Arc::new(store.max_keys(self.max_keys).when_full(self.when_full))
        });
        let idempotency = self.idempotency.unwrap_or_else(|| match &clock {
            Some(clock) => Arc::new(MemoryIdempotencyStore::with_clock(clock.clone())),
            None => Arc::new(MemoryIdempotencyStore::new()),
        });
        // With metrics, the stores are timed and their gauges registered; without, they
        // are called directly.
        let (limiter, idempotency, store_metrics) = if self.metrics {
            let (limiter, idempotency, metrics) =
                stores::instrument(limiter, idempotency, self.jwt.as_ref());
            (limiter, idempotency, Some(metrics))
        } else {
            (limiter, idempotency, None)
        };
        let api = SecureApi {
            inner: Arc::new(Shared {
                limiter,
                keys,
                client_ip: self.client_ip,
                default_policy: {
                    let policy = Policy::new("default", self.default_rate);
                    match self.default_burst {
                        Some(burst) => policy.with_burst(burst),
                        None => policy,
                    }
                },
                headers: self.headers,
                idempotency,
                idempotency_lease_ms: self.idempotency_lease_ms,
                max_stored_response: self.max_stored_response,
                jwt: self.jwt,
                on_limiter_error: self.on_limiter_error,
                telemetry: Telemetry::new(
                    self.audit_sink.unwrap_or_else(|| Arc::new(LogSink::new())),
                    self.metrics,
                ),
                store_metrics,
            }),
        };
        if let Some(metrics) = &api.inner.store_metrics {
            metrics.start_refresh(&api.inner, self.metrics_interval);
        }
        if let Some(jwt) = &api.inner.jwt {
            jwt.attach(&api);
        }
        if self.strict_inventory {
            let findings = api.inventory().findings();
            if !findings.is_empty() {
                return Err(BuildError::UnreviewedEndpoints(findings));
            }
        }
        if self.log_inventory && !INVENTORY_LOGGED.swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            api.log_inventory();
        }
        Ok(api)
    }
}
