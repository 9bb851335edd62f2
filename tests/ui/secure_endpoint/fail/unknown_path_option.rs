use secure_api_runtime::prelude::*;

#[secure_endpoint(post("/a"), limits::rate = "10/s")]
async fn a() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[secure_endpoint(post("/b"), idempotent(store::ttl = "1h"))]
async fn b() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[secure_endpoint(post("/c"), auth(jwt::roles("admin")))]
async fn c() -> HttpResponse {
    HttpResponse::Ok().finish()
}

// Using the handlers reports nothing more: the error fallback keeps their shape.
fn main() {
    let _ = actix_web::App::new().service(a).service(b).service(c);
}
