use secure_api_runtime::prelude::*;
use std::collections::HashMap;

#[derive(serde::Deserialize, SecureInput)]
struct Address {
    #[secure(length(min = 1, max = 64))]
    street: String,
}

#[derive(serde::Deserialize, SecureInput)]
struct Book {
    #[secure(length(max = 100))]
    by_name: HashMap<String, Address>,
}

fn main() {}
