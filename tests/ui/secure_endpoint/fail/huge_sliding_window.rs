use secure_api_runtime::prelude::*;

#[secure_endpoint(get("/feed"), rate = "100000/min", algorithm = "sliding_window")]
async fn feed() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
