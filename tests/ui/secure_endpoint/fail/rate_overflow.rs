use secure_api_runtime::prelude::*;

#[secure_endpoint(post("/api/users"), rate = "99999999999/s")]
async fn create_user() -> HttpResponse {
    HttpResponse::Created().finish()
}

fn main() {}
