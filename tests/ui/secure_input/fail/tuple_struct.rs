use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize, SecureInput)]
struct Username(#[secure(length(max = 32))] String);

fn main() {}
