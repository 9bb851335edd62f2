use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize)]
struct CreateUser {
    username: String,
}

#[secure_endpoint(post("/api/users"))]
async fn create_user(input: Valid<CreateUser>) -> HttpResponse {
    let _ = input;
    HttpResponse::Created().finish()
}

fn main() {}
