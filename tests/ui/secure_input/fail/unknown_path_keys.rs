use secure_api_runtime::prelude::*;

// Keys written as paths are named in full, at every level, as endpoint options are.
#[derive(serde::Deserialize, SecureInput)]
#[secure(runtime::crate = "::secure_api_runtime")]
struct Signup {
    #[secure(rules::trim)]
    username: String,
    #[secure(length(bounds::min = 3, max = 32))]
    display_name: String,
    #[secure(url(checks::public))]
    homepage: String,
}

fn main() {}
