//! The store metrics of issue 15: the latency histogram of every store call by store and
//! backend, and the gauges of store sizes against their bounds, counted exactly over a
//! scripted run through a real app, with bounded labels only.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::{App, test};
use common::send;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::{CompositeKey, MetricKind};
use secure_api_runtime::auth::jwt::{AccessGrant, JwtAuth};
use secure_api_runtime::auth::refresh::{
    AccountStatus, MemoryRefreshStore, SessionInfo, TokenService,
};
use secure_api_runtime::auth::revocation::RevokedTokens;
use secure_api_runtime::idempotency::memory::MemoryIdempotencyStore;
use secure_api_runtime::prelude::*;
use secure_api_runtime::telemetry::metrics::{
    STORE_BYTES, STORE_DURATION, STORE_ENTRIES, STORE_MAX_BYTES, STORE_MAX_ENTRIES,
};
use secure_api_runtime::throttle::memory::MemoryStore;
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize, SecureInput)]
struct Order {
    #[secure(trim, length(min = 1, max = 64))]
    item: String,
}

#[secure_endpoint(post("/telemetry-stores/orders"), public, rate = "1000/s", idempotent)]
async fn ts_order(order: Valid<Order>) -> HttpResponse {
    HttpResponse::Created().json(json!({ "item": order.into_inner().item }))
}

#[secure_endpoint(get("/telemetry-stores/ping"), public)]
async fn ts_ping() -> HttpResponse {
    HttpResponse::Ok().finish()
}

const CLIENT: &str = "192.0.2.77";

fn app(
    api: SecureApi,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .wrap(api.layer())
        .service(ts_order)
        .service(ts_ping)
}

fn order(key: &str, item: &str) -> test::TestRequest {
    test::TestRequest::post()
        .uri("/telemetry-stores/orders")
        .peer_addr(format!("{CLIENT}:5000").parse().unwrap())
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header(("idempotency-key", key))
        .set_payload(json!({ "item": item }).to_string())
}

fn ping() -> test::TestRequest {
    test::TestRequest::get()
        .uri("/telemetry-stores/ping")
        .peer_addr(format!("{CLIENT}:5000").parse().unwrap())
}

type Entry = (
    CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    DebugValue,
);

fn labels_of(key: &CompositeKey) -> Vec<(String, String)> {
    let mut labels: Vec<_> = key
        .key()
        .labels()
        .map(|l| (l.key().to_owned(), l.value().to_owned()))
        .collect();
    labels.sort();
    labels
}

fn is_store(key: &CompositeKey, name: &str, store: &str, backend: &str) -> bool {
    key.key().name() == name
        && labels_of(key)
            == [
                ("backend".to_owned(), backend.to_owned()),
                ("store".to_owned(), store.to_owned()),
            ]
}

/// The samples of the latency histogram of `store` on `backend`, if it exists.
fn samples(snapshot: &[Entry], store: &str, backend: &str) -> Option<usize> {
    snapshot.iter().find_map(|(key, _, _, value)| match value {
        DebugValue::Histogram(values)
            if key.kind() == MetricKind::Histogram
                && is_store(key, STORE_DURATION, store, backend) =>
        {
            assert!(
                values.iter().all(|v| v.0 >= 0.0 && v.0 < 60.0),
                "seconds: {values:?}"
            );
            Some(values.len())
        }
        _ => None,
    })
}

/// The value of gauge `name` of `store` on `backend`, if it exists.
fn gauge(snapshot: &[Entry], name: &str, store: &str, backend: &str) -> Option<f64> {
    snapshot.iter().find_map(|(key, _, _, value)| match value {
        DebugValue::Gauge(v)
            if key.kind() == MetricKind::Gauge && is_store(key, name, store, backend) =>
        {
            Some(v.0)
        }
        _ => None,
    })
}

fn snapshot(snapshotter: &Snapshotter) -> Vec<Entry> {
    snapshotter.snapshot().into_vec()
}

fn jwt_with(revoked: Arc<RevokedTokens>) -> JwtAuth {
    JwtAuth::hs256(vec![9u8; 32])
        .issuer("https://issuer.example")
        .audience("telemetry-stores")
        .revocation(revoked)
        .build()
        .unwrap()
}

fn accounts() -> Arc<dyn secure_api_runtime::auth::refresh::AccountCheck> {
    Arc::new(|s: &SessionInfo| AccountStatus::Active(AccessGrant::new(&s.subject)))
}

/// Every label of every metric of the run: never the client's address, a subject or an
/// idempotency key; the store metrics carry exactly `store` and `backend`, from fixed sets.
fn assert_bounded_labels(snapshot: &[Entry], secrets: &[&str]) {
    for (key, _, _, _) in snapshot {
        for label in key.key().labels() {
            for secret in secrets {
                assert!(
                    !label.value().contains(secret),
                    "{} has label {}={}",
                    key.key().name(),
                    label.key(),
                    label.value()
                );
            }
        }
        if key.key().name().starts_with("secure_api_store_")
            && key.key().name() != "secure_api_store_failures_total"
        {
            let labels = labels_of(key);
            assert_eq!(labels.len(), 2, "{labels:?}");
            assert_eq!(labels[0].0, "backend");
            assert!(
                ["memory", "redis", "custom"].contains(&labels[0].1.as_str()),
                "{labels:?}"
            );
            assert_eq!(labels[1].0, "store");
            assert!(
                ["rate_limit", "idempotency", "sessions", "revocation"]
                    .contains(&labels[1].1.as_str()),
                "{labels:?}"
            );
        }
    }
}

#[actix_rt::test]
async fn store_calls_are_timed_exactly_and_gauges_equal_the_stores_sizes() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let limiter = Arc::new(MemoryStore::new().max_keys(5_000));
    let idempotency = Arc::new(
        MemoryIdempotencyStore::new()
            .max_entries(1_000)
            .max_bytes(1 << 20),
    );
    let revoked = Arc::new(RevokedTokens::new().max_entries(50));
    let sessions = Arc::new(MemoryRefreshStore::new().max_sessions(100));
    let jwt = jwt_with(revoked.clone());
    let (api, tokens) = metrics::with_local_recorder(&recorder, || {
        let api = SecureApi::builder()
            .rate_limit_store(limiter.clone())
            .idempotency_store(idempotency.clone())
            .jwt(jwt.clone())
            .metrics(true)
            .metrics_interval(Duration::ZERO)
            .build();
        let tokens = TokenService::new(jwt.clone(), sessions.clone(), accounts()).telemetry(&api);
        (api, tokens)
    });
    let service = test::init_service(app(api.clone())).await;

    // The script: three first requests, two replays, a key reused for another body, and
    // two requests to an endpoint without idempotency.
    let keys = [
        "key-7f3a1c9e-first",
        "key-7f3a1c9e-second",
        "key-7f3a1c9e-third",
    ];
    for key in keys {
        let r = send(&service, order(key, "book")).await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    for key in &keys[..2] {
        let r = send(&service, order(key, "book")).await;
        assert_eq!(r.status, 201);
        assert_eq!(r.header("idempotent-replayed"), Some("true"));
    }
    send(&service, order(keys[2], "pen"))
        .await
        .assert_problem(422, "idempotency-key-reused");
    for _ in 0..2 {
        assert_eq!(send(&service, ping()).await.status, 200);
    }
    let requests = 3 + 2 + 1 + 2;
    // The store contract: a first request claims then completes; a replay and a mismatch
    // only claim.
    let idempotency_calls = 3 * 2 + 2 + 1;

    // Sessions: two logins (create), one verification (is_revoked), then the end of
    // bob's sessions (remove_subject, then revoke_subject).
    let alice = tokens.login(AccessGrant::new("alice")).await.unwrap();
    tokens.login(AccessGrant::new("bob")).await.unwrap();
    jwt.verify(&alice.access_token).await.unwrap();
    assert_eq!(tokens.revoke_subject("bob").await.unwrap(), 1);

    api.record_store_gauges();
    let snapshot = snapshot(&snapshotter);
    assert_eq!(samples(&snapshot, "rate_limit", "memory"), Some(requests));
    assert_eq!(
        samples(&snapshot, "idempotency", "memory"),
        Some(idempotency_calls)
    );
    assert_eq!(samples(&snapshot, "sessions", "memory"), Some(3));
    assert_eq!(samples(&snapshot, "revocation", "memory"), Some(2));

    // One client under two policies; three keys, with their responses; alice's session;
    // bob's revocation.
    assert_eq!(limiter.len(), 2);
    assert_eq!(idempotency.len(), 3);
    assert!(idempotency.stored_bytes() > 0);
    assert_eq!(sessions.len(), 1);
    assert_eq!(revoked.len(), 1);
    let expected = [
        ("rate_limit", limiter.len(), 5_000),
        ("idempotency", idempotency.len(), 1_000),
        ("sessions", sessions.len(), 100),
        ("revocation", revoked.len(), 50),
    ];
    for (store, entries, max) in expected {
        assert_eq!(
            gauge(&snapshot, STORE_ENTRIES, store, "memory"),
            Some(entries as f64),
            "{store}"
        );
        assert_eq!(
            gauge(&snapshot, STORE_MAX_ENTRIES, store, "memory"),
            Some(max as f64),
            "{store}"
        );
    }
    assert_eq!(
        gauge(&snapshot, STORE_BYTES, "idempotency", "memory"),
        Some(idempotency.stored_bytes() as f64)
    );
    assert_eq!(
        gauge(&snapshot, STORE_MAX_BYTES, "idempotency", "memory"),
        Some((1 << 20) as f64)
    );
    // Only the idempotency store bounds bytes.
    for store in ["rate_limit", "sessions", "revocation"] {
        assert_eq!(
            gauge(&snapshot, STORE_BYTES, store, "memory"),
            None,
            "{store}"
        );
    }

    let mut secrets = vec![CLIENT, "alice", "bob", "7f3a1c9e"];
    secrets.extend(keys);
    assert_bounded_labels(&snapshot, &secrets);

    // The histogram's samples were taken by the snapshot: the next request adds one.
    assert_eq!(send(&service, ping()).await.status, 200);
    let snapshot = self::snapshot(&snapshotter);
    assert_eq!(samples(&snapshot, "rate_limit", "memory"), Some(1));
    assert_eq!(samples(&snapshot, "idempotency", "memory"), Some(0));
}

#[actix_rt::test]
async fn gauges_follow_the_stores_after_a_call_to_record_store_gauges() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let idempotency = Arc::new(MemoryIdempotencyStore::new());
    let api = metrics::with_local_recorder(&recorder, || {
        SecureApi::builder()
            .idempotency_store(idempotency.clone())
            .metrics(true)
            .metrics_interval(Duration::ZERO)
            .build()
    });
    // Set at build, empty.
    let snap = snapshot(&snapshotter);
    assert_eq!(
        gauge(&snap, STORE_ENTRIES, "idempotency", "memory"),
        Some(0.0)
    );
    assert_eq!(
        gauge(&snap, STORE_ENTRIES, "rate_limit", "memory"),
        Some(0.0)
    );
    assert_eq!(
        gauge(&snap, STORE_MAX_ENTRIES, "idempotency", "memory"),
        Some(idempotency.bounds().0 as f64)
    );
    // No JwtAuth, no TokenService: no such gauges.
    assert_eq!(gauge(&snap, STORE_ENTRIES, "revocation", "memory"), None);
    assert_eq!(gauge(&snap, STORE_ENTRIES, "sessions", "memory"), None);

    let service = test::init_service(app(api.clone())).await;
    assert_eq!(send(&service, order("k-one", "book")).await.status, 201);
    assert_eq!(send(&service, order("k-two", "book")).await.status, 201);
    // Without a background thread, the gauges change when the app records them.
    let snap = snapshot(&snapshotter);
    assert_eq!(
        gauge(&snap, STORE_ENTRIES, "idempotency", "memory"),
        Some(0.0)
    );
    api.record_store_gauges();
    let snap = snapshot(&snapshotter);
    assert_eq!(
        gauge(&snap, STORE_ENTRIES, "idempotency", "memory"),
        Some(2.0)
    );
    assert_eq!(
        gauge(&snap, STORE_ENTRIES, "rate_limit", "memory"),
        Some(1.0)
    );
    assert_eq!(
        gauge(&snap, STORE_BYTES, "idempotency", "memory"),
        Some(idempotency.stored_bytes() as f64)
    );
}

#[actix_rt::test]
async fn the_background_thread_refreshes_the_gauges() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let api = metrics::with_local_recorder(&recorder, || {
        SecureApi::builder()
            .metrics(true)
            .metrics_interval(Duration::from_millis(20))
            .build()
    });
    let service = test::init_service(app(api.clone())).await;
    assert_eq!(send(&service, order("k-bg", "book")).await.status, 201);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let snap = snapshot(&snapshotter);
        if gauge(&snap, STORE_ENTRIES, "idempotency", "memory") == Some(1.0) {
            assert_eq!(
                gauge(&snap, STORE_ENTRIES, "rate_limit", "memory"),
                Some(1.0)
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gauges were not refreshed in the background"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[actix_rt::test]
async fn without_metrics_there_is_no_store_metric() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let revoked = Arc::new(RevokedTokens::new());
    let jwt = jwt_with(revoked);
    let (api, tokens) = metrics::with_local_recorder(&recorder, || {
        let api = SecureApi::builder().jwt(jwt.clone()).build();
        let tokens =
            TokenService::new(jwt.clone(), Arc::new(MemoryRefreshStore::new()), accounts())
                .telemetry(&api);
        (api, tokens)
    });
    let service = test::init_service(app(api.clone())).await;
    assert_eq!(send(&service, order("k-off", "book")).await.status, 201);
    assert_eq!(send(&service, order("k-off", "book")).await.status, 201);
    assert_eq!(send(&service, ping()).await.status, 200);
    let pair = tokens.login(AccessGrant::new("carol")).await.unwrap();
    jwt.verify(&pair.access_token).await.unwrap();
    api.record_store_gauges();
    let snap = snapshot(&snapshotter);
    let store_metrics: Vec<_> = snap
        .iter()
        .map(|(key, ..)| key.key().name().to_owned())
        .filter(|name| name.starts_with("secure_api_store_"))
        .collect();
    assert!(store_metrics.is_empty(), "{store_metrics:?}");
}

#[cfg(feature = "redis")]
#[path = "common/redis_server.rs"]
mod redis_server;

#[cfg(feature = "redis")]
#[actix_rt::test]
async fn redis_stores_are_labelled_redis_and_report_no_size() {
    use secure_api_runtime::redis::RedisBackend;

    let Some(server) = redis_server::RedisServer::start(
        "telemetry_stores::redis_stores_are_labelled_redis_and_report_no_size",
    ) else {
        return;
    };
    let redis = RedisBackend::builder()
        .key_prefix("telemetry")
        .timeout(Duration::from_secs(2))
        .connect(&server.url())
        .await
        .expect("connects to the test server");
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let jwt = JwtAuth::hs256(vec![9u8; 32])
        .issuer("https://issuer.example")
        .audience("telemetry-stores")
        .revocation(Arc::new(redis.revocation_store()))
        .build()
        .unwrap();
    let api = metrics::with_local_recorder(&recorder, || {
        SecureApi::builder()
            .key_secret("a test key secret of at least thirty-two bytes")
            .unwrap()
            .rate_limit_store(Arc::new(redis.rate_limit_store()))
            .idempotency_store(Arc::new(redis.idempotency_store()))
            .jwt(jwt.clone())
            .metrics(true)
            .metrics_interval(Duration::ZERO)
            .build()
    });
    let service = test::init_service(app(api.clone())).await;
    let first = send(&service, order("k-redis", "book")).await;
    assert_eq!(first.status, 201, "{}", first.text());
    let replay = send(&service, order("k-redis", "book")).await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    let token = jwt.issue(&AccessGrant::new("dave")).unwrap();
    jwt.verify(&token).await.unwrap();

    api.record_store_gauges();
    let snap = snapshot(&snapshotter);
    assert_eq!(samples(&snap, "rate_limit", "redis"), Some(2));
    assert_eq!(samples(&snap, "idempotency", "redis"), Some(3));
    assert_eq!(samples(&snap, "revocation", "redis"), Some(1));
    assert_eq!(samples(&snap, "rate_limit", "memory"), None);
    // Redis reports its own size: no gauges for its stores.
    let gauges: Vec<_> = snap
        .iter()
        .filter(|(key, ..)| key.kind() == MetricKind::Gauge)
        .map(|(key, ..)| key.key().name().to_owned())
        .collect();
    assert!(gauges.is_empty(), "{gauges:?}");
    assert_bounded_labels(&snap, &[CLIENT, "dave", "k-redis"]);
}
