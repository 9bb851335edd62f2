//! The example, `users_api`, as several instances on one Redis: two apps built by the
//! example's own `build` from the settings `REDIS_URL`, `KEY_SECRET` and `JWT_SECRET` give it,
//! each with its own connection and its own `SecureApi`, act as one. And the settings
//! themselves: what the example refuses to start with.
//!
//! The Redis tests start their own `redis-server` on a free loopback port
//! (`tests/common/redis_server.rs`); without the binary they print why and pass, unless
//! `CI=true`, where they fail.

mod common;

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/users_api.rs"]
mod users_api;

use std::collections::HashMap;

use users_api::{Settings, SetupError};

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

const JWT_SECRET: &str = "jwt-secret-of-the-users-api-redis-tests-0123";
const KEY_SECRET: &str = "key-secret-of-the-users-api-redis-tests-4567";

#[test]
fn without_redis_the_example_needs_no_setting() {
    let settings = Settings::from_vars(vars(&[])).expect("an empty environment is fine");
    assert!(settings.redis_url.is_none());
    assert!(settings.key_secret.is_none());
    assert_eq!(settings.jwt_secret.len(), 32, "a random secret");
    assert_ne!(
        Settings::from_vars(vars(&[])).unwrap().jwt_secret,
        settings.jwt_secret,
        "random per process"
    );
    // Empty variables count as unset.
    let settings = Settings::from_vars(vars(&[("REDIS_URL", ""), ("KEY_SECRET", "")])).unwrap();
    assert!(settings.redis_url.is_none());
    // Secrets that are set are used, and checked, in memory too.
    let settings = Settings::from_vars(vars(&[
        ("JWT_SECRET", JWT_SECRET),
        ("KEY_SECRET", KEY_SECRET),
    ]))
    .unwrap();
    assert_eq!(settings.jwt_secret, JWT_SECRET.as_bytes());
    assert_eq!(settings.key_secret.as_deref(), Some(KEY_SECRET.as_bytes()));
    assert!(matches!(
        Settings::from_vars(vars(&[("KEY_SECRET", "short")])),
        Err(SetupError::TooShort("KEY_SECRET", 5, 32))
    ));
}

#[test]
fn redis_requires_both_shared_secrets() {
    let url = ("REDIS_URL", "redis://127.0.0.1:6379/");
    let err = Settings::from_vars(vars(&[url, ("JWT_SECRET", JWT_SECRET)])).unwrap_err();
    assert!(matches!(err, SetupError::Missing("KEY_SECRET")), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with("KEY_SECRET is required with REDIS_URL")
            && message.contains("at least 32 random bytes"),
        "{message}"
    );

    let err = Settings::from_vars(vars(&[url, ("KEY_SECRET", KEY_SECRET)])).unwrap_err();
    assert!(matches!(err, SetupError::Missing("JWT_SECRET")), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("JWT_SECRET is required with REDIS_URL")
    );

    let short = "k".repeat(31);
    let err = Settings::from_vars(vars(&[
        url,
        ("JWT_SECRET", JWT_SECRET),
        ("KEY_SECRET", &short),
    ]))
    .unwrap_err();
    assert!(matches!(err, SetupError::TooShort("KEY_SECRET", 31, 32)));
    assert_eq!(
        err.to_string(),
        "KEY_SECRET has 31 bytes; at least 32 random bytes are required (e.g. `openssl rand -hex 32`)"
    );
    assert!(!err.to_string().contains(&short), "never the secret itself");

    let err = Settings::from_vars(vars(&[
        url,
        ("JWT_SECRET", "jwt"),
        ("KEY_SECRET", KEY_SECRET),
    ]))
    .unwrap_err();
    assert!(matches!(err, SetupError::TooShort("JWT_SECRET", 3, 32)));

    let err = Settings::from_vars(vars(&[
        url,
        ("JWT_SECRET", KEY_SECRET),
        ("KEY_SECRET", KEY_SECRET),
    ]))
    .unwrap_err();
    assert!(matches!(err, SetupError::SameSecrets));

    let err = Settings::from_vars(vars(&[
        url,
        ("JWT_SECRET", JWT_SECRET),
        ("KEY_SECRET", KEY_SECRET),
        ("REDIS_TIMEOUT_MS", "soon"),
    ]))
    .unwrap_err();
    assert!(matches!(err, SetupError::Invalid("REDIS_TIMEOUT_MS", _)));

    let settings = Settings::from_vars(vars(&[
        url,
        ("JWT_SECRET", JWT_SECRET),
        ("KEY_SECRET", KEY_SECRET),
        ("REDIS_TIMEOUT_MS", "20"),
    ]))
    .unwrap();
    assert_eq!(settings.redis_url.as_deref(), Some(url.1));
    assert_eq!(settings.redis_key_prefix, "users_api");
    assert_eq!(
        settings.redis_timeout,
        Some(std::time::Duration::from_millis(20))
    );
    // The settings' Debug form holds neither secret.
    let debug = format!("{settings:?}");
    assert!(
        !debug.contains(JWT_SECRET) && !debug.contains(KEY_SECRET),
        "{debug}"
    );
}

#[cfg(feature = "redis")]
#[path = "common/redis_server.rs"]
mod redis_server;

#[cfg(feature = "redis")]
mod on_redis {
    use actix_web::body::MessageBody;
    use actix_web::dev::{Service, ServiceResponse};
    use actix_web::http::header;
    use actix_web::{App, test};
    use secure_api_runtime::auth::password::Passwords;
    use serde_json::{Value, json};

    use super::common::{Reply, send};
    use super::redis_server::RedisServer;
    use super::users_api::{self, Settings, Stores};
    use super::{JWT_SECRET, KEY_SECRET, vars};

    const PASSWORD: &str = "demo-password-of-both-instances";

    /// One instance of the example on `url`: its own settings read from its own
    /// "environment", its own connection, `SecureApi`, token service and login guard.
    async fn instance(
        url: String,
    ) -> impl Service<
        actix_http::Request,
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
    > {
        let settings = Settings::from_vars(vars(&[
            ("REDIS_URL", &url),
            ("JWT_SECRET", JWT_SECRET),
            ("KEY_SECRET", KEY_SECRET),
            // Generous: tests run in parallel on a busy machine.
            ("REDIS_TIMEOUT_MS", "2000"),
        ]))
        .expect("valid settings");
        let stores = settings
            .connect()
            .await
            .expect("connects to the test Redis");
        assert!(matches!(stores, Stores::Redis(_)));
        let (api, state) = users_api::build(
            &settings,
            &stores,
            Passwords::with_params(1024, 1, 1).unwrap(),
            PASSWORD,
        )
        .expect("the example builds");
        test::init_service(
            App::new()
                .app_data(state)
                .wrap(api.layer())
                .configure(users_api::routes),
        )
        .await
    }

    fn create(key: &str, ip: &str) -> test::TestRequest {
        test::TestRequest::post()
            .uri("/api/users")
            .peer_addr(format!("{ip}:4000").parse().unwrap())
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .insert_header(("idempotency-key", key))
            .set_payload(r#"{"username": " Carol ", "email": "CAROL@example.com", "age": 41}"#)
    }

    fn login(username: &str, password: &str, ip: &str) -> test::TestRequest {
        test::TestRequest::post()
            .uri("/api/login")
            .peer_addr(format!("{ip}:4000").parse().unwrap())
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .set_payload(json!({ "username": username, "password": password }).to_string())
    }

    fn bearer(req: test::TestRequest, token: &str) -> test::TestRequest {
        req.peer_addr("198.51.100.9:4000".parse().unwrap())
            .insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
    }

    fn me(token: &str) -> test::TestRequest {
        bearer(test::TestRequest::get().uri("/api/me"), token)
    }

    fn refresh(token: &str) -> test::TestRequest {
        test::TestRequest::post()
            .uri("/api/token/refresh")
            .peer_addr("198.51.100.10:4000".parse().unwrap())
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .set_payload(json!({ "refresh_token": token }).to_string())
    }

    fn tokens(reply: &Reply) -> (String, String) {
        assert_eq!(reply.status, 200, "{}", reply.text());
        let body: Value = reply.json();
        (
            body["access_token"]
                .as_str()
                .expect("an access token")
                .to_owned(),
            body["refresh_token"]
                .as_str()
                .expect("a refresh token")
                .to_owned(),
        )
    }

    macro_rules! server {
        ($test:literal) => {
            match RedisServer::start($test) {
                Some(server) => server,
                None => return,
            }
        };
    }

    #[actix_rt::test]
    async fn a_key_used_on_one_instance_replays_on_the_other() {
        let server = server!("a_key_used_on_one_instance_replays_on_the_other");
        let (a, b) = (instance(server.url()).await, instance(server.url()).await);
        let first = send(&a, create("order-7f3a", "203.0.113.5")).await;
        assert_eq!(first.status, 201, "{}", first.text());
        assert_eq!(first.header("idempotent-replayed"), None);
        let again = send(&b, create("order-7f3a", "203.0.113.5")).await;
        assert_eq!(again.status, 201, "{}", again.text());
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert_eq!(again.body, first.body);
        assert_eq!(again.header("location"), Some("/api/users/carol"));
        // The same key with another body, on either instance, is a conflict, not a replay.
        let other = send(
            &b,
            create("order-7f3a", "203.0.113.5")
                .set_payload(r#"{"username": "dave", "email": "dave@example.com", "age": 5}"#),
        )
        .await;
        other.assert_problem(422, "idempotency-key-reused");
    }

    #[actix_rt::test]
    async fn a_logout_on_one_instance_refuses_the_token_on_the_other() {
        let server = server!("a_logout_on_one_instance_refuses_the_token_on_the_other");
        let (a, b) = (instance(server.url()).await, instance(server.url()).await);
        let (access, refresh_token) =
            tokens(&send(&a, login("alice", PASSWORD, "192.0.2.1")).await);
        let reply = send(&b, me(&access)).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.json()["subject"], "alice");
        // The refresh token of A's login rotates on B (one session store, one refresh key).
        let (access, refresh_token) = {
            let reply = send(&b, refresh(&refresh_token)).await;
            let (new_access, new_refresh) = tokens(&reply);
            assert_ne!(new_refresh, refresh_token);
            (new_access, new_refresh)
        };
        let logout = send(
            &a,
            bearer(test::TestRequest::post().uri("/api/logout"), &access),
        )
        .await;
        assert_eq!(logout.status, 204, "{}", logout.text());
        for app in [&a, &b] {
            send(app, me(&access))
                .await
                .assert_problem(401, "invalid-credentials");
        }
        send(&b, refresh(&refresh_token))
            .await
            .assert_problem(401, "invalid-credentials");
    }

    #[actix_rt::test]
    async fn the_per_account_login_limit_is_shared_by_the_instances() {
        let server = server!("the_per_account_login_limit_is_shared_by_the_instances");
        let (a, b) = (instance(server.url()).await, instance(server.url()).await);
        // Ten failures for bob, alternating instances and from ten addresses (under each
        // address's limit of 5 a minute)...
        for i in 0..10 {
            let app = if i % 2 == 0 { &a } else { &b };
            let reply = send(app, login("bob", "wrong", &format!("192.0.2.{}", 10 + i))).await;
            reply.assert_problem(401, "invalid-credentials");
        }
        // ...throttle the account on both, even with the right password.
        for app in [&a, &b] {
            let reply = send(app, login("bob", PASSWORD, "192.0.2.99")).await;
            reply.assert_problem(429, "rate-limited");
            assert!(reply.header("retry-after").is_some());
        }
        // Another account is not affected.
        tokens(&send(&b, login("alice", PASSWORD, "192.0.2.98")).await);

        // One address gets its 5 attempts a minute once across both instances, not once on
        // each.
        for i in 0..5 {
            let app = if i % 2 == 0 { &a } else { &b };
            let reply = send(app, login("carol", "wrong", "192.0.2.50")).await;
            reply.assert_problem(401, "invalid-credentials");
        }
        for app in [&a, &b] {
            let reply = send(app, login("carol", "wrong", "192.0.2.50")).await;
            reply.assert_problem(429, "rate-limited");
        }
    }
}
