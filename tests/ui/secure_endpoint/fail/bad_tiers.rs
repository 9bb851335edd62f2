use secure_api_runtime::prelude::*;

#[secure_endpoint(get("/feed"), rate = "10/s", tier(premium = "1000/s", premium = "10/s", free = "0/s"))]
async fn feed() -> HttpResponse {
    HttpResponse::Ok().finish()
}

// Using the handler reports nothing more: the error fallback keeps its shape.
fn main() {
    let _ = actix_web::App::new().service(feed);
}
