use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize, SecureInput)]
struct Signup {
    #[secure(length())]
    username: String,
    #[secure(range(min = ))]
    age: u8,
}

fn main() {}
