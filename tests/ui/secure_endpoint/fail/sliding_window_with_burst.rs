use secure_api_runtime::prelude::*;

#[secure_endpoint(post("/login"), rate = "5/min", algorithm = "sliding_window", burst = 2)]
async fn login() -> HttpResponse {
    HttpResponse::Ok().finish()
}

// Using the handler reports nothing more: the error fallback keeps its shape.
fn main() {
    let _ = actix_web::App::new().service(login);
}
