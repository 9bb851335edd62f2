//! What every store (rate limits, idempotency, refresh tokens) answers with: a future that
//! is ready at once for in-memory stores, and the errors a store can fail with.

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
