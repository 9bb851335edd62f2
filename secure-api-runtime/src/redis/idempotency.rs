//! Idempotency records on Redis: exactly-once across instances.

use std::sync::{Arc, LazyLock};

use ::redis::{Script, ScriptInvocation, Value};
use actix_web::http::header::{HeaderName, HeaderValue};

use super::{RedisBackend, corrupt, hex, int};
use crate::idempotency::memory::{
    DEFAULT_CLIENT_SHARE, DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, NewClaimsWhenFull,
};
use crate::idempotency::{Claim, Completion, Digest, IdempotencyStore, RecordKey, StoredResponse};
use crate::store::{StoreError, StoreFuture};

macro_rules! idempotency_script {
    ($file:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(
                include_str!("scripts/idem_common.lua"),
                include_str!($file)
            ))
        })
    };
}

static CLAIM: LazyLock<Script> = idempotency_script!("scripts/idem_claim.lua");
static RENEW: LazyLock<Script> = idempotency_script!("scripts/idem_renew.lua");
static COMPLETE: LazyLock<Script> = idempotency_script!("scripts/idem_complete.lua");
static RELEASE: LazyLock<Script> = idempotency_script!("scripts/idem_release.lua");

/// The completion kinds of a completed record.
const RESPONSE: u8 = 1;
const NOT_REPLAYABLE: u8 = 2;
/// `d` or `c`, then the fingerprint: where a completion's encoding starts.
const COMPLETION_AT: usize = 1 + 32;

/// Idempotency records in Redis, shared by every instance of an app: an
/// [`IdempotencyStore`](crate::idempotency::IdempotencyStore) with the contract and the
/// per-client quotas of the in-memory
/// [`MemoryIdempotencyStore`](crate::idempotency::memory::MemoryIdempotencyStore). A key
/// claimed on one instance is in flight on every other, and its response is replayed by any
/// of them.
///
/// # Keys
///
/// Every key of a client is hash-tagged on the client's partition
/// ([`RecordKey::client`], hex), so that one Lua script updates a record and the client's
/// quota indexes together, in one Redis Cluster slot:
///
/// - `<prefix>:idem:{<client>}:<scope>`: the record of one key ([`RecordKey::scope`], hex),
///   a string. A claim is `c`, the request's fingerprint (32 bytes) and the owner token (16
///   bytes), created with `SET NX PX <lease>`; its `PX` is the lease, extended by renewals.
///   A completion is `d`, the fingerprint, then the stored response (status, the
///   allow-listed headers, the body) or the not-replayable marker (its status only), with
///   `PX` the replay TTL (`idempotent(ttl = ...)`, 24 h by default).
/// - `<prefix>:idem:{<client>}#live`: a sorted set of the client's records (their scopes),
///   scored by expiry in ms: its size is the client's record count.
/// - `<prefix>:idem:{<client>}#done`: a sorted set of the client's completions, scored by
///   completion time in µs: the order in which a client at its quota loses its own records.
/// - `<prefix>:idem:{<client>}#size`: a hash of each stored response's bytes, and their
///   `total`: the client's byte count.
///
/// The three indexes expire with the client's longest-lived record (`PEXPIREAT`), and every
/// script first forgets the entries of records whose `PX` has passed, so the counts never
/// drift from the records.
///
/// # Scripts
///
/// Each method is one Lua script run on the server's clock (`TIME`):
/// - **claim** answers from an existing record (in flight, completed with its response,
///   not replayable, or mismatch), else makes room within the client's quota and claims the
///   key with `SET NX PX` and the owner token;
/// - **renew** extends the lease (`PEXPIRE`) only while the record is the owner's claim,
///   never shortening it;
/// - **complete** and **release** are compare-and-set on the owner: they replace the claim
///   with the completion, or delete it, only while it is still the owner's claim.
///
/// # Bounds
///
/// Per client, at most [`max_entries_per_client`](Self::max_entries_per_client) records and
/// [`max_bytes_per_client`](Self::max_bytes_per_client) bytes of stored responses (by
/// default 1/16 of the in-memory store's totals: 6,250 records and 4 MiB). A client at its
/// quota loses its own oldest completions ([`NewClaimsWhenFull::EvictOldest`]), or is refused until
/// they expire ([`NewClaimsWhenFull::Reject`]); running claims are never evicted, and other clients
/// are never affected. The total is bounded by Redis's `maxmemory` (use `noeviction`).
///
/// ```no_run
/// use std::sync::Arc;
/// use secure_api_runtime::SecureApi;
/// use secure_api_runtime::redis::RedisBackend;
///
/// # async fn run() -> Result<(), secure_api_runtime::redis::RedisError> {
/// let redis = RedisBackend::connect("redis://127.0.0.1:6379/").await?;
/// let store = redis
///     .idempotency_store()
///     .max_entries_per_client(1_000)
///     .max_bytes_per_client(1 << 20);
/// let api = SecureApi::builder().idempotency_store(Arc::new(store)).build();
/// # let _ = api; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedisIdempotencyStore {
    backend: RedisBackend,
    max_entries: u64,
    max_bytes: u64,
    when_full: NewClaimsWhenFull,
}

impl RedisIdempotencyStore {
    /// The store of a backend with the default quotas (see
    /// [`RedisBackend::idempotency_store`]).
    pub fn new(backend: RedisBackend) -> Self {
        RedisIdempotencyStore {
            backend,
            max_entries: (DEFAULT_MAX_ENTRIES / DEFAULT_CLIENT_SHARE) as u64,
            max_bytes: (DEFAULT_MAX_BYTES / DEFAULT_CLIENT_SHARE) as u64,
            when_full: NewClaimsWhenFull::default(),
        }
    }

    /// Sets the most records (running and completed) one client may hold (default 6,250;
    /// at least 1).
    pub fn max_entries_per_client(mut self, n: usize) -> Self {
        self.max_entries = n.max(1) as u64;
        self
    }

    /// Sets the most bytes of stored responses one client may hold (default 4 MiB). A
    /// response larger than this is not stored: its key keeps a not-replayable marker.
    pub fn max_bytes_per_client(mut self, n: usize) -> Self {
        self.max_bytes = n as u64;
        self
    }

    /// Sets what a client at its quota gets: its oldest completions dropped (the default),
    /// or a refusal until they expire.
    pub fn when_full(mut self, policy: NewClaimsWhenFull) -> Self {
        self.when_full = policy;
        self
    }

    /// The per-client bounds in effect: records and bytes.
    pub fn client_quota(&self) -> (usize, usize) {
        (
            usize::try_from(self.max_entries).unwrap_or(usize::MAX),
            usize::try_from(self.max_bytes).unwrap_or(usize::MAX),
        )
    }

    /// The Redis key of a record.
    pub fn redis_key(&self, key: &RecordKey) -> String {
        let mut name = self.client_prefix(key);
        name.push_str(&hex(&key.scope.0));
        name
    }

    /// `<prefix>:idem:{<client>}:`, the prefix of the client's record keys.
    fn client_prefix(&self, key: &RecordKey) -> String {
        let mut name = self.backend.key("idem", &hex(&key.client.0));
        name.push(':');
        name
    }

    fn evicts(&self) -> &'static str {
        match self.when_full {
            NewClaimsWhenFull::EvictOldest => "1",
            NewClaimsWhenFull::Reject => "0",
        }
    }

    /// A script invocation on `key`'s record and its client's indexes.
    fn invocation<'s>(&self, script: &'s Script, key: &RecordKey) -> ScriptInvocation<'s> {
        let record = self.redis_key(key);
        let tag = self.backend.key("idem", &hex(&key.client.0));
        let mut invocation = script.prepare_invoke();
        invocation
            .key(record)
            .key(format!("{tag}#live"))
            .key(format!("{tag}#done"))
            .key(format!("{tag}#size"))
            .arg(self.client_prefix(key))
            .arg(hex(&key.scope.0));
        invocation
    }

    async fn claim_now(
        &self,
        key: &RecordKey,
        fingerprint: &Digest,
        owner: u128,
        lease_ms: u64,
    ) -> Result<Claim, StoreError> {
        let mut invocation = self.invocation(&CLAIM, key);
        invocation
            .arg(&fingerprint.0[..])
            .arg(&owner.to_be_bytes()[..])
            .arg(lease_ms.max(1))
            .arg(self.max_entries)
            .arg(self.evicts());
        let reply: Vec<Value> = self.backend.script(&invocation).await?;
        match reply.as_slice() {
            [code] => match int(code)? {
                0 => Ok(Claim::Acquired),
                1 => Ok(Claim::InFlight),
                3 => Ok(Claim::Mismatch),
                4 => Err(StoreError::Full),
                _ => Err(corrupt("an unknown claim answer")),
            },
            [code, Value::BulkString(record)] if int(code)? == 2 => decode(record),
            _ => Err(corrupt("a claim answer of the wrong shape")),
        }
    }

    async fn renew_now(
        &self,
        key: &RecordKey,
        owner: u128,
        lease_ms: u64,
    ) -> Result<bool, StoreError> {
        let mut invocation = self.invocation(&RENEW, key);
        invocation
            .arg(&owner.to_be_bytes()[..])
            .arg(lease_ms.max(1));
        let renewed: i64 = self.backend.script(&invocation).await?;
        Ok(renewed == 1)
    }

    async fn complete_now(
        &self,
        key: &RecordKey,
        owner: u128,
        completion: Completion,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        let size = completion.size();
        let mut invocation = self.invocation(&COMPLETE, key);
        invocation
            .arg(&owner.to_be_bytes()[..])
            .arg(encode(&completion))
            .arg(size)
            .arg(ttl_ms.max(1))
            .arg(self.max_bytes)
            .arg(self.evicts());
        match self.backend.script::<i64>(&invocation).await? {
            1 => Ok(true),
            0 => Ok(false),
            2 => Err(StoreError::Full),
            _ => Err(corrupt("an unknown completion answer")),
        }
    }

    async fn release_now(&self, key: &RecordKey, owner: u128) -> Result<bool, StoreError> {
        let mut invocation = self.invocation(&RELEASE, key);
        invocation.arg(&owner.to_be_bytes()[..]);
        let released: i64 = self.backend.script(&invocation).await?;
        Ok(released == 1)
    }
}

/// A completion as stored after `d` and the fingerprint: its kind, its status (u16, big
/// endian), and for a response the header count (u16), each header's name (u16 length)
/// and value (u32 length), then the body.
fn encode(completion: &Completion) -> Vec<u8> {
    match completion {
        Completion::NotReplayable { status } => {
            let mut out = vec![NOT_REPLAYABLE];
            out.extend_from_slice(&status.to_be_bytes());
            out
        }
        Completion::Response(response) => {
            let mut out = Vec::with_capacity(response.size());
            out.push(RESPONSE);
            out.extend_from_slice(&response.status.to_be_bytes());
            let headers = u16::try_from(response.headers.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&headers.to_be_bytes());
            for (name, value) in response.headers.iter().take(usize::from(headers)) {
                let name = name.as_str().as_bytes();
                let name = &name[..name.len().min(usize::from(u16::MAX))];
                out.extend_from_slice(&(name.len() as u16).to_be_bytes());
                out.extend_from_slice(name);
                let value = value.as_bytes();
                let value = &value[..value.len().min(u32::MAX as usize)];
                out.extend_from_slice(&(value.len() as u32).to_be_bytes());
                out.extend_from_slice(value);
            }
            out.extend_from_slice(&response.body);
            out
        }
    }
}

/// What a claim finds in a completed record (`d`, the fingerprint, the completion).
fn decode(record: &[u8]) -> Result<Claim, StoreError> {
    let bad = || corrupt("an idempotency record that does not decode");
    let mut rest = record.get(COMPLETION_AT..).ok_or_else(bad)?;
    let mut take = |n: usize| -> Result<&[u8], StoreError> {
        if rest.len() < n {
            return Err(bad());
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let kind = take(1)?[0];
    let status = u16::from_be_bytes(take(2)?.try_into().map_err(|_| bad())?);
    match kind {
        NOT_REPLAYABLE => Ok(Claim::NotReplayable { status }),
        RESPONSE => {
            let count = u16::from_be_bytes(take(2)?.try_into().map_err(|_| bad())?);
            let mut headers = Vec::with_capacity(usize::from(count));
            for _ in 0..count {
                let len = u16::from_be_bytes(take(2)?.try_into().map_err(|_| bad())?);
                let name = HeaderName::from_bytes(take(usize::from(len))?).map_err(|_| bad())?;
                let len = u32::from_be_bytes(take(4)?.try_into().map_err(|_| bad())?);
                let value = HeaderValue::from_bytes(take(len as usize)?).map_err(|_| bad())?;
                headers.push((name, value));
            }
            let body = bytes::Bytes::copy_from_slice(rest);
            Ok(Claim::Completed(Arc::new(StoredResponse {
                status,
                headers,
                body,
            })))
        }
        _ => Err(bad()),
    }
}

impl IdempotencyStore for RedisIdempotencyStore {
    fn claim(
        &self,
        key: &RecordKey,
        fingerprint: &Digest,
        owner: u128,
        lease_ms: u64,
    ) -> StoreFuture<'_, Result<Claim, StoreError>> {
        let (key, fingerprint) = (*key, *fingerprint);
        StoreFuture::Pending(Box::pin(async move {
            self.claim_now(&key, &fingerprint, owner, lease_ms).await
        }))
    }

    fn renew(
        &self,
        key: &RecordKey,
        owner: u128,
        lease_ms: u64,
    ) -> StoreFuture<'_, Result<bool, StoreError>> {
        let key = *key;
        StoreFuture::Pending(Box::pin(async move {
            self.renew_now(&key, owner, lease_ms).await
        }))
    }

    fn complete(
        &self,
        key: &RecordKey,
        owner: u128,
        completion: Completion,
        ttl_ms: u64,
    ) -> StoreFuture<'_, Result<bool, StoreError>> {
        let key = *key;
        StoreFuture::Pending(Box::pin(async move {
            self.complete_now(&key, owner, completion, ttl_ms).await
        }))
    }

    fn release(&self, key: &RecordKey, owner: u128) -> StoreFuture<'_, Result<bool, StoreError>> {
        let key = *key;
        StoreFuture::Pending(Box::pin(async move { self.release_now(&key, owner).await }))
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{CONTENT_TYPE, ETAG, LOCATION};

    fn stored(completion: &Completion) -> Vec<u8> {
        let mut record = vec![b'd'];
        record.extend_from_slice(&[7; 32]);
        record.extend(encode(completion));
        record
    }

    #[test]
    fn completions_round_trip() {
        let response = StoredResponse {
            status: 201,
            headers: vec![
                (CONTENT_TYPE, HeaderValue::from_static("application/json")),
                (LOCATION, HeaderValue::from_static("/orders/1")),
            ],
            body: bytes::Bytes::from_static(b"{\"id\":1}"),
        };
        match decode(&stored(&Completion::Response(response.clone()))).unwrap() {
            Claim::Completed(r) => assert_eq!(*r, response),
            other => panic!("{other:?}"),
        }
        let empty = StoredResponse {
            status: 204,
            headers: vec![],
            body: bytes::Bytes::new(),
        };
        match decode(&stored(&Completion::Response(empty.clone()))).unwrap() {
            Claim::Completed(r) => assert_eq!(*r, empty),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode(&stored(&Completion::NotReplayable { status: 202 })).unwrap(),
            Claim::NotReplayable { status: 202 }
        ));
    }

    #[test]
    fn truncated_records_are_corrupt_not_panics() {
        let full = stored(&Completion::Response(StoredResponse {
            status: 200,
            headers: vec![(ETAG, HeaderValue::from_static("\"x\""))],
            body: bytes::Bytes::new(),
        }));
        for len in 0..full.len() {
            let Err(StoreError::Backend(_)) = decode(&full[..len]) else {
                panic!("a record cut at {len} bytes decoded");
            };
        }
        let mut unknown = full.clone();
        unknown[COMPLETION_AT] = 9;
        assert!(decode(&unknown).is_err());
    }
}
