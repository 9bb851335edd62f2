use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize, SecureInput)]
struct Post {
    #[secure(each(length(max = 16)))]
    tag: String,
}

fn main() {}
