//! The middleware every secure-api app installs: [`SecureLayer`].
//!
//! It makes every error response an RFC 9457 problem (actix's own 404 and 405, extractor
//! errors, errors from other middleware), turns a panicking handler into a 500 problem
//! instead of a dropped connection, and sets the [`SecurityHeaders`] on every response.

use std::any::Any;
use std::future::{Future, Ready, ready};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::{Error, HttpMessage, HttpResponse};
use futures_util::FutureExt;
use futures_util::future::CatchUnwind;

use crate::api::SecureApi;
use crate::problem::{PROBLEM_JSON, problem_for_status, problem_response, problems};

/// Response headers set on every response, overriding whatever a handler set.
///
/// [`SecurityHeaders::default`] is the recommended preset for JSON APIs:
///
/// | header | value |
/// | --- | --- |
/// | `Strict-Transport-Security` | `max-age=63072000; includeSubDomains` |
/// | `X-Content-Type-Options` | `nosniff` |
/// | `X-Frame-Options` | `DENY` |
/// | `Content-Security-Policy` | `default-src 'none'; frame-ancestors 'none'` |
/// | `Cache-Control` | `no-store` |
/// | `Referrer-Policy` | `no-referrer` |
/// | `Cross-Origin-Opener-Policy` | `same-origin` |
/// | `Cross-Origin-Resource-Policy` | `same-origin` |
///
/// `Server` and `X-Powered-By` are removed.
///
/// ```
/// use secure_api_runtime::layer::SecurityHeaders;
/// use actix_web::http::header::{HeaderName, HeaderValue};
///
/// let headers = SecurityHeaders::default()
///     .set(HeaderName::from_static("cross-origin-resource-policy"), HeaderValue::from_static("same-site"))
///     .set(HeaderName::from_static("permissions-policy"), HeaderValue::from_static("geolocation=()"));
/// ```
#[derive(Debug, Clone)]
pub struct SecurityHeaders {
    set: Vec<(HeaderName, HeaderValue)>,
    remove: Vec<HeaderName>,
}

impl Default for SecurityHeaders {
    fn default() -> Self {
        let preset = [
            (
                header::STRICT_TRANSPORT_SECURITY,
                "max-age=63072000; includeSubDomains",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; frame-ancestors 'none'",
            ),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CROSS_ORIGIN_OPENER_POLICY, "same-origin"),
            (header::CROSS_ORIGIN_RESOURCE_POLICY, "same-origin"),
        ];
        SecurityHeaders {
            set: preset
                .into_iter()
                .map(|(n, v)| (n, HeaderValue::from_static(v)))
                .collect(),
            remove: vec![header::SERVER, HeaderName::from_static("x-powered-by")],
        }
    }
}

impl SecurityHeaders {
    /// Sets (or replaces) a header of the preset.
    pub fn set(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.remove.retain(|n| n != name);
        match self.set.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = value,
            None => self.set.push((name, value)),
        }
        self
    }

    /// Removes a header from the preset and from every response (for example
    /// `Strict-Transport-Security` on a plain-HTTP development server).
    pub fn remove(mut self, name: HeaderName) -> Self {
        self.set.retain(|(n, _)| *n != name);
        if !self.remove.contains(&name) {
            self.remove.push(name);
        }
        self
    }

    /// The headers set on every response.
    pub fn headers(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.set.iter().map(|(n, v)| (n, v))
    }

    /// Applies the preset to a response's headers.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            // A lookup first: removing moves the (absent) entry out either way.
            if headers.contains_key(name) {
                headers.remove(name);
            }
        }
        for (name, value) in &self.set {
            set_header(headers, name.clone(), value.clone());
        }
    }
}

/// Sets `name` to `value`, replacing any values it had. A header the response does not have
/// (the usual case) is appended: `insert` would also move the absent previous values out.
pub(crate) fn set_header(headers: &mut HeaderMap, name: HeaderName, value: HeaderValue) {
    if headers.contains_key(&name) {
        headers.insert(name, value);
    } else {
        headers.append(name, value);
    }
}

/// The secure-api middleware: problem+json errors, panic containment and security headers.
///
/// Install it as the outermost middleware (the last `.wrap`) so that it also covers the
/// responses of other middleware:
///
/// ```
/// use actix_web::{web, App, HttpResponse};
/// use secure_api_runtime::prelude::*;
///
/// let app = App::new()
///     .wrap(SecureLayer::default())
///     .route("/", web::get().to(|| async { HttpResponse::Ok().finish() }));
/// ```
///
/// What it does to each response:
/// - an error status (4xx, 5xx) whose body is not `application/problem+json` is replaced by
///   the registry's problem for that status; `Allow`, `Retry-After`, `WWW-Authenticate` and
///   the `RateLimit` fields are kept, the rest of the original response is dropped (and its
///   error, if any, is logged under the new error id);
/// - a panic in a handler or inner middleware becomes a 500 problem, logged with the panic
///   message and the error id;
/// - the [`SecurityHeaders`] are set.
#[derive(Debug, Clone, Default)]
pub struct SecureLayer {
    headers: Arc<SecurityHeaders>,
    api: Option<SecureApi>,
}

impl SecureLayer {
    /// The layer with the given security headers. Endpoints use the process-wide default
    /// [`SecureApi`] state; use [`SecureApi::layer`] to give them the app's own.
    pub fn with_headers(headers: SecurityHeaders) -> Self {
        SecureLayer {
            headers: Arc::new(headers),
            api: None,
        }
    }

    /// The layer of an app's [`SecureApi`] state, with its security headers.
    pub(crate) fn for_api(api: SecureApi) -> Self {
        SecureLayer {
            headers: Arc::new(api.shared().headers.clone()),
            api: Some(api),
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for SecureLayer
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = SecureLayerService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(SecureLayerService {
            service: Rc::new(service),
            headers: self.headers.clone(),
            api: self.api.clone(),
        }))
    }
}

/// The service of [`SecureLayer`].
#[doc(hidden)]
pub struct SecureLayerService<S> {
    service: Rc<S>,
    headers: Arc<SecurityHeaders>,
    api: Option<SecureApi>,
}

impl<S, B> Service<ServiceRequest> for SecureLayerService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = LayerFuture<S::Future>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        // No clone of the request may be held here: routing needs it uniquely owned. Errors
        // and panics therefore leave this layer as an `Err` holding the finished response.
        if let Some(api) = &self.api {
            req.extensions_mut().insert(crate::api::RequestContext {
                api: api.clone(),
                limits: std::cell::Cell::new(None),
            });
        }
        let call = std::panic::catch_unwind(AssertUnwindSafe(|| self.service.call(req)));
        LayerFuture {
            state: match call {
                Ok(fut) => LayerState::Running {
                    fut: AssertUnwindSafe(fut).catch_unwind(),
                },
                Err(panic) => LayerState::Panicked { panic: Some(panic) },
            },
            headers: self.headers.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`SecureLayerService`]: the inner service's, with its panics caught,
    /// then the response finished (a named type, so that the layer allocates nothing per
    /// request).
    #[doc(hidden)]
    pub struct LayerFuture<F> {
        #[pin]
        state: LayerState<F>,
        headers: Arc<SecurityHeaders>,
    }
}

pin_project_lite::pin_project! {
    #[project = LayerStateProj]
    enum LayerState<F> {
        Running {
            #[pin]
            fut: CatchUnwind<AssertUnwindSafe<F>>,
        },
        // The inner service's `call` itself panicked.
        Panicked {
            panic: Option<Box<dyn Any + Send>>,
        },
    }
}

impl<F, B> Future for LayerFuture<F>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
    B: MessageBody,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let outcome = match this.state.project() {
            LayerStateProj::Running { fut } => match fut.poll(cx) {
                Poll::Ready(outcome) => outcome,
                Poll::Pending => return Poll::Pending,
            },
            LayerStateProj::Panicked { panic } => Err(panic
                .take()
                .unwrap_or_else(|| Box::new("the layer's future was polled after it finished"))),
        };
        Poll::Ready(finish(outcome, this.headers))
    }
}

/// The layer's answer for what the inner service gave: its response made a problem where
/// needed and given the security headers, or the finished problem for an error or a panic.
fn finish<B>(
    outcome: Result<Result<ServiceResponse<B>, Error>, Box<dyn Any + Send>>,
    headers: &SecurityHeaders,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    let mut res = match outcome {
        Ok(Ok(res)) => to_problem(res),
        Ok(Err(err)) => {
            let res = err.error_response();
            let res = if is_problem(res.headers()) {
                res
            } else {
                converted(&res, Some(&err)).0
            };
            return Err(Finished::new(res, headers).into());
        }
        Err(panic) => {
            let cause = format!("handler panicked: {}", panic_message(&*panic));
            let (res, _) = problem_response(problems::INTERNAL_ERROR, Some(&cause));
            return Err(Finished::new(res, headers).into());
        }
    };
    headers.apply(res.headers_mut());
    Ok(res)
}

/// A response finished by the layer (problem body, security headers) that has to travel as
/// an error because no request is at hand to wrap it in a `ServiceResponse`. It renders the
/// same response however often it is asked.
struct Finished {
    status: actix_web::http::StatusCode,
    headers: HeaderMap,
    body: actix_web::web::Bytes,
}

impl Finished {
    fn new(res: HttpResponse, security: &SecurityHeaders) -> Self {
        let status = res.status();
        let mut headers = res.headers().clone();
        security.apply(&mut headers);
        let body = match res.into_body().try_into_bytes() {
            Ok(bytes) => bytes,
            Err(_) => actix_web::web::Bytes::new(),
        };
        Finished {
            status,
            headers,
            body,
        }
    }
}

impl std::fmt::Debug for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Finished")
            .field("status", &self.status)
            .finish()
    }
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "error response {}", self.status)
    }
}

impl actix_web::ResponseError for Finished {
    fn status_code(&self) -> actix_web::http::StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::with_body(self.status, self.body.clone());
        for (name, value) in &self.headers {
            res.headers_mut().append(name.clone(), value.clone());
        }
        res.map_into_boxed_body()
    }
}

pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "non-string panic payload"
    }
}

/// Headers of an error response that survive its conversion to a problem.
const KEPT_ON_CONVERSION: [&str; 5] = [
    "allow",
    "retry-after",
    "www-authenticate",
    "ratelimit",
    "ratelimit-policy",
];

pub(crate) fn is_problem(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(PROBLEM_JSON.as_bytes()))
}

/// Replaces an error response that is not already a problem by the registry's problem for
/// its status.
fn to_problem<B>(res: ServiceResponse<B>) -> ServiceResponse<EitherBody<B>> {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) || is_problem(res.headers()) {
        return res.map_into_left_body();
    }
    let (problem, _) = converted(res.response(), res.response().error());
    let (req, _) = res.into_parts();
    ServiceResponse::new(req, problem).map_into_right_body()
}

/// The problem response replacing `original`, keeping the headers in [`KEPT_ON_CONVERSION`]
/// and logging `error` as the cause: in full for 5xx, and for 4xx only its kind (see
/// [`client_error_cause`]). Returned with its error id.
pub(crate) fn converted<B>(
    original: &HttpResponse<B>,
    error: Option<&Error>,
) -> (HttpResponse, uuid::Uuid) {
    let cause = error.map(|e| {
        if original.status().is_client_error() {
            client_error_cause(e)
        } else {
            format!("{e} ({e:?})")
        }
    });
    let (mut problem, id) = problem_response(
        problem_for_status(original.status()),
        cause.as_ref().map(|c| c as _),
    );
    for name in KEPT_ON_CONVERSION {
        for value in original.headers().get_all(name) {
            problem
                .headers_mut()
                .append(HeaderName::from_static(name), value.clone());
        }
    }
    (problem, id)
}

/// What is logged for a 4xx error from outside secure-api (actix's extractors, the app's own
/// errors): the kind of failure, never the error's message. Extractor messages quote the
/// input (serde's "invalid type: string \"hunter2\""), and passwords and tokens are input.
fn client_error_cause(err: &Error) -> String {
    use actix_web::error::{
        JsonPayloadError, PathError, PayloadError, QueryPayloadError, UrlencodedError,
    };
    let serde_kind = |e: &dyn std::fmt::Display| crate::input::classify(&e.to_string());
    if let Some(e) = err.as_error::<JsonPayloadError>() {
        match e {
            JsonPayloadError::Deserialize(e) => format!(
                "JSON body: {:?} error ({}) at line {} column {}",
                e.classify(),
                serde_kind(e),
                e.line(),
                e.column()
            ),
            JsonPayloadError::OverflowKnownLength { length, limit } => {
                format!("JSON body of {length} bytes is over the {limit}-byte limit")
            }
            JsonPayloadError::Overflow { limit } => {
                format!("JSON body is over the {limit}-byte limit")
            }
            JsonPayloadError::ContentType => "JSON body: wrong content type".to_owned(),
            JsonPayloadError::Payload(e) => format!("JSON body: {e}"),
            _ => "JSON body rejected".to_owned(),
        }
    } else if let Some(e) = err.as_error::<UrlencodedError>() {
        match e {
            UrlencodedError::Parse(e) => format!("form body: {}", serde_kind(e)),
            UrlencodedError::Serialize(_) => "form body rejected".to_owned(),
            // The other variants' messages are fixed text and sizes.
            e => format!("form body: {e}"),
        }
    } else if let Some(e) = err.as_error::<QueryPayloadError>() {
        let QueryPayloadError::Deserialize(e) = e else {
            return "query rejected".to_owned();
        };
        format!("query string: {}", serde_kind(e))
    } else if let Some(e) = err.as_error::<PathError>() {
        let PathError::Deserialize(e) = e else {
            return "path rejected".to_owned();
        };
        format!("path parameters: {}", serde_kind(e))
    } else if let Some(e) = err.as_error::<PayloadError>() {
        format!("body: {e}")
    } else {
        "client error (its message is not logged: client errors may quote the input)".to_owned()
    }
}
