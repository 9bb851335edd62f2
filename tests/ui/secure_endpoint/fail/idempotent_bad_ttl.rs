use secure_api_runtime::prelude::*;

#[secure_endpoint(post("/a"), idempotent(ttl = "0s"))]
async fn a() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[secure_endpoint(post("/b"), idempotent(ttl = "24 hours"))]
async fn b() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[secure_endpoint(post("/c"), idempotent(ttl = "90day"))]
async fn c() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[secure_endpoint(post("/d"), idempotent(ttl = "10"))]
async fn d() -> HttpResponse {
    HttpResponse::Ok().finish()
}

// Using the handler reports nothing more: the error fallback keeps its shape.
fn main() {
    let _ = actix_web::App::new().service(a).service(b).service(c).service(d);
}
