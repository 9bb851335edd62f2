use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize, SecureInput)]
struct Signup {
    #[secure(deny("admin", "ＡＤＭＩＮ", "r00t", "root", "\u{200B}"))]
    username: String,
}

fn main() {}
