use secure_api_runtime::prelude::*;

#[secure_endpoint(get("/health"), rate = "unlimited", burst = 10)]
async fn health() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
