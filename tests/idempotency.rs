//! `#[secure_endpoint(idempotent)]`: every status of the Idempotency-Key rules, replays,
//! concurrency across workers, panics, disconnects and isolation between clients.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::dev::Service;
use actix_web::http::header;
use actix_web::{App, test, web};
use common::{Reply, raw_request, send};
use secure_api_runtime::clock::FakeClock;
use secure_api_runtime::idempotency::memory::{MemoryIdempotencyStore, NewClaimsWhenFull};
use secure_api_runtime::idempotency::{Claim, Completion, Digest, IdempotencyStore, RecordKey};
use secure_api_runtime::prelude::*;
use secure_api_runtime::store::{StoreError, StoreFuture};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize, SecureInput)]
struct Order {
    #[secure(trim, length(min = 1, max = 64))]
    item: String,
    #[secure(range(min = 1, max = 100))]
    quantity: u32,
}

static CREATED: AtomicUsize = AtomicUsize::new(0);

#[secure_endpoint(post("/orders"), rate = "unlimited", idempotent)]
async fn create_order(order: Valid<Order>) -> HttpResponse {
    let n = CREATED.fetch_add(1, Ordering::SeqCst) + 1;
    let order = order.into_inner();
    HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/orders/{n}")))
        .insert_header((header::ETAG, format!("\"v{n}\"")))
        .insert_header((header::SET_COOKIE, format!("session=secret{n}")))
        .insert_header(("x-internal-trace", "abc"))
        .json(json!({ "id": n, "item": order.item, "quantity": order.quantity }))
}

static SLOW_RUNS: AtomicUsize = AtomicUsize::new(0);
static DISCONNECT_RUNS: AtomicUsize = AtomicUsize::new(0);
static DISCONNECT_PANIC_RUNS: AtomicUsize = AtomicUsize::new(0);
static STRICT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[secure_endpoint(post("/slow-dc"), rate = "unlimited", idempotent)]
async fn slow_dc() -> HttpResponse {
    DISCONNECT_RUNS.fetch_add(1, Ordering::SeqCst);
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    HttpResponse::Created().json(json!({ "done": true }))
}

/// Panics in its first run, after its client has given up; later runs succeed.
#[secure_endpoint(post("/slow-panic"), rate = "unlimited", idempotent)]
async fn slow_panic() -> HttpResponse {
    let run = DISCONNECT_PANIC_RUNS.fetch_add(1, Ordering::SeqCst);
    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    if run == 0 {
        panic!("boom after the client left");
    }
    HttpResponse::Created().json(json!({ "run": run + 1 }))
}

#[secure_endpoint(post("/strict"), rate = "unlimited", idempotent)]
async fn strict(order: Valid<Order>) -> HttpResponse {
    STRICT_RUNS.fetch_add(1, Ordering::SeqCst);
    HttpResponse::Created().json(json!({ "item": order.into_inner().item }))
}

#[secure_endpoint(post("/slow"), rate = "unlimited", idempotent)]
async fn slow() -> HttpResponse {
    SLOW_RUNS.fetch_add(1, Ordering::SeqCst);
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    HttpResponse::Created().json(json!({ "done": true }))
}

static WAITED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[secure_endpoint(post("/waited"), rate = "unlimited", idempotent(wait = "2s"))]
async fn waited() -> HttpResponse {
    WAITED_RUNS.fetch_add(1, Ordering::SeqCst);
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    HttpResponse::Created().json(json!({ "done": true }))
}

static FLAKY_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Fails with the status in `?fail=` on its first run.
#[secure_endpoint(post("/flaky"), rate = "unlimited", idempotent)]
async fn flaky(req: actix_web::HttpRequest) -> Result<HttpResponse, ApiError> {
    let run = FLAKY_RUNS.fetch_add(1, Ordering::SeqCst);
    if run == 0 {
        match req.query_string() {
            "fail=500" => return Err(std::io::Error::other("database down").into()),
            "fail=429" => return Ok(HttpResponse::TooManyRequests().finish()),
            "fail=408" => return Ok(HttpResponse::RequestTimeout().finish()),
            "fail=panic" => panic!("boom"),
            _ => {}
        }
    }
    Ok(HttpResponse::Ok().json(json!({ "run": run })))
}

static STREAM_RUNS: AtomicUsize = AtomicUsize::new(0);

#[secure_endpoint(post("/stream"), rate = "unlimited", idempotent)]
async fn stream() -> HttpResponse {
    STREAM_RUNS.fetch_add(1, Ordering::SeqCst);
    let chunks = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(
        web::Bytes::from_static(b"part"),
    )]);
    HttpResponse::Ok().streaming(chunks)
}

static SIZED_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A body of a declared size that is not in memory: `?broken` fails it half-way.
#[secure_endpoint(post("/sized"), rate = "unlimited", idempotent)]
async fn sized(req: actix_web::HttpRequest) -> HttpResponse {
    SIZED_RUNS.fetch_add(1, Ordering::SeqCst);
    let second = if req.query_string() == "broken" {
        Err(std::io::Error::other("the database went away"))
    } else {
        Ok(web::Bytes::from_static(b"-two"))
    };
    let chunks = futures_util::stream::iter(vec![Ok(web::Bytes::from_static(b"one")), second]);
    HttpResponse::Created()
        .insert_header((header::CONTENT_TYPE, "text/plain"))
        .body(actix_web::body::SizedStream::new(7, chunks))
}

static LEASE_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Runs for 500 ms: longer than the 200 ms lease of the lease tests.
#[secure_endpoint(post("/lease"), rate = "unlimited", idempotent)]
async fn lease() -> HttpResponse {
    LEASE_RUNS.fetch_add(1, Ordering::SeqCst);
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    HttpResponse::Created().json(json!({ "done": true }))
}

static LEASE_WAIT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[secure_endpoint(post("/lease-wait"), rate = "unlimited", idempotent(wait = "5s"))]
async fn lease_wait() -> HttpResponse {
    LEASE_WAIT_RUNS.fetch_add(1, Ordering::SeqCst);
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    HttpResponse::Created().json(json!({ "done": true }))
}

/// Counts runs per test: each test that uses `/counted` passes its own `?test=` name.
static COUNTED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn runs_of(test: &str) -> usize {
    COUNTED
        .lock()
        .unwrap()
        .iter()
        .filter(|t| *t == test)
        .count()
}

/// A 201 whose body is `?size=` bytes long (default 100), after `?sleep=` ms (default 0).
#[secure_endpoint(post("/counted"), rate = "unlimited", idempotent)]
async fn counted(req: actix_web::HttpRequest) -> HttpResponse {
    let query: std::collections::HashMap<String, String> =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .unwrap()
            .into_inner();
    COUNTED.lock().unwrap().push(query["test"].clone());
    if let Some(ms) = query.get("sleep") {
        actix_web::rt::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
    }
    let size = query.get("size").map_or(100, |s| s.parse().unwrap());
    HttpResponse::Created()
        .insert_header((header::CONTENT_TYPE, "text/plain"))
        .body("x".repeat(size))
}

#[secure_endpoint(
    post("/optional"),
    rate = "unlimited",
    idempotent(required = false, ttl = "1s")
)]
async fn optional() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "n": CREATED.fetch_add(1, Ordering::SeqCst) }))
}

fn app_with(
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
        .wrap_fn(|req, srv| {
            common::principal_from_test_headers(&req);
            srv.call(req)
        })
        .wrap(api.layer())
        .service(create_order)
        .service(slow)
        .service(waited)
        .service(flaky)
        .service(stream)
        .service(optional)
        .service(slow_dc)
        .service(slow_panic)
        .service(sized)
        .service(strict)
        .service(lease)
        .service(lease_wait)
        .service(counted)
}

fn order(key: Option<&str>, body: serde_json::Value) -> test::TestRequest {
    let mut req = test::TestRequest::post()
        .uri("/orders")
        .peer_addr("192.0.2.1:5000".parse().unwrap())
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(body.to_string());
    if let Some(key) = key {
        req = req.insert_header(("idempotency-key", key));
    }
    req
}

fn post(path: &str, key: &str) -> test::TestRequest {
    test::TestRequest::post()
        .uri(path)
        .peer_addr("192.0.2.1:5000".parse().unwrap())
        .insert_header(("idempotency-key", key))
}

fn body() -> serde_json::Value {
    json!({ "item": "book", "quantity": 2 })
}

#[actix_rt::test]
async fn a_missing_or_malformed_key_is_400() {
    let api = SecureApi::builder().build();
    let app = test::init_service(app_with(api.clone())).await;
    let order = |key: Option<&str>, body: serde_json::Value| order(key, body).uri("/strict");
    let r = send(&app, order(None, body())).await;
    r.assert_problem(400, "idempotency-key-missing");
    for bad in ["", "\"\"", "\"unterminated", "has space", "a,b"] {
        let r = send(&app, order(Some(bad), body())).await;
        r.assert_problem(400, "idempotency-key-invalid");
    }
    let long = "k".repeat(256);
    send(&app, order(Some(&long), body()))
        .await
        .assert_problem(400, "idempotency-key-invalid");
    let r = send(
        &app,
        order(Some("one"), body()).append_header(("idempotency-key", "two")),
    )
    .await;
    r.assert_problem(400, "idempotency-key-invalid");
    assert_eq!(
        STRICT_RUNS.load(Ordering::SeqCst),
        0,
        "the handler never ran"
    );
    // 255 bytes is fine.
    let r = send(&app, order(Some(&"k".repeat(255)), body())).await;
    assert_eq!(r.status, 201);
}

fn assert_same_replay(first: &Reply, replay: &Reply) {
    assert_eq!(first.status, replay.status);
    assert_eq!(first.body, replay.body, "byte for byte");
    for name in ["content-type", "location", "etag"] {
        assert_eq!(first.header(name), replay.header(name), "{name}");
        assert!(first.header(name).is_some());
    }
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert!(first.header("idempotent-replayed").is_none());
    assert!(
        replay.header("set-cookie").is_none(),
        "cookies are never replayed"
    );
    assert!(replay.header("x-internal-trace").is_none());
    replay.assert_security_headers();
}

#[actix_rt::test]
async fn a_completed_request_is_replayed_byte_for_byte() {
    let api = SecureApi::builder().build();
    let app = test::init_service(app_with(api.clone())).await;
    let key = uuid::Uuid::new_v4().to_string();
    let first = send(&app, order(Some(&key), body())).await;
    assert_eq!(first.status, 201, "{}", first.text());
    assert!(first.header("set-cookie").is_some());
    let id = first.json()["id"].clone();
    let replay = send(&app, order(Some(&key), body())).await;
    assert_same_replay(&first, &replay);
    assert_eq!(replay.json()["id"], id, "the handler did not run again");
    // The quoted structured-field form names the same key.
    let quoted = send(&app, order(Some(&format!("\"{key}\"")), body())).await;
    assert_same_replay(&first, &quoted);
}

#[actix_rt::test]
async fn the_same_key_for_a_different_request_is_422() {
    let api = SecureApi::builder().build();
    let app = test::init_service(app_with(api.clone())).await;
    let key = uuid::Uuid::new_v4().to_string();
    assert_eq!(send(&app, order(Some(&key), body())).await.status, 201);
    let r = send(
        &app,
        order(Some(&key), json!({ "item": "book", "quantity": 3 })),
    )
    .await;
    r.assert_problem(422, "idempotency-key-reused");
    r.assert_leaks_none(&[&key, "book"]);
    let r = send(&app, order(Some(&key), body()).uri("/orders?x=1")).await;
    r.assert_problem(422, "idempotency-key-reused");
    let r = send(
        &app,
        order(Some(&key), body())
            .insert_header((header::CONTENT_TYPE, "application/merge-patch+json")),
    )
    .await;
    r.assert_problem(422, "idempotency-key-reused");
}

#[actix_rt::test]
async fn a_key_in_flight_is_409_or_waits_for_the_result() {
    let api = SecureApi::builder().build();
    let app = test::init_service(app_with(api.clone())).await;
    let key = uuid::Uuid::new_v4().to_string();
    let (first, second) = futures_util::join!(send(&app, post("/slow", &key)), async {
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        send(&app, post("/slow", &key)).await
    });
    assert_eq!(first.status, 201);
    second.assert_problem(409, "idempotency-request-in-progress");
    assert_eq!(second.header("retry-after"), Some("1"));
    assert_eq!(SLOW_RUNS.load(Ordering::SeqCst), 1);

    let (first, second) = futures_util::join!(send(&app, post("/waited", &key)), async {
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        send(&app, post("/waited", &key)).await
    });
    assert_eq!(first.status, 201);
    assert_eq!(second.status, 201);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(first.body, second.body);
    assert_eq!(WAITED_RUNS.load(Ordering::SeqCst), 1);
}

#[actix_rt::test]
async fn failures_are_not_stored_and_release_the_key() {
    let api = SecureApi::builder().build();
    let app = test::init_service(app_with(api.clone())).await;
    for (fail, status) in [
        ("fail=500", 500u16),
        ("fail=429", 429),
        ("fail=408", 408),
        ("fail=panic", 500),
    ] {
        FLAKY_RUNS.store(0, Ordering::SeqCst);
        let key = uuid::Uuid::new_v4().to_string();
        let uri = format!("/flaky?{fail}");
        let r = send(&app, post(&uri, &key)).await;
        assert_eq!(r.status.as_u16(), status, "{fail}");
        if fail == "fail=panic" || fail == "fail=500" {
            r.assert_problem(500, "internal-error");
            r.assert_leaks_none(&["boom", "database"]);
        }
        // The retry runs the handler again and is stored.
        let r = send(&app, post(&uri, &key)).await;
        assert_eq!(r.status, 200, "{fail}: {}", r.text());
        assert_eq!(r.json(), json!({ "run": 1 }));
        let r = send(&app, post(&uri, &key)).await;
        assert_eq!(r.header("idempotent-replayed"), Some("true"));
        assert_eq!(FLAKY_RUNS.load(Ordering::SeqCst), 2);
    }
}

/// Asserts the exact problem a retry gets when the first request's response was not kept.
fn assert_not_replayable(r: &Reply, original_status: u16) {
    let body = r.assert_problem(422, "idempotency-response-not-replayable");
    let mut members: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    members.sort();
    assert_eq!(
        members,
        [
            "detail",
            "instance",
            "original_status",
            "status",
            "title",
            "type"
        ]
    );
    assert_eq!(body["original_status"], original_status);
    assert_eq!(body["title"], "Response not replayable");
    assert_eq!(
        body["detail"],
        "The request with this Idempotency-Key was already processed, but its response cannot be replayed; original_status is the status it returned. Do not retry with this key."
    );
    assert!(r.header("idempotent-replayed").is_none());
    assert!(
        r.header("retry-after").is_none(),
        "final, not to be retried"
    );
}

#[actix_rt::test]
async fn a_streaming_response_runs_once_and_retries_get_the_not_replayable_problem() {
    let api = SecureApi::builder().build();
    let app = test::init_service(app_with(api.clone())).await;
    // The first client gets the handler's own response.
    let r = send(&app, post("/stream", "s1")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"part");
    // Its retry does not run the handler again, and is told what happened.
    for _ in 0..2 {
        let r = send(&app, post("/stream", "s1")).await;
        assert_not_replayable(&r, 200);
    }
    assert_eq!(STREAM_RUNS.load(Ordering::SeqCst), 1);
}

#[actix_rt::test]
async fn a_sized_body_that_is_not_in_memory_is_read_stored_and_replayed() {
    let api = SecureApi::builder().build();
    let app = test::init_service(app_with(api.clone())).await;
    let first = send(&app, post("/sized", "sized-1")).await;
    assert_eq!(
        (first.status.as_u16(), &first.body[..]),
        (201, &b"one-two"[..])
    );
    let replay = send(&app, post("/sized", "sized-1")).await;
    assert_eq!(
        (replay.status.as_u16(), &replay.body[..]),
        (201, &b"one-two"[..])
    );
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.header("content-type"), Some("text/plain"));
    assert_eq!(SIZED_RUNS.load(Ordering::SeqCst), 1);

    // A body that fails while it is read: the client gets a 500 that leaks nothing, and
    // the key is completed (the handler ran), so a retry is told, not run again.
    let broken = send(&app, post("/sized?broken", "sized-2")).await;
    broken.assert_problem(500, "internal-error");
    broken.assert_leaks_none(&["database"]);
    assert_not_replayable(&send(&app, post("/sized?broken", "sized-2")).await, 201);
    assert_eq!(SIZED_RUNS.load(Ordering::SeqCst), 2);
}

#[actix_rt::test]
async fn a_response_over_the_stored_limit_runs_once_and_retries_get_the_not_replayable_problem() {
    let api = SecureApi::builder().max_stored_response(64).build();
    let app = test::init_service(app_with(api.clone())).await;
    let uri = "/counted?test=over-limit&size=100";
    let r = send(&app, post(uri, "big")).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body.len(), 100, "sent whole to the first client");
    let r = send(&app, post(uri, "big")).await;
    assert_not_replayable(&r, 201);
    assert_eq!(runs_of("over-limit"), 1);
    // A response within the limit is still replayed.
    let uri = "/counted?test=within-limit&size=64";
    let first = send(&app, post(uri, "small")).await;
    let replay = send(&app, post(uri, "small")).await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body, first.body);
    assert_eq!(runs_of("within-limit"), 1);
}

/// The in-memory store, except that `complete` fails (for responses when `fail_responses`,
/// and for the first `fail_markers` markers), and that `renew` answers like a network store
/// (after a 20 ms round trip) when `slow_renewals`.
struct TestStore {
    inner: MemoryIdempotencyStore,
    fail_responses: bool,
    fail_markers: AtomicUsize,
    slow_renewals: bool,
    renewals: AtomicUsize,
}

impl TestStore {
    fn new(inner: MemoryIdempotencyStore) -> Self {
        TestStore {
            inner,
            fail_responses: false,
            fail_markers: AtomicUsize::new(0),
            slow_renewals: false,
            renewals: AtomicUsize::new(0),
        }
    }
}

impl IdempotencyStore for TestStore {
    fn claim(
        &self,
        key: &RecordKey,
        fingerprint: &Digest,
        owner: u128,
        lease_ms: u64,
    ) -> StoreFuture<'_, Result<Claim, StoreError>> {
        self.inner.claim(key, fingerprint, owner, lease_ms)
    }

    fn renew(
        &self,
        key: &RecordKey,
        owner: u128,
        lease_ms: u64,
    ) -> StoreFuture<'_, Result<bool, StoreError>> {
        self.renewals.fetch_add(1, Ordering::SeqCst);
        if !self.slow_renewals {
            return self.inner.renew(key, owner, lease_ms);
        }
        let key = *key;
        StoreFuture::Pending(Box::pin(async move {
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
            self.inner.renew(&key, owner, lease_ms).await
        }))
    }

    fn complete(
        &self,
        key: &RecordKey,
        owner: u128,
        completion: Completion,
        ttl_ms: u64,
    ) -> StoreFuture<'_, Result<bool, StoreError>> {
        let fail = match completion {
            Completion::Response(_) => self.fail_responses,
            Completion::NotReplayable { .. } => self
                .fail_markers
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok(),
        };
        if fail {
            return StoreFuture::ready(Err(StoreError::Backend("backend down".into())));
        }
        self.inner.complete(key, owner, completion, ttl_ms)
    }

    fn release(&self, key: &RecordKey, owner: u128) -> StoreFuture<'_, Result<bool, StoreError>> {
        self.inner.release(key, owner)
    }
}

#[actix_rt::test]
async fn a_failing_complete_keeps_the_key_and_retries_get_the_not_replayable_problem() {
    let store = Arc::new(TestStore {
        fail_responses: true,
        ..TestStore::new(MemoryIdempotencyStore::new())
    });
    let api = SecureApi::builder().idempotency_store(store).build();
    let app = test::init_service(app_with(api.clone())).await;
    let uri = "/counted?test=failing-complete";
    let r = send(&app, post(uri, "k")).await;
    assert_eq!(
        r.status, 201,
        "the first client gets the handler's response"
    );
    let r = send(&app, post(uri, "k")).await;
    assert_not_replayable(&r, 201);
    assert_eq!(runs_of("failing-complete"), 1);
}

#[actix_rt::test]
async fn an_exhausted_byte_budget_keeps_the_key_and_retries_get_the_not_replayable_problem() {
    let store = MemoryIdempotencyStore::new()
        .max_bytes(64)
        .when_full(NewClaimsWhenFull::Reject);
    let api = SecureApi::builder()
        .idempotency_store(Arc::new(store))
        .build();
    let app = test::init_service(app_with(api.clone())).await;
    let uri = "/counted?test=byte-budget";
    assert_eq!(send(&app, post(uri, "k")).await.status, 201);
    assert_not_replayable(&send(&app, post(uri, "k")).await, 201);
    assert_eq!(runs_of("byte-budget"), 1);
}

#[actix_rt::test]
async fn a_marker_the_store_refuses_is_retried_and_the_key_never_released() {
    // The store fails the response and the first two markers, then recovers.
    let store = Arc::new(TestStore {
        fail_responses: true,
        fail_markers: AtomicUsize::new(2),
        ..TestStore::new(MemoryIdempotencyStore::new())
    });
    let api = SecureApi::builder().idempotency_store(store).build();
    let app = test::init_service(app_with(api.clone())).await;
    let uri = "/counted?test=marker-retry";
    assert_eq!(send(&app, post(uri, "k")).await.status, 201);
    // Not released: still held by the first request, so a retry is told to wait.
    send(&app, post(uri, "k"))
        .await
        .assert_problem(409, "idempotency-request-in-progress");
    actix_web::rt::time::sleep(Duration::from_millis(400)).await;
    assert_not_replayable(&send(&app, post(uri, "k")).await, 201);
    assert_eq!(runs_of("marker-retry"), 1);
}

#[actix_rt::test]
async fn a_handler_running_longer_than_the_lease_keeps_its_key() {
    let api = SecureApi::builder()
        .idempotency_lease(Duration::from_millis(200))
        .build();
    let app = test::init_service(app_with(api.clone())).await;
    // The handler takes 500 ms; the retry comes at 300 ms, after the first lease ran out.
    let (first, retry) = futures_util::join!(send(&app, post("/lease", "k")), async {
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        send(&app, post("/lease", "k")).await
    });
    assert_eq!(first.status, 201);
    retry.assert_problem(409, "idempotency-request-in-progress");
    assert_eq!(LEASE_RUNS.load(Ordering::SeqCst), 1, "the handler ran once");
    let replay = send(&app, post("/lease", "k")).await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(LEASE_RUNS.load(Ordering::SeqCst), 1);

    // A retry that waits gets the first result, not a second run.
    let (first, retry) = futures_util::join!(send(&app, post("/lease-wait", "k")), async {
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        send(&app, post("/lease-wait", "k")).await
    });
    assert_eq!(first.status, 201);
    assert_eq!(retry.status, 201);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(LEASE_WAIT_RUNS.load(Ordering::SeqCst), 1);
}

#[actix_rt::test]
async fn a_network_store_renews_the_lease_while_the_handler_runs() {
    // Renewals take a 20 ms round trip; the lease is 90 ms, renewed every 30 ms.
    let store = Arc::new(TestStore {
        slow_renewals: true,
        ..TestStore::new(MemoryIdempotencyStore::new())
    });
    let api = SecureApi::builder()
        .idempotency_store(store.clone())
        .idempotency_lease(Duration::from_millis(90))
        .build();
    let app = test::init_service(app_with(api.clone())).await;
    let uri = "/counted?test=network-lease&sleep=500";
    let (first, retry) = futures_util::join!(send(&app, post(uri, "k")), async {
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        send(&app, post(uri, "k")).await
    });
    assert_eq!(first.status, 201);
    retry.assert_problem(409, "idempotency-request-in-progress");
    assert_eq!(runs_of("network-lease"), 1);
    let renewals = store.renewals.load(Ordering::SeqCst);
    assert!(renewals >= 5, "renewed while running: {renewals}");
    // The heartbeat stopped with the handler.
    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(store.renewals.load(Ordering::SeqCst), renewals);
    // A handler that answers at once is not renewed at all.
    let quick = send(&app, post("/counted?test=network-lease-quick", "q")).await;
    assert_eq!(quick.status, 201);
    assert_eq!(store.renewals.load(Ordering::SeqCst), renewals);
}

#[actix_rt::test]
async fn one_client_filling_its_quota_does_not_evict_other_clients_records() {
    // The issue's attack, scaled down: a budget of 64 responses of 1 KiB. One client
    // completes 64 of them; before, that pushed out every other client's records.
    let store = MemoryIdempotencyStore::new().max_bytes(64 * 1_100);
    let api = SecureApi::builder()
        .idempotency_store(Arc::new(store))
        .build();
    let app = test::init_service(app_with(api.clone())).await;
    let uri = "/counted?test=quota&size=1024";
    let as_user =
        |who: &'static str, key: String| post(uri, &key).insert_header(("x-test-subject", who));
    let bob = send(&app, as_user("bob", "b".into())).await;
    assert_eq!(bob.status, 201);
    for n in 0..64 {
        let r = send(&app, as_user("mallory", format!("m-{n}"))).await;
        assert_eq!(r.status, 201);
        assert!(r.header("idempotent-replayed").is_none());
    }
    assert_eq!(runs_of("quota"), 65);
    let replay = send(&app, as_user("bob", "b".into())).await;
    assert_eq!(
        replay.header("idempotent-replayed"),
        Some("true"),
        "bob's record is kept"
    );
    assert_eq!(replay.body, bob.body);
    // Mallory's quota (1/16 of the bytes) holds her newest records; her oldest went.
    let newest = send(&app, as_user("mallory", "m-63".into())).await;
    assert_eq!(newest.header("idempotent-replayed"), Some("true"));
    assert_eq!(runs_of("quota"), 65);
    let oldest = send(&app, as_user("mallory", "m-0".into())).await;
    assert!(oldest.header("idempotent-replayed").is_none());
    assert_eq!(runs_of("quota"), 66);
}

#[actix_rt::test]
async fn keys_are_scoped_to_the_client() {
    let api = SecureApi::builder().build();
    let app = test::init_service(app_with(api.clone())).await;
    let key = "shared-key";
    let alice = send(
        &app,
        order(Some(key), body()).insert_header(("x-test-subject", "alice")),
    )
    .await;
    let mallory = send(
        &app,
        order(Some(key), body()).insert_header(("x-test-subject", "mallory")),
    )
    .await;
    assert_eq!(alice.status, 201);
    assert_eq!(mallory.status, 201);
    assert!(
        mallory.header("idempotent-replayed").is_none(),
        "mallory cannot replay alice's response"
    );
    assert_ne!(alice.json()["id"], mallory.json()["id"]);
    // Anonymous clients are scoped by address.
    let a = send(
        &app,
        order(Some(key), body()).peer_addr("198.51.100.1:1".parse().unwrap()),
    )
    .await;
    let b = send(
        &app,
        order(Some(key), body()).peer_addr("198.51.100.2:1".parse().unwrap()),
    )
    .await;
    assert_ne!(a.json()["id"], b.json()["id"]);
}

#[actix_rt::test]
async fn optional_keys_and_ttl_expiry() {
    let clock = FakeClock::new();
    let api = SecureApi::builder().clock(Arc::new(clock.clone())).build();
    let app = test::init_service(app_with(api.clone())).await;
    let a = send(&app, test::TestRequest::post().uri("/optional")).await;
    let b = send(&app, test::TestRequest::post().uri("/optional")).await;
    assert_ne!(a.body, b.body, "without a key, no idempotency");
    let first = send(&app, post("/optional", "k")).await;
    assert_eq!(send(&app, post("/optional", "k")).await.body, first.body);
    clock.advance(Duration::from_millis(1001));
    let after = send(&app, post("/optional", "k")).await;
    assert_ne!(after.body, first.body, "replays expire with the ttl");
    assert!(after.header("idempotent-replayed").is_none());
}

#[actix_rt::test]
async fn the_body_is_bounded_before_fingerprinting() {
    let api = SecureApi::builder().build();
    let app = test::init_service(app_with(api.clone())).await;
    let big = json!({ "item": "x".repeat(70 * 1024), "quantity": 1 });
    send(&app, order(Some("big"), big))
        .await
        .assert_problem(413, "payload-too-large");
}

#[actix_rt::test]
async fn the_result_is_stored_even_if_the_client_disconnects() {
    let api = SecureApi::builder().build();
    let app = test::init_service(app_with(api.clone())).await;
    // The client gives up after 50 ms; the handler takes 300 ms.
    let gave_up = actix_web::rt::time::timeout(
        Duration::from_millis(50),
        send(&app, post("/slow-dc", "dc")),
    )
    .await;
    assert!(gave_up.is_err());
    actix_web::rt::time::sleep(Duration::from_millis(400)).await;
    let r = send(&app, post("/slow-dc", "dc")).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.header("idempotent-replayed"), Some("true"));
    assert_eq!(DISCONNECT_RUNS.load(Ordering::SeqCst), 1);
}

#[actix_rt::test]
async fn a_handler_that_panics_after_its_client_left_releases_the_key() {
    let api = SecureApi::builder().build();
    let app = test::init_service(app_with(api.clone())).await;
    // The client gives up after 20 ms; the handler panics at 100 ms, in the task it was
    // moved to.
    let gave_up = actix_web::rt::time::timeout(
        Duration::from_millis(20),
        send(&app, post("/slow-panic", "dc-panic")),
    )
    .await;
    assert!(gave_up.is_err());
    actix_web::rt::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(DISCONNECT_PANIC_RUNS.load(Ordering::SeqCst), 1);
    // The key was released: the retry runs the handler again, and its result is kept.
    let r = send(&app, post("/slow-panic", "dc-panic")).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json(), json!({ "run": 2 }));
    let r = send(&app, post("/slow-panic", "dc-panic")).await;
    assert_eq!(r.header("idempotent-replayed"), Some("true"));
    assert_eq!(DISCONNECT_PANIC_RUNS.load(Ordering::SeqCst), 2);
}

static RACE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[secure_endpoint(post("/race"), rate = "unlimited", idempotent)]
async fn race() -> HttpResponse {
    RACE_RUNS.fetch_add(1, Ordering::SeqCst);
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    HttpResponse::Created().json(json!({ "ok": true }))
}

static RACE_WAIT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[secure_endpoint(post("/race-wait"), rate = "unlimited", idempotent(wait = "10s"))]
async fn race_wait() -> HttpResponse {
    RACE_WAIT_RUNS.fetch_add(1, Ordering::SeqCst);
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    HttpResponse::Created().json(json!({ "ok": true }))
}

#[actix_rt::test]
async fn sixty_four_concurrent_requests_across_workers_run_the_handler_once() {
    let api = SecureApi::builder().build();
    let (addr, handle) = common::serve!("127.0.0.1", 2, {
        let api = api.clone();
        move || {
            App::new()
                .wrap(api.layer())
                .service(race)
                .service(race_wait)
        }
    });

    for (path, counter, waits) in [
        ("/race", &RACE_RUNS, false),
        ("/race-wait", &RACE_WAIT_RUNS, true),
    ] {
        let statuses = actix_web::rt::task::spawn_blocking(move || {
            let threads: Vec<_> = (0..64)
                .map(|_| {
                    std::thread::spawn(move || {
                        let r =
                            raw_request(addr, "POST", path, &[("Idempotency-Key", "one-key")], b"")
                                .unwrap();
                        (r.status, r.header("idempotent-replayed").is_some(), r.body)
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().unwrap())
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        assert_eq!(
            counter.load(Ordering::SeqCst),
            1,
            "{path}: the handler ran exactly once"
        );
        let created = statuses
            .iter()
            .filter(|(s, replayed, _)| *s == 201 && !replayed)
            .count();
        assert_eq!(created, 1, "{path}: {statuses:?}");
        for (status, replayed, body) in &statuses {
            if waits {
                assert_eq!(*status, 201, "{path}");
                assert_eq!(body, &statuses.iter().find(|s| !s.1).unwrap().2);
            } else {
                assert!(
                    *status == 409
                        || (*status == 201 && (*replayed || body.as_slice() == br#"{"ok":true}"#)),
                    "{status}"
                );
            }
        }
        if !waits {
            assert!(
                statuses.iter().any(|(s, _, _)| *s == 409),
                "others were told it is in progress"
            );
        }
    }
    handle.stop(true).await;
}
