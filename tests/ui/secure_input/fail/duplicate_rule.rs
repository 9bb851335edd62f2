use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize, SecureInput)]
struct Signup {
    #[secure(length(min = 3))]
    #[secure(trim, length(max = 32))]
    username: String,
}

fn main() {}
