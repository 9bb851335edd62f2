use secure_api_runtime::prelude::*;

#[secure_endpoint(post("/api/items"))]
async fn create<T: SecureInput + serde::de::DeserializeOwned + 'static>(item: Valid<T>) -> HttpResponse {
    let _ = item;
    HttpResponse::Created().finish()
}

fn main() {}
