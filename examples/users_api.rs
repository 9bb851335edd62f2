//! A small user-management API built with every secure-api feature: `POST /api/users`
//! creates a user from a validated and normalised body (idempotent, rate limited per client
//! and by tier), `POST /api/login` hands out a short-lived access token
//! and a rotating refresh token, `POST /api/token/refresh` rotates it, `POST /api/logout`
//! ends the session, `GET /api/me` and `GET /api/users/{id}` need a valid token (the latter
//! only for the user themself or an admin), and `DELETE /api/users/{id}` is for admins and
//! ends every session of the deleted user at once. `GET /openapi.json` serves the OpenAPI 3.1
//! document of all of them, generated from their annotations (the runtime's `openapi`
//! feature): the request schemas with every rule's constraint, the security requirements,
//! rate limits, `Idempotency-Key` parameters and problem responses.
//!
//! Login is protected twice: at most 5 attempts a minute per address (the endpoint's
//! `rate`), and at most 10 failed attempts per 15 minutes per account, whatever addresses
//! they come from (`LoginGuard`, in the app's rate-limit store). Passwords are checked on
//! the blocking pool, at most one hash per core at a time, so logins never stall a worker.
//!
//! ```text
//! cargo run --example users_api            # listens on 127.0.0.1:8080 (BIND overrides)
//! curl -i -X POST localhost:8080/api/users -H 'content-type: application/json' \
//!      -H "Idempotency-Key: $(uuidgen)" \
//!      -d '{"username": " Alice ", "email": "ALICE@example.com", "age": 30}'
//! curl -s -X POST localhost:8080/api/login -H 'content-type: application/json' \
//!      -d '{"username": "alice", "password": "<printed at start-up>"}'
//! curl -s localhost:8080/api/me -H "Authorization: Bearer <access_token>"
//! curl -i -X POST localhost:8080/api/logout -H "Authorization: Bearer <access_token>"
//! curl -s localhost:8080/openapi.json
//! ```
//!
//! At start-up it logs its endpoint inventory: every endpoint with its auth rule, rate,
//! tiers, key, idempotency and body limit, then the review's findings (its login, refresh,
//! logout and delete are deliberately not idempotent, so it leaves strict mode off); the
//! `SecureApi` build does it, once per process.
//!
//! Environment: `BIND` (default `127.0.0.1:8080`), `WORKERS` (default: one per core),
//! `TRUSTED_PROXY` (networks whose `X-Forwarded-For` is believed), `JWT_SECRET` (at least
//! 32 bytes; a random one is generated, with a warning, when unset), `KEY_SECRET` (at least
//! 32 bytes: the secret that rate-limit keys and the refresh-token key are derived from;
//! random per process when unset), `DEMO_PASSWORD` (the demo users' password; generated and
//! printed when unset), `RUST_LOG` (default `info`), `METRICS_BIND` (see below), and for
//! Redis `REDIS_URL`, `REDIS_KEY_PREFIX` (default `users_api`) and `REDIS_TIMEOUT_MS`
//! (default 50).
//!
//! # Security telemetry
//!
//! Every security decision is an audit event, logged with target `secure_api::audit` at
//! `info` (`warn` for refresh-token reuse and a tripped login limit, `error` for a store
//! that fails closed), its fields as key-values: `RUST_LOG`'s default (`info`) shows them;
//! `RUST_LOG=warn,secure_api::audit=info` keeps only them and the warnings.
//!
//! With `METRICS_BIND` set (`127.0.0.1:9100`), the app records metrics (decisions by
//! endpoint and outcome, 429s by tier, audit events, store failures, store latency and
//! sizes) and a second listener on that address serves them as Prometheus text at
//! `GET /metrics`. It is never mounted on the public listener (`BIND`), where `/metrics` is
//! the usual 404 problem: bind it to a loopback or internal address that only the scraper
//! reaches. Without `METRICS_BIND` no recorder is installed and nothing is counted.
//!
//! ```text
//! METRICS_BIND=127.0.0.1:9100 cargo run --example users_api &
//! curl -s localhost:9100/metrics | grep secure_api_decisions_total
//! ```
//!
//! # One instance or several
//!
//! Without `REDIS_URL` every store is in this process: nothing to set up, right for one
//! instance. With `REDIS_URL` every store is on that Redis: the endpoints' rate limits and
//! the login guard's per-account limit, idempotency records, refresh sessions, and
//! access-token revocations (logout, deleted users). Instances started with the same
//! `REDIS_URL`, `JWT_SECRET`, `KEY_SECRET` (both required with `REDIS_URL`) and
//! `DEMO_PASSWORD` then act as one: a client gets its limit once across all of them, a
//! retried `Idempotency-Key` replays wherever it lands, a refresh token works (once) on any
//! of them, and a logout on one is refused by all. Each store fails closed: while Redis is
//! unreachable, requests that need it get a 503 with `Retry-After`, and service comes back
//! with Redis, without a restart. (The demo's accounts themselves stay a map per process: a
//! real app keeps them in its database.)
//!
//! ```text
//! export REDIS_URL=redis://127.0.0.1:6379/ KEY_SECRET=$(openssl rand -hex 32) \
//!        JWT_SECRET=$(openssl rand -hex 32) DEMO_PASSWORD=$(openssl rand -hex 12)
//! BIND=127.0.0.1:8081 cargo run --example users_api &
//! BIND=127.0.0.1:8082 cargo run --example users_api &
//! ```
//!
//! # Tokens from an identity provider
//!
//! With `OIDC_ISSUER` set (feature `oidc`, on by default), the example is a resource server:
//! it verifies the provider's access tokens (OIDC discovery, keys refreshed in the
//! background; see `secure_api_runtime::auth::oidc`) instead of issuing its own, and
//! `OIDC_AUDIENCE` (required) is the audience they must carry. Logins happen at the
//! provider, so `POST /api/login`, `/api/token/refresh` and `/api/logout` are not mounted
//! (404); `JWT_SECRET` and `DEMO_PASSWORD` are not used. `GET /api/me` shows the verified
//! principal; `DELETE /api/users/{id}` needs the `admin` role and refuses the subject's
//! outstanding tokens at once. `OIDC_ROLES_CLAIM` names where roles are, as JSON Pointers
//! separated by commas (`/realm_access/roles` for Keycloak's realm roles;
//! `/https:~1~1example.com~1roles` for Auth0's claim `https://example.com/roles`), and
//! `OIDC_TYP=jwt` accepts tokens with `typ: JWT` or none (Keycloak's) besides RFC 9068's
//! `at+jwt`. The issuer must be `https`; plain `http` is accepted on a loopback host, for
//! a provider run locally. Start-up fails, saying why, when the provider cannot be
//! reached or its discovery document names another issuer.
//!
//! ```text
//! OIDC_ISSUER=http://127.0.0.1:8180/realms/acme OIDC_AUDIENCE=users-api \
//!   OIDC_ROLES_CLAIM=/realm_access/roles OIDC_TYP=jwt cargo run --example users_api
//! ```

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use hmac::{Hmac, Mac};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use secure_api_runtime::api::MIN_KEY_SECRET_LEN;
use secure_api_runtime::auth::jwt::{AccessGrant, JwtAuth, MIN_HMAC_KEY_BYTES};
use secure_api_runtime::auth::login::LoginGuard;
#[cfg(feature = "oidc")]
use secure_api_runtime::auth::oidc::TokenTyp;
use secure_api_runtime::auth::password::Passwords;
use secure_api_runtime::auth::refresh::{
    AccountStatus, MemoryRefreshStore, RefreshStore, SessionInfo, TokenService,
};
use secure_api_runtime::auth::revocation::Revocation;
use secure_api_runtime::idempotency::IdempotencyStore;
use secure_api_runtime::openapi::utoipa::openapi::Info;
use secure_api_runtime::prelude::*;
#[cfg(feature = "redis")]
use secure_api_runtime::redis::RedisBackend;
use secure_api_runtime::throttle::RateLimitStore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The request body of `POST /api/users`.
#[derive(Debug, Deserialize, Serialize, SecureInput)]
pub struct CreateUserRequest {
    /// The new user's name: 3 to 32 of `a-z0-9_-` after trimming and lowercasing, and
    /// nothing that looks like a reserved name.
    #[secure(
        trim,
        lowercase,
        length(min = 3, max = 32),
        pattern = "[a-z0-9_-]+",
        deny("admin", "root", "null", "undefined")
    )]
    pub username: String,
    /// The user's e-mail address, lowercased.
    #[secure(trim, lowercase, length(max = 255), email)]
    pub email: String,
    /// The user's age in years.
    #[secure(range(min = 0, max = 150))]
    pub age: i32,
}

/// A user account of the demo.
#[derive(Debug, Clone)]
pub struct Account {
    /// The argon2id hash of the password (PHC string).
    pub password_hash: String,
    /// Roles granted in access tokens (`admin` for the admin endpoints).
    pub roles: Vec<String>,
    /// Permissions granted in access tokens.
    pub permissions: Vec<String>,
    /// The rate-limit tier of the account's requests.
    pub tier: String,
    /// The account's e-mail address.
    pub email: String,
}

/// The demo's accounts by username: the source of logins and of the account check of
/// every refresh.
pub type Users = Arc<RwLock<HashMap<String, Account>>>;

/// The example's state: built once, shared by every worker.
pub struct AppState {
    /// The accounts.
    pub users: Users,
    /// The password hasher (shared with `login`: the same limits and counters).
    pub passwords: Passwords,
    /// Login protection: the per-account failure limit and the off-thread password check.
    pub login: LoginGuard,
    /// Sessions: login, refresh, logout and revocation of a user's sessions.
    pub tokens: TokenService,
    /// The OpenAPI document of this API, as JSON ([`openapi_document`]): built once.
    pub openapi: String,
}

/// Creates a user. Anonymous clients are limited by IP to 10 requests per second;
/// authenticated ones by principal, by their tier. Retries with the same `Idempotency-Key`
/// get the first response back instead of creating the user twice.
#[secure_endpoint(
    post("/api/users"),
    rate = "100/s",
    tier(anonymous = "10/s", user = "100/s", premium = "1000/s"),
    max_body = "16KiB",
    idempotent
)]
async fn create_user(input: Valid<CreateUserRequest>) -> Result<HttpResponse, ApiError> {
    let user = input.into_inner();
    log::info!("created user {}", user.username);
    Ok(HttpResponse::Created()
        .insert_header(("location", format!("/api/users/{}", user.username)))
        .json(serde_json::json!({
            "user": user.username,
            "email": user.email,
        })))
}

/// `POST /api/login` body.
#[derive(Deserialize, SecureInput)]
pub struct LoginRequest {
    /// The account name, trimmed and lowercased.
    #[secure(trim, lowercase, length(min = 1, max = 64))]
    pub username: String,
    /// The password, as sent.
    #[secure(length(min = 1, max = 1024))]
    pub password: String,
}

/// Logs in: one `invalid-credentials` 401 for an unknown user and for a wrong password,
/// with the same password-hash work in both cases, done on the blocking pool (a 503 with
/// `Retry-After` when too many hashes are queued). At most 5 attempts per minute per
/// address, in any window; at most 10 failures per 15 minutes per account name, from any
/// number of addresses, after which attempts get a 429 with `Retry-After` before any
/// hashing, the same for names that do not exist. A successful login does not count.
#[secure_endpoint(
    post("/api/login"),
    public,
    rate = "5/min",
    algorithm = "sliding_window",
    key = "ip"
)]
async fn login(
    state: web::Data<AppState>,
    input: Valid<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let LoginRequest { username, password } = input.into_inner();
    let account = state
        .users
        .read()
        .map_err(|_| ApiError::internal("user store poisoned"))?
        .get(&username)
        .cloned();
    state
        .login
        .verify(
            &username,
            account.as_ref().map(|a| a.password_hash.as_str()),
            &password,
        )
        .await?;
    // `verify` only succeeds for a known user.
    let account = account.ok_or_else(|| ApiError::internal("verified an unknown user"))?;
    let grant = AccessGrant::new(username)
        .roles(account.roles)
        .permissions(account.permissions)
        .tier(account.tier);
    let pair = state.tokens.login(grant).await?;
    Ok(HttpResponse::Ok().json(pair))
}

/// `POST /api/token/refresh` body.
#[derive(Deserialize, SecureInput)]
pub struct RefreshRequest {
    /// The refresh token of the last login or refresh.
    #[secure(length(min = 1, max = 256))]
    pub refresh_token: String,
}

/// Exchanges a refresh token for a new pair; the old one is spent. The new access token
/// carries the account's current roles (a deleted user gets a 401). Presenting a spent
/// token ends the whole session.
#[secure_endpoint(post("/api/token/refresh"), public, rate = "30/min", key = "ip")]
async fn refresh(
    state: web::Data<AppState>,
    input: Valid<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let pair = state
        .tokens
        .refresh(&input.into_inner().refresh_token)
        .await?;
    Ok(HttpResponse::Ok().json(pair))
}

/// Logs out: ends the session of the presented access token. Its refresh token and every
/// access token of the session, this one included, are refused from now on.
#[secure_endpoint(post("/api/logout"), auth)]
async fn logout(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    state.tokens.logout(&principal).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The verified caller.
#[secure_endpoint(get("/api/me"), auth)]
async fn me(principal: Principal) -> HttpResponse {
    HttpResponse::Ok().json(principal)
}

/// `{id}` path parameter.
#[derive(Deserialize, SecureInput)]
pub struct UserId {
    /// The username.
    #[secure(length(min = 1, max = 64), pattern = "[a-z0-9_-]+")]
    pub id: String,
}

/// A user's profile: its owner or an admin. The id in the URL names the resource; the
/// verified token decides who may read it.
#[secure_endpoint(get("/api/users/{id}"), auth)]
async fn get_user(
    state: web::Data<AppState>,
    principal: Principal,
    path: ValidPath<UserId>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner().id;
    principal.require_owner_or_role(&id, "admin")?;
    let users = state
        .users
        .read()
        .map_err(|_| ApiError::internal("user store poisoned"))?;
    let account = users.get(&id).ok_or(ApiError::new(problems::NOT_FOUND))?;
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({ "id": id, "email": account.email, "tier": account.tier })))
}

/// Deletes a user: admins only. The user's sessions end at once: their refresh tokens and
/// their outstanding access tokens are refused from the next request on.
#[secure_endpoint(delete("/api/users/{id}"), auth(roles("admin")))]
async fn delete_user(
    state: web::Data<AppState>,
    path: ValidPath<UserId>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner().id;
    let removed = state
        .users
        .write()
        .map_err(|_| ApiError::internal("user store poisoned"))?
        .remove(&id);
    if removed.is_none() {
        return Err(ApiError::new(problems::NOT_FOUND));
    }
    state.tokens.revoke_subject(&id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The OpenAPI 3.1 document of this API, generated from the annotations above.
#[secure_endpoint(get("/openapi.json"), public)]
async fn openapi_json(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi.clone())
}

/// The OpenAPI 3.1 document of this module's endpoints, as JSON: the app's
/// [`SecureApi::openapi`] narrowed to this module (a program that links other endpoints, a
/// test binary or a larger app, has them in its inventory too), with this API's `info`.
pub fn openapi_document(secure: &SecureApi) -> String {
    let mut doc = secure
        .inventory()
        .retain(|e| e.module == module_path!())
        .openapi();
    let mut info = Info::new("users_api", "1.0.0");
    info.description = Some(
        "The secure-api example: users, login with rotating refresh tokens, logout. \
         Generated from the endpoints' annotations."
            .to_owned(),
    );
    doc.info = info;
    // Strings, numbers, booleans and string-keyed maps: serialising cannot fail.
    serde_json::to_string(&doc).expect("the OpenAPI document serialises")
}

/// The account check of every refresh: the users map decides. A deleted user's session
/// ends; a demoted user's next access token carries the current roles.
fn account_status(
    users: &RwLock<HashMap<String, Account>>,
    session: &SessionInfo,
) -> AccountStatus {
    let users = users.read().unwrap_or_else(PoisonError::into_inner);
    match users.get(&session.subject) {
        None => AccountStatus::Gone,
        Some(account) => AccountStatus::Active(
            AccessGrant::new(&session.subject)
                .roles(account.roles.iter().cloned())
                .permissions(account.permissions.iter().cloned())
                .tier(account.tier.clone()),
        ),
    }
}

/// The default key prefix on Redis (`REDIS_KEY_PREFIX` overrides it).
pub const DEFAULT_REDIS_KEY_PREFIX: &str = "users_api";

/// The example's settings, from its environment ([`Settings::from_vars`]).
#[derive(Clone)]
pub struct Settings {
    /// `JWT_SECRET`: the HS256 key of access tokens. Random when unset in memory; required
    /// with `REDIS_URL`, where every instance verifies the others' tokens.
    pub jwt_secret: Vec<u8>,
    /// `KEY_SECRET`: the key-derivation secret (rate-limit keys, login-guard keys, and the
    /// refresh-token key, derived from it). Required with `REDIS_URL`, where every instance
    /// must derive the same keys.
    pub key_secret: Option<Vec<u8>>,
    /// `TRUSTED_PROXY`: networks whose `X-Forwarded-For` is believed.
    pub trusted_proxies: String,
    /// `REDIS_URL`: every store on this Redis when set; in memory when not.
    pub redis_url: Option<String>,
    /// `REDIS_KEY_PREFIX` (default [`DEFAULT_REDIS_KEY_PREFIX`]).
    pub redis_key_prefix: String,
    /// `REDIS_TIMEOUT_MS`: the timeout of one Redis call (default 50 ms).
    pub redis_timeout: Option<Duration>,
    /// `OIDC_ISSUER` and friends: verify an identity provider's tokens instead of issuing
    /// tokens.
    pub oidc: Option<OidcSettings>,
    /// `METRICS_BIND`: the address of the `/metrics` listener; metrics are recorded only
    /// when it is set.
    pub metrics_bind: Option<std::net::SocketAddr>,
}

/// The identity provider whose tokens the example verifies (`OIDC_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcSettings {
    /// `OIDC_ISSUER`: the provider's issuer URL, exactly as its tokens' `iss`.
    pub issuer: String,
    /// `OIDC_AUDIENCE`: the audience tokens must carry (required with `OIDC_ISSUER`).
    pub audience: String,
    /// `OIDC_ROLES_CLAIM`: JSON Pointers to the claims holding roles, comma-separated.
    pub roles_claims: Vec<String>,
    /// `OIDC_TYP=jwt`: accept `typ: JWT` and no `typ` besides `at+jwt`.
    pub accept_jwt_typ: bool,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets.
        f.debug_struct("Settings")
            .field("key_secret", &self.key_secret.is_some())
            .field("trusted_proxies", &self.trusted_proxies)
            .field("redis", &self.redis_url.is_some())
            .field("redis_key_prefix", &self.redis_key_prefix)
            .field("redis_timeout", &self.redis_timeout)
            .field("oidc", &self.oidc)
            .field("metrics_bind", &self.metrics_bind)
            .finish_non_exhaustive()
    }
}

/// Why the example cannot start: printed, and the process exits with status 2.
#[derive(Debug)]
pub enum SetupError {
    /// `REDIS_URL` is set but a shared secret is not.
    Missing(&'static str),
    /// A secret is too short: its variable, its length and the minimum, in bytes.
    TooShort(&'static str, usize, usize),
    /// `KEY_SECRET` and `JWT_SECRET` are the same.
    SameSecrets,
    /// A variable that does not parse.
    Invalid(&'static str, String),
    /// `REDIS_URL` is set, but the example was built without the `redis` feature.
    RedisNotBuilt,
    /// Redis could not be reached, or the prefix is invalid.
    Redis(String),
    /// `OIDC_ISSUER` is set, but the example was built without the `oidc` feature.
    OidcNotBuilt,
    /// The identity provider could not be used: unreachable, or its documents are wrong.
    Oidc(String),
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetupError::Missing(var) => write!(
                f,
                "{var} is required with REDIS_URL: every instance sharing the Redis must have the same {var} (at least 32 random bytes, e.g. `openssl rand -hex 32`)"
            ),
            SetupError::TooShort(var, len, min) => write!(
                f,
                "{var} has {len} bytes; at least {min} random bytes are required (e.g. `openssl rand -hex 32`)"
            ),
            SetupError::SameSecrets => {
                f.write_str("KEY_SECRET must not be the same as JWT_SECRET: give each its own random value")
            }
            SetupError::Invalid(var, why) => write!(f, "{var}: {why}"),
            SetupError::RedisNotBuilt => f.write_str(
                "REDIS_URL is set, but this build has no Redis support: build with the `redis` feature (on by default)",
            ),
            SetupError::Redis(why) => write!(f, "REDIS_URL: cannot use Redis: {why}"),
            SetupError::OidcNotBuilt => f.write_str(
                "OIDC_ISSUER is set, but this build cannot verify provider tokens: build with the `oidc` feature (on by default)",
            ),
            SetupError::Oidc(why) => write!(f, "OIDC_ISSUER: cannot use the identity provider: {why}"),
        }
    }
}

impl std::error::Error for SetupError {}

impl Settings {
    /// In memory, with a random `JWT_SECRET` and nothing else: what `cargo run --example
    /// users_api` does with an empty environment.
    pub fn in_memory() -> Settings {
        Settings {
            jwt_secret: random_secret(),
            key_secret: None,
            trusted_proxies: String::new(),
            redis_url: None,
            redis_key_prefix: DEFAULT_REDIS_KEY_PREFIX.to_owned(),
            redis_timeout: None,
            oidc: None,
            metrics_bind: None,
        }
    }

    /// The settings from the process environment.
    pub fn from_env() -> Result<Settings, SetupError> {
        Settings::from_vars(|name| std::env::var(name).ok())
    }

    /// The settings from `var` (the environment, or a map in tests). Every check that needs
    /// no connection is made here: with `REDIS_URL`, `JWT_SECRET` and `KEY_SECRET` are
    /// required, and every secret that is set must be long enough: `JWT_SECRET`
    /// [`MIN_HMAC_KEY_BYTES`], `KEY_SECRET` [`MIN_KEY_SECRET_LEN`] (32 bytes each). With
    /// `OIDC_ISSUER`, `OIDC_AUDIENCE` is required, and `JWT_SECRET` is not (nor used).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Settings, SetupError> {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        let oidc = match var("OIDC_ISSUER") {
            None => None,
            Some(issuer) => {
                let audience = var("OIDC_AUDIENCE").ok_or(SetupError::Invalid(
                    "OIDC_AUDIENCE",
                    "is required with OIDC_ISSUER: the audience the API's tokens carry".to_owned(),
                ))?;
                let roles_claims: Vec<String> = var("OIDC_ROLES_CLAIM")
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect();
                if let Some(bad) = roles_claims.iter().find(|p| !p.starts_with('/')) {
                    return Err(SetupError::Invalid(
                        "OIDC_ROLES_CLAIM",
                        format!("{bad:?} is not a JSON Pointer (write /realm_access/roles)"),
                    ));
                }
                let accept_jwt_typ = match var("OIDC_TYP").as_deref() {
                    None | Some("at+jwt") => false,
                    Some(t) if t.eq_ignore_ascii_case("jwt") => true,
                    Some(t) => {
                        return Err(SetupError::Invalid(
                            "OIDC_TYP",
                            format!("{t:?}: write at+jwt (the default) or jwt"),
                        ));
                    }
                };
                Some(OidcSettings {
                    issuer,
                    audience,
                    roles_claims,
                    accept_jwt_typ,
                })
            }
        };
        let redis_url = var("REDIS_URL");
        let shared = redis_url.is_some();
        let secret = |name: &'static str, min: usize| -> Result<Option<Vec<u8>>, SetupError> {
            match var(name) {
                Some(v) if v.len() < min => Err(SetupError::TooShort(name, v.len(), min)),
                Some(v) => Ok(Some(v.into_bytes())),
                None if shared => Err(SetupError::Missing(name)),
                None => Ok(None),
            }
        };
        // With a provider, the example issues no tokens: no secret of its own is needed.
        let jwt_secret = match &oidc {
            Some(_) => None,
            None => secret("JWT_SECRET", MIN_HMAC_KEY_BYTES)?,
        };
        let key_secret = secret("KEY_SECRET", MIN_KEY_SECRET_LEN)?;
        if jwt_secret.is_some() && jwt_secret == key_secret {
            return Err(SetupError::SameSecrets);
        }
        let jwt_secret = jwt_secret.unwrap_or_else(|| {
            if oidc.is_none() {
                log::warn!(
                    "JWT_SECRET is not set: using a random secret; tokens will not survive a restart"
                );
            }
            random_secret()
        });
        let redis_timeout = match var("REDIS_TIMEOUT_MS") {
            None => None,
            Some(ms) => match ms.parse::<u64>() {
                Ok(ms) if ms > 0 => Some(Duration::from_millis(ms)),
                _ => {
                    return Err(SetupError::Invalid(
                        "REDIS_TIMEOUT_MS",
                        format!("{ms:?} is not a positive number of milliseconds"),
                    ));
                }
            },
        };
        let metrics_bind = match var("METRICS_BIND") {
            None => None,
            Some(addr) => Some(addr.parse().map_err(|_| {
                SetupError::Invalid(
                    "METRICS_BIND",
                    format!("{addr:?} is not an address and port such as 127.0.0.1:9100"),
                )
            })?),
        };
        Ok(Settings {
            metrics_bind,
            jwt_secret,
            key_secret,
            trusted_proxies: var("TRUSTED_PROXY").unwrap_or_default(),
            redis_url,
            redis_key_prefix: var("REDIS_KEY_PREFIX")
                .unwrap_or_else(|| DEFAULT_REDIS_KEY_PREFIX.to_owned()),
            redis_timeout,
            oidc,
        })
    }

    /// The verifier of the identity provider's tokens when `OIDC_ISSUER` is set (its
    /// revocations in `stores`), after its first key set; `None` without a provider.
    pub async fn provider_jwt(&self, stores: &Stores) -> Result<Option<JwtAuth>, SetupError> {
        let Some(oidc) = &self.oidc else {
            return Ok(None);
        };
        #[cfg(feature = "oidc")]
        {
            let mut builder = JwtAuth::oidc(&oidc.issuer).audience(&oidc.audience);
            for pointer in &oidc.roles_claims {
                builder = builder.roles_claim(pointer);
            }
            if oidc.accept_jwt_typ {
                builder = builder.typ(TokenTyp::AccessTokenOrJwt);
            }
            builder = match stores {
                Stores::Memory => builder,
                #[cfg(feature = "redis")]
                Stores::Redis(redis) => builder.revocation(Arc::new(redis.revocation_store())),
                Stores::Custom(custom) => builder.revocation(custom.revocations.clone()),
            };
            let jwt = builder
                .build()
                .await
                .map_err(|e| SetupError::Oidc(e.to_string()))?;
            Ok(Some(jwt))
        }
        #[cfg(not(feature = "oidc"))]
        {
            let _ = (oidc, stores);
            Err(SetupError::OidcNotBuilt)
        }
    }

    /// Connects to Redis when `REDIS_URL` is set ([`Stores::Redis`]), else [`Stores::Memory`].
    /// Needs a running actix (Tokio) runtime: the connection's driver runs on it.
    pub async fn connect(&self) -> Result<Stores, SetupError> {
        let Some(url) = &self.redis_url else {
            return Ok(Stores::Memory);
        };
        #[cfg(feature = "redis")]
        {
            let mut builder = RedisBackend::builder().key_prefix(&self.redis_key_prefix);
            if let Some(timeout) = self.redis_timeout {
                builder = builder.timeout(timeout);
            }
            let redis = builder
                .connect(url)
                .await
                .map_err(|e| SetupError::Redis(e.to_string()))?;
            redis
                .ping()
                .await
                .map_err(|e| SetupError::Redis(e.to_string()))?;
            Ok(Stores::Redis(redis))
        }
        #[cfg(not(feature = "redis"))]
        {
            let _ = url;
            Err(SetupError::RedisNotBuilt)
        }
    }
}

/// Where the example keeps its state.
#[derive(Debug, Clone)]
pub enum Stores {
    /// Every store in this process: the default, for one instance.
    Memory,
    /// Every store on one Redis, shared by every instance: rate limits (the endpoints' and
    /// the login guard's per-account limit), idempotency records, refresh sessions and
    /// access-token revocations.
    #[cfg(feature = "redis")]
    Redis(RedisBackend),
    /// Stores built by the caller, each in its place ([`CustomStores`]): how the soak test
    /// bounds the in-memory stores tightly, runs them on a fake clock and reads their sizes.
    Custom(CustomStores),
}

/// One store for each part of the app, built by the caller (see [`Stores::Custom`]).
///
/// ```text
/// let limits = Arc::new(MemoryStore::new().max_keys(1_000));
/// let stores = Stores::Custom(CustomStores {
///     limits: limits.clone(),
///     idempotency: Arc::new(MemoryIdempotencyStore::new().max_entries(10_000)),
///     sessions: Arc::new(MemoryRefreshStore::new().max_sessions(1_000)),
///     revocations: Arc::new(RevokedTokens::new().max_entries(1_000)),
/// });
/// let (secure, state) = build(&Settings::in_memory(), &stores, Passwords::new(), "pw")?;
/// assert!(limits.len() <= limits.bound());
/// ```
#[derive(Clone)]
pub struct CustomStores {
    /// Rate limits: the endpoints' and the login guard's per-account limit.
    pub limits: Arc<dyn RateLimitStore>,
    /// Idempotency records.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// Refresh sessions.
    pub sessions: Arc<dyn RefreshStore>,
    /// Access-token revocations (logout, deleted users).
    pub revocations: Arc<dyn Revocation>,
}

impl std::fmt::Debug for CustomStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomStores").finish_non_exhaustive()
    }
}

fn random_secret() -> Vec<u8> {
    let mut secret = vec![0u8; 32];
    for chunk in secret.chunks_mut(16) {
        chunk.copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    secret
}

/// The refresh-token key, derived from `KEY_SECRET` (HMAC-SHA256 with a label of its own,
/// so that the secret serves each purpose with a separate key).
fn refresh_key(key_secret: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key_secret).expect("HMAC takes any key");
    mac.update(b"users_api/refresh-token-key/v1");
    mac.finalize().into_bytes().into()
}

/// The demo's accounts, every one with `demo_password` (hashed with `passwords`).
fn demo_users(passwords: &Passwords, demo_password: &str) -> Users {
    let mut users = HashMap::new();
    for (name, roles, permissions, tier) in [
        ("alice", vec!["user"], vec![], "premium"),
        ("bob", vec!["user"], vec![], "user"),
        ("admin", vec!["admin"], vec!["users:delete"], "user"),
    ] {
        let password_hash = passwords
            .hash(demo_password)
            .expect("hashing the demo password");
        users.insert(
            name.to_owned(),
            Account {
                password_hash,
                roles: roles.into_iter().map(Into::into).collect(),
                permissions: permissions.into_iter().map(Into::into).collect(),
                tier: tier.to_owned(),
                email: format!("{name}@example.com"),
            },
        );
    }
    Arc::new(RwLock::new(users))
}

/// The app from its settings and stores: the JWT verifier and issuer (revocations in
/// `stores`), the token service (sessions in `stores`, the refresh-token key from
/// `KEY_SECRET` when set), the [`SecureApi`] (limits and idempotency in `stores`, keys
/// derived from `KEY_SECRET` when set), the login guard (over the app's rate-limit store,
/// checking passwords with `passwords`) and the demo users.
pub fn build(
    settings: &Settings,
    stores: &Stores,
    passwords: Passwords,
    demo_password: &str,
) -> Result<(SecureApi, web::Data<AppState>), SetupError> {
    build_with(settings, stores, None, passwords, demo_password)
}

/// [`build`], verifying `provider`'s tokens when given (from [`Settings::provider_jwt`],
/// revocations already in `stores`) instead of issuing tokens of its own.
pub fn build_with(
    settings: &Settings,
    stores: &Stores,
    provider: Option<JwtAuth>,
    passwords: Passwords,
    demo_password: &str,
) -> Result<(SecureApi, web::Data<AppState>), SetupError> {
    let jwt = JwtAuth::hs256(settings.jwt_secret.clone())
        .issuer("users_api")
        .audience("users_api");
    let mut builder = SecureApi::builder()
        .trust_proxies(&settings.trusted_proxies)
        .map_err(|e| SetupError::Invalid("TRUSTED_PROXY", e.to_string()))?;
    if let Some(secret) = &settings.key_secret {
        builder = builder
            .key_secret(secret)
            .map_err(|e| SetupError::Invalid("KEY_SECRET", e.to_string()))?;
    }
    // Each store to the part that uses it: revocations to the JWT verifier, limits and
    // idempotency records to the `SecureApi`, sessions to the token service.
    let (jwt, builder, refresh_store): (_, _, Arc<dyn RefreshStore>) = match stores {
        Stores::Memory => (jwt, builder, Arc::new(MemoryRefreshStore::new())),
        #[cfg(feature = "redis")]
        Stores::Redis(redis) => (
            jwt.revocation(Arc::new(redis.revocation_store())),
            builder
                .rate_limit_store(Arc::new(redis.rate_limit_store()))
                .idempotency_store(Arc::new(redis.idempotency_store())),
            Arc::new(redis.refresh_store()),
        ),
        Stores::Custom(custom) => (
            jwt.revocation(custom.revocations.clone()),
            builder
                .rate_limit_store(custom.limits.clone())
                .idempotency_store(custom.idempotency.clone()),
            custom.sessions.clone(),
        ),
    };
    let jwt = match provider {
        Some(provider) => provider,
        None => jwt
            .build()
            .map_err(|e| SetupError::Invalid("JWT_SECRET", e.to_string()))?,
    };
    // Metrics only with a `/metrics` listener: the recorder (`install_metrics`) must be
    // installed before this build, which registers the handles with it.
    let secure = builder
        .jwt(jwt.clone())
        .metrics(settings.metrics_bind.is_some())
        .try_build()
        .map_err(|e| SetupError::Invalid("KEY_SECRET", e.to_string()))?;
    let users = demo_users(&passwords, demo_password);
    let accounts = users.clone();
    // Events raised in handlers go through the request's app; `telemetry` names this app
    // for those raised outside a request, and times and sizes the session store in its
    // metrics.
    let mut tokens = TokenService::new(
        jwt,
        refresh_store,
        Arc::new(move |session: &SessionInfo| account_status(&accounts, session)),
    )
    .telemetry(&secure);
    if let Some(secret) = &settings.key_secret {
        tokens = tokens
            .refresh_key(refresh_key(secret))
            .map_err(|e| SetupError::Invalid("KEY_SECRET", e.to_string()))?;
    }
    let openapi = openapi_document(&secure);
    let state = web::Data::new(AppState {
        users,
        // 10 failures per 15 minutes per account: `LoginGuard`'s default policy, counted in
        // the app's rate-limit store (on Redis, shared by every instance).
        login: LoginGuard::new(&secure, passwords.clone()),
        passwords,
        tokens,
        openapi,
    });
    Ok((secure, state))
}

/// The example in memory with a random JWT secret, for tests: [`build`] with
/// [`Settings::in_memory`].
pub fn setup(passwords: Passwords, demo_password: &str) -> (SecureApi, web::Data<AppState>) {
    build(
        &Settings::in_memory(),
        &Stores::Memory,
        passwords,
        demo_password,
    )
    .expect("the in-memory settings are valid")
}

/// The example's routes, shared with the integration tests.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(create_user)
        .service(login)
        .service(refresh)
        .service(logout)
        .service(me)
        .service(get_user)
        .service(delete_user)
        .service(openapi_json);
}

/// The routes when an identity provider issues the tokens: [`routes`] without login,
/// refresh and logout, which happen at the provider.
pub fn provider_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(create_user)
        .service(me)
        .service(get_user)
        .service(delete_user);
}

/// Installs the Prometheus recorder as the process's `metrics` recorder, and returns the
/// handle that renders what it holds. Call it once, before [`build`] (whose `SecureApi`
/// registers its counters with the recorder installed then).
///
/// It also starts the exporter's upkeep (a thread, `metrics-upkeep`, every 5 s): the
/// recorder keeps every histogram sample (the store latencies) until upkeep folds them in,
/// so without it an app that is not scraped would grow without bound.
pub fn install_metrics() -> Result<PrometheusHandle, SetupError> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| SetupError::Invalid("METRICS_BIND", e.to_string()))?;
    let upkeep = handle.clone();
    std::thread::Builder::new()
        .name("metrics-upkeep".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(5));
                upkeep.run_upkeep();
            }
        })
        .map_err(|e| SetupError::Invalid("METRICS_BIND", e.to_string()))?;
    Ok(handle)
}

/// `GET /metrics`: the Prometheus text exposition format.
async fn metrics_text(handle: web::Data<PrometheusHandle>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(handle.render())
}

/// The `/metrics` listener on `listener` (one worker), serving [`install_metrics`]'s
/// `handle` at `GET /metrics` and nothing else. A server of its own, never mounted on the
/// public one, so that the address decides who can scrape it.
pub fn metrics_server(
    listener: std::net::TcpListener,
    handle: PrometheusHandle,
) -> std::io::Result<actix_web::dev::Server> {
    let handle = web::Data::new(handle);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(handle.clone())
            .route("/metrics", web::get().to(metrics_text))
    })
    .workers(1)
    .listen(listener)?
    .run())
}

/// Prints why the example cannot start and exits with status 2.
fn refuse(e: impl std::fmt::Display) -> ! {
    eprintln!("users_api: cannot start: {e}");
    std::process::exit(2)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let settings = Settings::from_env().unwrap_or_else(|e| refuse(e));
    // Once, before `HttpServer::new`: every worker shares the stores (and the connection).
    let stores = settings.connect().await.unwrap_or_else(|e| refuse(e));
    let provider = settings
        .provider_jwt(&stores)
        .await
        .unwrap_or_else(|e| refuse(e));
    let demo_password = std::env::var("DEMO_PASSWORD").unwrap_or_else(|_| {
        let generated = uuid::Uuid::new_v4().simple().to_string();
        if provider.is_some() {
            // No logins here: the provider authenticates users.
            return generated;
        }
        log::warn!("DEMO_PASSWORD is not set: the demo users alice, bob and admin have the password {generated}");
        if settings.redis_url.is_some() {
            log::warn!("DEMO_PASSWORD is not set: the other instances have passwords of their own; set the same DEMO_PASSWORD on every instance");
        }
        generated
    });
    let with_provider = provider.is_some();
    // The recorder before the app: its counters are registered at build.
    let metrics = match settings.metrics_bind {
        None => None,
        Some(addr) => {
            let handle = install_metrics().unwrap_or_else(|e| refuse(e));
            let listener = std::net::TcpListener::bind(addr)
                .unwrap_or_else(|e| refuse(format!("METRICS_BIND: cannot listen on {addr}: {e}")));
            Some((addr, metrics_server(listener, handle)?))
        }
    };
    let (secure, state) = build_with(
        &settings,
        &stores,
        provider,
        Passwords::new(),
        &demo_password,
    )
    .unwrap_or_else(|e| refuse(e));
    if let Some(oidc) = &settings.oidc {
        log::info!(
            "users_api: verifying the tokens of {} for the audience {:?}; /api/login, /api/token/refresh and /api/logout are not mounted",
            oidc.issuer,
            oidc.audience
        );
    }
    match &stores {
        Stores::Memory => log::info!("users_api: every store in memory (one instance)"),
        #[cfg(feature = "redis")]
        Stores::Redis(redis) => log::info!(
            "users_api: every store on Redis under the key prefix {:?}, timeout {:?}",
            redis.key_prefix(),
            redis.timeout()
        ),
        Stores::Custom(_) => log::info!("users_api: stores given by the caller"),
    }
    log::info!("users_api listening on http://{bind}");
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(secure.layer())
            .configure(if with_provider {
                provider_routes
            } else {
                routes
            })
    });
    if let Some(workers) = std::env::var("WORKERS").ok().and_then(|w| w.parse().ok()) {
        server = server.workers(workers);
    }
    let server = server.bind(bind)?.run();
    match metrics {
        None => server.await,
        Some((addr, metrics)) => {
            log::info!("users_api: Prometheus metrics on http://{addr}/metrics");
            futures_util::future::try_join(server, metrics)
                .await
                .map(|_| ())
        }
    }
}
