//! Stacks measured in turns, shared by `benches/stack.rs` and `benches/telemetry.rs`: each
//! round sends a batch of requests through every stack, the order rotating, so that a machine
//! whose speed drifts (a shared VM) slows them alike. Criterion's figures, after it, measure
//! one stack at a time.

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::test;

/// One app's whole stack on one request, to its status.
pub type Caller<'a> = Box<dyn Fn(actix_http::Request) -> StatusCode + 'a>;

/// The caller of an app initialised on `system`: the body is read and dropped.
pub fn caller<'a, S, B>(system: &'a actix_rt::SystemRunner, app: &'a S) -> Caller<'a>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    Box::new(move |req| {
        system.block_on(async {
            let res = test::call_service(app, req).await;
            let status = res.status();
            std::hint::black_box(test::read_body(res).await);
            status
        })
    })
}

/// The environment variable `name` as a number, else `default`.
pub fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `rounds` rounds (at least one) of `batch` requests from `next` through each stack, the
/// order rotating; requests are built outside the timed part. Returns each stack's median
/// and fastest round, in µs per request, in the order of `stacks`.
pub fn interleaved(
    stacks: &[(&str, Caller<'_>)],
    next: &dyn Fn() -> actix_http::Request,
    rounds: usize,
    batch: usize,
) -> Vec<(f64, f64)> {
    let batch = batch.max(1);
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); stacks.len()];
    for round in 0..rounds.max(1) {
        for k in 0..stacks.len() {
            let i = (k + round) % stacks.len();
            let requests: Vec<_> = (0..batch).map(|_| next()).collect();
            let start = std::time::Instant::now();
            for req in requests {
                std::hint::black_box(stacks[i].1(req));
            }
            times[i].push(start.elapsed().as_secs_f64() * 1e6 / batch as f64);
        }
    }
    times
        .into_iter()
        .map(|mut v| {
            v.sort_by(f64::total_cmp);
            (v[v.len() / 2], v[0])
        })
        .collect()
}
