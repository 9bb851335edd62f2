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
//! | store full or down | 503 (the handler does not run unprotected) |
//!
//! The handler runs in its own task, so a client that disconnects does not cancel it and its
//! result is still stored. A 5xx, 408 or 429 is not stored and releases the key, as does a
//! handler that panics (the claim's guard releases it while unwinding).

use std::future::Future;
use std::time::Duration;

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use actix_web::{HttpRequest, HttpResponse, ResponseError};

use super::EndpointSpec;
use crate::api::SecureApi;
use crate::extract::{declared_length, limits, read_body};
use crate::idempotency::{
    Claim, Digest, IdempotencySpec, IdempotencyStore, REPLAYED_HEADERS, StoredResponse,
    fingerprint, parse_key, scope,
};
use crate::problem::{ApiError, problems};
use crate::store::StoreFuture;

/// The header marking a replayed response.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// Runs `handler` under the endpoint's idempotency rules.
pub(super) async fn call<F, Fut>(
    api: &SecureApi,
    spec: &'static EndpointSpec,
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
    let key = match (values.next(), values.next()) {
        (None, _) if idem.required => {
            return ApiError::new(problems::IDEMPOTENCY_KEY_MISSING).error_response();
        }
        (None, _) => return super::call(req, payload, handler).await,
        (Some(_), Some(_)) => {
            return ApiError::new(problems::IDEMPOTENCY_KEY_INVALID).error_response();
        }
        (Some(value), None) => match parse_key(value.as_bytes()) {
            Ok(key) => key,
            Err(_) => return ApiError::new(problems::IDEMPOTENCY_KEY_INVALID).error_response(),
        },
    };

    // The body is part of the fingerprint: read it (within the endpoint's limit) first.
    let limit = limits(&req).body_limit();
    let body = match read_body(payload, declared_length(&req), limit).await {
        Ok(body) => body.freeze(),
        Err(err) => return err.error_response(),
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
    let scope = scope(client, spec.route, &key);

    let shared = api.shared();
    let store = shared.idempotency.clone();
    let owner = next_owner();
    let deadline = std::time::Instant::now() + Duration::from_millis(idem.wait_ms);
    let mut pause = Duration::from_millis(5);
    loop {
        match store
            .claim(&scope, &fp, owner, shared.idempotency_lease_ms)
            .await
        {
            Ok(Claim::Acquired) => break,
            Ok(Claim::Completed(stored)) => return replay(&stored),
            Ok(Claim::Mismatch) => {
                return ApiError::new(problems::IDEMPOTENCY_KEY_REUSED).error_response();
            }
            Ok(Claim::InFlight) => {
                let now = std::time::Instant::now();
                if now >= deadline {
                    return ApiError::new(problems::IDEMPOTENCY_IN_FLIGHT)
                        .with_header(RETRY_AFTER, HeaderValue::from_static("1"))
                        .error_response();
                }
                actix_web::rt::time::sleep(pause.min(deadline - now)).await;
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            Err(err) => {
                return ApiError::new(problems::SERVICE_UNAVAILABLE)
                    .with_header(RETRY_AFTER, HeaderValue::from_static("1"))
                    .with_cause(err)
                    .error_response();
            }
        }
    }

    // The claim is ours. Run the handler in its own task: a disconnecting client drops this
    // future, not the handler, and the result is stored all the same.
    let guard = ClaimGuard {
        store: store.clone(),
        scope,
        owner,
        armed: true,
    };
    let ttl_ms = idem.ttl_ms;
    let max_stored = shared.max_stored_response;
    let task = actix_web::rt::spawn(async move {
        let res = super::call(req, Payload::from(body), handler).await;
        finish(guard, res, ttl_ms, max_stored).await
    });
    match task.await {
        Ok(res) => res,
        Err(err) => {
            // The handler panicked; the guard released the key while unwinding.
            let cause = match err.try_into_panic() {
                Ok(panic) => format!("handler panicked: {}", crate::layer::panic_message(&*panic)),
                Err(err) => format!("handler task failed: {err}"),
            };
            ApiError::new(problems::INTERNAL_ERROR)
                .with_cause(cause)
                .error_response()
        }
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
    store: std::sync::Arc<dyn IdempotencyStore>,
    scope: Digest,
    owner: u128,
    armed: bool,
}

impl ClaimGuard {
    async fn release(mut self) {
        self.armed = false;
        if let Err(err) = self.store.release(&self.scope, self.owner).await {
            log::error!(target: "secure_api::idempotency", "releasing an idempotency key failed: {err}");
        }
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        match self.store.release(&self.scope, self.owner) {
            StoreFuture::Ready(_) => {}
            StoreFuture::Pending(_) => {
                // A network store: finish the release on the runtime.
                let (store, scope, owner) = (self.store.clone(), self.scope, self.owner);
                actix_web::rt::spawn(async move {
                    let _ = store.release(&scope, owner).await;
                });
            }
        }
    }
}

/// Whether a response of this status is kept for replay.
fn storable(status: StatusCode) -> bool {
    !(status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS)
}

async fn finish(
    mut guard: ClaimGuard,
    res: HttpResponse,
    ttl_ms: u64,
    max_stored: usize,
) -> HttpResponse {
    let status = res.status();
    if !storable(status) {
        guard.release().await;
        return res;
    }
    let refuse = |guard: ClaimGuard, why: String| async move {
        guard.release().await;
        ApiError::new(problems::RESPONSE_NOT_STORABLE)
            .with_cause(why)
            .error_response()
    };
    let (res, body) = res.into_parts();
    match body.size() {
        BodySize::Stream => {
            return refuse(
                guard,
                "an idempotent endpoint returned a streaming body, which cannot be stored for replay; return a sized body"
                    .to_owned(),
            )
            .await;
        }
        BodySize::Sized(n) if n > max_stored as u64 => {
            return refuse(guard, format!("response body of {n} bytes is over the {max_stored}-byte limit for idempotent replay")).await;
        }
        _ => {}
    }
    let bytes = match actix_web::body::to_bytes_limited(body, max_stored).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(err)) => return refuse(guard, format!("response body failed: {err}")).await,
        Err(_) => {
            return refuse(
                guard,
                format!("response body is over the {max_stored}-byte limit"),
            )
            .await;
        }
    };
    let stored = StoredResponse {
        status: status.as_u16(),
        headers: res
            .headers()
            .iter()
            .filter(|(name, _)| REPLAYED_HEADERS.contains(&name.as_str()))
            .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
            .collect(),
        body: bytes.clone(),
    };
    match guard
        .store
        .complete(&guard.scope, guard.owner, stored, ttl_ms)
        .await
    {
        Ok(true) => {}
        Ok(false) => log::warn!(
            target: "secure_api::idempotency",
            "the idempotency claim lapsed while the handler ran and was taken over; this result was not stored (raise the lease)"
        ),
        Err(err) => {
            log::error!(target: "secure_api::idempotency", "storing an idempotent response failed: {err}")
        }
    }
    guard.armed = false;
    res.set_body(bytes).map_into_boxed_body()
}

/// The stored response, marked as a replay.
fn replay(stored: &StoredResponse) -> HttpResponse {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut res = HttpResponse::with_body(status, stored.body.clone());
    let headers = res.headers_mut();
    for (name, value) in &stored.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    headers.insert(
        HeaderName::from_static(IDEMPOTENT_REPLAYED),
        HeaderValue::from_static("true"),
    );
    res.map_into_boxed_body()
}
