use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize, SecureInput)]
struct Signup {
    #[secure(skip)]
    username: String,
    #[secure(skip)]
    tags: Vec<u32>,
}

fn main() {}
