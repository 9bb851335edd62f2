//! What every store (rate limits, idempotency, refresh tokens) answers with: a future that
//! is ready at once for in-memory stores, the errors a store can fail with, and how full a
//! store is ([`StoreUsage`]).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Why a store could not answer.
#[derive(Debug)]
pub enum StoreError {
    /// The store holds as many keys as it may and none could be evicted.
    Full,
    /// The backing service failed (a later Redis store).
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Full => f.write_str("store is full"),
            StoreError::Backend(e) => write!(f, "store failed: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// A store's answer, ready at once for in-memory stores (no allocation) or pending for
/// network stores.
pub enum StoreFuture<'a, T> {
    /// Already decided.
    Ready(Option<T>),
    /// Waiting on a backend.
    Pending(Pin<Box<dyn Future<Output = T> + 'a>>),
}

impl<T> StoreFuture<'_, T> {
    /// A ready answer.
    pub fn ready(value: T) -> Self {
        StoreFuture::Ready(Some(value))
    }
}

// Neither variant is structurally pinned: the boxed future is pinned by its box.
impl<T> Unpin for StoreFuture<'_, T> {}

impl<T> Future for StoreFuture<'_, T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.get_mut() {
            StoreFuture::Ready(value) => match value.take() {
                Some(v) => Poll::Ready(v),
                None => Poll::Pending,
            },
            StoreFuture::Pending(fut) => fut.as_mut().poll(cx),
        }
    }
}

/// How full a bounded store is, as its `usage` method reports it
/// ([`RateLimitStore::usage`](crate::throttle::RateLimitStore::usage) and the same method of
/// the other store traits), for the gauges of
/// [`SecureApi::record_store_gauges`](crate::api::SecureApi::record_store_gauges).
///
/// `entries` never passes `max_entries` in the in-memory stores. Stores that also bound
/// bytes (the in-memory idempotency store's stored responses) report both `bytes` and
/// `max_bytes`; others report neither.
///
/// A custom store reports its own counters, when it keeps them without a scan:
///
/// ```
/// use secure_api_runtime::store::StoreUsage;
///
/// let usage = StoreUsage::new(12, 1_000).with_bytes(4_096, 1 << 20);
/// assert_eq!((usage.entries, usage.max_entries), (12, 1_000));
/// assert_eq!((usage.bytes, usage.max_bytes), (Some(4_096), Some(1 << 20)));
/// assert_eq!(StoreUsage::new(0, 10).bytes, None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreUsage {
    /// Entries held (keys, records, sessions: one per thing the store tracks).
    pub entries: usize,
    /// The most entries the store may hold.
    pub max_entries: usize,
    /// Bytes held, when the store bounds its bytes (with `max_bytes`).
    pub bytes: Option<usize>,
    /// The most bytes the store may hold, when it bounds them (with `bytes`).
    pub max_bytes: Option<usize>,
}

impl StoreUsage {
    /// `entries` held of at most `max_entries`, without a byte bound.
    pub const fn new(entries: usize, max_entries: usize) -> Self {
        StoreUsage {
            entries,
            max_entries,
            bytes: None,
            max_bytes: None,
        }
    }

    /// Adds the bytes held, of at most `max_bytes`.
    pub const fn with_bytes(mut self, bytes: usize, max_bytes: usize) -> Self {
        self.bytes = Some(bytes);
        self.max_bytes = Some(max_bytes);
        self
    }
}

/// What a check does when its store cannot answer ([`StoreError::Backend`]: a network
/// store timed out, lost its connection or failed).
///
/// Failing closed is the default and the only choice for idempotency and authentication
/// (revocation checks, sessions): running an idempotent handler unprotected could run it
/// twice, and skipping a revocation check would let revoked tokens in. Rate limits may
/// choose to fail open, trading protection for availability while the store is down.
///
/// ```
/// use secure_api_runtime::store::{OnStoreError, StoreError};
/// let down = StoreError::Backend("connection refused".into());
/// assert!(!OnStoreError::default().allows(&down));
/// assert!(OnStoreError::Allow.allows(&down));
/// // A full store is not a failure: its own policy (`WhenFull`) decides.
/// assert!(!OnStoreError::Allow.allows(&StoreError::Full));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnStoreError {
    /// Refuse the request: a 503 problem with `Retry-After`. The default.
    #[default]
    FailClosed,
    /// Let the request through unchecked (rate limits only). Endpoints log such requests
    /// at warn level, at most one line per endpoint every 10 seconds, with a count of the
    /// others.
    Allow,
}

impl OnStoreError {
    /// Whether a request whose check failed with `err` may go on.
    pub fn allows(&self, err: &StoreError) -> bool {
        matches!((self, err), (OnStoreError::Allow, StoreError::Backend(_)))
    }
}
