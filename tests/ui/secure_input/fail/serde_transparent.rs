use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize, SecureInput)]
#[serde(transparent)]
struct Username {
    #[secure(length(max = 32))]
    value: String,
}

fn main() {}
