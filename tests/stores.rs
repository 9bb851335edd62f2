//! The store traits' shared conformance checks (`tests/common/conformance.rs`) against the
//! in-memory stores; `tests/redis.rs` runs the same checks against Redis.

#[path = "common/conformance.rs"]
mod conformance;

use std::sync::Arc;

use conformance::Quota;
use secure_api_runtime::auth::refresh::MemoryRefreshStore;
use secure_api_runtime::auth::revocation::RevokedTokens;
use secure_api_runtime::idempotency::IdempotencyStore;
use secure_api_runtime::idempotency::memory::{MemoryIdempotencyStore, NewClaimsWhenFull};
use secure_api_runtime::throttle::memory::MemoryStore;

fn idempotency(quota: Quota) -> Arc<dyn IdempotencyStore> {
    Arc::new(
        MemoryIdempotencyStore::new()
            .max_entries_per_client(quota.entries)
            .max_bytes_per_client(quota.bytes)
            .when_full(if quota.reject {
                NewClaimsWhenFull::Reject
            } else {
                NewClaimsWhenFull::EvictOldest
            }),
    )
}

#[actix_rt::test]
async fn memory_limiter_conforms() {
    let store = MemoryStore::new();
    conformance::limiter_gcra(&store).await;
    conformance::limiter_window(&store).await;
    conformance::limiter_refunds(&store).await;
    conformance::limiter_concurrent(&[&store]).await;
}

#[actix_rt::test]
async fn memory_idempotency_conforms() {
    let store = idempotency(Quota::default());
    conformance::idempotency_lifecycle(&*store).await;
    conformance::idempotency_leases(&*store).await;
    conformance::idempotency_markers(&idempotency).await;
    conformance::idempotency_quotas(&idempotency).await;
    conformance::idempotency_one_winner(&[&*store], 64).await;
}

#[actix_rt::test]
async fn memory_refresh_store_conforms() {
    let store = MemoryRefreshStore::new().max_sessions_per_subject(3);
    conformance::refresh_lifecycle(&store).await;
    conformance::refresh_subjects(&store, 3).await;
    conformance::refresh_one_winner(&[&store]).await;
}

#[actix_rt::test]
async fn memory_revocation_conforms() {
    conformance::revocation_kinds(&RevokedTokens::new()).await;
}
