//! A bounded soak of the example app (`examples/users_api.rs`) over a real socket server.
//!
//! Thirteen client threads send exactly [`SOAK_REQUESTS`] requests on keep-alive connections,
//! from about 80 loopback addresses and as 15 principals of the three tiers, in [`ROUNDS`]
//! rounds: fresh `POST /api/users`, replays, conflicting reuses of a key, duplicates in
//! flight at once, invalid bodies, bursts over the anonymous limit, logins, refreshes,
//! logouts, and authenticated reads. The app's stores are the in-memory ones with small
//! bounds, so that every bound is reached during the soak and eviction is exercised; they
//! run on a fake clock that moves [`ROUND_STEP`] between rounds, which makes every rate-limit
//! decision, and so the expected answer to every request, exact.
//!
//! Afterwards: the handler ran once per accepted key (counted from its `created user` log
//! lines), no answer was a 5xx, every answer parsed and carried the security headers, every
//! store stayed within its bound at every checkpoint and under a sampler thread while
//! requests ran, each bound was reached, the stores that refuse at their bound refuse (503),
//! and the server still serves.
//!
//! `cargo test --test soak -- --nocapture` prints the elapsed time and the answers by
//! outcome.

mod common;

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/users_api.rs"]
mod users_api;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use actix_web::App;
use secure_api_runtime::auth::jwt::AccessGrant;
use secure_api_runtime::auth::password::Passwords;
use secure_api_runtime::auth::refresh::MemoryRefreshStore;
use secure_api_runtime::auth::revocation::RevokedTokens;
use secure_api_runtime::clock::FakeClock;
use secure_api_runtime::idempotency::memory::MemoryIdempotencyStore;
use secure_api_runtime::idempotency::{
    Claim, Completion, Digest, IDEMPOTENT_REPLAYED, IdempotencyStore, RecordKey,
};
use secure_api_runtime::store::{StoreError, StoreFuture};
use secure_api_runtime::throttle::memory::MemoryStore;
use serde_json::{Value, json};

/// Client threads with a premium principal and a rotating anonymous address each.
const TASKS: usize = 12;
const ROUNDS: usize = 40;
/// Requests of one task in one round (see [`task_round`]).
const TASK_ROUND: usize = 38;
/// Requests of the session thread in one round (see [`session_round`]).
const SESSION_ROUND: usize = 44;
/// The soak's requests: setup and the probes after it are not counted.
const SOAK_REQUESTS: usize = 20_000;
const _: () = assert!(TASKS * ROUNDS * TASK_ROUND + ROUNDS * SESSION_ROUND == SOAK_REQUESTS);
/// How far the stores' clock moves between rounds: every GCRA bucket of the previous round
/// is full again (stale, so the limiter may sweep it), and no claim is in flight meanwhile.
const ROUND_STEP: Duration = Duration::from_secs(2);
/// Anonymous addresses, `127.0.0.10` on: task `t` uses `(round * TASKS + t) % ANON`, so an
/// address rests 4 rounds (8 s) between uses and its 10/s bucket is always full again.
const ANON: usize = 48;
/// Rounds using small bodies; the rest create users with 250-byte e-mail addresses, so that
/// the idempotency store's byte bounds bind instead of its key bounds.
const SMALL_ROUNDS: usize = ROUNDS / 2;

// The stores' bounds: small, so that each is reached.
/// Limiter keys: one round needs about 100 (its clients' keys, and the login windows, which
/// stay for a minute), the whole soak well over 128, so the store fills and sweeps.
const LIMIT_KEYS: usize = 128;
const IDEM_KEYS: usize = 384;
const IDEM_BYTES: usize = 96 << 10;
const IDEM_CLIENT_KEYS: usize = 8;
const IDEM_CLIENT_BYTES: usize = 2_560;
const SESSIONS_PER_SUBJECT: usize = 3;
/// One session per premium principal, bob and admin; alice logs in every round and keeps
/// her last three: the bound is reached, and never refused during the soak.
const SESSIONS: usize = TASKS + 2 + SESSIONS_PER_SUBJECT;
/// Alice logs out every fourth round: ten revocations, the bound exactly.
const REVOCATIONS: usize = ROUNDS / 4;

const PASSWORD: &str = "soak-demo-password";
const ROUTE: &str = "/api/users";

// ---------------------------------------------------------------------------------------
// Handler executions, from the example's log lines.

/// The test binary's logger: counts the example's `created user <name>` lines by name (one
/// line per execution of `create_user`) and keeps every warning and error.
struct SoakLog {
    created: Mutex<HashMap<String, u32>>,
    warnings: Mutex<Vec<String>>,
}

impl log::Log for SoakLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = record.args().to_string();
        if let Some(user) = message.strip_prefix("created user ") {
            *lock(&self.created).entry(user.to_owned()).or_default() += 1;
        } else if record.level() <= log::Level::Warn {
            lock(&self.warnings).push(format!("{} {} {message}", record.level(), record.target()));
        }
    }

    fn flush(&self) {}
}

fn soak_log() -> &'static SoakLog {
    static LOG: std::sync::OnceLock<&'static SoakLog> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let log: &'static SoakLog = Box::leak(Box::new(SoakLog {
            created: Mutex::new(HashMap::new()),
            warnings: Mutex::new(Vec::new()),
        }));
        log::set_logger(log).expect("the only logger of this test binary");
        log::set_max_level(log::LevelFilter::Info);
        log
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------
// Requests in flight on purpose: an idempotency store that holds chosen completions.

/// Holds one request's completion until the test opens it, so that its key is in flight
/// for as long as the test needs (no sleeping, no timing).
#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    entered: Condvar,
}

#[derive(Default)]
struct GateState {
    entered: bool,
    open: bool,
    waker: Option<Waker>,
}

impl Gate {
    /// Blocks until the gated request's handler has run and its completion waits here.
    fn wait_entered(&self) {
        let state = lock(&self.state);
        let (state, _) = self
            .entered
            .wait_timeout_while(state, Duration::from_secs(60), |s| !s.entered)
            .unwrap_or_else(PoisonError::into_inner);
        assert!(
            state.entered,
            "the gated request never reached its completion"
        );
    }

    fn open(&self) {
        let mut state = lock(&self.state);
        state.open = true;
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }
}

struct Opened(Arc<Gate>);

impl Future for Opened {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = lock(&self.0.state);
        if !state.entered {
            state.entered = true;
            self.0.entered.notify_all();
        }
        if state.open {
            return Poll::Ready(());
        }
        state.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// The app's idempotency store: the in-memory store, with the completion of chosen keys
/// held at a [`Gate`].
struct GatedStore {
    inner: Arc<MemoryIdempotencyStore>,
    gates: Mutex<HashMap<Digest, Arc<Gate>>>,
}

impl GatedStore {
    /// Holds the next completion of `key` until the returned gate is opened.
    fn gate(&self, key: RecordKey) -> Arc<Gate> {
        let gate = Arc::new(Gate::default());
        lock(&self.gates).insert(key.scope, gate.clone());
        gate
    }
}

impl IdempotencyStore for GatedStore {
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
        self.inner.renew(key, owner, lease_ms)
    }

    fn complete(
        &self,
        key: &RecordKey,
        owner: u128,
        completion: Completion,
        ttl_ms: u64,
    ) -> StoreFuture<'_, Result<bool, StoreError>> {
        let Some(gate) = lock(&self.gates).remove(&key.scope) else {
            return self.inner.complete(key, owner, completion, ttl_ms);
        };
        let (inner, key) = (self.inner.clone(), *key);
        StoreFuture::Pending(Box::pin(async move {
            Opened(gate).await;
            inner.complete(&key, owner, completion, ttl_ms).await
        }))
    }

    fn release(&self, key: &RecordKey, owner: u128) -> StoreFuture<'_, Result<bool, StoreError>> {
        self.inner.release(key, owner)
    }
}

// ---------------------------------------------------------------------------------------
// A keep-alive HTTP/1.1 client.

/// A response read off the socket.
#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    /// Names in lower case.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("body is not JSON: {e}"))
    }

    fn replayed(&self) -> bool {
        self.header(IDEMPOTENT_REPLAYED) == Some("true")
    }
}

/// A request.
#[derive(Debug, Clone)]
struct Req {
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    /// `Content-Length` without sending the body (the 413 case), on a connection of its own.
    declared_only: Option<usize>,
}

impl Req {
    fn get(path: impl Into<String>) -> Req {
        Req {
            method: "GET",
            path: path.into(),
            headers: vec![],
            body: vec![],
            declared_only: None,
        }
    }

    fn post(path: impl Into<String>, body: &Value) -> Req {
        Req {
            method: "POST",
            path: path.into(),
            headers: vec![("Content-Type", "application/json".into())],
            body: body.to_string().into_bytes(),
            declared_only: None,
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Req {
        self.headers.push((name, value.into()));
        self
    }

    fn bearer(self, token: &str) -> Req {
        self.header("Authorization", format!("Bearer {token}"))
    }

    fn key(self, key: &str) -> Req {
        self.header("Idempotency-Key", key)
    }

    fn encode(&self, host: SocketAddr) -> Vec<u8> {
        let length = self.declared_only.unwrap_or(self.body.len());
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {length}\r\n",
            self.method, self.path
        );
        if self.declared_only.is_some() {
            head.push_str("Connection: close\r\n");
        }
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        if self.declared_only.is_none() {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// One keep-alive connection from a chosen loopback address. A request on a reused
/// connection that the server closed while it was idle (no byte of an answer came back) is
/// sent again on a new connection, as HTTP clients do; such retries are counted.
struct Conn {
    source: IpAddr,
    server: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    /// The request written and not yet answered, and whether it went on a reused connection.
    pending: Option<(Vec<u8>, bool)>,
    retries: usize,
}

impl Conn {
    fn new(source: IpAddr, server: SocketAddr) -> Conn {
        Conn {
            source,
            server,
            stream: None,
            buf: Vec::new(),
            pending: None,
            retries: 0,
        }
    }

    /// Connects from `source`: a socket bound before it connects, which `std` cannot do, so
    /// through the runtime's socket type on a runtime of this thread.
    fn connect(&self) -> std::io::Result<TcpStream> {
        thread_local! {
            static RT: actix_rt::Runtime = actix_rt::Runtime::new().expect("a runtime");
        }
        let (source, server) = (self.source, self.server);
        let stream = RT.with(|rt| {
            rt.block_on(async move {
                let socket = actix_rt::net::TcpSocket::new_v4()?;
                socket.bind(SocketAddr::new(source, 0))?;
                socket.connect(server).await?.into_std()
            })
        })?;
        stream.set_nonblocking(false)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(stream)
    }

    /// Drops the connection: the next request opens a new one.
    fn fresh(&mut self) {
        self.stream = None;
        self.buf.clear();
    }

    fn write(&mut self, req: &Req) -> Result<(), String> {
        let bytes = req.encode(self.server);
        if req.declared_only.is_some() {
            self.fresh();
        }
        let reused = self.stream.is_some();
        self.pending = Some((bytes, reused));
        self.write_pending()
    }

    fn write_pending(&mut self) -> Result<(), String> {
        if self.stream.is_none() {
            self.buf.clear();
            self.stream = Some(self.connect().map_err(|e| format!("connect: {e}"))?);
        }
        let (bytes, _) = self.pending.as_ref().expect("a request to write");
        let stream = self.stream.as_mut().expect("connected");
        match stream.write_all(bytes) {
            Ok(()) => Ok(()),
            // Found closed while writing: `read` sends it again.
            Err(_) => Ok(()),
        }
    }

    fn read(&mut self) -> Result<Reply, String> {
        loop {
            match self.read_reply() {
                Ok((reply, close)) => {
                    self.pending = None;
                    if close {
                        self.fresh();
                    }
                    return Ok(reply);
                }
                Err((e, closed_before_answering)) => {
                    self.fresh();
                    let reused = self.pending.as_ref().is_some_and(|p| p.1);
                    if !(closed_before_answering && reused) {
                        self.pending = None;
                        return Err(e);
                    }
                    self.retries += 1;
                    if let Some(p) = self.pending.as_mut() {
                        p.1 = false;
                    }
                    self.write_pending()?;
                }
            }
        }
    }

    fn send(&mut self, req: &Req) -> Result<Reply, String> {
        self.write(req)?;
        self.read()
    }

    /// Reads one sized response. `Err((why, closed_before_answering))`: the connection was
    /// closed or reset before any byte of an answer.
    fn read_reply(&mut self) -> Result<(Reply, bool), (String, bool)> {
        let stream = self
            .stream
            .as_mut()
            .ok_or(("not connected".to_owned(), true))?;
        let mut chunk = [0u8; 16 * 1024];
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            match stream.read(&mut chunk) {
                Ok(0) => {
                    return Err((
                        "connection closed before an answer".into(),
                        self.buf.is_empty(),
                    ));
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                // A reset is a close; a timeout is not, and is never resent.
                Err(e) => {
                    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
                    let closed =
                        matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe);
                    return Err((format!("read: {e}"), closed && self.buf.is_empty()));
                }
            }
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec())
            .map_err(|_| ("head is not UTF-8".to_owned(), false))?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
            .ok_or((format!("bad status line {status_line:?}"), false))?;
        let mut headers = Vec::new();
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .ok_or((format!("bad header line {line:?}"), false))?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        let reply_len = |headers: &[(String, String)]| -> Result<usize, (String, bool)> {
            if status == 204 || status == 304 {
                return Ok(0);
            }
            let mut lengths = headers.iter().filter(|(n, _)| n == "content-length");
            match (lengths.next(), lengths.next()) {
                (Some((_, v)), None) => v
                    .parse()
                    .map_err(|_| (format!("bad content-length {v:?}"), false)),
                _ => Err(("not exactly one content-length".into(), false)),
            }
        };
        let len = reply_len(&headers)?;
        let total = head_end + 4 + len;
        while self.buf.len() < total {
            match stream.read(&mut chunk) {
                Ok(0) => return Err(("connection closed inside a body".into(), false)),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err((format!("read: {e}"), false)),
            }
        }
        let body = self.buf[head_end + 4..total].to_vec();
        self.buf.drain(..total);
        let close = headers
            .iter()
            .any(|(n, v)| n == "connection" && v.eq_ignore_ascii_case("close"));
        Ok((
            Reply {
                status,
                headers,
                body,
            },
            close,
        ))
    }
}

// ---------------------------------------------------------------------------------------
// What every answer must be, and what each request expects.

/// Checks that hold for every answer of the soak: no 5xx, and [`check_shape`].
fn check_common(reply: &Reply) -> Result<(), String> {
    if reply.status >= 500 {
        return Err(format!("a {} answer: {}", reply.status, text(reply)));
    }
    check_shape(reply)
}

/// The security headers exactly once each with their values, no `Server` or
/// `X-Powered-By`, and for errors an RFC 9457 problem.
fn check_shape(reply: &Reply) -> Result<(), String> {
    for (name, value) in common::SECURITY_HEADERS {
        let got: Vec<_> = reply.headers.iter().filter(|(n, _)| n == name).collect();
        if got.len() != 1 || got[0].1 != *value {
            return Err(format!("security header {name}: {got:?}"));
        }
    }
    for name in ["server", "x-powered-by"] {
        if reply.header(name).is_some() {
            return Err(format!("a {name} header"));
        }
    }
    if reply.status >= 400 {
        if reply.header("content-type") != Some("application/problem+json") {
            return Err(format!("a {} that is not a problem", reply.status));
        }
        let body = reply.json()?;
        let complete = body["type"].as_str().is_some()
            && body["status"] == reply.status
            && body["title"].as_str().is_some_and(|t| !t.is_empty())
            && body["detail"].as_str().is_some_and(|d| d.ends_with('.'))
            && body["instance"]
                .as_str()
                .is_some_and(|i| i.starts_with("urn:uuid:"));
        if !complete {
            return Err(format!("incomplete problem {body}"));
        }
    }
    Ok(())
}

fn text(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body).into_owned()
}

fn slug_of(reply: &Reply) -> Option<String> {
    let body: Value = serde_json::from_slice(&reply.body).ok()?;
    body["type"]
        .as_str()?
        .strip_prefix("tag:secure-api.dev,2026:problem:")
        .map(str::to_owned)
}

/// What one request must get.
enum Want {
    /// A first run of `create_user`: 201, not replayed, the normalised user, its location.
    Created { user: String, email: String },
    /// The answer `first` again, marked as replayed.
    Replay { first: Reply },
    /// A problem of this status and type.
    Problem(u16, &'static str),
    /// A 429 with `Retry-After` and the `RateLimit` fields.
    Limited,
    /// 200 with JSON the closure accepts.
    Json(fn(&Value, &str) -> bool, String),
    /// 204.
    NoContent,
}

/// The outcome names of the report, and what is checked of each answer.
fn check(want: &Want, reply: &Reply) -> Result<&'static str, String> {
    check_common(reply)?;
    let status = reply.status;
    match want {
        Want::Created { user, email } => {
            if status != 201 || reply.replayed() {
                return Err(format!(
                    "wanted a first 201 for {user}, got {status} (replayed: {}) {}",
                    reply.replayed(),
                    text(reply)
                ));
            }
            let body = reply.json()?;
            if body != json!({ "user": user, "email": email }) {
                return Err(format!("created {user}: body {body}"));
            }
            if reply.header("location") != Some(&format!("{ROUTE}/{user}")) {
                return Err(format!(
                    "created {user}: location {:?}",
                    reply.header("location")
                ));
            }
            rate_limit_fields(reply)?;
            Ok("201 created (handler ran)")
        }
        Want::Replay { first } => {
            if status != first.status || !reply.replayed() || reply.body != first.body {
                return Err(format!(
                    "wanted a replay of {} {}, got {status} (replayed: {}) {}",
                    first.status,
                    text(first),
                    reply.replayed(),
                    text(reply)
                ));
            }
            if reply.header("location") != first.header("location")
                || reply.header("content-type") != first.header("content-type")
            {
                return Err("a replay without the first answer's headers".into());
            }
            rate_limit_fields(reply)?;
            Ok(match status {
                201 => "201 replayed",
                422 => "422 replayed (validation-failed)",
                _ => "other replayed",
            })
        }
        Want::Problem(want_status, slug) => {
            if status != *want_status || slug_of(reply).as_deref() != Some(slug) {
                return Err(format!(
                    "wanted {want_status} {slug}, got {status} {}",
                    text(reply)
                ));
            }
            if reply.replayed() {
                return Err(format!("a {status} {slug} marked as replayed"));
            }
            if *want_status == 409
                && reply
                    .header("retry-after")
                    .is_none_or(|r| r.parse::<u64>().is_err())
            {
                return Err("a 409 without Retry-After".into());
            }
            Ok(problem_outcome(*want_status, slug))
        }
        Want::Limited => {
            if status != 429 || slug_of(reply).as_deref() != Some("rate-limited") {
                return Err(format!("wanted 429, got {status} {}", text(reply)));
            }
            let retry = reply
                .header("retry-after")
                .and_then(|r| r.parse::<u64>().ok());
            if retry.is_none_or(|r| r < 1) {
                return Err(format!("429 Retry-After {:?}", reply.header("retry-after")));
            }
            rate_limit_fields(reply)?;
            Ok("429 rate-limited")
        }
        Want::Json(accept, what) => {
            let body = reply.json();
            if status != 200 || !body.as_ref().is_ok_and(|b| accept(b, what)) {
                return Err(format!("wanted 200 ({what}), got {status} {}", text(reply)));
            }
            Ok(json_outcome(what))
        }
        Want::NoContent => {
            if status != 204 {
                return Err(format!("wanted 204, got {status} {}", text(reply)));
            }
            Ok("204 logged out")
        }
    }
}

/// The `RateLimit-Policy` and `RateLimit` fields, on allowed and refused answers alike.
fn rate_limit_fields(reply: &Reply) -> Result<(), String> {
    match (reply.header("ratelimit-policy"), reply.header("ratelimit")) {
        (Some(policy), Some(limit)) if policy.contains(";q=") && limit.contains(";r=") => Ok(()),
        fields => Err(format!(
            "a {} without RateLimit fields: {fields:?}",
            reply.status
        )),
    }
}

fn problem_outcome(status: u16, slug: &str) -> &'static str {
    match (status, slug) {
        (400, "idempotency-key-missing") => "400 idempotency-key-missing",
        (400, "malformed-request") => "400 malformed-request",
        (401, "invalid-credentials") => "401 invalid-credentials",
        (403, "forbidden") => "403 forbidden",
        (409, "idempotency-request-in-progress") => "409 idempotency-request-in-progress",
        (413, "payload-too-large") => "413 payload-too-large",
        (415, "unsupported-media-type") => "415 unsupported-media-type",
        (422, "idempotency-key-reused") => "422 idempotency-key-reused",
        (422, "validation-failed") => "422 validation-failed",
        _ => "other problem",
    }
}

fn json_outcome(what: &str) -> &'static str {
    match what.split(':').next().unwrap_or_default() {
        "me" => "200 GET /api/me",
        "user" => "200 GET /api/users/{id}",
        "login" => "200 login",
        "refresh" => "200 refresh",
        _ => "200 other",
    }
}

/// `GET /api/me` of `subject:tier`.
fn is_me(body: &Value, what: &str) -> bool {
    let mut parts = what.split(':').skip(1);
    let (subject, tier) = (parts.next(), parts.next());
    body["subject"].as_str() == subject && body["tier"].as_str() == tier
}

/// `GET /api/users/{id}` of `id:tier`.
fn is_user(body: &Value, what: &str) -> bool {
    let mut parts = what.split(':').skip(1);
    let (id, tier) = (parts.next().unwrap_or_default(), parts.next());
    body["id"] == id
        && body["email"] == format!("{id}@example.com")
        && body["tier"].as_str() == tier
}

/// A login or refresh answer: a token pair.
fn is_pair(body: &Value, _: &str) -> bool {
    body["token_type"] == "Bearer"
        && body["access_token"].as_str().is_some_and(|t| t.len() > 20)
        && body["refresh_token"].as_str().is_some_and(|t| t.len() > 20)
}

// ---------------------------------------------------------------------------------------
// The clients.

/// What a client thread reports.
#[derive(Default)]
struct Tally {
    outcomes: BTreeMap<&'static str, usize>,
    requests: usize,
    violations: Vec<String>,
    /// Users whose creation answered a first 201: one per accepted key.
    created: Vec<String>,
    /// Accepted keys (a first 2xx).
    accepted_keys: Vec<String>,
    retries: usize,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        for (k, v) in other.outcomes {
            *self.outcomes.entry(k).or_default() += v;
        }
        self.requests += other.requests;
        self.violations.extend(other.violations);
        self.created.extend(other.created);
        self.accepted_keys.extend(other.accepted_keys);
        self.retries += other.retries;
    }
}

/// One client thread's view: its tally and where it is.
struct Client {
    tally: Tally,
    at: String,
}

impl Client {
    /// Sends `req` on `conn` and checks the answer against `want`. Returns the answer.
    fn expect(&mut self, conn: &mut Conn, req: &Req, want: Want) -> Option<Reply> {
        let reply = conn.send(req);
        self.judge(req, reply, want)
    }

    /// Checks an answer already read.
    fn judge(&mut self, req: &Req, reply: Result<Reply, String>, want: Want) -> Option<Reply> {
        self.tally.requests += 1;
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) => {
                self.violation(req, e);
                return None;
            }
        };
        match check(&want, &reply) {
            Ok(outcome) => {
                *self.tally.outcomes.entry(outcome).or_default() += 1;
                if let Want::Created { user, .. } = &want {
                    self.tally.created.push(user.clone());
                    if let Some((_, key)) =
                        req.headers.iter().find(|(n, _)| *n == "Idempotency-Key")
                    {
                        self.tally.accepted_keys.push(key.clone());
                    }
                }
            }
            Err(e) => self.violation(req, e),
        }
        Some(reply)
    }

    fn violation(&mut self, req: &Req, e: String) {
        self.tally
            .violations
            .push(format!("{}: {} {}: {e}", self.at, req.method, req.path));
    }
}

/// A user to create: its name, its e-mail (long in the later rounds), and the body.
struct NewUser {
    name: String,
    email: String,
    body: Value,
    key: String,
}

impl NewUser {
    fn new(name: String, round: usize) -> NewUser {
        let email = if round < SMALL_ROUNDS {
            format!("{name}@example.com")
        } else {
            // 251 bytes: a 64-byte local part and three 60-byte labels.
            let local = format!("{name}.{}", "x".repeat(63 - name.len()));
            let label = "y".repeat(60);
            format!("{local}@{label}.{label}.{label}.com")
        };
        NewUser {
            body: json!({ "username": format!(" {} ", name.to_uppercase()), "email": email.to_uppercase(), "age": 30 }),
            key: format!("soak-{name}"),
            name,
            email,
        }
    }

    fn req(&self, token: Option<&str>) -> Req {
        let req = Req::post(ROUTE, &self.body).key(&self.key);
        match token {
            Some(token) => req.bearer(token),
            None => req,
        }
    }

    /// The same key with another body.
    fn conflicting(&self, token: Option<&str>) -> Req {
        let mut body = self.body.clone();
        body["age"] = json!(31);
        let req = Req::post(ROUTE, &body).key(&self.key);
        match token {
            Some(token) => req.bearer(token),
            None => req,
        }
    }

    fn created(&self) -> Want {
        Want::Created {
            user: self.name.clone(),
            email: self.email.clone(),
        }
    }
}

/// A premium principal: its subject and access token.
#[derive(Clone)]
struct Member {
    subject: String,
    token: String,
}

struct Setup {
    server: SocketAddr,
    members: Vec<Member>,
    gated: Arc<GatedStore>,
}

fn anon_addr(round: usize, task: usize) -> IpAddr {
    let n = (round * TASKS + task) % ANON;
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10 + n as u8))
}

fn member_addr(task: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 70 + task as u8))
}

/// The connections of one task: two for its principal, one for the round's address.
struct TaskConns {
    main: Conn,
    second: Conn,
}

/// One task's 38 requests of one round.
fn task_round(c: &mut Client, conns: &mut TaskConns, setup: &Setup, t: usize, r: usize) {
    let me = &setup.members[t];
    let other = &setup.members[(t + 1) % TASKS];
    let token = Some(me.token.as_str());
    let name = |tag: &str| format!("m{t:02}r{r:02}{tag}");
    let main = &mut conns.main;

    // Fresh creations, replays and a conflicting reuse.
    let a = NewUser::new(name("a"), r);
    let first = c.expect(main, &a.req(token), a.created());
    if let Some(first) = first {
        c.expect(main, &a.req(token), Want::Replay { first });
    }
    let b = NewUser::new(name("b"), r);
    let first = c.expect(main, &b.req(token), b.created());
    c.expect(
        main,
        &b.conflicting(token),
        Want::Problem(422, "idempotency-key-reused"),
    );
    if let Some(first) = first {
        c.expect(main, &b.req(token), Want::Replay { first });
    }
    for tag in ["c", "d"] {
        let u = NewUser::new(name(tag), r);
        c.expect(main, &u.req(token), u.created());
    }

    // Invalid bodies, each with a fresh key: the answer is stored and replayed like any
    // other, and the handler never runs.
    let invalid = Req::post(
        ROUTE,
        &json!({ "username": "ab", "email": "not an address", "age": 200 }),
    )
    .key(&format!("soak-{}", name("v")))
    .bearer(&me.token);
    let first = c.expect(main, &invalid, Want::Problem(422, "validation-failed"));
    if let Some(first) = first {
        let body = first.json().unwrap_or_default();
        let pointers: Vec<_> = body["errors"]
            .as_array()
            .map(|e| e.iter().map(|e| e["pointer"].clone()).collect())
            .unwrap_or_default();
        if pointers != [json!("/username"), json!("/email"), json!("/age")] {
            c.violation(&invalid, format!("validation pointers {pointers:?}"));
        }
        c.expect(main, &invalid, Want::Replay { first });
    }
    let mut malformed = Req::post(ROUTE, &json!({})).key(&format!("soak-{}", name("m")));
    malformed.body = br#"{"username": "#.to_vec();
    c.expect(
        main,
        &malformed.bearer(&me.token),
        Want::Problem(400, "malformed-request"),
    );
    let mut plain = NewUser::new(name("w"), r).req(token);
    plain.headers[0].1 = "text/plain".into();
    c.expect(main, &plain, Want::Problem(415, "unsupported-media-type"));
    let mut extra = NewUser::new(name("u"), r);
    extra.body["is_admin"] = json!(true);
    c.expect(
        main,
        &extra.req(token),
        Want::Problem(422, "validation-failed"),
    );
    let unkeyed = Req::post(ROUTE, &NewUser::new(name("k"), r).body).bearer(&me.token);
    c.expect(
        main,
        &unkeyed,
        Want::Problem(400, "idempotency-key-missing"),
    );
    let huge = Req {
        declared_only: Some(17 * 1024),
        ..NewUser::new(name("h"), r).req(token)
    };
    c.expect(main, &huge, Want::Problem(413, "payload-too-large"));

    // Reads: its own profile, someone else's, and the principal itself.
    let tier_me = format!("me:{}:premium", me.subject);
    c.expect(
        main,
        &Req::get("/api/me").bearer(&me.token),
        Want::Json(is_me, tier_me),
    );
    c.expect(
        main,
        &Req::get(format!("/api/users/{}", me.subject)).bearer(&me.token),
        Want::Json(is_user, format!("user:{}:premium", me.subject)),
    );
    c.expect(
        main,
        &Req::get(format!("/api/users/{}", other.subject)).bearer(&me.token),
        Want::Problem(403, "forbidden"),
    );
    c.expect(
        main,
        &Req::get("/api/me").bearer("not.a.token"),
        Want::Problem(401, "invalid-credentials"),
    );

    // The same new key sent on two connections at once: one run, and the other answer is
    // either "in progress" or the replay.
    let dup = NewUser::new(name("n"), r);
    let req = dup.req(token);
    let second = &mut conns.second;
    let w1 = conns.main.write(&req);
    let w2 = second.write(&req);
    let r1 = w1.and_then(|()| conns.main.read());
    let r2 = w2.and_then(|()| second.read());
    let (first, other) = match &r1 {
        Ok(x) if x.status == 201 && !x.replayed() => (r1, r2),
        _ => (r2, r1),
    };
    let first = c.judge(&req, first, dup.created());
    let want = match (&other, first) {
        (Ok(o), Some(first)) if o.status != 409 => Want::Replay { first },
        _ => Want::Problem(409, "idempotency-request-in-progress"),
    };
    c.judge(&req, other, want);

    // The same key held in flight (its completion waits at a gate): another connection is
    // told it is in progress, a different body is refused as a reuse, and once the first
    // finishes, the retry gets its answer.
    let held = NewUser::new(name("g"), r);
    let gate = setup.gated.gate(RecordKey::new(
        &format!("principal:{}", me.subject),
        ROUTE,
        held.key.as_bytes(),
    ));
    let req = held.req(token);
    conns.main.fresh();
    let written = conns.main.write(&req);
    if written.is_ok() {
        gate.wait_entered();
    }
    c.expect(
        &mut conns.second,
        &req,
        Want::Problem(409, "idempotency-request-in-progress"),
    );
    c.expect(
        &mut conns.second,
        &held.conflicting(token),
        Want::Problem(422, "idempotency-key-reused"),
    );
    gate.open();
    let first = written.and_then(|()| conns.main.read());
    if let Some(first) = c.judge(&req, first, held.created()) {
        c.expect(&mut conns.second, &req, Want::Replay { first });
    }
}

/// One task's 14 anonymous requests of one round, from the round's address: ten answered
/// (eight creations, a replay and a conflict), then three over the 10/s limit, and a read
/// without a token.
fn anon_round(c: &mut Client, conn: &mut Conn, t: usize, r: usize) {
    let name = |i: usize| format!("n{t:02}r{r:02}k{i:02}");
    let mut fresh = (0..11).map(|i| NewUser::new(name(i), r));
    let first = fresh.next().expect("a user");
    let reply = c.expect(conn, &first.req(None), first.created());
    if let Some(reply) = reply {
        c.expect(conn, &first.req(None), Want::Replay { first: reply });
    }
    let second = fresh.next().expect("a user");
    c.expect(conn, &second.req(None), second.created());
    c.expect(
        conn,
        &second.conflicting(None),
        Want::Problem(422, "idempotency-key-reused"),
    );
    for u in fresh.by_ref().take(6) {
        c.expect(conn, &u.req(None), u.created());
    }
    for u in fresh {
        c.expect(conn, &u.req(None), Want::Limited);
    }
    c.expect(
        conn,
        &Req::get("/api/me"),
        Want::Problem(401, "invalid-credentials"),
    );
}

fn task_thread(setup: Arc<Setup>, t: usize, barrier: Arc<Barrier>) -> Tally {
    let mut c = Client {
        tally: Tally::default(),
        at: String::new(),
    };
    let mut conns = TaskConns {
        main: Conn::new(member_addr(t), setup.server),
        second: Conn::new(member_addr(t), setup.server),
    };
    for r in 0..ROUNDS {
        barrier.wait();
        let before = c.tally.requests;
        c.at = format!("task {t} round {r}");
        let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
            task_round(&mut c, &mut conns, &setup, t, r);
            let mut anon = Conn::new(anon_addr(r, t), setup.server);
            anon_round(&mut c, &mut anon, t, r);
            c.tally.retries += anon.retries;
        }));
        if let Err(panic) = run {
            c.tally
                .violations
                .push(format!("{}: panicked: {panic:?}", c.at));
        }
        let sent = c.tally.requests - before;
        if sent != TASK_ROUND {
            c.tally
                .violations
                .push(format!("{}: {sent} requests, not {TASK_ROUND}", c.at));
        }
        barrier.wait();
    }
    c.tally.retries += conns.main.retries + conns.second.retries;
    c.tally
}

/// What the session thread keeps between rounds.
struct Sessions {
    bob: String,
    admin: String,
    /// Alice's refresh token of each login (after its refresh), by round.
    alice_refresh: Vec<String>,
    /// The rounds whose login of alice still has its session, oldest first.
    alice_live: std::collections::VecDeque<usize>,
    /// The round of alice's last session evicted by the per-subject bound.
    alice_evicted: Option<usize>,
    /// Alice's current access token.
    alice: String,
}

fn addr(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// The session thread's 44 requests of one round: alice logs in (from one of ten
/// addresses, under the 5/min per address), reads, refreshes, and every fourth round logs
/// out; her oldest sessions are evicted by the per-subject bound; bob (tier `user`) creates
/// users; admin reads them.
fn session_round(c: &mut Client, s: &mut Sessions, conn: &mut Conn, server: SocketAddr, r: usize) {
    let mut login_conn = Conn::new(addr(100 + (r % 10) as u8), server);
    let login = Req::post(
        "/api/login",
        &json!({ "username": "alice", "password": PASSWORD }),
    );
    let pair = c.expect(&mut login_conn, &login, Want::Json(is_pair, "login".into()));
    let pair = pair.and_then(|p| p.json().ok()).unwrap_or_default();
    let access = pair["access_token"].as_str().unwrap_or_default().to_owned();
    let refresh = pair["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    c.expect(
        conn,
        &Req::get("/api/me").bearer(&access),
        Want::Json(is_me, "me:alice:premium".into()),
    );
    let refreshed = c.expect(
        &mut login_conn,
        &Req::post("/api/token/refresh", &json!({ "refresh_token": refresh })),
        Want::Json(is_pair, "refresh".into()),
    );
    let refreshed = refreshed.and_then(|p| p.json().ok()).unwrap_or_default();
    s.alice = refreshed["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    s.alice_refresh.push(
        refreshed["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    );
    c.expect(
        conn,
        &Req::get("/api/me").bearer(&s.alice),
        Want::Json(is_me, "me:alice:premium".into()),
    );
    // Alice creates two users (before any logout of this round).
    for i in 0..2 {
        let u = NewUser::new(format!("a{r:02}k{i}"), r);
        c.expect(conn, &u.req(Some(&s.alice)), u.created());
    }
    // Alice's sessions, oldest first: past three, her login evicted the oldest. The last
    // evicted one refreshes no more (before any, a token this service never issued).
    s.alice_live.push_back(r);
    if s.alice_live.len() > SESSIONS_PER_SUBJECT {
        s.alice_evicted = s.alice_live.pop_front();
    }
    let old = match s.alice_evicted {
        Some(evicted) => s.alice_refresh[evicted].clone(),
        None => "A".repeat(43),
    };
    c.expect(
        &mut login_conn,
        &Req::post("/api/token/refresh", &json!({ "refresh_token": old })),
        Want::Problem(401, "invalid-credentials"),
    );
    c.tally.retries += login_conn.retries;

    if r % 4 == 1 {
        s.alice_live.pop_back();
        c.expect(
            conn,
            &Req::post("/api/logout", &json!({})).bearer(&s.alice),
            Want::NoContent,
        );
        c.expect(
            conn,
            &Req::get("/api/me").bearer(&s.alice),
            Want::Problem(401, "invalid-credentials"),
        );
        let logged_out = s.alice_refresh.last().cloned().unwrap_or_default();
        let mut again = Conn::new(addr(100 + (r % 10) as u8), server);
        c.expect(
            &mut again,
            &Req::post(
                "/api/token/refresh",
                &json!({ "refresh_token": logged_out }),
            ),
            Want::Problem(401, "invalid-credentials"),
        );
        c.tally.retries += again.retries;
    } else {
        c.expect(
            conn,
            &Req::get("/api/users/alice").bearer(&s.alice),
            Want::Json(is_user, "user:alice:premium".into()),
        );
        c.expect(
            conn,
            &Req::get("/api/users/bob").bearer(&s.alice),
            Want::Problem(403, "forbidden"),
        );
        c.expect(
            conn,
            &Req::get("/api/users/alice").bearer(&s.admin),
            Want::Json(is_user, "user:alice:premium".into()),
        );
    }

    // A wrong password for an unknown account, from an address of its own.
    if r % 5 == 2 {
        let mut wrong = Conn::new(addr(120 + (r / 5) as u8), server);
        c.expect(
            &mut wrong,
            &Req::post(
                "/api/login",
                &json!({ "username": "mallory", "password": "guess" }),
            ),
            Want::Problem(401, "invalid-credentials"),
        );
        c.tally.retries += wrong.retries;
    } else {
        let mut nobody = Conn::new(addr(141), server);
        c.expect(
            &mut nobody,
            &Req::get("/api/me"),
            Want::Problem(401, "invalid-credentials"),
        );
        c.tally.retries += nobody.retries;
    }

    // Bob, tier `user` (100/s): ten creations, each replayed and reused with another body.
    for i in 0..10 {
        let u = NewUser::new(format!("b{r:02}k{i:02}"), r);
        let token = Some(s.bob.as_str());
        if let Some(first) = c.expect(conn, &u.req(token), u.created()) {
            c.expect(conn, &u.req(token), Want::Replay { first });
        }
        c.expect(
            conn,
            &u.conflicting(token),
            Want::Problem(422, "idempotency-key-reused"),
        );
    }
    // Admin and bob read.
    c.expect(
        conn,
        &Req::get("/api/users/bob").bearer(&s.admin),
        Want::Json(is_user, "user:bob:user".into()),
    );
    c.expect(
        conn,
        &Req::get("/api/me").bearer(&s.admin),
        Want::Json(is_me, "me:admin:user".into()),
    );
    c.expect(
        conn,
        &Req::get("/api/me").bearer(&s.bob),
        Want::Json(is_me, "me:bob:user".into()),
    );
}

fn session_thread(server: SocketAddr, mut s: Sessions, barrier: Arc<Barrier>) -> Tally {
    let mut c = Client {
        tally: Tally::default(),
        at: String::new(),
    };
    let mut conn = Conn::new(addr(140), server);
    for r in 0..ROUNDS {
        barrier.wait();
        let before = c.tally.requests;
        c.at = format!("sessions round {r}");
        let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
            session_round(&mut c, &mut s, &mut conn, server, r);
        }));
        if let Err(panic) = run {
            c.tally
                .violations
                .push(format!("{}: panicked: {panic:?}", c.at));
        }
        let sent = c.tally.requests - before;
        if sent != SESSION_ROUND {
            c.tally
                .violations
                .push(format!("{}: {sent} requests, not {SESSION_ROUND}", c.at));
        }
        barrier.wait();
    }
    c.tally.retries += conn.retries;
    c.tally
}

// ---------------------------------------------------------------------------------------
// The stores, their checkpoints, and the soak.

/// The app's stores, kept to read their sizes.
struct Stores {
    clock: FakeClock,
    limits: Arc<MemoryStore>,
    idempotency: Arc<MemoryIdempotencyStore>,
    sessions: Arc<MemoryRefreshStore>,
    revocations: Arc<RevokedTokens>,
}

/// The idempotency partitions of every client of the soak.
fn clients() -> Vec<(String, Digest)> {
    let mut names: Vec<String> = (0..TASKS)
        .map(|t| format!("principal:member{t:02}"))
        .collect();
    names.extend(["principal:alice".into(), "principal:bob".into()]);
    names.extend((0..ANON).map(|n| format!("ip:127.0.0.{}", 10 + n)));
    names
        .into_iter()
        .map(|name| {
            let client = RecordKey::new(&name, "", b"").client;
            (name, client)
        })
        .collect()
}

/// The stores' sizes at one checkpoint, when no request is running.
#[derive(Debug, Default, Clone, Copy)]
struct Sizes {
    idem_len: usize,
    idem_bytes: usize,
    /// The most keys and bytes one client held.
    client_keys: usize,
    client_bytes: usize,
    limiter: usize,
    sessions: usize,
    alice_sessions: usize,
    revocations: usize,
}

impl Stores {
    /// Every store within its bounds; `at_rest`: no request is running, so no claim may be
    /// in flight either.
    fn check(&self, clients: &[(String, Digest)], at_rest: bool) -> (Sizes, Vec<String>) {
        let mut bad = Vec::new();
        let idem = &self.idempotency;
        let sizes = Sizes {
            idem_len: idem.len(),
            idem_bytes: idem.stored_bytes(),
            client_keys: 0,
            client_bytes: 0,
            limiter: self.limits.len(),
            sessions: self.sessions.len(),
            alice_sessions: self.sessions.subject_len("alice"),
            revocations: self.revocations.len(),
        };
        let mut sizes = sizes;
        let (keys, bytes) = idem.bounds();
        if sizes.idem_len > keys || sizes.idem_bytes > bytes {
            bad.push(format!("idempotency store past its bounds: {sizes:?}"));
        }
        if at_rest && idem.completed_len() != sizes.idem_len {
            bad.push(format!(
                "{} idempotency records, {} completed: claims left in flight",
                sizes.idem_len,
                idem.completed_len()
            ));
        }
        let (client_keys, client_bytes) = idem.client_quota();
        for (name, client) in clients {
            let usage = idem.client_usage(client);
            sizes.client_keys = sizes.client_keys.max(usage.entries);
            sizes.client_bytes = sizes.client_bytes.max(usage.bytes);
            if usage.entries > client_keys || usage.bytes > client_bytes {
                bad.push(format!("{name} past its quota: {usage:?}"));
            }
        }
        if sizes.limiter > self.limits.bound() {
            bad.push(format!("limiter past its bound: {}", sizes.limiter));
        }
        let (sessions, per_subject) = self.sessions.bounds();
        if sizes.sessions > sessions {
            bad.push(format!("{} sessions", sizes.sessions));
        }
        for subject in ["alice", "bob", "admin", "member00"] {
            if self.sessions.subject_len(subject) > per_subject {
                bad.push(format!("{subject} past the per-subject bound"));
            }
        }
        if sizes.revocations > self.revocations.bound() {
            bad.push(format!("{} revocations", sizes.revocations));
        }
        (sizes, bad)
    }
}

/// Logs in over HTTP from `source`: the access token.
fn http_login(server: SocketAddr, source: u8, username: &str) -> String {
    let mut conn = Conn::new(addr(source), server);
    let reply = conn
        .send(&Req::post(
            "/api/login",
            &json!({ "username": username, "password": PASSWORD }),
        ))
        .expect("login answered");
    assert_eq!(reply.status, 200, "{username} logs in: {}", text(&reply));
    reply.json().unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Everything the soak saw, for the report and the assertions.
struct Soak {
    tally: Tally,
    checkpoints: Vec<Sizes>,
    store_violations: Vec<String>,
    samples: usize,
    elapsed: Duration,
}

fn run_soak(setup: Arc<Setup>, stores: Arc<Stores>, sessions: Sessions) -> Soak {
    let started = Instant::now();
    let barrier = Arc::new(Barrier::new(TASKS + 2));
    let mut threads: Vec<_> = (0..TASKS)
        .map(|t| {
            let (setup, barrier) = (setup.clone(), barrier.clone());
            std::thread::spawn(move || task_thread(setup, t, barrier))
        })
        .collect();
    threads.push({
        let (server, barrier) = (setup.server, barrier.clone());
        std::thread::spawn(move || session_thread(server, sessions, barrier))
    });
    // Samples the stores while requests run: the bounds hold at every moment, not only at
    // rest.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stores, stop) = (stores.clone(), stop.clone());
        std::thread::spawn(move || {
            let clients = clients();
            let (mut samples, mut bad) = (0, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let (_, found) = stores.check(&clients, false);
                bad.extend(found.into_iter().map(|b| format!("while running: {b}")));
                samples += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            (samples, bad)
        })
    };
    let clients = clients();
    let mut checkpoints = Vec::new();
    let mut store_violations = Vec::new();
    for r in 0..ROUNDS {
        barrier.wait();
        barrier.wait();
        let (sizes, bad) = stores.check(&clients, true);
        store_violations.extend(bad.into_iter().map(|b| format!("after round {r}: {b}")));
        checkpoints.push(sizes);
        if r + 1 < ROUNDS {
            stores.clock.advance(ROUND_STEP);
        }
    }
    let mut tally = Tally::default();
    for t in threads {
        tally.merge(t.join().expect("client threads catch their panics"));
    }
    stop.store(true, Ordering::Relaxed);
    let (samples, bad) = sampler.join().unwrap();
    store_violations.extend(bad);
    Soak {
        tally,
        checkpoints,
        store_violations,
        samples,
        elapsed: started.elapsed(),
    }
}

#[actix_rt::test]
async fn a_bounded_soak_runs_each_accepted_key_once_and_keeps_every_store_within_its_bounds() {
    let log = soak_log();
    let clock = FakeClock::new();
    clock.advance(Duration::from_secs(1_000));
    let stores = Arc::new(Stores {
        clock: clock.clone(),
        limits: Arc::new(MemoryStore::with_clock(Arc::new(clock.clone())).max_keys(LIMIT_KEYS)),
        idempotency: Arc::new(
            MemoryIdempotencyStore::with_clock(Arc::new(clock.clone()))
                .max_entries(IDEM_KEYS)
                .max_bytes(IDEM_BYTES)
                .max_entries_per_client(IDEM_CLIENT_KEYS)
                .max_bytes_per_client(IDEM_CLIENT_BYTES),
        ),
        sessions: Arc::new(
            MemoryRefreshStore::new()
                .max_sessions(SESSIONS)
                .max_sessions_per_subject(SESSIONS_PER_SUBJECT),
        ),
        revocations: Arc::new(RevokedTokens::new().max_entries(REVOCATIONS)),
    });
    let gated = Arc::new(GatedStore {
        inner: stores.idempotency.clone(),
        gates: Mutex::new(HashMap::new()),
    });
    let custom = users_api::CustomStores {
        limits: stores.limits.clone(),
        idempotency: gated.clone(),
        sessions: stores.sessions.clone(),
        revocations: stores.revocations.clone(),
    };
    let (secure, state) = users_api::build(
        &users_api::Settings::in_memory(),
        &users_api::Stores::Custom(custom),
        Passwords::with_params(1024, 1, 1).unwrap(),
        PASSWORD,
    )
    .expect("the soak's settings are valid");

    // The premium principals: accounts of their own, and a session each.
    let mut members = Vec::new();
    for t in 0..TASKS {
        let subject = format!("member{t:02}");
        let account = users_api::Account {
            password_hash: state.passwords.hash(&subject).unwrap(),
            roles: vec!["user".into()],
            permissions: vec![],
            tier: "premium".into(),
            email: format!("{subject}@example.com"),
        };
        state
            .users
            .write()
            .unwrap()
            .insert(subject.clone(), account);
        let grant = AccessGrant::new(&subject).roles(["user"]).tier("premium");
        let pair = state.tokens.login(grant).await.expect("a session");
        members.push(Member {
            subject,
            token: pair.access_token,
        });
    }

    let (server, handle) = common::serve!("127.0.0.1", 2, {
        let (secure, state) = (secure.clone(), state.clone());
        move || {
            App::new()
                .app_data(state.clone())
                .wrap(secure.layer())
                .configure(users_api::routes)
        }
    });
    let setup = Arc::new(Setup {
        server,
        members,
        gated,
    });

    let soak = {
        let (setup, stores) = (setup.clone(), stores.clone());
        actix_web::rt::task::spawn_blocking(move || {
            let sessions = Sessions {
                bob: http_login(server, 130, "bob"),
                admin: http_login(server, 131, "admin"),
                alice_refresh: Vec::new(),
                alice_live: Default::default(),
                alice_evicted: None,
                alice: String::new(),
            };
            run_soak(setup, stores, sessions)
        })
        .await
        .unwrap()
    };
    let created_log = lock(&log.created).clone();
    let warnings = lock(&log.warnings).clone();

    report(&soak);
    let tally = &soak.tally;
    assert!(
        tally.violations.is_empty(),
        "{} answers were not as expected; the first:\n{}",
        tally.violations.len(),
        tally.violations[..tally.violations.len().min(30)].join("\n")
    );
    assert_eq!(tally.requests, SOAK_REQUESTS, "requests sent and answered");
    assert_eq!(
        tally.outcomes.values().sum::<usize>(),
        SOAK_REQUESTS,
        "every answer counted once"
    );

    // The handler ran exactly once per accepted key: its log lines name the users of the
    // first 201s, each once.
    let mut accepted_keys = tally.accepted_keys.clone();
    accepted_keys.sort_unstable();
    accepted_keys.dedup();
    assert_eq!(
        accepted_keys.len(),
        tally.created.len(),
        "no key was accepted twice"
    );
    let twice: Vec<_> = created_log.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        twice.is_empty(),
        "create_user ran more than once for {twice:?}"
    );
    let executions: u32 = created_log.values().sum();
    assert_eq!(
        executions as usize,
        accepted_keys.len(),
        "create_user executions = distinct keys accepted"
    );
    let mut ran: Vec<_> = created_log.keys().cloned().collect();
    ran.sort_unstable();
    let mut answered = tally.created.clone();
    answered.sort_unstable();
    assert_eq!(ran, answered, "the runs are the first answers' users");
    assert_eq!(
        tally.outcomes.get("201 created (handler ran)"),
        Some(&accepted_keys.len())
    );

    // No 5xx (each answer was checked), and nothing worse than the expected warnings.
    assert!(tally.outcomes.keys().all(|o| !o.starts_with('5')));
    let errors: Vec<_> = warnings.iter().filter(|w| w.starts_with("ERROR")).collect();
    assert!(errors.is_empty(), "errors logged: {errors:?}");

    // Every store within its bounds, at every checkpoint and whenever sampled.
    assert!(
        soak.store_violations.is_empty(),
        "{:?}",
        &soak.store_violations[..soak.store_violations.len().min(20)]
    );
    assert!(soak.samples > 0);
    // ... and every bound reached, so that eviction did its work.
    let cps = &soak.checkpoints;
    let (small, large) = cps.split_at(SMALL_ROUNDS);
    assert!(
        small.iter().any(|s| s.idem_len == IDEM_KEYS),
        "the idempotency key bound is reached while responses are small"
    );
    assert!(
        large.iter().any(|s| s.idem_bytes > IDEM_BYTES - 600),
        "the idempotency byte bound is reached while responses are large"
    );
    assert!(
        accepted_keys.len() > 10 * IDEM_KEYS,
        "far more keys than room"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("idempotency store full: dropping completed responses")),
        "eviction before the TTL is logged: {warnings:?}"
    );
    assert!(
        small.iter().any(|s| s.client_keys == IDEM_CLIENT_KEYS),
        "a client reaches its key quota"
    );
    assert!(
        large
            .iter()
            .any(|s| s.client_bytes > IDEM_CLIENT_BYTES - 600),
        "a client reaches its byte quota"
    );
    assert!(
        cps.windows(2).any(|w| w[1].limiter < w[0].limiter),
        "the full limiter swept stale keys: {:?}",
        cps.iter().map(|s| s.limiter).collect::<Vec<_>>()
    );
    assert!(
        cps.iter()
            .any(|s| s.sessions == SESSIONS && s.alice_sessions == SESSIONS_PER_SUBJECT),
        "the session bounds are reached"
    );
    assert_eq!(
        cps.last().unwrap().revocations,
        REVOCATIONS,
        "one revocation per logout: the bound exactly"
    );

    // After the soak (not counted in it): the stores that refuse at their bound refuse,
    // and the server still serves.
    let probes = {
        let (stores, setup) = (stores.clone(), setup.clone());
        actix_web::rt::task::spawn_blocking(move || probe(&stores, &setup, server))
            .await
            .unwrap()
    };
    println!(
        "after the soak: the full limiter served {} new addresses, then refused one (503); \
         a login past the session bound and a logout past the revocation bound got 503; \
         then the server served again",
        probes.addresses_before_refusal
    );
    let created_after = lock(&log.created).clone();
    assert_eq!(
        created_after.values().sum::<u32>(),
        executions + 2,
        "the two creations after the soak ran once each"
    );
    handle.stop(true).await;
}

/// What the probes after the soak saw.
struct Probes {
    /// New addresses served before the full limiter refused one.
    addresses_before_refusal: usize,
}

fn probe(stores: &Stores, setup: &Setup, server: SocketAddr) -> Probes {
    let problem = |reply: &Reply, status: u16, slug: &str| {
        check_shape(reply).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reply.status, status, "{}", text(reply));
        assert_eq!(slug_of(reply).as_deref(), Some(slug), "{}", text(reply));
        if status == 503 {
            assert!(
                reply.header("retry-after").is_some(),
                "503 with Retry-After"
            );
        }
    };
    // The limiter (full of the last round's keys at this instant) refuses a new client
    // once sweeping cannot make room.
    let fresh = |i: usize| {
        IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            1 + (i / 250) as u8,
            1 + (i % 250) as u8,
        ))
    };
    let mut refused_at = None;
    for i in 0..2 * LIMIT_KEYS + 2 {
        let reply = Conn::new(fresh(i), server)
            .send(&Req::get("/api/me"))
            .expect("answered");
        if reply.status == 503 {
            problem(&reply, 503, "service-unavailable");
            refused_at = Some(i);
            break;
        }
        problem(&reply, 401, "invalid-credentials");
    }
    let refused_at = refused_at.expect("the full limiter refuses a new client");
    assert!(stores.limits.len() <= stores.limits.bound());

    // The session store is full (alice's three, one for each other subject): a login of
    // a subject with room of its own is refused.
    assert_eq!(stores.sessions.len(), SESSIONS);
    let reply = Conn::new(addr(132), server)
        .send(&Req::post(
            "/api/login",
            &json!({ "username": "admin", "password": PASSWORD }),
        ))
        .expect("answered");
    problem(&reply, 503, "service-unavailable");
    assert_eq!(stores.sessions.len(), SESSIONS);

    // The revocation list is full: a logout that needs an entry is refused.
    let member = &setup.members[0];
    let reply = Conn::new(member_addr(0), server)
        .send(&Req::post("/api/logout", &json!({})).bearer(&member.token))
        .expect("answered");
    problem(&reply, 503, "service-unavailable");
    assert_eq!(stores.revocations.len(), REVOCATIONS);

    // Time moves on: the limiter sweeps, and the server serves as before.
    stores.clock.advance(ROUND_STEP);
    let reply = Conn::new(fresh(refused_at), server)
        .send(&Req::get("/api/me"))
        .expect("answered");
    problem(&reply, 401, "invalid-credentials");
    let other = &setup.members[1];
    let mut conn = Conn::new(member_addr(1), server);
    let u = NewUser::new("afterwards1".into(), 0);
    let mut c = Client {
        tally: Tally::default(),
        at: "after the soak".into(),
    };
    c.expect(&mut conn, &u.req(Some(&other.token)), u.created());
    c.expect(
        &mut conn,
        &Req::get("/api/me").bearer(&other.token),
        Want::Json(is_me, format!("me:{}:premium", other.subject)),
    );
    let u = NewUser::new("afterwards2".into(), 0);
    c.expect(
        &mut Conn::new(fresh(refused_at + 1), server),
        &u.req(None),
        u.created(),
    );
    assert!(c.tally.violations.is_empty(), "{:?}", c.tally.violations);
    Probes {
        addresses_before_refusal: refused_at,
    }
}

fn report(soak: &Soak) {
    let t = &soak.tally;
    println!(
        "soak: {} requests in {:.1?} ({:.0} requests/s), {} resent after an idle close",
        t.requests,
        soak.elapsed,
        t.requests as f64 / soak.elapsed.as_secs_f64(),
        t.retries
    );
    for (outcome, n) in &t.outcomes {
        println!("  {n:>6}  {outcome}");
    }
    let max = |f: fn(&Sizes) -> usize| soak.checkpoints.iter().map(f).max().unwrap_or(0);
    println!(
        "stores at rest (most seen / bound): idempotency keys {}/{IDEM_KEYS}, bytes {}/{IDEM_BYTES}, \
         one client's keys {}/{IDEM_CLIENT_KEYS}, bytes {}/{IDEM_CLIENT_BYTES}; limiter keys {}/{LIMIT_KEYS}; \
         sessions {}/{SESSIONS} (alice {}/{SESSIONS_PER_SUBJECT}); revocations {}/{REVOCATIONS}; \
         {} samples while running",
        max(|s| s.idem_len),
        max(|s| s.idem_bytes),
        max(|s| s.client_keys),
        max(|s| s.client_bytes),
        max(|s| s.limiter),
        max(|s| s.sessions),
        max(|s| s.alice_sessions),
        max(|s| s.revocations),
        soak.samples,
    );
    println!(
        "limiter keys after each round: {:?}",
        soak.checkpoints
            .iter()
            .map(|s| s.limiter)
            .collect::<Vec<_>>()
    );
    println!(
        "idempotency keys / bytes after each round: {:?}",
        soak.checkpoints
            .iter()
            .map(|s| (s.idem_len, s.idem_bytes))
            .collect::<Vec<_>>()
    );
}
