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

use actix_web::test;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

#[path = "common/interleave.rs"]
mod interleave;
use interleave::{Caller, caller, knob};

#[allow(dead_code)]
#[path = "load/bare_users.rs"]
mod bare;
#[allow(dead_code)]
#[path = "load/peer_users.rs"]
mod peer;
#[allow(dead_code)]
#[path = "load/users_limits.rs"]
mod secure;

#[global_allocator]
static GLOBAL: counting_alloc::CountingAlloc = counting_alloc::CountingAlloc;

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

    let stacks = [
        ("bare", caller(&system, &bare)),
        ("peer", caller(&system, &peer)),
        ("secure", caller(&system, &secure)),
    ];
    // STACK_ONLY=<name>:<n> sends n requests through that stack alone and stops, for counting
    // instructions: `valgrind --tool=callgrind` of two runs with different n gives the
    // instructions per request (their difference over the difference of n), which do not
    // drift with the machine as times do.
    if let Some((only, n)) = std::env::var("STACK_ONLY").ok().and_then(|v| {
        let (name, n) = v.split_once(':')?;
        Some((name.to_owned(), n.parse::<u32>().ok()?))
    }) {
        let (_, call) = stacks
            .iter()
            .find(|(name, _)| *name == only)
            .expect("STACK_ONLY names bare, peer or secure");
        for _ in 0..n {
            assert_eq!(call(next()), 201);
        }
        return;
    }
    for (name, call) in &stacks {
        assert_eq!(call(next()), 201, "{name}");
        // Heap allocations per request (building it excluded), the mean of 1,000.
        let requests: Vec<_> = (0..1_000).map(|_| next()).collect();
        let (n, ()) = counting_alloc::allocations(|| {
            for req in requests {
                call(req);
            }
        });
        println!("allocations per request: {name} {:.1}", n as f64 / 1_000.0);
    }
    interleaved(&stacks, &next);

    let mut group = c.benchmark_group("stack");
    for (name, call) in &stacks {
        group.bench_function(*name, |b| b.iter_batched(next, call, BatchSize::SmallInput));
    }
    group.finish();
}

/// The three stacks measured in turns (15 rounds of 20,000 requests each, the order
/// rotating; `STACK_ROUNDS` and `STACK_BATCH` change that); prints each one's median and
/// fastest round, and the ratios of the medians.
fn interleaved(stacks: &[(&str, Caller<'_>)], next: &dyn Fn() -> actix_http::Request) {
    let rounds = knob("STACK_ROUNDS", 15).max(1);
    let stats = interleave::interleaved(stacks, next, rounds, knob("STACK_BATCH", 20_000));
    for ((name, _), (med, min)) in stacks.iter().zip(&stats) {
        println!(
            "interleaved {name:<6} {med:.3} us/request median of {rounds} rounds (fastest {min:.3})"
        );
    }
    let secure = stats[2].0;
    println!(
        "interleaved ratios (medians): peer / secure {:.3}, bare / secure {:.3}",
        stats[1].0 / secure,
        stats[0].0 / secure
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
