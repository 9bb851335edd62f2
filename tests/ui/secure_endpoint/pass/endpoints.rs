use actix_web::{App, web};
use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize, SecureInput)]
struct CreateUser {
    #[secure(trim, length(min = 3, max = 32))]
    username: String,
}

/// Documented endpoints keep their docs.
#[secure_endpoint(post("/api/users"), rate = "100/s", burst = 20, key = "ip", max_body = "16KiB")]
pub async fn create_user(input: Valid<CreateUser>, req: actix_web::HttpRequest) -> Result<HttpResponse, ApiError> {
    let _ = req.path();
    Ok(HttpResponse::Created().body(input.into_inner().username))
}

#[secure_endpoint(get("/api/users/{id}"), rate = "10/min", algorithm = "sliding_window", cost = 2)]
async fn get_user(path: web::Path<(u64,)>) -> String {
    path.into_inner().0.to_string()
}

#[secure_endpoint(rate = "5/h", tier(anonymous = "1/h", premium = "100/h"), key = "ip_and_principal")]
async fn route_less() -> &'static str {
    "ok"
}

#[secure_endpoint(delete("/api/users/{id}"), crate = "::secure_api_runtime", auth(any(roles("admin"), all(roles("support"), permissions("users:delete")))))]
async fn delete_user() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

#[secure_endpoint(get("/health"), rate = "unlimited", public)]
async fn health() -> &'static str {
    "up"
}

#[secure_endpoint(put("/a"), rate = "1/day", idempotent(ttl = "1h", required = false, wait = "2s"))]
async fn put_a() -> &'static str {
    "a"
}

#[secure_endpoint(patch("/b"), idempotent, auth)]
async fn patch_b(principal: Principal) -> &'static str {
    let _ = principal;
    "b"
}

#[secure_endpoint(get("/search"), rate = "50/s", on_store_error = "allow")]
async fn search() -> &'static str {
    "results"
}

// Unlimited for most, limited for one tier: `on_store_error` has a limit to decide for.
#[secure_endpoint(post("/export"), rate = "unlimited", tier(anonymous = "1/min"), on_store_error = "fail_closed", idempotent)]
async fn export() -> &'static str {
    "queued"
}

fn main() {
    let _app = App::new()
        .wrap(SecureLayer::default())
        .service(create_user)
        .service(get_user)
        .service(delete_user)
        .service(health)
        .service(put_a)
        .service(patch_b)
        .service(search)
        .service(export)
        .service(web::resource("/route-less").route(web::get().to(route_less)));
}
