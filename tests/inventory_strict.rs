//! Strict inventory mode refuses to build while the program has an unannotated or
//! non-idempotent state-changing endpoint. A test binary of its own: the registry holds
//! every endpoint linked into the binary, so this file's endpoints are the whole program.

use secure_api_runtime::api::BuildError;
use secure_api_runtime::inventory::Issue;
use secure_api_runtime::prelude::*;

/// Passes the review.
#[secure_endpoint(post("/strict/ok"), auth, idempotent)]
async fn reviewed() -> HttpResponse {
    HttpResponse::Ok().finish()
}

/// Passes the review: a safe method.
#[secure_endpoint(get("/strict/read"), public)]
async fn read() -> HttpResponse {
    HttpResponse::Ok().finish()
}

/// Neither `auth` nor `public`, and a POST without `idempotent`.
#[secure_endpoint(post("/strict/open"))]
async fn unannotated_post() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[test]
fn strict_mode_refuses_an_unannotated_state_changing_endpoint() {
    let err = SecureApi::builder()
        .strict_inventory(true)
        .try_build()
        .unwrap_err();
    let BuildError::UnreviewedEndpoints(findings) = &err else {
        panic!("unexpected error: {err}");
    };
    let flagged: Vec<_> = findings
        .iter()
        .map(|f| (f.method, f.path, f.handler, f.issue))
        .collect();
    assert_eq!(
        flagged,
        [
            (
                Some("POST"),
                Some("/strict/open"),
                "unannotated_post",
                Issue::Unannotated
            ),
            (
                Some("POST"),
                Some("/strict/open"),
                "unannotated_post",
                Issue::StateChangingWithoutIdempotency
            ),
        ]
    );
    assert_eq!(
        err.to_string(),
        "strict_inventory: 2 finding(s) in the endpoint inventory:\n  \
         - POST /strict/open (inventory_strict::unannotated_post): neither `auth` nor `public`: add `auth(...)`, or `public` if anyone may call it\n  \
         - POST /strict/open (inventory_strict::unannotated_post): changes state without `idempotent`: add `idempotent` so that retries cannot repeat it"
    );
}

#[test]
#[should_panic(
    expected = "SecureApi configuration refused: strict_inventory: 2 finding(s) in the endpoint inventory:\n  - POST /strict/open (inventory_strict::unannotated_post): neither `auth` nor `public`"
)]
fn build_panics_in_strict_mode_with_the_findings() {
    let _ = SecureApi::builder().strict_inventory(true).build();
}

#[test]
fn strict_mode_is_off_by_default() {
    assert!(SecureApi::builder().try_build().is_ok());
    assert!(
        SecureApi::builder()
            .strict_inventory(false)
            .try_build()
            .is_ok()
    );
}
