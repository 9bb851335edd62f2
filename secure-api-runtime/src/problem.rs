//! RFC 9457 problem details: the one registry of problem types, and [`ApiError`].
//!
//! Every error response of an app is `application/problem+json`:
//!
//! ```json
//! {"type": "tag:secure-api.dev,2026:problem:validation-failed", "title": "Validation failed",
//!  "status": 422, "detail": "The request contains invalid data.",
//!  "instance": "urn:uuid:5b0e…", "errors": [{"pointer": "/username", "code": "length"}]}
//! ```
//!
//! `detail` is a fixed public sentence of the problem type; the internal cause of an error is
//! logged with the error id and never sent. The id is sent as `instance`, so that a report
//! from a client can be matched with the log line.

use std::error::Error as StdError;
use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde::ser::SerializeMap;

use crate::validation::ValidationErrors;

/// The media type of every error response.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A kind of problem: its `type` URI, HTTP status, `title` and fixed public `detail`.
///
/// The built-in types are in [`problems`]; an application can define its own with
/// [`ProblemType::new`] for errors specific to its domain.
///
/// ```
/// use secure_api_runtime::problem::{ApiError, ProblemType};
///
/// const USER_EXISTS: ProblemType = ProblemType::new(
///     "https://example.com/problems/user-exists",
///     409,
///     "User exists",
///     "A user with this name already exists.",
/// );
/// let err = ApiError::new(USER_EXISTS);
/// assert_eq!(err.problem().status(), 409);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProblemType {
    type_uri: &'static str,
    status: u16,
    title: &'static str,
    detail: &'static str,
}

impl ProblemType {
    /// A problem type. `detail` must be a fixed sentence that is safe to show anyone.
    ///
    /// A status outside 400..=599 is rendered as 500.
    pub const fn new(
        type_uri: &'static str,
        status: u16,
        title: &'static str,
        detail: &'static str,
    ) -> Self {
        ProblemType {
            type_uri,
            status,
            title,
            detail,
        }
    }

    /// The `type` URI.
    pub const fn type_uri(&self) -> &'static str {
        self.type_uri
    }

    /// The HTTP status code.
    pub const fn status(&self) -> u16 {
        self.status
    }

    /// The short human-readable summary.
    pub const fn title(&self) -> &'static str {
        self.title
    }

    /// The fixed public explanation.
    pub const fn detail(&self) -> &'static str {
        self.detail
    }

    /// The status as an actix [`StatusCode`] (500 when out of the error range).
    pub fn status_code(&self) -> StatusCode {
        match StatusCode::from_u16(self.status) {
            Ok(s) if s.is_client_error() || s.is_server_error() => s,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

macro_rules! registry {
    ($($(#[$doc:meta])* $name:ident = ($slug:literal, $status:literal, $title:literal, $detail:literal);)*) => {
        /// The registry of built-in problem types. Each `type` is a tag URI
        /// (`tag:secure-api.dev,2026:problem:<name>`, RFC 4151), stable across releases.
        pub mod problems {
            use super::ProblemType;
            $(
                $(#[$doc])*
                pub const $name: ProblemType = ProblemType::new(
                    concat!("tag:secure-api.dev,2026:problem:", $slug), $status, $title, $detail);
            )*
            /// Every built-in problem type.
            pub const ALL: &[ProblemType] = &[$($name),*];
        }
    };
}

registry! {
    /// 400: the body is not well-formed JSON, or the query string cannot be read.
    MALFORMED_REQUEST = ("malformed-request", 400, "Malformed request",
        "The request could not be parsed.");
    /// 400: the JSON body nests deeper than the endpoint allows.
    NESTING_TOO_DEEP = ("nesting-too-deep", 400, "Nesting too deep",
        "The request body nests more deeply than allowed.");
    /// 400: an idempotent endpoint was called without an `Idempotency-Key`.
    IDEMPOTENCY_KEY_MISSING = ("idempotency-key-missing", 400, "Idempotency key missing",
        "This operation requires an Idempotency-Key header.");
    /// 400: the `Idempotency-Key` is empty, too long or not a valid key.
    IDEMPOTENCY_KEY_INVALID = ("idempotency-key-invalid", 400, "Idempotency key invalid",
        "The Idempotency-Key header must hold 1 to 255 bytes of visible characters.");
    /// 401: no credentials, or credentials that could not be verified.
    INVALID_CREDENTIALS = ("invalid-credentials", 401, "Invalid credentials",
        "The credentials are missing, invalid or expired.");
    /// 403: authenticated, but not allowed to do this.
    FORBIDDEN = ("forbidden", 403, "Forbidden",
        "You are not allowed to perform this operation.");
    /// 404: nothing here.
    NOT_FOUND = ("not-found", 404, "Not found",
        "The requested resource does not exist.");
    /// 405: the resource does not support this method.
    METHOD_NOT_ALLOWED = ("method-not-allowed", 405, "Method not allowed",
        "The resource does not support this method.");
    /// 406: no acceptable representation.
    NOT_ACCEPTABLE = ("not-acceptable", 406, "Not acceptable",
        "The resource cannot produce an acceptable representation.");
    /// 408: the request took too long to arrive.
    REQUEST_TIMEOUT = ("request-timeout", 408, "Request timeout",
        "The request was not received in time.");
    /// 409: a request with the same idempotency key is still being processed.
    IDEMPOTENCY_IN_FLIGHT = ("idempotency-request-in-progress", 409, "Request in progress",
        "A request with this Idempotency-Key is still being processed; retry later.");
    /// 409: a conflict with the current state of the resource.
    CONFLICT = ("conflict", 409, "Conflict",
        "The request conflicts with the current state of the resource.");
    /// 411: a body was sent without a length.
    LENGTH_REQUIRED = ("length-required", 411, "Length required",
        "The request must state the length of its body.");
    /// 413: the body is larger than the endpoint accepts.
    PAYLOAD_TOO_LARGE = ("payload-too-large", 413, "Payload too large",
        "The request body is larger than allowed.");
    /// 414: the URI is longer than the server accepts.
    URI_TOO_LONG = ("uri-too-long", 414, "URI too long",
        "The request URI is longer than allowed.");
    /// 415: the body is not of a media type the endpoint accepts.
    UNSUPPORTED_MEDIA_TYPE = ("unsupported-media-type", 415, "Unsupported media type",
        "The request body must be sent as application/json.");
    /// 422: the input was read but breaks the endpoint's rules.
    VALIDATION_FAILED = ("validation-failed", 422, "Validation failed",
        "The request contains invalid data.");
    /// 422: the idempotency key was already used for a different request.
    IDEMPOTENCY_KEY_REUSED = ("idempotency-key-reused", 422, "Idempotency key reused",
        "This Idempotency-Key was already used for a different request.");
    /// 422: the request with this idempotency key already ran, but its response could not
    /// be kept for replay (it was streamed, over the size limit, or refused by the store).
    /// The extension member `original_status` holds the status the operation answered, so
    /// a client can tell that it succeeded (`"original_status": 201`).
    ///
    /// 422 and not 409: the idempotency draft answers 409 for a request still in progress,
    /// which clients retry; this answer is final for the key until its TTL ends, so it
    /// belongs with the other final misuse of a key (`idempotency-key-reused`). Not a 5xx:
    /// nothing failed, and retrying cannot help.
    IDEMPOTENCY_NOT_REPLAYABLE = ("idempotency-response-not-replayable", 422,
        "Response not replayable",
        "The request with this Idempotency-Key was already processed, but its response cannot be replayed; original_status is the status it returned. Do not retry with this key.");
    /// 431: the request headers are too large.
    HEADERS_TOO_LARGE = ("headers-too-large", 431, "Request headers too large",
        "The request headers are larger than allowed.");
    /// 429: the client sent too many requests.
    RATE_LIMITED = ("rate-limited", 429, "Too many requests",
        "The request rate limit was exceeded; retry after the indicated time.");
    /// 500: something failed on the server; the log has the details under the error id.
    INTERNAL_ERROR = ("internal-error", 500, "Internal server error",
        "An unexpected error occurred. Quote the instance identifier when reporting it.");
    /// 503: a backing service or capacity limit prevents serving the request now.
    SERVICE_UNAVAILABLE = ("service-unavailable", 503, "Service unavailable",
        "The service is temporarily unavailable; retry later.");
    /// Any other 4xx status without a more specific type.
    CLIENT_ERROR = ("client-error", 400, "Bad request",
        "The request cannot be processed.");
    /// Any other 5xx status without a more specific type.
    SERVER_ERROR = ("server-error", 500, "Server error",
        "The server cannot process the request.");
}

/// The problem type for a bare status code (used when converting non-problem error responses,
/// such as actix's own 404 and 405). Statuses without their own type map to
/// [`problems::CLIENT_ERROR`] or [`problems::SERVER_ERROR`] with the status kept.
pub(crate) fn problem_for_status(status: StatusCode) -> ProblemType {
    use problems::*;
    let generic = |p: ProblemType| ProblemType {
        status: status.as_u16(),
        title: status.canonical_reason().unwrap_or(p.title),
        ..p
    };
    match status.as_u16() {
        400 => MALFORMED_REQUEST,
        401 => INVALID_CREDENTIALS,
        403 => FORBIDDEN,
        404 => NOT_FOUND,
        405 => METHOD_NOT_ALLOWED,
        406 => NOT_ACCEPTABLE,
        408 => REQUEST_TIMEOUT,
        409 => CONFLICT,
        411 => LENGTH_REQUIRED,
        413 => PAYLOAD_TOO_LARGE,
        414 => URI_TOO_LONG,
        415 => UNSUPPORTED_MEDIA_TYPE,
        422 => VALIDATION_FAILED,
        429 => RATE_LIMITED,
        431 => HEADERS_TOO_LARGE,
        500 => INTERNAL_ERROR,
        503 => SERVICE_UNAVAILABLE,
        _ if status.is_client_error() => generic(CLIENT_ERROR),
        _ => generic(SERVER_ERROR),
    }
}

/// A named extension member of a problem body.
#[derive(Debug, Clone)]
enum Extension {
    Errors(ValidationErrors),
    Value(&'static str, serde_json::Value),
}

/// An error that renders as an RFC 9457 problem response.
///
/// Handlers return `Result<_, ApiError>`; `?` on any `std::error::Error` gives a 500 whose
/// cause is logged (with the error id) but never sent.
///
/// ```
/// use secure_api_runtime::problem::{problems, ApiError};
///
/// fn load(id: u64) -> Result<String, ApiError> {
///     if id == 0 {
///         return Err(ApiError::new(problems::NOT_FOUND));
///     }
///     let text = std::fs::read_to_string("/nonexistent/config")?; // 500, cause logged
///     Ok(text)
/// }
/// assert_eq!(load(0).unwrap_err().problem().status(), 404);
/// assert_eq!(load(1).unwrap_err().problem().status(), 500);
/// ```
pub struct ApiError {
    inner: Box<Inner>,
}

struct Inner {
    problem: ProblemType,
    extensions: Vec<Extension>,
    headers: Vec<(HeaderName, HeaderValue)>,
    cause: Option<Box<dyn StdError + Send + Sync>>,
    /// Drawn when first asked for (at the latest, when rendered), then kept.
    id: std::sync::OnceLock<uuid::Uuid>,
    /// What the audit knows of this error (a 401's class, or that its event is out).
    audit: AuditMark,
}

/// What the audit knows of an error that a handler answered with: the endpoint runner
/// emits the `auth_failed` event of a 401 that carries no [`AuditMark::Emitted`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum AuditMark {
    /// Nothing: the handler's own error.
    #[default]
    None,
    /// A 401 of secure-api code, of this class, not audited yet.
    Class(crate::telemetry::audit::AuthFailureClass),
    /// Its event was emitted where it was decided.
    Emitted,
}

impl ApiError {
    /// An error of the given problem type.
    pub fn new(problem: ProblemType) -> Self {
        ApiError {
            inner: Box::new(Inner {
                problem,
                extensions: Vec::new(),
                headers: Vec::new(),
                cause: None,
                id: std::sync::OnceLock::new(),
                audit: AuditMark::None,
            }),
        }
    }

    /// Marks what the audit knows of this error (see [`AuditMark`]).
    pub(crate) fn with_audit(mut self, mark: AuditMark) -> Self {
        self.inner.audit = mark;
        self
    }

    /// What the audit knows of this error.
    pub(crate) fn audit_mark(&self) -> AuditMark {
        self.inner.audit
    }

    /// A 500 whose cause is logged, never sent.
    pub fn internal(cause: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        ApiError::new(problems::INTERNAL_ERROR).with_cause(cause)
    }

    /// A 422 listing the failed rules.
    pub fn validation(errors: ValidationErrors) -> Self {
        ApiError::new(problems::VALIDATION_FAILED).with_errors(errors)
    }

    /// Attaches an internal cause: logged with the error id, never sent.
    pub fn with_cause(mut self, cause: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        self.inner.cause = Some(cause.into());
        self
    }

    /// Attaches the `errors` extension (validation violations).
    pub fn with_errors(mut self, errors: ValidationErrors) -> Self {
        self.inner.extensions.push(Extension::Errors(errors));
        self
    }

    /// Attaches a named extension member. Never put input values or internal text here.
    pub fn with_extension(mut self, name: &'static str, value: serde_json::Value) -> Self {
        self.inner.extensions.push(Extension::Value(name, value));
        self
    }

    /// Adds a response header (`Retry-After`, `WWW-Authenticate`, ...).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.inner.headers.push((name, value));
        self
    }

    /// The problem type.
    pub fn problem(&self) -> &ProblemType {
        &self.inner.problem
    }

    /// The validation violations, for a 422.
    pub fn validation_errors(&self) -> Option<&ValidationErrors> {
        self.inner.extensions.iter().find_map(|e| match e {
            Extension::Errors(errors) => Some(errors),
            Extension::Value(..) => None,
        })
    }

    /// The internal cause, if any.
    pub fn cause(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        self.inner.cause.as_deref()
    }

    /// The response headers added with [`ApiError::with_header`].
    pub fn headers(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.inner.headers.iter().map(|(n, v)| (n, v))
    }

    /// The error id: the problem's `instance` (`urn:uuid:<id>`), the id of its line in the
    /// error log and of its audit event. Random, drawn at the first call (or rendering),
    /// the same for every later call and rendering of this error.
    ///
    /// ```
    /// use actix_web::ResponseError;
    /// use secure_api_runtime::problem::{problems, ApiError};
    ///
    /// let err = ApiError::new(problems::FORBIDDEN);
    /// let id = err.id();
    /// let res = err.error_response();
    /// # let body = actix_web::body::to_bytes(res.into_body());
    /// # let body = futures_util::FutureExt::now_or_never(body).unwrap().unwrap();
    /// # let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    /// // {"instance": "urn:uuid:<id>", ...}
    /// # assert_eq!(body["instance"], format!("urn:uuid:{id}"));
    /// ```
    pub fn id(&self) -> uuid::Uuid {
        *self.inner.id.get_or_init(uuid::Uuid::new_v4)
    }

    /// Renders the response under the error id, logging the error with that id.
    fn render(&self) -> HttpResponse {
        let id = self.id();
        let p = &self.inner.problem;
        log_problem(
            p,
            &id,
            self.inner.cause.as_deref().map(|c| c as &dyn fmt::Display),
        );
        let mut builder = HttpResponse::build(p.status_code());
        for (name, value) in &self.inner.headers {
            builder.insert_header((name.clone(), value.clone()));
        }
        builder
            .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)))
            .body(problem_body(p, &id, &self.inner.extensions))
    }
}

/// Logs one error: 5xx at error level, 4xx at info level, with the error id and the cause.
fn log_problem(p: &ProblemType, id: &uuid::Uuid, cause: Option<&dyn fmt::Display>) {
    let level = if p.status >= 500 {
        log::Level::Error
    } else {
        log::Level::Info
    };
    match cause {
        Some(cause) => log::log!(
            target: "secure_api::error",
            level,
            "error_id={id} status={} type={} cause: {cause}",
            p.status,
            p.type_uri
        ),
        None => log::log!(
            target: "secure_api::error",
            level,
            "error_id={id} status={} type={}",
            p.status,
            p.type_uri
        ),
    }
}

struct Body<'a> {
    problem: &'a ProblemType,
    instance: &'a uuid::Uuid,
    extensions: &'a [Extension],
}

impl Serialize for Body<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = self.problem;
        let mut map = s.serialize_map(Some(5 + self.extensions.len()))?;
        map.serialize_entry("type", p.type_uri)?;
        map.serialize_entry("title", p.title)?;
        map.serialize_entry("status", &p.status_code().as_u16())?;
        map.serialize_entry("detail", p.detail)?;
        map.serialize_entry(
            "instance",
            self.instance
                .urn()
                .encode_lower(&mut uuid::Uuid::encode_buffer()),
        )?;
        for ext in self.extensions {
            match ext {
                Extension::Errors(errors) => map.serialize_entry("errors", errors)?,
                Extension::Value(name, value) => map.serialize_entry(name, value)?,
            }
        }
        map.end()
    }
}

fn problem_body(problem: &ProblemType, id: &uuid::Uuid, extensions: &[Extension]) -> Vec<u8> {
    let body = Body {
        problem,
        instance: id,
        extensions,
    };
    // Serialising strings, numbers and `serde_json::Value`s into a Vec cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Builds the problem response for a bare problem type under a fresh error id, logging it
/// with the given cause, and returns it with that id. Used for the responses the error
/// layer and the endpoint runner convert.
pub(crate) fn problem_response(
    problem: ProblemType,
    cause: Option<&dyn fmt::Display>,
) -> (HttpResponse, uuid::Uuid) {
    let err = ApiError::new(problem);
    let err = match cause {
        Some(cause) => err.with_cause(cause.to_string()),
        None => err,
    };
    (err.render(), err.id())
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ApiError");
        d.field("status", &self.inner.problem.status)
            .field("type", &self.inner.problem.type_uri);
        if let Some(errors) = self.validation_errors() {
            d.field("errors", errors);
        }
        if let Some(cause) = &self.inner.cause {
            d.field("cause", cause);
        }
        d.finish()
    }
}

/// Shows the public title only; the cause is in [`ApiError::cause`] and in the log.
impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.inner.problem.title)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.inner.problem.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        self.render()
    }
}

impl From<ProblemType> for ApiError {
    fn from(problem: ProblemType) -> Self {
        ApiError::new(problem)
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        ApiError::validation(errors)
    }
}

/// Any error becomes a 500 with the error as its logged cause.
impl<E: StdError + Send + Sync + 'static> From<E> for ApiError {
    fn from(err: E) -> Self {
        ApiError::internal(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_types_are_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for p in problems::ALL {
            assert!(seen.insert(p.type_uri()), "duplicate {}", p.type_uri());
            assert!(p.type_uri().starts_with("tag:secure-api.dev,2026:problem:"));
            assert!((400..600).contains(&p.status()));
            assert!(p.detail().ends_with('.'));
        }
    }

    #[test]
    fn unknown_statuses_keep_their_code() {
        let p = problem_for_status(StatusCode::IM_A_TEAPOT);
        assert_eq!(p.status(), 418);
        assert_eq!(p.type_uri(), problems::CLIENT_ERROR.type_uri());
        assert_eq!(problem_for_status(StatusCode::BAD_GATEWAY).status(), 502);
    }
}
