use secure_api_runtime::prelude::*;

// The base rate affords a cost of 5, but the `anonymous` tier never can.
#[secure_endpoint(post("/export"), rate = "10/min", tier(anonymous = "3/min"), cost = 5)]
async fn export() -> HttpResponse {
    HttpResponse::Ok().finish()
}

// Using the handler reports nothing more: the error fallback keeps its shape.
fn main() {
    let _ = actix_web::App::new().service(export);
}
