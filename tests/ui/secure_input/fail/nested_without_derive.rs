use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize)]
struct Address {
    street: String,
}

#[derive(serde::Deserialize, SecureInput)]
struct Signup {
    #[secure(nested)]
    address: Address,
}

fn main() {}
