//! The OpenAPI 3.1 document generated from the annotations (feature `openapi`).
//!
//! - The example's document, fetched from its `GET /openapi.json`, is valid OpenAPI 3.1:
//!   checked against the official schema (`tests/data/oas-3.1`, every Schema Object against
//!   the OAS dialect) with the `jsonschema` crate, draft 2020-12.
//! - Every field and rule of the example's inputs has its exact keyword and value, and every
//!   example operation its parameters, security, `Idempotency-Key`, problem responses and
//!   rate-limit headers.
//! - The generated patterns, compiled as JSON Schema regexes, accept and refuse the same
//!   values as the rules do (anchoring, Unicode classes, case folding).
//! - The other rules, serde's attributes, nested inputs, and the operations of
//!   configurations the example does not have, on inputs and endpoints of this file's own
//!   (module `cases`).

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/users_api.rs"]
mod users_api;

use std::sync::OnceLock;

use actix_web::{App, http::header, test as actix_test};
use secure_api_runtime::auth::password::Passwords;
use secure_api_runtime::openapi::utoipa::openapi::{Info, OpenApi as Document, Paths};
use secure_api_runtime::openapi::utoipa::{PartialSchema, ToSchema};
use secure_api_runtime::prelude::*;
use serde_json::{Value, json};

/// Inputs and endpoints that the example does not have.
#[allow(dead_code)]
mod cases {
    use std::collections::{BTreeSet, HashMap};

    use actix_web::web;
    use secure_api_runtime::prelude::*;

    /// A postal address.
    #[derive(serde::Deserialize, SecureInput)]
    pub struct Address {
        /// The street and number.
        #[secure(length(min = 1, max = 100))]
        pub street: String,
        #[secure(pattern = "[A-Z]{2}")]
        pub country: String,
    }

    /// A type with no schema of any kind.
    #[derive(serde::Deserialize)]
    pub struct Opaque {
        pub x: u8,
    }

    pub fn check_code(code: &str) -> Result<(), &'static str> {
        if code.starts_with('C') {
            Ok(())
        } else {
            Err("code_prefix")
        }
    }

    /// Every rule and shape.
    #[derive(serde::Deserialize, SecureInput)]
    #[serde(rename_all = "camelCase")]
    pub struct Everything {
        #[secure(one_of("red", "green"))]
        pub colour: String,
        #[secure(one_of(1, 2, 3))]
        pub level: u8,
        #[secure(range(min = -1.5, max = 2.5))]
        pub ratio: f64,
        #[secure(range(min = -10))]
        pub offset: i64,
        #[secure(uuid)]
        pub request_id: String,
        #[secure(ip)]
        pub client_ip: String,
        #[secure(url(public))]
        pub homepage: String,
        #[secure(url)]
        pub callback: Option<String>,
        #[secure(one_of("a", "b"))]
        pub grade: Option<String>,
        #[secure(length(max = 3), each(lowercase, length(min = 1, max = 8)))]
        pub tags: Vec<String>,
        pub home: Address,
        #[secure(nested)]
        pub work: Option<Address>,
        pub others: Vec<Address>,
        #[secure(length(max = 2))]
        pub labels: HashMap<String, String>,
        #[secure(length(min = 1))]
        pub flags: BTreeSet<u16>,
        #[secure(trim, nfkc, custom = check_code)]
        pub code: String,
        #[serde(rename = "n", alias = "number")]
        #[secure(range(min = 1))]
        pub count: u32,
        #[serde(default)]
        pub flag: bool,
        #[serde(skip)]
        pub internal: u64,
        #[secure(pattern = r"\bfoo\b")]
        pub word: String,
        pub fixed: [u8; 4],
        pub letter: char,
        pub opaque: Opaque,
        #[secure(skip)]
        pub unchecked: Box<Address>,
    }

    /// `?q=...&page=...`
    #[derive(serde::Deserialize, SecureInput)]
    pub struct Search {
        /// What to look for.
        #[secure(trim, length(min = 1, max = 50))]
        pub q: String,
        #[secure(range(min = 1, max = 100))]
        pub page: Option<u32>,
    }

    #[derive(serde::Deserialize, SecureInput)]
    pub struct ItemPath {
        #[secure(range(min = 1))]
        pub id: u64,
    }

    #[secure_endpoint(get("/t/search"), auth(permissions("notes:read")), rate = "unlimited")]
    async fn search(_q: ValidQuery<Search>) -> HttpResponse {
        HttpResponse::Ok().finish()
    }

    #[secure_endpoint(
        put(r"/t/items/{id:\d+}/{rest}*"),
        public,
        rate = "unlimited",
        idempotent(required = false, wait = "2s", ttl = "1h"),
        max_body = "1KiB"
    )]
    async fn put_item(_path: ValidPath<ItemPath>, _body: Valid<Everything>) -> HttpResponse {
        HttpResponse::Ok().finish()
    }

    #[secure_endpoint(
        post("/t/open"),
        rate = "3/s",
        burst = 5,
        key = "ip",
        cost = 2,
        on_store_error = "allow"
    )]
    async fn open() -> HttpResponse {
        HttpResponse::Ok().finish()
    }

    #[secure_endpoint(
        get("/t/raw/{name}"),
        auth,
        tier(premium = "9/min"),
        rate = "unlimited"
    )]
    async fn raw(_name: web::Path<String>) -> HttpResponse {
        HttpResponse::Ok().finish()
    }

    /// Another input named `Address`.
    pub mod other {
        use secure_api_runtime::prelude::*;

        #[derive(serde::Deserialize, SecureInput)]
        pub struct Address {
            #[secure(email)]
            pub mailbox: String,
        }

        #[secure_endpoint(post("/t/other"), public, idempotent)]
        async fn other(_body: Valid<Address>) -> HttpResponse {
            HttpResponse::Ok().finish()
        }
    }

    /// Several conditions.
    #[secure_endpoint(
        delete("/t/both"),
        auth(roles("admin"), any(permissions("a:b"), roles("ops"))),
        idempotent
    )]
    async fn both() -> HttpResponse {
        HttpResponse::Ok().finish()
    }
}

// The document and its validation.

/// The example's document, as `GET /openapi.json` serves it.
async fn example_document() -> Value {
    let (secure, state) = users_api::setup(Passwords::with_params(1024, 1, 1).unwrap(), "pw");
    let app = actix_test::init_service(
        App::new()
            .app_data(state.clone())
            .wrap(secure.layer())
            .configure(users_api::routes),
    )
    .await;
    let res = actix_test::call_service(
        &app,
        actix_test::TestRequest::get()
            .uri("/openapi.json")
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers().get(header::CONTENT_TYPE).unwrap(),
        "application/json"
    );
    // Served through the layer like every response.
    assert_eq!(
        res.headers().get("x-content-type-options").unwrap(),
        "nosniff"
    );
    assert!(res.headers().contains_key("ratelimit"));
    serde_json::from_slice(&actix_test::read_body(res).await).unwrap()
}

/// The document of this file's `cases` module.
fn cases_document() -> Value {
    let doc = SecureApi::builder()
        .log_inventory(false)
        .build()
        .inventory()
        .retain(|e| e.module.starts_with("openapi::cases"))
        .openapi();
    serde_json::to_value(&doc).unwrap()
}

fn data(name: &str) -> Value {
    let path = format!("{}/tests/data/oas-3.1/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The official OAS 3.1 schema with the Schema Object dialect (`schema-base`), the other
/// files registered under their `$id`s: no network.
fn oas_validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let registry = Box::leak(Box::new(
            jsonschema::Registry::new()
                .add(
                    "https://spec.openapis.org/oas/3.1/schema/2022-10-07",
                    data("schema.json"),
                )
                .unwrap()
                .add(
                    "https://spec.openapis.org/oas/3.1/dialect/base",
                    data("dialect/base.schema.json"),
                )
                .unwrap()
                .add(
                    "https://spec.openapis.org/oas/3.1/meta/base",
                    data("meta/base.schema.json"),
                )
                .unwrap()
                .prepare()
                .unwrap(),
        ));
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .with_registry(registry)
            .build(&data("schema-base.json"))
            .unwrap()
    })
}

fn oas_errors(doc: &Value) -> Vec<String> {
    oas_validator()
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[actix_rt::test]
async fn the_example_document_is_valid_openapi_3_1() {
    let doc = example_document().await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "users_api");
    assert_eq!(oas_errors(&doc), Vec::<String>::new());
}

#[test]
fn the_cases_document_is_valid_openapi_3_1() {
    assert_eq!(oas_errors(&cases_document()), Vec::<String>::new());
}

/// The validation above can fail: a broken document, and a broken Schema Object (which only
/// the dialect checks), are refused.
#[actix_rt::test]
async fn the_validation_refuses_broken_documents() {
    let doc = example_document().await;
    assert!(oas_errors(&doc).is_empty());
    let mut version = doc.clone();
    version["openapi"] = json!("3.0.3");
    assert!(!oas_errors(&version).is_empty());
    let mut body_parameter = doc.clone();
    body_parameter["paths"]["/api/users"]["post"]["parameters"][0]["in"] = json!("body");
    assert!(!oas_errors(&body_parameter).is_empty());
    let mut bad_schema = doc.clone();
    bad_schema["components"]["schemas"]["LoginRequest"]["properties"]["username"]["minLength"] =
        json!(-1);
    assert!(!oas_errors(&bad_schema).is_empty());
    let mut bad_type = doc;
    bad_type["components"]["schemas"]["LoginRequest"]["type"] = json!("strnig");
    assert!(!oas_errors(&bad_type).is_empty());
}

// The example's schemas, rule by rule.

/// A schema without its `description` (checked on its own).
fn bare(schema: &Value) -> Value {
    let mut schema = schema.clone();
    if let Some(o) = schema.as_object_mut() {
        o.remove("description");
    }
    schema
}

fn description(schema: &Value) -> &str {
    schema["description"].as_str().unwrap_or("")
}

#[actix_rt::test]
async fn the_example_inputs_have_each_rule_as_its_keyword() {
    let doc = example_document().await;
    let schemas = &doc["components"]["schemas"];

    // CreateUserRequest: every rule of every field.
    let create = &schemas["CreateUserRequest"];
    assert_eq!(create["type"], "object");
    assert_eq!(create["additionalProperties"], false);
    assert_eq!(create["required"], json!(["username", "email", "age"]));
    assert_eq!(
        description(create),
        "The request body of `POST /api/users`."
    );
    let username = &create["properties"]["username"];
    assert_eq!(
        bare(username),
        json!({
            "type": "string",
            "minLength": 3,
            "maxLength": 32,
            "pattern": r"^[\-0-9_a-z]+$",
            "not": {"enum": ["admin", "root", "null", "undefined"]},
        })
    );
    let text = description(username);
    assert!(
        text.starts_with("The new user's name: 3 to 32 of `a-z0-9_-`"),
        "{text}"
    );
    assert!(
        text.contains(
            "Normalised before it is checked: surrounding whitespace trimmed, lowercased."
        ),
        "{text}"
    );
    assert!(text.contains("look like one of its entries"), "{text}");
    let email = &create["properties"]["email"];
    assert_eq!(
        bare(email),
        json!({"type": "string", "maxLength": 255, "format": "email"})
    );
    assert!(description(email).contains("at most 254 bytes"));
    assert_eq!(
        bare(&create["properties"]["age"]),
        json!({"type": "integer", "format": "int32", "minimum": 0, "maximum": 150})
    );

    // LoginRequest and RefreshRequest.
    let login = &schemas["LoginRequest"];
    assert_eq!(login["required"], json!(["username", "password"]));
    assert_eq!(login["additionalProperties"], false);
    assert_eq!(
        bare(&login["properties"]["username"]),
        json!({"type": "string", "minLength": 1, "maxLength": 64})
    );
    assert!(description(&login["properties"]["username"]).contains("lowercased"));
    assert_eq!(
        bare(&login["properties"]["password"]),
        json!({"type": "string", "minLength": 1, "maxLength": 1024})
    );
    let refresh = &schemas["RefreshRequest"];
    assert_eq!(refresh["required"], json!(["refresh_token"]));
    assert_eq!(
        bare(&refresh["properties"]["refresh_token"]),
        json!({"type": "string", "minLength": 1, "maxLength": 256})
    );

    // The inputs and the problem schemas, nothing else.
    let mut names: Vec<&String> = schemas.as_object().unwrap().keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "CreateUserRequest",
            "LoginRequest",
            "ProblemDetails",
            "RefreshRequest",
            "Violation"
        ]
    );
    assert_eq!(
        schemas["ProblemDetails"]["required"],
        json!(["type", "title", "status", "detail", "instance"])
    );
}

/// The responses of an operation, by status.
fn statuses(op: &Value) -> Vec<String> {
    op["responses"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

/// The problem type URIs of one response.
fn problem_types(op: &Value, status: &str) -> Vec<String> {
    let schema = &op["responses"][status]["content"]["application/problem+json"]["schema"];
    assert_eq!(
        schema["allOf"][0]["$ref"],
        "#/components/schemas/ProblemDetails"
    );
    assert_eq!(
        schema["allOf"][1]["properties"]["status"]["enum"],
        json!([status.parse::<u16>().unwrap()])
    );
    schema["allOf"][1]["properties"]["type"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            t.as_str()
                .unwrap()
                .strip_prefix("tag:secure-api.dev,2026:problem:")
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn headers(op: &Value, status: &str) -> Vec<String> {
    op["responses"][status]["headers"]
        .as_object()
        .map(|h| h.keys().cloned().collect())
        .unwrap_or_default()
}

fn param_names(op: &Value) -> Vec<(String, String, bool)> {
    op["parameters"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    (
                        p["in"].as_str().unwrap().to_owned(),
                        p["name"].as_str().unwrap().to_owned(),
                        p["required"].as_bool().unwrap_or(false),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

const RATE_HEADERS: [&str; 2] = ["RateLimit", "RateLimit-Policy"];

#[actix_rt::test]
async fn the_example_operations_have_their_policies() {
    let doc = example_document().await;
    let paths = &doc["paths"];
    let mut routes: Vec<String> = Vec::new();
    for (path, item) in paths.as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.push(format!("{method} {path}"));
        }
    }
    routes.sort();
    assert_eq!(
        routes,
        [
            "delete /api/users/{id}",
            "get /api/me",
            "get /api/users/{id}",
            "get /openapi.json",
            "post /api/login",
            "post /api/logout",
            "post /api/token/refresh",
            "post /api/users",
        ]
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearerAuth"],
        json!({
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": description(&doc["components"]["securitySchemes"]["bearerAuth"]),
        })
    );

    // POST /api/users: unannotated, tiers, idempotent (key required), 16 KiB.
    let create = &paths["/api/users"]["post"];
    assert_eq!(create["operationId"], "create_user");
    assert_eq!(create["security"], json!([{}, {"bearerAuth": []}]));
    assert_eq!(
        param_names(create),
        [("header".to_owned(), "Idempotency-Key".to_owned(), true)]
    );
    assert_eq!(
        create["parameters"][0]["schema"],
        json!({"type": "string", "minLength": 1})
    );
    assert_eq!(create["requestBody"]["required"], true);
    assert_eq!(
        create["requestBody"]["content"]["application/json"]["schema"],
        json!({"$ref": "#/components/schemas/CreateUserRequest"})
    );
    assert!(
        description(&create["requestBody"]).contains("at most 16 KiB"),
        "{}",
        description(&create["requestBody"])
    );
    assert_eq!(
        statuses(create),
        [
            "2XX", "400", "401", "409", "413", "415", "422", "429", "500", "503"
        ]
    );
    assert_eq!(
        problem_types(create, "400"),
        [
            "malformed-request",
            "nesting-too-deep",
            "idempotency-key-missing",
            "idempotency-key-invalid"
        ]
    );
    assert_eq!(problem_types(create, "401"), ["invalid-credentials"]);
    assert_eq!(
        problem_types(create, "409"),
        ["idempotency-request-in-progress"]
    );
    assert_eq!(
        problem_types(create, "422"),
        [
            "validation-failed",
            "idempotency-key-reused",
            "idempotency-response-not-replayable"
        ]
    );
    assert_eq!(problem_types(create, "429"), ["rate-limited"]);
    assert_eq!(problem_types(create, "503"), ["service-unavailable"]);
    assert_eq!(
        headers(create, "2XX"),
        ["Idempotent-Replayed", "RateLimit", "RateLimit-Policy"]
    );
    assert_eq!(
        headers(create, "429"),
        ["RateLimit", "RateLimit-Policy", "Retry-After"]
    );
    assert_eq!(headers(create, "409"), ["Retry-After"]);
    assert_eq!(headers(create, "503"), ["Retry-After"]);
    assert_eq!(headers(create, "401"), ["WWW-Authenticate"]);
    assert_eq!(
        create["responses"]["429"]["headers"]["Retry-After"]["schema"],
        json!({"type": "integer", "minimum": 1})
    );
    assert_eq!(create["x-secure-api-auth"], json!({"kind": "unannotated"}));
    assert_eq!(
        create["x-secure-api-rate-limit"],
        json!({
            "rate": {"value": "100/s", "origin": "endpoint"},
            "algorithm": "gcra",
            "burst": 100,
            "tiers": [
                {"name": "anonymous", "rate": "10/s"},
                {"name": "user", "rate": "100/s"},
                {"name": "premium", "rate": "1000/s"},
            ],
            "key": "auto",
            "cost": 1,
            "on_store_error": {"value": "fail_closed", "origin": "app_default"},
        })
    );
    assert_eq!(
        create["x-secure-api-idempotency"],
        json!({"ttl_ms": 86_400_000, "required": true, "wait_ms": 0})
    );
    assert_eq!(
        create["x-secure-api-body-limit"],
        json!({"value": 16384, "origin": "endpoint"})
    );
    let text = description(create);
    assert!(text.contains("tiers (by the principal's tier, `anonymous` without one): anonymous 10/s, user 100/s, premium 1000/s"), "{text}");

    // POST /api/login: public, sliding window by IP, not idempotent.
    let login = &paths["/api/login"]["post"];
    assert_eq!(login["security"], json!([]));
    assert!(login.get("parameters").is_none());
    assert_eq!(
        statuses(login),
        ["2XX", "400", "413", "415", "422", "429", "500", "503"]
    );
    assert_eq!(
        problem_types(login, "400"),
        ["malformed-request", "nesting-too-deep"]
    );
    assert_eq!(headers(login, "2XX"), RATE_HEADERS);
    assert_eq!(login["x-secure-api-auth"], json!({"kind": "public"}));
    assert_eq!(
        login["x-secure-api-rate-limit"]["rate"],
        json!({"value": "5/min", "origin": "endpoint"})
    );
    assert_eq!(
        login["x-secure-api-rate-limit"]["algorithm"],
        "sliding_window"
    );
    assert_eq!(login["x-secure-api-rate-limit"]["key"], "ip");
    assert!(login.get("x-secure-api-idempotency").is_none());
    assert!(
        description(login)
            .contains("Rate limit: 5/min (a sliding window), per the client's address")
    );

    // POST /api/token/refresh: public, 30/min by IP.
    let refresh = &paths["/api/token/refresh"]["post"];
    assert_eq!(refresh["security"], json!([]));
    assert_eq!(statuses(refresh), statuses(login));
    assert_eq!(refresh["x-secure-api-rate-limit"]["burst"], 30);

    // POST /api/logout and GET /api/me: `auth`, no inputs: no 400, 403, 415 or 422.
    for (path, method) in [("/api/logout", "post"), ("/api/me", "get")] {
        let op = &paths[path][method];
        assert_eq!(op["security"], json!([{"bearerAuth": []}]), "{path}");
        assert!(op.get("requestBody").is_none());
        assert_eq!(
            statuses(op),
            ["2XX", "401", "413", "429", "500", "503"],
            "{path}"
        );
        assert_eq!(headers(op, "401"), ["WWW-Authenticate"]);
        assert_eq!(
            op["x-secure-api-auth"],
            json!({"kind": "required", "rule": "authenticated"})
        );
        assert_eq!(
            op["x-secure-api-rate-limit"]["rate"],
            json!({"value": "100/s", "origin": "app_default"})
        );
    }

    // /api/users/{id}: the path parameter from `ValidPath<UserId>`.
    let id = json!({
        "type": "string",
        "description": "The username.",
        "minLength": 1,
        "maxLength": 64,
        "pattern": r"^[\-0-9_a-z]+$",
    });
    let get = &paths["/api/users/{id}"]["get"];
    let delete = &paths["/api/users/{id}"]["delete"];
    for op in [get, delete] {
        assert_eq!(
            op["parameters"],
            json!([{"name": "id", "in": "path", "required": true, "schema": id}])
        );
        assert_eq!(problem_types(op, "404"), ["not-found"]);
        assert_eq!(problem_types(op, "422"), ["validation-failed"]);
    }
    assert_eq!(
        statuses(get),
        ["2XX", "401", "404", "413", "422", "429", "500", "503"]
    );
    // The admin rule: a 403, in the description and the extension.
    assert_eq!(
        statuses(delete),
        [
            "2XX", "401", "403", "404", "413", "422", "429", "500", "503"
        ]
    );
    assert_eq!(problem_types(delete, "403"), ["forbidden"]);
    assert_eq!(headers(delete, "403"), ["WWW-Authenticate"]);
    assert_eq!(
        delete["x-secure-api-auth"],
        json!({"kind": "required", "rule": {"roles": ["admin"]}})
    );
    assert!(
        description(delete)
            .contains(r#"whose principal meets `auth(roles("admin"))` (403 otherwise)"#),
        "{}",
        description(delete)
    );

    // GET /openapi.json itself: public, the app's default rate.
    let openapi = &paths["/openapi.json"]["get"];
    assert_eq!(openapi["security"], json!([]));
    assert_eq!(statuses(openapi), ["2XX", "413", "429", "500", "503"]);
}

// Patterns: the JSON Schema regex against the rule.

/// One field per pattern; each is checked alone (the others are `None`).
#[derive(serde::Deserialize, SecureInput)]
struct Patterns {
    #[secure(pattern = "[a-z0-9_-]+")]
    p0: Option<String>,
    #[secure(pattern = r"\d{3}")]
    p1: Option<String>,
    #[secure(pattern = "(?i)abc")]
    p2: Option<String>,
    #[secure(pattern = "a|bc")]
    p3: Option<String>,
    #[secure(pattern = ".+")]
    p4: Option<String>,
    #[secure(pattern = "[[:alpha:]]+")]
    p5: Option<String>,
    #[secure(pattern = r"\w+")]
    p6: Option<String>,
    #[secure(pattern = r"(?-u:\b)ab(?-u:\b)")]
    p7: Option<String>,
    #[secure(pattern = "^abc")]
    p8: Option<String>,
    #[secure(pattern = "foo$")]
    p9: Option<String>,
    #[secure(pattern = "(?m)^a$")]
    p10: Option<String>,
    #[secure(pattern = "é+|😀")]
    p11: Option<String>,
    #[secure(pattern = r"\p{Greek}+")]
    p12: Option<String>,
    #[secure(pattern = "x{2,3}")]
    p13: Option<String>,
    #[secure(pattern = "a+?b")]
    p14: Option<String>,
    #[secure(pattern = "[^a-z]+")]
    p15: Option<String>,
    #[secure(pattern = r"\s+")]
    p16: Option<String>,
    #[secure(pattern = "(a|b)*c")]
    p17: Option<String>,
    #[secure(pattern = r"[\]\-\\^.]+|\.\*\+\?\(\)\{\}\|/")]
    p18: Option<String>,
    #[secure(pattern = r"(?s).")]
    p19: Option<String>,
    #[secure(pattern = r"(?i)straße")]
    p20: Option<String>,
}

const PATTERN_FIELDS: usize = 21;

const SAMPLES: &[&str] = &[
    "",
    "a",
    "b",
    "c",
    "ab",
    "bc",
    "abc",
    "ABC",
    "aBc",
    "abcd",
    "xabc",
    "abcx",
    "123",
    "12",
    "1234",
    "١٢٣",
    "a\nb",
    "\n",
    "a\n",
    "\na",
    "\r",
    "héllo",
    "hello world",
    "αβγ",
    "Ωmega",
    "é",
    "ééé",
    "e\u{301}",
    "😀",
    "😀😀",
    "xx",
    "xxx",
    "xxxx",
    "x",
    "aab",
    "b",
    "ab!",
    "-",
    "a-b_c",
    "A-B",
    "foo",
    "xfoo",
    "foox",
    "  ",
    "\u{2003}",
    "\t",
    "abac",
    "ababc",
    "cc",
    ".",
    "]-\\^",
    ".*+?(){}|/",
    "STRASSE",
    "straße",
    "STRAẞE",
    "\u{10FFFF}",
    "a\u{0}",
];

#[test]
fn generated_patterns_accept_and_refuse_what_the_rules_do() {
    let schema = serde_json::to_value(<Patterns as PartialSchema>::schema()).unwrap();
    for i in 0..PATTERN_FIELDS {
        let name = format!("p{i}");
        let property = &schema["properties"][&name];
        let pattern = property["pattern"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has no pattern: {property}"));
        assert!(
            pattern.starts_with('^') && pattern.ends_with('$'),
            "{name}: {pattern}"
        );
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&json!({"type": "string", "pattern": pattern}))
            .unwrap_or_else(|e| panic!("{name}: {pattern} does not compile: {e}"));
        for sample in SAMPLES {
            let mut one = serde_json::Map::new();
            one.insert(name.clone(), json!(sample));
            let mut input: Patterns = serde_json::from_value(Value::Object(one)).unwrap();
            let rule = input.secure().is_ok();
            let json_schema = validator.is_valid(&json!(sample));
            assert_eq!(
                json_schema, rule,
                "{name} ({pattern}) on {sample:?}: JSON Schema {json_schema}, rule {rule}"
            );
        }
    }
}

#[test]
fn a_pattern_without_an_ecma_form_is_described_instead() {
    let schema = serde_json::to_value(<cases::Everything as PartialSchema>::schema()).unwrap();
    let word = &schema["properties"]["word"];
    assert!(word.get("pattern").is_none(), "{word}");
    assert_eq!(
        description(word),
        r"Must match the regular expression `\bfoo\b` as a whole (Rust `regex` syntax; it has no exact ECMA-262 form, so `pattern` is not given)."
    );
}

// Every rule and shape, on this file's own inputs.

#[test]
fn every_rule_and_shape_has_its_keyword() {
    let schema = serde_json::to_value(<cases::Everything as PartialSchema>::schema()).unwrap();
    assert_eq!(description(&schema), "Every rule and shape.");
    assert_eq!(schema["additionalProperties"], false);
    // camelCase names; `Option`s, `#[serde(default)]` and aliases are not required;
    // `#[serde(skip)]` fields are not in the input.
    assert_eq!(
        schema["required"],
        json!([
            "colour",
            "level",
            "ratio",
            "offset",
            "requestId",
            "clientIp",
            "homepage",
            "tags",
            "home",
            "others",
            "labels",
            "flags",
            "code",
            "n",
            "word",
            "fixed",
            "letter",
            "opaque",
            "unchecked"
        ])
    );
    let p = &schema["properties"];
    assert!(p.get("internal").is_none());
    let expect = [
        (
            "colour",
            json!({"type": "string", "enum": ["red", "green"]}),
        ),
        (
            "level",
            json!({"type": "integer", "format": "uint8", "minimum": 0, "enum": [1, 2, 3]}),
        ),
        (
            "ratio",
            json!({"type": "number", "format": "double", "minimum": -1.5, "maximum": 2.5}),
        ),
        (
            "offset",
            json!({"type": "integer", "format": "int64", "minimum": -10}),
        ),
        ("requestId", json!({"type": "string", "format": "uuid"})),
        (
            "clientIp",
            json!({"allOf": [
                {"type": "string"},
                {"anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]},
            ]}),
        ),
        ("homepage", json!({"type": "string", "format": "uri"})),
        (
            "callback",
            json!({"type": ["string", "null"], "format": "uri"}),
        ),
        // `null` must be in the `enum` of an `Option`.
        (
            "grade",
            json!({"type": ["string", "null"], "enum": ["a", "b", null]}),
        ),
        (
            "tags",
            json!({"type": "array", "maxItems": 3,
                   "items": {"type": "string", "minLength": 1, "maxLength": 8,
                             "description": "Normalised before it is checked: lowercased. The constraints apply to the normalised value."}}),
        ),
        ("home", json!({"$ref": "#/components/schemas/Address"})),
        (
            "work",
            json!({"anyOf": [{"$ref": "#/components/schemas/Address"}, {"type": "null"}]}),
        ),
        (
            "others",
            json!({"type": "array", "items": {"$ref": "#/components/schemas/Address"}}),
        ),
        (
            "labels",
            json!({"type": "object", "maxProperties": 2, "additionalProperties": {"type": "string"}}),
        ),
        (
            "flags",
            json!({"type": "array", "minItems": 1,
                   "items": {"type": "integer", "format": "uint16", "minimum": 0}}),
        ),
        ("code", json!({"type": "string"})),
        (
            "n",
            json!({"type": "integer", "format": "uint32", "minimum": 1}),
        ),
        (
            "number",
            json!({"type": "integer", "format": "uint32", "minimum": 1}),
        ),
        ("flag", json!({"type": "boolean"})),
        ("word", json!({"type": "string"})),
        (
            "fixed",
            json!({"type": "array", "minItems": 4, "maxItems": 4,
                   "items": {"type": "integer", "format": "uint8", "minimum": 0}}),
        ),
        (
            "letter",
            json!({"type": "string", "minLength": 1, "maxLength": 1}),
        ),
        ("opaque", json!({})),
        ("unchecked", json!({})),
    ];
    for (name, want) in &expect {
        assert_eq!(&bare(&p[*name]), want, "{name}: {}", p[*name]);
    }
    assert_eq!(
        p.as_object().unwrap().len(),
        expect.len(),
        "{}",
        serde_json::to_string_pretty(p).unwrap()
    );

    // What JSON Schema cannot say.
    let homepage = description(&p["homepage"]);
    assert!(
        homepage.contains("whose host is a public internet host"),
        "{homepage}"
    );
    assert!(!description(&p["callback"]).contains("public internet host"));
    assert_eq!(
        description(&p["code"]),
        "Normalised before it is checked: surrounding whitespace trimmed, Unicode NFKC \
         (compatibility forms folded). The constraints apply to the normalised value.\n\n\
         Also checked by the custom rule `check_code`."
    );
    assert_eq!(description(&p["number"]), "Alias of `n`.");
    assert!(description(&p["opaque"]).contains("not described"));
    assert!(description(&p["unchecked"]).starts_with("Accepted without validation (`skip`)"));
}

#[test]
fn inputs_are_utoipa_schemas_with_their_nested_inputs() {
    assert_eq!(<cases::Everything as ToSchema>::name(), "Everything");
    let mut deps = Vec::new();
    <cases::Everything as ToSchema>::schemas(&mut deps);
    let names: Vec<&str> = deps.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["Address"]);
    let address = serde_json::to_value(&deps[0].1).unwrap();
    assert_eq!(
        address,
        serde_json::to_value(<cases::Address as PartialSchema>::schema()).unwrap()
    );
    assert_eq!(
        bare(&address["properties"]["country"]),
        json!({"type": "string", "pattern": "^[A-Z]{2}$"})
    );
    assert_eq!(address["required"], json!(["street", "country"]));
    // Nothing refers to `Address` but `Everything`: an input without nested inputs has none.
    let mut none = Vec::new();
    <cases::Address as ToSchema>::schemas(&mut none);
    assert!(none.is_empty());
}

/// A recursive input: its schema refers to itself, and collecting ends.
#[derive(serde::Deserialize, SecureInput)]
struct Tree {
    #[secure(length(max = 10))]
    label: String,
    #[secure(length(max = 4))]
    children: Vec<Tree>,
}

#[test]
fn recursive_inputs_refer_to_themselves() {
    let schema = serde_json::to_value(<Tree as PartialSchema>::schema()).unwrap();
    assert_eq!(
        schema["properties"]["children"],
        json!({"type": "array", "maxItems": 4, "items": {"$ref": "#/components/schemas/Tree"}})
    );
    let mut deps = Vec::new();
    <Tree as ToSchema>::schemas(&mut deps);
    assert!(deps.is_empty());
}

// Operations the example does not have.

#[test]
fn query_parameters_permissions_and_unlimited_endpoints() {
    let doc = cases_document();
    let search = &doc["paths"]["/t/search"]["get"];
    assert_eq!(
        search["parameters"],
        json!([
            {"name": "q", "in": "query", "required": true, "schema": {
                "type": "string", "minLength": 1, "maxLength": 50,
                "description": "What to look for.\n\nNormalised before it is checked: surrounding whitespace trimmed. The constraints apply to the normalised value."}},
            {"name": "page", "in": "query", "required": false, "schema": {
                "type": ["integer", "null"], "format": "uint32", "minimum": 1, "maximum": 100}},
        ])
    );
    assert!(search.get("requestBody").is_none());
    // Unlimited: no 429, no rate headers; auth: 401, 403 and the revocation store's 503.
    assert_eq!(
        statuses(search),
        ["2XX", "401", "403", "413", "422", "500", "503"]
    );
    assert!(headers(search, "2XX").is_empty());
    assert_eq!(
        search["x-secure-api-auth"],
        json!({"kind": "required", "rule": {"permissions": ["notes:read"]}})
    );
    assert!(description(search).contains("Rate limit: none"));
}

#[test]
fn optional_idempotency_keys_public_endpoints_and_actix_patterns() {
    let doc = cases_document();
    let put = &doc["paths"]["/t/items/{id}/{rest}"]["put"];
    assert_eq!(
        param_names(put),
        [
            ("path".to_owned(), "id".to_owned(), true),
            ("path".to_owned(), "rest".to_owned(), true),
            ("header".to_owned(), "Idempotency-Key".to_owned(), false),
        ]
    );
    assert_eq!(
        put["parameters"][0]["schema"],
        json!({"type": "integer", "format": "uint64", "minimum": 1})
    );
    // A template name that `ValidPath<T>` does not describe is a string.
    assert_eq!(put["parameters"][1]["schema"], json!({"type": "string"}));
    assert_eq!(
        put["requestBody"]["content"]["application/json"]["schema"],
        json!({"$ref": "#/components/schemas/Everything"})
    );
    assert!(description(&put["requestBody"]).contains("at most 1 KiB"));
    // Public, unlimited, idempotent without a required key: no 401, no 429, no
    // `idempotency-key-missing`; the idempotency store's 503.
    assert_eq!(put["security"], json!([]));
    assert_eq!(
        statuses(put),
        [
            "2XX", "400", "404", "409", "413", "415", "422", "500", "503"
        ]
    );
    assert_eq!(
        problem_types(put, "400"),
        [
            "malformed-request",
            "nesting-too-deep",
            "idempotency-key-invalid"
        ]
    );
    assert_eq!(headers(put, "2XX"), ["Idempotent-Replayed"]);
    assert_eq!(
        put["x-secure-api-idempotency"],
        json!({"ttl_ms": 3_600_000, "required": false, "wait_ms": 2000})
    );
    let key = description(&put["parameters"][2]);
    assert!(
        key.contains("Optional: a request without one runs without idempotency."),
        "{key}"
    );
    assert!(key.contains("within 1h"), "{key}");
    assert!(key.contains("when it is still running after 2s"), "{key}");
    // Both inputs' schemas are components.
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["Everything"].is_object() && schemas["Address"].is_object());
}

#[test]
fn two_inputs_with_one_name_each_keep_their_own_schema() {
    let doc = cases_document();
    let schemas = &doc["components"]["schemas"];
    // `/t/other` is described first (the bodies of operations before the inputs they
    // refer to), so its `Address` has the name, and the other is under its path.
    assert_eq!(
        doc["paths"]["/t/other"]["post"]["requestBody"]["content"]["application/json"]["schema"],
        json!({"$ref": "#/components/schemas/Address"})
    );
    assert_eq!(schemas["Address"]["required"], json!(["mailbox"]));
    let everything = &schemas["Everything"]["properties"];
    assert_eq!(
        everything["home"],
        json!({"$ref": "#/components/schemas/openapi.cases.Address"})
    );
    assert_eq!(
        schemas["openapi.cases.Address"]["required"],
        json!(["street", "country"])
    );
}

#[test]
fn rate_options_tiers_and_several_conditions() {
    let doc = cases_document();
    let open = &doc["paths"]["/t/open"]["post"];
    assert_eq!(open["security"], json!([{}, {"bearerAuth": []}]));
    assert_eq!(statuses(open), ["2XX", "401", "413", "429", "500", "503"]);
    assert_eq!(
        open["x-secure-api-rate-limit"],
        json!({
            "rate": {"value": "3/s", "origin": "endpoint"},
            "algorithm": "gcra",
            "burst": 5,
            "tiers": [],
            "key": "ip",
            "cost": 2,
            "on_store_error": {"value": "allow", "origin": "endpoint"},
        })
    );
    let text = description(open);
    assert!(
        text.contains(
            "Rate limit: 3/s (GCRA, burst 5), per the client's address, 2 units per request."
        ),
        "{text}"
    );
    assert!(
        text.contains("the request is let through unlimited"),
        "{text}"
    );

    // Unlimited with a tier: limited (429) for that tier.
    let raw = &doc["paths"]["/t/raw/{name}"]["get"];
    assert_eq!(
        param_names(raw),
        [("path".to_owned(), "name".to_owned(), true)]
    );
    assert_eq!(statuses(raw), ["2XX", "401", "413", "429", "500", "503"]);
    assert_eq!(headers(raw, "2XX"), RATE_HEADERS);

    let both = &doc["paths"]["/t/both"]["delete"];
    assert_eq!(
        both["x-secure-api-auth"],
        json!({"kind": "required", "rule": {"all": [
            {"roles": ["admin"]},
            {"any": [{"permissions": ["a:b"]}, {"roles": ["ops"]}]},
        ]}})
    );
    assert!(
        description(both)
            .contains(r#"`auth(roles("admin"), any(permissions("a:b"), roles("ops")))`"#)
    );
    assert_eq!(problem_types(both, "403"), ["forbidden"]);
}

// Merging with a document of the user's.

#[test]
fn the_document_merges_into_a_users_document() {
    let api = SecureApi::builder().log_inventory(false).build();
    let mut mine = Document::new(Info::new("Mine", "9.9.9"), Paths::new());
    mine.merge(
        api.inventory()
            .retain(|e| e.module.starts_with("openapi::cases"))
            .openapi(),
    );
    let json = serde_json::to_value(&mine).unwrap();
    assert_eq!(json["info"]["title"], "Mine");
    assert!(json["paths"]["/t/search"]["get"].is_object());
    assert!(json["components"]["schemas"]["Everything"].is_object());
    assert!(json["components"]["securitySchemes"]["bearerAuth"].is_object());
    assert_eq!(oas_errors(&json), Vec::<String>::new());
}
