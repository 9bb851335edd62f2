use secure_api_runtime::prelude::*;

#[secure_endpoint(get("/feed"), rate = "100000/min", algorithm = "sliding_window")]
async fn feed() -> HttpResponse {
    HttpResponse::Ok().finish()
}

// Using the handler reports nothing more: the error fallback keeps its shape.
fn main() {
    let _ = actix_web::App::new().service(feed);
}
