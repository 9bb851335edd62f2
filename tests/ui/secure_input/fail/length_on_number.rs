use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize, SecureInput)]
struct Signup {
    #[secure(length(min = 1, max = 3))]
    age: u32,
}

fn main() {}
