//! Access tokens: short-lived JWTs, verified against one allow-listed algorithm.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::revocation::{Revocation, RevokedTokens, TokenRef};
use super::{AuthFailure, DEFAULT_TIER, Principal};
use crate::api::SecureApi;
use crate::clock::{SystemWallClock, WallClock};
use crate::store::StoreError;
use crate::telemetry::audit::{AuditDetail, AuditKind, RevokedScope};

/// The longest an access token may live.
pub const MAX_ACCESS_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// The default access-token lifetime.
pub const DEFAULT_ACCESS_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// The `typ` header of access tokens (RFC 9068), so that other JWTs signed with the same
/// key (ID tokens, other services' tokens) are not accepted as access tokens.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// The shortest HMAC key: 256 bits.
pub const MIN_HMAC_KEY_BYTES: usize = 32;
/// The default clock-skew allowance for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(10);
/// Tokens longer than this are refused before parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// A configuration that must not start: reported when the app is built, not as a 500 at
/// the first request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthConfigError {
    /// An HMAC key shorter than 256 bits.
    WeakHmacKey {
        /// The key's length in bytes.
        bytes: usize,
    },
    /// A key that does not parse.
    BadKey(String),
    /// No issuer was configured (`iss` is always checked).
    MissingIssuer,
    /// No audience was configured (`aud` is always checked).
    MissingAudience,
    /// A lifetime over [`MAX_ACCESS_LIFETIME`] was asked for.
    LifetimeTooLong(Duration),
    /// Issuing needs a private key (or the HMAC secret).
    NoSigningKey,
    /// Signing failed.
    Signing(String),
}

impl fmt::Display for AuthConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthConfigError::WeakHmacKey { bytes } => write!(
                f,
                "the HS256 key has {} bits; at least 256 bits (32 random bytes) are required",
                bytes * 8
            ),
            AuthConfigError::BadKey(e) => write!(f, "the JWT key does not parse: {e}"),
            AuthConfigError::MissingIssuer => {
                f.write_str("JwtAuth needs an issuer (`.issuer(...)`)")
            }
            AuthConfigError::MissingAudience => {
                f.write_str("JwtAuth needs an audience (`.audience(...)`)")
            }
            AuthConfigError::LifetimeTooLong(d) => write!(
                f,
                "access tokens may live at most 15 minutes, not {} s; use refresh tokens for longer sessions",
                d.as_secs()
            ),
            AuthConfigError::NoSigningKey => {
                f.write_str("issuing tokens needs the private key (`.signing_key_pem(...)`)")
            }
            AuthConfigError::Signing(e) => write!(f, "signing failed: {e}"),
        }
    }
}

impl std::error::Error for AuthConfigError {}

/// A revocation asked of a [`JwtAuth`] built [without a revocation
/// store](JwtAuthBuilder::without_revocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoRevocationStore;

impl fmt::Display for NoRevocationStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("this JwtAuth was built without a revocation store")
    }
}

impl std::error::Error for NoRevocationStore {}

enum KeyMaterial {
    Hmac(Vec<u8>),
    Pem {
        alg: Algorithm,
        public: Vec<u8>,
        private: Option<Vec<u8>>,
    },
}

/// Configures a [`JwtAuth`].
pub struct JwtAuthBuilder {
    key: KeyMaterial,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: Duration,
    lifetime: Duration,
    revocation: Option<Arc<dyn Revocation>>,
    clock: Arc<dyn WallClock>,
}

impl JwtAuthBuilder {
    /// The issuer (`iss`) tokens must carry and issued tokens get. Required.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The audience (`aud`) tokens must carry and issued tokens get. Required.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Clock-skew allowance for `exp`, `nbf` and `iat` (default 10 s, at most 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway.min(Duration::from_secs(60));
        self
    }

    /// The lifetime of issued access tokens (default 10 minutes, at most 15).
    pub fn access_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// The private key (PEM) to issue EdDSA, ES256 or RS256 tokens with.
    pub fn signing_key_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        if let KeyMaterial::Pem { private, .. } = &mut self.key {
            *private = Some(pem.into());
        }
        self
    }

    /// Replaces the revocation store consulted for every token (by default an in-memory
    /// [`RevokedTokens`] of this `JwtAuth`, shared by its clones). Tokens without a `jti`
    /// are refused while there is one.
    pub fn revocation(mut self, revocation: Arc<dyn Revocation>) -> Self {
        self.revocation = Some(revocation);
        self
    }

    /// Builds a verifier with no revocation store: tokens end only at their expiry, tokens
    /// without a `jti` are accepted, [`JwtAuth::revoke_subject`] and friends fail, and a
    /// [`TokenService`](super::refresh::TokenService) on it ends refresh families but not
    /// the access tokens already issued. Only for verifying tokens minted elsewhere without
    /// a `jti`.
    pub fn without_revocation(mut self) -> Self {
        self.revocation = None;
        self
    }

    /// The clock of issuance and verification (`iat`, `exp`, `nbf`), of revocations and of
    /// the sessions of a [`TokenService`](super::refresh::TokenService) on this verifier;
    /// the system's by default. Tests move a [`FakeClock`](crate::clock::FakeClock).
    pub fn clock(mut self, clock: Arc<dyn WallClock>) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the configuration: key strength, parsable keys, issuer, audience, lifetime.
    pub fn build(self) -> Result<JwtAuth, AuthConfigError> {
        install_crypto_provider();
        let issuer = self
            .issuer
            .filter(|i| !i.is_empty())
            .ok_or(AuthConfigError::MissingIssuer)?;
        let audience = self
            .audience
            .filter(|a| !a.is_empty())
            .ok_or(AuthConfigError::MissingAudience)?;
        if self.lifetime > MAX_ACCESS_LIFETIME || self.lifetime.is_zero() {
            return Err(AuthConfigError::LifetimeTooLong(self.lifetime));
        }
        let bad = |e: jsonwebtoken::errors::Error| AuthConfigError::BadKey(e.to_string());
        let (alg, decoding, encoding) = match self.key {
            KeyMaterial::Hmac(secret) => {
                if secret.len() < MIN_HMAC_KEY_BYTES {
                    return Err(AuthConfigError::WeakHmacKey {
                        bytes: secret.len(),
                    });
                }
                (
                    Algorithm::HS256,
                    DecodingKey::from_secret(&secret),
                    Some(EncodingKey::from_secret(&secret)),
                )
            }
            KeyMaterial::Pem {
                alg,
                public,
                private,
            } => {
                let decoding = match alg {
                    Algorithm::EdDSA => DecodingKey::from_ed_pem(&public),
                    Algorithm::ES256 => DecodingKey::from_ec_pem(&public),
                    _ => DecodingKey::from_rsa_pem(&public),
                }
                .map_err(bad)?;
                let encoding = match private {
                    None => None,
                    Some(pem) => Some(
                        match alg {
                            Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
                            Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
                            _ => EncodingKey::from_rsa_pem(&pem),
                        }
                        .map_err(bad)?,
                    ),
                };
                (alg, decoding, encoding)
            }
        };
        let validation = validation_for(alg, &issuer, &[audience.as_str()], self.leeway);
        Ok(JwtAuth {
            inner: Arc::new(Inner {
                keys: Keys::Fixed {
                    alg,
                    decoding,
                    encoding,
                    validation,
                },
                issuer,
                audience,
                leeway: self.leeway.as_secs(),
                lifetime: self.lifetime,
                max_lifetime: MAX_ACCESS_LIFETIME.as_secs(),
                revocation: self.revocation,
                timed_revocation: OnceLock::new(),
                app: OnceLock::new(),
                clock: self.clock,
            }),
        })
    }
}

/// The signature, `iss`, `aud` and claim-presence checks of `jsonwebtoken` for one
/// algorithm; `exp` and `nbf` are checked against the configured clock instead.
pub(super) fn validation_for(
    alg: Algorithm,
    issuer: &str,
    audiences: &[&str],
    leeway: Duration,
) -> Validation {
    let mut validation = Validation::new(alg);
    validation.algorithms = vec![alg];
    validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
    validation.set_issuer(&[issuer]);
    validation.set_audience(audiences);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.leeway = leeway.as_secs();
    validation
}

/// Installs the pure-Rust crypto backend of `jsonwebtoken` as the process default (once),
/// so that another crate enabling a second backend cannot make verification panic.
pub(super) fn install_crypto_provider() {
    let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
        &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER,
    );
}

/// Where the verification keys come from.
enum Keys {
    /// One key given at start-up (and, for issuing, its private half or the secret).
    Fixed {
        alg: Algorithm,
        decoding: DecodingKey,
        encoding: Option<EncodingKey>,
        validation: Validation,
    },
    /// An identity provider's JWK set, refreshed in the background.
    #[cfg(feature = "oidc")]
    Provider(super::oidc::ProviderVerifier),
}

struct Inner {
    keys: Keys,
    issuer: String,
    audience: String,
    leeway: u64,
    lifetime: Duration,
    /// The longest lifetime (`exp` - `iat`) a verified token may have, in seconds: 15
    /// minutes, unless a provider's configuration raised it.
    max_lifetime: u64,
    revocation: Option<Arc<dyn Revocation>>,
    /// `revocation` in a timing decorator, set by the first app with metrics built with
    /// this verifier (or a clone), for every clone.
    timed_revocation: OnceLock<Arc<dyn Revocation>>,
    /// The first app built with this verifier (or a clone): where its revocations made
    /// outside a request are audited. Weak, since the app holds the verifier.
    app: OnceLock<std::sync::Weak<crate::api::Shared>>,
    clock: Arc<dyn WallClock>,
}

/// Verifies, and with a signing key issues, access tokens. Cheap to clone.
///
/// ```
/// use secure_api_runtime::auth::jwt::{AccessGrant, JwtAuth};
///
/// let auth = JwtAuth::hs256(b"0123456789abcdef0123456789abcdef".to_vec())
///     .issuer("https://api.example.com")
///     .audience("example-api")
///     .build()
///     .unwrap();
/// let token = auth.issue(&AccessGrant::new("alice").roles(["admin"])).unwrap();
/// # futures_util::FutureExt::now_or_never(async {
/// let principal = auth.verify(&token).await.unwrap();
/// assert_eq!(principal.subject, "alice");
/// assert!(principal.has_role("admin"));
///
/// // Revoking the subject refuses its outstanding tokens at once.
/// auth.revoke_subject("alice").await.unwrap();
/// assert!(auth.verify(&token).await.is_err());
/// # }).unwrap();
///
/// // Keys shorter than 256 bits are refused at start-up.
/// assert!(JwtAuth::hs256(b"secret".to_vec()).issuer("i").audience("a").build().is_err());
/// ```
#[derive(Clone)]
pub struct JwtAuth {
    inner: Arc<Inner>,
}

impl fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("JwtAuth");
        match &self.inner.keys {
            Keys::Fixed { alg, .. } => d.field("alg", alg),
            #[cfg(feature = "oidc")]
            Keys::Provider(provider) => d.field("keys", provider),
        };
        d.field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .finish_non_exhaustive()
    }
}

/// What an access token grants: the subject and its roles, permissions and tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessGrant {
    /// The subject.
    pub subject: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Permissions.
    pub permissions: Vec<String>,
    /// The rate-limit tier.
    pub tier: Option<String>,
}

impl AccessGrant {
    /// A grant for `subject` with no roles or permissions.
    pub fn new(subject: impl Into<String>) -> Self {
        AccessGrant {
            subject: subject.into(),
            roles: Vec::new(),
            permissions: Vec::new(),
            tier: None,
        }
    }

    /// Sets the roles.
    pub fn roles<I: IntoIterator<Item = S>, S: Into<String>>(mut self, roles: I) -> Self {
        self.roles = roles.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the permissions.
    pub fn permissions<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        permissions: I,
    ) -> Self {
        self.permissions = permissions.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the rate-limit tier.
    pub fn tier(mut self, tier: impl Into<String>) -> Self {
        self.tier = Some(tier.into());
        self
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    iss: serde_json::Value,
    aud: serde_json::Value,
    exp: u64,
    iat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    permissions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tier: Option<String>,
}

/// Random bytes from the OS generator.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    fill_random(&mut buf);
    buf
}

fn fill_random(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        // The OS generator failed: fall back to UUIDv4 randomness rather than issue a
        // guessable id.
        for chunk in buf.chunks_mut(16) {
            let r = uuid::Uuid::new_v4();
            chunk.copy_from_slice(&r.as_bytes()[..chunk.len()]);
        }
    }
}

/// A random id of `bytes` random bytes, base64url.
pub(crate) fn random_id(bytes: usize) -> String {
    use base64::Engine;
    let mut buf = vec![0u8; bytes];
    fill_random(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

impl JwtAuth {
    /// HS256 with a shared secret of at least 256 bits (checked by `build`).
    pub fn hs256(secret: impl Into<Vec<u8>>) -> JwtAuthBuilder {
        Self::builder(KeyMaterial::Hmac(secret.into()))
    }

    /// EdDSA (Ed25519) with a public key in PEM; add `.signing_key_pem` to issue.
    pub fn eddsa_pem(public: impl Into<Vec<u8>>) -> JwtAuthBuilder {
        Self::pem(Algorithm::EdDSA, public.into())
    }

    /// ES256 with a public key in PEM; add `.signing_key_pem` to issue.
    pub fn es256_pem(public: impl Into<Vec<u8>>) -> JwtAuthBuilder {
        Self::pem(Algorithm::ES256, public.into())
    }

    /// RS256 with a public key in PEM; add `.signing_key_pem` to issue.
    pub fn rs256_pem(public: impl Into<Vec<u8>>) -> JwtAuthBuilder {
        Self::pem(Algorithm::RS256, public.into())
    }

    fn pem(alg: Algorithm, public: Vec<u8>) -> JwtAuthBuilder {
        Self::builder(KeyMaterial::Pem {
            alg,
            public,
            private: None,
        })
    }

    fn builder(key: KeyMaterial) -> JwtAuthBuilder {
        JwtAuthBuilder {
            key,
            issuer: None,
            audience: None,
            leeway: DEFAULT_LEEWAY,
            lifetime: DEFAULT_ACCESS_LIFETIME,
            revocation: Some(Arc::new(RevokedTokens::new())),
            clock: Arc::new(SystemWallClock),
        }
    }

    /// The current time of this verifier's clock, seconds since the Unix epoch.
    pub fn now(&self) -> u64 {
        self.inner.clock.unix_secs()
    }

    /// The clock-skew allowance.
    pub fn leeway(&self) -> Duration {
        Duration::from_secs(self.inner.leeway)
    }

    /// Whether revocations can be recorded (see [`JwtAuthBuilder::without_revocation`]).
    pub fn has_revocation(&self) -> bool {
        self.inner.revocation.is_some()
    }

    fn revocation(&self) -> Result<&dyn Revocation, StoreError> {
        self.revocation_store()
            .map(|store| &**store)
            .ok_or_else(|| StoreError::Backend(Box::new(NoRevocationStore)))
    }

    /// The revocation store, timed when an app with metrics instrumented it.
    #[inline]
    pub(crate) fn revocation_store(&self) -> Option<&Arc<dyn Revocation>> {
        self.inner
            .timed_revocation
            .get()
            .or(self.inner.revocation.as_ref())
    }

    /// Makes `api` the app this verifier's revocations outside a request are audited
    /// through, unless an app was already.
    pub(crate) fn attach(&self, api: &SecureApi) {
        self.inner.app.get_or_init(|| api.downgrade());
    }

    /// The `revoked` event of a revocation made through this verifier's own methods:
    /// through the app of the request being handled, else the app it was built into, else
    /// [`SecureApi::global`].
    fn audit_revoked(&self, scope: RevokedScope, subject: Option<&str>, session: Option<String>) {
        let app = self.inner.app.get().and_then(SecureApi::upgrade);
        crate::telemetry::emit_from_handler(app.as_ref(), AuditKind::Revoked, None, || {
            AuditDetail::Revoked {
                scope,
                subject: subject.map(str::to_owned),
                session,
            }
        });
    }

    /// Puts the revocation store in the decorator `wrap` makes of it (a timing one), for
    /// this verifier and every clone of it, unless that was done already.
    pub(crate) fn time_revocation(
        &self,
        wrap: impl FnOnce(&Arc<dyn Revocation>) -> Arc<dyn Revocation>,
    ) {
        if let Some(store) = &self.inner.revocation {
            self.inner.timed_revocation.get_or_init(|| wrap(store));
        }
    }

    /// The end of an entry matching tokens that verify at `now` at the latest: a token
    /// issued up to a leeway ahead of this clock lives at most 15 minutes and is accepted
    /// for a leeway after its `exp`.
    fn horizon(&self, now: u64) -> u64 {
        now + self.inner.max_lifetime + 2 * self.inner.leeway
    }

    /// Revokes the access token with id `token_id` that expires at `expires_at` (its
    /// `exp`): refused until `exp` + leeway, after which it would be refused anyway.
    ///
    /// Emits a `revoked` [audit event](crate::telemetry::audit) (scope `token`) through
    /// the app of the endpoint request being handled, else the first app this verifier (or
    /// a clone) was built into with
    /// [`SecureApiBuilder::jwt`](crate::api::SecureApiBuilder::jwt), else the process-wide
    /// [`SecureApi::global`].
    pub async fn revoke_token(&self, token_id: &str, expires_at: u64) -> Result<(), StoreError> {
        self.revoke_token_unaudited(token_id, expires_at).await?;
        self.audit_revoked(RevokedScope::Token, None, None);
        Ok(())
    }

    /// [`revoke_token`](Self::revoke_token) without its event: for callers that emit
    /// their own (the token service's logout).
    pub(crate) async fn revoke_token_unaudited(
        &self,
        token_id: &str,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        let now = self.now();
        self.revocation()?
            .revoke_token(token_id, expires_at.saturating_add(self.inner.leeway), now)
            .await
    }

    /// Revokes every access token of session `session_id` (the `sid` of tokens issued by a
    /// [`TokenService`](super::refresh::TokenService)), for as long as any could verify.
    ///
    /// Emits a `revoked` [audit event](crate::telemetry::audit) (scope `session`), as
    /// [`revoke_token`](Self::revoke_token) does.
    pub async fn revoke_session(&self, session_id: &str) -> Result<(), StoreError> {
        self.revoke_session_unaudited(session_id).await?;
        self.audit_revoked(
            RevokedScope::Session,
            None,
            Some(super::refresh::session_label(session_id)),
        );
        Ok(())
    }

    /// [`revoke_session`](Self::revoke_session) without its event.
    pub(crate) async fn revoke_session_unaudited(
        &self,
        session_id: &str,
    ) -> Result<(), StoreError> {
        let now = self.now();
        self.revocation()?
            .revoke_session(session_id, self.horizon(now), now)
            .await
    }

    /// Revokes every access token of `subject` issued up to now (`iat` at or before this
    /// second; see [`revocation`](super::revocation) for the one-second granularity). The
    /// entry is kept for the longest access-token lifetime (15 minutes, or a provider's
    /// raised maximum) plus the leeway.
    ///
    /// Emits a `revoked` [audit event](crate::telemetry::audit) (scope `subject`), as
    /// [`revoke_token`](Self::revoke_token) does.
    pub async fn revoke_subject(&self, subject: &str) -> Result<(), StoreError> {
        self.revoke_subject_unaudited(subject).await?;
        self.audit_revoked(RevokedScope::Subject, Some(subject), None);
        Ok(())
    }

    /// [`revoke_subject`](Self::revoke_subject) without its event.
    pub(crate) async fn revoke_subject_unaudited(&self, subject: &str) -> Result<(), StoreError> {
        let now = self.now();
        let until = now + self.inner.max_lifetime + self.inner.leeway;
        self.revocation()?
            .revoke_subject(subject, now, until, now)
            .await
    }

    /// The configured access-token lifetime.
    pub fn access_lifetime(&self) -> Duration {
        self.inner.lifetime
    }

    /// Issues an access token with the configured lifetime.
    pub fn issue(&self, grant: &AccessGrant) -> Result<String, AuthConfigError> {
        self.issue_for(grant, self.inner.lifetime)
    }

    /// Issues an access token living `lifetime`; over 15 minutes is refused.
    pub fn issue_for(
        &self,
        grant: &AccessGrant,
        lifetime: Duration,
    ) -> Result<String, AuthConfigError> {
        self.issue_with(grant, lifetime, None)
    }

    /// Issues an access token of session `session_id` (the `sid` claim).
    pub(crate) fn issue_in_session(
        &self,
        grant: &AccessGrant,
        session_id: &str,
    ) -> Result<String, AuthConfigError> {
        self.issue_with(grant, self.inner.lifetime, Some(session_id))
    }

    fn issue_with(
        &self,
        grant: &AccessGrant,
        lifetime: Duration,
        session_id: Option<&str>,
    ) -> Result<String, AuthConfigError> {
        if lifetime > MAX_ACCESS_LIFETIME || lifetime.is_zero() {
            return Err(AuthConfigError::LifetimeTooLong(lifetime));
        }
        let Keys::Fixed {
            alg,
            encoding: Some(key),
            ..
        } = &self.inner.keys
        else {
            return Err(AuthConfigError::NoSigningKey);
        };
        let now = self.now();
        let claims = Claims {
            sub: grant.subject.clone(),
            iss: self.inner.issuer.clone().into(),
            aud: self.inner.audience.clone().into(),
            exp: now + lifetime.as_secs(),
            iat: now,
            nbf: Some(now),
            jti: Some(random_id(16)),
            sid: session_id.map(str::to_owned),
            roles: grant.roles.clone(),
            permissions: grant.permissions.clone(),
            tier: grant.tier.clone(),
        };
        let mut header = Header::new(*alg);
        header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
        jsonwebtoken::encode(&header, &claims, key)
            .map_err(|e| AuthConfigError::Signing(e.to_string()))
    }

    /// Verifies an access token: signature with the one allowed algorithm, `typ`, `iss`,
    /// `aud`, `sub`, `exp`, `nbf` and `iat` (with the leeway), a lifetime of at most 15
    /// minutes, a `jti` when there is a revocation store, and then the revocation store
    /// (token, session and subject). Which check failed is logged at debug level and never
    /// returned. A revocation store that cannot answer is [`AuthFailure::Unavailable`].
    ///
    /// With an identity provider's keys, a token naming a key id that is not in the key set
    /// may wait for a refresh of the set (see `auth::oidc`, feature `oidc`), at most the fetch
    /// timeouts of one refresh.
    pub fn verify<'a>(
        &'a self,
        token: &'a str,
    ) -> impl Future<Output = Result<Principal, AuthFailure>> + 'a {
        // Two futures, so that the fixed-key path's is what it was (no room for the
        // provider's state); the provider's is boxed.
        #[cfg(feature = "oidc")]
        if let Keys::Provider(provider) = &self.inner.keys {
            return futures_util::future::Either::Left(Box::pin(async move {
                let now = self.now();
                let (principal, issued_at) = provider.verify(token, now, self.checks()).await?;
                self.unless_revoked(principal, issued_at, now).await
            }));
        }
        let fixed = self.verify_fixed(token);
        #[cfg(feature = "oidc")]
        let fixed = futures_util::future::Either::Right(fixed);
        fixed
    }

    async fn verify_fixed(&self, token: &str) -> Result<Principal, AuthFailure> {
        let now = self.now();
        let (principal, issued_at) = self.decode(token, now)?;
        // `decode` refuses tokens without a `jti` while there is a revocation store.
        self.unless_revoked(principal, issued_at, now).await
    }

    /// The revocation check of a verified token: of the fixed keys, or of a provider's
    /// (which may have no `jti`).
    async fn unless_revoked(
        &self,
        principal: Principal,
        issued_at: u64,
        now: u64,
    ) -> Result<Principal, AuthFailure> {
        let Some(revocation) = self.revocation_store() else {
            return Ok(principal);
        };
        let token = TokenRef {
            token_id: principal.token_id.as_deref().unwrap_or_default(),
            subject: &principal.subject,
            session_id: principal.session_id.as_deref(),
            issued_at,
        };
        match revocation.is_revoked(token, now).await {
            Ok(false) => Ok(principal),
            Ok(true) => {
                log::debug!(target: "secure_api::auth", "token rejected: revoked");
                Err(AuthFailure::Revoked)
            }
            Err(e) => {
                log::error!(target: "secure_api::auth", "revocation store failed: {e}");
                Err(AuthFailure::Unavailable)
            }
        }
    }

    /// The signature and claims checks of [`verify`](Self::verify), without the revocation
    /// store: a revoked token passes. For code that cannot wait on a store; prefer `verify`.
    /// With an identity provider's keys, a token naming an unknown key id never waits: it
    /// fails (and may start a refresh of the key set for the next request).
    pub fn verify_claims(&self, token: &str) -> Result<Principal, AuthFailure> {
        let now = self.now();
        #[cfg(feature = "oidc")]
        if let Keys::Provider(provider) = &self.inner.keys {
            return provider
                .verify_now(token, now, self.checks())
                .map(|(principal, _)| principal);
        }
        self.decode(token, now).map(|(principal, _)| principal)
    }

    /// The claim checks every token gets, whatever its keys.
    #[cfg(feature = "oidc")]
    fn checks(&self) -> Checks {
        Checks {
            leeway: self.inner.leeway,
            max_lifetime: self.inner.max_lifetime,
        }
    }

    /// The identity provider's key set of a verifier built with
    /// [`JwtAuth::oidc`] or [`JwtAuth::jwks`]: its status, and a refresh on demand. `None`
    /// for fixed keys.
    #[cfg(feature = "oidc")]
    pub fn provider_keys(&self) -> Option<super::oidc::ProviderKeys> {
        match &self.inner.keys {
            Keys::Provider(provider) => Some(provider.handle()),
            Keys::Fixed { .. } => None,
        }
    }

    /// A verifier of an identity provider's tokens (see [`oidc`](super::oidc)).
    #[cfg(feature = "oidc")]
    pub(super) fn from_provider(
        provider: super::oidc::ProviderVerifier,
        issuer: String,
        audience: String,
        leeway: Duration,
        max_lifetime: Duration,
        revocation: Option<Arc<dyn Revocation>>,
        clock: Arc<dyn WallClock>,
    ) -> JwtAuth {
        JwtAuth {
            inner: Arc::new(Inner {
                keys: Keys::Provider(provider),
                issuer,
                audience,
                leeway: leeway.as_secs(),
                lifetime: DEFAULT_ACCESS_LIFETIME.min(max_lifetime),
                max_lifetime: max_lifetime.as_secs(),
                revocation,
                timed_revocation: OnceLock::new(),
                app: OnceLock::new(),
                clock,
            }),
        }
    }

    fn decode(&self, token: &str, now: u64) -> Result<(Principal, u64), AuthFailure> {
        let inner = &*self.inner;
        let fail = |why: &dyn fmt::Display| {
            log::debug!(target: "secure_api::auth", "token rejected: {why}");
            AuthFailure::Invalid
        };
        // Refutable only with the `oidc` feature (provider keys never get here).
        #[allow(irrefutable_let_patterns)]
        let Keys::Fixed {
            decoding,
            validation,
            ..
        } = &inner.keys
        else {
            return Err(fail(&"no fixed key"));
        };
        if token.len() > MAX_TOKEN_BYTES {
            return Err(fail(&"token too long"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| fail(&error_kind(&e)))?;
        let typ_ok = header.typ.as_deref().is_some_and(|t| {
            t.eq_ignore_ascii_case(ACCESS_TOKEN_TYP) || t.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            // Not the value: the header is the client's text.
            return Err(fail(&format_args!("typ is not {ACCESS_TOKEN_TYP}")));
        }
        let data = jsonwebtoken::decode::<Claims>(token, decoding, validation)
            .map_err(|e| fail(&error_kind(&e)))?;
        let claims = data.claims;
        // As jsonwebtoken would, against the configured clock.
        if now > claims.exp.saturating_add(inner.leeway) {
            return Err(fail(&"expired"));
        }
        if claims.nbf.is_some_and(|nbf| nbf > now + inner.leeway) {
            return Err(fail(&"not yet valid"));
        }
        if claims.iat > now + inner.leeway {
            return Err(fail(&"iat in the future"));
        }
        if claims.exp.saturating_sub(claims.iat) > MAX_ACCESS_LIFETIME.as_secs() {
            return Err(fail(&"lifetime over 15 minutes"));
        }
        if claims.sub.is_empty() {
            return Err(fail(&"empty sub"));
        }
        if inner.revocation.is_some() && claims.jti.as_deref().is_none_or(str::is_empty) {
            return Err(fail(&"no jti, and revocation is configured"));
        }
        Ok((
            Principal {
                subject: claims.sub,
                roles: claims.roles,
                permissions: claims.permissions,
                tier: claims.tier.unwrap_or_else(|| DEFAULT_TIER.to_owned()),
                token_id: claims.jti,
                session_id: claims.sid,
            },
            claims.iat,
        ))
    }
}

/// The claim checks of a provider's tokens that the verifier decides.
#[cfg(feature = "oidc")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Checks {
    /// Clock-skew allowance, seconds.
    pub(crate) leeway: u64,
    /// The longest `exp` - `iat`, seconds.
    pub(crate) max_lifetime: u64,
}

/// What is logged of a rejected token: the kind of failure, never the token's text. The
/// errors of `jsonwebtoken` quote claim values ("invalid type: string \"...\"") and the
/// claims are the client's input.
pub(super) fn error_kind(err: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::Json(e) => format!(
            "claims are not the expected JSON ({:?} error)",
            e.classify()
        ),
        ErrorKind::Base64(_) => "not base64url".to_owned(),
        ErrorKind::Utf8(_) => "not UTF-8".to_owned(),
        ErrorKind::MissingRequiredClaim(claim) => format!("missing required claim {claim}"),
        ErrorKind::InvalidClaimFormat(claim) => format!("claim {claim} has the wrong format"),
        ErrorKind::InvalidRsaKey(_) | ErrorKind::Signing(_) => "key error".to_owned(),
        kind => format!("{kind:?}"),
    }
}
