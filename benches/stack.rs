//! The three servers of the end-to-end load test (`benches/load/run.sh PEER=1`), in process:
//! the same `POST /api/users` through each app's whole middleware stack, without sockets.
//!
//! - `bare`: `benches/load/bare_users` with `BARE_HEADERS=1` (actix-web, `web::Json`, the same
//!   response headers as secure-api set by `DefaultHeaders`);
//! - `peer`: `benches/load/peer_users` (validator with hand normalisation, actix-governor keyed
//!   by client address, `DefaultHeaders`, JSON errors);
//! - `secure`: `benches/load/users_limits` (secure-api: validation, tiered limits, problem
//!   errors, security headers, `RateLimit` fields).
//!
//! Each request comes from 127.0.0.1 (a trusted proxy for `peer` and `secure`) with a new
//! client address in `X-Forwarded-For`, cycling through 2^20 addresses, so that every
//! limiter does what it does under `run.sh`'s load: mostly new keys, always allowed. Requests
//! are built outside the timed part. The socket, HTTP codec and kernel costs that the load
//! test adds are the same for the three; what differs between them is measured here.
//!
//! `cargo bench --bench stack`

use std::cell::Cell;
use std::net::Ipv4Addr;

use actix_web::{App, test};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

#[allow(dead_code)]
#[path = "load/bare_users.rs"]
mod bare;
#[allow(dead_code)]
#[path = "load/peer_users.rs"]
mod peer;
#[allow(dead_code)]
#[path = "load/users_limits.rs"]
mod secure;

const BODY: &str = r#"{"username":"alice_01","email":"alice@example.com","age":30}"#;

/// The `n`-th client address: 11.0.0.0 and up, public, none repeated within 2^20 requests.
fn client(n: u32) -> String {
    Ipv4Addr::from(0x0b00_0000 + (n & 0xf_ffff)).to_string()
}

fn request(n: u32) -> actix_http::Request {
    test::TestRequest::post()
        .uri("/api/users")
        .peer_addr("127.0.0.1:40000".parse().unwrap())
        .insert_header(("content-type", "application/json"))
        .insert_header(("x-forwarded-for", client(n)))
        .set_payload(BODY)
        .to_request()
}

fn bench(c: &mut Criterion) {
    let system = actix_rt::System::new();
    let trusted = vec![peer::Trusted::parse("127.0.0.1/32").unwrap()];
    let secure_api = secure_api_runtime::prelude::SecureApi::builder()
        .trust_proxies("127.0.0.1/32")
        .unwrap()
        .build();
    let bare = system.block_on(test::init_service(bare::app(true)));
    let peer = system.block_on(test::init_service(peer::app(
        peer::governor(trusted).unwrap(),
    )));
    let secure = system.block_on(test::init_service(secure::app(secure_api)));
    // One counter for the three, so that each sees new clients.
    let n = Cell::new(0u32);
    let next = || {
        n.set(n.get().wrapping_add(1));
        request(n.get())
    };

    macro_rules! measure {
        ($group:expr, $name:literal, $app:expr) => {{
            let call = |req| {
                system.block_on(async {
                    let res = test::call_service(&$app, req).await;
                    let status = res.status();
                    std::hint::black_box(test::read_body(res).await);
                    status
                })
            };
            assert_eq!(call(next()), 201, "{}", $name);
            $group.bench_function($name, |b| b.iter_batched(next, call, BatchSize::SmallInput));
        }};
    }
    let mut group = c.benchmark_group("stack");
    measure!(group, "bare", bare);
    measure!(group, "peer", peer);
    measure!(group, "secure", secure);
    group.finish();
    let _ = App::new();
}

criterion_group!(benches, bench);
criterion_main!(benches);
