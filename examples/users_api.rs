//! The reference document's `POST /api/users`, done right.
//!
//! ```text
//! cargo run --example users_api            # listens on 127.0.0.1:8080 (BIND overrides)
//! curl -i -X POST localhost:8080/api/users -H 'content-type: application/json' \
//!      -H "Idempotency-Key: $(uuidgen)" \
//!      -d '{"username": " Alice ", "email": "ALICE@example.com", "age": 30}'
//! ```
//!
//! Logs go through env_logger (`RUST_LOG=info` by default). `TRUSTED_PROXY=10.0.0.0/8`
//! makes the server believe `X-Forwarded-For` from that network; `WORKERS=n` sets the
//! number of actix workers (default: one per core).

use actix_web::{App, HttpServer};
use secure_api_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// The request body of `POST /api/users`.
#[derive(Debug, Deserialize, Serialize, SecureInput)]
pub struct CreateUserRequest {
    #[secure(
        trim,
        lowercase,
        length(min = 3, max = 32),
        pattern = "[a-z0-9_-]+",
        deny("admin", "root", "null", "undefined")
    )]
    pub username: String,
    #[secure(trim, lowercase, length(max = 255), email)]
    pub email: String,
    #[secure(range(min = 0, max = 150))]
    pub age: i32,
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

/// The example's state: built once, shared by every worker.
pub fn secure_api() -> SecureApi {
    let mut builder = SecureApi::builder();
    if let Ok(nets) = std::env::var("TRUSTED_PROXY") {
        for net in nets.split(',') {
            match net.trim().parse() {
                Ok(net) => builder = builder.trust_proxy(net),
                Err(e) => log::warn!("ignoring TRUSTED_PROXY entry {net:?}: {e}"),
            }
        }
    }
    builder.build()
}

/// The example's routes, shared with the integration tests.
pub fn routes(cfg: &mut actix_web::web::ServiceConfig) {
    cfg.service(create_user);
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let secure = secure_api();
    log::info!("users_api listening on http://{bind}");
    let mut server = HttpServer::new(move || App::new().wrap(secure.layer()).configure(routes));
    if let Some(workers) = std::env::var("WORKERS").ok().and_then(|w| w.parse().ok()) {
        server = server.workers(workers);
    }
    server.bind(bind)?.run().await
}
