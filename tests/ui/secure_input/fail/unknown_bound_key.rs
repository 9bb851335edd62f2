use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize, SecureInput)]
struct Signup {
    #[secure(length(mni = 1, max = 8))]
    username: String,
}

fn main() {}
