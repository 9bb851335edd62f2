use secure_api_runtime::prelude::*;

#[secure_endpoint(get("/search"), rate = "50/s", on_store_error = "alow")]
async fn search() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[secure_endpoint(get("/feed"), rate = "50/s", on_store_error = "fail_open")]
async fn feed() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[secure_endpoint(get("/news"), rate = "50/s", on_store_error = true)]
async fn news() -> HttpResponse {
    HttpResponse::Ok().finish()
}

// Using the handlers reports nothing more: the error fallback keeps their shape.
fn main() {
    let _ = actix_web::App::new().service(search).service(feed).service(news);
}
