//! The endpoint inventory: every example endpoint with its exact policy, the JSON shape, the
//! table, and the review helpers on a small app of this file's own (module `review`).
//! Strict mode, which judges every endpoint of the test binary, is in `inventory_strict.rs`.

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/users_api.rs"]
mod users_api;

use secure_api_runtime::auth::password::Passwords;
use secure_api_runtime::inventory::{EndpointInfo, Inventory, Issue};
use secure_api_runtime::prelude::*;
use serde_json::{Value, json};

/// A small app: one endpoint per case of the review.
mod review {
    use secure_api_runtime::prelude::*;

    #[derive(serde::Deserialize, SecureInput)]
    pub struct Note {
        #[secure(length(max = 10))]
        pub text: String,
    }

    #[derive(serde::Deserialize, SecureInput)]
    pub struct Id {
        #[secure(length(max = 10))]
        pub id: String,
    }

    #[derive(serde::Deserialize, SecureInput)]
    pub struct Page {
        #[secure(range(min = 1, max = 100))]
        pub n: u32,
    }

    /// Neither `auth` nor `public`, and a POST without `idempotent`.
    #[secure_endpoint(post("/t/open"))]
    async fn open_post(_note: Valid<Note>) -> HttpResponse {
        HttpResponse::Ok().finish()
    }

    /// Neither `auth` nor `public`; GET is safe.
    #[secure_endpoint(get("/t/anon"))]
    async fn anon_get(_page: ValidQuery<Page>) -> HttpResponse {
        HttpResponse::Ok().finish()
    }

    /// Passes the review.
    #[secure_endpoint(get("/t/read"), public, rate = "unlimited")]
    async fn read() -> HttpResponse {
        HttpResponse::Ok().finish()
    }

    /// Passes the review.
    #[secure_endpoint(
        put("/t/put/{id}"),
        auth(roles("a"), permissions("p:w")),
        idempotent(ttl = "1h", required = false)
    )]
    async fn put_it(_id: ValidPath<Id>, _note: Valid<Note>) -> HttpResponse {
        HttpResponse::Ok().finish()
    }

    /// `auth`, but a PATCH without `idempotent`.
    #[secure_endpoint(patch("/t/put/{id}"), auth, rate = "10/s", burst = 3)]
    async fn patch_it() -> HttpResponse {
        HttpResponse::Ok().finish()
    }

    /// A DELETE without `idempotent`, with every rate option.
    #[secure_endpoint(
        delete("/t/del"),
        auth(any(roles("admin"), permissions("x"))),
        rate = "5/min",
        algorithm = "sliding_window",
        tier(premium = "50/min"),
        key = "principal",
        cost = 2,
        on_store_error = "allow",
        max_body = "1KiB"
    )]
    async fn del() -> HttpResponse {
        HttpResponse::Ok().finish()
    }

    /// No route: its method is unknown.
    #[secure_endpoint(public)]
    pub async fn routeless() -> HttpResponse {
        HttpResponse::Ok().finish()
    }
}

fn review_app() -> Inventory {
    SecureApi::builder()
        .default_rate("50/s".parse().unwrap())
        .log_inventory(false)
        .build()
        .inventory()
        .retain(|e| e.module == "inventory::review")
}

fn example() -> Inventory {
    let (secure, _state) = users_api::setup(Passwords::new(), "a demo password");
    secure
        .inventory()
        .retain(|e| e.module == "inventory::users_api")
}

fn routes(list: &[&EndpointInfo]) -> Vec<String> {
    list.iter()
        .map(|e| {
            format!(
                "{} {}",
                e.method.unwrap_or("*"),
                e.path.unwrap_or(e.handler)
            )
        })
        .collect()
}

#[test]
fn every_example_endpoint_is_listed_with_its_exact_policy() {
    let default_rate = json!({"value": "100/s", "origin": "app_default"});
    let default_body = json!({"value": 65536, "origin": "app_default"});
    let fail_closed = json!({"value": "fail_closed", "origin": "app_default"});
    let user_id = json!([{"source": "path", "type_name": "inventory::users_api::UserId"}]);
    let authenticated = json!({"kind": "required", "rule": "authenticated"});
    let entry = |method: &str, path: &str, handler: &str| {
        json!({
            "method": method, "path": path, "handler": handler, "module": "inventory::users_api",
            "auth": authenticated, "rate": default_rate, "algorithm": "gcra", "burst": 100,
            "tiers": [], "key": "auto", "cost": 1, "idempotency": null,
            "body_limit": default_body, "on_store_error": fail_closed, "inputs": [],
        })
    };
    let mut login = entry("POST", "/api/login", "login");
    login["auth"] = json!({"kind": "public"});
    login["rate"] = json!({"value": "5/min", "origin": "endpoint"});
    login["algorithm"] = json!("sliding_window");
    login["burst"] = Value::Null;
    login["key"] = json!("ip");
    login["inputs"] =
        json!([{"source": "body", "type_name": "inventory::users_api::LoginRequest"}]);
    let logout = entry("POST", "/api/logout", "logout");
    let me = entry("GET", "/api/me", "me");
    let mut refresh = entry("POST", "/api/token/refresh", "refresh");
    refresh["auth"] = json!({"kind": "public"});
    refresh["rate"] = json!({"value": "30/min", "origin": "endpoint"});
    refresh["burst"] = json!(30);
    refresh["key"] = json!("ip");
    refresh["inputs"] =
        json!([{"source": "body", "type_name": "inventory::users_api::RefreshRequest"}]);
    let mut create_user = entry("POST", "/api/users", "create_user");
    create_user["auth"] = json!({"kind": "unannotated"});
    create_user["rate"] = json!({"value": "100/s", "origin": "endpoint"});
    create_user["tiers"] = json!([
        {"name": "anonymous", "rate": "10/s"},
        {"name": "user", "rate": "100/s"},
        {"name": "premium", "rate": "1000/s"},
    ]);
    create_user["idempotency"] = json!({"ttl_ms": 86_400_000, "required": true, "wait_ms": 0});
    create_user["body_limit"] = json!({"value": 16384, "origin": "endpoint"});
    create_user["inputs"] =
        json!([{"source": "body", "type_name": "inventory::users_api::CreateUserRequest"}]);
    let mut delete_user = entry("DELETE", "/api/users/{id}", "delete_user");
    delete_user["auth"] = json!({"kind": "required", "rule": {"roles": ["admin"]}});
    delete_user["inputs"] = user_id.clone();
    let mut get_user = entry("GET", "/api/users/{id}", "get_user");
    get_user["inputs"] = user_id;
    let mut openapi_json = entry("GET", "/openapi.json", "openapi_json");
    openapi_json["auth"] = json!({"kind": "public"});

    assert_eq!(
        example().to_json(),
        json!([
            login,
            logout,
            me,
            refresh,
            create_user,
            delete_user,
            get_user,
            openapi_json
        ])
    );
}

#[test]
fn the_example_review_lists_its_unannotated_and_non_idempotent_endpoints() {
    let inventory = example();
    assert_eq!(routes(&inventory.unannotated()), ["POST /api/users"]);
    assert_eq!(
        routes(&inventory.state_changing_without_idempotency()),
        [
            "POST /api/login",
            "POST /api/logout",
            "POST /api/token/refresh",
            "DELETE /api/users/{id}"
        ]
    );
}

#[test]
fn one_endpoint_as_json_exactly() {
    let inventory = review_app();
    let del = inventory
        .endpoints()
        .iter()
        .find(|e| e.handler == "del")
        .unwrap();
    assert_eq!(
        serde_json::to_string(del).unwrap(),
        concat!(
            r#"{"method":"DELETE","path":"/t/del","handler":"del","module":"inventory::review","#,
            r#""auth":{"kind":"required","rule":{"any":[{"roles":["admin"]},{"permissions":["x"]}]}},"#,
            r#""rate":{"value":"5/min","origin":"endpoint"},"algorithm":"sliding_window","burst":null,"#,
            r#""tiers":[{"name":"premium","rate":"50/min"}],"key":"principal","cost":2,"#,
            r#""idempotency":null,"body_limit":{"value":1024,"origin":"endpoint"},"#,
            r#""on_store_error":{"value":"allow","origin":"endpoint"},"inputs":[]}"#
        )
    );
}

#[test]
fn the_table_of_a_small_app() {
    let table = review_app().to_string();
    let expected = r#"
METHOD  PATH         HANDLER                       AUTH                                         RATE            ALGORITHM       BURST  TIERS           KEY        COST  IDEMPOTENT        BODY              ON STORE ERROR
GET     /t/anon      inventory::review::anon_get   none                                         50/s (default)  gcra            50     -               auto       1     no                64 KiB (default)  fail_closed (default)
DELETE  /t/del       inventory::review::del        auth(any(roles("admin"), permissions("x")))  5/min           sliding_window  -      premium=50/min  principal  2     no                1 KiB             allow
POST    /t/open      inventory::review::open_post  none                                         50/s (default)  gcra            50     -               auto       1     no                64 KiB (default)  fail_closed (default)
PATCH   /t/put/{id}  inventory::review::patch_it   auth                                         10/s            gcra            3      -               auto       1     no                64 KiB (default)  fail_closed (default)
PUT     /t/put/{id}  inventory::review::put_it     auth(roles("a"), permissions("p:w"))         50/s (default)  gcra            50     -               auto       1     1h, key optional  64 KiB (default)  fail_closed (default)
GET     /t/read      inventory::review::read       public                                       unlimited       -               -      -               auto       1     no                64 KiB (default)  fail_closed (default)
*       (no route)   inventory::review::routeless  public                                       50/s (default)  gcra            50     -               auto       1     no                64 KiB (default)  fail_closed (default)"#;
    assert_eq!(table, &expected[1..]);
}

#[test]
fn the_review_helpers_list_exactly_the_flagged_endpoints() {
    let inventory = review_app();
    assert_eq!(
        routes(&inventory.unannotated()),
        ["GET /t/anon", "POST /t/open"]
    );
    assert_eq!(
        routes(&inventory.state_changing_without_idempotency()),
        [
            "DELETE /t/del",
            "POST /t/open",
            "PATCH /t/put/{id}",
            "* routeless"
        ]
    );
    let findings: Vec<(String, Issue)> = inventory
        .findings()
        .into_iter()
        .map(|f| (f.handler.to_owned(), f.issue))
        .collect();
    assert_eq!(
        findings,
        [
            ("anon_get".to_owned(), Issue::Unannotated),
            ("del".to_owned(), Issue::StateChangingWithoutIdempotency),
            ("open_post".to_owned(), Issue::Unannotated),
            (
                "open_post".to_owned(),
                Issue::StateChangingWithoutIdempotency
            ),
            (
                "patch_it".to_owned(),
                Issue::StateChangingWithoutIdempotency
            ),
            (
                "routeless".to_owned(),
                Issue::UnknownMethodWithoutIdempotency
            ),
        ]
    );
    assert_eq!(
        inventory.findings()[0].to_string(),
        "GET /t/anon (inventory::review::anon_get): neither `auth` nor `public`: add `auth(...)`, or `public` if anyone may call it"
    );
    assert_eq!(
        inventory.findings()[5].to_string(),
        "(no route) (inventory::review::routeless): has no route, so its method is unknown, and no `idempotent`: give the attribute its route, or add `idempotent`"
    );
}

#[test]
fn the_apps_defaults_and_input_limits_fill_in_what_endpoints_leave_out() {
    let inventory = review_app().with_input_limits(InputLimits::default().max_body(2048));
    let get = |handler: &str| {
        inventory
            .endpoints()
            .iter()
            .find(|e| e.handler == handler)
            .unwrap()
            .clone()
    };
    let put = serde_json::to_value(get("put_it")).unwrap();
    assert_eq!(
        put["body_limit"],
        json!({"value": 2048, "origin": "app_default"})
    );
    assert_eq!(
        put["rate"],
        json!({"value": "50/s", "origin": "app_default"})
    );
    assert_eq!(
        put["idempotency"],
        json!({"ttl_ms": 3_600_000, "required": false, "wait_ms": 0})
    );
    assert_eq!(
        put["auth"],
        json!({"kind": "required", "rule": {"all": [{"roles": ["a"]}, {"permissions": ["p:w"]}]}})
    );
    assert_eq!(
        get("put_it").auth.to_string(),
        r#"auth(roles("a"), permissions("p:w"))"#
    );
    assert_eq!(
        put["inputs"],
        json!([
            {"source": "path", "type_name": "inventory::review::Id"},
            {"source": "body", "type_name": "inventory::review::Note"},
        ])
    );
    // The endpoint's own `max_body` stays.
    assert_eq!(get("del").body_limit.value, 1024);
    // `burst` of the endpoint's rate.
    assert_eq!(get("patch_it").burst, Some(3));
    let on_error = SecureApi::builder()
        .on_limiter_error(secure_api_runtime::store::OnStoreError::Allow)
        .log_inventory(false)
        .build()
        .inventory();
    let patch = on_error
        .endpoints()
        .iter()
        .find(|e| e.handler == "patch_it")
        .unwrap();
    assert_eq!(
        serde_json::to_value(patch.on_store_error).unwrap(),
        json!({"value": "allow", "origin": "app_default"})
    );
}

#[test]
fn endpoints_are_sorted_by_path_then_method_and_listed_once() {
    let api = SecureApi::builder().log_inventory(false).build();
    let all = api.endpoints();
    assert_eq!(all, api.inventory().into_endpoints());
    let keys: Vec<_> = all
        .iter()
        .map(|e| (e.path.is_none(), e.path, e.method, e.module, e.handler))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(keys, sorted);
    // The example's 8 and this file's 7.
    assert_eq!(all.len(), 15);
}
