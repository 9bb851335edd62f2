use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize, SecureInput)]
struct Signup {
    #[secure(email)]
    id: u64,
    #[secure(pattern = "[0-9]+")]
    flag: bool,
}

fn main() {}
