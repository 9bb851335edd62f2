use secure_api_runtime::prelude::*;

#[secure_endpoint(post("/export"), rate = "10/min", burst = 2, cost = 5)]
async fn export() -> HttpResponse {
    HttpResponse::Ok().finish()
}

// Using the handler reports nothing more: the error fallback keeps its shape.
fn main() {
    let _ = actix_web::App::new().service(export);
}
