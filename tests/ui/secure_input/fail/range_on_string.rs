use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize, SecureInput)]
struct Signup {
    #[secure(range(min = 1, max = 3))]
    username: String,
}

fn main() {}
