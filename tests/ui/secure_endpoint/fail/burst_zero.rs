use secure_api_runtime::prelude::*;

#[secure_endpoint(post("/api/users"), rate = "100/s", burst = 0)]
async fn create_user() -> HttpResponse {
    HttpResponse::Created().finish()
}

// Using the handler reports nothing more: the error fallback keeps its shape.
fn main() {
    let _ = actix_web::App::new().service(create_user);
}
