use secure_api_runtime::prelude::*;

#[secure_endpoint(post("/login"), rate = "5/min", algorithm = "leaky_bucket", key = "user")]
async fn login() -> HttpResponse {
    HttpResponse::Ok().finish()
}

// Using the handler reports nothing more: the error fallback keeps its shape.
fn main() {
    let _ = actix_web::App::new().service(login);
}
