use secure_api_runtime::prelude::*;

#[secure_endpoint(get("/a"), auth = "basic")]
async fn a() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[secure_endpoint(get("/b"), auth(basic))]
async fn b() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
