//! Tokens from an identity provider: a local provider (an actix server on 127.0.0.1, see
//! `tests/common/idp.rs`) serves OpenID Connect discovery and a JWK set signed with keys the
//! test controls; the API verifies its tokens through `JwtAuth::oidc` / `JwtAuth::jwks`.
//!
//! Time is a `FakeClock` (the tokens' wall clock and the refresh schedule's monotonic
//! clock alike), so cool-downs and schedules are moved, not slept through.
#![cfg(feature = "oidc")]

mod common;
#[path = "common/https_idp.rs"]
mod https_idp;
#[path = "common/idp.rs"]
mod idp;
#[allow(dead_code, unreachable_pub)]
#[path = "../examples/users_api.rs"]
mod users_api;

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{App, test};
use common::{Reply, send};
use futures_util::future::join_all;
use idp::{Idp, Mode, RSA_PRIVATE, RSA2_PRIVATE, Signer};
use jsonwebtoken::Algorithm;
use secure_api_runtime::auth::jwt::JwtAuth;
use secure_api_runtime::auth::oidc::{
    FetchError, ProviderAuthBuilder, ProviderError, Startup, TokenTyp, claim_pointer,
};
use secure_api_runtime::clock::{FakeClock, WallClock};
use secure_api_runtime::prelude::*;
use serde_json::{Value, json};

const AUDIENCE: &str = "orders-api";
/// 2023-11-14T22:13:20Z: the fake clock's start.
const T0_SECS: u64 = 1_700_000_000;

#[secure_endpoint(get("/me"), auth)]
async fn me(principal: Principal) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "sub": principal.subject,
        "roles": principal.roles,
        "permissions": principal.permissions,
        "tier": principal.tier,
    }))
}

#[secure_endpoint(get("/users"), auth(permissions("read:users")))]
async fn users() -> &'static str {
    "users"
}

#[secure_endpoint(get("/admin"), auth(roles("admin")))]
async fn admin() -> &'static str {
    "admin"
}

#[secure_endpoint(get("/orders"), auth(roles("orders-admin")))]
async fn orders() -> &'static str {
    "orders"
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
        .service(users)
        .service(admin)
        .service(orders)
}

fn clock() -> FakeClock {
    let clock = FakeClock::new();
    clock.set(T0_SECS * 1_000_000_000);
    clock
}

/// A provider verifier on `clock`: the issuer's discovery, the test audience, quick fetch
/// timeouts; `configure` adds the rest.
fn oidc(idp: &Idp, clock: &FakeClock) -> ProviderAuthBuilder {
    JwtAuth::oidc(&idp.issuer)
        .audience(AUDIENCE)
        .clock(Arc::new(clock.clone()))
        .refresh_clock(Arc::new(clock.clone()))
        .fetch_timeout(Duration::from_millis(500))
}

/// Claims valid at the clock's time: 5 minutes of life.
fn claims(idp: &Idp, clock: &FakeClock, sub: &str) -> Value {
    let now = clock.unix_secs();
    json!({
        "iss": idp.issuer, "aud": AUDIENCE, "sub": sub,
        "iat": now, "nbf": now, "exp": now + 300, "jti": format!("jti-{sub}-{now}"),
    })
}

fn get(path: &str, token: &str) -> test::TestRequest {
    test::TestRequest::get()
        .uri(path)
        .peer_addr("192.0.2.10:1000".parse().unwrap())
        .insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
}

/// Asserts the one 401 of every failure, and that nothing of the token, its key or the
/// provider is in the response. Returns the body without `instance`.
fn assert_401(r: &Reply, token: &str, idp: &Idp, kid: &str) -> Value {
    let mut body = r.assert_problem(401, "invalid-credentials");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"api\", error=\"invalid_token\"")
    );
    let signature = token.rsplit('.').next().unwrap();
    r.assert_leaks_none(&[
        signature,
        kid,
        &idp.issuer,
        &idp.base,
        "kid",
        "jwks",
        "realms",
        "keys",
        "alg",
        "127.0.0.1",
    ]);
    for (_, value) in r.headers.iter() {
        let value = value.to_str().unwrap();
        assert!(
            !value.contains(kid) && !value.contains(&idp.base),
            "{value}"
        );
    }
    body.as_object_mut().unwrap().remove("instance");
    body
}

/// Waits (bounded) until the key set finished more refreshes than `after`.
async fn refreshed_after(jwt: &JwtAuth, after: u64) {
    let keys = jwt.provider_keys().unwrap();
    for _ in 0..500 {
        if keys.status().refreshes > after {
            return;
        }
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no refresh finished: {:?}", keys.status());
}

#[actix_rt::test]
async fn a_provider_token_reaches_the_handler() {
    let k1 = Signer::rsa("k1", Algorithm::RS256, RSA_PRIVATE);
    let idp = Idp::start(vec![k1.jwk.clone()]);
    let clock = clock();
    let jwt = oidc(&idp, &clock).build().await.unwrap();
    assert_eq!((idp.discovery_fetches(), idp.jwks_fetches()), (1, 1));
    let status = jwt.provider_keys().unwrap().status();
    assert_eq!(status.key_ids, ["k1"]);
    assert_eq!(status.failures, 0);
    let app = test::init_service(app_for(jwt.clone())).await;

    let token = k1.sign(&claims(&idp, &clock, "alice"));
    let r = send(&app, get("/me", &token)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"sub": "alice", "roles": [], "permissions": [], "tier": "user"})
    );
    // The provider is not asked again for known keys.
    for _ in 0..20 {
        assert_eq!(send(&app, get("/me", &token)).await.status, 200);
    }
    assert_eq!(idp.fetches(), 2);

    // Revocation works on provider tokens too: by jti, and by subject.
    let principal = jwt.verify(&token).await.unwrap();
    assert_eq!(principal.token_id.as_deref(), Some("jti-alice-1700000000"));
    jwt.revoke_subject("alice").await.unwrap();
    assert_401(&send(&app, get("/me", &token)).await, &token, &idp, "k1");
}

#[actix_rt::test]
async fn every_algorithm_and_keys_without_alg() {
    let rs = Signer::rsa("rs", Algorithm::RS256, RSA_PRIVATE);
    let ps = Signer::rsa("ps", Algorithm::PS256, RSA2_PRIVATE);
    let es = Signer::ec("es");
    let ed = Signer::ed("ed");
    // Entra ID publishes RSA keys without `alg`.
    let bare = Signer::rsa("bare", Algorithm::RS256, RSA2_PRIVATE);
    let idp = Idp::start(vec![
        rs.jwk.clone(),
        ps.jwk.clone(),
        es.jwk.clone(),
        ed.jwk.clone(),
        bare.jwk_without_alg(),
    ]);
    let clock = clock();
    let jwt = oidc(&idp, &clock).build().await.unwrap();
    let app = test::init_service(app_for(jwt)).await;
    for signer in [&rs, &ps, &es, &ed, &bare] {
        let token = signer.sign(&claims(&idp, &clock, "alice"));
        let r = send(&app, get("/me", &token)).await;
        assert_eq!(r.status, 200, "{}: {}", signer.kid, r.text());
    }
    // A key without `alg` serves what its type allows: PS256 too for RSA.
    let token = bare.sign_with(
        Algorithm::PS256,
        Some("bare"),
        Some("at+jwt"),
        &claims(&idp, &clock, "alice"),
    );
    assert_eq!(send(&app, get("/me", &token)).await.status, 200);
}

#[actix_rt::test]
async fn key_rotation_new_kid_then_old_removed() {
    let k1 = Signer::rsa("k1", Algorithm::RS256, RSA_PRIVATE);
    let k2 = Signer::rsa("k2", Algorithm::RS256, RSA2_PRIVATE);
    let idp = Idp::start(vec![k1.jwk.clone()]);
    let clock = clock();
    let jwt = oidc(&idp, &clock).build().await.unwrap();
    let app = test::init_service(app_for(jwt.clone())).await;
    let old = |clock: &FakeClock| k1.sign(&claims(&idp, clock, "alice"));
    assert_eq!(send(&app, get("/me", &old(&clock))).await.status, 200);

    // The provider rotates k2 in and signs with it. Past the cool-down, the first token
    // naming k2 makes the verifier fetch the set, and that very request succeeds.
    idp.set_keys(vec![k1.jwk.clone(), k2.jwk.clone()]);
    clock.advance(Duration::from_secs(31));
    let new = k2.sign(&claims(&idp, &clock, "bob"));
    let r = send(&app, get("/me", &new)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(idp.jwks_fetches(), 2);
    assert_eq!(jwt.provider_keys().unwrap().status().key_ids, ["k1", "k2"]);
    // Both keys serve while both are published.
    assert_eq!(send(&app, get("/me", &old(&clock))).await.status, 200);

    // Later the provider drops k1: after the next scheduled refresh (10 minutes without
    // max-age), k1's tokens are refused and k2's still pass.
    idp.set_keys(vec![k2.jwk.clone()]);
    let before = jwt.provider_keys().unwrap().status().refreshes;
    clock.advance(Duration::from_secs(10 * 60 + 1));
    // The first request after the due time asks for the refresh (and is served).
    let new = k2.sign(&claims(&idp, &clock, "bob"));
    assert_eq!(send(&app, get("/me", &new)).await.status, 200);
    refreshed_after(&jwt, before).await;
    assert_eq!(jwt.provider_keys().unwrap().status().key_ids, ["k2"]);
    let token = old(&clock);
    let r = send(&app, get("/me", &token)).await;
    assert_401(&r, &token, &idp, "k1");
    assert_eq!(send(&app, get("/me", &new)).await.status, 200);
}

#[actix_rt::test]
async fn an_unknown_kid_inside_the_cooldown_fetches_nothing() {
    let k1 = Signer::rsa("k1", Algorithm::RS256, RSA_PRIVATE);
    let k2 = Signer::rsa("k2", Algorithm::RS256, RSA2_PRIVATE);
    let idp = Idp::start(vec![k1.jwk.clone()]);
    let clock = clock();
    let jwt = oidc(&idp, &clock).build().await.unwrap();
    let app = test::init_service(app_for(jwt.clone())).await;
    assert_eq!(idp.fetches(), 2);

    // k2 appears at the provider right after start-up: inside the 30 s cool-down of the
    // start-up fetch, a token naming it is refused at once, and nothing is fetched.
    idp.set_keys(vec![k1.jwk.clone(), k2.jwk.clone()]);
    clock.advance(Duration::from_secs(29));
    let token = k2.sign(&claims(&idp, &clock, "bob"));
    assert_401(&send(&app, get("/me", &token)).await, &token, &idp, "k2");
    assert!(jwt.verify_claims(&token).is_err());
    assert_eq!(idp.fetches(), 2, "no fetch inside the cool-down");

    // Once the cool-down is over, one fetch, and the token passes.
    clock.advance(Duration::from_secs(1));
    assert_eq!(send(&app, get("/me", &token)).await.status, 200);
    assert_eq!(idp.fetches(), 3);

    // A configured cool-down is honoured too.
    let jwt = oidc(&idp, &clock)
        .unknown_kid_cooldown(Duration::from_secs(300))
        .build()
        .await
        .unwrap();
    let app = test::init_service(app_for(jwt)).await;
    let fetched = idp.fetches();
    let k3 = Signer::rsa("k3", Algorithm::RS256, RSA2_PRIVATE);
    clock.advance(Duration::from_secs(299));
    let token = k3.sign(&claims(&idp, &clock, "carol"));
    assert_401(&send(&app, get("/me", &token)).await, &token, &idp, "k3");
    assert_eq!(idp.fetches(), fetched);
}

#[actix_rt::test]
async fn a_flood_of_forged_kids_is_bounded() {
    let k1 = Signer::rsa("k1", Algorithm::RS256, RSA_PRIVATE);
    let idp = Idp::start(vec![k1.jwk.clone()]);
    let clock = clock();
    let jwt = oidc(&idp, &clock).build().await.unwrap();
    let app = test::init_service(app_for(jwt.clone())).await;
    let start = idp.jwks_fetches();
    let mut bodies = Vec::new();
    // Forged tokens: a real token's payload and signature under a header naming another
    // key (they are refused before any signature check; RSA signing is slow unoptimised).
    let real = k1.sign(&claims(&idp, &clock, "mallory"));
    let (_, rest) = real.split_once('.').unwrap();
    let forge = |kid: &str| {
        let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": kid}).to_string();
        let header =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header);
        format!("{header}.{rest}")
    };
    // 10 bursts of 50 concurrent requests, each naming a kid of its own, 10 s apart:
    // 90 s in all, so at most one fetch per 30 s cool-down (at 30, 60 and 90 s).
    for burst in 0..10 {
        let tokens: Vec<(String, String)> = (0..50)
            .map(|i| {
                let kid = format!("forged-{burst}-{i}");
                let token = forge(&kid);
                (kid, token)
            })
            .collect();
        // Each from an address of its own: the app's rate limit is not what is tested.
        let replies = join_all(tokens.iter().enumerate().map(|(i, (_, t))| {
            let peer = format!("198.51.{burst}.{i}:1000").parse().unwrap();
            send(&app, get("/me", t).peer_addr(peer))
        }))
        .await;
        for ((kid, token), r) in tokens.iter().zip(&replies) {
            bodies.push(assert_401(r, token, &idp, kid));
        }
        clock.advance(Duration::from_secs(10));
    }
    let fetched = idp.jwks_fetches() - start;
    assert!(
        (1..=3).contains(&fetched),
        "{fetched} fetches for 500 forged kids over 90 s"
    );
    assert_eq!(idp.discovery_fetches(), 1, "discovery is not repeated");
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "one 401 for all");
    // The real key still works.
    let token = k1.sign(&claims(&idp, &clock, "alice"));
    assert_eq!(send(&app, get("/me", &token)).await.status, 200);
}

#[actix_rt::test]
async fn the_provider_down_garbage_oversized_or_slow_keeps_the_cached_keys() {
    let k1 = Signer::rsa("k1", Algorithm::RS256, RSA_PRIVATE);
    let idp = Idp::start(vec![k1.jwk.clone()]);
    let clock = clock();
    let jwt = oidc(&idp, &clock)
        .max_response_bytes(16 * 1024)
        .build()
        .await
        .unwrap();
    let keys = jwt.provider_keys().unwrap();
    let app = test::init_service(app_for(jwt.clone())).await;
    let cases = [
        (Mode::Down, FetchError::Status(503)),
        (Mode::Garbage, FetchError::Malformed("not JSON")),
        (
            Mode::Oversized(64 * 1024),
            FetchError::TooLarge { limit: 16 * 1024 },
        ),
        (Mode::Slow(Duration::from_secs(3)), FetchError::Timeout),
    ];
    for (n, (mode, error)) in cases.into_iter().enumerate() {
        idp.set_jwks_mode(mode);
        clock.advance(Duration::from_secs(60));
        let status = keys.refresh().await;
        assert_eq!(status.failures, n as u32 + 1, "{mode:?}");
        let expected = ProviderError::Fetch {
            url: idp.jwks_url(),
            error,
        };
        assert_eq!(status.last_error, Some(expected.to_string()), "{mode:?}");
        assert_eq!(status.key_ids, ["k1"], "{mode:?}: the cached keys stay");
        // The cached keys still verify.
        let token = k1.sign(&claims(&idp, &clock, "alice"));
        let r = send(&app, get("/me", &token)).await;
        assert_eq!(r.status, 200, "{mode:?}: {}", r.text());
    }
    // After a failure the next attempt reads the discovery document again (the JWK set
    // may have moved); the provider back, the set is fresh again.
    let discovered = idp.discovery_fetches();
    idp.set_jwks_mode(Mode::Normal);
    let status = keys.refresh().await;
    assert_eq!((status.failures, status.last_error), (0, None));
    assert_eq!(idp.discovery_fetches(), discovered + 1);

    // A discovery document that goes bad later also keeps the keys.
    idp.set_discovery_mode(Mode::Garbage);
    idp.set_jwks_mode(Mode::Down);
    let status = keys.refresh().await;
    assert_eq!(status.failures, 1);
    let status = keys.refresh().await;
    assert_eq!(status.failures, 2);
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap()
            .contains("openid-configuration"),
        "{status:?}"
    );
    let token = k1.sign(&claims(&idp, &clock, "alice"));
    assert_eq!(send(&app, get("/me", &token)).await.status, 200);
}

#[actix_rt::test]
async fn a_failed_refresh_retries_after_the_cooldown_not_at_once() {
    let k1 = Signer::rsa("k1", Algorithm::RS256, RSA_PRIVATE);
    let idp = Idp::start(vec![k1.jwk.clone()]);
    let clock = clock();
    let jwt = oidc(&idp, &clock).build().await.unwrap();
    let keys = jwt.provider_keys().unwrap();
    let app = test::init_service(app_for(jwt.clone())).await;
    idp.set_jwks_mode(Mode::Down);
    // The schedule falls due; a request asks for the refresh, which fails.
    clock.advance(Duration::from_secs(10 * 60));
    let before = keys.status().refreshes;
    let token = k1.sign(&claims(&idp, &clock, "alice"));
    assert_eq!(send(&app, get("/me", &token)).await.status, 200);
    refreshed_after(&jwt, before).await;
    let status = keys.status();
    assert_eq!(status.failures, 1);
    // Retried after the cool-down (30 s), then doubling.
    assert_eq!(status.next_refresh_in, Duration::from_secs(30));
    let fetched = idp.jwks_fetches();
    for _ in 0..10 {
        assert_eq!(send(&app, get("/me", &token)).await.status, 200);
    }
    assert_eq!(idp.jwks_fetches(), fetched, "no retry before it is due");
    clock.advance(Duration::from_secs(30));
    assert_eq!(send(&app, get("/me", &token)).await.status, 200);
    refreshed_after(&jwt, before + 1).await;
    assert_eq!(keys.status().next_refresh_in, Duration::from_secs(60));
}

#[actix_rt::test]
async fn the_schedule_honours_max_age_within_bounds() {
    let k1 = Signer::rsa("k1", Algorithm::RS256, RSA_PRIVATE);
    let idp = Idp::start(vec![k1.jwk.clone()]);
    let clock = clock();
    for (cache_control, next) in [
        (Some("public, max-age=120"), 120),
        (Some("max-age=5"), 60),
        (Some("max-age=999999999"), 24 * 60 * 60),
        (Some("no-store"), 10 * 60),
        (None, 10 * 60),
    ] {
        idp.set_cache_control(cache_control);
        let jwt = oidc(&idp, &clock).build().await.unwrap();
        let status = jwt.provider_keys().unwrap().status();
        assert_eq!(
            status.next_refresh_in,
            Duration::from_secs(next),
            "{cache_control:?}"
        );
    }
    // Configured bounds and interval.
    idp.set_cache_control(Some("max-age=5"));
    let jwt = oidc(&idp, &clock)
        .refresh_bounds(Duration::from_secs(2), Duration::from_secs(3600))
        .build()
        .await
        .unwrap();
    assert_eq!(
        jwt.provider_keys().unwrap().status().next_refresh_in,
        Duration::from_secs(5)
    );
    idp.set_cache_control(None);
    let jwt = oidc(&idp, &clock)
        .refresh_interval(Duration::from_secs(90))
        .build()
        .await
        .unwrap();
    assert_eq!(
        jwt.provider_keys().unwrap().status().next_refresh_in,
        Duration::from_secs(90)
    );
    // Due: the next request asks for a refresh.
    let app = test::init_service(app_for(jwt.clone())).await;
    let fetched = idp.jwks_fetches();
    clock.advance(Duration::from_secs(89));
    let token = k1.sign(&claims(&idp, &clock, "alice"));
    assert_eq!(send(&app, get("/me", &token)).await.status, 200);
    assert_eq!(idp.jwks_fetches(), fetched, "not due yet");
    clock.advance(Duration::from_secs(1));
    let before = jwt.provider_keys().unwrap().status().refreshes;
    assert_eq!(send(&app, get("/me", &token)).await.status, 200);
    refreshed_after(&jwt, before).await;
    assert_eq!(idp.jwks_fetches(), fetched + 1);
}

#[actix_rt::test]
async fn max_stale_stops_serving_old_keys() {
    let k1 = Signer::rsa("k1", Algorithm::RS256, RSA_PRIVATE);
    let idp = Idp::start(vec![k1.jwk.clone()]);
    let clock = clock();
    let jwt = oidc(&idp, &clock)
        .max_stale(Duration::from_secs(3600))
        .build()
        .await
        .unwrap();
    let keys = jwt.provider_keys().unwrap();
    let app = test::init_service(app_for(jwt.clone())).await;
    idp.set_jwks_mode(Mode::Down);
    clock.advance(Duration::from_secs(3600));
    assert_eq!(keys.refresh().await.failures, 1);
    let token = k1.sign(&claims(&idp, &clock, "alice"));
    assert_eq!(send(&app, get("/me", &token)).await.status, 200, "not yet");
    clock.advance(Duration::from_secs(1));
    let token = k1.sign(&claims(&idp, &clock, "alice"));
    assert_401(&send(&app, get("/me", &token)).await, &token, &idp, "k1");
    idp.set_jwks_mode(Mode::Normal);
    assert_eq!(keys.refresh().await.failures, 0);
    assert_eq!(send(&app, get("/me", &token)).await.status, 200);
}

#[actix_rt::test]
async fn start_up_fails_clearly() {
    let k1 = Signer::rsa("k1", Algorithm::RS256, RSA_PRIVATE);
    let idp = Idp::start(vec![k1.jwk.clone()]);
    let clock = clock();
    let discovery = format!("{}/.well-known/openid-configuration", idp.issuer);
    let cases = [
        (Mode::Down, FetchError::Status(503)),
        (Mode::Garbage, FetchError::Malformed("not JSON")),
        (
            Mode::Oversized(64 * 1024),
            FetchError::TooLarge { limit: 16 * 1024 },
        ),
        (Mode::Slow(Duration::from_secs(3)), FetchError::Timeout),
    ];
    for (mode, error) in cases.clone() {
        idp.set_discovery_mode(mode);
        let err = oidc(&idp, &clock)
            .max_response_bytes(16 * 1024)
            .build()
            .await
            .unwrap_err();
        assert_eq!(
            err,
            ProviderError::Fetch {
                url: discovery.clone(),
                error: error.clone()
            }
        );
        assert!(err.to_string().contains(&discovery), "{err}");
    }
    idp.set_discovery_mode(Mode::Normal);
    for (mode, error) in cases {
        idp.set_jwks_mode(mode);
        let err = oidc(&idp, &clock)
            .max_response_bytes(16 * 1024)
            .build()
            .await
            .unwrap_err();
        assert_eq!(
            err,
            ProviderError::Fetch {
                url: idp.jwks_url(),
                error
            }
        );
    }
    idp.set_jwks_mode(Mode::Normal);

    // The discovery document must name the configured issuer exactly.
    for other in [
        format!("{}/", idp.issuer),
        idp.issuer.to_uppercase(),
        "https://evil.example.com/realms/test".to_owned(),
    ] {
        idp.set_document_issuer(&other);
        let err = oidc(&idp, &clock).build().await.unwrap_err();
        assert_eq!(
            err,
            ProviderError::IssuerMismatch {
                expected: idp.issuer.clone(),
                found: other
            }
        );
    }
    idp.set_document_issuer(&idp.issuer);

    // A JWK set with nothing usable: only an HMAC key.
    idp.set_keys(vec![
        json!({"kty": "oct", "kid": "h", "alg": "HS256", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}),
    ]);
    let err = oidc(&idp, &clock).build().await.unwrap_err();
    match &err {
        ProviderError::NoUsableKeys { url, refused } => {
            assert_eq!(url, &idp.jwks_url());
            assert_eq!(refused.len(), 1);
            assert!(refused[0].contains("HMAC"), "{refused:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[actix_rt::test]
async fn start_up_can_wait_for_the_provider() {
    let k1 = Signer::rsa("k1", Algorithm::RS256, RSA_PRIVATE);
    let idp = Idp::start(vec![k1.jwk.clone()]);
    let clock = clock();
    // Two 503s, then the documents: fail-fast gives up at the first...
    idp.fail_next(2);
    let err = oidc(&idp, &clock).build().await.unwrap_err();
    assert!(matches!(
        err,
        ProviderError::Fetch {
            error: FetchError::Status(503),
            ..
        }
    ));
    assert_eq!(idp.fetches(), 1);
    // ...waiting retries until the keys come.
    let jwt = oidc(&idp, &clock)
        .startup(Startup::WaitFor(Duration::from_secs(30)))
        .build()
        .await
        .unwrap();
    assert_eq!(
        idp.fetches(),
        1 + 3,
        "one more 503, then discovery and the key set"
    );
    assert_eq!(jwt.provider_keys().unwrap().status().fetches, 3);
    // A wait that ends reports the last failure.
    idp.set_jwks_mode(Mode::Down);
    let err = oidc(&idp, &clock)
        .startup(Startup::WaitFor(Duration::from_millis(300)))
        .build()
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ProviderError::Fetch {
            url: idp.jwks_url(),
            error: FetchError::Status(503)
        }
    );
}

#[actix_rt::test]
async fn only_https_issuers_except_loopback_http() {
    for (url, problem) in [
        ("http://idp.example.com/realms/x", "only https"),
        ("http://10.0.0.8/", "only https"),
        ("ftp://127.0.0.1/", "only https"),
        ("https://user:pw@idp.example.com/", "user name or password"),
        ("https://idp.example.com/?tenant=x", "no query"),
        ("idp.example.com", "not an absolute URL"),
    ] {
        let err = JwtAuth::oidc(url)
            .audience(AUDIENCE)
            .build()
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ProviderError::InvalidUrl { url: u, .. } if u == url),
            "{url}: {err:?}"
        );
        assert!(err.to_string().contains(problem), "{url}: {err}");
    }
    let err = JwtAuth::jwks("http://keys.example.com/jwks.json")
        .issuer("https://idp.example.com/")
        .audience(AUDIENCE)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::InvalidUrl { .. }), "{err:?}");
    // Configuration mistakes, before any network.
    let k1 = Signer::rsa("k1", Algorithm::RS256, RSA_PRIVATE);
    let idp = Idp::start(vec![k1.jwk.clone()]);
    let clock = clock();
    let missing_audience = JwtAuth::oidc(&idp.issuer).build().await.unwrap_err();
    assert!(matches!(missing_audience, ProviderError::Config(_)));
    let hs = oidc(&idp, &clock)
        .algorithms([Algorithm::HS256])
        .build()
        .await
        .unwrap_err();
    assert_eq!(hs, ProviderError::UnsupportedAlgorithm(Algorithm::HS256));
    let pointer = oidc(&idp, &clock)
        .roles_claim("realm_access.roles")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(pointer, ProviderError::BadClaimPointer(_)));
    let issuer = oidc(&idp, &clock)
        .issuer("https://other.example.com/")
        .build()
        .await
        .unwrap_err();
    assert_eq!(issuer, ProviderError::ConflictingIssuer);
    let no_issuer = JwtAuth::jwks(idp.jwks_url())
        .audience(AUDIENCE)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(no_issuer, ProviderError::Config(_)));
    assert_eq!(
        idp.fetches(),
        0,
        "nothing was fetched for a bad configuration"
    );

    // `localhost` and `[::1]`-style loopback issuers are fine (IPv4 here).
    let jwt = JwtAuth::jwks(idp.jwks_url().replace("127.0.0.1", "localhost"))
        .issuer(&idp.issuer)
        .audience(AUDIENCE)
        .clock(Arc::new(clock.clone()))
        .refresh_clock(Arc::new(clock.clone()))
        .build()
        .await
        .unwrap();
    assert_eq!(idp.discovery_fetches(), 0, "jwks(url) does no discovery");
    let token = k1.sign(&claims(&idp, &clock, "alice"));
    assert_eq!(jwt.verify(&token).await.unwrap().subject, "alice");
}

#[actix_rt::test]
async fn hmac_keys_and_mismatched_algorithms_are_refused() {
    const SECRET: &[u8] = b"secret-secret-secret-secret-secret";
    let rs = Signer::rsa("rsa-sig", Algorithm::RS256, RSA_PRIVATE);
    let es = Signer::ec("ec-sig");
    let hmac_jwk = json!({
        "kty": "oct", "kid": "hmac-key", "alg": "HS256", "use": "sig",
        "k": base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, SECRET),
    });
    let mut enc = Signer::rsa("rsa-enc", Algorithm::RS256, RSA2_PRIVATE).jwk;
    enc["use"] = json!("rsa-enc");
    let idp = Idp::start(vec![rs.jwk.clone(), es.jwk.clone(), hmac_jwk, enc]);
    let clock = clock();
    let jwt = oidc(&idp, &clock).build().await.unwrap();
    assert_eq!(
        jwt.provider_keys().unwrap().status().key_ids,
        ["ec-sig", "rsa-sig"]
    );
    let app = test::init_service(app_for(jwt)).await;
    let c = claims(&idp, &clock, "mallory");
    let hs = |kid: &str| {
        let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
        header.kid = Some(kid.to_owned());
        header.typ = Some("at+jwt".to_owned());
        jsonwebtoken::encode(&header, &c, &jsonwebtoken::EncodingKey::from_secret(SECRET)).unwrap()
    };
    let rsa2 = Signer::rsa("rsa-enc", Algorithm::RS256, RSA2_PRIVATE);
    let cases = [
        // An HS256 token with the published HMAC key, and with the RSA key as secret.
        ("hmac key", hs("hmac-key"), "hmac-key"),
        ("hs256 naming the rsa key", hs("rsa-sig"), "rsa-sig"),
        // An RSA-signed token naming the refused HMAC key.
        (
            "rs256 naming the hmac key",
            rs.sign_with(Algorithm::RS256, Some("hmac-key"), Some("at+jwt"), &c),
            "hmac-key",
        ),
        // The key's alg is RS256: PS256 with the same RSA key is refused.
        (
            "ps256 with an rs256 key",
            rs.sign_with(Algorithm::PS256, Some("rsa-sig"), Some("at+jwt"), &c),
            "rsa-sig",
        ),
        // A header alg of another key type.
        (
            "es256 naming an rsa key",
            es.sign_with(Algorithm::ES256, Some("rsa-sig"), Some("at+jwt"), &c),
            "rsa-sig",
        ),
        (
            "rs256 naming an ec key",
            rs.sign_with(Algorithm::RS256, Some("ec-sig"), Some("at+jwt"), &c),
            "ec-sig",
        ),
        // A key published for encryption.
        ("an encryption key", rsa2.sign(&c), "rsa-enc"),
        // No kid, with several keys in the set.
        (
            "no kid",
            rs.sign_with(Algorithm::RS256, None, Some("at+jwt"), &c),
            "rsa-sig",
        ),
    ];
    let fetched = idp.fetches();
    for (name, token, kid) in &cases {
        let r = send(&app, get("/me", token)).await;
        assert_eq!(r.status, 401, "{name}: {}", r.text());
        assert_401(&r, token, &idp, kid);
    }
    assert_eq!(idp.fetches(), fetched, "refused keys ask for no refresh");

    // Allowed algorithms from the configuration: ES256 only refuses the RSA key's tokens.
    let jwt = oidc(&idp, &clock)
        .algorithms([Algorithm::ES256])
        .build()
        .await
        .unwrap();
    assert!(jwt.verify(&rs.sign(&c)).await.is_err());
    assert_eq!(jwt.verify(&es.sign(&c)).await.unwrap().subject, "mallory");
}

#[actix_rt::test]
async fn issuer_audience_typ_and_lifetime_claims() {
    let k1 = Signer::rsa("k1", Algorithm::RS256, RSA_PRIVATE);
    let idp = Idp::start(vec![k1.jwk.clone()]);
    let clock = clock();
    let jwt = oidc(&idp, &clock).build().await.unwrap();
    let app = test::init_service(app_for(jwt)).await;
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims(&idp, &clock, "alice");
        f(&mut c);
        k1.sign(&c)
    };
    let ok = [
        (
            "aud array",
            with(&|c| c["aud"] = json!(["account", AUDIENCE])),
        ),
        (
            "float times",
            with(&|c| c["exp"] = json!(c["exp"].as_u64().unwrap() as f64 + 0.5)),
        ),
        (
            "no jti",
            with(&|c| drop(c.as_object_mut().unwrap().remove("jti"))),
        ),
    ];
    for (name, token) in &ok {
        let r = send(&app, get("/me", token)).await;
        assert_eq!(r.status, 200, "{name}: {}", r.text());
    }
    let now = clock.unix_secs();
    let bad = [
        (
            "wrong iss",
            with(&|c| c["iss"] = json!("https://evil.example.com/realms/test")),
        ),
        (
            "iss with a trailing slash",
            with(&|c| c["iss"] = json!(format!("{}/", idp.issuer))),
        ),
        (
            "aud array without ours",
            with(&|c| c["aud"] = json!(["account", "other"])),
        ),
        ("wrong aud", with(&|c| c["aud"] = json!("account"))),
        (
            "expired",
            with(&|c| {
                c["iat"] = json!(now - 600);
                c["exp"] = json!(now - 60)
            }),
        ),
        ("not yet valid", with(&|c| c["nbf"] = json!(now + 60))),
        ("16 minutes", with(&|c| c["exp"] = json!(now + 16 * 60))),
        (
            "no iat",
            with(&|c| drop(c.as_object_mut().unwrap().remove("iat"))),
        ),
        (
            "no sub",
            with(&|c| drop(c.as_object_mut().unwrap().remove("sub"))),
        ),
        ("empty sub", with(&|c| c["sub"] = json!(""))),
        ("exp as text", with(&|c| c["exp"] = json!("tomorrow"))),
        (
            "typ JWT",
            k1.sign_with(
                Algorithm::RS256,
                Some("k1"),
                Some("JWT"),
                &claims(&idp, &clock, "alice"),
            ),
        ),
        (
            "no typ",
            k1.sign_with(
                Algorithm::RS256,
                Some("k1"),
                None,
                &claims(&idp, &clock, "alice"),
            ),
        ),
    ];
    for (name, token) in &bad {
        let r = send(&app, get("/me", token)).await;
        assert_eq!(r.status, 401, "{name}: {}", r.text());
        assert_401(&r, token, &idp, "k1");
    }

    // `typ: JWT` and no typ, when configured; other types still refused.
    let jwt = oidc(&idp, &clock)
        .typ(TokenTyp::AccessTokenOrJwt)
        .build()
        .await
        .unwrap();
    let c = claims(&idp, &clock, "alice");
    for typ in [
        Some("JWT"),
        None,
        Some("at+jwt"),
        Some("application/at+jwt"),
    ] {
        let token = k1.sign_with(Algorithm::RS256, Some("k1"), typ, &c);
        assert!(jwt.verify(&token).await.is_ok(), "{typ:?}");
    }
    for typ in ["id_token+jwt", "logout+jwt", "JOSE"] {
        let token = k1.sign_with(Algorithm::RS256, Some("k1"), Some(typ), &c);
        assert!(jwt.verify(&token).await.is_err(), "{typ:?}");
    }

    // A raised lifetime cap.
    let jwt = oidc(&idp, &clock)
        .max_lifetime(Duration::from_secs(3600))
        .build()
        .await
        .unwrap();
    let hour = with(&|c| c["exp"] = json!(now + 3600));
    assert!(jwt.verify(&hour).await.is_ok());
    let longer = with(&|c| c["exp"] = json!(now + 3601));
    assert!(jwt.verify(&longer).await.is_err());

    // A jti, when required.
    let jwt = oidc(&idp, &clock).require_jti(true).build().await.unwrap();
    assert!(jwt.verify(&ok[2].1).await.is_err());
    assert!(jwt.verify(&ok[0].1).await.is_ok());
}

#[actix_rt::test]
async fn scopes_as_a_string_and_as_an_array_are_permissions() {
    let k1 = Signer::rsa("k1", Algorithm::RS256, RSA_PRIVATE);
    let idp = Idp::start(vec![k1.jwk.clone()]);
    let clock = clock();
    let jwt = oidc(&idp, &clock).build().await.unwrap();
    let app = test::init_service(app_for(jwt)).await;
    let with = |key: &str, value: Value| {
        let mut c = claims(&idp, &clock, "alice");
        c[key] = value;
        k1.sign(&c)
    };
    for token in [
        with("scope", json!("openid profile read:users")),
        with("scp", json!(["profile", "read:users"])),
        with("scp", json!("read:users write:users")),
    ] {
        let r = send(&app, get("/users", &token)).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // Without the scope: 403, and the challenge names it (RFC 6750 §3).
    let token = with("scope", json!("openid profile"));
    let r = send(&app, get("/users", &token)).await;
    r.assert_problem(403, "forbidden");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"api\", error=\"insufficient_scope\", scope=\"read:users\"")
    );
    r.assert_leaks_none(&["openid", "profile", "k1", &idp.issuer]);
    let r = send(&app, get("/me", &token)).await;
    assert_eq!(r.json()["permissions"], json!(["openid", "profile"]));

    // Scopes not read as permissions, when so configured.
    let jwt = oidc(&idp, &clock)
        .scopes_as_permissions(false)
        .build()
        .await
        .unwrap();
    let app = test::init_service(app_for(jwt)).await;
    let token = with("scope", json!("read:users"));
    assert_eq!(send(&app, get("/users", &token)).await.status, 403);
}

#[actix_rt::test]
async fn keycloak_and_auth0_role_claims_and_the_tier() {
    let k1 = Signer::rsa("k1", Algorithm::RS256, RSA_PRIVATE);
    let idp = Idp::start(vec![k1.jwk.clone()]);
    let clock = clock();
    let jwt = oidc(&idp, &clock)
        .roles_claim("/realm_access/roles")
        .roles_claim("/resource_access/orders-api/roles")
        .roles_claim(claim_pointer(["https://example.com/roles"]))
        .permissions_claim("/permissions")
        .tier_claim(claim_pointer(["https://example.com/plan"]))
        .build()
        .await
        .unwrap();
    let app = test::init_service(app_for(jwt)).await;
    let with = |extra: Value| {
        let mut c = claims(&idp, &clock, "alice");
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        k1.sign(&c)
    };
    // Keycloak: realm roles and the client's roles.
    let keycloak = with(json!({
        "realm_access": {"roles": ["admin", "offline_access"]},
        "resource_access": {
            "orders-api": {"roles": ["orders-admin"]},
            "other-client": {"roles": ["superuser"]},
        },
    }));
    assert_eq!(send(&app, get("/admin", &keycloak)).await.status, 200);
    assert_eq!(send(&app, get("/orders", &keycloak)).await.status, 200);
    let r = send(&app, get("/me", &keycloak)).await;
    assert_eq!(
        r.json()["roles"],
        json!(["admin", "offline_access", "orders-admin"]),
        "another client's roles are not ours"
    );
    // Roles of another client only: 403 (a role is never named in the challenge).
    let other = with(json!({"resource_access": {"other-client": {"roles": ["orders-admin"]}}}));
    let r = send(&app, get("/orders", &other)).await;
    r.assert_problem(403, "forbidden");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"api\", error=\"insufficient_scope\"")
    );
    // Auth0: a namespaced roles claim, RBAC permissions and a namespaced tier.
    let auth0 = with(json!({
        "https://example.com/roles": ["orders-admin"],
        "https://example.com/plan": "premium",
        "permissions": ["read:users"],
    }));
    assert_eq!(send(&app, get("/orders", &auth0)).await.status, 200);
    assert_eq!(send(&app, get("/users", &auth0)).await.status, 200);
    assert_eq!(send(&app, get("/admin", &auth0)).await.status, 403);
    let profile = send(&app, get("/me", &auth0)).await.json();
    assert_eq!(profile["tier"], "premium");
    assert_eq!(profile["roles"], json!(["orders-admin"]));
    // Roles in the wrong shape give nothing.
    let odd = with(json!({"realm_access": {"roles": {"admin": true}}}));
    assert_eq!(send(&app, get("/admin", &odd)).await.status, 403);
}

#[actix_rt::test]
async fn dropping_the_verifier_stops_its_thread() {
    let k1 = Signer::rsa("k1", Algorithm::RS256, RSA_PRIVATE);
    let idp = Idp::start(vec![k1.jwk.clone()]);
    let clock = clock();
    let jwt = oidc(&idp, &clock).build().await.unwrap();
    let keys = jwt.provider_keys().unwrap();
    drop(jwt);
    // The handle outlives the verifier; a refresh asked of it now fetches nothing.
    let fetched = idp.fetches();
    clock.advance(Duration::from_secs(3600));
    let status = keys.refresh().await;
    assert_eq!(status.key_ids, ["k1"]);
    actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(idp.fetches(), fetched);
}

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

#[actix_rt::test]
async fn the_example_verifies_provider_tokens_when_oidc_issuer_is_set() {
    use secure_api_runtime::auth::password::Passwords;
    use users_api::{OidcSettings, Settings, SetupError, Stores};

    // No OIDC_ISSUER: the example is as before.
    let plain = Settings::from_vars(vars(&[])).unwrap();
    assert_eq!(plain.oidc, None);
    assert_eq!(
        plain.provider_jwt(&Stores::Memory).await.unwrap().map(drop),
        None
    );

    let k1 = Signer::rsa("k1", Algorithm::RS256, RSA_PRIVATE);
    let idp = Idp::start(vec![k1.jwk.clone()]);
    let env = [
        ("OIDC_ISSUER", idp.issuer.as_str()),
        ("OIDC_AUDIENCE", "users-api"),
        (
            "OIDC_ROLES_CLAIM",
            "/realm_access/roles, /resource_access/users-api/roles",
        ),
        ("OIDC_TYP", "jwt"),
    ];
    let settings = Settings::from_vars(vars(&env)).unwrap();
    assert_eq!(
        settings.oidc,
        Some(OidcSettings {
            issuer: idp.issuer.clone(),
            audience: "users-api".to_owned(),
            roles_claims: vec![
                "/realm_access/roles".to_owned(),
                "/resource_access/users-api/roles".to_owned()
            ],
            accept_jwt_typ: true,
        })
    );
    let jwt = settings
        .provider_jwt(&Stores::Memory)
        .await
        .unwrap()
        .unwrap();
    let passwords = Passwords::with_params(1024, 1, 1).unwrap();
    let (secure, state) =
        users_api::build_with(&settings, &Stores::Memory, Some(jwt), passwords, "unused").unwrap();
    let app = test::init_service(
        App::new()
            .app_data(state)
            .wrap(secure.layer())
            .configure(users_api::provider_routes),
    )
    .await;
    // Keycloak-style tokens: `typ: JWT`, realm and client roles, real time.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = |sub: &str, roles: &[&str]| {
        k1.sign_with(
            Algorithm::RS256,
            Some("k1"),
            Some("JWT"),
            &json!({
                "iss": idp.issuer, "aud": ["account", "users-api"], "sub": sub,
                "iat": now, "exp": now + 300, "typ": "Bearer",
                "realm_access": {"roles": roles},
                "resource_access": {"users-api": {"roles": ["reader"]}},
                "scope": "openid profile",
            }),
        )
    };
    let bob = token("bob", &["user"]);
    let r = send(&app, get("/api/me", &bob)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["subject"], "bob");
    assert_eq!(r.json()["roles"], json!(["user", "reader"]));
    assert_eq!(r.json()["permissions"], json!(["openid", "profile"]));
    // Login, refresh and logout are the provider's: not mounted here.
    for path in ["/api/login", "/api/token/refresh", "/api/logout"] {
        let r = send(
            &app,
            test::TestRequest::post()
                .uri(path)
                .insert_header(("content-type", "application/json"))
                .set_payload(r#"{"username": "alice", "password": "x"}"#),
        )
        .await;
        r.assert_problem(404, "not-found");
    }
    // Roles from the provider decide: bob is no admin; an admin deletes bob, whose tokens
    // are refused from then on.
    let r = send(&app, get("/api/users/bob", &bob)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let delete = |t: &str| {
        test::TestRequest::delete()
            .uri("/api/users/bob")
            .peer_addr("192.0.2.10:1000".parse().unwrap())
            .insert_header((header::AUTHORIZATION, format!("Bearer {t}")))
    };
    send(&app, delete(&bob))
        .await
        .assert_problem(403, "forbidden");
    let ada = token("ada", &["admin"]);
    assert_eq!(send(&app, delete(&ada)).await.status, 204);
    assert_401(&send(&app, get("/api/me", &bob)).await, &bob, &idp, "k1");
    // Without OIDC_TYP=jwt, Keycloak's `typ: JWT` is refused.
    let strict = Settings::from_vars(vars(&env[..3])).unwrap();
    let jwt = strict.provider_jwt(&Stores::Memory).await.unwrap().unwrap();
    assert!(jwt.verify(&ada).await.is_err());

    // Settings that cannot work are refused, saying why.
    let err = Settings::from_vars(vars(&env[..1])).unwrap_err();
    assert!(
        matches!(err, SetupError::Invalid("OIDC_AUDIENCE", _)),
        "{err}"
    );
    let err = Settings::from_vars(vars(&[
        env[0],
        env[1],
        ("OIDC_ROLES_CLAIM", "realm_access.roles"),
    ]))
    .unwrap_err();
    assert!(err.to_string().contains("JSON Pointer"), "{err}");
    let err = Settings::from_vars(vars(&[env[0], env[1], ("OIDC_TYP", "id")])).unwrap_err();
    assert!(matches!(err, SetupError::Invalid("OIDC_TYP", _)), "{err}");
    let remote = Settings::from_vars(vars(&[
        ("OIDC_ISSUER", "http://idp.example.com/realms/acme"),
        ("OIDC_AUDIENCE", "users-api"),
    ]))
    .unwrap();
    let err = remote.provider_jwt(&Stores::Memory).await.unwrap_err();
    assert!(err.to_string().contains("only https"), "{err}");
    idp.set_document_issuer("https://evil.example.com/");
    let err = settings.provider_jwt(&Stores::Memory).await.unwrap_err();
    assert!(err.to_string().contains("evil.example.com"), "{err}");
}

/// A provider whose certificate a private CA issued: trusted with that CA as the only root,
/// refused with the public roots or another CA, and the fetch fails before any request.
#[actix_rt::test]
async fn a_provider_behind_a_private_ca_is_trusted_only_through_root_certificates() {
    use https_idp::{CA_PEM, HttpsIdp, OTHER_CA_PEM};
    use std::sync::atomic::Ordering;

    let k1 = Signer::rsa("k1", Algorithm::RS256, RSA_PRIVATE);
    let idp = HttpsIdp::start(vec![k1.jwk.clone()]);
    let clock = clock();
    let builder = || {
        JwtAuth::oidc(&idp.issuer)
            .audience(AUDIENCE)
            .clock(Arc::new(clock.clone()))
            .refresh_clock(Arc::new(clock.clone()))
            .fetch_timeout(Duration::from_secs(5))
    };

    // The public roots (the default) and another private CA: the handshake fails.
    for (roots, what) in [
        (None, "the web PKI roots"),
        (Some(OTHER_CA_PEM), "another CA"),
    ] {
        let b = builder();
        let b = match roots {
            Some(pem) => b.root_certificates(pem),
            None => b,
        };
        let err = b.build().await.expect_err(what);
        let ProviderError::Fetch { url, error } = &err else {
            panic!("{what}: {err:?}");
        };
        assert!(url.ends_with("/.well-known/openid-configuration"), "{url}");
        let FetchError::Transport(why) = error else {
            panic!("{what}: {error:?}");
        };
        assert!(why.contains("UnknownIssuer"), "{what}: {why}");
    }
    // The server counts a refused handshake once it reads the client's alert: waited for.
    for _ in 0..500 {
        if idp.failed_handshakes.load(Ordering::SeqCst) >= 2 {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(idp.failed_handshakes.load(Ordering::SeqCst), 2);
    let requests = idp.requests.load(Ordering::SeqCst);
    assert_eq!(requests, 0, "no request was sent");

    // The CA that issued it: discovery and keys over HTTPS, and its tokens verify.
    let jwt = builder().root_certificates(CA_PEM).build().await.unwrap();
    assert_eq!(idp.requests.load(Ordering::SeqCst), 2);
    assert_eq!(jwt.provider_keys().unwrap().status().key_ids, ["k1"]);
    let token = k1.sign(&json!({
        "iss": idp.issuer, "aud": AUDIENCE, "sub": "alice",
        "iat": T0_SECS, "nbf": T0_SECS, "exp": T0_SECS + 300,
    }));
    assert_eq!(jwt.verify(&token).await.unwrap().subject, "alice");
}

/// A root bundle that cannot serve is refused at build, before any fetch, and says why.
#[actix_rt::test]
async fn root_certificates_that_cannot_serve_are_refused_at_build() {
    use https_idp::{CA_PEM, SERVER_KEY};

    let garbage_cert = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let mut with_key = CA_PEM.to_vec();
    with_key.extend_from_slice(SERVER_KEY);
    let cases: [(&[u8], &str); 4] = [
        (b"", "no CERTIFICATE block"),
        (b"not a pem at all", "no CERTIFICATE block"),
        (
            garbage_cert,
            "certificate 1 cannot be read as a trust anchor",
        ),
        (&with_key, "private key"),
    ];
    for (pem, why) in cases {
        // An issuer nothing listens on: the build must fail before fetching.
        let err = JwtAuth::oidc("https://127.0.0.1:9/realms/none")
            .audience(AUDIENCE)
            .root_certificates(pem)
            .build()
            .await
            .expect_err(why);
        let ProviderError::RootCertificates(message) = &err else {
            panic!("{why}: {err:?}");
        };
        assert!(message.contains(why), "{message}");
        assert!(err.to_string().starts_with("root_certificates: "), "{err}");
    }
}
