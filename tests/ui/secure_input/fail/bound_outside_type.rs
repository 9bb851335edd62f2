use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize, SecureInput)]
struct Order {
    #[secure(range(min = -1, max = 300))]
    quantity: u8,
    #[secure(range(min = 0.5, max = 10))]
    count: i32,
}

fn main() {}
