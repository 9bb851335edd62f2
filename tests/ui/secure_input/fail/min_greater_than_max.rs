use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize, SecureInput)]
struct Signup {
    #[secure(length(min = 32, max = 3))]
    username: String,
}

fn main() {}
