use secure_api_runtime::prelude::*;

enum Perm {
    UsersRead,
}

impl secure_api_runtime::auth::Permission for Perm {
    fn name(&self) -> &'static str {
        match self {
            Perm::UsersRead => "users:read",
        }
    }
}

#[secure_endpoint(delete("/users/{id}"), auth(permissions(Perm::UsersDelete)))]
async fn delete() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

fn main() {
    let _ = Perm::UsersRead;
}
