use secure_api_runtime::prelude::*;

// Without `rate` the app's default policy applies; `burst` would be dropped.
#[secure_endpoint(post("/notes"), burst = 20)]
async fn create_note() -> HttpResponse {
    HttpResponse::Created().finish()
}

fn main() {}
