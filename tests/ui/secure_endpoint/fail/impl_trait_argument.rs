use secure_api_runtime::prelude::*;

#[secure_endpoint(post("/echo"))]
async fn echo(body: impl actix_web::FromRequest) -> HttpResponse {
    let _ = body;
    HttpResponse::Ok().finish()
}

// Using the handler reports nothing more: the error fallback keeps its shape.
fn main() {
    let _ = actix_web::App::new().service(echo);
}
