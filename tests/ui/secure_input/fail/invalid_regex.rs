use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize, SecureInput)]
struct Signup {
    #[secure(pattern = "[a-z+")]
    username: String,
}

fn main() {}
