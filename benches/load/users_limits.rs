//! `POST /api/users` of `users_api` without `idempotent`: the stack of validation, rate
//! limits with tiers, problem errors and security headers alone. The load test
//! (`benches/load/run.sh`, `SECURE_BIN=users_limits`) measures it against the bare handler
//! to separate the cost of idempotency from the rest.
//!
//! Environment: `BIND` (default `127.0.0.1:8080`), `WORKERS`, `TRUSTED_PROXY`.

use actix_web::dev::ServiceRequest;
use actix_web::{App, HttpServer};
use secure_api_runtime::prelude::*;
use serde::Deserialize;

#[derive(Debug, Deserialize, SecureInput)]
struct CreateUserRequest {
    #[secure(
        trim,
        lowercase,
        length(min = 3, max = 32),
        pattern = "[a-z0-9_-]+",
        deny("admin", "root", "null", "undefined")
    )]
    username: String,
    #[secure(trim, lowercase, length(max = 255), email)]
    email: String,
    #[secure(range(min = 0, max = 150))]
    age: i32,
}

#[secure_endpoint(
    post("/api/users"),
    rate = "100/s",
    tier(anonymous = "10/s", user = "100/s", premium = "1000/s"),
    max_body = "16KiB"
)]
async fn create_user(input: Valid<CreateUserRequest>) -> Result<HttpResponse, ApiError> {
    let user = input.into_inner();
    Ok(HttpResponse::Created()
        .insert_header(("location", format!("/api/users/{}", user.username)))
        .json(serde_json::json!({ "user": user.username, "email": user.email })))
}

/// The app (also measured in process by `benches/stack.rs`).
pub fn app(
    secure: SecureApi,
) -> App<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new().wrap(secure.layer()).service(create_user)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let proxies = std::env::var("TRUSTED_PROXY").unwrap_or_default();
    let secure = SecureApi::builder()
        .trust_proxies(&proxies)
        .map_err(|e| std::io::Error::other(format!("TRUSTED_PROXY: {e}")))?
        .build();
    let mut server = HttpServer::new(move || app(secure.clone()));
    if let Some(workers) = std::env::var("WORKERS").ok().and_then(|w| w.parse().ok()) {
        server = server.workers(workers);
    }
    server.bind(bind)?.run().await
}
