use secure_api_runtime::prelude::*;

// Each option written in a form it does not take.
#[secure_endpoint(post("/a"), rate = 100, key)]
async fn a() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[secure_endpoint(post("/b"), tier = "premium", idempotent = true)]
async fn b() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[secure_endpoint(post("/c"), public(yes), auth = "jwt")]
async fn c() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[secure_endpoint(post("/d"), idempotent(required, ttl), auth(roles, any(permissions)))]
async fn d() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[secure_endpoint(post("/e"), rate = "10/s", tier(premium, a::b = "1/s", free = "unlimited"))]
async fn e() -> HttpResponse {
    HttpResponse::Ok().finish()
}

// Using the handlers reports nothing more: the error fallback keeps their shape.
fn main() {
    let _ = actix_web::App::new().service(a).service(b).service(c).service(d).service(e);
}
