//! The foundation end to end: `#[derive(SecureInput)]`, the `Valid*` extractors, the problem
//! layer and the security headers, through actix's test service.

mod common;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{App, HttpResponse, test, web};
use common::{INTERNAL_TEXT, Reply, send};
use secure_api_runtime::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize, SecureInput)]
struct CreateUser {
    #[secure(
        trim,
        lowercase,
        length(min = 3, max = 32),
        pattern = "[a-z0-9_-]+",
        deny("admin", "root", "null", "undefined")
    )]
    username: String,
    #[secure(trim, lowercase, length(max = 255), email)]
    email: String,
    #[secure(range(min = 0, max = 150))]
    age: i32,
}

fn no_spaces(value: &str) -> Result<(), &'static str> {
    if value.contains(' ') {
        Err("no_spaces")
    } else {
        Ok(())
    }
}

#[derive(Debug, Deserialize, SecureInput)]
#[serde(rename_all = "camelCase")]
struct Address {
    #[secure(trim, length(min = 1, max = 64))]
    street_name: String,
    #[secure(uppercase, one_of("DE", "FR", "NL"))]
    country_code: String,
}

#[derive(Debug, Deserialize, SecureInput)]
#[serde(rename_all = "camelCase")]
struct Profile {
    #[secure(url)]
    home_page: Option<String>,
    #[secure(ip)]
    last_ip: String,
    #[secure(uuid)]
    request_id: String,
    #[secure(one_of(1, 2, 3))]
    plan: u8,
    #[secure(range(min = 0.0, max = 1.0))]
    ratio: f64,
    #[secure(custom = no_spaces, nfc)]
    display: String,
    #[secure(nested)]
    address: Address,
    #[secure(length(max = 3), each(trim, lowercase, length(min = 2, max = 8)))]
    tags: Vec<String>,
    #[serde(rename = "x-extra")]
    #[secure(length(max = 4))]
    extra: Option<String>,
    #[secure(each(nested))]
    others: Vec<Address>,
}

fn profile_ok() -> Value {
    json!({
        "homePage": "https://example.com/me",
        "lastIp": "2001:db8::1",
        "requestId": "67e55044-10b1-426f-9247-bb680e5fe0c8",
        "plan": 2,
        "ratio": 0.5,
        "display": "Cafe\u{301}",
        "address": {"streetName": "  Main St ", "countryCode": "de"},
        "tags": [" Rust ", "API"],
        "others": [],
    })
}

/// A deny list without a `pattern`, so that `deny` is the only rule a look-alike can fail.
#[derive(Debug, Deserialize, SecureInput)]
struct Nickname {
    #[secure(
        trim,
        length(min = 1, max = 32),
        deny("admin", "root", "null", "undefined")
    )]
    nick: String,
}

#[derive(Debug, Deserialize, SecureInput)]
struct Handle {
    #[secure(nfkc, lowercase)]
    handle: String,
}

/// `Address` fields without `nested`: validated all the same.
#[derive(Debug, Deserialize, SecureInput)]
struct Order {
    address: Address,
    billing: Option<Address>,
    stops: Vec<Address>,
    boxed: Box<Address>,
    #[secure(length(max = 2))]
    extra_stops: Vec<Option<Address>>,
}

/// `skip` accepts a validated input type unvalidated, deliberately.
#[derive(Debug, Deserialize, SecureInput)]
struct Tolerant {
    #[secure(skip)]
    raw: Address,
}

#[derive(Debug, Deserialize, SecureInput)]
struct Webhook {
    #[secure(url(public))]
    target: String,
}

#[derive(Debug, Deserialize, SecureInput)]
struct Search {
    #[secure(trim, length(min = 1, max = 20))]
    q: String,
    #[secure(range(min = 1, max = 100))]
    limit: Option<u32>,
}

#[derive(Debug, Deserialize, SecureInput)]
struct UserPath {
    #[secure(uuid)]
    id: String,
}

async fn create_user(input: Valid<CreateUser>) -> HttpResponse {
    let u = input.into_inner();
    HttpResponse::Created().json(json!({"user": u.username, "email": u.email, "age": u.age}))
}

async fn profile(input: Valid<Profile>) -> HttpResponse {
    let p = input.into_inner();
    HttpResponse::Ok().json(json!({
        "display": p.display,
        "street": p.address.street_name,
        "country": p.address.country_code,
        "tags": p.tags,
    }))
}

async fn nickname(input: Valid<Nickname>) -> HttpResponse {
    let n = input.into_inner();
    HttpResponse::Ok().json(json!({"nick": n.nick}))
}

async fn handle(input: Valid<Handle>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"handle": input.into_inner().handle}))
}

async fn tolerant(input: Valid<Tolerant>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"street": input.into_inner().raw.street_name}))
}

async fn order(input: Valid<Order>) -> HttpResponse {
    let o = input.into_inner();
    HttpResponse::Ok().json(json!({
        "street": o.address.street_name,
        "country": o.address.country_code,
        "boxed": o.boxed.country_code,
    }))
}

async fn webhook(_: Valid<Webhook>) -> HttpResponse {
    HttpResponse::NoContent().finish()
}

async fn search(q: ValidQuery<Search>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"q": q.q, "limit": q.limit}))
}

async fn user(p: ValidPath<UserPath>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"id": p.id}))
}

async fn boom() -> HttpResponse {
    panic!("database password is hunter2")
}

async fn failing() -> Result<HttpResponse, ApiError> {
    let err = std::io::Error::other("connection to 10.0.0.7:5432 refused");
    Err(err.into())
}

async fn weak_headers() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::X_FRAME_OPTIONS, "SAMEORIGIN"))
        .insert_header((header::SERVER, "nginx/1.2.3"))
        .insert_header(("x-powered-by", "PHP"))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .finish()
}

async fn raw_error() -> HttpResponse {
    HttpResponse::Conflict()
        .content_type("text/plain")
        .body("row 42 is locked by txn 7")
}

macro_rules! app {
    () => {
        test::init_service(
            App::new()
                .wrap(SecureLayer::default())
                .service(web::resource("/users").route(web::post().to(create_user)))
                .service(web::resource("/profile").route(web::post().to(profile)))
                .service(web::resource("/nick").route(web::post().to(nickname)))
                .service(web::resource("/handle").route(web::post().to(handle)))
                .service(web::resource("/order").route(web::post().to(order)))
                .service(web::resource("/tolerant").route(web::post().to(tolerant)))
                .service(web::resource("/hooks").route(web::post().to(webhook)))
                .service(web::resource("/search").route(web::get().to(search)))
                .service(web::resource("/users/{id}").route(web::get().to(user)))
                .service(web::resource("/boom").route(web::get().to(boom)))
                .service(web::resource("/failing").route(web::get().to(failing)))
                .service(web::resource("/weak").route(web::get().to(weak_headers)))
                .service(web::resource("/raw").route(web::get().to(raw_error)))
                .service(
                    web::resource("/small")
                        .app_data(InputLimits::default().max_body(64).max_depth(3))
                        .route(web::post().to(create_user)),
                ),
        )
        .await
    };
}

fn post_json(path: &str, body: &Value) -> test::TestRequest {
    test::TestRequest::post()
        .uri(path)
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(body.to_string())
}

fn post_raw(path: &str, content_type: &str, body: &'static str) -> test::TestRequest {
    test::TestRequest::post()
        .uri(path)
        .insert_header((header::CONTENT_TYPE, content_type))
        .set_payload(body)
}

fn errors(body: &Value) -> Vec<(String, String)> {
    body["errors"]
        .as_array()
        .expect("errors array")
        .iter()
        .map(|e| {
            (
                e["pointer"].as_str().unwrap().to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(p, c)| (p.to_string(), c.to_string()))
        .collect()
}

#[actix_rt::test]
async fn valid_input_is_normalised_before_the_handler_sees_it() {
    let app = app!();
    let r = send(
        &app,
        post_json(
            "/users",
            &json!({"username": " Alice ", "email": " ALICE@Example.COM ", "age": 30}),
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.assert_security_headers();
    assert_eq!(
        r.json(),
        json!({"user": "alice", "email": "alice@example.com", "age": 30})
    );
}

#[actix_rt::test]
async fn blocklist_applies_after_lowercasing() {
    let app = app!();
    for name in ["Admin", " ROOT ", "nUlL"] {
        let r = send(
            &app,
            post_json(
                "/users",
                &json!({"username": name, "email": "a@example.com", "age": 1}),
            ),
        )
        .await;
        let body = r.assert_problem(422, "validation-failed");
        assert_eq!(errors(&body), pairs(&[("/username", "deny")]), "{name}");
        r.assert_leaks_none(&[name.trim(), &name.trim().to_lowercase()]);
    }
}

#[actix_rt::test]
async fn deny_refuses_look_alikes_and_invisible_characters() {
    let app = app!();
    for disguised in [
        "\u{FF41}\u{FF44}\u{FF4D}\u{FF49}\u{FF4E}", // fullwidth ａｄｍｉｎ
        "adm\u{200B}in",                            // zero-width space
        "\u{0430}dmin",                             // Cyrillic а
        "ＲＯＯＴ",
        "r\u{043E}\u{043E}t", // Cyrillic о
        "nu\u{00AD}ll",       // soft hyphen
        "r00t",
    ] {
        let r = send(&app, post_json("/nick", &json!({"nick": disguised}))).await;
        let body = r.assert_problem(422, "validation-failed");
        assert_eq!(errors(&body), pairs(&[("/nick", "deny")]), "{disguised:?}");
        r.assert_leaks_none(&[disguised]);
    }
    // Ordinary words that merely contain or resemble an entry pass.
    for ordinary in ["administrator", "root2", "nullable", "undefinedness", "Zoë"] {
        let r = send(&app, post_json("/nick", &json!({"nick": ordinary}))).await;
        assert_eq!(r.status, 200, "{ordinary:?}: {}", r.text());
        assert_eq!(r.json()["nick"], ordinary);
    }
    // The example's username rules refuse a look-alike for its pattern and its deny list.
    let r = send(
        &app,
        post_json(
            "/users",
            &json!({"username": "\u{0430}dmin", "email": "a@example.com", "age": 1}),
        ),
    )
    .await;
    let body = r.assert_problem(422, "validation-failed");
    assert_eq!(
        errors(&body),
        pairs(&[("/username", "pattern"), ("/username", "deny")])
    );
}

#[actix_rt::test]
async fn nfkc_folds_compatibility_forms_before_the_case_mapping() {
    let app = app!();
    // Fullwidth letters, a ligature and a black-letter capital (whose NFKC form is `H`,
    // which `lowercase` then lowers).
    let r = send(
        &app,
        post_json(
            "/handle",
            &json!({"handle": "\u{FF21}\u{FF4C}\u{FB01}\u{210C}"}),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["handle"], "alfih");
}

fn address(street: &str, country: &str) -> Value {
    json!({"streetName": street, "countryCode": country})
}

#[actix_rt::test]
async fn fields_of_secure_input_types_are_validated_without_nested() {
    let app = app!();
    let ok = json!({
        "address": address(" Main St ", "de"),
        "billing": address("Side St", "FR"),
        "stops": [address("A", "NL")],
        "boxed": address("B", "nl"),
        "extra_stops": [null, address("C", "de")],
    });
    let r = send(&app, post_json("/order", &ok)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Normalised too.
    assert_eq!(
        r.json(),
        json!({"street": "Main St", "country": "DE", "boxed": "NL"})
    );

    let bad = json!({
        "address": address("", "us"),
        "billing": address("x", "XX"),
        "stops": [address("A", "NL"), address("  ", "NL")],
        "boxed": address("B", "it"),
        "extra_stops": [null, address("C", "es"), null],
    });
    let r = send(&app, post_json("/order", &bad)).await;
    let body = r.assert_problem(422, "validation-failed");
    assert_eq!(
        errors(&body),
        pairs(&[
            ("/address/streetName", "length"),
            ("/address/countryCode", "one_of"),
            ("/billing/countryCode", "one_of"),
            ("/stops/1/streetName", "length"),
            ("/boxed/countryCode", "one_of"),
            ("/extra_stops", "length"),
            ("/extra_stops/1/countryCode", "one_of"),
        ])
    );
}

#[actix_rt::test]
async fn skip_accepts_a_validated_input_type_unvalidated() {
    let app = app!();
    let r = send(
        &app,
        post_json("/tolerant", &json!({"raw": address("  ", "us")})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"street": "  "}));
}

#[actix_rt::test]
async fn url_public_refuses_local_private_and_disguised_hosts() {
    let app = app!();
    for public in [
        "https://example.com/hook",
        "https://93.184.216.34:8443/x",
        "https://[2606:2800:220:1:248:1893:25c8:1946]/",
    ] {
        let r = send(&app, post_json("/hooks", &json!({"target": public}))).await;
        assert_eq!(r.status, 204, "{public}: {}", r.text());
    }
    let cases = [
        ("http://127.0.0.1/", "url_public"),
        ("http://0x7f000001/", "url_public"),
        ("http://2130706433/", "url"),
        ("http://0177.0.0.1/", "url"),
        ("http://127.1/", "url"),
        ("http://[::ffff:127.0.0.1]/", "url_public"),
        ("http://[::ffff:7f00:1]/", "url_public"),
        ("http://[::1]:8080/", "url_public"),
        ("http://localhost/", "url_public"),
        ("http://LOCALHOST/", "url_public"),
        ("http://api.localhost/", "url_public"),
        ("http://localhost.localdomain/", "url_public"),
        ("http://localhost./", "url"),
        (
            "http://\u{FF4C}\u{FF4F}\u{FF43}\u{FF41}\u{FF4C}\u{FF48}\u{FF4F}\u{FF53}\u{FF54}/",
            "url_public",
        ),
        ("http://%6c%6f%63%61%6c%68%6f%73%74/", "url"),
        ("http://10.0.0.7:6379/", "url_public"),
        ("http://172.16.0.1/", "url_public"),
        ("http://192.168.1.1/", "url_public"),
        ("http://100.64.0.1/", "url_public"),
        ("http://169.254.169.254/latest/meta-data/", "url_public"),
        ("http://[fd00:ec2::254]/", "url_public"),
        ("http://[fe80::1]/", "url_public"),
        ("http://224.0.0.1/", "url_public"),
        ("http://0.0.0.0/", "url_public"),
        (
            "http://metadata.google.internal/computeMetadata/v1/",
            "url_public",
        ),
        ("http://metadata/", "url_public"),
        ("ftp://example.com/", "url"),
    ];
    for (url, code) in cases {
        let r = send(&app, post_json("/hooks", &json!({"target": url}))).await;
        let body = r.assert_problem(422, "validation-failed");
        assert_eq!(errors(&body), pairs(&[("/target", code)]), "{url}");
        r.assert_leaks_none(&[url]);
    }
}

#[actix_rt::test]
async fn every_failed_rule_is_reported_in_order_with_bounds_and_no_values() {
    let app = app!();
    let r = send(
        &app,
        post_json(
            "/users",
            &json!({"username": "Zé!", "email": "zed@@evil", "age": 151}),
        ),
    )
    .await;
    let body = r.assert_problem(422, "validation-failed");
    assert_eq!(
        body["errors"],
        json!([
            {"pointer": "/username", "code": "pattern"},
            {"pointer": "/email", "code": "email"},
            {"pointer": "/age", "code": "range", "min": 0, "max": 150},
        ])
    );
    r.assert_leaks_none(&["zé!", "Zé!", "zed@@evil", "151"]);
    r.assert_leaks_none(INTERNAL_TEXT);

    let r = send(
        &app,
        post_json(
            "/users",
            &json!({"username": "ab", "email": "a@example.com", "age": -1}),
        ),
    )
    .await;
    let body = r.assert_problem(422, "validation-failed");
    assert_eq!(
        body["errors"],
        json!([
            {"pointer": "/username", "code": "length", "min": 3, "max": 32},
            {"pointer": "/age", "code": "range", "min": 0, "max": 150},
        ])
    );
}

#[actix_rt::test]
async fn length_counts_characters_not_bytes() {
    let app = app!();
    let long = "a".repeat(33);
    let r = send(
        &app,
        post_json(
            "/users",
            &json!({"username": long, "email": "a@example.com", "age": 1}),
        ),
    )
    .await;
    assert_eq!(
        errors(&r.assert_problem(422, "validation-failed")),
        pairs(&[("/username", "length")])
    );
    let r = send(
        &app,
        post_json(
            "/profile",
            &json!({"lastIp": "127.0.0.1", "requestId": "67e55044-10b1-426f-9247-bb680e5fe0c8",
                    "plan": 1, "ratio": 0.1, "display": "x",
                    "address": {"streetName": "ü".repeat(64), "countryCode": "DE"},
                    "tags": [], "others": []}),
        ),
    )
    .await;
    assert_eq!(
        r.status,
        200,
        "64 two-byte chars are within 64 chars: {}",
        r.text()
    );
}

#[actix_rt::test]
async fn every_rule_kind_reports_its_code_at_its_pointer() {
    let app = app!();
    let r = send(&app, post_json("/profile", &profile_ok())).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"display": "Caf\u{e9}", "street": "Main St", "country": "DE", "tags": ["rust", "api"]})
    );

    let bad = json!({
        "homePage": "javascript:alert(1)",
        "lastIp": "999.1.1.1",
        "requestId": "not-a-uuid",
        "plan": 4,
        "ratio": 1.5,
        "display": "has space",
        "address": {"streetName": "   ", "countryCode": "us"},
        "tags": ["ok", "x", "waytoolongtag", "four"],
        "x-extra": "12345",
        "others": [{"streetName": "Fine", "countryCode": "NL"}, {"streetName": "", "countryCode": "XX"}],
    });
    let r = send(&app, post_json("/profile", &bad)).await;
    let body = r.assert_problem(422, "validation-failed");
    assert_eq!(
        errors(&body),
        pairs(&[
            ("/homePage", "url"),
            ("/lastIp", "ip"),
            ("/requestId", "uuid"),
            ("/plan", "one_of"),
            ("/ratio", "range"),
            ("/display", "no_spaces"),
            ("/address/streetName", "length"),
            ("/address/countryCode", "one_of"),
            ("/tags", "length"),
            ("/tags/1", "length"),
            ("/tags/2", "length"),
            ("/x-extra", "length"),
            ("/others/1/streetName", "length"),
            ("/others/1/countryCode", "one_of"),
        ])
    );
    assert_eq!(
        body["errors"][4],
        json!({"pointer": "/ratio", "code": "range", "min": 0.0, "max": 1.0})
    );
    r.assert_leaks_none(&[
        "javascript",
        "999.1.1.1",
        "not-a-uuid",
        "has space",
        "waytoolongtag",
        "12345",
    ]);
}

#[actix_rt::test]
async fn unknown_fields_are_rejected_without_echoing_their_names() {
    let app = app!();
    let r = send(
        &app,
        post_json(
            "/users",
            &json!({"username": "alice", "email": "a@example.com", "age": 1, "isAdmin": true}),
        ),
    )
    .await;
    let body = r.assert_problem(422, "validation-failed");
    assert_eq!(errors(&body), pairs(&[("", "unknown_field")]));
    r.assert_leaks_none(&["isAdmin"]);

    let mut nested = profile_ok();
    nested["address"]["role"] = json!("admin");
    let r = send(&app, post_json("/profile", &nested)).await;
    let body = r.assert_problem(422, "validation-failed");
    assert_eq!(errors(&body), pairs(&[("/address", "unknown_field")]));
}

#[actix_rt::test]
async fn wrong_types_and_missing_fields_are_422_with_pointers() {
    let app = app!();
    let r = send(
        &app,
        post_json(
            "/users",
            &json!({"username": 5, "email": "a@example.com", "age": 1}),
        ),
    )
    .await;
    assert_eq!(
        errors(&r.assert_problem(422, "validation-failed")),
        pairs(&[("/username", "type")])
    );
    r.assert_leaks_none(INTERNAL_TEXT);

    let r = send(
        &app,
        post_json("/users", &json!({"email": "a@example.com", "age": 1})),
    )
    .await;
    assert_eq!(
        errors(&r.assert_problem(422, "validation-failed")),
        pairs(&[("/username", "required")])
    );
    r.assert_leaks_none(INTERNAL_TEXT);

    let r = send(
        &app,
        post_json(
            "/users",
            &json!({"username": "alice", "email": "a@example.com", "age": 1e40}),
        ),
    )
    .await;
    assert_eq!(
        errors(&r.assert_problem(422, "validation-failed")),
        pairs(&[("/age", "type")])
    );
}

#[actix_rt::test]
async fn malformed_json_is_400() {
    let app = app!();
    for body in [
        r#"{"username": "alice""#,
        r#"{"username": 5"#,
        "",
        r#"{"username": "a", "email": "a@example.com", "age": 1} trailing"#,
        "\u{feff}{}",
        r#"{"username": "a\u00"}"#,
    ] {
        let r = send(&app, post_raw("/users", "application/json", body)).await;
        r.assert_problem(400, "malformed-request");
        r.assert_leaks_none(INTERNAL_TEXT);
        r.assert_leaks_none(&["trailing"]);
    }
}

#[actix_rt::test]
async fn content_type_is_checked_before_the_body_is_read() {
    let app = app!();
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin1",
        "application/jsonp",
    ] {
        let r = send(&app, post_raw("/users", ct, "{}")).await;
        r.assert_problem(415, "unsupported-media-type");
    }
    let r = send(
        &app,
        test::TestRequest::post().uri("/users").set_payload("{}"),
    )
    .await;
    r.assert_problem(415, "unsupported-media-type");
    let r = send(
        &app,
        post_raw(
            "/users",
            "application/json; charset=UTF-8",
            r#"{"username": "alice", "email": "a@example.com", "age": 1}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 201);
}

#[actix_rt::test]
async fn bodies_over_the_limit_are_413() {
    let app = app!();
    let big = format!(
        r#"{{"username": "{}", "email": "a@example.com", "age": 1}}"#,
        "a".repeat(64 * 1024)
    );
    let r = send(
        &app,
        test::TestRequest::post()
            .uri("/users")
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .set_payload(big),
    )
    .await;
    r.assert_problem(413, "payload-too-large");

    // A per-resource limit, and a body that lies about its length.
    let body = r#"{"username": "alice", "email": "alice@example.com", "age": 1, "pad": "xxxxxxxxxxxxxxxx"}"#;
    let r = send(&app, post_raw("/small", "application/json", body)).await;
    r.assert_problem(413, "payload-too-large");
    let r = send(
        &app,
        post_raw("/small", "application/json", body)
            .insert_header((header::CONTENT_LENGTH, HeaderValue::from_static("10"))),
    )
    .await;
    assert!(
        r.status == 413 || r.status == 400,
        "a body longer than its Content-Length is refused: {}",
        r.status
    );
}

#[actix_rt::test]
async fn nesting_deeper_than_the_limit_is_400_before_parsing() {
    let app = app!();
    let deep = format!("{}1{}", "[".repeat(33), "]".repeat(33));
    let r = send(
        &app,
        test::TestRequest::post()
            .uri("/users")
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .set_payload(deep),
    )
    .await;
    r.assert_problem(400, "nesting-too-deep");
    let r = send(
        &app,
        post_raw("/small", "application/json", r#"{"a":[{"b":[]}]}"#),
    )
    .await;
    r.assert_problem(400, "nesting-too-deep");
    // Brackets inside strings do not count.
    let r = send(
        &app,
        post_raw(
            "/small",
            "application/json",
            r#"{"username":"[[[[","email":"a@b.cd","age":1}"#,
        ),
    )
    .await;
    assert_eq!(
        errors(&r.assert_problem(422, "validation-failed")),
        pairs(&[("/username", "pattern")])
    );
}

#[actix_rt::test]
async fn query_and_path_extractors_validate_too() {
    let app = app!();
    let r = send(
        &app,
        test::TestRequest::get().uri("/search?q=%20rust%20&limit=10"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"q": "rust", "limit": 10}));

    let r = send(&app, test::TestRequest::get().uri("/search?q=&limit=1000")).await;
    let body = r.assert_problem(422, "validation-failed");
    assert_eq!(
        errors(&body),
        pairs(&[("/q", "length"), ("/limit", "range")])
    );

    let r = send(&app, test::TestRequest::get().uri("/search?q=x&limit=ten")).await;
    assert_eq!(
        errors(&r.assert_problem(422, "validation-failed")),
        pairs(&[("/limit", "invalid")])
    );
    r.assert_leaks_none(&["ten", "invalid digit"]);

    let r = send(&app, test::TestRequest::get().uri("/search?q=x&debug=1")).await;
    assert_eq!(
        errors(&r.assert_problem(422, "validation-failed")),
        pairs(&[("", "unknown_field")])
    );

    let r = send(&app, test::TestRequest::get().uri("/search")).await;
    assert_eq!(
        errors(&r.assert_problem(422, "validation-failed")),
        pairs(&[("/q", "required")])
    );

    let id = "67e55044-10b1-426f-9247-bb680e5fe0c8";
    let r = send(&app, test::TestRequest::get().uri(&format!("/users/{id}"))).await;
    assert_eq!(r.json(), json!({ "id": id }));
    let r = send(&app, test::TestRequest::get().uri("/users/1234")).await;
    assert_eq!(
        errors(&r.assert_problem(422, "validation-failed")),
        pairs(&[("/id", "uuid")])
    );
    r.assert_leaks_none(&["1234"]);
}

#[actix_rt::test]
async fn framework_errors_are_problems() {
    let app = app!();
    let r = send(&app, test::TestRequest::get().uri("/nope")).await;
    r.assert_problem(404, "not-found");

    let r = send(&app, test::TestRequest::get().uri("/users")).await;
    r.assert_problem(405, "method-not-allowed");
    assert_eq!(r.header("allow"), Some("POST"));

    let r = send(&app, test::TestRequest::get().uri("/raw")).await;
    r.assert_problem(409, "conflict");
    r.assert_leaks_none(&["row 42", "txn"]);
}

#[actix_rt::test]
async fn internal_errors_and_panics_are_generic_500s() {
    let app = app!();
    let r = send(&app, test::TestRequest::get().uri("/failing")).await;
    r.assert_problem(500, "internal-error");
    r.assert_leaks_none(&["10.0.0.7", "refused", "connection"]);

    let r = send(&app, test::TestRequest::get().uri("/boom")).await;
    r.assert_problem(500, "internal-error");
    r.assert_leaks_none(&["hunter2", "password", "panicked"]);

    // The app keeps serving after a panic.
    let r = send(
        &app,
        post_json(
            "/users",
            &json!({"username": "alice", "email": "a@example.com", "age": 1}),
        ),
    )
    .await;
    assert_eq!(r.status, 201);
}

#[actix_rt::test]
async fn security_headers_override_weaker_handler_values() {
    let app = app!();
    let r: Reply = send(&app, test::TestRequest::get().uri("/weak")).await;
    assert_eq!(r.status, 200);
    r.assert_security_headers();
}

#[actix_rt::test]
async fn security_headers_are_configurable() {
    let headers = SecurityHeaders::default()
        .remove(header::STRICT_TRANSPORT_SECURITY)
        .set(
            header::HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static("geolocation=()"),
        );
    let app = test::init_service(
        App::new()
            .wrap(SecureLayer::with_headers(headers))
            .route("/", web::get().to(weak_headers)),
    )
    .await;
    let r = send(&app, test::TestRequest::get().uri("/")).await;
    assert!(r.header("strict-transport-security").is_none());
    assert_eq!(r.header("permissions-policy"), Some("geolocation=()"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert!(r.header("server").is_none());
}

/// Through a real server and socket: the dispatcher renders the layer's panic and error
/// responses (which travel as errors), and the worker keeps serving.
#[actix_rt::test]
async fn over_a_real_socket_panics_and_errors_are_problems_with_headers() {
    let (addr, handle) = common::serve!("127.0.0.1", 1, || {
        App::new()
            .wrap(SecureLayer::default())
            .service(web::resource("/boom").route(web::get().to(boom)))
            .service(web::resource("/users").route(web::post().to(create_user)))
    });
    let replies = actix_web::rt::task::spawn_blocking(move || {
        let boom = common::raw_request(addr, "GET", "/boom", &[], b"").unwrap();
        let missing = common::raw_request(addr, "GET", "/nope", &[], b"").unwrap();
        let ok = common::raw_request(
            addr,
            "POST",
            "/users",
            &[("Content-Type", "application/json")],
            br#"{"username": "alice", "email": "a@example.com", "age": 1}"#,
        )
        .unwrap();
        (boom, missing, ok)
    })
    .await
    .unwrap();
    let (boom, missing, ok) = replies;
    for (reply, status) in [(&boom, 500), (&missing, 404)] {
        assert_eq!(reply.status, status);
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json")
        );
        for (name, value) in common::SECURITY_HEADERS {
            assert_eq!(reply.header(name), Some(*value), "{name} on {status}");
        }
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["status"], status);
    }
    assert!(!String::from_utf8_lossy(&boom.body).contains("hunter2"));
    assert_eq!(ok.status, 201);
    handle.stop(true).await;
}
