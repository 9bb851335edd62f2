//! `#[secure_endpoint]` end to end: registration, per-client rate limits, client identity
//! behind proxies, tiers, and the RateLimit fields.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Service;
use actix_web::http::header;
use actix_web::{App, HttpMessage, test, web};
use common::{Reply, send};
use secure_api_runtime::auth::Principal;
use secure_api_runtime::clock::FakeClock;
use secure_api_runtime::prelude::*;
use secure_api_runtime::throttle::Rate;
use secure_api_runtime::throttle::memory::UntrackedClients;
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize, SecureInput)]
struct Note {
    #[secure(trim, length(min = 1, max = 200))]
    text: String,
}

#[secure_endpoint(post("/notes"), rate = "3/s")]
async fn create_note(note: Valid<Note>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Created().json(json!({ "text": note.into_inner().text })))
}

#[secure_endpoint(get("/notes/{id}"), rate = "100/s")]
async fn get_note(id: web::Path<u32>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "id": id.into_inner() }))
}

#[secure_endpoint(rate = "2/min", burst = 1)]
async fn slow(req: actix_web::HttpRequest) -> String {
    format!("hello {}", req.path())
}

#[secure_endpoint(get("/free"), rate = "unlimited")]
async fn free() -> &'static str {
    "free"
}

#[secure_endpoint(get("/default"))]
async fn defaulted() -> &'static str {
    "default"
}

#[secure_endpoint(get("/window"), rate = "3/s", algorithm = "sliding_window")]
async fn window() -> &'static str {
    "window"
}

#[secure_endpoint(get("/expensive"), rate = "10/s", cost = 4)]
async fn expensive() -> &'static str {
    "expensive"
}

#[secure_endpoint(post("/small"), rate = "unlimited", max_body = "64B")]
async fn small(note: Valid<Note>) -> String {
    note.into_inner().text
}

#[secure_endpoint(
    get("/tiered"),
    rate = "5/s",
    tier(anonymous = "1/s", premium = "20/s")
)]
async fn tiered() -> &'static str {
    "tiered"
}

#[secure_endpoint(get("/by-ip"), rate = "2/s", key = "ip")]
async fn by_ip() -> &'static str {
    "by-ip"
}

struct Harness {
    clock: FakeClock,
    api: SecureApi,
}

fn harness(
    configure: impl FnOnce(
        secure_api_runtime::api::SecureApiBuilder,
    ) -> secure_api_runtime::api::SecureApiBuilder,
) -> Harness {
    let clock = FakeClock::new();
    clock.advance(Duration::from_secs(1));
    let api = configure(SecureApi::builder().clock(Arc::new(clock.clone()))).build();
    Harness { clock, api }
}

macro_rules! app {
    ($h:expr) => {
        test::init_service(
            App::new()
                .wrap_fn(|req, srv| {
                    // An authenticating middleware of the app: a principal from a test header.
                    if let Some(sub) = req
                        .headers()
                        .get("x-test-subject")
                        .and_then(|v| v.to_str().ok())
                    {
                        let tier = req
                            .headers()
                            .get("x-test-tier")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("user")
                            .to_owned();
                        let mut principal = Principal::new(sub);
                        principal.tier = tier;
                        req.extensions_mut().insert(principal);
                    }
                    srv.call(req)
                })
                .wrap($h.api.layer())
                .service(create_note)
                .service(get_note)
                .service(free)
                .service(defaulted)
                .service(window)
                .service(expensive)
                .service(small)
                .service(tiered)
                .service(by_ip)
                .service(web::resource("/slow").route(web::get().to(slow))),
        )
        .await
    };
}

fn from(ip: &str) -> SocketAddr {
    format!("{ip}:40000").parse().unwrap()
}

fn get(path: &str, ip: &str) -> test::TestRequest {
    test::TestRequest::get().uri(path).peer_addr(from(ip))
}

fn note(ip: &str, text: &str) -> test::TestRequest {
    test::TestRequest::post()
        .uri("/notes")
        .peer_addr(from(ip))
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(json!({ "text": text }).to_string())
}

/// Parses `"name";k=v;k=v` into (name, [(k, v)]).
fn structured(value: &str) -> (String, Vec<(String, u64)>) {
    let mut parts = value.split(';');
    let name = parts.next().unwrap();
    assert!(
        name.starts_with('"') && name.ends_with('"') && name.len() > 2,
        "{value}"
    );
    let params = parts
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or_else(|| panic!("{value}"));
            (
                k.to_owned(),
                v.parse().unwrap_or_else(|_| panic!("{value}")),
            )
        })
        .collect();
    (name.trim_matches('"').to_owned(), params)
}

fn assert_ratelimit_fields(r: &Reply, name: &str, q: u64, w: u64) -> (u64, u64) {
    let (pname, policy) = structured(r.header("ratelimit-policy").expect("RateLimit-Policy"));
    assert_eq!(pname, name);
    assert_eq!(policy, vec![("q".to_owned(), q), ("w".to_owned(), w)]);
    let (lname, limit) = structured(r.header("ratelimit").expect("RateLimit"));
    assert_eq!(lname, name);
    assert_eq!(limit.len(), 2);
    assert_eq!(limit[0].0, "r");
    assert_eq!(limit[1].0, "t");
    (limit[0].1, limit[1].1)
}

#[actix_rt::test]
async fn route_form_registers_and_runs_the_handler_with_its_extractors() {
    let h = harness(|b| b);
    let app = app!(h);
    let r = send(&app, note("192.0.2.1", "  hello ")).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json(), json!({"text": "hello"}));
    r.assert_security_headers();
    let (remaining, reset) = assert_ratelimit_fields(&r, "default", 3, 1);
    assert_eq!(remaining, 2);
    assert_eq!(reset, 1);

    let r = send(&app, get("/notes/42", "192.0.2.1")).await;
    assert_eq!(r.json(), json!({"id": 42}));
    let r = send(&app, get("/notes/abc", "192.0.2.1")).await;
    r.assert_problem(404, "not-found");

    // Invalid input still goes through the handler's own extractor.
    let r = send(&app, note("192.0.2.1", "   ")).await;
    r.assert_problem(422, "validation-failed");
}

#[actix_rt::test]
async fn route_less_form_works_with_web_resource() {
    let h = harness(|b| b);
    let app = app!(h);
    let r = send(&app, get("/slow", "192.0.2.1")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello /slow");
    assert_ratelimit_fields(&r, "default", 2, 60);
    let r = send(&app, get("/slow", "192.0.2.1")).await;
    r.assert_problem(429, "rate-limited");
    // burst 1 at 2/min: the next token comes after 30 s.
    assert_eq!(r.header("retry-after"), Some("30"));
    let r = send(
        &app,
        test::TestRequest::post()
            .uri("/slow")
            .peer_addr(from("192.0.2.1")),
    )
    .await;
    r.assert_problem(405, "method-not-allowed");
}

#[actix_rt::test]
async fn exactly_burst_then_rate_per_client() {
    let h = harness(|b| b);
    let app = app!(h);
    for i in 0..3 {
        let r = send(&app, note("192.0.2.1", "x")).await;
        assert_eq!(r.status, 201, "request {i}");
    }
    let r = send(&app, note("192.0.2.1", "x")).await;
    let body = r.assert_problem(429, "rate-limited");
    assert_eq!(r.header("retry-after"), Some("1"));
    let (remaining, _) = assert_ratelimit_fields(&r, "default", 3, 1);
    assert_eq!(remaining, 0);
    r.assert_leaks_none(&["192.0.2.1"]);
    assert!(body.get("errors").is_none());

    // Another client is not affected.
    let r = send(&app, note("192.0.2.2", "x")).await;
    assert_eq!(r.status, 201);

    // One token per 333.3 ms comes back.
    h.clock.advance(Duration::from_millis(334));
    assert_eq!(send(&app, note("192.0.2.1", "x")).await.status, 201);
    assert_eq!(send(&app, note("192.0.2.1", "x")).await.status, 429);
}

#[actix_rt::test]
async fn a_limited_request_is_refused_before_its_body_is_read() {
    let h = harness(|b| b);
    let app = app!(h);
    for _ in 0..3 {
        send(&app, note("192.0.2.1", "x")).await;
    }
    let r = send(
        &app,
        test::TestRequest::post()
            .uri("/notes")
            .peer_addr(from("192.0.2.1"))
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .set_payload("{not json"),
    )
    .await;
    r.assert_problem(429, "rate-limited");
}

#[actix_rt::test]
async fn retry_after_is_at_least_one_second_for_fast_limits() {
    let h = harness(|b| b);
    let app = app!(h);
    for _ in 0..100 {
        assert_eq!(send(&app, get("/notes/1", "192.0.2.9")).await.status, 200);
    }
    let r = send(&app, get("/notes/1", "192.0.2.9")).await;
    r.assert_problem(429, "rate-limited");
    // The next token is 10 ms away: rounded up to a whole second.
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_ratelimit_fields(&r, "default", 100, 1);
}

#[actix_rt::test]
async fn spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let h = harness(|b| b.trust_proxy("10.0.0.0/8".parse().unwrap()));
    let app = app!(h);
    for i in 0..3 {
        let r = send(
            &app,
            note("198.51.100.4", "x").insert_header(("x-forwarded-for", format!("203.0.113.{i}"))),
        )
        .await;
        assert_eq!(r.status, 201);
    }
    // Still the same client, whatever it claims.
    let r = send(
        &app,
        note("198.51.100.4", "x").insert_header(("x-forwarded-for", "203.0.113.200")),
    )
    .await;
    r.assert_problem(429, "rate-limited");
}

#[actix_rt::test]
async fn a_trusted_proxy_chain_resolves_to_the_client() {
    let h = harness(|b| b.trust_proxy("10.0.0.0/8".parse().unwrap()));
    let app = app!(h);
    // Through our proxy, clients are told apart by the address the proxy saw, and what a
    // client writes to the left of it is ignored.
    for _ in 0..3 {
        let r = send(
            &app,
            note("10.0.0.2", "x").insert_header(("x-forwarded-for", "6.6.6.6, 203.0.113.7")),
        )
        .await;
        assert_eq!(r.status, 201);
    }
    let r = send(
        &app,
        note("10.0.0.2", "x").insert_header(("x-forwarded-for", "7.7.7.7, 203.0.113.7")),
    )
    .await;
    r.assert_problem(429, "rate-limited");
    let r = send(
        &app,
        note("10.0.0.2", "x").insert_header(("x-forwarded-for", "203.0.113.8")),
    )
    .await;
    assert_eq!(r.status, 201);
}

#[actix_rt::test]
async fn ipv6_clients_are_grouped_by_prefix() {
    let h = harness(|b| b);
    let app = app!(h);
    for i in 1..=3 {
        let ip = format!("[2001:db8:1:2::{i}]:4000");
        let r = send(&app, note("192.0.2.1", "x").peer_addr(ip.parse().unwrap())).await;
        assert_eq!(r.status, 201);
    }
    let r = send(
        &app,
        note("192.0.2.1", "x").peer_addr("[2001:db8:1:2:ffff::9]:1".parse().unwrap()),
    )
    .await;
    r.assert_problem(429, "rate-limited");
    let r = send(
        &app,
        note("192.0.2.1", "x").peer_addr("[2001:db8:1:3::1]:1".parse().unwrap()),
    )
    .await;
    assert_eq!(r.status, 201);
}

#[actix_rt::test]
async fn unlimited_endpoints_are_never_limited_and_have_no_fields() {
    let h = harness(|b| b);
    let app = app!(h);
    for _ in 0..500 {
        let r = send(&app, get("/free", "192.0.2.1")).await;
        assert_eq!(r.status, 200);
        assert!(r.header("ratelimit").is_none());
    }
}

#[actix_rt::test]
async fn endpoints_without_a_rate_get_the_app_default() {
    let h = harness(|b| b.default_rate(Rate::per_second(2)));
    let app = app!(h);
    for _ in 0..2 {
        let r = send(&app, get("/default", "192.0.2.1")).await;
        assert_eq!(r.status, 200);
        assert_ratelimit_fields(&r, "default", 2, 1);
    }
    send(&app, get("/default", "192.0.2.1"))
        .await
        .assert_problem(429, "rate-limited");
}

#[actix_rt::test]
async fn sliding_window_allows_at_most_n_in_any_window() {
    let h = harness(|b| b);
    let app = app!(h);
    for _ in 0..3 {
        assert_eq!(send(&app, get("/window", "192.0.2.1")).await.status, 200);
        h.clock.advance(Duration::from_millis(300));
    }
    // 900 ms after the first: still three in the window.
    let r = send(&app, get("/window", "192.0.2.1")).await;
    r.assert_problem(429, "rate-limited");
    assert_eq!(r.header("retry-after"), Some("1"));
    h.clock.advance(Duration::from_millis(100));
    // The first admission has left the window.
    assert_eq!(send(&app, get("/window", "192.0.2.1")).await.status, 200);
    assert_eq!(send(&app, get("/window", "192.0.2.1")).await.status, 429);
}

#[actix_rt::test]
async fn cost_charges_several_units() {
    let h = harness(|b| b);
    let app = app!(h);
    let r = send(&app, get("/expensive", "192.0.2.1")).await;
    assert_eq!(assert_ratelimit_fields(&r, "default", 10, 1).0, 6);
    assert_eq!(send(&app, get("/expensive", "192.0.2.1")).await.status, 200);
    send(&app, get("/expensive", "192.0.2.1"))
        .await
        .assert_problem(429, "rate-limited");
}

#[actix_rt::test]
async fn max_body_is_per_endpoint() {
    let h = harness(|b| b);
    let app = app!(h);
    let r = send(
        &app,
        test::TestRequest::post()
            .uri("/small")
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .set_payload(json!({ "text": "x".repeat(80) }).to_string()),
    )
    .await;
    r.assert_problem(413, "payload-too-large");
    let r = send(
        &app,
        test::TestRequest::post()
            .uri("/small")
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .set_payload(r#"{"text": "short"}"#),
    )
    .await;
    assert_eq!(r.text(), "short");
}

#[actix_rt::test]
async fn tiers_and_principals() {
    let h = harness(|b| b);
    let app = app!(h);
    // Anonymous: 1/s by IP.
    let r = send(&app, get("/tiered", "192.0.2.1")).await;
    assert_ratelimit_fields(&r, "anonymous", 1, 1);
    send(&app, get("/tiered", "192.0.2.1"))
        .await
        .assert_problem(429, "rate-limited");

    // Premium principal from the same IP: its own quota, by principal.
    for _ in 0..20 {
        let r = send(
            &app,
            get("/tiered", "192.0.2.1")
                .insert_header(("x-test-subject", "alice"))
                .insert_header(("x-test-tier", "premium")),
        )
        .await;
        assert_eq!(r.status, 200);
    }
    let r = send(
        &app,
        get("/tiered", "192.0.2.77")
            .insert_header(("x-test-subject", "alice"))
            .insert_header(("x-test-tier", "premium")),
    )
    .await;
    r.assert_problem(429, "rate-limited");
    assert_ratelimit_fields(&r, "premium", 20, 1);

    // A tier the endpoint does not list gets the endpoint's rate.
    let r = send(
        &app,
        get("/tiered", "192.0.2.1").insert_header(("x-test-subject", "bob")),
    )
    .await;
    assert_ratelimit_fields(&r, "default", 5, 1);

    // key = "ip": the principal does not matter.
    for sub in ["carol", "dave"] {
        let r = send(
            &app,
            get("/by-ip", "192.0.2.5").insert_header(("x-test-subject", sub)),
        )
        .await;
        assert_eq!(r.status, 200);
    }
    send(
        &app,
        get("/by-ip", "192.0.2.5").insert_header(("x-test-subject", "erin")),
    )
    .await
    .assert_problem(429, "rate-limited");
}

#[actix_rt::test]
async fn a_full_limiter_rejects_new_clients_with_503() {
    let h = harness(|b| b.max_tracked_clients(2));
    let app = app!(h);
    assert_eq!(send(&app, get("/notes/1", "192.0.2.1")).await.status, 200);
    assert_eq!(send(&app, get("/notes/1", "192.0.2.2")).await.status, 200);
    let r = send(&app, get("/notes/1", "192.0.2.3")).await;
    r.assert_problem(503, "service-unavailable");
    assert_eq!(r.header("retry-after"), Some("1"));
    // Known clients go on; once the old state is stale, room is made.
    assert_eq!(send(&app, get("/notes/1", "192.0.2.1")).await.status, 200);
    h.clock.advance(Duration::from_secs(2));
    assert_eq!(send(&app, get("/notes/1", "192.0.2.3")).await.status, 200);

    let h = harness(|b| {
        b.max_tracked_clients(1)
            .when_limiter_full(UntrackedClients::Allow)
    });
    let app = app!(h);
    assert_eq!(send(&app, get("/notes/1", "192.0.2.1")).await.status, 200);
    let r = send(&app, get("/notes/1", "192.0.2.2")).await;
    assert_eq!(r.status, 200);
}

#[actix_rt::test]
async fn apps_without_a_secure_api_share_the_process_default() {
    // Two independently built apps (as two workers would be) share one limiter.
    let a = test::init_service(App::new().wrap(SecureLayer::default()).service(window)).await;
    let b = test::init_service(App::new().wrap(SecureLayer::default()).service(window)).await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        let app = if i % 2 == 0 { &a } else { &b };
        statuses.push(
            send(app, get("/window", "198.18.0.1"))
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(statuses, vec![200, 200, 200, 429]);
}

static DUAL_STACK_RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[secure_endpoint(post("/dual/notes"), rate = "2/min", key = "ip", idempotent)]
async fn dual_stack_note(note: Valid<Note>) -> HttpResponse {
    DUAL_STACK_RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    HttpResponse::Created().json(json!({ "text": note.into_inner().text }))
}

/// A server bound to `[::]` sees IPv4 clients as `::ffff:a.b.c.d`. Two IPv4 clients must
/// keep their own rate limit and their own idempotency scope: before canonicalisation both
/// were grouped at /64 into `::`, one identity for every IPv4 client.
#[actix_rt::test]
async fn ipv4_clients_of_a_dual_stack_socket_keep_their_own_identity() {
    use actix_web::HttpServer;
    use common::raw_request_from;
    let api = SecureApi::builder().build();
    let server = HttpServer::new(move || App::new().wrap(api.layer()).service(dual_stack_note))
        .workers(1)
        .bind(("::", 0))
        .expect("binding [::]:0 (this test needs IPv6 on loopback)");
    let addr = server.addrs()[0];
    assert!(addr.is_ipv6(), "{addr}");
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    // Connect to the dual-stack listener through its IPv4 side.
    let target: SocketAddr = format!("127.0.0.1:{}", addr.port()).parse().unwrap();
    let (two, three) = ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
    let post = |source, key: &'static str, body: &'static [u8]| {
        let headers: &'static [(&'static str, &'static str)] = match key {
            "k1" => &[
                ("Content-Type", "application/json"),
                ("Idempotency-Key", "k1"),
            ],
            "k2" => &[
                ("Content-Type", "application/json"),
                ("Idempotency-Key", "k2"),
            ],
            "k3" => &[
                ("Content-Type", "application/json"),
                ("Idempotency-Key", "k3"),
            ],
            _ => &[
                ("Content-Type", "application/json"),
                ("Idempotency-Key", "k4"),
            ],
        };
        raw_request_from(source, target, "POST", "/dual/notes", headers, body)
    };

    // The same key from two clients: two scopes, two executions, no 422 "key reused".
    let a = post(two, "k1", br#"{"text": "from .2"}"#).await.unwrap();
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
    let b = post(three, "k1", br#"{"text": "from .3"}"#).await.unwrap();
    assert_eq!(b.status, 201, "{}", String::from_utf8_lossy(&b.body));
    assert_eq!(b.body, br#"{"text":"from .3"}"#);
    assert!(b.header("idempotent-replayed").is_none());
    assert_eq!(DUAL_STACK_RUNS.load(std::sync::atomic::Ordering::SeqCst), 2);

    // Each client has its own 2/min: .2 spends its second and is then refused...
    let c = post(two, "k2", br#"{"text": "x"}"#).await.unwrap();
    assert_eq!(c.status, 201);
    let d = post(two, "k3", br#"{"text": "x"}"#).await.unwrap();
    assert_eq!(d.status, 429);
    assert_eq!(d.header("content-type"), Some("application/problem+json"));
    // ...while .3 still has its own second request.
    let e = post(three, "k4", br#"{"text": "x"}"#).await.unwrap();
    assert_eq!(e.status, 201, "{}", String::from_utf8_lossy(&e.body));
    handle.stop(true).await;
}

/// A client that writes a byte that is not text into `X-Forwarded-For` must not make the
/// whole line unreadable, which used to resolve it to the proxy's own address (shared by
/// every client behind that proxy).
#[actix_rt::test]
async fn an_unreadable_forwarded_hop_does_not_hide_the_client() {
    let h = harness(|b| b.trust_proxy("10.0.0.0/8".parse().unwrap()));
    let app = app!(h);
    let xff = |value: &'static [u8]| {
        (
            header::HeaderName::from_static("x-forwarded-for"),
            header::HeaderValue::from_bytes(value).unwrap(),
        )
    };
    // 203.0.113.7 spends its 3/s, writing junk to the left of what our proxy appended.
    for _ in 0..3 {
        let r = send(
            &app,
            note("10.0.0.2", "x").insert_header(xff(b"\xff, 203.0.113.7")),
        )
        .await;
        assert_eq!(r.status, 201);
    }
    let r = send(
        &app,
        note("10.0.0.2", "x").insert_header(xff(b"\xfe\xfd, 203.0.113.7")),
    )
    .await;
    r.assert_problem(429, "rate-limited");
    // Another client behind the same proxy is not charged for it.
    let r = send(
        &app,
        note("10.0.0.2", "x").insert_header(xff(b"\xff, 203.0.113.8")),
    )
    .await;
    assert_eq!(r.status, 201);
}

/// An alias: the compile-time `web::Json` check cannot see through it, so the body limit
/// must hold on the payload itself.
type RawJson<T> = web::Json<T>;

#[secure_endpoint(post("/limited/json"), rate = "unlimited", max_body = "64B")]
async fn limited_json(body: RawJson<serde_json::Value>) -> HttpResponse {
    HttpResponse::Ok().json(body.into_inner())
}

#[secure_endpoint(post("/limited/form"), rate = "unlimited", max_body = "64B")]
async fn limited_form(body: web::Form<std::collections::HashMap<String, String>>) -> HttpResponse {
    HttpResponse::Ok().body(format!("{} fields", body.len()))
}

#[secure_endpoint(post("/limited/bytes"), rate = "unlimited", max_body = "64B")]
async fn limited_bytes(body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok().body(format!("{} bytes", body.len()))
}

#[secure_endpoint(post("/limited/string"), rate = "unlimited", max_body = "64B")]
async fn limited_string(body: String) -> HttpResponse {
    HttpResponse::Ok().body(format!("{} chars", body.len()))
}

#[secure_endpoint(post("/limited/stream"), rate = "unlimited", max_body = "64B")]
async fn limited_stream(mut body: web::Payload) -> Result<HttpResponse, actix_web::Error> {
    use futures_util::StreamExt;
    let mut n = 0;
    while let Some(chunk) = body.next().await {
        n += chunk?.len();
    }
    Ok(HttpResponse::Ok().body(format!("{n} bytes")))
}

#[secure_endpoint(post("/limited/valid"), rate = "unlimited", max_body = "64B")]
async fn limited_valid(note: Valid<Note>) -> HttpResponse {
    HttpResponse::Ok().body(note.into_inner().text)
}

/// No `max_body`: the app default (64 KiB) applies to every extractor, not `Bytes`'s own
/// 256 KiB.
#[secure_endpoint(post("/default-limit/bytes"), rate = "unlimited")]
async fn default_limit_bytes(body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok().body(format!("{} bytes", body.len()))
}

macro_rules! limits_app {
    () => {
        test::init_service(
            App::new()
                .wrap_fn(|mut req, srv| {
                    // Simulate a chunked body: no declared length, so only the stream limit
                    // can stop it.
                    if req.headers().contains_key("x-test-chunked") {
                        req.headers_mut().remove(header::CONTENT_LENGTH);
                    }
                    srv.call(req)
                })
                .wrap(SecureApi::builder().build().layer())
                .service(limited_json)
                .service(limited_form)
                .service(limited_bytes)
                .service(limited_string)
                .service(limited_stream)
                .service(limited_valid)
                .service(default_limit_bytes),
        )
        .await
    };
}

fn post_body(path: &str, content_type: &str, body: Vec<u8>, chunked: bool) -> test::TestRequest {
    let req = test::TestRequest::post()
        .uri(path)
        .peer_addr(from("192.0.2.1"))
        .insert_header((header::CONTENT_TYPE, content_type.to_owned()))
        .set_payload(body);
    if chunked {
        req.insert_header(("x-test-chunked", "1"))
    } else {
        req
    }
}

#[actix_rt::test]
async fn max_body_bounds_every_extractor_declared_or_chunked() {
    let app = limits_app!();
    // (path, content type, a body with `n` bytes of padding)
    type Case = (&'static str, &'static str, fn(usize) -> Vec<u8>);
    let cases: [Case; 6] = [
        ("/limited/json", "application/json", |n| {
            format!(r#"{{"text":"{}"}}"#, "a".repeat(n)).into_bytes()
        }),
        ("/limited/form", "application/x-www-form-urlencoded", |n| {
            format!("text={}", "a".repeat(n)).into_bytes()
        }),
        ("/limited/bytes", "application/octet-stream", |n| {
            vec![b'a'; n]
        }),
        ("/limited/string", "text/plain; charset=utf-8", |n| {
            vec![b'a'; n]
        }),
        ("/limited/stream", "application/octet-stream", |n| {
            vec![b'a'; n]
        }),
        ("/limited/valid", "application/json", |n| {
            format!(r#"{{"text":"{}"}}"#, "a".repeat(n)).into_bytes()
        }),
    ];
    for (path, content_type, body) in cases {
        for chunked in [false, true] {
            // 64 bytes in all is allowed...
            let fits = body(0);
            let pad = 64 - fits.len();
            let r = send(&app, post_body(path, content_type, body(pad), chunked)).await;
            assert_eq!(r.status, 200, "{path} chunked={chunked}: {}", r.text());
            // ...65 is not, whatever the extractor's own limit.
            let r = send(&app, post_body(path, content_type, body(pad + 1), chunked)).await;
            let problem = r.assert_problem(413, "payload-too-large");
            assert_eq!(problem["status"], 413, "{path} chunked={chunked}");
            r.assert_leaks_none(&["aaaa"]);
        }
    }
}

#[actix_rt::test]
async fn endpoints_without_max_body_get_the_app_default() {
    let app = limits_app!();
    let limit = secure_api_runtime::input::DEFAULT_MAX_BODY;
    for chunked in [false, true] {
        let r = send(
            &app,
            post_body(
                "/default-limit/bytes",
                "application/octet-stream",
                vec![0; limit],
                chunked,
            ),
        )
        .await;
        assert_eq!(r.status, 200, "chunked={chunked}");
        assert_eq!(r.text(), format!("{limit} bytes"));
        let r = send(
            &app,
            post_body(
                "/default-limit/bytes",
                "application/octet-stream",
                vec![0; limit + 1],
                chunked,
            ),
        )
        .await;
        r.assert_problem(413, "payload-too-large");
    }
}

/// Over a real socket, a chunked body (no declared length) is cut off at `max_body` by the
/// server's own dispatcher path, for an extractor that has no idea of the endpoint's limit.
#[actix_rt::test]
async fn over_a_real_socket_chunked_bodies_stop_at_max_body() {
    use actix_web::HttpServer;
    let api = SecureApi::builder().build();
    let server = HttpServer::new(move || App::new().wrap(api.layer()).service(limited_bytes))
        .workers(1)
        .bind(("127.0.0.1", 0))
        .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    let chunked = |chunks: &[usize]| {
        let mut req = b"POST /limited/bytes HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\
Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
        for n in chunks {
            req.extend(format!("{n:x}\r\n").as_bytes());
            req.extend(std::iter::repeat_n(b'z', *n));
            req.extend(b"\r\n");
        }
        req.extend(b"0\r\n\r\n");
        req
    };
    let (ok, over) = actix_web::rt::task::spawn_blocking(move || {
        (
            common::raw_exchange(addr, &chunked(&[40, 24])).unwrap(),
            common::raw_exchange(addr, &chunked(&[40, 20, 5])).unwrap(),
        )
    })
    .await
    .unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body, b"64 bytes");
    assert_eq!(over.status, 413);
    assert_eq!(
        over.header("content-type"),
        Some("application/problem+json")
    );
    let body: serde_json::Value = serde_json::from_slice(&over.body).unwrap();
    assert_eq!(
        body["type"],
        "tag:secure-api.dev,2026:problem:payload-too-large"
    );
    handle.stop(true).await;
}

// ---- Keys from the key secret, and the failure policy, without Redis --------------------

#[secure_endpoint(get("/hourly"), rate = "3/h", algorithm = "sliding_window")]
async fn hourly() -> &'static str {
    "hourly"
}

/// Two `SecureApi`s, each with its own key-derivation state, over one store: with the same
/// key secret they derive the same keys and share the limit; with none (random keys) or
/// another secret they do not.
#[actix_rt::test]
async fn apps_with_one_key_secret_share_a_store_and_others_do_not() {
    use secure_api_runtime::throttle::memory::MemoryStore;

    const SECRET: &[u8] = b"the key secret of the endpoint tests, 32+ bytes";
    let store = Arc::new(MemoryStore::new());
    let api = |secret: Option<&[u8]>| {
        let builder = SecureApi::builder().rate_limit_store(store.clone());
        match secret {
            Some(secret) => builder.key_secret(secret).unwrap().build(),
            None => builder.build(),
        }
    };
    let allowed = |apps: Vec<SecureApi>, ip: &'static str| async move {
        let mut services = Vec::new();
        for api in apps {
            services.push(test::init_service(App::new().wrap(api.layer()).service(hourly)).await);
        }
        let mut allowed = 0;
        for i in 0..12 {
            let app = &services[i % services.len()];
            if send(app, get("/hourly", ip)).await.status == 200 {
                allowed += 1;
            }
        }
        allowed
    };
    let same = allowed(vec![api(Some(SECRET)), api(Some(SECRET))], "198.18.1.1").await;
    assert_eq!(same, 3, "one secret: one shared limit");
    let random = allowed(vec![api(None), api(None)], "198.18.1.2").await;
    assert_eq!(random, 6, "random keys: a limit per app");
    let other = b"another key secret of the endpoint tests, 32+ b";
    let two = allowed(vec![api(Some(SECRET)), api(Some(other))], "198.18.1.3").await;
    assert_eq!(two, 6, "two secrets: a limit per secret");

    // Secrets under 32 bytes are refused, saying how long they were.
    let err = SecureApi::builder().key_secret([1u8; 31]).unwrap_err();
    assert_eq!(err.len(), 31);
    assert!(err.to_string().contains("at least 32"), "{err}");
}

mod v1 {
    use secure_api_runtime::prelude::*;

    #[secure_endpoint(get("/item"), rate = "2/h")]
    pub async fn item() -> &'static str {
        "v1"
    }
}

mod v2 {
    use secure_api_runtime::prelude::*;

    #[secure_endpoint(get("/item"), rate = "2/h")]
    pub async fn item() -> &'static str {
        "v2"
    }
}

/// Policies are named by method, route, handler and tier: two handlers of one route under
/// two scopes keep their own limits, with keys that agree across processes all the same.
#[actix_rt::test]
async fn one_route_under_two_scopes_keeps_two_limits() {
    let api = SecureApi::builder()
        .key_secret(b"the key secret of the endpoint tests, 32+ bytes")
        .unwrap()
        .build();
    let app = test::init_service(
        App::new()
            .wrap(api.layer())
            .service(web::scope("/v1").service(v1::item))
            .service(web::scope("/v2").service(v2::item)),
    )
    .await;
    for _ in 0..2 {
        assert_eq!(send(&app, get("/v1/item", "198.18.2.1")).await.body, b"v1");
    }
    send(&app, get("/v1/item", "198.18.2.1"))
        .await
        .assert_problem(429, "rate-limited");
    let v2 = send(&app, get("/v2/item", "198.18.2.1")).await;
    assert_eq!((v2.status.as_u16(), v2.body.as_slice()), (200, &b"v2"[..]));
}

/// A rate-limit store whose backend is down (or full).
struct BrokenStore(fn() -> secure_api_runtime::store::StoreError);

impl secure_api_runtime::throttle::RateLimitStore for BrokenStore {
    fn acquire(
        &self,
        _: secure_api_runtime::throttle::LimitKey,
        _: &secure_api_runtime::throttle::Policy,
        _: u32,
    ) -> secure_api_runtime::store::StoreFuture<
        '_,
        Result<secure_api_runtime::throttle::Decision, secure_api_runtime::store::StoreError>,
    > {
        secure_api_runtime::store::StoreFuture::ready(Err((self.0)()))
    }

    fn refund(
        &self,
        _: secure_api_runtime::throttle::LimitKey,
        _: &secure_api_runtime::throttle::Policy,
        _: u32,
    ) -> secure_api_runtime::store::StoreFuture<'_, Result<(), secure_api_runtime::store::StoreError>>
    {
        secure_api_runtime::store::StoreFuture::ready(Err((self.0)()))
    }
}

#[secure_endpoint(get("/open-on-error"), rate = "10/s", on_store_error = "allow")]
async fn open_on_error() -> &'static str {
    "open"
}

#[secure_endpoint(get("/closed-on-error"), rate = "10/s", on_store_error = "fail_closed")]
async fn closed_on_error() -> &'static str {
    "closed"
}

#[actix_rt::test]
async fn a_failed_limiter_store_fails_closed_unless_the_endpoint_or_app_allows() {
    use secure_api_runtime::store::{OnStoreError, StoreError};

    let down = || StoreError::Backend("connection refused".into());
    let app_with = |policy: Option<OnStoreError>, error: fn() -> StoreError| {
        let builder = SecureApi::builder().rate_limit_store(Arc::new(BrokenStore(error)));
        match policy {
            Some(policy) => builder.on_limiter_error(policy),
            None => builder,
        }
        .build()
    };
    let services = |api: SecureApi| {
        test::init_service(
            App::new()
                .wrap(api.layer())
                .service(open_on_error)
                .service(closed_on_error)
                .service(get_note),
        )
    };
    let closed = |r: Reply| {
        r.assert_problem(503, "service-unavailable");
        assert_eq!(r.header("retry-after"), Some("1"));
        r.assert_leaks_none(&["connection refused"]);
    };

    // The app fails closed by default; the endpoint's `allow` overrides it.
    let app = services(app_with(None, down)).await;
    let r = send(&app, get("/open-on-error", "192.0.2.80")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"open");
    assert!(r.header("ratelimit").is_none());
    closed(send(&app, get("/closed-on-error", "192.0.2.80")).await);
    closed(send(&app, get("/notes/1", "192.0.2.80")).await);

    // An app that allows: endpoints without a choice follow it; `fail_closed` wins.
    let app = services(app_with(Some(OnStoreError::Allow), down)).await;
    assert_eq!(send(&app, get("/notes/1", "192.0.2.80")).await.status, 200);
    assert_eq!(
        send(&app, get("/open-on-error", "192.0.2.80")).await.status,
        200
    );
    closed(send(&app, get("/closed-on-error", "192.0.2.80")).await);
    // The login guard's per-account limit is authentication: it fails closed regardless.
    let guard = secure_api_runtime::auth::login::LoginGuard::new(
        &app_with(Some(OnStoreError::Allow), down),
        secure_api_runtime::auth::password::Passwords::with_params(1024, 1, 1).unwrap(),
    );
    let err = guard.verify("alice", None, "guess").await.unwrap_err();
    assert_eq!(err.problem().status(), 503);
    assert_eq!(
        guard.passwords().hash_operations(),
        0,
        "refused before hashing"
    );

    // A full store is not a failure: its own policy decides, and `allow` does not apply.
    let app = services(app_with(Some(OnStoreError::Allow), || StoreError::Full)).await;
    closed(send(&app, get("/open-on-error", "192.0.2.80")).await);
    closed(send(&app, get("/notes/1", "192.0.2.80")).await);
}
