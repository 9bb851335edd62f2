use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize, SecureInput)]
struct Order {
    #[secure(one_of("small", 2))]
    size: String,
    #[secure(one_of("eur", "usd"))]
    amount: u64,
    #[secure(one_of("eur", "eur"))]
    currency: String,
}

fn main() {}
