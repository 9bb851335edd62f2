//! The baseline for the end-to-end load test (`benches/load/run.sh`): the same JSON work as
//! `examples/users_api.rs`'s `POST /api/users`, on bare actix-web 4, without secure-api.
//!
//! No validation, no normalisation, no rate limiting, no security headers, no problem+json:
//! the body is deserialised with `web::Json<T>` and serde (actix-web's default JSON limits),
//! and the handler answers 201 with `{"user": ..., "email": ...}`.
//!
//! ```text
//! cargo run --release --example bare_users     # listens on 127.0.0.1:8080 (BIND overrides)
//! curl -i -X POST localhost:8080/api/users -H 'content-type: application/json' \
//!      -d '{"username": "alice_01", "email": "alice@example.com", "age": 30}'
//! ```
//!
//! Logs go through env_logger (`RUST_LOG=info` by default); `WORKERS=n` sets the number of
//! actix workers (default: one per core), as in `users_api`. `BARE_HEADERS=1` adds the
//! response headers secure-api sends (the security headers, `Location` and constant
//! `RateLimit` fields) with actix's `DefaultHeaders`, to measure what those bytes cost.

use actix_web::dev::ServiceRequest;
use actix_web::{App, HttpResponse, HttpServer, post, web};
use serde::{Deserialize, Serialize};

/// The request body of `POST /api/users` (the same fields as `users_api`).
#[derive(Debug, Deserialize, Serialize)]
pub struct CreateUserRequest {
    /// The new user's name.
    pub username: String,
    /// The user's e-mail address.
    pub email: String,
    /// The user's age in years.
    pub age: i32,
}

/// Creates a user: deserialise, log, answer 201 with the same JSON as `users_api`.
#[post("/api/users")]
async fn create_user(input: web::Json<CreateUserRequest>) -> HttpResponse {
    let user = input.into_inner();
    log::info!("created user {}", user.username);
    HttpResponse::Created().json(serde_json::json!({
        "user": user.username,
        "email": user.email,
    }))
}

/// The app; `headers`: send the same response headers as secure-api (also measured in
/// process by `benches/stack.rs`).
pub fn app(
    headers: bool,
) -> App<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let mut defaults = actix_web::middleware::DefaultHeaders::new();
    if headers {
        for (name, value) in [
            (
                "strict-transport-security",
                "max-age=63072000; includeSubDomains",
            ),
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            (
                "content-security-policy",
                "default-src 'none'; frame-ancestors 'none'",
            ),
            ("cache-control", "no-store"),
            ("referrer-policy", "no-referrer"),
            ("cross-origin-opener-policy", "same-origin"),
            ("cross-origin-resource-policy", "same-origin"),
            ("location", "/api/users/alice_01"),
            ("ratelimit-policy", "\"anonymous\";q=10;w=1"),
            ("ratelimit", "\"anonymous\";r=9;t=1"),
        ] {
            defaults = defaults.add((name, value));
        }
    }
    App::new().wrap(defaults).service(create_user)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    log::info!("bare_users listening on http://{bind}");
    let headers = std::env::var("BARE_HEADERS").is_ok_and(|v| v == "1");
    let mut server = HttpServer::new(move || app(headers));
    if let Some(workers) = std::env::var("WORKERS").ok().and_then(|w| w.parse().ok()) {
        server = server.workers(workers);
    }
    server.bind(bind)?.run().await
}
