use secure_api_runtime::prelude::*;

#[secure_endpoint(post("/export"), rate = "10/min", burst = 2, cost = 5)]
async fn export() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
