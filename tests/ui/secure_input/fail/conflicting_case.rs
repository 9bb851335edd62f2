use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize, SecureInput)]
struct Signup {
    #[secure(lowercase, uppercase)]
    code: String,
}

fn main() {}
