//! Authentication and authorization end to end: JWT verification against forged and
//! malformed tokens, roles and permissions per endpoint, 401 vs 403, tiers from verified
//! claims, and the example's login / refresh / me / admin routes.

mod common;

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/users_api.rs"]
mod users_api;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header;
use actix_web::{App, test, web};
use base64::Engine;
use common::{Reply, send};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secure_api_runtime::auth::Permission;
use secure_api_runtime::auth::jwt::{AccessGrant, AuthConfigError, JwtAuth};
use secure_api_runtime::auth::password::Passwords;
use secure_api_runtime::auth::revocation::{Revocation, RevokedTokens, TokenRef};
use secure_api_runtime::clock::FakeClock;
use secure_api_runtime::prelude::*;
use secure_api_runtime::store::{StoreError, StoreFuture};
use serde_json::{Value, json};

const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";
const RSA_PRIVATE: &[u8] = include_bytes!("keys/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("keys/rsa_public.pem");
const EC_PRIVATE: &[u8] = include_bytes!("keys/ec_private.pem");
const EC_PUBLIC: &[u8] = include_bytes!("keys/ec_public.pem");
const ED_PRIVATE: &[u8] = include_bytes!("keys/ed_private.pem");
const ED_PUBLIC: &[u8] = include_bytes!("keys/ed_public.pem");

enum Perm {
    ReportsRead,
}

impl Permission for Perm {
    fn name(&self) -> &'static str {
        match self {
            Perm::ReportsRead => "reports:read",
        }
    }
}

#[secure_endpoint(get("/me"), auth)]
async fn me(principal: Principal) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "sub": principal.subject, "tier": principal.tier }))
}

#[secure_endpoint(get("/admin"), auth(roles("admin")))]
async fn admin() -> &'static str {
    "admin"
}

#[secure_endpoint(delete("/items/{id}"), auth(permissions("items:delete")))]
async fn delete_item() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

#[secure_endpoint(get("/either"), auth(any(roles("admin"), permissions("reports:read"))))]
async fn either() -> &'static str {
    "either"
}

#[secure_endpoint(get("/both"), auth(roles("staff"), permissions("reports:read")))]
async fn both() -> &'static str {
    "both"
}

#[secure_endpoint(get("/typed"), auth(permissions(Perm::ReportsRead)))]
async fn typed() -> &'static str {
    "typed"
}

#[secure_endpoint(get("/optional"))]
async fn optional(principal: Option<Principal>) -> String {
    principal.map_or_else(|| "anonymous".to_owned(), |p| p.subject)
}

#[secure_endpoint(get("/public"), public)]
async fn public(principal: Option<Principal>) -> String {
    principal.map_or_else(|| "nobody".to_owned(), |p| p.subject)
}

#[secure_endpoint(get("/orders/{owner}"), auth)]
async fn orders(principal: Principal, owner: web::Path<String>) -> Result<String, ApiError> {
    principal.require_owner_or_role(&owner, "admin")?;
    Ok(format!("orders of {owner}"))
}

#[secure_endpoint(get("/tiered"), rate = "2/s", tier(premium = "5/s"))]
async fn tiered() -> &'static str {
    "tiered"
}

fn hs_auth() -> JwtAuth {
    JwtAuth::hs256(SECRET.to_vec())
        .issuer("https://issuer.test")
        .audience("api.test")
        .build()
        .unwrap()
}

fn app_for(
    jwt: JwtAuth,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let api = SecureApi::builder().jwt(jwt).build();
    App::new()
        .wrap(api.layer())
        .service(me)
        .service(admin)
        .service(delete_item)
        .service(either)
        .service(both)
        .service(typed)
        .service(optional)
        .service(public)
        .service(orders)
        .service(tiered)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(sub: &str) -> Value {
    let now = now();
    json!({
        "sub": sub, "iss": "https://issuer.test", "aud": "api.test",
        "iat": now, "nbf": now, "exp": now + 300, "jti": "t1",
    })
}

fn forge(alg: Algorithm, key: &EncodingKey, typ: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.typ = typ.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn hs(claims: &Value) -> String {
    forge(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET),
        Some("at+jwt"),
        claims,
    )
}

fn get(path: &str, token: Option<&str>) -> test::TestRequest {
    let mut req = test::TestRequest::get()
        .uri(path)
        .peer_addr("192.0.2.10:1000".parse().unwrap());
    if let Some(token) = token {
        req = req.insert_header((header::AUTHORIZATION, format!("Bearer {token}")));
    }
    req
}

/// Asserts the one 401 every failure gives, and returns the body without `instance`.
fn assert_401(r: &Reply, challenge_error: Option<&str>) -> Value {
    let mut body = r.assert_problem(401, "invalid-credentials");
    let challenge = r.header("www-authenticate").expect("WWW-Authenticate");
    assert!(challenge.starts_with("Bearer realm=\"api\""), "{challenge}");
    match challenge_error {
        Some(e) => assert!(
            challenge.ends_with(&format!("error=\"{e}\"")),
            "{challenge}"
        ),
        None => assert!(!challenge.contains("error="), "{challenge}"),
    }
    body.as_object_mut().unwrap().remove("instance");
    body
}

#[actix_rt::test]
async fn a_valid_token_reaches_the_handler() {
    let app = test::init_service(app_for(hs_auth())).await;
    let r = send(&app, get("/me", Some(&hs(&claims("alice"))))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({ "sub": "alice", "tier": "user" }));
}

#[actix_rt::test]
async fn every_bad_token_gets_the_same_401() {
    let app = test::init_service(app_for(hs_auth())).await;
    let rsa_as_hmac = EncodingKey::from_secret(RSA_PUBLIC);
    let good = hs(&claims("alice"));
    let now = now();
    let mut cases: Vec<(&str, String)> = Vec::new();

    // alg: none, with and without a signature.
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "at+jwt"})),
        b64(&claims("alice"))
    );
    cases.push(("alg none", none.clone()));
    cases.push((
        "alg none signed",
        format!("{none}{}", good.rsplit('.').next().unwrap()),
    ));
    // Tampered payload under a valid signature.
    let mut parts: Vec<&str> = good.split('.').collect();
    let mut admin_claims = claims("alice");
    admin_claims["roles"] = json!(["admin"]);
    let tampered_payload = b64(&admin_claims);
    parts[1] = &tampered_payload;
    cases.push(("tampered payload", parts.join(".")));
    // Tampered signature.
    let mut sig = good.clone();
    let last = sig.pop().unwrap();
    sig.push(if last == 'A' { 'B' } else { 'A' });
    cases.push(("tampered signature", sig));
    // Wrong key, wrong issuer, wrong audience.
    cases.push((
        "other key",
        forge(
            Algorithm::HS256,
            &EncodingKey::from_secret(&[9u8; 32]),
            Some("at+jwt"),
            &claims("alice"),
        ),
    ));
    let mut c = claims("alice");
    c["iss"] = json!("https://evil.test");
    cases.push(("wrong iss", hs(&c)));
    let mut c = claims("alice");
    c["aud"] = json!("other-api");
    cases.push(("wrong aud", hs(&c)));
    // Expired, not yet valid, issued in the future.
    let mut c = claims("alice");
    c["iat"] = json!(now - 600);
    c["nbf"] = json!(now - 600);
    c["exp"] = json!(now - 120);
    cases.push(("expired", hs(&c)));
    let mut c = claims("alice");
    c["nbf"] = json!(now + 120);
    cases.push(("not yet valid", hs(&c)));
    let mut c = claims("alice");
    c["iat"] = json!(now + 120);
    c["exp"] = json!(now + 300);
    cases.push(("iat in the future", hs(&c)));
    // A 16-minute token, even correctly signed.
    let mut c = claims("alice");
    c["exp"] = json!(now + 16 * 60);
    cases.push(("16-minute lifetime", hs(&c)));
    // Missing claims.
    for claim in ["sub", "iss", "aud", "exp", "iat"] {
        let mut c = claims("alice");
        c.as_object_mut().unwrap().remove(claim);
        cases.push((claim, hs(&c)));
    }
    // Claims of the wrong type.
    let mut c = claims("alice");
    c["exp"] = json!("tomorrow");
    cases.push(("exp as a string", hs(&c)));
    // Not an access token: wrong or missing typ.
    cases.push((
        "typ JWT",
        forge(
            Algorithm::HS256,
            &EncodingKey::from_secret(SECRET),
            Some("JWT"),
            &claims("alice"),
        ),
    ));
    cases.push((
        "no typ",
        forge(
            Algorithm::HS256,
            &EncodingKey::from_secret(SECRET),
            None,
            &claims("alice"),
        ),
    ));
    // Algorithm confusion: HS256 keyed with the RSA public key, against an HS256 app and an
    // RS256 app.
    cases.push((
        "hs256 with the rsa public key",
        forge(
            Algorithm::HS256,
            &rsa_as_hmac,
            Some("at+jwt"),
            &claims("alice"),
        ),
    ));
    // Garbage.
    cases.push(("garbage", "not.a.token".to_owned()));
    cases.push(("huge", "a".repeat(9000)));

    let mut bodies = Vec::new();
    for (name, token) in &cases {
        let r = send(&app, get("/me", Some(token))).await;
        assert_eq!(r.status, 401, "{name}: {}", r.text());
        bodies.push(assert_401(&r, Some("invalid_token")));
        r.assert_leaks_none(&[
            "Signature",
            "signature",
            "Issuer",
            "issuer",
            "Audience",
            "audience",
            "Claim",
            "claim",
            "Algorithm",
            "algorithm",
            "at+jwt",
            "lifetime",
            "alice",
            "jsonwebtoken",
        ]);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "every failure has the same body"
    );

    // The same token confusion against an RS256 app.
    let rs = JwtAuth::rs256_pem(RSA_PUBLIC.to_vec())
        .issuer("https://issuer.test")
        .audience("api.test")
        .build()
        .unwrap();
    let app = test::init_service(app_for(rs)).await;
    let confused = forge(
        Algorithm::HS256,
        &rsa_as_hmac,
        Some("at+jwt"),
        &claims("alice"),
    );
    assert_401(
        &send(&app, get("/me", Some(&confused))).await,
        Some("invalid_token"),
    );
    let real = forge(
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
        Some("at+jwt"),
        &claims("alice"),
    );
    assert_eq!(send(&app, get("/me", Some(&real))).await.status, 200);
}

#[actix_rt::test]
async fn missing_and_malformed_credentials() {
    let app = test::init_service(app_for(hs_auth())).await;
    assert_401(&send(&app, get("/me", None)).await, None);
    for value in [
        "Basic YWxpY2U6c2VjcmV0",
        "Bearer",
        "Bearer a b",
        "Token abc",
        "bearer tok en",
    ] {
        let r = send(
            &app,
            get("/me", None).insert_header((header::AUTHORIZATION, value)),
        )
        .await;
        assert_401(&r, Some("invalid_request"));
    }
    let r = send(
        &app,
        get("/me", Some(&hs(&claims("alice"))))
            .append_header((header::AUTHORIZATION, "Bearer other")),
    )
    .await;
    assert_401(&r, Some("invalid_request"));
}

#[actix_rt::test]
async fn asymmetric_algorithms() {
    for (auth, alg, key) in [
        (
            JwtAuth::eddsa_pem(ED_PUBLIC.to_vec()),
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(ED_PRIVATE).unwrap(),
        ),
        (
            JwtAuth::es256_pem(EC_PUBLIC.to_vec()),
            Algorithm::ES256,
            EncodingKey::from_ec_pem(EC_PRIVATE).unwrap(),
        ),
    ] {
        let auth = auth
            .issuer("https://issuer.test")
            .audience("api.test")
            .build()
            .unwrap();
        let app = test::init_service(app_for(auth)).await;
        let token = forge(alg, &key, Some("at+jwt"), &claims("carol"));
        let r = send(&app, get("/me", Some(&token))).await;
        assert_eq!(r.status, 200, "{alg:?}");
        // A token of another algorithm family is refused.
        assert_401(
            &send(&app, get("/me", Some(&hs(&claims("carol"))))).await,
            Some("invalid_token"),
        );
    }
    // Issuing with the private key round-trips.
    let auth = JwtAuth::eddsa_pem(ED_PUBLIC.to_vec())
        .signing_key_pem(ED_PRIVATE.to_vec())
        .issuer("https://issuer.test")
        .audience("api.test")
        .build()
        .unwrap();
    let token = auth
        .issue(&AccessGrant::new("dave").roles(["admin"]))
        .unwrap();
    assert!(auth.verify(&token).await.unwrap().has_role("admin"));
}

#[::core::prelude::v1::test]
fn misconfiguration_is_a_start_up_error() {
    let short = JwtAuth::hs256(b"only-31-bytes-of-secret-here!!!".to_vec())
        .issuer("i")
        .audience("a")
        .build();
    assert_eq!(
        short.unwrap_err(),
        AuthConfigError::WeakHmacKey { bytes: 31 }
    );
    assert!(JwtAuth::hs256(vec![1; 32]).audience("a").build().is_err());
    assert!(JwtAuth::hs256(vec![1; 32]).issuer("i").build().is_err());
    assert!(
        JwtAuth::rs256_pem(b"not a key".to_vec())
            .issuer("i")
            .audience("a")
            .build()
            .is_err()
    );
    let long = JwtAuth::hs256(vec![1; 32])
        .issuer("i")
        .audience("a")
        .access_lifetime(Duration::from_secs(16 * 60))
        .build();
    assert!(matches!(long, Err(AuthConfigError::LifetimeTooLong(_))));
    // A 16-minute access token is refused at issuance.
    let auth = hs_auth();
    let refused = auth.issue_for(&AccessGrant::new("alice"), Duration::from_secs(16 * 60));
    assert!(matches!(refused, Err(AuthConfigError::LifetimeTooLong(_))));
    assert!(
        auth.issue_for(&AccessGrant::new("alice"), Duration::from_secs(15 * 60))
            .is_ok()
    );
    // A verifier without a private key cannot issue.
    let verify_only = JwtAuth::rs256_pem(RSA_PUBLIC.to_vec())
        .issuer("i")
        .audience("a")
        .build()
        .unwrap();
    assert_eq!(
        verify_only.issue(&AccessGrant::new("x")),
        Err(AuthConfigError::NoSigningKey)
    );
}

#[actix_rt::test]
async fn roles_and_permissions_per_endpoint_401_vs_403() {
    let auth = hs_auth();
    let app = test::init_service(app_for(auth.clone())).await;
    let token = |grant: AccessGrant| auth.issue(&grant).unwrap();
    let plain = token(AccessGrant::new("pat"));
    let admin_t = token(AccessGrant::new("ada").roles(["admin"]));
    let deleter = token(AccessGrant::new("del").permissions(["items:delete"]));
    let reporter = token(AccessGrant::new("rep").permissions(["reports:read"]));
    let staff_reporter = token(
        AccessGrant::new("sr")
            .roles(["staff"])
            .permissions(["reports:read"]),
    );

    let status = |r: Reply| r.status.as_u16();
    // Anonymous: 401 everywhere auth is required.
    for path in ["/admin", "/either", "/both", "/typed"] {
        assert_401(&send(&app, get(path, None)).await, None);
    }
    let r = send(&app, test::TestRequest::delete().uri("/items/1")).await;
    assert_401(&r, None);

    // Authenticated but not allowed: 403 with insufficient_scope.
    let r = send(&app, get("/admin", Some(&plain))).await;
    r.assert_problem(403, "forbidden");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"api\", error=\"insufficient_scope\"")
    );
    assert_eq!(status(send(&app, get("/admin", Some(&admin_t))).await), 200);

    let del = |t: &str| {
        test::TestRequest::delete()
            .uri("/items/1")
            .insert_header((header::AUTHORIZATION, format!("Bearer {t}")))
    };
    let r = send(&app, del(&admin_t)).await;
    r.assert_problem(403, "forbidden");
    // RFC 6750 §3: the challenge names the scope that would allow the request.
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"api\", error=\"insufficient_scope\", scope=\"items:delete\""),
        "a role is not a permission"
    );
    assert_eq!(status(send(&app, del(&deleter)).await), 204);

    assert_eq!(
        status(send(&app, get("/either", Some(&admin_t))).await),
        200
    );
    assert_eq!(
        status(send(&app, get("/either", Some(&reporter))).await),
        200
    );
    // any(roles("admin"), permissions("reports:read")): the scope is the way in.
    let r = send(&app, get("/either", Some(&plain))).await;
    r.assert_problem(403, "forbidden");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"api\", error=\"insufficient_scope\", scope=\"reports:read\"")
    );

    // roles("staff") and permissions("reports:read"): the scope is there, the role is not;
    // no scope would help, so none is named.
    let r = send(&app, get("/both", Some(&reporter))).await;
    r.assert_problem(403, "forbidden");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"api\", error=\"insufficient_scope\"")
    );
    assert_eq!(
        status(send(&app, get("/both", Some(&staff_reporter))).await),
        200
    );

    assert_eq!(
        status(send(&app, get("/typed", Some(&reporter))).await),
        200
    );
    assert_eq!(status(send(&app, get("/typed", Some(&deleter))).await), 403);
}

#[actix_rt::test]
async fn optional_and_public_endpoints() {
    let auth = hs_auth();
    let app = test::init_service(app_for(auth.clone())).await;
    let t = auth.issue(&AccessGrant::new("opal")).unwrap();
    assert_eq!(send(&app, get("/optional", None)).await.text(), "anonymous");
    assert_eq!(send(&app, get("/optional", Some(&t))).await.text(), "opal");
    // An invalid token is not silently treated as anonymous.
    assert_401(
        &send(&app, get("/optional", Some("x.y.z"))).await,
        Some("invalid_token"),
    );
    // `public` never looks at credentials.
    assert_eq!(send(&app, get("/public", Some(&t))).await.text(), "nobody");
    assert_eq!(
        send(&app, get("/public", Some("x.y.z"))).await.text(),
        "nobody"
    );
}

#[actix_rt::test]
async fn an_id_in_the_url_does_not_grant_access() {
    let auth = hs_auth();
    let app = test::init_service(app_for(auth.clone())).await;
    let alice = auth.issue(&AccessGrant::new("alice")).unwrap();
    let admin_t = auth
        .issue(&AccessGrant::new("root").roles(["admin"]))
        .unwrap();
    assert_eq!(
        send(&app, get("/orders/alice", Some(&alice))).await.text(),
        "orders of alice"
    );
    let r = send(&app, get("/orders/bob", Some(&alice))).await;
    r.assert_problem(403, "forbidden");
    r.assert_leaks_none(&["bob"]);
    assert_eq!(
        send(&app, get("/orders/bob", Some(&admin_t))).await.status,
        200
    );
    // Claims in the query or body do not matter either.
    let r = send(&app, get("/orders/bob?sub=bob&roles=admin", Some(&alice))).await;
    assert_eq!(r.status, 403);
}

#[actix_rt::test]
async fn tiers_come_from_the_verified_claim() {
    let auth = hs_auth();
    let app = test::init_service(app_for(auth.clone())).await;
    let premium = auth
        .issue(&AccessGrant::new("pam").tier("premium"))
        .unwrap();
    for _ in 0..5 {
        assert_eq!(send(&app, get("/tiered", Some(&premium))).await.status, 200);
    }
    let r = send(&app, get("/tiered", Some(&premium))).await;
    r.assert_problem(429, "rate-limited");
    assert!(
        r.header("ratelimit-policy")
            .unwrap()
            .starts_with("\"premium\"")
    );
    // A forged tier claim does not verify.
    let mut c = claims("eve");
    c["tier"] = json!("premium");
    let forged = forge(
        Algorithm::HS256,
        &EncodingKey::from_secret(&[3u8; 32]),
        Some("at+jwt"),
        &c,
    );
    assert_401(
        &send(&app, get("/tiered", Some(&forged))).await,
        Some("invalid_token"),
    );
}

#[actix_rt::test]
async fn failed_authentication_is_rate_limited_by_address() {
    let app = test::init_service(app_for(hs_auth())).await;
    // `/tiered` allows 2/s for anonymous clients; bad tokens are charged to the address.
    for _ in 0..2 {
        assert_eq!(send(&app, get("/tiered", Some("x.y.z"))).await.status, 401);
    }
    send(&app, get("/tiered", Some("x.y.z")))
        .await
        .assert_problem(429, "rate-limited");
}

// The example's routes.

async fn example() -> (
    impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
    >,
    web::Data<users_api::AppState>,
) {
    let passwords = Passwords::with_params(1024, 1, 1).unwrap();
    let (api, state) = users_api::setup(passwords, "demo-password-1");
    let app = test::init_service(
        App::new()
            .app_data(state.clone())
            .wrap(api.layer())
            .configure(users_api::routes),
    )
    .await;
    (app, state)
}

fn post_json(path: &str, body: Value, ip: &str) -> test::TestRequest {
    test::TestRequest::post()
        .uri(path)
        .peer_addr(format!("{ip}:1000").parse().unwrap())
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(body.to_string())
}

#[actix_rt::test]
async fn login_gives_the_same_401_and_the_same_work_for_unknown_users() {
    let (app, state) = example().await;
    let before = state.passwords.hash_operations();
    let unknown = send(
        &app,
        post_json(
            "/api/login",
            json!({"username": "mallory", "password": "demo-password-1"}),
            "198.51.100.1",
        ),
    )
    .await;
    let after_unknown = state.passwords.hash_operations();
    let wrong = send(
        &app,
        post_json(
            "/api/login",
            json!({"username": "alice", "password": "wrong"}),
            "198.51.100.2",
        ),
    )
    .await;
    let after_wrong = state.passwords.hash_operations();
    assert_eq!(after_unknown - before, 1, "an unknown user costs one hash");
    assert_eq!(
        after_wrong - after_unknown,
        1,
        "a wrong password costs one hash"
    );
    let a = assert_401(&unknown, Some("invalid_token"));
    let b = assert_401(&wrong, Some("invalid_token"));
    assert_eq!(a, b);
    unknown.assert_leaks_none(&["mallory", "unknown", "user"]);
}

#[actix_rt::test]
async fn login_me_refresh_rotation_and_reuse() {
    let (app, _) = example().await;
    let r = send(
        &app,
        post_json(
            "/api/login",
            json!({"username": " Alice ", "password": "demo-password-1"}),
            "198.51.100.3",
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let pair = r.json();
    assert_eq!(pair["token_type"], "Bearer");
    assert!(pair["expires_in"].as_u64().unwrap() <= 900);
    let access = pair["access_token"].as_str().unwrap().to_owned();
    let refresh1 = pair["refresh_token"].as_str().unwrap().to_owned();

    let r = send(&app, get("/api/me", Some(&access))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["subject"], "alice");
    assert_eq!(r.json()["tier"], "premium");

    // A refresh token works once.
    let refresh = |t: &str| {
        post_json(
            "/api/token/refresh",
            json!({ "refresh_token": t }),
            "198.51.100.3",
        )
    };
    let r = send(&app, refresh(&refresh1)).await;
    assert_eq!(r.status, 200);
    let refresh2 = r.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh1, refresh2);
    let r = send(&app, refresh(&refresh2)).await;
    assert_eq!(r.status, 200);
    let refresh3 = r.json()["refresh_token"].as_str().unwrap().to_owned();

    // Reusing a spent token is refused and revokes the family: the newest fails too.
    assert_401(&send(&app, refresh(&refresh1)).await, Some("invalid_token"));
    assert_401(&send(&app, refresh(&refresh3)).await, Some("invalid_token"));
    // An unknown token is the same 401.
    assert_401(&send(&app, refresh("made-up")).await, Some("invalid_token"));
}

#[actix_rt::test]
async fn admin_only_delete_and_owner_only_profile() {
    let (app, _) = example().await;
    let login = |user: &str| {
        post_json(
            "/api/login",
            json!({"username": user, "password": "demo-password-1"}),
            "198.51.100.4",
        )
    };
    let bob = send(&app, login("bob")).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin_t = send(&app, login("admin")).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    assert_eq!(
        send(&app, get("/api/users/bob", Some(&bob))).await.status,
        200
    );
    send(&app, get("/api/users/alice", Some(&bob)))
        .await
        .assert_problem(403, "forbidden");
    assert_eq!(
        send(&app, get("/api/users/alice", Some(&admin_t)))
            .await
            .status,
        200
    );

    let delete = |id: &str, t: &str| {
        test::TestRequest::delete()
            .uri(&format!("/api/users/{id}"))
            .insert_header((header::AUTHORIZATION, format!("Bearer {t}")))
    };
    send(&app, delete("alice", &bob))
        .await
        .assert_problem(403, "forbidden");
    assert_401(
        &send(&app, test::TestRequest::delete().uri("/api/users/alice")).await,
        None,
    );
    assert_eq!(send(&app, delete("alice", &admin_t)).await.status, 204);
    send(&app, delete("alice", &admin_t))
        .await
        .assert_problem(404, "not-found");
}

#[actix_rt::test]
async fn login_is_limited_to_five_a_minute_per_address() {
    let (app, _) = example().await;
    for _ in 0..5 {
        let r = send(
            &app,
            post_json(
                "/api/login",
                json!({"username": "alice", "password": "nope"}),
                "203.0.113.99",
            ),
        )
        .await;
        assert_eq!(r.status, 401);
    }
    let r = send(
        &app,
        post_json(
            "/api/login",
            json!({"username": "alice", "password": "demo-password-1"}),
            "203.0.113.99",
        ),
    )
    .await;
    r.assert_problem(429, "rate-limited");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
}

// Sessions and revocation.

fn access_of(pair: &Value) -> String {
    pair["access_token"].as_str().unwrap().to_owned()
}

fn refresh_of(pair: &Value) -> String {
    pair["refresh_token"].as_str().unwrap().to_owned()
}

async fn example_login<S, B>(app: &S, user: &str, ip: &str) -> Value
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody + 'static,
{
    let r = send(
        app,
        post_json(
            "/api/login",
            json!({"username": user, "password": "demo-password-1"}),
            ip,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn refresh_req(token: &str, ip: &str) -> test::TestRequest {
    post_json("/api/token/refresh", json!({ "refresh_token": token }), ip)
}

fn with_bearer(req: test::TestRequest, token: &str) -> test::TestRequest {
    req.insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
}

#[actix_rt::test]
async fn deleting_a_user_ends_their_sessions_at_once() {
    let (app, _) = example().await;
    let ip = "198.51.100.20";
    let alice = example_login(&app, "alice", ip).await;
    let admin_pair = example_login(&app, "admin", ip).await;
    assert_eq!(
        send(&app, get("/api/me", Some(&access_of(&alice))))
            .await
            .status,
        200
    );

    let delete = with_bearer(
        test::TestRequest::delete().uri("/api/users/alice"),
        &access_of(&admin_pair),
    );
    assert_eq!(send(&app, delete).await.status, 204);

    // Right after: the access token is refused, and so is the refresh token.
    assert_401(
        &send(&app, get("/api/me", Some(&access_of(&alice)))).await,
        Some("invalid_token"),
    );
    assert_401(
        &send(&app, refresh_req(&refresh_of(&alice), ip)).await,
        Some("invalid_token"),
    );
    // Nobody else's session is touched.
    assert_eq!(
        send(&app, get("/api/me", Some(&access_of(&admin_pair))))
            .await
            .status,
        200
    );
}

#[actix_rt::test]
async fn a_demoted_users_next_refresh_carries_the_current_roles() {
    let (app, state) = example().await;
    let ip = "198.51.100.21";
    let admin_pair = example_login(&app, "admin", ip).await;
    let r = send(&app, get("/api/me", Some(&access_of(&admin_pair)))).await;
    assert_eq!(r.json()["roles"], json!(["admin"]));
    {
        let mut users = state.users.write().unwrap();
        let account = users.get_mut("admin").unwrap();
        account.roles = vec!["user".to_owned()];
        account.permissions.clear();
    }
    let r = send(&app, refresh_req(&refresh_of(&admin_pair), ip)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let demoted = access_of(&r.json());
    let r = send(&app, get("/api/me", Some(&demoted))).await;
    assert_eq!(r.json()["subject"], "admin");
    assert_eq!(r.json()["roles"], json!(["user"]));
    assert_eq!(r.json()["permissions"], json!([]));
    let delete = with_bearer(test::TestRequest::delete().uri("/api/users/bob"), &demoted);
    send(&app, delete).await.assert_problem(403, "forbidden");
}

#[actix_rt::test]
async fn logout_ends_the_session_and_every_access_token_of_it() {
    let (app, _) = example().await;
    let ip = "198.51.100.22";
    let first = example_login(&app, "alice", ip).await;
    let r = send(&app, refresh_req(&refresh_of(&first), ip)).await;
    assert_eq!(r.status, 200);
    let second = r.json();
    let other = example_login(&app, "alice", ip).await;

    let logout = |t: &str| {
        with_bearer(
            test::TestRequest::post()
                .uri("/api/logout")
                .peer_addr(format!("{ip}:1000").parse().unwrap()),
            t,
        )
    };
    let r = send(&app, logout(&access_of(&second))).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(r.body.is_empty());

    // The presented access token, the session's earlier one and its refresh token are
    // refused at once.
    for token in [access_of(&second), access_of(&first)] {
        assert_401(
            &send(&app, get("/api/me", Some(&token))).await,
            Some("invalid_token"),
        );
    }
    assert_401(
        &send(&app, refresh_req(&refresh_of(&second), ip)).await,
        Some("invalid_token"),
    );
    // Logging out again with it is a 401 too.
    assert_401(
        &send(&app, logout(&access_of(&second))).await,
        Some("invalid_token"),
    );
    // The user's other session goes on.
    assert_eq!(
        send(&app, get("/api/me", Some(&access_of(&other))))
            .await
            .status,
        200
    );
    assert_eq!(
        send(&app, refresh_req(&refresh_of(&other), ip))
            .await
            .status,
        200
    );
    // Logout needs a token.
    assert_401(
        &send(&app, test::TestRequest::post().uri("/api/logout")).await,
        None,
    );
}

const T0: u64 = 1_800_000_000;

fn fake_clock() -> FakeClock {
    let clock = FakeClock::new();
    clock.set(T0 * 1_000_000_000);
    clock
}

fn clocked_auth(clock: &FakeClock, revoked: &Arc<RevokedTokens>) -> JwtAuth {
    JwtAuth::hs256(SECRET.to_vec())
        .issuer("https://issuer.test")
        .audience("api.test")
        .clock(Arc::new(clock.clone()))
        .revocation(revoked.clone())
        .build()
        .unwrap()
}

#[actix_rt::test]
async fn a_revoked_subjects_access_tokens_are_refused_at_once_until_they_could_expire() {
    let clock = fake_clock();
    let revoked = Arc::new(RevokedTokens::new());
    let auth = clocked_auth(&clock, &revoked);
    let app = test::init_service(app_for(auth.clone())).await;
    let longest = Duration::from_secs(15 * 60);
    let alice = auth.issue_for(&AccessGrant::new("alice"), longest).unwrap();
    let bob = auth.issue(&AccessGrant::new("bob")).unwrap();
    assert_eq!(send(&app, get("/me", Some(&alice))).await.status, 200);

    auth.revoke_subject("alice").await.unwrap();
    assert_401(
        &send(&app, get("/me", Some(&alice))).await,
        Some("invalid_token"),
    );
    assert_eq!(send(&app, get("/me", Some(&bob))).await.status, 200);
    // Tokens issued after the revocation's second work.
    clock.advance(Duration::from_secs(1));
    let fresh = auth.issue(&AccessGrant::new("alice")).unwrap();
    assert_eq!(send(&app, get("/me", Some(&fresh))).await.status, 200);

    // The old token would still pass its `exp` check up to 15 min + 10 s leeway after it
    // was issued: the entry lasts that long...
    clock.set((T0 + 15 * 60 + 10) * 1_000_000_000);
    assert_401(
        &send(&app, get("/me", Some(&alice))).await,
        Some("invalid_token"),
    );
    auth.revoke_token("other", T0 + 15 * 60).await.unwrap();
    assert_eq!(revoked.len(), 2);
    // ...and no longer: the next revocation drops it.
    clock.advance(Duration::from_secs(1));
    auth.revoke_token("another", T0 + 30 * 60).await.unwrap();
    assert_eq!(
        revoked.len(),
        1,
        "the subject entry and `other` were dropped"
    );
}

#[actix_rt::test]
async fn a_revoked_token_id_stays_refused_until_exp_plus_leeway() {
    let clock = fake_clock();
    let revoked = Arc::new(RevokedTokens::new());
    let auth = clocked_auth(&clock, &revoked);
    let app = test::init_service(app_for(auth.clone())).await;
    let token = auth.issue(&AccessGrant::new("alice")).unwrap();
    let principal = auth.verify(&token).await.unwrap();
    let jti = principal.token_id.unwrap();
    let exp = T0 + auth.access_lifetime().as_secs();
    let other = auth.issue(&AccessGrant::new("alice")).unwrap();

    auth.revoke_token(&jti, exp).await.unwrap();
    assert_401(
        &send(&app, get("/me", Some(&token))).await,
        Some("invalid_token"),
    );
    assert_eq!(send(&app, get("/me", Some(&other))).await.status, 200);
    // After `exp`, inside the 10 s leeway, the token would verify again if its entry had
    // been dropped at `exp`.
    for at in [exp, exp + 1, exp + 10] {
        clock.set(at * 1_000_000_000);
        assert_eq!(
            send(&app, get("/me", Some(&other))).await.status,
            200,
            "{at}"
        );
        assert_401(
            &send(&app, get("/me", Some(&token))).await,
            Some("invalid_token"),
        );
    }
    // Past the leeway the token is expired anyway, and the entry goes at the next
    // revocation.
    clock.advance(Duration::from_secs(1));
    assert_eq!(send(&app, get("/me", Some(&other))).await.status, 401);
    assert_eq!(revoked.len(), 1);
    auth.revoke_token("x", exp + 100).await.unwrap();
    assert_eq!(revoked.len(), 1);
}

#[actix_rt::test]
async fn a_token_without_jti_is_refused_while_revocation_is_configured() {
    let mut no_jti = claims("alice");
    no_jti.as_object_mut().unwrap().remove("jti");
    let mut empty_jti = claims("alice");
    empty_jti["jti"] = json!("");
    // Revocation is configured by default.
    let app = test::init_service(app_for(hs_auth())).await;
    for c in [&no_jti, &empty_jti] {
        assert_401(
            &send(&app, get("/me", Some(&hs(c)))).await,
            Some("invalid_token"),
        );
    }
    assert_eq!(
        send(&app, get("/me", Some(&hs(&claims("alice")))))
            .await
            .status,
        200
    );
    // Without a revocation store, tokens minted elsewhere without `jti` are accepted.
    let bare = JwtAuth::hs256(SECRET.to_vec())
        .issuer("https://issuer.test")
        .audience("api.test")
        .without_revocation()
        .build()
        .unwrap();
    assert!(bare.revoke_subject("alice").await.is_err());
    let app = test::init_service(app_for(bare)).await;
    assert_eq!(send(&app, get("/me", Some(&hs(&no_jti)))).await.status, 200);
}

#[actix_rt::test]
async fn revoked_token_ids_are_refused() {
    let revoked = Arc::new(RevokedTokens::new());
    let auth = JwtAuth::hs256(SECRET.to_vec())
        .issuer("https://issuer.test")
        .audience("api.test")
        .revocation(revoked.clone())
        .build()
        .unwrap();
    let app = test::init_service(app_for(auth.clone())).await;
    let token = hs(&claims("alice"));
    assert_eq!(send(&app, get("/me", Some(&token))).await.status, 200);
    auth.revoke_token("t1", now() + 300).await.unwrap();
    assert_401(
        &send(&app, get("/me", Some(&token))).await,
        Some("invalid_token"),
    );
    let mut other = claims("alice");
    other["jti"] = json!("t2");
    assert_eq!(send(&app, get("/me", Some(&hs(&other)))).await.status, 200);
}

#[actix_rt::test]
async fn a_revocation_store_that_cannot_answer_is_a_503() {
    struct Down;
    impl Revocation for Down {
        fn is_revoked(&self, _: TokenRef<'_>, _: u64) -> StoreFuture<'_, Result<bool, StoreError>> {
            StoreFuture::Pending(Box::pin(async {
                Err(StoreError::Backend("connection refused".into()))
            }))
        }
        fn revoke_token(&self, _: &str, _: u64, _: u64) -> StoreFuture<'_, Result<(), StoreError>> {
            StoreFuture::ready(Ok(()))
        }
        fn revoke_session(
            &self,
            _: &str,
            _: u64,
            _: u64,
        ) -> StoreFuture<'_, Result<(), StoreError>> {
            StoreFuture::ready(Ok(()))
        }
        fn revoke_subject(
            &self,
            _: &str,
            _: u64,
            _: u64,
            _: u64,
        ) -> StoreFuture<'_, Result<(), StoreError>> {
            StoreFuture::ready(Ok(()))
        }
    }
    let auth = JwtAuth::hs256(SECRET.to_vec())
        .issuer("https://issuer.test")
        .audience("api.test")
        .revocation(Arc::new(Down))
        .build()
        .unwrap();
    let app = test::init_service(app_for(auth)).await;
    let r = send(&app, get("/me", Some(&hs(&claims("alice"))))).await;
    r.assert_problem(503, "service-unavailable");
    assert_eq!(r.header("retry-after"), Some("1"));
    r.assert_leaks_none(&["connection refused", "revocation"]);
}
