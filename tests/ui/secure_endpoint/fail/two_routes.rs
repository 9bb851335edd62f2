use secure_api_runtime::prelude::*;

#[secure_endpoint(get("/users"), post("/users"))]
async fn users() -> HttpResponse {
    HttpResponse::Ok().finish()
}

// Using the handler reports nothing more: the error fallback keeps its shape.
fn main() {
    let _ = actix_web::App::new().service(users);
}
