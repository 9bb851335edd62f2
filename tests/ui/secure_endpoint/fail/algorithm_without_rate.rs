use secure_api_runtime::prelude::*;

// Without `rate` or `tier(...)` the app's default policy applies; `algorithm` would be dropped.
#[secure_endpoint(post("/login"), algorithm = "sliding_window")]
async fn login() -> HttpResponse {
    HttpResponse::Ok().finish()
}

// Using the handler reports nothing more: the error fallback keeps its shape.
fn main() {
    let _ = actix_web::App::new().service(login);
}
