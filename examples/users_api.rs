//! A small user-management API built with every secure-api feature: `POST /api/users`
//! creates a user from a validated and normalised body (idempotent, rate limited per client
//! and by tier), `POST /api/login` hands out a short-lived access token
//! and a rotating refresh token, `POST /api/token/refresh` rotates it, `POST /api/logout`
//! ends the session, `GET /api/me` and `GET /api/users/{id}` need a valid token (the latter
//! only for the user themself or an admin), and `DELETE /api/users/{id}` is for admins and
//! ends every session of the deleted user at once.
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
//! ```
//!
//! Environment: `BIND` (default `127.0.0.1:8080`), `WORKERS` (default: one per core),
//! `TRUSTED_PROXY` (networks whose `X-Forwarded-For` is believed), `JWT_SECRET` (at least
//! 32 bytes; a random one is generated, with a warning, when unset), `DEMO_PASSWORD` (the
//! demo users' password; generated and printed when unset), `RUST_LOG` (default `info`).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use actix_web::{App, HttpServer, web};
use secure_api_runtime::auth::jwt::{AccessGrant, JwtAuth};
use secure_api_runtime::auth::login::LoginGuard;
use secure_api_runtime::auth::password::Passwords;
use secure_api_runtime::auth::refresh::{
    AccountStatus, MemoryRefreshStore, SessionInfo, TokenService,
};
use secure_api_runtime::prelude::*;
use serde::{Deserialize, Serialize};

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

/// Everything the example needs, from the environment: the JWT verifier and issuer, the
/// token service, the login guard (over the app's rate-limit store, checking passwords with
/// `passwords` and its concurrency limit), the demo users.
pub fn setup(passwords: Passwords, demo_password: &str) -> (SecureApi, web::Data<AppState>) {
    let secret = match std::env::var("JWT_SECRET") {
        Ok(secret) => secret.into_bytes(),
        Err(_) => {
            log::warn!(
                "JWT_SECRET is not set: using a random secret; tokens will not survive a restart"
            );
            let mut secret = vec![0u8; 32];
            for chunk in secret.chunks_mut(16) {
                chunk.copy_from_slice(uuid::Uuid::new_v4().as_bytes());
            }
            secret
        }
    };
    let jwt = match JwtAuth::hs256(secret)
        .issuer("users_api")
        .audience("users_api")
        .build()
    {
        Ok(jwt) => jwt,
        Err(e) => {
            eprintln!("users_api: cannot start: {e}");
            std::process::exit(2);
        }
    };
    let builder = SecureApi::builder().jwt(jwt.clone());
    let builder = match builder.trust_proxies(&std::env::var("TRUSTED_PROXY").unwrap_or_default()) {
        Ok(builder) => builder,
        Err(e) => {
            eprintln!("users_api: cannot start: TRUSTED_PROXY: {e}");
            std::process::exit(2);
        }
    };
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
    let users: Users = Arc::new(RwLock::new(users));
    let accounts = users.clone();
    let tokens = TokenService::new(
        jwt,
        Arc::new(MemoryRefreshStore::new()),
        Arc::new(move |session: &SessionInfo| account_status(&accounts, session)),
    );
    let secure = builder.build();
    let state = web::Data::new(AppState {
        users,
        // 10 failures per 15 minutes per account: `LoginGuard`'s default policy.
        login: LoginGuard::new(&secure, passwords.clone()),
        passwords,
        tokens,
    });
    (secure, state)
}

/// The example's routes, shared with the integration tests.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(create_user)
        .service(login)
        .service(refresh)
        .service(logout)
        .service(me)
        .service(get_user)
        .service(delete_user);
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let demo_password = std::env::var("DEMO_PASSWORD").unwrap_or_else(|_| {
        let generated = uuid::Uuid::new_v4().simple().to_string();
        log::warn!("DEMO_PASSWORD is not set: the demo users alice, bob and admin have the password {generated}");
        generated
    });
    let (secure, state) = setup(Passwords::new(), &demo_password);
    log::info!("users_api listening on http://{bind}");
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(secure.layer())
            .configure(routes)
    });
    if let Some(workers) = std::env::var("WORKERS").ok().and_then(|w| w.parse().ok()) {
        server = server.workers(workers);
    }
    server.bind(bind)?.run().await
}
