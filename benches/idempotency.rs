//! The cost of `idempotent`: the same endpoint with and without it, through the full
//! stack (SecureLayer, rate limiter, validation), in one run:
//! - `plain`: no idempotency;
//! - `first`: idempotent, a new key every request (claim, run, store);
//! - `replay`: idempotent, a completed key (claim finds it, replay).
//!
//! `cargo bench --bench idempotency`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{App, test};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use secure_api_runtime::clock::FakeClock;
use secure_api_runtime::prelude::*;
use serde::Deserialize;

#[derive(Deserialize, SecureInput)]
struct CreateUser {
    #[secure(trim, lowercase, length(min = 3, max = 32), pattern = "[a-z0-9_-]+")]
    username: String,
    #[secure(trim, lowercase, email)]
    email: String,
}

async fn create(input: CreateUser) -> HttpResponse {
    HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/users/{}", input.username)))
        .json(serde_json::json!({ "user": input.username, "email": input.email }))
}

#[secure_endpoint(post("/plain"), rate = "unlimited")]
async fn plain(input: Valid<CreateUser>) -> HttpResponse {
    create(input.into_inner()).await
}

#[secure_endpoint(post("/idem"), rate = "unlimited", idempotent(ttl = "1s"))]
async fn idem(input: Valid<CreateUser>) -> HttpResponse {
    create(input.into_inner()).await
}

#[global_allocator]
static GLOBAL: counting_alloc::CountingAlloc = counting_alloc::CountingAlloc;

const BODY: &str = r#"{"username": " Alice_01 ", "email": "ALICE@example.com"}"#;

fn request(path: &str, key: Option<&str>) -> actix_http::Request {
    let mut req = test::TestRequest::post()
        .uri(path)
        .peer_addr("192.0.2.1:4000".parse().unwrap())
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(BODY);
    if let Some(key) = key {
        req = req.insert_header(("idempotency-key", key));
    }
    req.to_request()
}

fn bench(c: &mut Criterion) {
    let system = actix_rt::System::new();
    // A fake clock, moved 1 ms per `first` request: its completed keys expire after 1,000
    // requests, so the store stays small however many iterations criterion runs. It stands
    // still for `replay`, whose key therefore never expires.
    let clock = FakeClock::new();
    let api = SecureApi::builder().clock(Arc::new(clock.clone())).build();
    let app = system.block_on(test::init_service(
        App::new().wrap(api.layer()).service(plain).service(idem),
    ));
    let call = |req| {
        system.block_on(async {
            let res = test::call_service(&app, req).await;
            let status = res.status();
            black_box(test::read_body(res).await);
            status
        })
    };
    assert_eq!(call(request("/plain", None)), 201);
    assert_eq!(call(request("/idem", Some("warm"))), 201);

    // IDEM_ONLY=<plain|first|replay>:<n> sends n such requests and stops, for counting
    // instructions with callgrind (two runs with different n; see benches/stack.rs).
    if let Some((only, n)) = std::env::var("IDEM_ONLY").ok().and_then(|v| {
        let (name, n) = v.split_once(':')?;
        Some((name.to_owned(), n.parse::<u64>().ok()?))
    }) {
        for i in 0..n {
            let req = match only.as_str() {
                "plain" => request("/plain", None),
                "first" => {
                    clock.advance(Duration::from_millis(1));
                    request("/idem", Some(&format!("only-{i}")))
                }
                _ => request("/idem", Some("warm")),
            };
            assert_eq!(call(req), 201);
        }
        return;
    }

    // Heap allocations per request (building the request excluded), the mean of 1,000.
    let per_request = |path: &str, key: &dyn Fn(u64) -> Option<String>, advance: bool| {
        let requests: Vec<_> = (0..1_000u64)
            .map(|i| request(path, key(i).as_deref()))
            .collect();
        let (n, ()) = counting_alloc::allocations(|| {
            for req in requests {
                if advance {
                    clock.advance(Duration::from_millis(1));
                }
                assert_eq!(call(req), 201);
            }
        });
        n as f64 / 1_000.0
    };
    println!(
        "allocations per request: plain {:.1}, first {:.1}, replay {:.1}",
        per_request("/plain", &|_| None, false),
        per_request("/idem", &|i| Some(format!("count-{i}")), true),
        per_request("/idem", &|_| Some("warm".to_owned()), false),
    );

    // The three in turns (15 rounds of 5,000 requests, the order rotating), so that a
    // machine whose speed drifts slows them alike: the medians, and first - plain.
    let mut times: [Vec<f64>; 3] = Default::default();
    let mut key = 0u64;
    for round in 0..15 {
        for k in 0..3 {
            let case = (k + round) % 3;
            let requests: Vec<_> = (0..5_000)
                .map(|_| match case {
                    0 => request("/plain", None),
                    1 => {
                        key += 1;
                        request("/idem", Some(&format!("turn-{key}")))
                    }
                    _ => request("/idem", Some("warm")),
                })
                .collect();
            let start = std::time::Instant::now();
            for req in requests {
                if case == 1 {
                    clock.advance(Duration::from_millis(1));
                }
                black_box(call(req));
            }
            times[case].push(start.elapsed().as_secs_f64() * 1e6 / 5_000.0);
        }
    }
    let [t_plain, t_first, t_replay] = times.map(|mut v| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    });
    println!(
        "interleaved: plain {t_plain:.3}, first {t_first:.3}, replay {t_replay:.3} us/request (medians of 15 rounds); first - plain {:+.3} us",
        t_first - t_plain
    );

    // Requests are built outside the measured part (`iter_batched`): what is timed is the
    // app's work on a request, not the test harness's making of one.
    let mut group = c.benchmark_group("idempotency");
    group.bench_function("plain", |b| {
        b.iter_batched(|| request("/plain", None), call, BatchSize::SmallInput)
    });
    let mut n = 0u64;
    group.bench_function("first", |b| {
        b.iter_batched(
            || {
                n += 1;
                request("/idem", Some(&format!("key-{n}")))
            },
            |req| {
                clock.advance(Duration::from_millis(1));
                call(req)
            },
            BatchSize::SmallInput,
        )
    });
    assert_eq!(call(request("/idem", Some("replayed"))), 201);
    group.bench_function("replay", |b| {
        b.iter_batched(
            || request("/idem", Some("replayed")),
            call,
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
