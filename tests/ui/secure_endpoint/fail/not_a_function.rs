use secure_api_runtime::prelude::*;

#[secure_endpoint(get("/feed"))]
struct Feed;

fn main() {}
