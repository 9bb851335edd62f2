use secure_api_runtime::prelude::*;

#[secure_endpoint(get("/health"))]
fn health() -> HttpResponse {
    HttpResponse::Ok().finish()
}

// Without a route: still a handler for `.to(..)`.
#[secure_endpoint(rate = "1/s")]
fn ready() -> HttpResponse {
    HttpResponse::Ok().finish()
}

// Using the handlers reports nothing more: the error fallback keeps their shape.
fn main() {
    let _ = actix_web::App::new()
        .service(health)
        .service(actix_web::web::resource("/ready").route(actix_web::web::get().to(ready)));
}
