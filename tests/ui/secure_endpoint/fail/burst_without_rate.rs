use secure_api_runtime::prelude::*;

// Without `rate` the app's default policy applies; `burst` would be dropped.
#[secure_endpoint(post("/notes"), burst = 20)]
async fn create_note() -> HttpResponse {
    HttpResponse::Created().finish()
}

// Using the handler reports nothing more: the error fallback keeps its shape.
fn main() {
    let _ = actix_web::App::new().service(create_note);
}
