use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize, SecureInput)]
struct Envelope<T> {
    #[secure(length(max = 10))]
    items: Vec<T>,
    payload: Option<T>,
    #[secure(nested)]
    checked: T,
}

fn main() {}
