use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize)]
struct Signup {
    username: String,
}

async fn create(input: Valid<Signup>) -> HttpResponse {
    HttpResponse::Ok().body(input.into_inner().username)
}

fn main() {
    let _ = create;
}
