use secure_api_runtime::prelude::*;

#[secure_endpoint(delete("/users/{id}"), auth(roles("admin user"), permissions("users delete", "users::delete")))]
async fn delete() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

fn main() {}
