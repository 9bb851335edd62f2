use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize, SecureInput)]
#[secure(krate = "secure_api_runtime")]
struct Signup {
    #[secure(length(min = 3, max = 2), emial)]
    username: String,
    #[secure(range(max = 150), trim)]
    age: u8,
    #[secure(deny("x", "X"))]
    nick: String,
}

fn main() {}
