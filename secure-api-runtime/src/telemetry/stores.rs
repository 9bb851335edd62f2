//! The store metrics: a timing decorator per store trait (the latency histogram
//! [`STORE_DURATION`]) and the size gauges ([`STORE_ENTRIES`] and friends) with their
//! background refresh.
//!
//! Only an app built with [`SecureApiBuilder::metrics`](crate::api::SecureApiBuilder::metrics)
//! has any of it: without metrics its stores are the ones it was given, called directly.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use metrics::{Gauge, Histogram, Label};

use super::audit::StoreKind;
use super::metrics::{
    STORE_BYTES, STORE_DURATION, STORE_ENTRIES, STORE_MAX_BYTES, STORE_MAX_ENTRIES,
};
use crate::api::Shared;
use crate::auth::jwt::JwtAuth;
use crate::auth::refresh::{Advance, RefreshStore, Session, SessionId};
use crate::auth::revocation::{Revocation, TokenRef};
use crate::idempotency::{Claim, Completion, Digest, IdempotencyStore, RecordKey};
use crate::store::{StoreError, StoreFuture, StoreUsage};
use crate::throttle::{Decision, LimitKey, Policy, RateLimitStore};

/// The name of the thread refreshing the gauges.
pub(crate) const GAUGE_THREAD: &str = "secure-api-gauges";

fn labels(store: StoreKind, backend: &'static str) -> [Label; 2] {
    [
        Label::from_static_parts("store", store.name()),
        Label::from_static_parts("backend", backend),
    ]
}

/// The latency histogram of `store` on `backend`, registered with the current recorder.
fn duration_histogram(store: StoreKind, backend: &'static str) -> Histogram {
    metrics::histogram!(STORE_DURATION, labels(store, backend).iter())
}

/// A store whose every call is timed into a histogram: ready answers (memory stores)
/// around the synchronous call, pending ones (network stores) until the boxed future
/// completes, in one more box. A pending call dropped before it completes (its request
/// was cancelled) is not recorded.
pub(crate) struct Timed<S: ?Sized> {
    inner: Arc<S>,
    histogram: Histogram,
    /// The limiter's clock: the CPU's time-stamp counter where there is one.
    clock: quanta::Clock,
}

impl<S: ?Sized> Timed<S> {
    fn new(inner: Arc<S>, histogram: Histogram) -> Self {
        Timed {
            inner,
            histogram,
            clock: quanta::Clock::new(),
        }
    }

    fn elapsed(&self, start: u64) -> Duration {
        self.clock.delta(start, self.clock.raw())
    }

    #[inline]
    fn time<'a, T: 'a>(
        &'a self,
        call: impl FnOnce(&'a S) -> StoreFuture<'a, T>,
    ) -> StoreFuture<'a, T> {
        let start = self.clock.raw();
        match call(&self.inner) {
            StoreFuture::Ready(value) => {
                self.histogram.record(self.elapsed(start));
                StoreFuture::Ready(value)
            }
            StoreFuture::Pending(fut) => StoreFuture::Pending(Box::pin(async move {
                let out = fut.await;
                self.histogram.record(self.elapsed(start));
                out
            })),
        }
    }
}

impl RateLimitStore for Timed<dyn RateLimitStore> {
    fn acquire(
        &self,
        key: LimitKey,
        policy: &Policy,
        cost: u32,
    ) -> StoreFuture<'_, Result<Decision, StoreError>> {
        self.time(|s| s.acquire(key, policy, cost))
    }

    fn refund(
        &self,
        key: LimitKey,
        policy: &Policy,
        cost: u32,
    ) -> StoreFuture<'_, Result<(), StoreError>> {
        self.time(|s| s.refund(key, policy, cost))
    }

    fn is_shared(&self) -> bool {
        self.inner.is_shared()
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn usage(&self) -> Option<StoreUsage> {
        self.inner.usage()
    }
}

impl IdempotencyStore for Timed<dyn IdempotencyStore> {
    fn claim(
        &self,
        key: &RecordKey,
        fingerprint: &Digest,
        owner: u128,
        lease_ms: u64,
    ) -> StoreFuture<'_, Result<Claim, StoreError>> {
        self.time(|s| s.claim(key, fingerprint, owner, lease_ms))
    }

    fn renew(
        &self,
        key: &RecordKey,
        owner: u128,
        lease_ms: u64,
    ) -> StoreFuture<'_, Result<bool, StoreError>> {
        self.time(|s| s.renew(key, owner, lease_ms))
    }

    fn complete(
        &self,
        key: &RecordKey,
        owner: u128,
        completion: Completion,
        ttl_ms: u64,
    ) -> StoreFuture<'_, Result<bool, StoreError>> {
        self.time(|s| s.complete(key, owner, completion, ttl_ms))
    }

    fn release(&self, key: &RecordKey, owner: u128) -> StoreFuture<'_, Result<bool, StoreError>> {
        self.time(|s| s.release(key, owner))
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn usage(&self) -> Option<StoreUsage> {
        self.inner.usage()
    }
}

impl Revocation for Timed<dyn Revocation> {
    fn is_revoked(
        &self,
        token: TokenRef<'_>,
        now: u64,
    ) -> StoreFuture<'_, Result<bool, StoreError>> {
        self.time(|s| s.is_revoked(token, now))
    }

    fn revoke_token(
        &self,
        token_id: &str,
        until: u64,
        now: u64,
    ) -> StoreFuture<'_, Result<(), StoreError>> {
        self.time(|s| s.revoke_token(token_id, until, now))
    }

    fn revoke_session(
        &self,
        session_id: &str,
        until: u64,
        now: u64,
    ) -> StoreFuture<'_, Result<(), StoreError>> {
        self.time(|s| s.revoke_session(session_id, until, now))
    }

    fn revoke_subject(
        &self,
        subject: &str,
        revoked_at: u64,
        until: u64,
        now: u64,
    ) -> StoreFuture<'_, Result<(), StoreError>> {
        self.time(|s| s.revoke_subject(subject, revoked_at, until, now))
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn usage(&self) -> Option<StoreUsage> {
        self.inner.usage()
    }
}

impl RefreshStore for Timed<dyn RefreshStore> {
    fn create(&self, session: Session, now: u64) -> StoreFuture<'_, Result<(), StoreError>> {
        self.time(|s| s.create(session, now))
    }

    fn get(&self, id: SessionId, now: u64) -> StoreFuture<'_, Result<Option<Session>, StoreError>> {
        self.time(|s| s.get(id, now))
    }

    fn advance(
        &self,
        id: SessionId,
        generation: u64,
        token_hash: [u8; 32],
        next: Advance,
        now: u64,
    ) -> StoreFuture<'_, Result<bool, StoreError>> {
        self.time(|s| s.advance(id, generation, token_hash, next, now))
    }

    fn remove(&self, id: SessionId) -> StoreFuture<'_, Result<bool, StoreError>> {
        self.time(|s| s.remove(id))
    }

    fn remove_subject(&self, subject: &str) -> StoreFuture<'_, Result<usize, StoreError>> {
        self.time(|s| s.remove_subject(subject))
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn usage(&self) -> Option<StoreUsage> {
        self.inner.usage()
    }
}

/// The size gauges of one store, registered once.
struct StoreGauges {
    entries: Gauge,
    max_entries: Gauge,
    /// Bytes held and their bound, for a store that reported bytes when registered.
    bytes: Option<(Gauge, Gauge)>,
}

impl StoreGauges {
    /// The gauges of a store that reports `usage` (`None`: it reports none, so it has no
    /// gauges), registered with the current recorder and set to `usage`.
    fn register(
        store: StoreKind,
        backend: &'static str,
        usage: Option<StoreUsage>,
    ) -> Option<Self> {
        let usage = usage?;
        let labels = labels(store, backend);
        let gauge = |name: &'static str| metrics::gauge!(name, labels.iter());
        let gauges = StoreGauges {
            entries: gauge(STORE_ENTRIES),
            max_entries: gauge(STORE_MAX_ENTRIES),
            bytes: usage
                .bytes
                .map(|_| (gauge(STORE_BYTES), gauge(STORE_MAX_BYTES))),
        };
        gauges.set(usage);
        Some(gauges)
    }

    fn set(&self, usage: StoreUsage) {
        self.entries.set(usage.entries as f64);
        self.max_entries.set(usage.max_entries as f64);
        if let Some((bytes, max_bytes)) = &self.bytes {
            bytes.set(usage.bytes.unwrap_or(0) as f64);
            max_bytes.set(usage.max_bytes.unwrap_or(0) as f64);
        }
    }
}

/// The session store a [`TokenService`](crate::auth::refresh::TokenService) attached to
/// the app, held weakly: it is reported while a service uses it.
struct Sessions {
    store: Weak<dyn RefreshStore>,
    gauges: Option<StoreGauges>,
}

/// The store metrics of an app with metrics on: the gauges registered at build, the
/// session store attached since, and the background refresh.
pub(crate) struct StoreMetrics {
    rate_limit: Option<StoreGauges>,
    idempotency: Option<StoreGauges>,
    revocation: Option<StoreGauges>,
    sessions: Mutex<Option<Sessions>>,
    refresh: Mutex<Option<GaugeRefresh>>,
}

/// The stores of an app being built, instrumented: the rate-limit and idempotency stores
/// wrapped in timing decorators, the `JwtAuth`'s revocation store timed (for every clone of
/// it), and the size gauges of each store that reports its usage registered and set.
pub(crate) fn instrument(
    limiter: Arc<dyn RateLimitStore>,
    idempotency: Arc<dyn IdempotencyStore>,
    jwt: Option<&JwtAuth>,
) -> (
    Arc<dyn RateLimitStore>,
    Arc<dyn IdempotencyStore>,
    StoreMetrics,
) {
    let metrics = StoreMetrics {
        rate_limit: StoreGauges::register(StoreKind::RateLimit, limiter.backend(), limiter.usage()),
        idempotency: StoreGauges::register(
            StoreKind::Idempotency,
            idempotency.backend(),
            idempotency.usage(),
        ),
        revocation: jwt.and_then(|jwt| {
            let store = jwt.revocation_store()?;
            StoreGauges::register(StoreKind::Revocation, store.backend(), store.usage())
        }),
        sessions: Mutex::new(None),
        refresh: Mutex::new(None),
    };
    if let Some(jwt) = jwt {
        time_revocation(jwt);
    }
    let histogram = duration_histogram(StoreKind::RateLimit, limiter.backend());
    let limiter: Arc<dyn RateLimitStore> = Arc::new(Timed::new(limiter, histogram));
    let histogram = duration_histogram(StoreKind::Idempotency, idempotency.backend());
    let idempotency: Arc<dyn IdempotencyStore> = Arc::new(Timed::new(idempotency, histogram));
    (limiter, idempotency, metrics)
}

/// Times the revocation store of `jwt` (and of every clone of it), unless it is already.
fn time_revocation(jwt: &JwtAuth) {
    jwt.time_revocation(|store| {
        let histogram = duration_histogram(StoreKind::Revocation, store.backend());
        Arc::new(Timed::new(store.clone(), histogram))
    });
}

impl StoreMetrics {
    /// Sets the gauges of every store of `shared` that reports its usage.
    pub(crate) fn record(&self, shared: &Shared) {
        if let (Some(gauges), Some(usage)) = (&self.rate_limit, shared.limiter.usage()) {
            gauges.set(usage);
        }
        if let (Some(gauges), Some(usage)) = (&self.idempotency, shared.idempotency.usage()) {
            gauges.set(usage);
        }
        if let Some(gauges) = &self.revocation
            && let Some(usage) = shared
                .jwt
                .as_ref()
                .and_then(JwtAuth::revocation_store)
                .and_then(|store| store.usage())
        {
            gauges.set(usage);
        }
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(Sessions {
            store,
            gauges: Some(gauges),
        }) = &*sessions
            && let Some(usage) = store.upgrade().and_then(|store| store.usage())
        {
            gauges.set(usage);
        }
    }

    /// Times the calls of a token service's session store (the histogram registered with
    /// the current recorder) and the revocation store of its `jwt`, and reports the session
    /// store in the gauges, unless the app already reports a live one. Returns the store to
    /// use in its place.
    pub(crate) fn attach_sessions(
        &self,
        store: Arc<dyn RefreshStore>,
        jwt: &JwtAuth,
    ) -> Arc<dyn RefreshStore> {
        time_revocation(jwt);
        let backend = store.backend();
        let usage = store.usage();
        let timed: Arc<dyn RefreshStore> = Arc::new(Timed::new(
            store,
            duration_histogram(StoreKind::Sessions, backend),
        ));
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if sessions
            .as_ref()
            .is_none_or(|s| s.store.strong_count() == 0)
        {
            *sessions = Some(Sessions {
                store: Arc::downgrade(&timed),
                gauges: StoreGauges::register(StoreKind::Sessions, backend, usage),
            });
        }
        timed
    }

    /// Starts the thread that calls [`record`](Self::record) every `every` while `shared`
    /// lives (none for a zero interval). It holds only a `Weak` of the app's state: it ends
    /// when the app is dropped, woken at once by the drop of this handle.
    pub(crate) fn start_refresh(&self, shared: &Arc<Shared>, every: Duration) {
        if every.is_zero() {
            return;
        }
        let weak = Arc::downgrade(shared);
        let spawned = thread::Builder::new()
            .name(GAUGE_THREAD.to_owned())
            .spawn(move || refresh(&weak, every));
        match spawned {
            Ok(handle) => {
                *self.refresh.lock().unwrap_or_else(PoisonError::into_inner) = Some(GaugeRefresh {
                    thread: handle.thread().clone(),
                    handle: Some(handle),
                });
            }
            Err(e) => log::warn!(
                target: "secure_api::metrics",
                "the store gauges will not be refreshed in the background (the thread could not start: {e}); call SecureApi::record_store_gauges to set them"
            ),
        }
    }

    /// The refresh thread's handle, taken (tests join it).
    #[cfg(test)]
    pub(crate) fn take_refresh_thread(&self) -> Option<JoinHandle<()>> {
        self.refresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            .and_then(|r| r.handle.take())
    }
}

/// The background refresh of an app's gauges: dropped with the app, it wakes the thread,
/// which finds the app gone and ends.
struct GaugeRefresh {
    thread: Thread,
    /// Detached when dropped.
    #[cfg_attr(not(test), allow(dead_code))]
    handle: Option<JoinHandle<()>>,
}

impl Drop for GaugeRefresh {
    fn drop(&mut self) {
        self.thread.unpark();
    }
}

/// The refresh loop: waits `every` (parked, so that the app's drop wakes it), then sets
/// the gauges through a strong reference held only while it does.
fn refresh(shared: &Weak<Shared>, every: Duration) {
    loop {
        let deadline = Instant::now() + every;
        loop {
            if shared.strong_count() == 0 {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            thread::park_timeout(deadline - now);
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if let Some(metrics) = &shared.store_metrics {
            metrics.record(&shared);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::task::Poll;

    use futures_util::FutureExt;
    use metrics::HistogramFn;

    use super::*;
    use crate::SecureApi;
    use crate::idempotency::memory::MemoryIdempotencyStore;
    use crate::throttle::Rate;
    use crate::throttle::memory::MemoryStore;

    /// A histogram keeping its samples.
    #[derive(Default)]
    struct Samples(Mutex<Vec<f64>>);

    impl HistogramFn for Samples {
        fn record(&self, value: f64) {
            self.0.lock().unwrap().push(value);
        }
    }

    impl Samples {
        fn len(&self) -> usize {
            self.0.lock().unwrap().len()
        }
    }

    /// A network-like store: every acquire is pending until `open` is set.
    struct Slow {
        open: std::sync::atomic::AtomicBool,
    }

    impl RateLimitStore for Slow {
        fn acquire(
            &self,
            _: LimitKey,
            _: &Policy,
            _: u32,
        ) -> StoreFuture<'_, Result<Decision, StoreError>> {
            StoreFuture::Pending(Box::pin(std::future::poll_fn(|_| {
                if self.open.load(std::sync::atomic::Ordering::SeqCst) {
                    Poll::Ready(Ok(Decision::new(true, 1, 1, 0, 0)))
                } else {
                    Poll::Pending
                }
            })))
        }

        fn refund(
            &self,
            _: LimitKey,
            _: &Policy,
            _: u32,
        ) -> StoreFuture<'_, Result<(), StoreError>> {
            StoreFuture::ready(Ok(()))
        }

        fn is_shared(&self) -> bool {
            true
        }

        fn backend(&self) -> &'static str {
            "slow"
        }
    }

    fn timed<S: ?Sized>(store: Arc<S>) -> (Timed<S>, Arc<Samples>) {
        let samples = Arc::new(Samples::default());
        (
            Timed::new(store, Histogram::from_arc(samples.clone())),
            samples,
        )
    }

    #[test]
    fn a_ready_call_is_recorded_once_when_it_returns() {
        let store: Arc<dyn RateLimitStore> = Arc::new(MemoryStore::new().max_keys(7));
        let (timed, samples) = timed(store);
        let policy = Policy::new("p", Rate::per_second(1));
        let fut = timed.acquire(LimitKey([1, 2]), &policy, 1);
        assert_eq!(
            samples.len(),
            1,
            "recorded before the future is even polled"
        );
        assert!(fut.now_or_never().unwrap().unwrap().allowed);
        timed
            .refund(LimitKey([1, 2]), &policy, 1)
            .now_or_never()
            .unwrap()
            .unwrap();
        assert_eq!(samples.len(), 2);
        assert!(
            samples
                .0
                .lock()
                .unwrap()
                .iter()
                .all(|s| *s >= 0.0 && *s < 60.0)
        );
        // Everything else is forwarded.
        assert_eq!(timed.backend(), "memory");
        assert_eq!(timed.usage(), Some(StoreUsage::new(1, 7)));
        assert!(!timed.is_shared());
    }

    #[test]
    fn a_pending_call_is_recorded_when_it_completes_and_not_when_dropped() {
        let store = Arc::new(Slow { open: false.into() });
        let (timed, samples) = timed(store.clone() as Arc<dyn RateLimitStore>);
        assert!(timed.is_shared());
        assert_eq!(timed.backend(), "slow");
        assert_eq!(timed.usage(), None);
        let policy = Policy::new("p", Rate::per_second(1));

        let mut fut = timed.acquire(LimitKey([1, 2]), &policy, 1);
        assert!((&mut fut).now_or_never().is_none());
        assert_eq!(samples.len(), 0, "not recorded while pending");
        store.open.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(fut.now_or_never().unwrap().unwrap().allowed);
        assert_eq!(samples.len(), 1);

        store.open.store(false, std::sync::atomic::Ordering::SeqCst);
        let mut cancelled = timed.acquire(LimitKey([1, 2]), &policy, 1);
        assert!((&mut cancelled).now_or_never().is_none());
        drop(cancelled);
        assert_eq!(samples.len(), 1, "a cancelled call is not recorded");
    }

    #[test]
    fn without_metrics_the_stores_are_the_ones_given() {
        let limiter: Arc<dyn RateLimitStore> = Arc::new(MemoryStore::new());
        let idempotency: Arc<dyn IdempotencyStore> = Arc::new(MemoryIdempotencyStore::new());
        let api = SecureApi::builder()
            .log_inventory(false)
            .rate_limit_store(limiter.clone())
            .idempotency_store(idempotency.clone())
            .build();
        assert!(Arc::ptr_eq(&api.shared().limiter, &limiter));
        assert!(Arc::ptr_eq(&api.shared().idempotency, &idempotency));
        assert!(api.store_metrics().is_none());

        let api = SecureApi::builder()
            .log_inventory(false)
            .rate_limit_store(limiter.clone())
            .idempotency_store(idempotency.clone())
            .metrics(true)
            .metrics_interval(Duration::ZERO)
            .build();
        assert!(!Arc::ptr_eq(&api.shared().limiter, &limiter));
        assert!(!Arc::ptr_eq(&api.shared().idempotency, &idempotency));
        assert_eq!(api.shared().limiter.backend(), "memory");
        assert_eq!(
            api.shared().idempotency.usage(),
            idempotency.usage(),
            "the decorator reports the store's usage"
        );
    }

    #[test]
    fn a_jwt_revocation_store_is_timed_once_for_every_clone() {
        let jwt = crate::auth::jwt::JwtAuth::hs256(vec![7u8; 32])
            .issuer("i")
            .audience("a")
            .build()
            .unwrap();
        let raw = jwt.revocation_store().unwrap().clone();
        let _api = SecureApi::builder()
            .log_inventory(false)
            .jwt(jwt.clone())
            .metrics(true)
            .metrics_interval(Duration::ZERO)
            .build();
        let timed = jwt.revocation_store().unwrap().clone();
        assert!(!Arc::ptr_eq(&timed, &raw), "the user's clone is timed too");
        assert_eq!(timed.backend(), "memory");
        // A second app does not wrap it again.
        let _again = SecureApi::builder()
            .log_inventory(false)
            .jwt(jwt.clone())
            .metrics(true)
            .metrics_interval(Duration::ZERO)
            .build();
        assert!(Arc::ptr_eq(jwt.revocation_store().unwrap(), &timed));
    }

    #[test]
    fn the_gauge_thread_ends_when_the_app_is_dropped() {
        // A long interval: the thread ends because the drop wakes it, not because it
        // happened to wake up.
        let api = SecureApi::builder()
            .log_inventory(false)
            .metrics(true)
            .metrics_interval(Duration::from_secs(3600))
            .build();
        let handle = api
            .store_metrics()
            .unwrap()
            .take_refresh_thread()
            .expect("a refresh thread");
        assert_eq!(handle.thread().name(), Some(GAUGE_THREAD));
        assert!(!handle.is_finished());
        let (done, ended) = mpsc::channel();
        std::thread::spawn(move || {
            handle.join().unwrap();
            let _ = done.send(());
        });
        drop(api);
        ended
            .recv_timeout(Duration::from_secs(10))
            .expect("the gauge thread ended after the app was dropped");
    }

    #[test]
    fn a_zero_interval_starts_no_thread() {
        let api = SecureApi::builder()
            .log_inventory(false)
            .metrics(true)
            .metrics_interval(Duration::ZERO)
            .build();
        assert!(api.store_metrics().unwrap().take_refresh_thread().is_none());
    }
}
