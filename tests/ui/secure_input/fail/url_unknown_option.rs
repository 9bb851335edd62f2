use secure_api_runtime::prelude::*;

#[derive(serde::Deserialize, SecureInput)]
struct Webhook {
    #[secure(url(private))]
    target: String,
    #[secure(url(pubilc))]
    fallback: String,
    #[secure(url())]
    other: String,
}

fn main() {}
