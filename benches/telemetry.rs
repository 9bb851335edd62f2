//! The in-process cost of security telemetry (issue 15): the same app, `benches/load/
//! users_limits` (`POST /api/users`: validation, tiered rate limits, problem errors, security
//! headers), built twice in one process:
//!
//! - `off`: no metrics, audit events discarded ([`Discard`]: no event is ever built);
//! - `on`: metrics on, recorded by the Prometheus exporter's recorder, and the default
//!   [`LogSink`] with the audit target enabled in a logger that formats every line (into
//!   `io::sink`).
//!
//! Three requests, each through both apps:
//! - `allowed`: a valid body from a new client address each time (201; one decision counter
//!   incremented, no event);
//! - `invalid`: a body that breaks two rules (422; counter, event, audit line while the
//!   sink's budget lasts, then the budget check alone);
//! - `limited`: one client over its rate (429; counters, event, budget). The limiter's
//!   clock is a `FakeClock` that stands still, so the client stays limited.
//!
//! Printed: each stack's median over interleaved rounds and the on/off ratios; then
//! criterion's figures. `TELEMETRY_ONLY=<on|off>:<allowed|invalid|limited>:<n>` sends n
//! requests through one stack and stops, for instruction counts under callgrind.
//!
//! `cargo bench --bench telemetry`

use std::cell::Cell;
use std::net::Ipv4Addr;
use std::sync::Arc;

use actix_web::test;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use secure_api_runtime::prelude::SecureApi;
use secure_api_runtime::telemetry::audit::{Discard, LogSink};

#[path = "common/interleave.rs"]
mod interleave;
use interleave::{caller, interleaved, knob};

#[allow(dead_code)]
#[path = "load/users_limits.rs"]
mod secure;

const VALID: &str = r#"{"username":"alice_01","email":"alice@example.com","age":30}"#;
const INVALID: &str = r#"{"username":"a","email":"alice@example.com","age":300}"#;

/// The `n`-th client address: 11.0.0.0 and up, none repeated within 2^20 requests.
fn client(n: u32) -> String {
    Ipv4Addr::from(0x0b00_0000 + (n & 0xf_ffff)).to_string()
}

fn request(body: &'static str, client: &str) -> actix_http::Request {
    test::TestRequest::post()
        .uri("/api/users")
        .peer_addr("127.0.0.1:40000".parse().unwrap())
        .insert_header(("content-type", "application/json"))
        .insert_header(("x-forwarded-for", client))
        .set_payload(body)
        .to_request()
}

fn bench(c: &mut Criterion) {
    // The logger of `on`: the audit target at info, every line formatted, then dropped.
    env_logger::Builder::new()
        .parse_filters("off,secure_api::audit=info")
        .target(env_logger::Target::Pipe(Box::new(std::io::sink())))
        .init();
    let system = actix_rt::System::new();
    // The limiter's clock stands still: the `limited` client stays over its rate however
    // long a run takes (under callgrind too).
    let clock = Arc::new(secure_api_runtime::clock::FakeClock::new());
    let builder = || {
        SecureApi::builder()
            .trust_proxies("127.0.0.1/32")
            .unwrap()
            .clock(clock.clone())
            .log_inventory(false)
    };
    let off = builder().audit_sink(Arc::new(Discard)).build();
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    // The exporter's upkeep, as an app runs it (the recorder keeps histogram samples until
    // upkeep folds them in).
    let upkeep = handle.clone();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(std::time::Duration::from_millis(200));
            upkeep.run_upkeep();
        }
    });
    let on = metrics::with_local_recorder(&recorder, || {
        builder()
            .audit_sink(Arc::new(LogSink::new()))
            .metrics(true)
            .build()
    });
    let off = system.block_on(test::init_service(secure::app(off)));
    let on = system.block_on(test::init_service(secure::app(on)));

    let stacks = [("off", caller(&system, &off)), ("on", caller(&system, &on))];
    let n = Cell::new(0u32);
    type Next<'a> = Box<dyn Fn() -> actix_http::Request + 'a>;
    let paths: [(&str, u16, Next<'_>); 3] = [
        (
            "allowed",
            201,
            Box::new(|| {
                n.set(n.get().wrapping_add(1));
                request(VALID, &client(n.get()))
            }),
        ),
        (
            "invalid",
            422,
            Box::new(|| {
                n.set(n.get().wrapping_add(1));
                request(INVALID, &client(n.get()))
            }),
        ),
        ("limited", 429, Box::new(|| request(VALID, "198.51.100.1"))),
    ];
    // Exhaust the limited client's quota on both apps.
    for (_, call) in &stacks {
        for _ in 0..20 {
            call(request(VALID, "198.51.100.1"));
        }
    }

    if let Some((stack, path, count)) = std::env::var("TELEMETRY_ONLY").ok().and_then(|v| {
        let mut parts = v.split(':');
        Some((
            parts.next()?.to_owned(),
            parts.next()?.to_owned(),
            parts.next()?.parse::<u32>().ok()?,
        ))
    }) {
        let (_, call) = stacks.iter().find(|(s, _)| *s == stack).expect("on or off");
        let (_, status, next) = paths.iter().find(|(p, ..)| *p == path).expect("a path");
        for _ in 0..count {
            assert_eq!(call(next()).as_u16(), *status);
        }
        return;
    }

    for (path, status, next) in &paths {
        for (name, call) in &stacks {
            assert_eq!(call(next()).as_u16(), *status, "{name} {path}");
        }
    }
    let rounds = knob("TELEMETRY_ROUNDS", 15).max(1);
    let batch = knob("TELEMETRY_BATCH", 20_000);
    for (path, _, next) in &paths {
        let stats = interleaved(&stacks, next, rounds, batch);
        for ((name, _), (med, min)) in stacks.iter().zip(&stats) {
            println!(
                "interleaved {path:<8} {name:<3} {med:.3} us/request median of {rounds} rounds (fastest {min:.3})"
            );
        }
        let ratio = stats[1].0 / stats[0].0;
        println!(
            "interleaved {path:<8} on / off {ratio:.4} ({:+.1} %)",
            (ratio - 1.0) * 100.0
        );
    }
    // The exporter saw the decisions (and renders them).
    let text = handle.render();
    assert!(text.contains("secure_api_decisions_total"), "{text}");

    let mut group = c.benchmark_group("telemetry");
    for (path, _, next) in &paths {
        for (name, call) in &stacks {
            group.bench_function(format!("{path}/{name}"), |b| {
                b.iter_batched(next, call, BatchSize::SmallInput)
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
