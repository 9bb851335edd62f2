use secure_api_runtime::prelude::*;

// Idempotency and authentication always fail closed: there is no option to allow them.
#[secure_endpoint(post("/payments"), idempotent(on_store_error = "allow"))]
async fn pay() -> HttpResponse {
    HttpResponse::Created().finish()
}

#[secure_endpoint(get("/me"), auth(roles("user"), on_store_error = "allow"))]
async fn me() -> HttpResponse {
    HttpResponse::Ok().finish()
}

// Using the handlers reports nothing more: the error fallback keeps their shape.
fn main() {
    let _ = actix_web::App::new().service(pay).service(me);
}
