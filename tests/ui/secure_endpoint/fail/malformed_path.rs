use secure_api_runtime::prelude::*;

#[secure_endpoint(get("api/users"))]
async fn list() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[secure_endpoint(get("/users/{id"))]
async fn one() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[secure_endpoint(get("/users/{id}/{id}"))]
async fn twice() -> HttpResponse {
    HttpResponse::Ok().finish()
}

// Using the handler reports nothing more: the error fallback keeps its shape.
fn main() {
    let _ = actix_web::App::new().service(list).service(one).service(twice);
}
