use secure_api_runtime::prelude::*;

#[secure_endpoint(post("/a"), idempotent(tll = "24h", required = "yes"))]
async fn a() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[secure_endpoint(post("/b"), idempotent(ttl = "2s", wait = "5s"))]
async fn b() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[secure_endpoint(post("/c"), idempotent, idempotent(ttl = "1h"))]
async fn c() -> HttpResponse {
    HttpResponse::Ok().finish()
}

// Using the handler reports nothing more: the error fallback keeps its shape.
fn main() {
    let _ = actix_web::App::new().service(a).service(b).service(c);
}
