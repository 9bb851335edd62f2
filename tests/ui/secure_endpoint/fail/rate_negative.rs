use secure_api_runtime::prelude::*;

#[secure_endpoint(post("/api/users"), rate = "-1/s")]
async fn create_user() -> HttpResponse {
    HttpResponse::Created().finish()
}

fn main() {}
