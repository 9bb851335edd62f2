use secure_api_runtime::prelude::*;

#[secure_endpoint(post("/api/items"))]
async fn create<T: SecureInput + serde::de::DeserializeOwned + 'static>(item: Valid<T>) -> HttpResponse {
    let _ = item;
    HttpResponse::Created().finish()
}

// Without a route: still a handler for `.to(..)`.
#[secure_endpoint(rate = "1/s")]
async fn update<T: SecureInput + serde::de::DeserializeOwned + 'static>(item: Valid<T>) -> HttpResponse {
    let _ = item;
    HttpResponse::Ok().finish()
}

// Using the handlers reports nothing more: the error fallback keeps their shape.
fn main() {
    let _ = actix_web::App::new()
        .service(create)
        .service(actix_web::web::resource("/api/items/1").route(actix_web::web::put().to(update)));
}
