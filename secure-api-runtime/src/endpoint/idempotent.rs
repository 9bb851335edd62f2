//! Idempotent endpoints: claim the key, run the handler once, store and replay its
//! response.
//!
//! | situation | answer |
//! | --- | --- |
//! | no `Idempotency-Key` (when required) | 400 `idempotency-key-missing` |
//! | empty, over 255 bytes, malformed, or repeated | 400 `idempotency-key-invalid` |
//! | key used with another method, route, path, query, content type or body | 422 `idempotency-key-reused` |
//! | first request still running | 409 with `Retry-After`, or with `wait`, the first result |
//! | completed | the stored status, body and allow-listed headers, `Idempotent-Replayed: true` |
//! | completed, response not kept | 422 `idempotency-response-not-replayable` with `original_status` |
//! | store full (or the client's quota full of running requests) or down | 503 (the handler does not run unprotected) |
//!
//! A client that disconnects does not cancel the handler, and its result is still stored:
//! the handler runs in the request's own future, and if that future is dropped unfinished
//! the work moves to a task of its own and finishes there. While it runs, a heartbeat renews the claim's lease every third
//! of the lease (`SecureApiBuilder::idempotency_lease`), so a slow handler keeps its key and
//! a retry gets 409; the key is taken over only when nobody renewed it for a whole lease
//! (the process crashed or stalled). A handler that finishes at its first poll starts no
//! timer.
//!
//! Once the handler ran, its key is kept:
//! - a 2xx, 3xx or 4xx other than 408 and 429 is stored and replayed;
//! - a response that cannot be stored (a streaming body, or one over `max_stored_response`)
//!   is sent to this client as it is, and the key is completed with a marker: retries get
//!   the fixed `idempotency-response-not-replayable` problem with the original status,
//!   never a second run;
//! - so is a response the store refuses (its byte budget is exhausted, or the backend
//!   failed); a marker needs no room, and when the backend fails it is retried in the
//!   background for as long as the lease would have held the claim.
//!
//! Only a 5xx, 408 or 429 from the handler releases the key, so that the client's retry
//! runs again; so does a handler that panics (the claim's guard releases it while
//! unwinding).

use std::future::{Future, poll_fn};
use std::net::IpAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use actix_web::web::Bytes;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError};

use super::{EndpointSpec, IdempotencySpec};
use crate::api::SecureApi;
use crate::auth::Principal;
use crate::extract::{declared_length, limits, read_body};
use crate::idempotency::{
    Claim, Completion, IDEMPOTENT_REPLAYED, IdempotencyStore, REPLAYED_HEADERS, RecordKey,
    StoredResponse, fingerprint, parse_key,
};
use crate::problem::{ApiError, problems};
use crate::store::{StoreError, StoreFuture};
use crate::telemetry::EventContext;
use crate::telemetry::audit::{AuditDetail, AuditKind, StoreKind};
use crate::telemetry::metrics::Outcome as Decision;

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// The name of a client's partition: `principal:<subject>` when authenticated, else
/// `ip:<address>`, written without `format!` and, for addresses, without allocating.
pub(super) enum ClientName {
    /// An address: `ip:` and at most 39 characters of an IPv6 address.
    Address(super::StackBuf<48>),
    /// A principal.
    Principal(String),
}

impl ClientName {
    pub(super) fn new(principal: Option<&crate::auth::Principal>, ip: std::net::IpAddr) -> Self {
        use std::fmt::Write;
        use std::net::IpAddr;
        if let Some(p) = principal {
            let mut name = String::with_capacity("principal:".len() + p.subject.len());
            name.push_str("principal:");
            name.push_str(&p.subject);
            return ClientName::Principal(name);
        }
        let mut out = super::StackBuf::new();
        out.push(b"ip:");
        match ip {
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        out.push(b".");
                    }
                    out.number(u64::from(octet));
                }
            }
            // Never fails: an IPv6 address is at most 39 characters.
            IpAddr::V6(v6) => drop(write!(out, "{v6}")),
        }
        ClientName::Address(out)
    }

    pub(super) fn as_str(&self) -> &str {
        match self {
            // Only ASCII was written, and it fits.
            ClientName::Address(out) => out
                .written()
                .and_then(|bytes| std::str::from_utf8(bytes).ok())
                .unwrap_or(""),
            ClientName::Principal(name) => name,
        }
    }
}

/// Runs `handler` under the endpoint's idempotency rules.
#[allow(clippy::too_many_arguments)]
pub(super) async fn call<F, Fut>(
    api: &SecureApi,
    spec: &'static EndpointSpec,
    ip: IpAddr,
    idem: &IdempotencySpec,
    client: &str,
    req: HttpRequest,
    payload: Payload,
    handler: F,
) -> HttpResponse
where
    F: FnOnce(HttpRequest, Payload) -> Fut + 'static,
    Fut: Future<Output = Result<HttpResponse, actix_web::Error>> + 'static,
{
    let mut values = req.headers().get_all(&IDEMPOTENCY_KEY);
    // Where the key's record lives. The key itself is only hashed into it, here, so it is
    // borrowed from the header and never copied.
    let record = match (values.next(), values.next()) {
        (None, _) if idem.required => {
            let err = ApiError::new(problems::IDEMPOTENCY_KEY_MISSING);
            return refused(api, spec, ip, &req, err, Refused::Input);
        }
        // Boxed: the handler's future inline would double the size of this one, which
        // every request with a key carries.
        (None, _) => return Box::pin(super::call(api, spec, ip, req, payload, handler)).await,
        (Some(_), Some(_)) => {
            let err = ApiError::new(problems::IDEMPOTENCY_KEY_INVALID);
            return refused(api, spec, ip, &req, err, Refused::Input);
        }
        (Some(value), None) => match parse_key(value.as_bytes()) {
            Ok(key) => RecordKey::new(client, spec.route, &key),
            Err(_) => {
                let err = ApiError::new(problems::IDEMPOTENCY_KEY_INVALID);
                return refused(api, spec, ip, &req, err, Refused::Input);
            }
        },
    };

    // The body is part of the fingerprint: read it (within the endpoint's limit) first.
    let limit = limits(&req).body_limit();
    let body = match read_body(payload, declared_length(&req), limit).await {
        Ok(body) => body,
        Err(err) => return refused(api, spec, ip, &req, err, Refused::Input),
    };
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .map_or(&b""[..], |v| v.as_bytes());
    let fp = fingerprint(
        req.method().as_str(),
        spec.route,
        req.path(),
        req.query_string(),
        content_type,
        &body,
    );

    let shared = api.shared();
    let store = shared.idempotency.clone();
    let lease_ms = shared.idempotency_lease_ms;
    let owner = next_owner();
    // Taken when a claim first finds the key in flight: most claims never need it.
    let mut deadline = None;
    let mut pause = Duration::from_millis(5);
    loop {
        match store.claim(&record, &fp, owner, lease_ms).await {
            Ok(Claim::Acquired) => break,
            Ok(Claim::Completed(stored)) => {
                if let Some(m) = shared.telemetry.metrics() {
                    m.decision(spec, Decision::Replayed);
                }
                return replay(&stored);
            }
            Ok(Claim::NotReplayable { status }) => {
                let err = not_replayable(status);
                return refused(api, spec, ip, &req, err, Refused::NotReplayable);
            }
            Ok(Claim::Mismatch) => {
                let err = ApiError::new(problems::IDEMPOTENCY_KEY_REUSED);
                return refused(api, spec, ip, &req, err, Refused::Mismatch);
            }
            Ok(Claim::InFlight) => {
                let now = std::time::Instant::now();
                let deadline =
                    *deadline.get_or_insert_with(|| now + Duration::from_millis(idem.wait_ms));
                if now >= deadline {
                    let err = ApiError::new(problems::IDEMPOTENCY_IN_FLIGHT)
                        .with_header(RETRY_AFTER, HeaderValue::from_static("1"));
                    return refused(api, spec, ip, &req, err, Refused::InFlight);
                }
                // Boxed: a timer is large, and most claims never wait.
                Box::pin(actix_web::rt::time::sleep(pause.min(deadline - now))).await;
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            Err(error) => {
                let class = crate::telemetry::store_error_class(&error);
                let err = ApiError::new(problems::SERVICE_UNAVAILABLE)
                    .with_header(RETRY_AFTER, HeaderValue::from_static("1"))
                    .with_cause(error);
                return refused(api, spec, ip, &req, err, Refused::Store(class));
            }
        }
    }

    // The claim is ours. The handler runs in this request's future; should the client
    // disconnect before it finishes, the work moves to a task of its own and its result is
    // stored all the same (see `Detached`).
    let mut guard = ClaimGuard {
        store,
        record,
        owner,
        armed: true,
    };
    let ttl_ms = idem.ttl_ms;
    let max_stored = shared.max_stored_response;
    // The work may outlive this request's future (see `Detached`): it owns its app.
    let api = api.clone();
    Detached::new(async move {
        let outcome = heartbeat(&guard, lease_ms, async move {
            let res = super::call(&api, spec, ip, req, one_chunk(body), handler).await;
            match prepare(res, max_stored) {
                Prepared::Done(outcome) => outcome,
                // Boxed: most responses never need the room.
                Prepared::Read(res, body) => Box::pin(read_then_store(res, body, max_stored)).await,
            }
        })
        .await;
        finish(&mut guard, outcome, ttl_ms, lease_ms, spec.name).await
    })
    .await
}

/// The body already read, as the payload of the handler's extractors: one chunk, in one
/// allocation (actix's `Payload::from(Bytes)` takes two).
fn one_chunk(body: Bytes) -> Payload {
    if body.is_empty() {
        return Payload::None;
    }
    Payload::Stream {
        payload: Box::pin(futures_util::stream::once(std::future::ready(Ok(body)))),
    }
}

/// The work of a claimed request (the handler, then storing its result), run in the
/// request's own future, without the cost of a task per request.
///
/// If the request's future is dropped while the work is unfinished (the client went away,
/// or the server timed the connection out), the work is moved to a task of its own and
/// finishes there: the handler is never cancelled half-way, and its result is stored. If
/// the work panics, it is dropped, not moved: its [`ClaimGuard`] releases the key while
/// the panic unwinds, and the layer answers 500.
struct Detached<T: 'static> {
    /// Boxed so that it can move to a task once it has been polled.
    work: Option<Pin<Box<dyn Future<Output = T>>>>,
    /// Set while `work` is being polled: a drop that finds it set is the unwinding of a
    /// panic inside the work.
    polling: bool,
}

impl<T: 'static> Detached<T> {
    fn new(work: impl Future<Output = T> + 'static) -> Self {
        Detached {
            work: Some(Box::pin(work)),
            polling: false,
        }
    }
}

impl<T: 'static> Future for Detached<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<T> {
        let this = &mut *self;
        let Some(work) = this.work.as_mut() else {
            // Polled again after it finished: a bug of the caller, not a reason to panic.
            return Poll::Pending;
        };
        this.polling = true;
        let poll = work.as_mut().poll(cx);
        this.polling = false;
        if poll.is_ready() {
            this.work = None;
        }
        poll
    }
}

impl<T: 'static> Drop for Detached<T> {
    fn drop(&mut self) {
        let Some(work) = self.work.take() else {
            return;
        };
        if self.polling {
            // The work panicked; dropping it releases its claim.
            return;
        }
        // Without a runtime (the server is gone) nothing can finish the work: dropping it
        // releases the key, so that a retry runs the request again.
        if tokio::runtime::Handle::try_current().is_err() {
            drop(work);
            log::error!(
                target: "secure_api::idempotency",
                "an idempotent request was dropped unfinished with no runtime left to finish it; its key was released"
            );
            return;
        }
        actix_web::rt::spawn(async move {
            work.await;
        });
    }
}

/// A claim's owner token: unique in the process (a counter) and across processes (a random
/// prefix drawn once), without a system call per request.
fn next_owner() -> u128 {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let prefix = *PREFIX.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0);
    (u128::from(prefix) << 64) | u128::from(COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Releases a claim unless it was completed, including when the handler panics.
struct ClaimGuard {
    store: Arc<dyn IdempotencyStore>,
    record: RecordKey,
    owner: u128,
    armed: bool,
}

impl ClaimGuard {
    async fn release(&mut self) {
        self.armed = false;
        if let Err(err) = self.store.release(&self.record, self.owner).await {
            log::error!(target: "secure_api::idempotency", "releasing an idempotency key failed: {err}");
        }
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        match self.store.release(&self.record, self.owner) {
            StoreFuture::Ready(_) => {}
            StoreFuture::Pending(_) => {
                // A network store: finish the release on the runtime.
                let (store, record, owner) = (self.store.clone(), self.record, self.owner);
                actix_web::rt::spawn(async move {
                    let _ = store.release(&record, owner).await;
                });
            }
        }
    }
}

/// Runs `work` while renewing the claim's lease every third of it, so that the claim is
/// taken over only if this process is gone (crashed or stalled for a whole lease), never
/// because the handler is slow.
///
/// Work that finishes at its first poll (most handlers) never starts the timer; after that,
/// one timer is raced against the work in the same task, and one renewal is in flight at a
/// time. A lost claim (taken over after a stall) stops the renewals; both it and a failed
/// renewal are logged.
async fn heartbeat<T>(guard: &ClaimGuard, lease_ms: u64, work: impl Future<Output = T>) -> T {
    use actix_web::rt::time::{Instant, Sleep, sleep};

    let period = Duration::from_millis((lease_ms / 3).max(1));
    let mut work = pin!(work);
    // Boxed when first needed: most handlers finish at their first poll.
    let mut timer: Option<Pin<Box<Sleep>>> = None;
    let mut renewal: Option<StoreFuture<'_, Result<bool, StoreError>>> = None;
    let mut lost = false;
    poll_fn(|cx| {
        if let Poll::Ready(out) = work.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        while !lost {
            if let Some(pending) = renewal.as_mut() {
                let Poll::Ready(result) = Pin::new(pending).poll(cx) else {
                    return Poll::Pending;
                };
                renewal = None;
                match result {
                    Ok(true) => {}
                    Ok(false) => {
                        lost = true;
                        log::error!(
                            target: "secure_api::idempotency",
                            "an idempotency claim was lost while its handler ran (this process stalled for longer than the lease and a retry took the key over); the handler may run twice for this key"
                        );
                        break;
                    }
                    Err(err) => log::warn!(
                        target: "secure_api::idempotency",
                        "renewing an idempotency lease failed (retrying at the next beat): {err}"
                    ),
                }
            }
            let beat = timer.get_or_insert_with(|| Box::pin(sleep(period)));
            if beat.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            beat.as_mut().reset(Instant::now() + period);
            renewal = Some(guard.store.renew(&guard.record, guard.owner, lease_ms));
        }
        Poll::Pending
    })
    .await
}

/// Whether a response of this status is kept for replay.
fn storable(status: StatusCode) -> bool {
    !(status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS)
}

/// What the handler's response means for its key.
enum Outcome {
    /// A 5xx, 408 or 429: not stored, the key is released so that a retry runs again.
    Release(HttpResponse),
    /// Kept for replay: the response (its body buffered) and what is stored of it.
    Store(HttpResponse, StoredResponse),
    /// The handler ran but its response cannot be stored (streaming, or over the limit):
    /// it is sent as it is, and the key keeps a not-replayable marker.
    Unstorable { res: HttpResponse, why: String },
    /// The body failed while it was buffered: a 500 is sent, and the key keeps a
    /// not-replayable marker with the handler's status (its side effects happened).
    Broken { status: StatusCode, why: String },
}

/// The handler's response, sorted by [`prepare`].
enum Prepared {
    /// Sorted.
    Done(Outcome),
    /// To be stored, but its body (a sized stream) is not in memory yet: for
    /// [`read_then_store`].
    Read(HttpResponse<()>, BoxBody),
}

/// Sorts the handler's response.
fn prepare(res: HttpResponse, max_stored: usize) -> Prepared {
    let status = res.status();
    if !storable(status) {
        return Prepared::Done(Outcome::Release(res));
    }
    match res.body().size() {
        BodySize::Stream => {
            return Prepared::Done(Outcome::Unstorable {
                res,
                why: "it has a streaming body; return a sized body to make it replayable"
                    .to_owned(),
            });
        }
        BodySize::Sized(n) if n > max_stored as u64 => {
            return Prepared::Done(Outcome::Unstorable {
                res,
                why: format!(
                    "its body of {n} bytes is over max_stored_response ({max_stored} bytes)"
                ),
            });
        }
        _ => {}
    }
    let (res, body) = res.into_parts();
    // A body held in memory (what `HttpResponse::json` and most responses have) is taken
    // as it is, without a copy.
    match body.try_into_bytes() {
        Ok(bytes) => Prepared::Done(stored(res, bytes)),
        Err(body) => Prepared::Read(res, body),
    }
}

/// Reads a sized body that is not in memory, then sorts the response as [`prepare`] does.
async fn read_then_store(res: HttpResponse<()>, body: BoxBody, max_stored: usize) -> Outcome {
    let status = res.status();
    match actix_web::body::to_bytes_limited(body, max_stored).await {
        Ok(Ok(bytes)) => stored(res, bytes),
        Ok(Err(err)) => Outcome::Broken {
            status,
            why: format!("the response body of an idempotent endpoint failed: {err}"),
        },
        Err(_) => Outcome::Broken {
            status,
            why: format!(
                "the response body of an idempotent endpoint was larger than its stated size and over max_stored_response ({max_stored} bytes)"
            ),
        },
    }
}

/// The response to send and what is stored of it.
fn stored(res: HttpResponse<()>, bytes: Bytes) -> Outcome {
    let stored = StoredResponse {
        status: res.status().as_u16(),
        headers: res
            .headers()
            .iter()
            .filter(|(name, _)| REPLAYED_HEADERS.contains(&name.as_str()))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect(),
        body: bytes.clone(),
    };
    Outcome::Store(res.set_body(bytes).map_into_boxed_body(), stored)
}

/// Records the outcome in the store and gives the response to send. Once the handler ran
/// with a result worth keeping, the key is never released: what cannot be stored is marked
/// as completed without a replayable response.
async fn finish(
    guard: &mut ClaimGuard,
    outcome: Outcome,
    ttl_ms: u64,
    lease_ms: u64,
    endpoint: &'static str,
) -> HttpResponse {
    match outcome {
        Outcome::Release(res) => {
            guard.release().await;
            res
        }
        Outcome::Store(res, stored) => {
            // The handler ran: from here on the key is never released, even if this task
            // is dropped while a network store answers.
            guard.armed = false;
            let status = stored.status;
            let completed = guard
                .store
                .complete(
                    &guard.record,
                    guard.owner,
                    Completion::Response(stored),
                    ttl_ms,
                )
                .await;
            match completed {
                Ok(true) => {}
                Ok(false) => lost_claim(),
                Err(err) => {
                    log::error!(
                        target: "secure_api::idempotency",
                        "storing the response of idempotent endpoint `{endpoint}` failed ({err}); its key is kept as completed without a replayable response"
                    );
                    Box::pin(mark(guard, status, ttl_ms, lease_ms)).await;
                }
            }
            res
        }
        Outcome::Unstorable { res, why } => {
            log::warn!(
                target: "secure_api::idempotency",
                "the response of idempotent endpoint `{endpoint}` cannot be stored for replay: {why}; retries with its key get the idempotency-response-not-replayable problem"
            );
            Box::pin(mark(guard, res.status().as_u16(), ttl_ms, lease_ms)).await;
            res
        }
        Outcome::Broken { status, why } => {
            Box::pin(mark(guard, status.as_u16(), ttl_ms, lease_ms)).await;
            ApiError::new(problems::INTERNAL_ERROR)
                .with_cause(why)
                .error_response()
        }
    }
}

fn lost_claim() {
    log::warn!(
        target: "secure_api::idempotency",
        "the idempotency claim lapsed while the handler ran and was taken over; this result was not stored"
    );
}

/// Completes the claim with a not-replayable marker for `status`. If the store fails, the
/// marker is retried in the background (backing off, for as long as the lease would hold
/// the claim); the key is not released either way.
async fn mark(guard: &mut ClaimGuard, status: u16, ttl_ms: u64, lease_ms: u64) {
    guard.armed = false;
    let marker = Completion::NotReplayable { status };
    match guard
        .store
        .complete(&guard.record, guard.owner, marker.clone(), ttl_ms)
        .await
    {
        Ok(true) => return,
        Ok(false) => return lost_claim(),
        Err(err) => log::error!(
            target: "secure_api::idempotency",
            "recording an idempotency key as completed failed ({err}); retrying in the background"
        ),
    }
    let (store, record, owner) = (guard.store.clone(), guard.record, guard.owner);
    actix_web::rt::spawn(async move {
        let give_up = std::time::Instant::now() + Duration::from_millis(lease_ms);
        let mut pause = MARK_RETRY_FIRST;
        while std::time::Instant::now() + pause < give_up {
            actix_web::rt::time::sleep(pause).await;
            match store.complete(&record, owner, marker.clone(), ttl_ms).await {
                Ok(true) => return,
                Ok(false) => return lost_claim(),
                Err(_) => pause *= 2,
            }
        }
        log::error!(
            target: "secure_api::idempotency",
            "gave up recording an idempotency key as completed; once its lease lapses a retry may run the handler again"
        );
    });
}

/// The first pause before retrying a marker the store refused.
const MARK_RETRY_FIRST: Duration = Duration::from_millis(50);

/// The answer to a retry of a request whose response was not kept.
fn not_replayable(status: u16) -> ApiError {
    ApiError::new(problems::IDEMPOTENCY_NOT_REPLAYABLE)
        .with_extension("original_status", serde_json::Value::from(status))
}

/// Why the idempotency rules refused a request.
enum Refused {
    /// The key is missing or invalid, or the body could not be read.
    Input,
    /// The key is in flight.
    InFlight,
    /// The key was used for another request.
    Mismatch,
    /// The key's response was not kept.
    NotReplayable,
    /// The store failed (`full` or `backend`).
    Store(&'static str),
}

/// The response of a request the idempotency rules refused with `err`, counted and
/// audited.
#[cold]
#[inline(never)]
fn refused(
    api: &SecureApi,
    spec: &'static EndpointSpec,
    ip: IpAddr,
    req: &HttpRequest,
    err: ApiError,
    why: Refused,
) -> HttpResponse {
    let extensions = req.extensions();
    let ctx = EventContext {
        api,
        spec,
        ip,
        principal: extensions.get::<Principal>(),
    };
    match why {
        Refused::Input => {
            super::input_refused(&ctx, &err);
        }
        Refused::InFlight => ctx.refused(
            Decision::Conflict,
            &err,
            AuditKind::IdempotencyConflict,
            || AuditDetail::IdempotencyConflict,
        ),
        Refused::Mismatch | Refused::NotReplayable => {
            let not_replayable = matches!(why, Refused::NotReplayable);
            ctx.refused(
                Decision::Conflict,
                &err,
                AuditKind::IdempotencyMismatch,
                || AuditDetail::IdempotencyMismatch { not_replayable },
            );
        }
        Refused::Store(class) => ctx.store_failed(StoreKind::Idempotency, class, Some(&err)),
    }
    err.error_response()
}

/// The stored response, marked as a replay.
fn replay(stored: &StoredResponse) -> HttpResponse {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut res = HttpResponse::with_body(status, stored.body.clone());
    let headers = res.headers_mut();
    for (name, value) in &stored.headers {
        headers.append(name.clone(), value.clone());
    }
    headers.insert(
        HeaderName::from_static(IDEMPOTENT_REPLAYED),
        HeaderValue::from_static("true"),
    );
    res.map_into_boxed_body()
}

#[cfg(test)]
mod tests {
    use super::ClientName;
    use crate::auth::Principal;
    use std::net::IpAddr;

    #[test]
    fn client_names_are_what_format_writes() {
        for ip in [
            "0.0.0.0",
            "9.10.99.100",
            "192.168.1.255",
            "255.255.255.255",
            "100.64.0.1",
            "::",
            "2001:db8::1",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:1.2.3.4",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ClientName::new(None, ip).as_str(), format!("ip:{ip}"));
        }
        let alice = Principal::new("alice");
        let ip = "192.0.2.1".parse().unwrap();
        assert_eq!(
            ClientName::new(Some(&alice), ip).as_str(),
            "principal:alice"
        );
    }
}
