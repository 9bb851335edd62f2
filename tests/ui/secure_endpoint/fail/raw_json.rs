use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize)]
struct CreateUser {
    username: String,
}

#[secure_endpoint(post("/api/users"), rate = "100/s")]
async fn create_user(body: actix_web::web::Json<CreateUser>) -> HttpResponse {
    HttpResponse::Created().body(body.into_inner().username)
}

// Using the handler reports nothing more: the error fallback keeps its shape.
fn main() {
    let _ = actix_web::App::new().service(create_user);
}
