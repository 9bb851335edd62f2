use secure_api_runtime::prelude::*;

#[secure_endpoint(get("/a"), auth, public)]
async fn a() -> HttpResponse {
    HttpResponse::Ok().finish()
}

// Using the handler reports nothing more: the error fallback keeps its shape.
fn main() {
    let _ = actix_web::App::new().service(a);
}
