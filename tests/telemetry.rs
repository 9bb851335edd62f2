//! Security telemetry of the endpoint runner: one audit event per refusal, with the right
//! fields and nothing secret in it, and decision counters that count a scripted run
//! exactly (issue 15).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::dev::Service;
use actix_web::http::header;
use actix_web::{App, test};
use common::{Capture, Reply, send};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use secure_api_runtime::auth::jwt::{AccessGrant, JwtAuth};
use secure_api_runtime::auth::revocation::RevokedTokens;
use secure_api_runtime::prelude::*;
use secure_api_runtime::store::{OnStoreError, StoreError, StoreFuture};
use secure_api_runtime::telemetry::audit::{
    AuditDetail, AuditEvent, AuditKind, AuditSink, AuthFailureClass, StoreKind, StoreOutcome,
};
use secure_api_runtime::telemetry::metrics::{self as names, Outcome};
use secure_api_runtime::throttle::{Decision, LimitKey, Policy, RateLimitStore};
use serde_json::json;

const SECRET: &[u8] = b"telemetry-secret-telemetry-secret-!!";
const CLIENT: &str = "203.0.113.7";

#[derive(serde::Deserialize, SecureInput)]
struct ItemInput {
    #[secure(trim, length(min = 3, max = 20), pattern = "[a-z0-9-]+")]
    name: String,
    #[secure(range(min = 1, max = 100))]
    quantity: u32,
}

#[secure_endpoint(
    post("/t/items"),
    auth(permissions("items:write")),
    idempotent,
    max_body = "1KiB",
    tier(gold = "1000/s")
)]
async fn t_create_item(input: Valid<ItemInput>) -> HttpResponse {
    HttpResponse::Created().json(json!({ "name": input.into_inner().name }))
}

#[secure_endpoint(get("/t/limited"), public, rate = "2/min")]
async fn t_limited() -> &'static str {
    "ok"
}

#[secure_endpoint(get("/t/open"), public, rate = "1000/s")]
async fn t_open() -> &'static str {
    "ok"
}

#[secure_endpoint(get("/t/me"), auth)]
async fn t_me(principal: Principal) -> String {
    principal.subject
}

#[derive(serde::Deserialize, SecureInput)]
struct Owner {
    #[secure(length(max = 8))]
    owner: String,
}

/// Answers with its own errors: 403 unless the principal owns the item, 409 for
/// `taken`, 422 for `invalid`.
#[secure_endpoint(get("/t/owned"), auth)]
async fn t_owned(principal: Principal, q: ValidQuery<Owner>) -> Result<HttpResponse, ApiError> {
    match q.owner.as_str() {
        "taken" => Err(ApiError::new(secure_api_runtime::problems::CONFLICT)),
        "invalid" => {
            let errors: secure_api_runtime::ValidationErrors =
                [secure_api_runtime::validation::Violation::new(
                    "/owner", "reserved",
                )]
                .into_iter()
                .collect();
            Err(ApiError::validation(errors))
        }
        owner => {
            principal.require_owner_or_role(owner, "admin")?;
            Ok(HttpResponse::Ok().finish())
        }
    }
}

#[derive(serde::Deserialize)]
struct Plain {
    n: u32,
}

/// actix's own extractors, whose errors are not secure-api's. The macro refuses them by
/// name (they skip validation); an alias is how an app gets one past it.
type RawJson<T> = actix_web::web::Json<T>;
type RawQuery<T> = actix_web::web::Query<T>;

#[secure_endpoint(post("/t/plain"), public, max_body = "1KiB")]
async fn t_plain(body: RawJson<Plain>) -> String {
    body.n.to_string()
}

#[secure_endpoint(get("/t/plain"), public)]
async fn t_plain_query(q: RawQuery<Plain>) -> String {
    q.n.to_string()
}

/// Answers with a 401 of its own (`?how=own`), of a failed password check
/// (`?how=password`), or of an `AuthFailure` (`?how=malformed`).
#[secure_endpoint(get("/t/own401"), public)]
async fn t_own_401(q: ValidQuery<How>) -> Result<HttpResponse, ApiError> {
    use secure_api_runtime::auth::password::Passwords;
    match q.how.as_str() {
        "own" => Err(ApiError::new(
            secure_api_runtime::problems::INVALID_CREDENTIALS,
        )),
        "password" => {
            let passwords = Passwords::with_params(1024, 1, 1).unwrap();
            let stored = passwords.hash("right").unwrap();
            passwords.verify(Some(&stored), "hunter2-wrong")?;
            Ok(HttpResponse::Ok().finish())
        }
        "malformed" => Err(secure_api_runtime::auth::AuthFailure::Malformed.into()),
        _ => Ok(HttpResponse::Ok().finish()),
    }
}

#[derive(serde::Deserialize, SecureInput)]
struct How {
    #[secure(length(max = 16))]
    how: String,
}

/// Two handlers of one name, in modules of their own.
mod first {
    use secure_api_runtime::prelude::*;

    #[secure_endpoint(get("/t/dup/first"), auth)]
    pub async fn t_dup() -> &'static str {
        "first"
    }
}

mod second {
    use secure_api_runtime::prelude::*;

    #[secure_endpoint(get("/t/dup/second"), public)]
    pub async fn t_dup() -> &'static str {
        "second"
    }
}

/// Releases the handler of `t_slow` once set.
static GATE: AtomicBool = AtomicBool::new(false);

#[secure_endpoint(post("/t/slow"), public, idempotent)]
async fn t_slow() -> HttpResponse {
    while !GATE.load(Ordering::SeqCst) {
        actix_web::rt::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    HttpResponse::Created().finish()
}

fn jwt(revocation: Option<Arc<RevokedTokens>>) -> JwtAuth {
    let builder = JwtAuth::hs256(SECRET.to_vec())
        .issuer("https://issuer.test")
        .audience("api.test");
    match revocation {
        Some(r) => builder.revocation(r),
        None => builder.without_revocation(),
    }
    .build()
    .unwrap()
}

/// An app with a capturing sink and metrics on a recorder of its own.
struct Harness {
    api: SecureApi,
    sink: Arc<Capture>,
    snapshotter: Snapshotter,
    totals: Mutex<Counters>,
}

/// Counter totals by name and sorted labels.
type Counters = std::collections::HashMap<(String, Vec<(String, String)>), u64>;

fn harness(
    configure: impl FnOnce(
        secure_api_runtime::api::SecureApiBuilder,
    ) -> secure_api_runtime::api::SecureApiBuilder,
) -> Harness {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let sink = Arc::new(Capture::default());
    let api = metrics::with_local_recorder(&recorder, || {
        configure(
            SecureApi::builder()
                .log_inventory(false)
                .audit_sink(sink.clone())
                .metrics(true),
        )
        .build()
    });
    Harness {
        api,
        sink,
        snapshotter,
        totals: Mutex::default(),
    }
}

impl Harness {
    /// The value of a counter with exactly these labels (0 when never incremented).
    /// Snapshots drain the debugging recorder's counters: they are added up here.
    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let mut totals = self.totals.lock().unwrap();
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let key = key.key();
            let DebugValue::Counter(n) = value else {
                continue;
            };
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            *totals.entry((key.name().to_owned(), labels)).or_default() += n;
        }
        let mut want: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        want.sort();
        *totals
            .get(&(name.to_owned(), want))
            .unwrap_or_else(|| panic!("no counter {name} {labels:?}"))
    }

    fn decisions(&self, endpoint: &str, outcome: Outcome) -> u64 {
        self.counter(
            names::DECISIONS,
            &[("endpoint", endpoint), ("outcome", outcome.name())],
        )
    }

    fn events(&self, kind: AuditKind) -> u64 {
        self.counter(names::EVENTS, &[("event", kind.name())])
    }
}

macro_rules! app {
    ($api:expr) => {
        test::init_service(
            App::new()
                .wrap($api.layer())
                .service(t_create_item)
                .service(t_limited)
                .service(t_open)
                .service(t_me)
                .service(t_slow)
                .service(t_owned)
                .service(t_plain)
                .service(t_plain_query)
                .service(t_own_401)
                .service(first::t_dup)
                .service(second::t_dup),
        )
        .await
    };
}

fn from_client(req: test::TestRequest) -> test::TestRequest {
    req.peer_addr(format!("{CLIENT}:40000").parse().unwrap())
}

fn post_item(token: Option<&str>, key: Option<&str>, body: &str) -> test::TestRequest {
    let mut req = from_client(test::TestRequest::post().uri("/t/items"))
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(body.to_owned());
    if let Some(token) = token {
        req = req.insert_header((header::AUTHORIZATION, format!("Bearer {token}")));
    }
    if let Some(key) = key {
        req = req.insert_header(("idempotency-key", key));
    }
    req
}

/// The error id of a problem response.
fn instance(reply: &Reply) -> uuid::Uuid {
    let body = reply.json();
    let urn = body["instance"].as_str().expect("instance");
    urn.strip_prefix("urn:uuid:").unwrap().parse().unwrap()
}

/// The event of a refusal from [`CLIENT`].
fn expected(
    error_id: Option<uuid::Uuid>,
    endpoint: Option<&'static str>,
    principal: Option<String>,
    detail: AuditDetail,
) -> AuditEvent {
    let mut event = AuditEvent::new(detail);
    event.error_id = error_id;
    event.endpoint = endpoint;
    event.client = client();
    event.principal = principal;
    event
}

fn client() -> Option<std::net::IpAddr> {
    Some(CLIENT.parse().unwrap())
}

#[actix_rt::test]
async fn each_refusal_emits_one_event_with_its_context_and_error_id() {
    let h = harness(|b| b.jwt(jwt(None)));
    let app = app!(h.api);
    let jwt = jwt(None);
    let writer = jwt
        .issue(&AccessGrant::new("alice").permissions(["items:write"]))
        .unwrap();
    let reader = jwt.issue(&AccessGrant::new("bob")).unwrap();

    // 401 without a token.
    let r = send(&app, post_item(None, Some("k0"), "{}")).await;
    r.assert_problem(401, "invalid-credentials");
    assert_eq!(
        h.sink.take(),
        [expected(
            Some(instance(&r)),
            Some("t_create_item"),
            None,
            AuditDetail::AuthFailed {
                class: AuthFailureClass::Missing
            }
        )]
    );

    // 401 with a malformed and with a forged token.
    let r = send(&app, post_item(Some("not a token"), Some("k0"), "{}")).await;
    r.assert_problem(401, "invalid-credentials");
    let events = h.sink.take();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].detail,
        AuditDetail::AuthFailed {
            class: AuthFailureClass::Malformed
        }
    );
    let forged = format!("{}x", &writer[..writer.len() - 1]);
    let r = send(&app, post_item(Some(&forged), Some("k0"), "{}")).await;
    r.assert_problem(401, "invalid-credentials");
    let events = h.sink.take();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].detail,
        AuditDetail::AuthFailed {
            class: AuthFailureClass::Invalid
        }
    );
    assert_eq!(events[0].error_id, Some(instance(&r)));

    // 403: the principal is known.
    let r = send(&app, post_item(Some(&reader), Some("k0"), "{}")).await;
    r.assert_problem(403, "forbidden");
    assert_eq!(
        h.sink.take(),
        [expected(
            Some(instance(&r)),
            Some("t_create_item"),
            Some("bob".to_owned()),
            AuditDetail::AccessDenied
        )]
    );

    // 400: no key.
    let r = send(&app, post_item(Some(&writer), None, "{}")).await;
    r.assert_problem(400, "idempotency-key-missing");
    assert_eq!(
        h.sink.take(),
        [expected(
            Some(instance(&r)),
            Some("t_create_item"),
            Some("alice".to_owned()),
            AuditDetail::ValidationFailed {
                status: 400,
                problem: "idempotency-key-missing",
                violations: None,
            }
        )]
    );

    // 422: pointers and codes, never values.
    let r = send(
        &app,
        post_item(
            Some(&writer),
            Some("k1"),
            r#"{"name": "NO SPACES ALLOWED", "quantity": 500}"#,
        ),
    )
    .await;
    let body = r.assert_problem(422, "validation-failed");
    let events = h.sink.take();
    assert_eq!(events.len(), 1, "{events:?}");
    let AuditDetail::ValidationFailed {
        status: 422,
        problem: "validation-failed",
        violations: Some(violations),
    } = &events[0].detail
    else {
        panic!("{events:?}")
    };
    let pairs: Vec<(&str, &str)> = violations.iter().map(|v| (v.pointer(), v.code())).collect();
    assert_eq!(
        pairs,
        [("/name", "pattern"), ("/quantity", "range")],
        "{body}"
    );
    assert_eq!(events[0].error_id, Some(instance(&r)));
    assert_eq!(events[0].principal.as_deref(), Some("alice"));
    assert!(!format!("{events:?}").contains("NO SPACES"));

    // 413 from the body limit (declared length), 415, and unreadable JSON.
    let big = format!(r#"{{"name": "{}", "quantity": 1}}"#, "a".repeat(2000));
    let r = send(&app, post_item(Some(&writer), Some("k2"), &big)).await;
    r.assert_problem(413, "payload-too-large");
    let events = h.sink.take();
    assert_eq!(events.len(), 1);
    assert!(matches!(
        events[0].detail,
        AuditDetail::ValidationFailed {
            status: 413,
            problem: "payload-too-large",
            violations: None
        }
    ));
    let r = send(
        &app,
        post_item(Some(&writer), Some("k3"), "name=x")
            .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded")),
    )
    .await;
    r.assert_problem(415, "unsupported-media-type");
    let events = h.sink.take();
    assert!(
        matches!(
            events[..],
            [AuditEvent {
                detail: AuditDetail::ValidationFailed {
                    status: 415,
                    problem: "unsupported-media-type",
                    ..
                },
                ..
            }]
        ),
        "{events:?}"
    );
    let r = send(&app, post_item(Some(&writer), Some("k4"), "{\"name\": ")).await;
    r.assert_problem(400, "malformed-request");
    assert_eq!(h.sink.take().len(), 1);

    // Allowed, replayed: no event. Then the same key for another body: a mismatch.
    let good = r#"{"name": "widget", "quantity": 2}"#;
    let r = send(&app, post_item(Some(&writer), Some("k5"), good)).await;
    assert_eq!(r.status, 201);
    let r = send(&app, post_item(Some(&writer), Some("k5"), good)).await;
    assert_eq!(r.header("idempotent-replayed"), Some("true"));
    assert_eq!(h.sink.take(), []);
    let other = r#"{"name": "gadget", "quantity": 2}"#;
    let r = send(&app, post_item(Some(&writer), Some("k5"), other)).await;
    r.assert_problem(422, "idempotency-key-reused");
    assert_eq!(
        h.sink.take(),
        [expected(
            Some(instance(&r)),
            Some("t_create_item"),
            Some("alice".to_owned()),
            AuditDetail::IdempotencyMismatch {
                not_replayable: false
            }
        )]
    );

    // 429 on the 3rd request of a 2/min endpoint.
    for _ in 0..2 {
        assert_eq!(
            send(
                &app,
                from_client(test::TestRequest::get().uri("/t/limited"))
            )
            .await
            .status,
            200
        );
    }
    let r = send(
        &app,
        from_client(test::TestRequest::get().uri("/t/limited")),
    )
    .await;
    r.assert_problem(429, "rate-limited");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert_eq!(
        h.sink.take(),
        [expected(
            Some(instance(&r)),
            Some("t_limited"),
            None,
            AuditDetail::RateLimited {
                policy: "default",
                tier: "anonymous".to_owned(),
                retry_after_secs: retry,
            }
        )]
    );
    assert_eq!(h.events(AuditKind::AuthFailed), 3);
    assert_eq!(h.events(AuditKind::ValidationFailed), 5);
}

#[actix_rt::test]
async fn a_revoked_token_is_its_own_class() {
    let auth = jwt(Some(Arc::new(RevokedTokens::new())));
    let h = harness(|b| b.jwt(auth.clone()));
    let app = app!(h.api);
    let token = auth.issue(&AccessGrant::new("carol")).unwrap();
    let me = || {
        from_client(test::TestRequest::get().uri("/t/me"))
            .insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
    };
    assert_eq!(send(&app, me()).await.text(), "carol");
    auth.revoke_subject("carol").await.unwrap();
    let r = send(&app, me()).await;
    r.assert_problem(401, "invalid-credentials");
    let events: Vec<_> = h
        .sink
        .take()
        .into_iter()
        .filter(|e| e.kind() == AuditKind::AuthFailed)
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        events[0].detail,
        AuditDetail::AuthFailed {
            class: AuthFailureClass::Revoked
        }
    );
    assert_eq!(events[0].endpoint, Some("t_me"));
}

#[actix_rt::test]
async fn a_key_in_flight_is_a_conflict_event() {
    let h = harness(|b| b);
    let app = app!(h.api);
    let slow = || {
        from_client(test::TestRequest::post().uri("/t/slow"))
            .insert_header(("idempotency-key", "same"))
            .to_request()
    };
    let first = actix_rt::spawn(app.call(slow()));
    // Let the first request claim the key and wait at the gate.
    for _ in 0..10 {
        actix_rt::task::yield_now().await;
    }
    let res = test::try_call_service(&app, slow()).await.unwrap();
    let status = res.status();
    let body: serde_json::Value = test::read_body_json(res).await;
    assert_eq!(status, 409, "{body}");
    GATE.store(true, Ordering::SeqCst);
    assert_eq!(first.await.unwrap().unwrap().status(), 201);
    let events = h.sink.take();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].detail, AuditDetail::IdempotencyConflict);
    assert_eq!(
        events[0].error_id.map(|id| id.urn().to_string()),
        body["instance"].as_str().map(str::to_owned)
    );
    assert_eq!(h.decisions("t_slow", Outcome::Conflict), 1);
    assert_eq!(h.decisions("t_slow", Outcome::Allowed), 1);
}

/// A rate-limit store whose backend is down.
struct Down;

impl RateLimitStore for Down {
    fn acquire(
        &self,
        _: LimitKey,
        _: &Policy,
        _: u32,
    ) -> StoreFuture<'_, Result<Decision, StoreError>> {
        StoreFuture::ready(Err(StoreError::Backend("connection refused".into())))
    }

    fn refund(&self, _: LimitKey, _: &Policy, _: u32) -> StoreFuture<'_, Result<(), StoreError>> {
        StoreFuture::ready(Err(StoreError::Backend("connection refused".into())))
    }
}

#[actix_rt::test]
async fn a_store_failure_is_audited_and_counted_open_or_closed() {
    for (policy, status, outcome) in [
        (OnStoreError::FailClosed, 503, StoreOutcome::FailedClosed),
        (OnStoreError::Allow, 200, StoreOutcome::FailedOpen),
    ] {
        let h = harness(|b| b.rate_limit_store(Arc::new(Down)).on_limiter_error(policy));
        let app = app!(h.api);
        let r = send(&app, from_client(test::TestRequest::get().uri("/t/open"))).await;
        assert_eq!(r.status, status);
        let events = h.sink.take();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(
            events[0].detail,
            AuditDetail::StoreFailure {
                store: StoreKind::RateLimit,
                outcome,
                error: "backend",
            }
        );
        assert_eq!(events[0].endpoint, Some("t_open"));
        assert_eq!(events[0].client, client());
        assert_eq!(
            h.counter(
                names::STORE_FAILURES,
                &[("store", "rate_limit"), ("outcome", outcome.name())]
            ),
            1
        );
        let (unavailable, allowed) = if status == 503 {
            assert_eq!(events[0].error_id, Some(instance(&r)));
            (1, 0)
        } else {
            assert_eq!(events[0].error_id, None);
            (0, 1)
        };
        assert_eq!(h.decisions("t_open", Outcome::Unavailable), unavailable);
        assert_eq!(h.decisions("t_open", Outcome::Allowed), allowed);
    }
}

/// Every outcome of `t_create_item`, `t_limited` and `t_open`, in a scripted run: the
/// counters hold exactly the decisions made.
#[actix_rt::test]
async fn the_decision_counters_count_a_scripted_run_exactly() {
    let auth = jwt(None);
    let h = harness(|b| b.jwt(auth.clone()));
    let app = app!(h.api);
    let writer = auth
        .issue(&AccessGrant::new("alice").permissions(["items:write"]))
        .unwrap();
    let gold = auth
        .issue(
            &AccessGrant::new("gina")
                .permissions(["items:write"])
                .tier("gold"),
        )
        .unwrap();
    let reader = auth.issue(&AccessGrant::new("bob")).unwrap();
    let good = r#"{"name": "widget", "quantity": 2}"#;

    let script: Vec<(test::TestRequest, u16)> = vec![
        (post_item(None, Some("a"), good), 401),
        (post_item(Some("garbage.token.here"), Some("a"), good), 401),
        (post_item(Some(&reader), Some("a"), good), 403),
        (post_item(Some(&reader), Some("a"), good), 403),
        (post_item(Some(&writer), None, good), 400),
        (post_item(Some(&writer), Some(""), good), 400),
        (post_item(Some(&writer), Some("b"), "{"), 400),
        (
            post_item(Some(&writer), Some("c"), r#"{"name": "x", "quantity": 1}"#),
            422,
        ),
        (post_item(Some(&writer), Some("d"), &"x".repeat(5000)), 413),
        (
            post_item(Some(&writer), Some("e"), good)
                .insert_header((header::CONTENT_TYPE, "text/plain")),
            415,
        ),
        (post_item(Some(&writer), Some("f"), good), 201),
        (post_item(Some(&gold), Some("g"), good), 201),
        (post_item(Some(&writer), Some("f"), good), 201),
        (post_item(Some(&writer), Some("f"), good), 201),
        (
            post_item(
                Some(&writer),
                Some("f"),
                r#"{"name": "other", "quantity": 2}"#,
            ),
            422,
        ),
    ];
    for (i, (req, status)) in script.into_iter().enumerate() {
        let r = send(&app, req).await;
        assert_eq!(r.status, status, "step {i}: {}", r.text());
    }
    for _ in 0..5 {
        send(
            &app,
            from_client(test::TestRequest::get().uri("/t/limited")),
        )
        .await;
        send(&app, from_client(test::TestRequest::get().uri("/t/open"))).await;
    }

    let expect = |endpoint: &str, counts: &[(Outcome, u64)]| {
        for outcome in Outcome::ALL {
            let want = counts
                .iter()
                .find(|(o, _)| *o == outcome)
                .map_or(0, |(_, n)| *n);
            assert_eq!(h.decisions(endpoint, outcome), want, "{endpoint} {outcome}");
        }
    };
    expect(
        "t_create_item",
        &[
            (Outcome::Unauthenticated, 2),
            (Outcome::Forbidden, 2),
            (Outcome::Malformed, 3),
            (Outcome::Invalid, 1),
            (Outcome::TooLarge, 1),
            (Outcome::UnsupportedMediaType, 1),
            (Outcome::Allowed, 2),
            (Outcome::Replayed, 2),
            (Outcome::Conflict, 1),
        ],
    );
    expect(
        "t_limited",
        &[(Outcome::Allowed, 2), (Outcome::RateLimited, 3)],
    );
    expect("t_open", &[(Outcome::Allowed, 5)]);
    assert_eq!(
        h.counter(
            names::RATE_LIMITED,
            &[("endpoint", "t_limited"), ("tier", "default")]
        ),
        3
    );
    assert_eq!(
        h.counter(
            names::RATE_LIMITED,
            &[("endpoint", "t_create_item"), ("tier", "gold")]
        ),
        0
    );
    for (kind, n) in [
        (AuditKind::AuthFailed, 2),
        (AuditKind::AccessDenied, 2),
        (AuditKind::ValidationFailed, 6),
        (AuditKind::IdempotencyMismatch, 1),
        (AuditKind::RateLimited, 3),
        (AuditKind::IdempotencyConflict, 0),
        (AuditKind::StoreFailure, 0),
    ] {
        assert_eq!(h.events(kind), n, "{kind}");
    }
    // The sink saw the same events as the counters.
    assert_eq!(h.sink.take().len(), 2 + 2 + 6 + 1 + 3);
    // No label anywhere holds an address, a subject or a key.
    for (key, _, _, _) in h.snapshotter.snapshot().into_vec() {
        for label in key.key().labels() {
            for needle in [CLIENT, "alice", "gina", "bob", "widget"] {
                assert!(!label.value().contains(needle), "{label:?}");
            }
        }
    }
}

/// A sink that wants nothing: it is asked, and never given an event.
#[derive(Default)]
struct WantsNothing(std::sync::atomic::AtomicUsize);

impl AuditSink for WantsNothing {
    fn wants(&self, _: AuditKind) -> bool {
        self.0.fetch_add(1, Ordering::SeqCst);
        false
    }

    fn record(&self, event: &AuditEvent) {
        panic!("an event the sink did not want was recorded: {event:?}");
    }
}

/// Without metrics nothing is registered with the recorder; a sink that wants nothing is
/// asked once per refusal and never given an event.
#[actix_rt::test]
async fn without_metrics_nothing_is_registered_and_unwanted_events_are_not_recorded() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let sink = Arc::new(WantsNothing::default());
    let api = metrics::with_local_recorder(&recorder, || {
        SecureApi::builder()
            .log_inventory(false)
            .audit_sink(sink.clone())
            .build()
    });
    let app = app!(api);
    let mut refused = 0;
    for _ in 0..4 {
        let r = send(
            &app,
            from_client(test::TestRequest::get().uri("/t/limited")),
        )
        .await;
        refused += usize::from(r.status == 429);
    }
    assert_eq!(refused, 2);
    assert_eq!(sink.0.load(Ordering::SeqCst), 2);
    assert!(snapshotter.snapshot().into_vec().is_empty());
}

/// Both: the test's capture and the default log sink (with a large budget).
struct Tee(Capture, secure_api_runtime::telemetry::audit::LogSink);

impl AuditSink for Tee {
    fn record(&self, event: &AuditEvent) {
        self.0.record(event);
        if self.1.wants(event.kind()) {
            self.1.record(event);
        }
    }
}

/// Hostile requests carrying secrets everywhere a client can put them: no token, password,
/// key or input value reaches an event or any log line, and the log sink writes its
/// structured fields.
#[actix_rt::test]
async fn no_secret_reaches_an_event_or_a_log_line_under_hostile_input() {
    let logs = common::log_capture();
    let auth = jwt(None);
    let tee = Arc::new(Tee(
        Capture::default(),
        secure_api_runtime::telemetry::audit::LogSink::with_budget(10_000, 10_000),
    ));
    let api = SecureApi::builder()
        .log_inventory(false)
        .jwt(auth.clone())
        .audit_sink(tee.clone())
        .build();
    let app = app!(api);
    let writer = auth
        .issue(&AccessGrant::new("alice").permissions(["items:write"]))
        .unwrap();
    const MARK: &str = "S3CR3T";
    let forged_token = format!("eyJhbGciOiJIUzI1NiJ9.{MARK}TOKEN.c2ln");
    let valid_but_tampered = format!("{writer}{MARK}");
    let bodies = [
        format!(r#"{{"name": "{MARK}-name", "quantity": 1000}}"#),
        format!(r#"{{"name": "ok-name", "quantity": 1, "password": "hunter2-{MARK}"}}"#),
        format!(r#"{{"name": "{MARK}"#),
        format!(r#"{{"name": ["{MARK}"], "quantity": "{MARK}"}}"#),
        format!("{}{MARK}{}", "[".repeat(200), "]".repeat(200)),
        format!(r#"{{"name": "{}", "quantity": 1}}"#, MARK.repeat(400)),
        format!("\u{0}{MARK}\u{fffd}"),
    ];
    let mut requests = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let key = format!("{MARK}-key-{i}");
        requests.push(post_item(Some(&writer), Some(&key), body));
        requests.push(post_item(Some(&forged_token), Some(&key), body));
        requests.push(post_item(Some(&valid_but_tampered), Some(&key), body));
        requests.push(
            post_item(Some(&writer), Some(&key), body)
                .insert_header((header::CONTENT_TYPE, format!("text/{MARK}"))),
        );
    }
    // The same key for another body, a key that is not a key, a non-bearer scheme, and a
    // query string and path that carry the secret.
    requests.push(post_item(
        Some(&writer),
        Some(&format!("{MARK}-key-0")),
        r#"{"name": "fresh", "quantity": 1}"#,
    ));
    requests.push(post_item(
        Some(&writer),
        Some(&format!("{MARK} with spaces")),
        r#"{"name": "fresh", "quantity": 1}"#,
    ));
    requests.push(
        from_client(test::TestRequest::get().uri(&format!("/t/me?token={MARK}")))
            .insert_header((header::AUTHORIZATION, format!("Basic {MARK}"))),
    );
    requests.push(from_client(
        test::TestRequest::get().uri(&format!("/t/{MARK}/x?password={MARK}")),
    ));
    let mut refusals = 0;
    for req in requests {
        let r = send(&app, req).await;
        assert!(r.status.is_client_error() || r.status.is_success(), "{r:?}");
        if r.status.is_client_error() {
            refusals += 1;
            r.assert_leaks_none(&[MARK]);
        }
    }
    let events = tee.0.take();
    // One event per refusal by the endpoints (the unrouted path is a 404 of the layer,
    // not a decision of an endpoint).
    assert_eq!(events.len(), refusals - 1, "{events:#?}");
    let dump = format!("{events:?}");
    assert!(!dump.contains(MARK), "an event carries a secret: {dump}");
    let lines = logs.lines();
    for line in &lines {
        assert!(!line.contains(MARK), "a log line carries a secret: {line}");
        assert!(!line.contains("hunter2"), "{line}");
    }
    // The audit lines carry the fields as key-values.
    let audit: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains(" secure_api::audit ") && l.contains("endpoint=t_create_item"))
        .collect();
    assert!(
        audit.iter().any(
            |l| l.starts_with("INFO secure_api::audit audit auth_failed")
                && l.contains(" event=auth_failed")
                && l.contains(&format!(" client={CLIENT}"))
                && l.contains(" class=invalid")
                && l.contains(" error_id=")
        ),
        "{audit:#?}"
    );
    assert!(
        audit.iter().any(|l| l.contains(" event=validation_failed")
            && l.contains(" principal=alice")
            && l.contains(" violations=/name:pattern /quantity:range")),
        "{audit:#?}"
    );
}

/// A flood of refusals writes at most the sink's budget of lines, and the next line says
/// how many were left out.
#[actix_rt::test]
async fn the_log_sink_is_rate_limited_per_kind() {
    use secure_api_runtime::telemetry::audit::LogSink;
    let logs = common::log_capture();
    let sink = Arc::new(LogSink::with_budget(1, 3));
    let api = SecureApi::builder()
        .log_inventory(false)
        .jwt(jwt(None))
        .audit_sink(sink.clone())
        .build();
    let app = app!(api);
    let me = || {
        test::TestRequest::get()
            .uri("/t/me")
            .peer_addr("198.51.100.77:1000".parse().unwrap())
    };
    for _ in 0..40 {
        assert_eq!(send(&app, me()).await.status, 401);
    }
    let written = logs
        .lines()
        .iter()
        .filter(|l| l.contains(" event=auth_failed") && l.contains("client=198.51.100.77"))
        .count();
    // 3 at once, and at most one more per second the loop took.
    assert!((3..=4).contains(&written), "{written} lines");
    assert!(sink.suppressed(AuditKind::AuthFailed) >= 36);
    // Other kinds have their own budget.
    assert_eq!(sink.suppressed(AuditKind::RateLimited), 0);
}

/// A handler's own errors are counted by their problem; its 403 is an access denial and its
/// 422 a validation failure, each one event; its other problems are its business.
#[actix_rt::test]
async fn a_handlers_own_refusals_are_counted_and_audited_by_their_problem() {
    let auth = jwt(None);
    let h = harness(|b| b.jwt(auth.clone()));
    let app = app!(h.api);
    let dave = auth.issue(&AccessGrant::new("dave")).unwrap();
    let get = |owner: &str| {
        from_client(test::TestRequest::get().uri(&format!("/t/owned?owner={owner}")))
            .insert_header((header::AUTHORIZATION, format!("Bearer {dave}")))
    };
    assert_eq!(send(&app, get("dave")).await.status, 200);
    let r = send(&app, get("erin")).await;
    r.assert_problem(403, "forbidden");
    assert_eq!(
        h.sink.take(),
        [expected(
            Some(instance(&r)),
            Some("t_owned"),
            Some("dave".to_owned()),
            AuditDetail::AccessDenied
        )]
    );
    send(&app, get("taken"))
        .await
        .assert_problem(409, "conflict");
    assert_eq!(h.sink.take(), []);
    let r = send(&app, get("invalid")).await;
    r.assert_problem(422, "validation-failed");
    let events = h.sink.take();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].error_id, Some(instance(&r)));
    // The query extractor's own refusal.
    let r = send(&app, get("much-too-long")).await;
    r.assert_problem(422, "validation-failed");
    assert_eq!(h.sink.take().len(), 1);
    for (outcome, n) in [
        (Outcome::Allowed, 2),
        (Outcome::Forbidden, 1),
        (Outcome::Invalid, 2),
        (Outcome::Conflict, 0),
    ] {
        assert_eq!(h.decisions("t_owned", outcome), n, "{outcome}");
    }
}

/// The refusals of actix's own extractors (`web::Json`, `web::Query`) are problems whose
/// `instance` is their event's error id, as secure-api's own are.
#[actix_rt::test]
async fn an_actix_extractor_refusal_carries_the_problems_error_id() {
    let h = harness(|b| b);
    let app = app!(h.api);
    let marker = "hunter2-extractor-marker";
    let plain = |ct: &str, body: String| {
        from_client(test::TestRequest::post().uri("/t/plain"))
            .insert_header((header::CONTENT_TYPE, ct.to_owned()))
            .set_payload(body)
    };
    let cases = [
        (
            plain("application/json", format!(r#"{{"n": "{marker}"}}"#)),
            400,
            "malformed-request",
        ),
        (
            // actix answers a wrong content type with a 400.
            plain("text/plain", format!(r#"{{"n": "{marker}"}}"#)),
            400,
            "malformed-request",
        ),
        (
            plain(
                "application/json",
                format!(r#"{{"n": "{}"}}"#, "x".repeat(2048)),
            ),
            413,
            "payload-too-large",
        ),
        (
            from_client(test::TestRequest::get().uri(&format!("/t/plain?n={marker}"))),
            400,
            "malformed-request",
        ),
    ];
    for (req, status, slug) in cases {
        let r = send(&app, req).await;
        r.assert_problem(status, slug);
        assert!(!r.text().contains(marker), "{}", r.text());
        let events = h.sink.take();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].error_id, Some(instance(&r)), "{slug}");
        assert_eq!(events[0].client, client());
        assert!(
            matches!(
                events[0].detail,
                AuditDetail::ValidationFailed { status: s, violations: None, .. } if s == status
            ),
            "{:?}",
            events[0].detail
        );
        assert!(!format!("{events:?}").contains(marker));
    }
    assert_eq!(h.decisions("t_plain", Outcome::Malformed), 2);
    assert_eq!(h.decisions("t_plain", Outcome::TooLarge), 1);
    assert_eq!(h.decisions("t_plain_query", Outcome::Malformed), 1);
    // A good request is allowed and emits nothing.
    let r = send(
        &app,
        from_client(test::TestRequest::get().uri("/t/plain?n=7")),
    )
    .await;
    assert_eq!((r.status.as_u16(), r.text()), (200, "7".to_owned()));
    assert!(h.sink.take().is_empty());
}

/// Two handlers with one name count into series of their own, named by their module path,
/// and their events say which one refused.
#[actix_rt::test]
async fn handlers_sharing_a_name_are_told_apart_by_their_module_path() {
    let h = harness(|b| b.jwt(jwt(None)));
    let app = app!(h.api);
    let get = |uri: &str| from_client(test::TestRequest::get().uri(uri));
    let r = send(&app, get("/t/dup/first")).await;
    r.assert_problem(401, "invalid-credentials");
    let events = h.sink.take();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].endpoint, Some("telemetry::first::t_dup"));
    for _ in 0..2 {
        let r = send(&app, get("/t/dup/second")).await;
        assert_eq!((r.status.as_u16(), r.text()), (200, "second".to_owned()));
    }
    assert_eq!(
        h.decisions("telemetry::first::t_dup", Outcome::Unauthenticated),
        1
    );
    assert_eq!(h.decisions("telemetry::first::t_dup", Outcome::Allowed), 0);
    assert_eq!(h.decisions("telemetry::second::t_dup", Outcome::Allowed), 2);
    // No series of the bare name was registered.
    let endpoints: Vec<String> = h
        .totals
        .lock()
        .unwrap()
        .keys()
        .flat_map(|(_, labels)| labels.iter())
        .filter(|(k, _)| k == "endpoint")
        .map(|(_, v)| v.clone())
        .collect();
    assert!(endpoints.iter().any(|e| e == "telemetry::second::t_dup"));
    assert!(!endpoints.iter().any(|e| e == "t_dup"), "{endpoints:?}");
    // A unique name stays unqualified.
    send(&app, get("/t/open")).await;
    assert_eq!(h.decisions("t_open", Outcome::Allowed), 1);
}

/// A 401 the handler answers with is one `auth_failed` event, classed by what made it: the
/// handler's own `ApiError`, a failed password check, an `AuthFailure`.
#[actix_rt::test]
async fn a_handlers_own_401_is_one_auth_failed_event_of_its_class() {
    let h = harness(|b| b);
    let app = app!(h.api);
    for (how, class) in [
        ("own", AuthFailureClass::Handler),
        ("password", AuthFailureClass::WrongPassword),
        ("malformed", AuthFailureClass::Malformed),
    ] {
        let uri = format!("/t/own401?how={how}");
        let r = send(&app, from_client(test::TestRequest::get().uri(&uri))).await;
        r.assert_problem(401, "invalid-credentials");
        assert_eq!(
            h.sink.take(),
            [expected(
                Some(instance(&r)),
                Some("t_own_401"),
                None,
                AuditDetail::AuthFailed { class }
            )],
            "{how}"
        );
    }
    assert_eq!(h.decisions("t_own_401", Outcome::Unauthenticated), 3);
    let failed = [("event", "auth_failed")];
    assert_eq!(h.counter(names::EVENTS, &failed), 3);
}
