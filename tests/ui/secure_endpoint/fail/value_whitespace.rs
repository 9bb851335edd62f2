use secure_api_runtime::prelude::*;

// Rates, sizes and durations are written without whitespace, as the runtime's
// `Rate::from_str` reads them.

#[secure_endpoint(post("/a"), rate = "100 / s")]
async fn a() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[secure_endpoint(post("/b"), max_body = " 16KiB")]
async fn b() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[secure_endpoint(post("/c"), idempotent(ttl = "24 h"))]
async fn c() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn main() {}
