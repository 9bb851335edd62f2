//! The Redis backend against real Redis: every store's contract (the checks the in-memory
//! stores pass too), the key layout, several instances acting as one, faults (Redis killed,
//! restarted, slow) and a three-master Redis Cluster.
//!
//! Each test starts its own `redis-server` on a free loopback port
//! (`tests/common/redis_server.rs`); without the binary the tests print why and pass,
//! unless `CI=true`, where they fail.
#![cfg(feature = "redis")]

mod common;
#[path = "common/conformance.rs"]
mod conformance;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix_web::{App, test};
use common::send;
use conformance::Quota;
use futures_util::future::join_all;
use redis_server::{RedisCluster, RedisServer};
use secure_api_runtime::auth::jwt::{AccessGrant, JwtAuth};
use secure_api_runtime::auth::refresh::{AccountStatus, SessionInfo, TokenService};
use secure_api_runtime::idempotency::memory::NewClaimsWhenFull;
use secure_api_runtime::idempotency::{Claim, Digest, IdempotencyStore};
use secure_api_runtime::prelude::*;
use secure_api_runtime::redis::{BackendError, DEFAULT_TIMEOUT, RedisBackend};
use secure_api_runtime::store::StoreError;
use secure_api_runtime::throttle::{Algorithm, Policy, Rate, RateLimitStore};
use serde_json::json;

/// A standalone server for this test, or return (skipped) without the binaries.
macro_rules! server {
    ($test:literal) => {
        match RedisServer::start($test) {
            Some(server) => server,
            None => return,
        }
    };
}

/// A backend with a generous timeout: tests run in parallel on a busy machine, and only
/// the timeout test measures the default one.
async fn connect(url: &str, prefix: &str) -> RedisBackend {
    RedisBackend::builder()
        .key_prefix(prefix)
        .timeout(Duration::from_secs(2))
        .connect(url)
        .await
        .expect("connects to the test server")
}

fn idempotency_on(backend: &RedisBackend) -> impl Fn(Quota) -> Arc<dyn IdempotencyStore> + '_ {
    move |quota: Quota| {
        Arc::new(
            backend
                .idempotency_store()
                .max_entries_per_client(quota.entries)
                .max_bytes_per_client(quota.bytes)
                .when_full(if quota.reject {
                    NewClaimsWhenFull::Reject
                } else {
                    NewClaimsWhenFull::EvictOldest
                }),
        ) as Arc<dyn IdempotencyStore>
    }
}

/// A synchronous connection for inspecting what the stores wrote.
fn inspect(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .unwrap()
        .get_connection()
        .expect("an inspection connection")
}

/// Every key under `prefix`, with its remaining TTL in ms.
fn keys_with_ttls(url: &str, prefix: &str) -> Vec<(String, i64)> {
    let mut con = inspect(url);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query(&mut con)
        .unwrap();
    keys.into_iter()
        .map(|k| {
            let ttl: i64 = redis::cmd("PTTL").arg(&k).query(&mut con).unwrap();
            (k, ttl)
        })
        .collect()
}

#[actix_rt::test]
async fn every_store_keeps_its_contract_on_redis_and_every_key_has_a_ttl() {
    let server = server!("every_store_keeps_its_contract_on_redis_and_every_key_has_a_ttl");
    let redis = connect(&server.url(), "conformance").await;
    let limiter = redis.rate_limit_store();
    conformance::limiter_gcra(&limiter).await;
    conformance::limiter_window(&limiter).await;
    conformance::limiter_refunds(&limiter).await;
    conformance::limiter_concurrent(&[&limiter]).await;

    let idempotency = redis.idempotency_store();
    conformance::idempotency_lifecycle(&idempotency).await;
    conformance::idempotency_leases(&idempotency).await;
    conformance::idempotency_markers(&idempotency_on(&redis)).await;
    conformance::idempotency_quotas(&idempotency_on(&redis)).await;
    conformance::idempotency_one_winner(&[&idempotency], 64).await;

    let sessions = redis.refresh_store().max_sessions_per_subject(3);
    conformance::refresh_lifecycle(&sessions).await;
    conformance::refresh_subjects(&sessions, 3).await;
    conformance::refresh_one_winner(&[&sessions]).await;

    conformance::revocation_kinds(&redis.revocation_store()).await;

    // Every key is named as documented and has a TTL: Redis holds no state forever.
    let patterns = [
        r"^conformance:rl:[gw]:\{[0-9a-f]{32}\}$",
        r"^conformance:idem:\{[0-9a-f]{64}\}(:[0-9a-f]{64}|#live|#done|#size)$",
        r"^conformance:rt:s:\{[0-9a-f]{32}\}$",
        r"^conformance:rt:u:\{[0-9a-f]{64}\}$",
        r"^conformance:rv:[tsu]:\{[0-9a-f]{64}\}$",
    ]
    .map(|p| regex::Regex::new(p).unwrap());
    let keys = keys_with_ttls(&server.url(), "conformance");
    assert!(keys.len() > 20, "{keys:?}");
    for (key, ttl) in &keys {
        assert!(
            patterns.iter().any(|p| p.is_match(key)),
            "undocumented key {key}"
        );
        assert!(*ttl > 0, "{key} has no TTL ({ttl})");
    }
    for kind in [
        "rl:g", "rl:w", "idem", "rt:s", "rt:u", "rv:t", "rv:s", "rv:u",
    ] {
        assert!(
            keys.iter()
                .any(|(k, _)| k.starts_with(&format!("conformance:{kind}:"))),
            "no {kind} key"
        );
    }
}

#[actix_rt::test]
async fn ttls_end_when_the_state_stops_mattering() {
    let server = server!("ttls_end_when_the_state_stops_mattering");
    let redis = connect(&server.url(), "ttl").await;
    let limiter = redis.rate_limit_store();
    let mut con = inspect(&server.url());
    let pttl = |con: &mut redis::Connection, key: &str| -> i64 {
        redis::cmd("PTTL").arg(key).query(con).unwrap()
    };

    // GCRA: 10/min, burst 10: two admissions leave 12 s of state.
    let gcra = Policy::new("g", Rate::per_minute(10));
    let key = conformance::limit_key();
    let name = limiter.redis_key(key, &gcra);
    for _ in 0..2 {
        assert!(limiter.acquire(key, &gcra, 1).await.unwrap().allowed);
    }
    let ttl = pttl(&mut con, &name);
    assert!((11_000..=12_001).contains(&ttl), "{ttl}");
    // A refund moves it back by one interval; refunding everything deletes the key.
    limiter.refund(key, &gcra, 1).await.unwrap();
    let ttl = pttl(&mut con, &name);
    assert!((5_000..=6_001).contains(&ttl), "{ttl}");
    limiter.refund(key, &gcra, 5).await.unwrap();
    assert_eq!(pttl(&mut con, &name), -2, "a full bucket is no state");

    // The window: the TTL is the window's length.
    let window = Policy::new("w", Rate::per_minute(3)).with_algorithm(Algorithm::SlidingWindow);
    let name = limiter.redis_key(key, &window);
    assert!(limiter.acquire(key, &window, 1).await.unwrap().allowed);
    let ttl = pttl(&mut con, &name);
    assert!((59_000..=60_001).contains(&ttl), "{ttl}");
    limiter.refund(key, &window, 1).await.unwrap();
    assert_eq!(pttl(&mut con, &name), -2);

    // Refunds of keys without state create nothing.
    let unknown = conformance::limit_key();
    limiter.refund(unknown, &gcra, 1).await.unwrap();
    limiter.refund(unknown, &window, 1).await.unwrap();
    assert!(keys_with_ttls(&server.url(), "ttl").is_empty());

    // Idempotency: the lease, then the replay TTL; the indexes follow the longest record.
    let store = redis.idempotency_store();
    let record = conformance::record(&conformance::fresh_client(), 1);
    let name = store.redis_key(&record);
    assert!(matches!(
        store
            .claim(&record, &Digest([1; 32]), 1, 5_000)
            .await
            .unwrap(),
        Claim::Acquired
    ));
    let ttl = pttl(&mut con, &name);
    assert!((4_000..=5_000).contains(&ttl), "{ttl}");
    assert!(store.renew(&record, 1, 20_000).await.unwrap());
    let ttl = pttl(&mut con, &name);
    assert!((19_000..=20_000).contains(&ttl), "{ttl}");
    assert!(
        store
            .complete(&record, 1, conformance::response("r"), 3_600_000)
            .await
            .unwrap()
    );
    let ttl = pttl(&mut con, &name);
    assert!((3_599_000..=3_600_000).contains(&ttl), "{ttl}");
    for (key, ttl) in keys_with_ttls(&server.url(), "ttl") {
        assert!((3_599_000..=3_600_001).contains(&ttl), "{key}: {ttl}");
    }
    // A released claim leaves nothing behind, indexes included.
    let other = conformance::record(&conformance::fresh_client(), 1);
    assert!(matches!(
        store
            .claim(&other, &Digest([1; 32]), 1, 5_000)
            .await
            .unwrap(),
        Claim::Acquired
    ));
    assert!(store.release(&other, 1).await.unwrap());
    assert_eq!(
        keys_with_ttls(&server.url(), "ttl").len(),
        4,
        "the first record and its three indexes"
    );
}

#[actix_rt::test]
async fn two_instances_share_limits_exactly() {
    let server = server!("two_instances_share_limits_exactly");
    let (a, b) = (
        connect(&server.url(), "shared").await,
        connect(&server.url(), "shared").await,
    );
    let (a, b) = (a.rate_limit_store(), b.rate_limit_store());
    for algorithm in [Algorithm::Gcra, Algorithm::SlidingWindow] {
        let policy = Policy::new("p", Rate::per_minute(10)).with_algorithm(algorithm);
        let key = conformance::limit_key();
        let mut admitted = [0, 0];
        for i in 0..30 {
            let store = if i % 2 == 0 { &a } else { &b };
            if store.acquire(key, &policy, 1).await.unwrap().allowed {
                admitted[i % 2] += 1;
            }
        }
        assert_eq!(
            admitted[0] + admitted[1],
            10,
            "{algorithm:?}: exactly the limit"
        );
        assert_eq!(admitted, [5, 5]);
    }
    conformance::limiter_concurrent(&[&a, &b]).await;

    // Another app on the same Redis (another prefix) has limits of its own.
    let other = connect(&server.url(), "other-app").await.rate_limit_store();
    let policy = Policy::new("p", Rate::per_minute(1));
    let key = conformance::limit_key();
    assert!(a.acquire(key, &policy, 1).await.unwrap().allowed);
    assert!(!b.acquire(key, &policy, 1).await.unwrap().allowed);
    assert!(other.acquire(key, &policy, 1).await.unwrap().allowed);
}

#[actix_rt::test]
async fn a_key_claimed_on_one_instance_is_in_flight_and_replayed_on_another() {
    let server = server!("a_key_claimed_on_one_instance_is_in_flight_and_replayed_on_another");
    let (a, b) = (
        connect(&server.url(), "idem").await.idempotency_store(),
        connect(&server.url(), "idem").await.idempotency_store(),
    );
    let key = conformance::record("ip:192.0.2.1", 1);
    let fp = Digest([5; 32]);
    assert!(matches!(
        a.claim(&key, &fp, 1, 60_000).await.unwrap(),
        Claim::Acquired
    ));
    assert!(matches!(
        b.claim(&key, &fp, 2, 60_000).await.unwrap(),
        Claim::InFlight
    ));
    assert!(matches!(
        b.claim(&key, &Digest([6; 32]), 2, 60_000).await.unwrap(),
        Claim::Mismatch
    ));
    assert!(
        !b.complete(&key, 2, conformance::response("b"), 60_000)
            .await
            .unwrap()
    );
    assert!(
        b.renew(&key, 1, 60_000).await.unwrap(),
        "the owner's token works anywhere"
    );
    assert!(
        a.complete(&key, 1, conformance::response("a"), 60_000)
            .await
            .unwrap()
    );
    match b.claim(&key, &fp, 3, 60_000).await.unwrap() {
        Claim::Completed(r) => assert_eq!(r.body, "a"),
        other => panic!("{other:?}"),
    }
    conformance::idempotency_one_winner(&[&a, &b], 64).await;
}

static RUNS: AtomicUsize = AtomicUsize::new(0);
static FAULT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[secure_endpoint(post("/payments"), rate = "unlimited", idempotent)]
async fn pay() -> HttpResponse {
    let n = RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    HttpResponse::Created().json(json!({ "payment": n }))
}

/// The same, counted apart for the fault test (tests run in parallel).
#[secure_endpoint(post("/payments"), rate = "unlimited", idempotent)]
async fn pay_despite_faults() -> HttpResponse {
    let n = FAULT_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    HttpResponse::Created().json(json!({ "payment": n }))
}

#[secure_endpoint(get("/limited"), rate = "1000/s")]
async fn limited() -> HttpResponse {
    HttpResponse::Ok().finish()
}

fn payment(key: &str) -> test::TestRequest {
    test::TestRequest::post()
        .uri("/payments")
        .peer_addr("192.0.2.7:4000".parse().unwrap())
        .insert_header(("idempotency-key", key))
}

/// The key secret shared by the app instances of these tests.
const KEY_SECRET: &[u8] = b"key-secret-of-the-redis-tests-0123456789";

fn api_on(redis: &RedisBackend) -> SecureApi {
    SecureApi::builder()
        .key_secret(KEY_SECRET)
        .unwrap()
        .rate_limit_store(Arc::new(redis.rate_limit_store()))
        .idempotency_store(Arc::new(redis.idempotency_store()))
        .build()
}

#[actix_rt::test]
async fn sixty_four_requests_split_across_two_apps_run_the_handler_once() {
    let server = server!("sixty_four_requests_split_across_two_apps_run_the_handler_once");
    let (a, b) = (
        connect(&server.url(), "apps").await,
        connect(&server.url(), "apps").await,
    );
    let app_a = test::init_service(App::new().wrap(api_on(&a).layer()).service(pay)).await;
    let app_b = test::init_service(App::new().wrap(api_on(&b).layer()).service(pay)).await;
    let before = RUNS.load(Ordering::SeqCst);
    let (app_a, app_b) = (&app_a, &app_b);
    let replies = join_all((0..64).map(|i| {
        let req = payment("split-key");
        async move {
            if i % 2 == 0 {
                send(app_a, req).await
            } else {
                send(app_b, req).await
            }
        }
    }))
    .await;
    assert_eq!(
        RUNS.load(Ordering::SeqCst) - before,
        1,
        "the handler ran once"
    );
    let mut created = 0;
    for reply in &replies {
        match reply.status.as_u16() {
            201 => {
                created += 1;
                assert_eq!(reply.json()["payment"], before + 1);
            }
            409 => {
                reply.assert_problem(409, "idempotency-request-in-progress");
                assert_eq!(reply.header("retry-after"), Some("1"));
            }
            other => panic!("{other}: {}", reply.text()),
        }
    }
    assert!(created >= 1);
    // Both apps replay it afterwards.
    let replay = send(app_b, payment("split-key")).await;
    assert_eq!(replay.status, 201);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.json()["payment"], before + 1);
    let replay = send(app_a, payment("split-key")).await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(RUNS.load(Ordering::SeqCst) - before, 1);
}

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-secret";
const REFRESH_KEY: [u8; 32] = [42; 32];

/// One app instance's auth: its own backend, revocation store, JwtAuth and TokenService,
/// sharing only the secrets and the Redis with the others.
async fn instance(url: &str) -> TokenService {
    let redis = connect(url, "auth").await;
    let jwt = JwtAuth::hs256(SECRET.to_vec())
        .issuer("issuer")
        .audience("audience")
        .revocation(Arc::new(redis.revocation_store()))
        .build()
        .unwrap();
    let accounts = |s: &SessionInfo| AccountStatus::Active(AccessGrant::new(&s.subject));
    TokenService::new(jwt, Arc::new(redis.refresh_store()), Arc::new(accounts))
        .refresh_key(REFRESH_KEY)
        .unwrap()
}

fn status(err: &ApiError) -> u16 {
    err.problem().status()
}

#[actix_rt::test]
async fn a_refresh_token_rotated_on_one_instance_is_reuse_on_another() {
    let server = server!("a_refresh_token_rotated_on_one_instance_is_reuse_on_another");
    let (a, b) = (instance(&server.url()).await, instance(&server.url()).await);
    let first = a.login(AccessGrant::new("alice")).await.unwrap();
    assert!(b.jwt().verify(&first.access_token).await.is_ok());
    let second = a.refresh(&first.refresh_token).await.unwrap();
    // The spent token, presented to the other instance: reuse, so the session ends.
    assert_eq!(
        status(&b.refresh(&first.refresh_token).await.unwrap_err()),
        401
    );
    assert_eq!(
        status(&a.refresh(&second.refresh_token).await.unwrap_err()),
        401
    );
    for instance in [&a, &b] {
        assert!(instance.jwt().verify(&second.access_token).await.is_err());
        assert!(instance.jwt().verify(&first.access_token).await.is_err());
    }

    // Two instances racing with one token: exactly one rotation wins, and the loser's use
    // is reuse, which ends the session.
    let pair = a.login(AccessGrant::new("bob")).await.unwrap();
    let results = join_all((0..8).map(|i| {
        let service = if i % 2 == 0 { &a } else { &b };
        service.refresh(&pair.refresh_token)
    }))
    .await;
    let winners: Vec<_> = results.into_iter().filter_map(Result::ok).collect();
    assert_eq!(winners.len(), 1, "exactly one winner");
    assert_eq!(
        status(&b.refresh(&winners[0].refresh_token).await.unwrap_err()),
        401
    );
    assert!(a.jwt().verify(&winners[0].access_token).await.is_err());
}

#[actix_rt::test]
async fn a_logout_on_one_instance_refuses_the_access_token_on_another() {
    let server = server!("a_logout_on_one_instance_refuses_the_access_token_on_another");
    let (a, b) = (instance(&server.url()).await, instance(&server.url()).await);
    let pair = a.login(AccessGrant::new("carol")).await.unwrap();
    let other = b.login(AccessGrant::new("carol")).await.unwrap();
    let principal = b.jwt().verify(&pair.access_token).await.unwrap();
    a.logout(&principal).await.unwrap();
    assert!(b.jwt().verify(&pair.access_token).await.is_err());
    assert_eq!(
        status(&b.refresh(&pair.refresh_token).await.unwrap_err()),
        401
    );
    // Carol's other session goes on, until she is revoked everywhere from B.
    assert!(a.jwt().verify(&other.access_token).await.is_ok());
    assert_eq!(b.revoke_subject("carol").await.unwrap(), 1);
    assert!(a.jwt().verify(&other.access_token).await.is_err());
    assert_eq!(
        status(&a.refresh(&other.refresh_token).await.unwrap_err()),
        401
    );
}

#[actix_rt::test]
async fn killing_redis_fails_closed_and_restarting_it_recovers_without_a_restart() {
    let mut server =
        server!("killing_redis_fails_closed_and_restarting_it_recovers_without_a_restart");
    let redis = RedisBackend::builder()
        .key_prefix("faults")
        .timeout(Duration::from_millis(250))
        .connect(&server.url())
        .await
        .unwrap();
    let app = test::init_service(
        App::new()
            .wrap(api_on(&redis).layer())
            .service(pay_despite_faults)
            .service(limited),
    )
    .await;
    let limited_get = || {
        test::TestRequest::get()
            .uri("/limited")
            .peer_addr("192.0.2.7:4000".parse().unwrap())
    };
    let first = send(&app, payment("fault-1")).await;
    assert_eq!(first.status, 201);
    assert_eq!(send(&app, limited_get()).await.status, 200);
    let runs = FAULT_RUNS.load(Ordering::SeqCst);

    server.kill();
    // Every request that needs a store gets the fail-closed 503, and no handler runs.
    for key in ["fault-1", "fault-2", "fault-2", "fault-3"] {
        let reply = send(&app, payment(key)).await;
        reply.assert_problem(503, "service-unavailable");
        assert_eq!(reply.header("retry-after"), Some("1"));
    }
    let reply = send(&app, limited_get()).await;
    reply.assert_problem(503, "service-unavailable");
    assert_eq!(
        FAULT_RUNS.load(Ordering::SeqCst),
        runs,
        "no handler ran while Redis was down"
    );
    // A store call says why.
    let err = redis
        .rate_limit_store()
        .acquire(
            conformance::limit_key(),
            &Policy::new("p", Rate::per_second(1)),
            1,
        )
        .await
        .unwrap_err();
    let StoreError::Backend(cause) = err else {
        panic!("{err:?}")
    };
    assert!(cause.downcast_ref::<BackendError>().is_some());

    server.restart();
    // Service comes back by itself: the connection reconnects in the background.
    let deadline = Instant::now() + Duration::from_secs(15);
    let recovered = loop {
        let reply = send(&app, payment("fault-4")).await;
        if reply.status == 201 {
            break reply;
        }
        reply.assert_problem(503, "service-unavailable");
        assert!(
            Instant::now() < deadline,
            "no recovery after Redis came back"
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(recovered.json()["payment"], runs + 1);
    assert_eq!(
        FAULT_RUNS.load(Ordering::SeqCst),
        runs + 1,
        "the handler ran once"
    );
    let replay = send(&app, payment("fault-4")).await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(send(&app, limited_get()).await.status, 200);
    assert_eq!(FAULT_RUNS.load(Ordering::SeqCst), runs + 1);
}

#[actix_rt::test]
async fn a_slow_redis_hits_the_timeout_instead_of_hanging_requests() {
    let server = server!("a_slow_redis_hits_the_timeout_instead_of_hanging_requests");
    let redis = RedisBackend::connect(&server.url()).await.unwrap();
    assert_eq!(redis.timeout(), DEFAULT_TIMEOUT);
    let limiter = redis.rate_limit_store();
    let policy = Policy::new("p", Rate::per_second(100));
    assert!(
        limiter
            .acquire(conformance::limit_key(), &policy, 1)
            .await
            .unwrap()
            .allowed
    );

    let asleep = server.sleep(1.5);
    let started = Instant::now();
    let err = limiter
        .acquire(conformance::limit_key(), &policy, 1)
        .await
        .unwrap_err();
    let waited = started.elapsed();
    let StoreError::Backend(cause) = err else {
        panic!("{err:?}")
    };
    let cause = cause
        .downcast_ref::<BackendError>()
        .expect("a backend error");
    assert!(cause.is_timeout(), "{cause}");
    // Answered at about the timeout, long before Redis wakes up.
    assert!(waited < Duration::from_millis(1_000), "{waited:?}");
    asleep.join().unwrap();
    assert!(
        limiter
            .acquire(conformance::limit_key(), &policy, 1)
            .await
            .unwrap()
            .allowed
    );
}

#[actix_rt::test]
async fn a_three_master_cluster_keeps_limits_and_idempotency_across_slots() {
    let Some(cluster) =
        RedisCluster::start("a_three_master_cluster_keeps_limits_and_idempotency_across_slots")
    else {
        return;
    };
    let connect_cluster = || async {
        RedisBackend::builder()
            .key_prefix("cluster")
            .timeout(Duration::from_secs(2))
            .connect_cluster(cluster.urls())
            .await
            .expect("connects to the cluster")
    };
    let (a, b) = (connect_cluster().await, connect_cluster().await);
    assert!(a.is_cluster());

    let (la, lb) = (a.rate_limit_store(), b.rate_limit_store());
    conformance::limiter_gcra(&la).await;
    conformance::limiter_refunds(&la).await;
    for _ in 0..4 {
        conformance::limiter_concurrent(&[&la, &lb]).await;
    }

    let (ia, ib) = (a.idempotency_store(), b.idempotency_store());
    conformance::idempotency_lifecycle(&ia).await;
    conformance::idempotency_quotas(&idempotency_on(&a)).await;
    for _ in 0..4 {
        conformance::idempotency_one_winner(&[&ia, &ib], 64).await;
    }

    let sessions = a.refresh_store().max_sessions_per_subject(3);
    conformance::refresh_lifecycle(&sessions).await;
    conformance::refresh_subjects(&sessions, 3).await;
    conformance::refresh_one_winner(&[&sessions, &b.refresh_store()]).await;
    conformance::revocation_kinds(&a.revocation_store()).await;

    // The keys spread over every master.
    for node in &cluster.nodes {
        let keys = keys_with_ttls(&node.url(), "cluster");
        assert!(
            keys.len() > 3,
            "node {} holds {} keys",
            node.port(),
            keys.len()
        );
        assert!(keys.iter().all(|(_, ttl)| *ttl > 0));
    }
}

// ---- Keys stable across instances: the key secret --------------------------------------

#[secure_endpoint(get("/shared-limit"), rate = "10/min")]
async fn shared_limit() -> HttpResponse {
    HttpResponse::Ok().finish()
}

/// An app instance on its own backend (its own connection) with its own `SecureApi` (its own
/// key-derivation state), sharing with the others only the Redis and, maybe, the secret.
async fn limited_instance(url: &str, prefix: &str, secret: &[u8]) -> SecureApi {
    let redis = connect(url, prefix).await;
    SecureApi::builder()
        .key_secret(secret)
        .unwrap()
        .rate_limit_store(Arc::new(redis.rate_limit_store()))
        .build()
}

fn shared_get(ip: &str) -> test::TestRequest {
    test::TestRequest::get()
        .uri("/shared-limit")
        .peer_addr(format!("{ip}:4000").parse().unwrap())
}

#[actix_rt::test]
async fn two_apps_with_one_key_secret_share_an_endpoints_limit_exactly() {
    let server = server!("two_apps_with_one_key_secret_share_an_endpoints_limit_exactly");
    let url = server.url();
    let a = limited_instance(&url, "keys", KEY_SECRET).await;
    let b = limited_instance(&url, "keys", KEY_SECRET).await;
    let app_a = test::init_service(App::new().wrap(a.layer()).service(shared_limit)).await;
    let app_b = test::init_service(App::new().wrap(b.layer()).service(shared_limit)).await;

    // One client, alternating between the instances: together they allow exactly 10.
    let mut allowed = [0, 0];
    for i in 0..30 {
        let reply = if i % 2 == 0 {
            send(&app_a, shared_get("192.0.2.10")).await
        } else {
            send(&app_b, shared_get("192.0.2.10")).await
        };
        match reply.status.as_u16() {
            200 => allowed[i % 2] += 1,
            429 => {
                reply.assert_problem(429, "rate-limited");
                assert!(reply.header("retry-after").is_some());
            }
            other => panic!("{other}: {}", reply.text()),
        }
    }
    assert_eq!(allowed, [5, 5], "exactly the limit, shared");
    // The record's name is fixed by the secret, the endpoint (method, route, handler) and
    // the client: any instance of any build of this binary finds it. The expected name
    // comes from an independent implementation of the derivation.
    let keys: Vec<String> = keys_with_ttls(&url, "keys")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(
        keys.contains(&"keys:rl:g:{03de6a22a5b5d880e2a0d132c54651dc}".to_owned()),
        "{keys:?}"
    );

    // Concurrently, a fresh client split over both instances: still exactly the limit.
    let (app_a, app_b) = (&app_a, &app_b);
    let replies = join_all((0..40).map(|i| async move {
        if i % 2 == 0 {
            send(app_a, shared_get("192.0.2.11")).await
        } else {
            send(app_b, shared_get("192.0.2.11")).await
        }
    }))
    .await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(ok, 10, "exactly the limit under concurrency");
    assert!(replies.iter().all(|r| r.status == 200 || r.status == 429));

    // Another secret on the same Redis and prefix derives other keys: its own budget.
    let c = limited_instance(&url, "keys", b"another-key-secret-of-at-least-32-bytes").await;
    let app_c = test::init_service(App::new().wrap(c.layer()).service(shared_limit)).await;
    let mut allowed_c = 0;
    for _ in 0..15 {
        if send(&app_c, shared_get("192.0.2.10")).await.status == 200 {
            allowed_c += 1;
        }
    }
    assert_eq!(allowed_c, 10, "a different secret does not share");
    // ...and charged nothing to the first two.
    assert_eq!(send(app_a, shared_get("192.0.2.10")).await.status, 429);
}

#[actix_rt::test]
async fn a_shared_rate_limit_store_without_a_key_secret_is_refused_at_build() {
    let server = server!("a_shared_rate_limit_store_without_a_key_secret_is_refused_at_build");
    let redis = connect(&server.url(), "nosecret").await;
    let err = SecureApi::builder()
        .rate_limit_store(Arc::new(redis.rate_limit_store()))
        .try_build()
        .unwrap_err();
    assert_eq!(
        err,
        secure_api_runtime::api::BuildError::SharedStoreWithoutKeySecret
    );
    assert!(err.to_string().contains("key_secret"), "{err}");
    let store = Arc::new(redis.rate_limit_store());
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        SecureApi::builder().rate_limit_store(store).build()
    }))
    .unwrap_err();
    let message = panicked
        .downcast_ref::<String>()
        .expect("a formatted panic");
    assert!(message.contains("no key secret is configured"), "{message}");
    // With the secret it builds; the in-memory store needs none.
    assert!(
        SecureApi::builder()
            .key_secret(KEY_SECRET)
            .unwrap()
            .rate_limit_store(Arc::new(redis.rate_limit_store()))
            .try_build()
            .is_ok()
    );
    assert!(SecureApi::builder().try_build().is_ok());
}

#[actix_rt::test]
async fn login_failures_on_one_instance_count_on_another_with_the_same_secret() {
    use secure_api_runtime::auth::login::LoginGuard;
    use secure_api_runtime::auth::password::Passwords;

    let server = server!("login_failures_on_one_instance_count_on_another_with_the_same_secret");
    let url = server.url();
    let passwords = || Passwords::with_params(1024, 1, 1).unwrap();
    let a = LoginGuard::new(
        &limited_instance(&url, "login", KEY_SECRET).await,
        passwords(),
    );
    let b = LoginGuard::new(
        &limited_instance(&url, "login", KEY_SECRET).await,
        passwords(),
    );
    // Ten failures (the default account policy), split over both instances and spellings.
    for i in 0..10 {
        let (guard, name) = if i % 2 == 0 {
            (&a, "Mallory")
        } else {
            (&b, " mallory ")
        };
        let err = guard.verify(name, None, "guess").await.unwrap_err();
        assert_eq!(status(&err), 401);
    }
    for guard in [&a, &b] {
        let err = guard.verify("mallory", None, "guess").await.unwrap_err();
        assert_eq!(status(&err), 429, "the account is throttled everywhere");
    }
    // An instance with another secret keeps its own counts.
    let other = LoginGuard::new(
        &limited_instance(&url, "login", b"another-key-secret-of-at-least-32-bytes").await,
        passwords(),
    );
    let err = other.verify("mallory", None, "guess").await.unwrap_err();
    assert_eq!(status(&err), 401);
}

// ---- The failure policy ----------------------------------------------------------------

static LENIENT_RUNS: AtomicUsize = AtomicUsize::new(0);
static STRICT_RUNS: AtomicUsize = AtomicUsize::new(0);
static LENIENT_ORDER_RUNS: AtomicUsize = AtomicUsize::new(0);

#[secure_endpoint(get("/lenient"), rate = "1000/s", on_store_error = "allow")]
async fn lenient() -> HttpResponse {
    LENIENT_RUNS.fetch_add(1, Ordering::SeqCst);
    HttpResponse::Ok().finish()
}

#[secure_endpoint(get("/strict"), rate = "1000/s", on_store_error = "fail_closed")]
async fn strict() -> HttpResponse {
    STRICT_RUNS.fetch_add(1, Ordering::SeqCst);
    HttpResponse::Ok().finish()
}

/// Allowed past its rate limit when Redis fails, but idempotent: the idempotency store
/// still decides, and fails closed.
#[secure_endpoint(
    post("/lenient-orders"),
    rate = "1000/s",
    on_store_error = "allow",
    idempotent
)]
async fn lenient_order() -> HttpResponse {
    LENIENT_ORDER_RUNS.fetch_add(1, Ordering::SeqCst);
    HttpResponse::Created().finish()
}

/// Authenticated, allowed past its rate limit when Redis fails: the revocation check still
/// fails closed.
#[secure_endpoint(get("/lenient-me"), auth, rate = "1000/s", on_store_error = "allow")]
async fn lenient_me(principal: Principal) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "sub": principal.subject }))
}

#[actix_rt::test]
async fn with_allow_a_dead_redis_lets_rate_limited_requests_through_and_nothing_else() {
    let mut server =
        server!("with_allow_a_dead_redis_lets_rate_limited_requests_through_and_nothing_else");
    let logs = common::log_capture();
    let redis = RedisBackend::builder()
        .key_prefix("allow")
        .timeout(Duration::from_millis(250))
        .connect(&server.url())
        .await
        .unwrap();
    let jwt = JwtAuth::hs256(SECRET.to_vec())
        .issuer("issuer")
        .audience("audience")
        .revocation(Arc::new(redis.revocation_store()))
        .build()
        .unwrap();
    let token = jwt.issue(&AccessGrant::new("dave")).unwrap();
    let api = SecureApi::builder()
        .key_secret(KEY_SECRET)
        .unwrap()
        .rate_limit_store(Arc::new(redis.rate_limit_store()))
        .idempotency_store(Arc::new(redis.idempotency_store()))
        .jwt(jwt)
        .build();
    let app = test::init_service(
        App::new()
            .wrap(api.layer())
            .service(lenient)
            .service(strict)
            .service(lenient_order)
            .service(lenient_me),
    )
    .await;
    let client = "192.0.2.44:4000".parse().unwrap();
    let get = |uri: &str| test::TestRequest::get().uri(uri).peer_addr(client);
    let order = |key: &str| {
        test::TestRequest::post()
            .uri("/lenient-orders")
            .peer_addr(client)
            .insert_header(("idempotency-key", key))
    };
    let me = || get("/lenient-me").insert_header(("authorization", format!("Bearer {token}")));
    // While Redis is up, the limit applies and its fields are sent.
    let up = send(&app, get("/lenient")).await;
    assert_eq!(up.status, 200);
    assert!(up.header("ratelimit").is_some());
    assert_eq!(send(&app, me()).await.json()["sub"], "dave");

    server.kill();
    let (lenient_before, strict_before, orders_before) = (
        LENIENT_RUNS.load(Ordering::SeqCst),
        STRICT_RUNS.load(Ordering::SeqCst),
        LENIENT_ORDER_RUNS.load(Ordering::SeqCst),
    );
    // `allow`: the handler runs, without a limit (and so without RateLimit fields).
    for _ in 0..3 {
        let reply = send(&app, get("/lenient")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert!(reply.header("ratelimit").is_none());
        reply.assert_security_headers();
    }
    assert_eq!(LENIENT_RUNS.load(Ordering::SeqCst), lenient_before + 3);
    // `fail_closed` on the same app: 503, the handler does not run.
    let reply = send(&app, get("/strict")).await;
    reply.assert_problem(503, "service-unavailable");
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(STRICT_RUNS.load(Ordering::SeqCst), strict_before);
    // Idempotency fails closed even where the limit allows: the handler never runs
    // unprotected.
    for key in ["allow-1", "allow-1", "allow-2"] {
        let reply = send(&app, order(key)).await;
        reply.assert_problem(503, "service-unavailable");
        assert_eq!(reply.header("retry-after"), Some("1"));
    }
    assert_eq!(LENIENT_ORDER_RUNS.load(Ordering::SeqCst), orders_before);
    // So does the revocation check of an authenticated endpoint.
    let reply = send(&app, me()).await;
    reply.assert_problem(503, "service-unavailable");
    reply.assert_leaks_none(&["dave"]);

    // The allowed requests were logged at warn, once for the three (the first line of
    // this endpoint in this process), naming the endpoint and not the client.
    let lines: Vec<String> = logs
        .lines()
        .into_iter()
        .filter(|l| l.contains("endpoint `lenient`"))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].starts_with("WARN secure_api::rate_limit "),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("on_store_error = allow"), "{}", lines[0]);
    assert!(!lines[0].contains("192.0.2.44"), "{}", lines[0]);
    assert!(
        logs.lines()
            .iter()
            .all(|l| !l.contains("endpoint `strict`: the rate-limit store failed"))
    );

    // Back up: limits apply again, with no restart.
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let reply = send(&app, get("/strict")).await;
        if reply.status == 200 {
            assert!(reply.header("ratelimit").is_some());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery after Redis came back"
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    let reply = send(&app, get("/lenient")).await;
    assert!(reply.header("ratelimit").is_some());
}

#[actix_rt::test]
async fn the_apps_on_limiter_error_is_the_default_and_endpoints_override_it() {
    let mut server = server!("the_apps_on_limiter_error_is_the_default_and_endpoints_override_it");
    let redis = RedisBackend::builder()
        .key_prefix("app-allow")
        .timeout(Duration::from_millis(250))
        .connect(&server.url())
        .await
        .unwrap();
    let api = SecureApi::builder()
        .key_secret(KEY_SECRET)
        .unwrap()
        .on_limiter_error(secure_api_runtime::store::OnStoreError::Allow)
        .rate_limit_store(Arc::new(redis.rate_limit_store()))
        .idempotency_store(Arc::new(redis.idempotency_store()))
        .build();
    let app = test::init_service(
        App::new()
            .wrap(api.layer())
            .service(limited)
            .service(strict)
            .service(app_order),
    )
    .await;
    let get = |uri: &str| {
        test::TestRequest::get()
            .uri(uri)
            .peer_addr("192.0.2.45:4000".parse().unwrap())
    };
    server.kill();
    // `limited` says nothing: the app's `Allow`.
    assert_eq!(send(&app, get("/limited")).await.status, 200);
    // `strict` says `fail_closed`: it wins over the app.
    send(&app, get("/strict"))
        .await
        .assert_problem(503, "service-unavailable");
    // Idempotency ignores the app's choice for limits.
    let order = test::TestRequest::post()
        .uri("/app-orders")
        .peer_addr("192.0.2.45:4000".parse().unwrap())
        .insert_header(("idempotency-key", "app-allow-1"));
    send(&app, order)
        .await
        .assert_problem(503, "service-unavailable");
    assert_eq!(APP_ORDER_RUNS.load(Ordering::SeqCst), 0);
}

static APP_ORDER_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Limited by the app's default rate, whose store failure the app allows; idempotent.
#[secure_endpoint(post("/app-orders"), idempotent)]
async fn app_order() -> HttpResponse {
    APP_ORDER_RUNS.fetch_add(1, Ordering::SeqCst);
    HttpResponse::Created().finish()
}
