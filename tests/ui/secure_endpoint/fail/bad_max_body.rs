use secure_api_runtime::prelude::*;

#[secure_endpoint(post("/upload"), max_body = "16XB")]
async fn upload() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[secure_endpoint(post("/upload2"), max_body = "0B")]
async fn upload2() -> HttpResponse {
    HttpResponse::Ok().finish()
}

// Using the handler reports nothing more: the error fallback keeps its shape.
fn main() {
    let _ = actix_web::App::new().service(upload).service(upload2);
}
