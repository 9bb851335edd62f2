use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize, SecureInput)]
struct Signup {
    #[secure(nfkc, trim, nfc)]
    username: String,
}

fn main() {}
