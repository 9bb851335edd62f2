use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize, SecureInput)]
struct Signup {
    #[secure(trim, lowercase, length(min = 3, max = 32), pattern = "[a-z0-9_]+",
             deny("admin", "ab", "null!", " root"))]
    username: String,
}

fn main() {}
