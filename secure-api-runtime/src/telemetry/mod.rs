//! Security telemetry: [audit events](audit) for each security decision, and
//! [metrics] counting decisions, store latency and store sizes.
//!
//! Both are configured on the app's [`SecureApiBuilder`](crate::api::SecureApiBuilder):
//!
//! ```no_run
//! use std::sync::Arc;
//! use secure_api_runtime::SecureApi;
//! use secure_api_runtime::telemetry::audit::LogSink;
//!
//! // The exporter first: handles are registered with the recorder installed at `build`.
//! // metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
//! let api = SecureApi::builder()
//!     .audit_sink(Arc::new(LogSink::with_budget(50, 200))) // the default is LogSink::new()
//!     .metrics(true)
//!     .build();
//! ```
//!
//! What is emitted where:
//!
//! | decision | event | `outcome` of `secure_api_decisions_total` |
//! | --- | --- | --- |
//! | no, malformed, invalid or revoked bearer token | `auth_failed` (`class`) | `unauthenticated` |
//! | the endpoint's rule refuses the principal | `access_denied` | `forbidden` |
//! | rate limit | `rate_limited` (`policy`, `tier`) | `rate_limited` |
//! | input refused by the extractors or the body limit | `validation_failed` (`status`, `problem`, `violations`) | `invalid`, `malformed`, `too_large`, `unsupported_media_type` |
//! | `Idempotency-Key` in flight | `idempotency_conflict` | `conflict` |
//! | `Idempotency-Key` used for another request | `idempotency_mismatch` | `conflict` |
//! | replay | none | `replayed` |
//! | a store cannot answer | `store_failure` (`store`, `outcome`) | `unavailable`, or as the request goes on when failing open |
//! | refresh token presented again | `refresh_reuse` (`subject`, `family`) | as the handler answers (401) |
//! | logout, subject revoked | `revoked` (`scope`) | as the handler answers |
//! | login: wrong password | `auth_failed` (`class = wrong_password`) | as the handler answers (401) |
//! | login: account's failure budget spent | `login_limited` (`account`, a keyed digest) | as the handler answers (429) |
//! | a 401 the handler answers with, not audited where it was made (its own, `Passwords::verify`'s, an `AuthFailure`'s) | `auth_failed` (`class`: `handler`, `wrong_password`, or the failure's) | `unauthenticated` |
//! | a 403 the handler answers with | `access_denied` | `forbidden` |

pub mod audit;
pub mod metrics;
pub(crate) mod stores;

use std::net::IpAddr;
use std::sync::Arc;

use actix_web::{HttpMessage, HttpRequest};

use self::audit::{AuditDetail, AuditEvent, AuditKind, AuditSink, StoreKind, StoreOutcome};
use self::metrics::{Metrics, Outcome};
use crate::api::SecureApi;
use crate::auth::Principal;
use crate::endpoint::EndpointSpec;
use crate::problem::{ApiError, ProblemType};
use crate::store::StoreError;

/// An app's telemetry: its audit sink and, when on, its metrics' handles.
pub(crate) struct Telemetry {
    sink: Arc<dyn AuditSink>,
    metrics: Option<Metrics>,
}

impl Telemetry {
    pub(crate) fn new(sink: Arc<dyn AuditSink>, metrics: bool) -> Self {
        Telemetry {
            sink,
            metrics: metrics.then(Metrics::register),
        }
    }

    /// The metrics' handles, when on.
    #[inline]
    pub(crate) fn metrics(&self) -> Option<&Metrics> {
        self.metrics.as_ref()
    }

    /// Emits one event of `kind`: counted, then built by `build` and recorded only if the
    /// sink wants it.
    pub(crate) fn emit(&self, kind: AuditKind, build: impl FnOnce() -> AuditEvent) {
        if let Some(m) = &self.metrics {
            m.event(kind);
        }
        if self.sink.wants(kind) {
            let event = build();
            debug_assert_eq!(event.kind(), kind);
            self.sink.record(&event);
        }
    }

    /// Emits the `store_failure` event of `store` (built by `build`), and counts it in
    /// `secure_api_store_failures_total`.
    pub(crate) fn store_failure(
        &self,
        store: StoreKind,
        outcome: StoreOutcome,
        build: impl FnOnce() -> AuditEvent,
    ) {
        if let Some(m) = &self.metrics {
            m.store_failure(store, outcome);
        }
        self.emit(AuditKind::StoreFailure, build);
    }
}

tokio::task_local! {
    /// The endpoint request that the current task is running the handler of.
    static REQUEST: RequestScope;
}

/// What events raised inside a handler learn of their request.
#[derive(Clone)]
pub(crate) struct RequestScope {
    pub(crate) spec: &'static EndpointSpec,
    pub(crate) req: HttpRequest,
}

/// Runs `fut` (a handler's future) with its request known to the events it raises.
pub(crate) fn in_request<F: std::future::Future>(
    spec: &'static EndpointSpec,
    req: HttpRequest,
    fut: F,
) -> tokio::task::futures::TaskLocalFuture<RequestScope, F> {
    REQUEST.scope(RequestScope { spec, req }, fut)
}

/// The name events and metrics give `spec`'s endpoint: the handler's name, or
/// `module::path::name` (its `module_path!()`) when another endpoint of the program has a
/// handler of the same name, as the OpenAPI document's `operationId` does. Two handlers
/// called `create` in different modules thus count into series of their own.
pub(crate) fn endpoint_name(spec: &'static EndpointSpec) -> &'static str {
    use crate::endpoint::Registration;
    /// The qualified names of the endpoints whose handler's name is not unique, by the
    /// address of their spec: made (and leaked) once per program.
    static QUALIFIED: std::sync::LazyLock<std::collections::HashMap<usize, &'static str>> =
        std::sync::LazyLock::new(|| {
            let mut by_name: std::collections::HashMap<&str, Vec<&Registration>> =
                std::collections::HashMap::new();
            for r in ::inventory::iter::<Registration> {
                by_name.entry(r.spec.name).or_default().push(r);
            }
            by_name
                .into_values()
                .filter(|same| same.len() > 1)
                .flatten()
                .map(|r| {
                    let name: &'static str =
                        Box::leak(format!("{}::{}", r.module, r.spec.name).into_boxed_str());
                    (self::metrics::spec_key(r.spec), name)
                })
                .collect()
        });
    QUALIFIED
        .get(&self::metrics::spec_key(spec))
        .copied()
        .unwrap_or(spec.name)
}

/// The context of the events of an endpoint's request: the app, endpoint, client and
/// principal.
pub(crate) struct EventContext<'a> {
    pub(crate) api: &'a SecureApi,
    pub(crate) spec: &'static EndpointSpec,
    pub(crate) ip: IpAddr,
    pub(crate) principal: Option<&'a Principal>,
}

impl EventContext<'_> {
    /// `detail` with this context and the error id.
    pub(crate) fn event(&self, error_id: Option<uuid::Uuid>, detail: AuditDetail) -> AuditEvent {
        AuditEvent {
            error_id,
            endpoint: Some(endpoint_name(self.spec)),
            client: Some(self.ip),
            principal: self.principal.map(|p| p.subject.clone()),
            detail,
        }
    }

    /// Counts the request's outcome, when metrics are on.
    #[inline]
    pub(crate) fn decision(&self, outcome: Outcome) {
        if let Some(m) = self.api.shared().telemetry.metrics() {
            m.decision(self.spec, outcome);
        }
    }

    /// Counts a refusal answered with `err`, and emits its event of `kind` under the
    /// error's id.
    #[cold]
    #[inline(never)]
    pub(crate) fn refused(
        &self,
        outcome: Outcome,
        err: &ApiError,
        kind: AuditKind,
        detail: impl FnOnce() -> AuditDetail,
    ) {
        self.decision(outcome);
        self.api
            .shared()
            .telemetry
            .emit(kind, || self.event(Some(err.id()), detail()));
    }

    /// Emits the failure of `store` with its outcome; a request refused for it (its error
    /// `err`) is counted as `unavailable`.
    #[cold]
    #[inline(never)]
    pub(crate) fn store_failed(
        &self,
        store: StoreKind,
        error: &'static str,
        err: Option<&ApiError>,
    ) {
        let outcome = match err {
            Some(_) => {
                self.decision(Outcome::Unavailable);
                StoreOutcome::FailedClosed
            }
            None => StoreOutcome::FailedOpen,
        };
        self.api
            .shared()
            .telemetry
            .store_failure(store, outcome, || {
                self.event(
                    err.map(ApiError::id),
                    AuditDetail::StoreFailure {
                        store,
                        outcome,
                        error,
                    },
                )
            });
    }
}

/// `full` or `backend`.
pub(crate) fn store_error_class(error: &StoreError) -> &'static str {
    match error {
        StoreError::Full => "full",
        StoreError::Backend(_) => "backend",
    }
}

/// The outcome of a refusal whose problem is `problem` (answered by a handler or its
/// extractors): the input refusals, the refusals of code the handler calls (the token
/// service's 401s and 503s, the login guard's 429), and the handler's own 401, 403 and
/// 422. Any other problem of a handler is its own business: `allowed`.
pub(crate) fn classify(problem: &ProblemType) -> Outcome {
    use crate::problem::problems::*;
    let is = |p: ProblemType| p.type_uri() == problem.type_uri();
    if is(VALIDATION_FAILED) {
        Outcome::Invalid
    } else if is(MALFORMED_REQUEST)
        || is(NESTING_TOO_DEEP)
        || is(IDEMPOTENCY_KEY_MISSING)
        || is(IDEMPOTENCY_KEY_INVALID)
    {
        Outcome::Malformed
    } else if is(PAYLOAD_TOO_LARGE) {
        Outcome::TooLarge
    } else if is(UNSUPPORTED_MEDIA_TYPE) {
        Outcome::UnsupportedMediaType
    } else if is(INVALID_CREDENTIALS) {
        Outcome::Unauthenticated
    } else if is(FORBIDDEN) {
        Outcome::Forbidden
    } else if is(RATE_LIMITED) {
        Outcome::RateLimited
    } else if is(IDEMPOTENCY_IN_FLIGHT)
        || is(IDEMPOTENCY_KEY_REUSED)
        || is(IDEMPOTENCY_NOT_REPLAYABLE)
    {
        Outcome::Conflict
    } else if is(SERVICE_UNAVAILABLE) {
        Outcome::Unavailable
    } else {
        Outcome::Allowed
    }
}

/// The last segment of a problem's `type`: `validation-failed`, `payload-too-large`, ...
pub(crate) fn problem_slug(problem: &ProblemType) -> &'static str {
    let uri = problem.type_uri();
    match uri.rfind(':') {
        Some(i) => &uri[i + 1..],
        None => uri,
    }
}

/// Emits an event raised outside the endpoint runner (in code a handler calls: the token
/// service, the login guard): through the app of the request being handled, with its
/// endpoint, client and principal, or through `fallback`'s app (else the process-wide
/// default) with no request context.
pub(crate) fn emit_from_handler(
    fallback: Option<&SecureApi>,
    kind: AuditKind,
    error_id: Option<uuid::Uuid>,
    detail: impl FnOnce() -> AuditDetail,
) {
    from_handler(fallback, |telemetry, event| {
        telemetry.emit(kind, || event(error_id, detail()));
    });
}

/// Emits a store failure raised outside the endpoint runner (the token service, the login
/// guard), resolved like [`emit_from_handler`]: the `store_failure` event with the request's
/// context, counted in `secure_api_store_failures_total` and
/// `secure_api_audit_events_total`. `error` is [`store_error_class`] of the failure.
pub(crate) fn store_failure_from_handler(
    fallback: Option<&SecureApi>,
    store: StoreKind,
    outcome: StoreOutcome,
    error_id: Option<uuid::Uuid>,
    error: &'static str,
) {
    from_handler(fallback, |telemetry, event| {
        telemetry.store_failure(store, outcome, || {
            event(
                error_id,
                AuditDetail::StoreFailure {
                    store,
                    outcome,
                    error,
                },
            )
        });
    });
}

/// Calls `emit` with the telemetry of the app an event raised in handler code goes to (see
/// [`emit_from_handler`]) and a builder of its events with the request's context.
fn from_handler(
    fallback: Option<&SecureApi>,
    emit: impl FnOnce(&Telemetry, &dyn Fn(Option<uuid::Uuid>, AuditDetail) -> AuditEvent),
) {
    let scope = REQUEST.try_with(Clone::clone).ok();
    let api = match (&scope, fallback) {
        (Some(scope), _) => SecureApi::of(&scope.req),
        (None, Some(api)) => api.clone(),
        (None, None) => SecureApi::global().clone(),
    };
    let event = |error_id, detail| {
        let mut event = AuditEvent::new(detail);
        event.error_id = error_id;
        if let Some(scope) = &scope {
            event.endpoint = Some(endpoint_name(scope.spec));
            event.client = Some(crate::endpoint::client_ip(&api, &scope.req));
            event.principal = scope
                .req
                .extensions()
                .get::<Principal>()
                .map(|p| p.subject.clone());
        }
        event
    };
    emit(&api.shared().telemetry, &event);
}
