use secure_api_runtime::prelude::*;

struct Users;

impl Users {
    #[secure_endpoint(rate = "100/s")]
    async fn create(&self) -> HttpResponse {
        HttpResponse::Created().finish()
    }
}

// The method is kept as written, so code calling it reports nothing more.
fn main() {
    let _ = Users.create();
}
