//! What a client sends is never echoed: not in error pointers (client-chosen map keys), and
//! not in the log (serde's messages quote values, and passwords are values).

mod common;

use std::collections::HashMap;

use actix_web::test::{self as atest};
use actix_web::{App, web};
use common::send;
use secure_api_runtime::prelude::*;
use serde::Deserialize;
use serde_json::json;

/// Asserts that no log line so far contains `needle`, and that some line mentions `seen`
/// (so that the check is not vacuous: the error was logged, without the value).
fn assert_logged_without(needle: &str, seen: &str) {
    let lines = common::log_capture().lines();
    for line in lines.iter() {
        assert!(!line.contains(needle), "the log quotes {needle:?}: {line}");
    }
    assert!(
        lines.iter().any(|l| l.contains(seen)),
        "nothing logged mentions {seen:?}: {lines:#?}"
    );
}

/// A plain serde type (a `SecureInput` type may not sit in a map: the derive refuses it,
/// since it cannot report inside one).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Item {
    #[allow(dead_code)]
    n: u8,
}

#[derive(Debug, Deserialize, SecureInput)]
struct Labels {
    #[secure(length(max = 8))]
    labels: Option<HashMap<String, u8>>,
    #[secure(length(max = 8))]
    items: Option<HashMap<String, Item>>,
    #[secure(length(max = 8))]
    list: Option<Vec<Item>>,
}

async fn labels(input: Valid<Labels>) -> HttpResponse {
    HttpResponse::Ok().body(format!("{:?}", input.into_inner().labels))
}

#[derive(Debug, Deserialize, SecureInput)]
struct Login {
    #[secure(length(min = 1, max = 64))]
    username: String,
    #[secure(length(min = 1, max = 1024))]
    password: String,
}

async fn login(input: Valid<Login>) -> HttpResponse {
    HttpResponse::Ok().body(input.into_inner().username)
}

#[derive(Debug, Deserialize)]
struct RawLogin {
    #[allow(dead_code)]
    password: String,
}

async fn raw_login(_: web::Json<RawLogin>) -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[derive(Debug, Deserialize, SecureInput)]
struct Page {
    #[secure(range(min = 1, max = 100))]
    page: u32,
}

async fn page(q: ValidQuery<Page>) -> HttpResponse {
    HttpResponse::Ok().body(q.into_inner().page.to_string())
}

async fn raw_page(q: web::Query<HashMap<String, u32>>) -> HttpResponse {
    HttpResponse::Ok().body(q.len().to_string())
}

#[derive(Debug, Deserialize, SecureInput)]
struct Id {
    #[secure(range(min = 1, max = 1000))]
    id: u32,
}

async fn by_id(p: ValidPath<Id>) -> HttpResponse {
    HttpResponse::Ok().body(p.into_inner().id.to_string())
}

macro_rules! app {
    () => {
        atest::init_service(
            App::new()
                .wrap(SecureLayer::default())
                .route("/labels", web::post().to(labels))
                .route("/login", web::post().to(login))
                .route("/raw-login", web::post().to(raw_login))
                .route("/page", web::get().to(page))
                .route("/raw-page", web::get().to(raw_page))
                .route("/items/{id}", web::get().to(by_id)),
        )
        .await
    };
}

fn post(path: &str, body: serde_json::Value) -> atest::TestRequest {
    atest::TestRequest::post()
        .uri(path)
        .insert_header(("content-type", "application/json"))
        .set_payload(body.to_string())
}

const XSS: &str = "<img src=x onerror=alert(1)>";

#[actix_rt::test]
async fn client_chosen_map_keys_are_reported_at_the_map() {
    let app = app!();
    // A bad value under a client-chosen key.
    let r = send(&app, post("/labels", json!({ "labels": { XSS: "x" } }))).await;
    let body = r.assert_problem(422, "validation-failed");
    assert_eq!(
        body["errors"],
        json!([{"pointer": "/labels", "code": "type"}])
    );
    r.assert_leaks_none(&["<img", "onerror", "alert"]);

    // A struct inside a map: its rule, unknown field and missing field are all reported at
    // the map, never below the client's key.
    let r = send(
        &app,
        post("/labels", json!({ "items": { XSS: { "n": "x" } } })),
    )
    .await;
    let body = r.assert_problem(422, "validation-failed");
    assert_eq!(
        body["errors"],
        json!([{"pointer": "/items", "code": "type"}])
    );
    r.assert_leaks_none(&["<img", "onerror"]);
    let r = send(
        &app,
        post("/labels", json!({ "items": { XSS: { "n": 1, "<b>": 2 } } })),
    )
    .await;
    let body = r.assert_problem(422, "validation-failed");
    assert_eq!(
        body["errors"],
        json!([{"pointer": "/items", "code": "unknown_field"}])
    );
    r.assert_leaks_none(&["<img", "<b>"]);
    let r = send(&app, post("/labels", json!({ "items": { XSS: {} } }))).await;
    let body = r.assert_problem(422, "validation-failed");
    assert_eq!(
        body["errors"],
        json!([{"pointer": "/items", "code": "required"}])
    );
    r.assert_leaks_none(&["<img"]);

    // Fields and indexes, which the type defines, are still pointed at exactly.
    let r = send(
        &app,
        post("/labels", json!({ "list": [{ "n": 1 }, { "n": "x" }] })),
    )
    .await;
    let body = r.assert_problem(422, "validation-failed");
    assert_eq!(
        body["errors"],
        json!([{"pointer": "/list/1/n", "code": "type"}])
    );
    let r = send(&app, post("/labels", json!({ "list": [{ "n": 1 }, {}] }))).await;
    let body = r.assert_problem(422, "validation-failed");
    assert_eq!(
        body["errors"],
        json!([{"pointer": "/list/1/n", "code": "required"}])
    );
    // And the valid case still works.
    let r = send(&app, post("/labels", json!({ "labels": { "ok": 3 } }))).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[actix_rt::test]
async fn rejected_values_never_reach_the_log() {
    common::log_capture();
    let app = app!();
    // A password sent as a number: serde's message would quote it.
    let r = send(
        &app,
        post(
            "/login",
            json!({ "username": "alice", "password": 73_914_528_610u64 }),
        ),
    )
    .await;
    r.assert_problem(422, "validation-failed");
    assert_logged_without("73914528610", "type at \"/password\"");

    // The same through actix's own `web::Json`, converted by the layer.
    let r = send(
        &app,
        post("/raw-login", json!({ "password": 59_183_046_227u64 })),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_logged_without("59183046227", "JSON body: Data error (type)");

    // A wrong variant of a query value and of a path segment.
    let r = send(
        &app,
        atest::TestRequest::get().uri("/page?page=s3cr3t-query-value"),
    )
    .await;
    r.assert_problem(422, "validation-failed");
    assert_logged_without("s3cr3t-query-value", "invalid at \"/page\"");
    let r = send(
        &app,
        atest::TestRequest::get().uri("/raw-page?n=s3cr3t-raw-query"),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_logged_without("s3cr3t-raw-query", "query string: invalid");
    let r = send(&app, atest::TestRequest::get().uri("/items/s3cr3t-segment")).await;
    r.assert_problem(404, "not-found");
    assert_logged_without("s3cr3t-segment", "path parameter `id` did not deserialise");

    // Malformed JSON: where it stopped, never what it read.
    let r = send(
        &app,
        atest::TestRequest::post()
            .uri("/login")
            .insert_header(("content-type", "application/json"))
            .set_payload(r#"{"username": "alice", "password": s3cr3t-unquoted}"#),
    )
    .await;
    r.assert_problem(400, "malformed-request");
    assert_logged_without("s3cr3t-unquoted", "Syntax error at line 1 column");
}

#[secure_endpoint(get("/me"), auth)]
async fn me(principal: secure_api_runtime::auth::Principal) -> HttpResponse {
    HttpResponse::Ok().body(principal.subject)
}

/// A rejected token's claims and header are the client's text: the debug log says which
/// check failed, not what the token held.
#[actix_rt::test]
async fn rejected_tokens_are_logged_by_kind_only() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    use secure_api_runtime::auth::jwt::JwtAuth;
    common::log_capture();
    let secret = b"0123456789abcdef0123456789abcdef".to_vec();
    let jwt = JwtAuth::hs256(secret.clone())
        .issuer("i")
        .audience("a")
        .build()
        .unwrap();
    let api = SecureApi::builder().jwt(jwt).build();
    let app = atest::init_service(App::new().wrap(api.layer()).service(me)).await;
    let key = EncodingKey::from_secret(&secret);
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".to_owned());
    let claims =
        json!({"sub": "alice", "iss": "i", "aud": "a", "iat": 1, "exp": "s3cr3t-claim-value"});
    let bad_claims = encode(&header, &claims, &key).unwrap();
    header.typ = Some("s3cr3t-typ-value".to_owned());
    let bad_typ = encode(&header, &json!({"sub": "alice"}), &key).unwrap();
    for token in [bad_claims, bad_typ] {
        let r = send(
            &app,
            atest::TestRequest::get()
                .uri("/me")
                .insert_header(("authorization", format!("Bearer {token}"))),
        )
        .await;
        r.assert_problem(401, "invalid-credentials");
    }
    assert_logged_without("s3cr3t-claim-value", "claims are not the expected JSON");
    assert_logged_without("s3cr3t-typ-value", "typ is not at+jwt");
}
