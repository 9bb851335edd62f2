use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize, SecureInput)]
struct Signup {
    #[secure(lenght(min = 3, max = 32))]
    username: String,
}

fn main() {}
