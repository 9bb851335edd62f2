use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize, SecureInput)]
struct Address {
    #[secure(length(max = 64))]
    street: String,
}

#[derive(serde::Deserialize, SecureInput)]
struct Signup {
    #[secure(length(max = 32))]
    username: String,
    #[serde(flatten)]
    address: Address,
}

fn main() {}
