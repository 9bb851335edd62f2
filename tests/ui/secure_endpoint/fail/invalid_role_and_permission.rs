use secure_api_runtime::prelude::*;

#[secure_endpoint(delete("/users/{id}"), auth(roles("admin user"), permissions("users delete", "users::delete")))]
async fn delete() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

// Using the handler reports nothing more: the error fallback keeps its shape.
fn main() {
    let _ = actix_web::App::new().service(delete);
}
