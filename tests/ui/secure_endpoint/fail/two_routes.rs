use secure_api_runtime::prelude::*;

#[secure_endpoint(get("/users"), post("/users"))]
async fn users() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
