use secure_api_runtime::prelude::*;

// A syntax error stops the parser before it reaches the route.
#[secure_endpoint(auth(roles(admin)), delete("/users/{id}"))]
async fn delete() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

// Using the handler reports nothing more: the error fallback still sees the route.
fn main() {
    let _ = actix_web::App::new().service(delete);
}
