use secure_api_runtime::prelude::*;

#[secure_endpoint(post("/login"), rate = "5/min", algorithm = "sliding_window", burst = 2)]
async fn login() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
