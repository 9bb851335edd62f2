use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize, SecureInput)]
enum Command {
    Start { #[secure(length(max = 32))] name: String },
    Stop,
}

fn main() {}
