use secure_api_runtime::prelude::*;

#[secure_endpoint(post("/a"), rate = "10/s", burst = "ten")]
async fn a() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[secure_endpoint(post("/b"), rate = "10/s", cost = -1)]
async fn b() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[secure_endpoint(post("/c"), rate = "10/s", cost = 0)]
async fn c() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[secure_endpoint(post("/d"), rate = "10/s", burst = 99999999999)]
async fn d() -> HttpResponse {
    HttpResponse::Ok().finish()
}

// Using the handlers reports nothing more: the error fallback keeps their shape.
fn main() {
    let _ = actix_web::App::new().service(a).service(b).service(c).service(d);
}
