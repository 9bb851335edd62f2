//! The peer of the end-to-end load test (`benches/load/run.sh`, `PEER=1`): the same
//! `POST /api/users` as `users_limits`, built the way actix-web users build it today from
//! the crates they glue together, without secure-api:
//!
//! - `validator` with the same rules as `users_limits`' `CreateUserRequest` (username: 3 to
//!   32 characters, anchored `[a-z0-9_-]+`, not on a deny list through a custom function;
//!   email: at most 255 characters and an e-mail address; age 0 to 150), with the trimming
//!   and lowercasing validator does not do written by hand before `validate()`;
//! - `actix-governor`, keyed by the client address, at `users_limits`' anonymous rate (10/s
//!   per client, bursts of 10), with a key extractor that believes `X-Forwarded-For` only
//!   from trusted proxies (`TRUSTED_PROXY`) and takes the rightmost untrusted hop, IPv6
//!   grouped by /64, as secure-api does;
//! - `actix_web::middleware::DefaultHeaders` with the security headers `users_limits` sends;
//! - JSON error bodies (`{"error": ..., "message": ...}`) for 400, 413, 415, 422 and 429,
//!   with fixed messages that never echo the input; 201 with `{"user": ..., "email": ...}`
//!   and a `Location` on success, as `users_limits`.
//!
//! It does less than secure-api on purpose, as such apps do: no problem+json, no IETF
//! `RateLimit` fields, no JSON depth limit; the body limit is actix's `JsonConfig` set to
//! `users_limits`' 16 KiB.
//!
//! ```text
//! cargo run --release --example peer_users    # listens on 127.0.0.1:8080 (BIND overrides)
//! curl -i -X POST localhost:8080/api/users -H 'content-type: application/json' \
//!      -d '{"username": " Alice_01 ", "email": "ALICE@example.com", "age": 30}'
//! ```
//!
//! Environment: `BIND` (default `127.0.0.1:8080`), `WORKERS` (default: one per core),
//! `TRUSTED_PROXY` (comma-separated addresses or `addr/prefix` networks whose
//! `X-Forwarded-For` is believed; none by default), `RUST_LOG` (default `info`).

use std::net::{IpAddr, Ipv6Addr};
use std::sync::LazyLock;
use std::time::Duration;

use actix_governor::{
    Governor, GovernorConfig, GovernorConfigBuilder, KeyExtractor, SimpleKeyExtractionError,
    governor::{NotUntil, clock::QuantaInstant, middleware::NoOpMiddleware},
};
use actix_web::dev::ServiceRequest;
use actix_web::error::{InternalError, JsonPayloadError};
use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, HttpResponseBuilder, HttpServer, post, web};
use regex::Regex;
use serde::Deserialize;
use validator::{Validate, ValidationError, ValidationErrors};

/// The username pattern, anchored (secure-api anchors `pattern = "[a-z0-9_-]+"` the same way).
static USERNAME_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\A(?:[a-z0-9_-]+)\z").expect("a valid pattern"));

/// Reserved names nobody may register (compared after lowercasing).
const DENY: [&str; 4] = ["admin", "root", "null", "undefined"];

/// validator's custom rule for the deny list.
fn not_denied(value: &str) -> Result<(), ValidationError> {
    if DENY.contains(&value) {
        Err(ValidationError::new("deny"))
    } else {
        Ok(())
    }
}

/// The request body of `POST /api/users`: `users_limits`' rules, in validator's terms.
#[derive(Debug, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
struct CreateUserRequest {
    #[validate(
        length(min = 3, max = 32),
        regex(path = *USERNAME_RE),
        custom(function = "not_denied")
    )]
    username: String,
    #[validate(length(max = 255), email)]
    email: String,
    #[validate(range(min = 0, max = 150))]
    age: i32,
}

/// Trims in place and lowercases: what validator leaves to the caller.
fn normalise(value: &mut String) {
    let end = value.trim_end().len();
    value.truncate(end);
    let start = value.len() - value.trim_start().len();
    if start > 0 {
        value.drain(..start);
    }
    if value.is_ascii() {
        value.make_ascii_lowercase();
    } else {
        *value = value.to_lowercase();
    }
}

/// A JSON error body with a fixed message.
fn json_error(status: StatusCode, error: &str, message: &str) -> HttpResponse {
    HttpResponseBuilder::new(status).json(serde_json::json!({ "error": error, "message": message }))
}

/// 422 with the failed rules per field (codes only: validator's params would echo the input).
fn validation_failed(errors: &ValidationErrors) -> HttpResponse {
    let fields: serde_json::Map<String, serde_json::Value> = errors
        .field_errors()
        .into_iter()
        .map(|(field, errs)| {
            let codes = errs.iter().map(|e| e.code.to_string().into()).collect();
            (field.to_string(), serde_json::Value::Array(codes))
        })
        .collect();
    HttpResponse::UnprocessableEntity().json(serde_json::json!({
        "error": "validation_failed",
        "message": "The request body failed validation.",
        "fields": fields,
    }))
}

/// Creates a user: normalise by hand, validate, answer 201 with the same JSON as
/// `users_limits`.
#[post("/api/users")]
async fn create_user(input: web::Json<CreateUserRequest>) -> HttpResponse {
    let mut user = input.into_inner();
    normalise(&mut user.username);
    normalise(&mut user.email);
    if let Err(errors) = user.validate() {
        return validation_failed(&errors);
    }
    HttpResponse::Created()
        .insert_header(("location", format!("/api/users/{}", user.username)))
        .json(serde_json::json!({ "user": user.username, "email": user.email }))
}

/// The JSON extractor's errors as JSON bodies with fixed messages.
fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(16 * 1024)
        .error_handler(|err, _req| {
            let response = match &err {
                JsonPayloadError::OverflowKnownLength { .. }
                | JsonPayloadError::Overflow { .. } => json_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "The request body is larger than 16 KiB.",
                ),
                JsonPayloadError::ContentType => json_error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "The request body must be application/json.",
                ),
                _ => json_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    "The request body is not valid JSON for this endpoint.",
                ),
            };
            InternalError::from_response(err, response).into()
        })
}

/// An address or a network `addr/prefix` whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Copy)]
pub struct Trusted {
    addr: IpAddr,
    prefix: u8,
}

impl Trusted {
    /// `addr` or `addr/prefix`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?} has a bad prefix length"))?,
            None => max,
        };
        Ok(Trusted {
            addr: mask(addr, prefix),
            prefix,
        })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }
}

/// `ip` with all but its first `prefix` bits cleared.
fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & m).into())
        }
        IpAddr::V6(v6) => {
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & m))
        }
    }
}

/// actix-governor's key: the client address, from `X-Forwarded-For` when the peer is a
/// trusted proxy (the rightmost hop that is not trusted), else the peer; IPv6 by /64.
#[derive(Debug, Clone)]
pub struct ClientIp {
    trusted: Vec<Trusted>,
}

impl ClientIp {
    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|t| t.contains(ip))
    }

    fn client(&self, req: &ServiceRequest) -> Option<IpAddr> {
        let mut client = req.peer_addr()?.ip();
        if self.is_trusted(client) {
            'hops: for value in req.headers().get_all("x-forwarded-for").rev() {
                let Ok(value) = value.to_str() else { break };
                for hop in value.rsplit(',') {
                    // A malformed hop ends the walk: the last hop we could read is the client.
                    let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                        break 'hops;
                    };
                    client = ip;
                    if !self.is_trusted(ip) {
                        break 'hops;
                    }
                }
            }
        }
        Some(match client {
            IpAddr::V6(_) => mask(client, 64),
            v4 => v4,
        })
    }
}

impl KeyExtractor for ClientIp {
    type Key = IpAddr;
    type KeyExtractionError = SimpleKeyExtractionError<&'static str>;

    fn extract(&self, req: &ServiceRequest) -> Result<Self::Key, Self::KeyExtractionError> {
        self.client(req)
            .ok_or_else(|| SimpleKeyExtractionError::new("no client address"))
    }

    fn exceed_rate_limit_response(
        &self,
        _negative: &NotUntil<QuantaInstant>,
        mut response: HttpResponseBuilder,
    ) -> HttpResponse {
        // actix-governor has set Retry-After already.
        response.json(serde_json::json!({
            "error": "rate_limited",
            "message": "Too many requests from this client; retry later.",
        }))
    }
}

/// The security headers `users_limits` sends on every response.
const SECURITY_HEADERS: [(&str, &str); 8] = [
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

/// The limiter of the peer stack: users_limits' anonymous tier, 10/s per client, keyed by
/// the client address behind `trusted` proxies.
pub fn governor(
    trusted: Vec<Trusted>,
) -> std::io::Result<GovernorConfig<ClientIp, NoOpMiddleware<QuantaInstant>>> {
    GovernorConfigBuilder::default()
        .milliseconds_per_request(100)
        .burst_size(10)
        .key_extractor(ClientIp { trusted })
        .finish()
        .ok_or_else(|| std::io::Error::other("rate limit: zero period or burst"))
}

/// The peer stack's app (also measured in process by `benches/stack.rs`).
pub fn app(
    governor: GovernorConfig<ClientIp, NoOpMiddleware<QuantaInstant>>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let mut headers = actix_web::middleware::DefaultHeaders::new();
    for header in SECURITY_HEADERS {
        headers = headers.add(header);
    }
    App::new()
        .app_data(json_config())
        .wrap(Governor::new(&governor))
        .wrap(headers)
        .service(create_user)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let trusted = std::env::var("TRUSTED_PROXY")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(Trusted::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| std::io::Error::other(format!("TRUSTED_PROXY: {e}")))?;
    // One limiter for all workers.
    let governor = governor(trusted)?;
    // governor's keyed state grows with every client; drop idle keys now and then.
    let limiter = governor.limiter();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_secs(60));
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    });
    log::info!("peer_users listening on http://{bind}");
    let mut server = HttpServer::new(move || app(governor.clone()));
    if let Some(workers) = std::env::var("WORKERS").ok().and_then(|w| w.parse().ok()) {
        server = server.workers(workers);
    }
    server.bind(bind)?.run().await
}
