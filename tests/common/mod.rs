//! Helpers shared by the integration tests.
#![allow(dead_code)]

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::test;
use secure_api_runtime::auth::Principal;
use serde_json::Value;

/// The security headers every response must carry, with their exact values.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "strict-transport-security",
        "max-age=63072000; includeSubDomains",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
    ("cache-control", "no-store"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
];

/// A response as the client sees it.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Asserts the exact security headers and the absence of `Server` / `X-Powered-By`.
    pub fn assert_security_headers(&self) {
        for (name, value) in SECURITY_HEADERS {
            let got: Vec<_> = self.headers.get_all(*name).collect();
            assert_eq!(got.len(), 1, "{name} present once in {:?}", self.headers);
            assert_eq!(got[0], value, "{name}");
        }
        assert!(self.headers.get("server").is_none());
        assert!(self.headers.get("x-powered-by").is_none());
    }

    /// Asserts an RFC 9457 problem of `status` and type `slug`, and returns the body.
    pub fn assert_problem(&self, status: u16, slug: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "status; body {}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "content type"
        );
        self.assert_security_headers();
        let body = self.json();
        assert_eq!(
            body["type"],
            format!("tag:secure-api.dev,2026:problem:{slug}"),
            "{body}"
        );
        assert_eq!(body["status"], status);
        assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(body["detail"].as_str().is_some_and(|t| t.ends_with('.')));
        let instance = body["instance"].as_str().expect("instance");
        let id = instance
            .strip_prefix("urn:uuid:")
            .expect("urn:uuid instance");
        assert!(uuid_like(id), "{instance}");
        body
    }

    /// Asserts that the body contains none of `needles` (submitted values, serde's text,
    /// Rust type names).
    pub fn assert_leaks_none(&self, needles: &[&str]) {
        let text = self.text();
        for n in needles {
            assert!(!text.contains(n), "response leaks {n:?}: {text}");
        }
    }
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// Sends a request through an initialised app as the HTTP dispatcher would: a service
/// error becomes its `error_response()`.
pub async fn send<S, B>(app: &S, req: test::TestRequest) -> Reply
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    let res = match test::try_call_service(app, req.to_request()).await {
        Ok(res) => res.map_into_boxed_body(),
        Err(e) => ServiceResponse::new(
            test::TestRequest::default().to_http_request(),
            e.error_response(),
        ),
    };
    let status = res.status();
    let headers = res.headers().clone();
    let body = test::read_body(res).await.to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

/// The authenticating middleware of the test apps (call it in `wrap_fn`): a request with an
/// `x-test-subject` header gets a [`Principal`] of that subject, of the tier in `x-test-tier`
/// (the default tier without it).
pub fn principal_from_test_headers(req: &actix_web::dev::ServiceRequest) {
    use actix_web::HttpMessage;
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(subject) = header("x-test-subject") {
        let mut principal = Principal::new(subject);
        if let Some(tier) = header("x-test-tier") {
            principal.tier = tier.to_owned();
        }
        req.extensions_mut().insert(principal);
    }
}

/// Serde and Rust phrases that must never reach a client.
pub const INTERNAL_TEXT: &[&str] = &[
    "invalid type",
    "expected",
    "missing field",
    "unknown field",
    "line 1",
    "column",
    "String",
    "i32",
    "serde",
    "panicked",
    "secure_api",
    "::",
];

/// A response read off a real socket.
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Every byte the server sent: the first response's head and body, and anything after
    /// it (such as the response to a second request).
    pub raw: Vec<u8>,
    /// Whether the server closed the connection (else the read timed out after a complete
    /// head).
    pub closed: bool,
}

impl RawReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one HTTP/1.1 request over a fresh connection (`Connection: close`) and reads the
/// whole response. Bodies must not be chunked (secure-api responses are sized).
pub fn raw_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<RawReply> {
    let stream = std::net::TcpStream::connect(addr)?;
    exchange(stream, addr, method, path, headers, body)
}

/// [`raw_request`] from a chosen local source address (any `127.0.0.x` on loopback), so that
/// a test can be several IPv4 clients. Connects on the runtime, then talks on a blocking
/// thread.
pub async fn raw_request_from(
    source: std::net::IpAddr,
    addr: std::net::SocketAddr,
    method: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static [u8],
) -> std::io::Result<RawReply> {
    let stream = connect_from(source, addr).await?;
    actix_web::rt::task::spawn_blocking(move || exchange(stream, addr, method, path, headers, body))
        .await
        .map_err(std::io::Error::other)?
}

/// [`raw_exchange`] from a chosen local source address (see [`raw_request_from`]): sends
/// `request` as it is and reads until the server closes the connection, failing with
/// `TimedOut` / `WouldBlock` if it has not closed it within `timeout`.
pub async fn raw_exchange_from(
    source: std::net::IpAddr,
    addr: std::net::SocketAddr,
    request: Vec<u8>,
    timeout: std::time::Duration,
) -> std::io::Result<RawReply> {
    send_from(source, addr, request, timeout, false).await
}

/// [`raw_exchange_from`] that returns as soon as the first response is complete, for a
/// server that may keep the connection open after it (`closed` is then `false`).
pub async fn raw_response_from(
    source: std::net::IpAddr,
    addr: std::net::SocketAddr,
    request: Vec<u8>,
    timeout: std::time::Duration,
) -> std::io::Result<RawReply> {
    send_from(source, addr, request, timeout, true).await
}

/// Sends `request` from `source` on a blocking thread and reads the reply: to the close,
/// or with `first_only` to the end of the first response.
async fn send_from(
    source: std::net::IpAddr,
    addr: std::net::SocketAddr,
    request: Vec<u8>,
    timeout: std::time::Duration,
    first_only: bool,
) -> std::io::Result<RawReply> {
    let mut stream = connect_from(source, addr).await?;
    actix_web::rt::task::spawn_blocking(move || {
        use std::io::Write;
        stream.set_read_timeout(Some(timeout))?;
        stream.write_all(&request)?;
        read_reply_until(stream, first_only)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// A blocking connection to `addr` from `source` (port 0), connected on the runtime.
async fn connect_from(
    source: std::net::IpAddr,
    addr: std::net::SocketAddr,
) -> std::io::Result<std::net::TcpStream> {
    let socket = if source.is_ipv4() {
        actix_rt::net::TcpSocket::new_v4()?
    } else {
        actix_rt::net::TcpSocket::new_v6()?
    };
    socket.bind(std::net::SocketAddr::new(source, 0))?;
    let stream = socket.connect(addr).await?.into_std()?;
    stream.set_nonblocking(false)?;
    Ok(stream)
}

fn exchange(
    mut stream: std::net::TcpStream,
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<RawReply> {
    use std::io::Write;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    read_reply(stream)
}

/// Sends `request` as it is (head and body, for framing a test chooses itself, such as
/// chunked bodies) over a fresh connection and reads the whole response.
pub fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> std::io::Result<RawReply> {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    stream.write_all(request)?;
    read_reply(stream)
}

/// Reads until the server closes the connection, or with `first_only` until the first
/// response is complete (by its `Content-Length`). A read that times out after a complete
/// head ends the reply (`closed: false`); before one, it is an error.
fn read_reply(stream: std::net::TcpStream) -> std::io::Result<RawReply> {
    read_reply_until(stream, false)
}

fn read_reply_until(
    mut stream: std::net::TcpStream,
    first_only: bool,
) -> std::io::Result<RawReply> {
    use std::io::{ErrorKind, Read};
    let end_of_head = |raw: &[u8]| raw.windows(4).position(|w| w == b"\r\n\r\n");
    // The length of the first response, once its head is in and gives one.
    let first_len = |raw: &[u8]| {
        let end = end_of_head(raw)?;
        let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
        let length = head
            .split("\r\n")
            .find_map(|line| line.strip_prefix("content-length:"))?
            .trim()
            .parse::<usize>()
            .ok()?;
        Some(end + 4 + length)
    };
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if first_only && first_len(&raw).is_some_and(|len| raw.len() >= len) {
                    break false;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e)
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
                    && end_of_head(&raw).is_some() =>
            {
                break false;
            }
            Err(e) => return Err(e),
        }
    };
    let split = end_of_head(&raw).ok_or_else(|| std::io::Error::other("no end of head"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok(RawReply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
        raw,
        closed,
    })
}

/// Starts a real server for the app factory `$app` (an `HttpServer::new` argument) with
/// `$workers` workers on port 0 of `$host`, spawned on the test's runtime, and evaluates to
/// its bound address and the handle that stops it: `(SocketAddr, ServerHandle)`.
///
/// Settings of the `HttpServer` may follow a `;`, as method calls:
/// `serve!("127.0.0.1", 1, app; keep_alive(Duration::from_secs(60)))`.
///
/// A macro rather than a function: the bounds a function would need name
/// `IntoServiceFactory`, which actix-web does not re-export.
#[allow(unused_macros)]
macro_rules! serve {
    ($host:expr, $workers:expr, $app:expr $(; $($setting:ident($($arg:expr),* $(,)?)),+)? $(,)?) => {{
        let host: &str = $host;
        let server = actix_web::HttpServer::new($app)
            .workers($workers)
            $($(.$setting($($arg),*))+)?
            .bind((host, 0))
            .unwrap_or_else(|e| panic!("binding {host} port 0: {e}"));
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        (addr, handle)
    }};
}
#[allow(unused_imports)]
pub(crate) use serve;

/// Every log line of the test binary that calls [`log_capture`] first, as
/// `"LEVEL target message"`.
pub struct LogCapture(std::sync::Mutex<Vec<String>>);

impl LogCapture {
    /// The lines logged so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl log::Log for LogCapture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    /// `<level> <target> <message>`, then ` key=value` for each structured key-value.
    fn log(&self, record: &log::Record<'_>) {
        struct Kvs(String);
        impl<'kvs> log::kv::VisitSource<'kvs> for Kvs {
            fn visit_pair(
                &mut self,
                key: log::kv::Key<'kvs>,
                value: log::kv::Value<'kvs>,
            ) -> Result<(), log::kv::Error> {
                self.0.push_str(&format!(" {key}={value}"));
                Ok(())
            }
        }
        let mut line = Kvs(format!(
            "{} {} {}",
            record.level(),
            record.target(),
            record.args()
        ));
        record.key_values().visit(&mut line).unwrap();
        self.0.lock().unwrap().push(line.0);
    }

    fn flush(&self) {}
}

/// Installs (once) and returns the capturing logger of this test binary.
pub fn log_capture() -> &'static LogCapture {
    static CAPTURE: std::sync::OnceLock<&'static LogCapture> = std::sync::OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static LogCapture =
            Box::leak(Box::new(LogCapture(std::sync::Mutex::new(Vec::new()))));
        log::set_logger(capture).expect("the only logger of this test binary");
        log::set_max_level(log::LevelFilter::Trace);
        capture
    })
}

/// An audit sink that keeps every event (the telemetry tests).
#[derive(Default)]
pub struct Capture(std::sync::Mutex<Vec<secure_api_runtime::telemetry::audit::AuditEvent>>);

impl secure_api_runtime::telemetry::audit::AuditSink for Capture {
    fn record(&self, event: &secure_api_runtime::telemetry::audit::AuditEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Capture {
    /// The events recorded since the last call.
    pub fn take(&self) -> Vec<secure_api_runtime::telemetry::audit::AuditEvent> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    /// The one event recorded since the last call.
    pub fn one(&self) -> secure_api_runtime::telemetry::audit::AuditEvent {
        let mut events = self.take();
        assert_eq!(events.len(), 1, "exactly one event: {events:#?}");
        events.pop().unwrap()
    }
}
