use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize, SecureInput)]
struct Signup {
    #[secure(email = true, pattern)]
    email: String,
}

fn main() {}
