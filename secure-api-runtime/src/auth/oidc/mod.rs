//! Tokens minted by an identity provider (Keycloak, Auth0, Entra ID, Okta, Cognito,
//! Zitadel, ...): the API is an OAuth 2.0 resource server. Feature `oidc`.
//!
//! [`JwtAuth::oidc`] reads the provider's OpenID Connect discovery document
//! (`<issuer>/.well-known/openid-configuration`), whose `issuer` must be the configured
//! issuer exactly, and then the JWK set its `jwks_uri` names; [`JwtAuth::jwks`] takes the JWK
//! set's URL directly. The result is a [`JwtAuth`] like any other: give it to
//! [`SecureApiBuilder::jwt`](crate::api::SecureApiBuilder::jwt) and every
//! `#[secure_endpoint(auth(...))]` verifies the provider's tokens.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use secure_api_runtime::auth::jwt::JwtAuth;
//! use secure_api_runtime::auth::oidc::TokenTyp;
//! use secure_api_runtime::prelude::*;
//!
//! let jwt = JwtAuth::oidc("https://sso.example.com/realms/acme")
//!     .audience("orders-api")
//!     .typ(TokenTyp::AccessTokenOrJwt)      // Keycloak's access tokens say `typ: JWT`
//!     .roles_claim("/realm_access/roles")
//!     .build()
//!     .await?;                              // the first key set, or a clear error
//! let secure = SecureApi::builder().jwt(jwt).build();
//! # Ok(()) }
//! ```
//!
//! # Keys
//!
//! - The keys live in memory. A background thread (one per provider, `secure-api-jwks`)
//!   fetches them again on a schedule: the JWK set answer's `Cache-Control: max-age`, kept
//!   between [`refresh_bounds`](ProviderAuthBuilder::refresh_bounds) (1 minute to 24 hours
//!   by default), or every 10 minutes without one.
//! - A token whose `kid` is not in the set asks for a refresh, at most once per
//!   [cool-down](ProviderAuthBuilder::unknown_kid_cooldown) (30 s): keys that a provider
//!   has just rotated in are found at once, and forged `kid`s cannot make the verifier
//!   hammer the provider. Such a request waits for a refresh that is running or that it
//!   may start (at most the fetch timeout, twice when the discovery document is read
//!   again); inside the cool-down it is refused at once. A `kid` the set lists but whose
//!   key was refused (below) asks for nothing.
//! - A refresh that fails (the provider down, garbage, an oversized or slow answer) keeps
//!   the current keys: they go on serving, and the refresh is retried after the cool-down,
//!   doubling up to the interval. Failures are logged at warn level, at most once a minute,
//!   with the count of those not logged. [`max_stale`](ProviderAuthBuilder::max_stale)
//!   bounds how long keys serve without a successful refresh (no bound by default: while
//!   the provider is unreachable from the API, its tokens may still reach it).
//! - Every fetch has a [timeout](ProviderAuthBuilder::fetch_timeout) (5 s, for the whole
//!   exchange) and a [size cap](ProviderAuthBuilder::max_response_bytes) (256 KiB). HTTP is
//!   ureq with rustls (the webpki roots, or only a private CA's with
//!   [`root_certificates`](ProviderAuthBuilder::root_certificates)); only `https` URLs are
//!   fetched, and plain `http` only on a loopback host (`127.0.0.0/8`, `::1`,
//!   `localhost`), for tests and local development. The discovery document's `jwks_uri` is
//!   held to the same rule.
//! - Start-up either fails with a [`ProviderError`] saying what went wrong
//!   ([`Startup::FailFast`], the default) or retries until the first key set arrives
//!   ([`Startup::WaitFor`]).
//!
//! # Which key verifies a token
//!
//! The token's `kid` names the key; a token without `kid` is verified only by a set of
//! exactly one key. A key is used only for signatures (`use: sig` or no `use`), only with
//! its own `alg` when it names one, only with an algorithm of its type (RSA: RS256 and
//! PS256; EC P-256: ES256; OKP Ed25519: EdDSA), and only with an algorithm the
//! configuration [allows](ProviderAuthBuilder::algorithms) (all four by default). A token
//! whose header `alg` does not fit its key is refused. HMAC (`oct`) keys in a JWK set are
//! refused (a published HMAC key lets anyone sign), as are RSA keys under 2048 bits.
//!
//! # Claims
//!
//! `iss` must be the issuer exactly; `aud` (a string or an array) must contain a configured
//! [audience](ProviderAuthBuilder::audience); `sub`, `exp` and `iat` are required, `nbf` is
//! checked, with the leeway; the lifetime `exp - iat` is at most 15 minutes unless
//! [raised](ProviderAuthBuilder::max_lifetime) (logged at warn level). The header's `typ`
//! must be `at+jwt` (RFC 9068) unless [configured](ProviderAuthBuilder::typ) to accept
//! `JWT` or none, as many providers send. Then the [`Principal`]:
//!
//! - **permissions**: the OAuth scopes, `scope` (space-separated) and `scp` (an array, or
//!   a space-separated string), so that `auth(permissions("read:users"))` is a scope check;
//!   plus any [claims of permissions](ProviderAuthBuilder::permissions_claim) (Auth0's
//!   `permissions`);
//! - **roles**: the [claims of roles](ProviderAuthBuilder::roles_claim), JSON Pointers:
//!   Keycloak's `/realm_access/roles` and `/resource_access/<client>/roles`, an Auth0
//!   namespaced claim (see [`claim_pointer`]);
//! - **tier**: a [claim](ProviderAuthBuilder::tier_claim), `user` when absent;
//! - `jti` and `sid` (the provider's session) as the token id and session id, so that
//!   [`JwtAuth::revoke_token`] and [`JwtAuth::revoke_session`] (for a back-channel logout)
//!   work on provider tokens. A `jti` is required only if
//!   [configured](ProviderAuthBuilder::require_jti).
//!
//! Every failure is the same `invalid-credentials` 401 as for fixed keys; nothing of the
//! token, its key or the provider is in the response.

mod claims;
mod fetch;
mod keys;
mod refresh;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Validation;
use serde_json::Value;

pub use fetch::FetchError;
/// The signature algorithms of [`ProviderAuthBuilder::algorithms`] (`jsonwebtoken`'s).
pub use jsonwebtoken::Algorithm;
pub use refresh::KeySetStatus;

use self::claims::ClaimMapping;
use self::fetch::{Fetcher, checked_issuer, checked_url, discovery_url};
use self::keys::{AlgSet, Key, Lookup};
use self::refresh::{Refresher, Shared, Source, Timing};
use super::jwt::{
    AuthConfigError, Checks, DEFAULT_LEEWAY, JwtAuth, MAX_ACCESS_LIFETIME, MAX_TOKEN_BYTES,
    error_kind, install_crypto_provider, validation_for,
};
use super::revocation::{Revocation, RevokedTokens};
use super::{AuthFailure, Principal};
use crate::clock::{Clock, MonotonicClock, SystemWallClock, WallClock};

/// The default cool-down between refreshes asked for by unknown `kid`s.
pub const DEFAULT_UNKNOWN_KID_COOLDOWN: Duration = Duration::from_secs(30);
/// The default timeout of one fetch (connecting, sending, the headers and the body).
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The default cap on a discovery document or JWK set, in bytes.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// The default interval between refreshes when the answer has no `max-age`.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// The default lower bound on a `max-age`.
pub const DEFAULT_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// The default upper bound on a `max-age`.
pub const DEFAULT_MAX_REFRESH_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// What start-up does when the first key set cannot be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Startup {
    /// One attempt (the discovery document, then the JWK set, each within the fetch
    /// timeout); its failure is the error of [`build`](ProviderAuthBuilder::build). The
    /// default: a misconfiguration is reported at once.
    #[default]
    FailFast,
    /// Retries (200 ms, doubling up to 10 s between attempts, failures logged at warn
    /// level) until the first key set arrives, for at most this long; then the last failure
    /// is the error. `Duration::MAX` waits as long as it takes.
    WaitFor(Duration),
}

/// Which `typ` headers a provider's tokens may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenTyp {
    /// `at+jwt` (or `application/at+jwt`), the JWT access-token profile of RFC 9068: ID
    /// tokens and other JWTs of the provider are refused even when their audience matches.
    /// The default.
    #[default]
    AccessToken,
    /// Also `JWT`, and no `typ` at all: what Keycloak, Entra ID and Auth0 (unless its
    /// RFC 9068 profile is chosen) send. Other values (`id_token+jwt`, `logout+jwt`, ...)
    /// are still refused. Make sure the [audience](ProviderAuthBuilder::audience) is the
    /// API's own, not a client id that the provider's ID tokens carry too.
    AccessTokenOrJwt,
}

impl TokenTyp {
    fn allows(self, typ: Option<&str>) -> bool {
        let at = |t: &str| {
            t.eq_ignore_ascii_case(super::jwt::ACCESS_TOKEN_TYP)
                || t.eq_ignore_ascii_case("application/at+jwt")
        };
        match (self, typ) {
            (_, Some(t)) if at(t) => true,
            (TokenTyp::AccessTokenOrJwt, None) => true,
            (TokenTyp::AccessTokenOrJwt, Some(t)) => t.eq_ignore_ascii_case("JWT"),
            (TokenTyp::AccessToken, _) => false,
        }
    }
}

/// Why a provider's verifier cannot be built, or a refresh failed. Operator-facing: it
/// names URLs and the provider's answers, and is never sent to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderError {
    /// A configuration mistake (no audience, a lifetime of zero, ...).
    Config(AuthConfigError),
    /// An algorithm that provider tokens cannot use: RS256, PS256, ES256 and EdDSA can.
    UnsupportedAlgorithm(Algorithm),
    /// A claim place that is not a JSON Pointer (`/realm_access/roles`).
    BadClaimPointer(String),
    /// `.issuer(..)` on [`JwtAuth::oidc`] differs from the URL discovery starts from.
    ConflictingIssuer,
    /// A URL that may not be fetched.
    InvalidUrl {
        /// The URL (at most 200 characters of it).
        url: String,
        /// Why.
        problem: String,
    },
    /// A fetch failed.
    Fetch {
        /// What was fetched.
        url: String,
        /// How it failed.
        error: FetchError,
    },
    /// The discovery document names another issuer.
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The document's (at most 200 characters of it).
        found: String,
    },
    /// The JWK set has no key this verifier may use.
    NoUsableKeys {
        /// The JWK set's URL.
        url: String,
        /// Why each key was refused.
        refused: Vec<String>,
    },
    /// The background thread could not be started, or was stopped.
    Stopped,
    /// The PEM given to
    /// [`root_certificates`](ProviderAuthBuilder::root_certificates) holds no certificate,
    /// one that cannot be read as a trust anchor, or a private key.
    RootCertificates(String),
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProviderError::Config(e) => e.fmt(f),
            ProviderError::UnsupportedAlgorithm(alg) => write!(
                f,
                "{alg:?} is not allowed for provider tokens; use RS256, PS256, ES256 or EdDSA"
            ),
            ProviderError::BadClaimPointer(p) => write!(
                f,
                "{p:?} is not a JSON Pointer to a claim (write /realm_access/roles, or use claim_pointer([..]))"
            ),
            ProviderError::ConflictingIssuer => f.write_str(
                "JwtAuth::oidc(issuer) takes the issuer from its URL; `.issuer(..)` must not name another",
            ),
            ProviderError::InvalidUrl { url, problem } => write!(f, "{url:?}: {problem}"),
            ProviderError::Fetch { url, error } => write!(f, "fetching {url}: {error}"),
            ProviderError::IssuerMismatch { expected, found } => write!(
                f,
                "the discovery document's issuer is {found:?}, not the configured {expected:?} (they must be equal, trailing slash included)"
            ),
            ProviderError::NoUsableKeys { url, refused } => {
                write!(f, "the key set at {url} has no usable key")?;
                if !refused.is_empty() {
                    write!(f, " ({})", refused.join("; "))?;
                }
                Ok(())
            }
            ProviderError::Stopped => f.write_str("the key refresher thread is not running"),
            ProviderError::RootCertificates(why) => write!(f, "root_certificates: {why}"),
        }
    }
}

impl std::error::Error for ProviderError {}

/// The JSON Pointer of the claim named by `segments`, escaped as RFC 6901 says (`/` in a
/// name as `~1`, `~` as `~0`): for claim names with slashes, such as Auth0's namespaced
/// claims.
///
/// ```
/// use secure_api_runtime::auth::oidc::claim_pointer;
/// assert_eq!(claim_pointer(["https://example.com/roles"]), "/https:~1~1example.com~1roles");
/// assert_eq!(claim_pointer(["resource_access", "orders-api", "roles"]), "/resource_access/orders-api/roles");
/// ```
pub fn claim_pointer<'a>(segments: impl IntoIterator<Item = &'a str>) -> String {
    claims::pointer_of(segments)
}

enum Origin {
    Issuer(String),
    Jwks(String),
}

/// Configures a [`JwtAuth`] for an identity provider's tokens: from [`JwtAuth::oidc`] or
/// [`JwtAuth::jwks`]. See the [module](self) for what is checked.
pub struct ProviderAuthBuilder {
    origin: Origin,
    issuer: Option<String>,
    audiences: Vec<String>,
    algorithms: Option<Vec<Algorithm>>,
    typ: TokenTyp,
    leeway: Duration,
    max_lifetime: Duration,
    claims: ClaimMapping,
    require_jti: bool,
    revocation: Option<Arc<dyn Revocation>>,
    clock: Arc<dyn WallClock>,
    refresh_clock: Arc<dyn Clock>,
    timing: Timing,
    fetch_timeout: Duration,
    max_response_bytes: usize,
    /// PEM of the only certificate authorities trusted for the fetches, if set.
    root_certificates: Option<Vec<u8>>,
    startup: Startup,
}

impl fmt::Debug for ProviderAuthBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let origin = match &self.origin {
            Origin::Issuer(i) | Origin::Jwks(i) => i,
        };
        f.debug_struct("ProviderAuthBuilder")
            .field("origin", origin)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

impl JwtAuth {
    /// A verifier of the tokens of the OpenID Connect provider `issuer` (for example
    /// `https://sso.example.com/realms/acme` or `https://tenant.eu.auth0.com/`): its keys
    /// come from the discovery document's `jwks_uri`, and tokens' `iss` must be `issuer`
    /// exactly. Add `.audience(..)`, then `.build().await`.
    pub fn oidc(issuer: impl Into<String>) -> ProviderAuthBuilder {
        ProviderAuthBuilder::new(Origin::Issuer(issuer.into()))
    }

    /// A verifier of tokens signed by the keys of the JWK set at `url`, without discovery.
    /// Add `.issuer(..)` (tokens' `iss`) and `.audience(..)`, then `.build().await`.
    pub fn jwks(url: impl Into<String>) -> ProviderAuthBuilder {
        ProviderAuthBuilder::new(Origin::Jwks(url.into()))
    }
}

impl ProviderAuthBuilder {
    fn new(origin: Origin) -> Self {
        ProviderAuthBuilder {
            origin,
            issuer: None,
            audiences: Vec::new(),
            algorithms: None,
            typ: TokenTyp::default(),
            leeway: DEFAULT_LEEWAY,
            max_lifetime: MAX_ACCESS_LIFETIME,
            claims: ClaimMapping::default(),
            require_jti: false,
            revocation: Some(Arc::new(RevokedTokens::new())),
            clock: Arc::new(SystemWallClock),
            refresh_clock: Arc::new(MonotonicClock::new()),
            timing: Timing {
                default_interval: DEFAULT_REFRESH_INTERVAL,
                min_interval: DEFAULT_MIN_REFRESH_INTERVAL,
                max_interval: DEFAULT_MAX_REFRESH_INTERVAL,
                cooldown: DEFAULT_UNKNOWN_KID_COOLDOWN,
                max_stale: None,
                warn_every: Duration::from_secs(60),
            },
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            root_certificates: None,
            startup: Startup::default(),
        }
    }

    /// The issuer tokens' `iss` must equal: required with [`JwtAuth::jwks`]; with
    /// [`JwtAuth::oidc`] it is the URL given there (naming another is an error).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// An audience of the API: a token's `aud` (a string or an array) must contain one of
    /// the audiences given. Required; may be called several times.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The algorithms tokens may be signed with: some of RS256, PS256, ES256 and EdDSA
    /// (all four by default). Each key is further held to its own `alg` and type.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algorithms.into_iter().collect());
        self
    }

    /// Which `typ` headers are accepted ([`TokenTyp::AccessToken`], `at+jwt` only, by
    /// default).
    pub fn typ(mut self, typ: TokenTyp) -> Self {
        self.typ = typ;
        self
    }

    /// Clock-skew allowance for `exp`, `nbf` and `iat` (default 10 s, at most 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway.min(Duration::from_secs(60));
        self
    }

    /// The longest lifetime (`exp - iat`) a token may have: 15 minutes by default. A
    /// provider whose access tokens live longer (Entra ID: about an hour; Auth0: 24 hours
    /// unless configured) needs a raise, which is logged at warn level at start-up:
    /// revocations are then kept that long too, and a stolen token is good for that long.
    /// Prefer shortening the provider's token lifetime.
    pub fn max_lifetime(mut self, max: Duration) -> Self {
        self.max_lifetime = max;
        self
    }

    /// A claim holding roles, as a JSON Pointer (RFC 6901): `/realm_access/roles`,
    /// `/resource_access/orders-api/roles`, or [`claim_pointer`]`(["https://example.com/roles"])`.
    /// Its value is an array of strings or a space-separated string. May be called several
    /// times: the roles are the union.
    pub fn roles_claim(mut self, pointer: impl Into<String>) -> Self {
        self.claims.roles.push(pointer.into());
        self
    }

    /// A claim holding permissions besides the scopes (Auth0 RBAC's `/permissions`), as
    /// [`roles_claim`](Self::roles_claim) reads it.
    pub fn permissions_claim(mut self, pointer: impl Into<String>) -> Self {
        self.claims.permissions.push(pointer.into());
        self
    }

    /// Whether the OAuth scopes (`scope`, `scp`) are permissions (default yes).
    pub fn scopes_as_permissions(mut self, yes: bool) -> Self {
        self.claims.scopes = yes;
        self
    }

    /// A claim holding the rate-limit tier (a string), as a JSON Pointer; the tier is
    /// `user` when the claim is absent.
    pub fn tier_claim(mut self, pointer: impl Into<String>) -> Self {
        self.claims.tier = Some(pointer.into());
        self
    }

    /// Whether tokens must carry a `jti` (default no: many providers' access tokens have
    /// none; such tokens cannot be revoked one by one, but by session and subject still).
    pub fn require_jti(mut self, yes: bool) -> Self {
        self.require_jti = yes;
        self
    }

    /// The revocation store consulted for every token (in memory by default).
    pub fn revocation(mut self, revocation: Arc<dyn Revocation>) -> Self {
        self.revocation = Some(revocation);
        self
    }

    /// No revocation store: tokens end only at their expiry.
    pub fn without_revocation(mut self) -> Self {
        self.revocation = None;
        self
    }

    /// The wall clock of `exp`, `nbf`, `iat` and revocations; the system's by default.
    pub fn clock(mut self, clock: Arc<dyn WallClock>) -> Self {
        self.clock = clock;
        self
    }

    /// The monotonic clock of the refresh schedule, the cool-down and staleness; the
    /// system's by default. Tests move a [`FakeClock`](crate::clock::FakeClock) instead of
    /// sleeping; requests notice a schedule that fell due on it.
    pub fn refresh_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.refresh_clock = clock;
        self
    }

    /// The interval between refreshes when the JWK set's answer has no `Cache-Control:
    /// max-age` (default 10 minutes), kept within the bounds.
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.timing.default_interval = interval;
        self
    }

    /// The bounds on the interval a `max-age` sets (default 1 minute to 24 hours).
    pub fn refresh_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.timing.min_interval = min;
        self.timing.max_interval = max;
        self
    }

    /// At most one refresh per this period for tokens naming unknown `kid`s (default 30 s);
    /// also the first delay before retrying a failed refresh.
    pub fn unknown_kid_cooldown(mut self, cooldown: Duration) -> Self {
        self.timing.cooldown = cooldown;
        self
    }

    /// Stop using keys that could not be refreshed for this long (no bound by default):
    /// every token is then refused until a refresh succeeds.
    pub fn max_stale(mut self, max: Duration) -> Self {
        self.timing.max_stale = Some(max);
        self
    }

    /// The timeout of one fetch, for the whole exchange (default 5 s).
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// The largest discovery document or JWK set read, in bytes (default 256 KiB).
    pub fn max_response_bytes(mut self, max: usize) -> Self {
        self.max_response_bytes = max;
        self
    }

    /// Trusts only the certificate authorities in `pem` (one or more `CERTIFICATE`
    /// blocks) for this provider's HTTPS fetches, in place of the public web PKI roots
    /// (Mozilla's, as `webpki-roots` ships them): for a provider whose certificate a
    /// private CA issued, such as an in-house Keycloak. The provider's certificate must
    /// chain to one of them and name the URL's host; nothing else is trusted, so a
    /// certificate a public CA issued for the same host is refused.
    ///
    /// [`build`](Self::build) fails with [`ProviderError::RootCertificates`] when `pem`
    /// holds no certificate, one that cannot be read as a trust anchor, or a private key.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// use secure_api_runtime::auth::jwt::JwtAuth;
    ///
    /// let jwt = JwtAuth::oidc("https://sso.internal.example/realms/acme")
    ///     .audience("orders-api")
    ///     .root_certificates(std::fs::read("/etc/ssl/internal-root-ca.pem")?)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates = Some(pem.into());
        self
    }

    /// What start-up does when the first key set cannot be had (default
    /// [`Startup::FailFast`]).
    pub fn startup(mut self, startup: Startup) -> Self {
        self.startup = startup;
        self
    }

    /// Checks the configuration, starts the key set's background thread and waits for the
    /// first key set as [`startup`](Self::startup) says. Any executor will do (the fetches
    /// run on the background thread).
    pub async fn build(self) -> Result<JwtAuth, ProviderError> {
        install_crypto_provider();
        let invalid = |url: &str, problem: fetch::UrlProblem| ProviderError::InvalidUrl {
            url: url.chars().take(200).collect(),
            problem: problem.to_string(),
        };
        let (issuer, source, loopback, origin) = match &self.origin {
            Origin::Issuer(issuer) => {
                let (_, loopback) = checked_issuer(issuer).map_err(|p| invalid(issuer, p))?;
                if self.issuer.as_ref().is_some_and(|i| i != issuer) {
                    return Err(ProviderError::ConflictingIssuer);
                }
                let url = discovery_url(issuer).map_err(|p| invalid(issuer, p))?;
                let source = Source::Discovery {
                    issuer: issuer.clone(),
                    url,
                };
                (issuer.clone(), source, loopback, issuer.clone())
            }
            Origin::Jwks(jwks) => {
                let (url, loopback) = checked_url(jwks).map_err(|p| invalid(jwks, p))?;
                let issuer = self
                    .issuer
                    .clone()
                    .filter(|i| !i.is_empty())
                    .ok_or(ProviderError::Config(AuthConfigError::MissingIssuer))?;
                (issuer, Source::Jwks(url), loopback, jwks.clone())
            }
        };
        if self.audiences.is_empty() || self.audiences.iter().any(String::is_empty) {
            return Err(ProviderError::Config(AuthConfigError::MissingAudience));
        }
        if self.max_lifetime.is_zero() {
            return Err(ProviderError::Config(AuthConfigError::LifetimeTooLong(
                self.max_lifetime,
            )));
        }
        if self.max_lifetime > MAX_ACCESS_LIFETIME {
            log::warn!(
                target: "secure_api::auth",
                "tokens of {origin} may live up to {} s, over the 15-minute cap: a stolen token is good for that long, and revocations are kept that long",
                self.max_lifetime.as_secs()
            );
        }
        let mut allowed = AlgSet::default();
        for alg in self.algorithms.as_deref().unwrap_or(&AlgSet::SUPPORTED) {
            allowed =
                allowed.union(AlgSet::of(*alg).ok_or(ProviderError::UnsupportedAlgorithm(*alg))?);
        }
        if allowed.is_empty() {
            return Err(ProviderError::Config(AuthConfigError::BadKey(
                "no algorithm is allowed".to_owned(),
            )));
        }
        let claims = &self.claims;
        let pointers = claims
            .roles
            .iter()
            .chain(&claims.permissions)
            .chain(&claims.tier);
        if let Some(bad) = pointers.into_iter().find(|p| !claims::valid_pointer(p)) {
            return Err(ProviderError::BadClaimPointer(bad.clone()));
        }
        let audiences: Vec<&str> = self.audiences.iter().map(String::as_str).collect();
        let validations = allowed
            .iter()
            .map(|alg| (alg, validation_for(alg, &issuer, &audiences, self.leeway)))
            .collect();

        let roots = match &self.root_certificates {
            Some(pem) => {
                Some(fetch::root_certificates(pem).map_err(ProviderError::RootCertificates)?)
            }
            None => None,
        };

        let (shared, _) = Shared::new(self.refresh_clock.clone(), self.timing, origin);
        let refresher = Refresher {
            source,
            fetcher: Fetcher::new(self.fetch_timeout, self.max_response_bytes, loopback, roots),
            allowed,
            jwks_url: None,
        };
        // From here on, dropping the verifier (or this future) stops the thread.
        let stop = StopOnDrop(shared.clone());
        let (first, first_rx) = tokio::sync::oneshot::channel();
        refresh::spawn(shared.clone(), refresher, self.startup, first)
            .map_err(|_| ProviderError::Stopped)?;
        first_rx.await.map_err(|_| ProviderError::Stopped)??;
        let status = shared.status();
        log::info!(
            target: "secure_api::auth",
            "tokens of {} verified with {} key(s) {:?}, next refresh in {} s",
            shared.origin,
            status.keys,
            status.key_ids,
            status.next_refresh_in.as_secs()
        );
        let verifier = ProviderVerifier {
            shared,
            validations,
            claims: self.claims,
            typ: self.typ,
            require_jti: self.require_jti,
            _stop: stop,
        };
        Ok(JwtAuth::from_provider(
            verifier,
            issuer,
            self.audiences.join(" "),
            self.leeway,
            self.max_lifetime,
            self.revocation,
            self.clock,
        ))
    }
}

/// Stops the refresher thread when the last verifier goes.
struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// A handle on a provider's key set: its status, and a refresh on demand. From
/// [`JwtAuth::provider_keys`].
#[derive(Clone)]
pub struct ProviderKeys {
    shared: Arc<Shared>,
}

impl fmt::Debug for ProviderKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderKeys")
            .field("origin", &self.shared.origin)
            .finish_non_exhaustive()
    }
}

impl ProviderKeys {
    /// A snapshot of the key set and its refreshes.
    pub fn status(&self) -> KeySetStatus {
        self.shared.status()
    }

    /// Refreshes the key set now (whatever the schedule and the cool-down; joined with a
    /// refresh already running) and waits for the outcome: for an operator who knows the
    /// provider rotated its keys. A failed refresh keeps the current keys; the status
    /// tells why it failed.
    pub async fn refresh(&self) -> KeySetStatus {
        if let Some(generation) = self.shared.refresh_now() {
            self.shared.finished_after(generation).await;
        }
        self.shared.status()
    }
}

/// The provider half of a [`JwtAuth`]: the key set, the per-algorithm checks and the claim
/// mapping.
pub(crate) struct ProviderVerifier {
    shared: Arc<Shared>,
    validations: Vec<(Algorithm, Validation)>,
    claims: ClaimMapping,
    typ: TokenTyp,
    require_jti: bool,
    _stop: StopOnDrop,
}

impl fmt::Debug for ProviderVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderKeys")
            .field("origin", &self.shared.origin)
            .field("typ", &self.typ)
            .finish_non_exhaustive()
    }
}

fn fail(why: &dyn fmt::Display) -> AuthFailure {
    log::debug!(target: "secure_api::auth", "provider token rejected: {why}");
    AuthFailure::Invalid
}

/// What a token's header says, once checked.
struct Head {
    alg: Algorithm,
    kid: Option<String>,
}

impl ProviderVerifier {
    pub(crate) fn handle(&self) -> ProviderKeys {
        ProviderKeys {
            shared: self.shared.clone(),
        }
    }

    /// [`JwtAuth::verify`]'s signature and claims checks: a token naming an unknown `kid`
    /// waits for a refresh that is running or may start.
    pub(crate) async fn verify(
        &self,
        token: &str,
        now: u64,
        checks: Checks,
    ) -> Result<(Principal, u64), AuthFailure> {
        let head = self.head(token)?;
        let keys = self
            .shared
            .current()
            .ok_or_else(|| fail(&"the key set is too stale"))?;
        match keys.lookup(head.kid.as_deref(), head.alg) {
            Lookup::Found(key) => return self.decode(token, head.alg, key, now, checks),
            Lookup::Refused(why) => return Err(fail(&why)),
            Lookup::UnknownKid => {}
        }
        drop(keys);
        let Some(generation) = self.shared.unknown_kid() else {
            return Err(fail(&"unknown kid, inside the refresh cool-down"));
        };
        self.shared.finished_after(generation).await;
        let keys = self
            .shared
            .current()
            .ok_or_else(|| fail(&"the key set is too stale"))?;
        match keys.lookup(head.kid.as_deref(), head.alg) {
            Lookup::Found(key) => self.decode(token, head.alg, key, now, checks),
            Lookup::Refused(why) => Err(fail(&why)),
            Lookup::UnknownKid => Err(fail(&"unknown kid, after a refresh")),
        }
    }

    /// [`JwtAuth::verify_claims`]'s checks: never waits; an unknown `kid` may start a
    /// refresh for later requests.
    pub(crate) fn verify_now(
        &self,
        token: &str,
        now: u64,
        checks: Checks,
    ) -> Result<(Principal, u64), AuthFailure> {
        let head = self.head(token)?;
        let keys = self
            .shared
            .current()
            .ok_or_else(|| fail(&"the key set is too stale"))?;
        match keys.lookup(head.kid.as_deref(), head.alg) {
            Lookup::Found(key) => self.decode(token, head.alg, key, now, checks),
            Lookup::Refused(why) => Err(fail(&why)),
            Lookup::UnknownKid => {
                let _ = self.shared.unknown_kid();
                Err(fail(&"unknown kid"))
            }
        }
    }

    /// The header checks: size, `typ`, and an allowed `alg`.
    fn head(&self, token: &str) -> Result<Head, AuthFailure> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(fail(&"token too long"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| fail(&error_kind(&e)))?;
        if !self.typ.allows(header.typ.as_deref()) {
            // Not the value: the header is the client's text.
            return Err(fail(&"typ not accepted (see ProviderAuthBuilder::typ)"));
        }
        if !self.validations.iter().any(|(alg, _)| *alg == header.alg) {
            return Err(fail(&format_args!("alg {:?} not allowed", header.alg)));
        }
        Ok(Head {
            alg: header.alg,
            kid: header.kid,
        })
    }

    fn decode(
        &self,
        token: &str,
        alg: Algorithm,
        key: &Key,
        now: u64,
        checks: Checks,
    ) -> Result<(Principal, u64), AuthFailure> {
        let validation = self
            .validations
            .iter()
            .find_map(|(a, v)| (*a == alg).then_some(v))
            .ok_or_else(|| fail(&"alg not allowed"))?;
        let data = jsonwebtoken::decode::<Value>(token, &key.decoding, validation)
            .map_err(|e| fail(&error_kind(&e)))?;
        let claims = data.claims;
        let time = |name: &str| -> Result<Option<u64>, AuthFailure> {
            match claims.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => n
                    .as_u64()
                    .or_else(|| {
                        n.as_f64()
                            .filter(|f| f.is_finite() && *f >= 0.0)
                            .map(|f| f as u64)
                    })
                    .map(Some)
                    .ok_or_else(|| fail(&format_args!("{name} is not a time"))),
                Some(_) => Err(fail(&format_args!("{name} is not a number"))),
            }
        };
        let exp = time("exp")?.ok_or_else(|| fail(&"no exp"))?;
        let iat = time("iat")?.ok_or_else(|| fail(&"no iat"))?;
        let nbf = time("nbf")?;
        let leeway = checks.leeway;
        if now > exp.saturating_add(leeway) {
            return Err(fail(&"expired"));
        }
        if nbf.is_some_and(|nbf| nbf > now + leeway) {
            return Err(fail(&"not yet valid"));
        }
        if iat > now + leeway {
            return Err(fail(&"iat in the future"));
        }
        if exp.saturating_sub(iat) > checks.max_lifetime {
            return Err(fail(&"lifetime over the configured maximum"));
        }
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| fail(&"no sub"))?
            .to_owned();
        let principal = self.claims.principal(&claims, subject);
        if self.require_jti && principal.token_id.is_none() {
            return Err(fail(&"no jti"));
        }
        Ok((principal, iat))
    }
}
