use secure_api_runtime::prelude::*;

#[secure_endpoint(get("/a"), auth(role("admin")))]
async fn a() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
