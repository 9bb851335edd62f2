//! Idempotency keys (IETF draft-ietf-httpapi-idempotency-key-header): the policy engine,
//! without actix types. The endpoint runtime of `#[secure_endpoint(idempotent)]` runs it
//! around handlers.
//!
//! - A key is scoped to the client (its principal, or its address when anonymous) and the
//!   route, and stored only as SHA-256 digests ([`RecordKey`]): nobody can replay someone
//!   else's response, and a store never holds a principal, an address or a key in clear.
//! - A request is fingerprinted (method, route, path, query, content type and body); the
//!   same key with another fingerprint is refused.
//! - The first request *claims* the key with a random owner token and a lease. While its
//!   handler runs, the owner renews the lease (a heartbeat every third of it), so a claim
//!   is taken over only when its owner is gone: its process crashed or stalled and nobody
//!   renewed it for a whole lease. Renewing, completing and releasing are compare-and-set
//!   on the owner, so a stale owner cannot overwrite a newer claim.
//! - A finished request leaves a [`Completion`]: its response for replay, or, when the
//!   response could not be kept (streaming, over the size limit, or refused by the store),
//!   a marker that the request ran. Either way the key is never released once the handler
//!   ran with a result worth keeping; only 5xx, 408, 429 and panics release it.
//! - Stores are bounded per client as well as in total: one client that fills its quota
//!   loses its own oldest records, never other clients' (see [`memory`]).

pub mod memory;

use std::sync::Arc;

use actix_web::http::header::{HeaderName, HeaderValue};

use sha2::{Digest as _, Sha256};

use crate::store::{StoreError, StoreFuture, StoreUsage};

/// The longest accepted key, in bytes.
pub const MAX_KEY_LEN: usize = 255;

/// The response header marking a replayed response (`Idempotent-Replayed: true`), in the
/// lowercase form `http::HeaderName` uses.
///
/// ```
/// use actix_web::http::header::HeaderMap;
/// use secure_api_runtime::idempotency::IDEMPOTENT_REPLAYED;
///
/// fn was_replayed(headers: &HeaderMap) -> bool {
///     headers.get(IDEMPOTENT_REPLAYED).is_some_and(|v| v == "true")
/// }
/// assert!(!was_replayed(&HeaderMap::new()));
/// ```
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

pub use crate::shared::limits::DEFAULT_TTL_MS;

/// Why an `Idempotency-Key` value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyError {
    /// Empty, over 255 bytes, or not a valid structured-field string or token.
    Invalid,
}

/// The key of an `Idempotency-Key` header value: a structured-field string (`"abc"`, the
/// draft's form, with `\"` and `\\` escapes) or a bare token of visible ASCII. 1 to 255
/// bytes. Borrowed from the value unless it had escapes to undo (a key is only hashed, so
/// the common request copies nothing).
pub(crate) fn parse_key(value: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, KeyError> {
    use std::borrow::Cow;
    let value = value.trim_ascii();
    let key = if let Some(inner) = value.strip_prefix(b"\"") {
        let inner = inner.strip_suffix(b"\"").ok_or(KeyError::Invalid)?;
        if !inner.iter().all(|&b| (0x20..=0x7e).contains(&b)) {
            return Err(KeyError::Invalid);
        }
        if inner.iter().all(|&b| b != b'\\' && b != b'"') {
            Cow::Borrowed(inner)
        } else {
            let mut out = Vec::with_capacity(inner.len());
            let mut bytes = inner.iter();
            while let Some(&b) = bytes.next() {
                match b {
                    b'\\' => match bytes.next() {
                        Some(&e @ (b'"' | b'\\')) => out.push(e),
                        _ => return Err(KeyError::Invalid),
                    },
                    b'"' => return Err(KeyError::Invalid),
                    _ => out.push(b),
                }
            }
            Cow::Owned(out)
        }
    } else {
        if !value
            .iter()
            .all(|&b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b',')
        {
            return Err(KeyError::Invalid);
        }
        Cow::Borrowed(value)
    };
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(KeyError::Invalid);
    }
    Ok(key)
}

/// A SHA-256 digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

fn digest(parts: &[&[u8]]) -> Digest {
    let mut h = Sha256::new();
    for part in parts {
        // Length-prefixed, so that no two different part lists hash the same input.
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    Digest(h.finalize().into())
}

/// The fingerprint of a request: what must be equal for a retry to be "the same request".
pub(crate) fn fingerprint(
    method: &str,
    route: &str,
    path: &str,
    query: &str,
    content_type: &[u8],
    body: &[u8],
) -> Digest {
    digest(&[
        method.as_bytes(),
        route.as_bytes(),
        path.as_bytes(),
        query.as_bytes(),
        content_type,
        body,
    ])
}

/// The stored name of a key: the client's scope (principal or address), the route and the
/// key, hashed.
pub(crate) fn scope(client: &str, route: &str, key: &[u8]) -> Digest {
    digest(&[b"idempotency-v1", client.as_bytes(), route.as_bytes(), key])
}

/// The partition of a client (its principal, or its address when anonymous), hashed: what
/// per-client quotas are counted by.
pub(crate) fn client_partition(client: &str) -> Digest {
    digest(&[b"idempotency-client-v1", client.as_bytes()])
}

/// Where a key's record lives: the client's partition and the key's scope, both digests.
///
/// A store keeps one record per `scope` (which already includes the client) and counts it
/// against the quota of `client`. A Redis store names the record
/// `<prefix>:idem:{<client>}:<scope>`, hash-tagged on the client so that a client's records
/// and its quota index sit in one Redis Cluster slot and one Lua script can update them
/// together.
///
/// ```
/// use secure_api_runtime::idempotency::RecordKey;
/// let alice = RecordKey::new("principal:alice", "/orders", b"key-1");
/// let bob = RecordKey::new("principal:bob", "/orders", b"key-1");
/// assert_ne!(alice.scope, bob.scope);
/// assert_ne!(alice.client, bob.client);
/// assert_eq!(alice.client, RecordKey::new("principal:alice", "/other", b"k").client);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordKey {
    /// The client's partition: its principal, or its address when anonymous, hashed.
    pub client: Digest,
    /// The key's scope: client, route and key, hashed.
    pub scope: Digest,
}

impl RecordKey {
    /// The record of `key` sent by `client` to `route`.
    pub fn new(client: &str, route: &str, key: &[u8]) -> Self {
        RecordKey {
            client: client_partition(client),
            scope: scope(client, route, key),
        }
    }
}

/// A response kept for replay: status, the allow-listed headers, and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// The status code.
    pub status: u16,
    /// Headers from [`REPLAYED_HEADERS`], in order. Kept as the response had them, so that
    /// storing and replaying a response copies no header.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body.
    pub body: bytes::Bytes,
}

impl StoredResponse {
    /// Bytes the response takes in a store.
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .headers
                .iter()
                .map(|(n, v)| n.as_str().len() + v.len())
                .sum::<usize>()
            + 64
    }
}

/// Headers that are stored and replayed. Never `Set-Cookie` or anything per-request.
pub const REPLAYED_HEADERS: &[&str] = &[
    "content-type",
    "content-language",
    "content-location",
    "location",
    "etag",
    "last-modified",
    "link",
    "vary",
];

/// What a finished request leaves in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// Its response, replayed to retries.
    Response(StoredResponse),
    /// A marker that the handler ran and answered `status`, but its response could not be
    /// kept (a streaming body, a body over `max_stored_response`, or a store that refused
    /// it). Retries are answered with the `idempotency-response-not-replayable` problem,
    /// never with a second run. A marker takes no bytes of a store's response budget, so
    /// recording one never needs room beyond the claim the request already holds.
    NotReplayable {
        /// The status the handler answered.
        status: u16,
    },
}

impl Completion {
    /// Bytes the completion takes in a store's response budget (0 for a marker).
    pub fn size(&self) -> usize {
        match self {
            Completion::Response(response) => response.size(),
            Completion::NotReplayable { .. } => 0,
        }
    }
}

/// What a claim found.
#[derive(Debug, Clone)]
pub enum Claim {
    /// The caller now owns the key and must renew its lease while it works, then complete
    /// or release it.
    Acquired,
    /// Another request with this key and fingerprint is running.
    InFlight,
    /// A request with this key and fingerprint completed; replay its response.
    Completed(Arc<StoredResponse>),
    /// A request with this key and fingerprint completed with `status`, but its response
    /// was not kept ([`Completion::NotReplayable`]).
    NotReplayable {
        /// The status the handler answered.
        status: u16,
    },
    /// The key was used with a different fingerprint.
    Mismatch,
}

/// Where idempotency state lives. The in-memory [`memory::MemoryIdempotencyStore`] is the
/// default; a Redis store implements the same contract.
///
/// # Contract
///
/// A store holds at most one record per [`RecordKey::scope`]: either a *claim* (fingerprint,
/// owner token, lease expiry) or a *completion* (fingerprint, [`Completion`], TTL expiry).
/// Every method is atomic with respect to the others on the same key; the owner checks are
/// compare-and-set (a Redis store does each method in one Lua script on the record, with
/// the claim created by `SET NX PX`).
///
/// - **Take-over only when the owner is gone.** A claim is free for another owner only
///   once its lease has lapsed, that is, when nobody renewed it for `lease_ms`. A running
///   owner renews every third of the lease ([`IdempotencyStore::renew`]), so its claim
///   lapses only if its process crashed or stalled for a whole lease. Time alone never
///   takes a key from a live owner.
/// - **Owner checks.** `renew`, `complete` and `release` change the record only while it is
///   still `owner`'s claim; otherwise they change nothing and answer `Ok(false)`. A store
///   may drop a lapsed claim at any time (Redis does at its `PX` expiry), so after a lapse
///   these may answer either way; an owner that renews on time never sees the difference.
/// - **Completions are final until their TTL.** A completed record answers every claim with
///   the same fingerprint with [`Claim::Completed`] or [`Claim::NotReplayable`] until it
///   expires or a bounded store evicts it; it is never released.
/// - **Bounded, per-client quotas.** Records are counted against their
///   [`RecordKey::client`]. Past a client's quota the store makes room from that client's
///   own oldest completions, or refuses with [`StoreError::Full`]; it never evicts other
///   clients' records for it, and never evicts a running claim. No method scans the store.
/// - **Markers always fit.** `complete` with [`Completion::NotReplayable`] needs no room
///   beyond the claim it replaces, so it fails only when the backend does.
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Claims `key` for `owner` for `lease_ms`, unless it is held, completed or used with
    /// another fingerprint. Expired completions and lapsed leases count as free.
    /// [`StoreError::Full`] when neither the store nor the client's quota has room.
    fn claim(
        &self,
        key: &RecordKey,
        fingerprint: &Digest,
        owner: u128,
        lease_ms: u64,
    ) -> StoreFuture<'_, Result<Claim, StoreError>>;

    /// Extends `owner`'s claim on `key` to `lease_ms` from now (a Redis store: `PEXPIRE`
    /// when the record still holds `owner`). `Ok(false)` when `owner` no longer holds the
    /// claim: it completed, was released, or lapsed and was taken over (nothing changes).
    fn renew(
        &self,
        key: &RecordKey,
        owner: u128,
        lease_ms: u64,
    ) -> StoreFuture<'_, Result<bool, StoreError>>;

    /// Replaces `owner`'s claim with `completion`, kept for `ttl_ms`. `Ok(false)` when
    /// `owner` no longer holds the claim (nothing is written). [`StoreError::Full`] when a
    /// response does not fit in the store's or the client's byte budget; a
    /// [`Completion::NotReplayable`] marker always fits.
    fn complete(
        &self,
        key: &RecordKey,
        owner: u128,
        completion: Completion,
        ttl_ms: u64,
    ) -> StoreFuture<'_, Result<bool, StoreError>>;

    /// Releases `owner`'s claim so that a retry runs again. `Ok(false)` when `owner` no
    /// longer holds it. Only for requests whose handler failed (5xx, 408, 429) or panicked.
    fn release(&self, key: &RecordKey, owner: u128) -> StoreFuture<'_, Result<bool, StoreError>>;

    /// The name of the backend, for the `backend` label of the store metrics
    /// ([`crate::telemetry::metrics`]): `"memory"` for the in-memory store, `"redis"` for the
    /// Redis store, and `"custom"` (the default) for other stores. A fixed name, never
    /// built from configuration: labels must stay bounded.
    fn backend(&self) -> &'static str {
        "custom"
    }

    /// How full the store is, for the gauges of
    /// [`SecureApi::record_store_gauges`](crate::api::SecureApi::record_store_gauges):
    /// counters the store keeps anyway, never a scan (it is read every few seconds while
    /// requests run). `None` (the default, and the Redis stores', whose size Redis itself
    /// reports) when the store does not know it cheaply.
    fn usage(&self) -> Option<StoreUsage> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(
            &*parse_key(br#""8e03978e-40d5""#).unwrap(),
            b"8e03978e-40d5"
        );
        assert_eq!(&*parse_key(b"8e03978e-40d5").unwrap(), b"8e03978e-40d5");
        assert!(parse_key(b"\"\"").is_err());
        assert!(parse_key(&[b'a'; 256]).is_err());
        assert_eq!(&*parse_key(br#""a\"b\\c""#).unwrap(), br#"a"b\c"#);
        // Only a key with escapes to undo is copied.
        use std::borrow::Cow;
        assert!(matches!(
            parse_key(b" token ").unwrap(),
            Cow::Borrowed(b"token")
        ));
        assert!(matches!(
            parse_key(br#""a b""#).unwrap(),
            Cow::Borrowed(b"a b")
        ));
        assert!(matches!(parse_key(br#""a\\b""#).unwrap(), Cow::Owned(_)));
        for bad in [
            &b""[..],
            b"\"",
            b"\"abc",
            b"a b",
            b"a,b",
            b"\"a\tb\"",
            b"\"\\x\"",
            "ü".as_bytes(),
        ] {
            assert!(parse_key(bad).is_err(), "{bad:?}");
        }
        assert!(parse_key(&[b'k'; 255]).is_ok());
        let mut quoted = vec![b'"'];
        quoted.extend([b'k'; 256]);
        quoted.push(b'"');
        assert!(parse_key(&quoted).is_err());
    }

    #[test]
    fn digests_are_unambiguous() {
        assert_ne!(scope("ab", "c", b"k"), scope("a", "bc", b"k"));
        assert_ne!(client_partition("ab"), client_partition("a"));
        assert_ne!(client_partition("a").0, scope("a", "", b"").0);
        assert_ne!(
            fingerprint("POST", "/a", "/a", "", b"application/json", b"{}"),
            fingerprint("POST", "/a", "/a", "", b"application/json", b"{} ")
        );
    }
}
