use secure_api_runtime::prelude::*;

#[secure_endpoint(get("/health"), rate = "unlimited", on_store_error = "allow")]
async fn health() -> HttpResponse {
    HttpResponse::Ok().finish()
}

// Using the handler reports nothing more: the error fallback keeps its shape.
fn main() {
    let _ = actix_web::App::new().service(health);
}
