use secure_api_runtime::prelude::*;

#[secure_endpoint(get("/api/users"), idempotent)]
async fn list() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[secure_endpoint(options("/api/users"), idempotent(ttl = "1h"))]
async fn options() -> HttpResponse {
    HttpResponse::Ok().finish()
}

// Using the handler reports nothing more: the error fallback keeps its shape.
fn main() {
    let _ = actix_web::App::new().service(list).service(options);
}
