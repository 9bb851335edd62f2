use secure_api_runtime::prelude::*;

#[secure_endpoint(get("/health"))]
fn health() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
