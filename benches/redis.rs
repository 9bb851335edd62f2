//! The latency the Redis stores add to a call against the in-memory stores, on loopback, in
//! one run: median and p99 of per-call latencies, for each store level and request level
//! scenario below.
//!
//! ```text
//! CARGO_TARGET_DIR=target-bench cargo bench --bench redis
//! CALLS=50000 ROUNDS=20 CARGO_TARGET_DIR=target-bench cargo bench --bench redis
//! ```
//!
//! It starts its own `redis-server` (7.0 or later, from `PATH`) on a free loopback port,
//! without persistence (the test harness `tests/common/redis_server.rs`), and connects one
//! [`RedisBackend`] with the default settings except the key prefix. Then, for each scenario,
//! it times `CALLS` (default 20,000) sequential calls on each backend, one call at a time
//! (each waits for the previous one, as one request does), in `ROUNDS` (default 10) blocks
//! that alternate between the backends (memory first in odd rounds, Redis first in even
//! ones), so that drift on the machine falls on both alike. Every latency goes into the
//! backend's sample; the report gives their median, p99, p99.9, and the difference Redis −
//! memory of the median and of the p99: the latency Redis adds.
//!
//! Scenarios:
//! - `limiter/gcra` and `limiter/window`: one `RateLimitStore::acquire` of one unit, on
//!   `MemoryStore` and on `RedisRateLimitStore`, for 1,024 keys in turn (1,000/s per key, so
//!   every call is allowed): one limiter decision, the store alone.
//! - `request/limited`: `GET /limited` (`rate = "1000/s"`, GCRA) through the in-process
//!   actix stack (`SecureLayer`, key derivation, limiter, handler, security headers) with the
//!   actix test service, from 1,024 client addresses in turn: what the limiter's store adds
//!   to a request.
//! - `request/idempotent`: `POST /idem` (`idempotent`, `rate = "unlimited"`, so that only the
//!   idempotency store differs), a new `Idempotency-Key` from a new client address every
//!   call: a claim, the handler, a completion.
//! - `request/replay`: the same endpoint and one completed key, over and over: a claim that
//!   finds the completed record and replays it.
//!
//! Every call's outcome is checked (outside the timing): each must be allowed, 2xx, and a
//! replay must carry `idempotent-replayed: true`, so a failing store cannot be mistaken for
//! a fast one. The report also gives, per call on Redis, the scripts Redis ran (each a round
//! trip) and the time it spent in them (`INFO commandstats`, reset after each scenario's
//! warm-up), and
//! redis-server's CPU time (from `/proc`, its threads' `schedstat`: the commands, the
//! network and the event loop), and how busy the rest of the machine was during the run
//! (`other`: CPU time of processes other than this one and redis-server, in % of one core;
//! above 15 % the figures are noisy).

use std::fmt::Write as _;
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::Service;
use actix_web::{App, test};
use secure_api_runtime::prelude::*;
use secure_api_runtime::redis::RedisBackend;
use secure_api_runtime::throttle::memory::MemoryStore;
use secure_api_runtime::throttle::{Algorithm, LimitKey, Policy, Rate, RateLimitStore};

#[path = "../tests/common/redis_server.rs"]
mod redis_server;

use redis_server::RedisServer;

/// Keys (and client addresses) the limiter scenarios cycle through.
const KEYS: u64 = 1_024;
/// The first call number of the warm-up calls, so that they use keys and clients of their
/// own (measured calls are numbered from 1).
const WARM_UP_BASE: u64 = 1 << 30;

#[secure_endpoint(get("/limited"), rate = "1000/s")]
async fn limited() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[secure_endpoint(post("/idem"), rate = "unlimited", idempotent)]
async fn idem() -> HttpResponse {
    HttpResponse::Created().json(serde_json::json!({ "created": true }))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Backend {
    Memory,
    Redis,
}

/// The latencies of one backend in one scenario, in ns.
#[derive(Default)]
struct Sample {
    ns: Vec<u64>,
    redis_cpu_ns: u64,
    /// Scripts Redis ran (`EVALSHA`: every store's round trip is one) and the µs it spent
    /// in them (`INFO commandstats`).
    redis_commands: u64,
    redis_usec: u64,
}

impl Sample {
    /// The `q` quantile (nearest rank) of the sorted sample, in µs.
    fn quantile(&self, q: f64) -> f64 {
        let n = self.ns.len();
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        self.ns[rank - 1] as f64 / 1_000.0
    }
}

/// Nanoseconds of CPU that all threads of process `pid` have used.
fn process_cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Nanoseconds the whole machine has spent busy (user, nice, system, irq, softirq).
fn machine_busy_ns() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let ticks = f.first().copied().unwrap_or(0)
        + f.get(1).copied().unwrap_or(0)
        + f.get(2).copied().unwrap_or(0)
        + f.get(5).copied().unwrap_or(0)
        + f.get(6).copied().unwrap_or(0);
    // USER_HZ is 100 on every Linux this runs on.
    ticks * 10_000_000
}

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| {
            eprintln!("benches/redis: {name}={v} is not a number");
            std::process::exit(2)
        }),
        Err(_) => default,
    }
}

fn client(i: u64) -> SocketAddr {
    // 11.0.0.0/8 upwards: public addresses, one per client.
    SocketAddr::from((Ipv4Addr::from(0x0b00_0000_u32.wrapping_add(i as u32)), 4000))
}

fn limit_key(i: u64) -> LimitKey {
    LimitKey([0x5ec0_0000_0000_0000 | (i % KEYS), 0x0bad_cafe])
}

/// What one call of a scenario returned, checked after the timing.
enum Outcome {
    Allowed(bool),
    Status(u16, bool),
}

struct Bench {
    rounds: usize,
    per_round: usize,
    redis_pid: u32,
    /// A connection of its own, for `CONFIG RESETSTAT` and `INFO commandstats`.
    stats: std::cell::RefCell<redis::Connection>,
}

impl Bench {
    fn reset_stats(&self) {
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query(&mut *self.stats.borrow_mut())
            .expect("CONFIG RESETSTAT");
    }

    /// The scripts run (`EVAL`, `EVALSHA`) and the µs spent in them since the last reset.
    /// Every call of the Redis stores is one script, and the commands a script runs are
    /// counted apart by Redis (and inside the script's time), so these are the round trips
    /// and their time in Redis.
    fn command_stats(&self) -> (u64, u64) {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut *self.stats.borrow_mut())
            .expect("INFO commandstats");
        let (mut calls, mut usec) = (0, 0);
        for line in info.lines() {
            let Some((name, fields)) = line
                .strip_prefix("cmdstat_")
                .and_then(|l| l.split_once(':'))
            else {
                continue;
            };
            if !name.starts_with("eval") {
                continue;
            }
            for field in fields.split(',') {
                match field.split_once('=') {
                    Some(("calls", n)) => calls += n.parse::<u64>().unwrap_or(0),
                    Some(("usec", n)) => usec += n.parse::<u64>().unwrap_or(0),
                    _ => {}
                }
            }
        }
        (calls, usec)
    }
}

impl Bench {
    /// Times `call` `rounds × per_round` times on each backend, alternating blocks.
    fn measure(
        &self,
        name: &str,
        mut call: impl FnMut(Backend, u64) -> Outcome,
        check: impl Fn(&Outcome) -> bool,
    ) -> (Sample, Sample) {
        let mut memory = Sample::default();
        let mut redis = Sample::default();
        // Warm-up: connections, scripts loaded, caches, allocator.
        for backend in [Backend::Memory, Backend::Redis] {
            for i in 0..1_000 {
                let outcome = call(backend, WARM_UP_BASE + i);
                assert!(
                    check(&outcome),
                    "{name}: warm-up call {i} on {backend:?} failed"
                );
            }
        }
        self.reset_stats();
        let mut n = 0u64;
        for round in 0..self.rounds {
            let order = if round % 2 == 0 {
                [Backend::Memory, Backend::Redis]
            } else {
                [Backend::Redis, Backend::Memory]
            };
            for backend in order {
                let sample = match backend {
                    Backend::Memory => &mut memory,
                    Backend::Redis => &mut redis,
                };
                let cpu_before = process_cpu_ns(self.redis_pid);
                for _ in 0..self.per_round {
                    n += 1;
                    let start = Instant::now();
                    let outcome = call(backend, n);
                    let elapsed = start.elapsed();
                    assert!(check(&outcome), "{name}: call {n} on {backend:?} failed");
                    sample.ns.push(elapsed.as_nanos() as u64);
                }
                sample.redis_cpu_ns += process_cpu_ns(self.redis_pid) - cpu_before;
            }
        }
        (redis.redis_commands, redis.redis_usec) = self.command_stats();
        memory.ns.sort_unstable();
        redis.ns.sort_unstable();
        (memory, redis)
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    if std::env::args().skip(1).any(|a| a != "--bench") {
        eprintln!("benches/redis takes no arguments; set CALLS and ROUNDS instead");
        std::process::exit(2);
    }
    let calls = env_usize("CALLS", 20_000);
    let rounds = env_usize("ROUNDS", 10).max(2);
    let per_round = (calls / rounds).max(1);
    let Some(server) = RedisServer::start("benches/redis") else {
        eprintln!("benches/redis: redis-server and redis-cli are required");
        std::process::exit(2);
    };
    let redis_pid = server.pid().expect("redis-server runs");
    let version = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();

    let system = actix_rt::System::new();
    let redis = system
        .block_on(
            RedisBackend::builder()
                .key_prefix("bench")
                .connect(&server.url()),
        )
        .expect("connects to the bench's redis-server");
    let stats = redis::Client::open(server.url())
        .and_then(|c| c.get_connection())
        .expect("an inspection connection");
    let bench = Bench {
        rounds,
        per_round,
        redis_pid,
        stats: std::cell::RefCell::new(stats),
    };
    let machine_before = machine_busy_ns();
    let own_before = process_cpu_ns(std::process::id());
    let redis_before = process_cpu_ns(redis_pid);
    let started = Instant::now();
    let mut rows: Vec<(&str, Sample, Sample)> = Vec::new();

    // Store level: one limiter decision.
    let memory_store = MemoryStore::<LimitKey>::new();
    let redis_store = redis.rate_limit_store();
    for (name, algorithm) in [
        ("limiter/gcra", Algorithm::Gcra),
        ("limiter/window", Algorithm::SlidingWindow),
    ] {
        let policy = Policy::new("bench", Rate::per_second(1_000)).with_algorithm(algorithm);
        let (m, r) = bench.measure(
            name,
            |backend, i| {
                let store: &dyn RateLimitStore = match backend {
                    Backend::Memory => &memory_store,
                    Backend::Redis => &redis_store,
                };
                let decision = system.block_on(store.acquire(limit_key(i), &policy, 1));
                Outcome::Allowed(black_box(decision).is_ok_and(|d| d.allowed))
            },
            |o| matches!(o, Outcome::Allowed(true)),
        );
        rows.push((name, m, r));
    }

    // Request level: the in-process stack on each backend.
    // Both apps derive keys from a secret, as every app on a shared store must.
    let secret = "the key secret of benches/redis.rs, 32 bytes or more";
    let memory_api = SecureApi::builder()
        .key_secret(secret)
        .expect("a long enough secret")
        .build();
    let redis_api = SecureApi::builder()
        .key_secret(secret)
        .expect("a long enough secret")
        .rate_limit_store(Arc::new(redis.rate_limit_store()))
        .idempotency_store(Arc::new(redis.idempotency_store()))
        .build();
    let memory_app = system.block_on(test::init_service(
        App::new()
            .wrap(memory_api.layer())
            .service(limited)
            .service(idem),
    ));
    let redis_app = system.block_on(test::init_service(
        App::new()
            .wrap(redis_api.layer())
            .service(limited)
            .service(idem),
    ));
    let send = |backend: Backend, req: actix_http::Request| -> Outcome {
        system.block_on(async {
            let res = match backend {
                Backend::Memory => memory_app.call(req).await,
                Backend::Redis => redis_app.call(req).await,
            }
            .expect("the service answers");
            let status = res.status().as_u16();
            let replayed = res
                .headers()
                .get("idempotent-replayed")
                .is_some_and(|v| v == "true");
            black_box(test::read_body(res).await);
            Outcome::Status(status, replayed)
        })
    };

    let (m, r) = bench.measure(
        "request/limited",
        |backend, i| {
            let req = test::TestRequest::get()
                .uri("/limited")
                .peer_addr(client(i % KEYS))
                .to_request();
            send(backend, req)
        },
        |o| matches!(o, Outcome::Status(200, false)),
    );
    rows.push(("request/limited", m, r));

    let (m, r) = bench.measure(
        "request/idempotent",
        |backend, i| {
            let req = test::TestRequest::post()
                .uri("/idem")
                .peer_addr(client(i))
                .insert_header(("idempotency-key", format!("key-{i}")))
                .to_request();
            send(backend, req)
        },
        |o| matches!(o, Outcome::Status(201, false)),
    );
    rows.push(("request/idempotent", m, r));

    let replayed = || {
        test::TestRequest::post()
            .uri("/idem")
            .peer_addr(client(KEYS + 1))
            .insert_header(("idempotency-key", "replayed"))
            .to_request()
    };
    for backend in [Backend::Memory, Backend::Redis] {
        assert!(matches!(
            send(backend, replayed()),
            Outcome::Status(201, false)
        ));
    }
    let (m, r) = bench.measure(
        "request/replay",
        |backend, _| send(backend, replayed()),
        |o| matches!(o, Outcome::Status(201, true)),
    );
    rows.push(("request/replay", m, r));

    let wall_ns = started.elapsed().as_nanos() as u64;
    let own = process_cpu_ns(std::process::id()) - own_before;
    let redis_cpu = process_cpu_ns(redis_pid) - redis_before;
    let machine = machine_busy_ns().saturating_sub(machine_before);
    let other = machine.saturating_sub(own + redis_cpu) as f64 / wall_ns as f64 * 100.0;

    let mut out = String::new();
    let _ = writeln!(
        out,
        "{version}; {} calls per backend per scenario, in {rounds} alternating blocks",
        per_round * rounds
    );
    let _ = writeln!(
        out,
        "latency per call, µs      |  memory p50    p99  p99.9 |   redis p50    p99  p99.9 | added p50    p99 | Redis scripts/call, µs in them/call, redis-server CPU µs/call"
    );
    for (name, m, r) in &rows {
        let _ = writeln!(
            out,
            "{name:<26}| {:>11.2} {:>6.2} {:>6.2} | {:>11.2} {:>6.2} {:>6.2} | {:>9.2} {:>6.2} | {:>4.1} {:>6.2} {:>6.2}",
            m.quantile(0.5),
            m.quantile(0.99),
            m.quantile(0.999),
            r.quantile(0.5),
            r.quantile(0.99),
            r.quantile(0.999),
            r.quantile(0.5) - m.quantile(0.5),
            r.quantile(0.99) - m.quantile(0.99),
            r.redis_commands as f64 / r.ns.len() as f64,
            r.redis_usec as f64 / r.ns.len() as f64,
            r.redis_cpu_ns as f64 / r.ns.len() as f64 / 1_000.0,
        );
        // The memory blocks must not have touched Redis.
        debug_assert!(m.redis_cpu_ns <= r.redis_cpu_ns);
    }
    let _ = writeln!(
        out,
        "CPU during the run, % of one core: this process {:.0}, redis-server {:.0}, other {other:.0}{}",
        own as f64 / wall_ns as f64 * 100.0,
        redis_cpu as f64 / wall_ns as f64 * 100.0,
        if other > 15.0 {
            "  (WARNING: other processes were busy: the figures are noisy)"
        } else {
            ""
        }
    );
    print!("{out}");
    drop(server);
}
