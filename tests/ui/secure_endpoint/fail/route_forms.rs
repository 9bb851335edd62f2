use secure_api_runtime::prelude::*;

#[secure_endpoint(post = "/a")]
async fn a() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[secure_endpoint(post(a::path))]
async fn b() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[secure_endpoint(post())]
async fn c() -> HttpResponse {
    HttpResponse::Ok().finish()
}

// Using the handlers reports nothing more: the error fallback keeps their shape.
fn main() {
    let _ = actix_web::App::new().service(a).service(b).service(c);
}
