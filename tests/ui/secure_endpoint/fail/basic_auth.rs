use secure_api_runtime::prelude::*;

#[secure_endpoint(get("/a"), auth = "basic")]
async fn a() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[secure_endpoint(get("/b"), auth(basic))]
async fn b() -> HttpResponse {
    HttpResponse::Ok().finish()
}

// Using the handler reports nothing more: the error fallback keeps its shape.
fn main() {
    let _ = actix_web::App::new().service(a).service(b);
}
