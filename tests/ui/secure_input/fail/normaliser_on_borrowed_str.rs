use secure_api_runtime::prelude::*;
use std::borrow::Cow;

#[derive(serde::Deserialize, SecureInput)]
struct Signup<'a> {
    #[serde(borrow)]
    #[secure(lowercase, length(max = 8))]
    username: Cow<'a, str>,
}

fn main() {}
