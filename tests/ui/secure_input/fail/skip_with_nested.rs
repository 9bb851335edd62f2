use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize, SecureInput)]
struct Address {
    #[secure(length(min = 1, max = 64))]
    street: String,
}

#[derive(serde::Deserialize, SecureInput)]
struct Order {
    #[secure(skip, each(nested))]
    stops: Vec<Address>,
}

fn main() {}
