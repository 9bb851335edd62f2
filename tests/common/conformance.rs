//! The store traits' contracts as generic checks, run against the in-memory stores
//! (`tests/stores.rs`) and the Redis stores (`tests/redis.rs`) alike. They use real time
//! (a Redis store reads the server's clock), with short leases and TTLs, and fresh random
//! keys, so that several runs can share one store.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_rt::time::sleep;
use actix_web::http::header::{self, HeaderValue};
use futures_util::future::join_all;
use secure_api_runtime::auth::jwt::AccessGrant;
use secure_api_runtime::auth::refresh::{Advance, RefreshStore, Session, SessionId};
use secure_api_runtime::auth::revocation::{Revocation, TokenRef};
use secure_api_runtime::idempotency::{
    Claim, Completion, Digest, IdempotencyStore, RecordKey, StoredResponse,
};
use secure_api_runtime::store::StoreError;
use secure_api_runtime::throttle::{Algorithm, LimitKey, Policy, Rate, RateLimitStore};

/// A fresh random number, for keys no other run uses.
pub fn fresh() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

pub fn limit_key() -> LimitKey {
    LimitKey([fresh(), fresh()])
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ---------------------------------------------------------------------------------------
// Rate limits

async fn allowed(store: &dyn RateLimitStore, key: LimitKey, policy: &Policy) -> bool {
    store.acquire(key, policy, 1).await.unwrap().allowed
}

/// GCRA: the burst at once, then denials that change nothing, the `RateLimit` numbers,
/// refill at the rate, and keys that do not share state.
pub async fn limiter_gcra(store: &dyn RateLimitStore) {
    let key = limit_key();
    let policy = Policy::new("p", Rate::per_minute(5));
    for left in (0..5).rev() {
        let d = store.acquire(key, &policy, 1).await.unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining(), left);
        assert!(d.reset_secs() <= 60);
    }
    for _ in 0..3 {
        let d = store.acquire(key, &policy, 1).await.unwrap();
        assert!(!d.allowed, "over the burst");
        assert_eq!(d.remaining(), 0);
        // The next unit comes back one emission interval (12 s) after the first admission.
        assert_eq!(d.retry_after_secs(), 12);
        assert_eq!(d.reset_secs(), 60);
    }
    // Another key is not affected.
    assert!(allowed(store, limit_key(), &policy).await);
    // More than the burst can never pass.
    let d = store.acquire(limit_key(), &policy, 6).await.unwrap();
    assert!(!d.allowed);
    assert_eq!(d.retry_after_ns, u64::MAX);
    // A cost within the burst is charged at once.
    let k = limit_key();
    let d = store.acquire(k, &policy, 3).await.unwrap();
    assert!(d.allowed);
    assert_eq!(d.remaining(), 2);

    // Refill at the rate: 2/s with a burst of 1 allows one more every 500 ms.
    let fast = Policy::new("fast", Rate::per_second(2)).with_burst(1);
    let k = limit_key();
    assert!(allowed(store, k, &fast).await);
    let denied = store.acquire(k, &fast, 1).await.unwrap();
    assert!(!denied.allowed);
    assert!(denied.retry_after_ns <= 500_000_000);
    sleep(Duration::from_millis(520)).await;
    assert!(
        allowed(store, k, &fast).await,
        "refilled after one interval"
    );
}

/// The strict sliding window: exactly `count` in any window, the retry time of the oldest
/// admission, and admissions leaving the window.
pub async fn limiter_window(store: &dyn RateLimitStore) {
    let key = limit_key();
    let policy = Policy::new("w", Rate::per_minute(2)).with_algorithm(Algorithm::SlidingWindow);
    let first = store.acquire(key, &policy, 1).await.unwrap();
    assert!(first.allowed);
    assert_eq!(first.remaining(), 1);
    assert_eq!(first.reset_secs(), 60);
    assert!(store.acquire(key, &policy, 1).await.unwrap().allowed);
    for _ in 0..3 {
        let d = store.acquire(key, &policy, 1).await.unwrap();
        assert!(!d.allowed);
        assert_eq!(d.remaining(), 0);
        assert_eq!(d.retry_after_secs(), 60);
    }
    let d = store.acquire(limit_key(), &policy, 3).await.unwrap();
    assert!(!d.allowed, "more than the count never passes");
    assert_eq!(d.retry_after_ns, u64::MAX);
    assert!(
        store
            .acquire(limit_key(), &policy, 2)
            .await
            .unwrap()
            .allowed
    );

    // Admissions leave the window after its length.
    let short = Policy::new("short", Rate::per_second(2)).with_algorithm(Algorithm::SlidingWindow);
    let k = limit_key();
    assert!(allowed(store, k, &short).await);
    assert!(allowed(store, k, &short).await);
    let denied = store.acquire(k, &short, 1).await.unwrap();
    assert!(!denied.allowed);
    assert!(denied.retry_after_ns <= 1_000_000_000);
    sleep(Duration::from_millis(1_050)).await;
    assert!(allowed(store, k, &short).await);
    assert!(allowed(store, k, &short).await);
    assert!(!allowed(store, k, &short).await);
}

/// Refunds: undo a charge and no more, for both algorithms; nothing for unknown keys.
pub async fn limiter_refunds(store: &dyn RateLimitStore) {
    let gcra = Policy::new("r", Rate::per_minute(3));
    let window = gcra.with_algorithm(Algorithm::SlidingWindow);
    for policy in [gcra, window] {
        let key = limit_key();
        for _ in 0..3 {
            assert!(allowed(store, key, &policy).await);
        }
        assert!(!allowed(store, key, &policy).await);
        store.refund(key, &policy, 1).await.unwrap();
        assert!(allowed(store, key, &policy).await, "{policy:?}");
        assert!(!allowed(store, key, &policy).await);
        // Refunding far more than was charged only empties the record.
        store.refund(key, &policy, 100).await.unwrap();
        for _ in 0..3 {
            assert!(allowed(store, key, &policy).await, "{policy:?}");
        }
        assert!(!allowed(store, key, &policy).await);
        // A key without state is left alone.
        let unknown = limit_key();
        store.refund(unknown, &policy, 1).await.unwrap();
        for _ in 0..3 {
            assert!(allowed(store, unknown, &policy).await);
        }
        assert!(!allowed(store, unknown, &policy).await, "{policy:?}");
    }
}

/// Concurrent acquisitions of one key admit exactly the burst.
pub async fn limiter_concurrent(stores: &[&dyn RateLimitStore]) {
    let key = limit_key();
    let policy = Policy::new("c", Rate::per_minute(10));
    let window = policy.with_algorithm(Algorithm::SlidingWindow);
    for policy in [policy, window] {
        let key = LimitKey([key.0[0], fresh()]);
        let decisions =
            join_all((0..40).map(|i| stores[i % stores.len()].acquire(key, &policy, 1))).await;
        let admitted = decisions
            .into_iter()
            .filter(|d| d.as_ref().unwrap().allowed)
            .count();
        assert_eq!(admitted, 10, "{policy:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Idempotency

/// The per-client quotas a store under test is built with.
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    pub entries: usize,
    pub bytes: usize,
    /// Refuse when full, instead of evicting the client's oldest completions.
    pub reject: bool,
}

impl Default for Quota {
    fn default() -> Self {
        Quota {
            entries: 1_000,
            bytes: 1 << 20,
            reject: false,
        }
    }
}

/// A fresh record key of client `client` (a fresh client for each test run).
pub fn record(client: &str, n: u32) -> RecordKey {
    RecordKey::new(client, "/orders", format!("key-{n}").as_bytes())
}

pub fn fresh_client() -> String {
    format!("principal:{}", fresh())
}

const FP: Digest = Digest([1; 32]);

pub fn response(body: &str) -> Completion {
    Completion::Response(StoredResponse {
        status: 201,
        headers: vec![
            (header::CONTENT_TYPE, HeaderValue::from_static("text/plain")),
            (header::LOCATION, HeaderValue::from_static("/orders/1")),
        ],
        body: body.to_owned().into(),
    })
}

fn sized(n: usize) -> Completion {
    Completion::Response(StoredResponse {
        status: 200,
        headers: vec![],
        body: vec![b'x'; n].into(),
    })
}

async fn acquired(store: &dyn IdempotencyStore, key: &RecordKey, owner: u128) -> bool {
    matches!(
        store.claim(key, &FP, owner, 60_000).await,
        Ok(Claim::Acquired)
    )
}

async fn replays(store: &dyn IdempotencyStore, key: &RecordKey) -> bool {
    matches!(
        store.claim(key, &FP, 999, 60_000).await,
        Ok(Claim::Completed(_))
    )
}

/// Claim, in flight, mismatch, owner checks, completion and replay, release.
pub async fn idempotency_lifecycle(store: &dyn IdempotencyStore) {
    let client = fresh_client();
    let key = record(&client, 1);
    assert!(acquired(store, &key, 1).await);
    assert!(matches!(
        store.claim(&key, &FP, 2, 60_000).await.unwrap(),
        Claim::InFlight
    ));
    assert!(matches!(
        store
            .claim(&key, &Digest([9; 32]), 2, 60_000)
            .await
            .unwrap(),
        Claim::Mismatch
    ));
    assert!(store.renew(&key, 1, 60_000).await.unwrap());
    assert!(
        !store.renew(&key, 2, 60_000).await.unwrap(),
        "not the owner"
    );
    assert!(
        !store
            .complete(&key, 2, response("other"), 60_000)
            .await
            .unwrap()
    );
    assert!(!store.release(&key, 2).await.unwrap());
    assert!(
        store
            .complete(&key, 1, response("first"), 60_000)
            .await
            .unwrap()
    );
    match store.claim(&key, &FP, 3, 60_000).await.unwrap() {
        Claim::Completed(r) => {
            assert_eq!(r.status, 201);
            assert_eq!(r.body, "first");
            assert_eq!(
                r.headers,
                vec![
                    (header::CONTENT_TYPE, HeaderValue::from_static("text/plain")),
                    (header::LOCATION, HeaderValue::from_static("/orders/1")),
                ]
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        store
            .claim(&key, &Digest([9; 32]), 3, 60_000)
            .await
            .unwrap(),
        Claim::Mismatch
    ));
    // A completion is final: no renewal, release or second completion.
    assert!(!store.renew(&key, 1, 60_000).await.unwrap());
    assert!(!store.release(&key, 1).await.unwrap());
    assert!(
        !store
            .complete(&key, 1, response("again"), 60_000)
            .await
            .unwrap()
    );

    // A released claim frees the key, for another fingerprint too.
    let other = record(&client, 2);
    assert!(acquired(store, &other, 1).await);
    assert!(store.release(&other, 1).await.unwrap());
    assert!(matches!(
        store
            .claim(&other, &Digest([9; 32]), 2, 60_000)
            .await
            .unwrap(),
        Claim::Acquired
    ));
    // Another client's key of the same name is another record.
    assert!(acquired(store, &record(&fresh_client(), 1), 1).await);
}

/// A lease nobody renews lapses and is taken over; the stale owner can no longer renew,
/// complete or release; a renewed lease is never taken over; completions expire.
pub async fn idempotency_leases(store: &dyn IdempotencyStore) {
    let client = fresh_client();
    let key = record(&client, 1);
    assert!(matches!(
        store.claim(&key, &FP, 1, 150).await.unwrap(),
        Claim::Acquired
    ));
    sleep(Duration::from_millis(220)).await;
    assert!(matches!(
        store.claim(&key, &FP, 2, 60_000).await.unwrap(),
        Claim::Acquired
    ));
    assert!(!store.renew(&key, 1, 60_000).await.unwrap());
    assert!(
        !store
            .complete(&key, 1, response("stale"), 60_000)
            .await
            .unwrap()
    );
    assert!(!store.release(&key, 1).await.unwrap());
    assert!(
        store
            .complete(&key, 2, response("fresh"), 60_000)
            .await
            .unwrap()
    );
    match store.claim(&key, &FP, 3, 60_000).await.unwrap() {
        Claim::Completed(r) => assert_eq!(r.body, "fresh"),
        other => panic!("{other:?}"),
    }

    // Renewed every 200 ms of a 600 ms lease for 1.2 s: never taken over.
    let held = record(&client, 2);
    assert!(matches!(
        store.claim(&held, &FP, 1, 600).await.unwrap(),
        Claim::Acquired
    ));
    for _ in 0..6 {
        sleep(Duration::from_millis(200)).await;
        assert!(store.renew(&held, 1, 600).await.unwrap());
        assert!(matches!(
            store.claim(&held, &FP, 2, 600).await.unwrap(),
            Claim::InFlight
        ));
    }
    // Renewing never shortens a lease.
    assert!(store.renew(&held, 1, 600).await.unwrap());
    assert!(store.renew(&held, 1, 1).await.unwrap());
    sleep(Duration::from_millis(100)).await;
    assert!(matches!(
        store.claim(&held, &FP, 2, 600).await.unwrap(),
        Claim::InFlight
    ));

    // A completion expires with its TTL.
    let short = record(&client, 3);
    assert!(acquired(store, &short, 1).await);
    assert!(store.complete(&short, 1, response("r"), 150).await.unwrap());
    assert!(replays(store, &short).await);
    sleep(Duration::from_millis(220)).await;
    assert!(matches!(
        store
            .claim(&short, &Digest([9; 32]), 2, 60_000)
            .await
            .unwrap(),
        Claim::Acquired
    ));
}

/// The not-replayable marker: it needs no bytes, answers retries with its status, and is
/// final like a response.
pub async fn idempotency_markers(make: &dyn Fn(Quota) -> Arc<dyn IdempotencyStore>) {
    let store = make(Quota {
        bytes: 0,
        ..Quota::default()
    });
    let key = record(&fresh_client(), 1);
    assert!(acquired(&*store, &key, 1).await);
    assert!(matches!(
        store.complete(&key, 1, response("x"), 60_000).await,
        Err(StoreError::Full)
    ));
    let marker = Completion::NotReplayable { status: 201 };
    assert!(
        store
            .complete(&key, 1, marker.clone(), 60_000)
            .await
            .unwrap()
    );
    assert!(matches!(
        store.claim(&key, &FP, 2, 60_000).await.unwrap(),
        Claim::NotReplayable { status: 201 }
    ));
    assert!(matches!(
        store
            .claim(&key, &Digest([9; 32]), 2, 60_000)
            .await
            .unwrap(),
        Claim::Mismatch
    ));
    assert!(!store.release(&key, 1).await.unwrap());
    assert!(!store.complete(&key, 1, marker, 60_000).await.unwrap());
}

/// Per-client quotas: a client at its record or byte quota loses its own oldest
/// completions (or is refused), never other clients' records, never running claims.
pub async fn idempotency_quotas(make: &dyn Fn(Quota) -> Arc<dyn IdempotencyStore>) {
    // Records, evicting.
    let store = make(Quota {
        entries: 3,
        ..Quota::default()
    });
    let (alice, bob) = (fresh_client(), fresh_client());
    assert!(acquired(&*store, &record(&bob, 0), 1).await);
    assert!(
        store
            .complete(&record(&bob, 0), 1, response("bob"), 60_000)
            .await
            .unwrap()
    );
    for n in 0..10 {
        assert!(acquired(&*store, &record(&alice, n), 1).await, "{n}");
        assert!(
            store
                .complete(&record(&alice, n), 1, response("a"), 60_000)
                .await
                .unwrap()
        );
        sleep(Duration::from_millis(2)).await;
    }
    assert!(
        replays(&*store, &record(&bob, 0)).await,
        "bob's record is untouched"
    );
    for n in 7..10 {
        assert!(
            replays(&*store, &record(&alice, n)).await,
            "alice keeps her newest: {n}"
        );
    }
    assert!(
        !replays(&*store, &record(&alice, 6)).await,
        "her older ones went"
    );

    // Running claims are never evicted.
    let carol = fresh_client();
    for n in 0..3 {
        assert!(acquired(&*store, &record(&carol, n), 1).await);
    }
    assert!(matches!(
        store.claim(&record(&carol, 3), &FP, 1, 60_000).await,
        Err(StoreError::Full)
    ));
    // A released claim makes room again.
    assert!(store.release(&record(&carol, 0), 1).await.unwrap());
    assert!(acquired(&*store, &record(&carol, 3), 1).await);

    // Records, refusing.
    let store = make(Quota {
        entries: 2,
        reject: true,
        ..Quota::default()
    });
    let dave = fresh_client();
    for n in 0..2 {
        assert!(acquired(&*store, &record(&dave, n), 1).await);
        assert!(
            store
                .complete(&record(&dave, n), 1, response("d"), 800)
                .await
                .unwrap()
        );
    }
    assert!(matches!(
        store.claim(&record(&dave, 2), &FP, 1, 60_000).await,
        Err(StoreError::Full)
    ));
    assert!(
        acquired(&*store, &record(&fresh_client(), 2), 1).await,
        "others are served"
    );
    assert!(
        replays(&*store, &record(&dave, 0)).await,
        "his replay windows are kept"
    );
    sleep(Duration::from_millis(900)).await;
    assert!(
        acquired(&*store, &record(&dave, 2), 1).await,
        "once his own expired"
    );

    // Bytes: 364 per response (300 of body, 64 of overhead), 1,000 per client.
    let store = make(Quota {
        bytes: 1_000,
        ..Quota::default()
    });
    let (erin, frank) = (fresh_client(), fresh_client());
    assert!(acquired(&*store, &record(&frank, 0), 1).await);
    assert!(
        store
            .complete(&record(&frank, 0), 1, sized(300), 60_000)
            .await
            .unwrap()
    );
    for n in 0..6 {
        assert!(acquired(&*store, &record(&erin, n), 1).await);
        assert!(
            store
                .complete(&record(&erin, n), 1, sized(300), 60_000)
                .await
                .unwrap()
        );
        sleep(Duration::from_millis(2)).await;
    }
    assert!(replays(&*store, &record(&frank, 0)).await);
    assert!(replays(&*store, &record(&erin, 5)).await);
    assert!(replays(&*store, &record(&erin, 4)).await);
    assert!(
        !replays(&*store, &record(&erin, 3)).await,
        "two fit in 1,000 bytes"
    );
    // A response that can never fit is refused without evicting anything for it.
    assert!(acquired(&*store, &record(&erin, 9), 1).await);
    assert!(matches!(
        store
            .complete(&record(&erin, 9), 1, sized(2_000), 60_000)
            .await,
        Err(StoreError::Full)
    ));
    assert!(replays(&*store, &record(&erin, 5)).await);
    assert!(replays(&*store, &record(&erin, 4)).await);
    // The claim is still the owner's: it can complete with a marker.
    let marker = Completion::NotReplayable { status: 200 };
    assert!(
        store
            .complete(&record(&erin, 9), 1, marker, 60_000)
            .await
            .unwrap()
    );
}

/// Concurrent claims of one key, spread over `stores`: exactly one is acquired, every
/// other is in flight; after completion every store replays it.
pub async fn idempotency_one_winner(stores: &[&dyn IdempotencyStore], claims: usize) {
    let key = record(&fresh_client(), 1);
    let answers = join_all(
        (0..claims).map(|i| stores[i % stores.len()].claim(&key, &FP, 1_000 + i as u128, 60_000)),
    )
    .await;
    let mut winners = Vec::new();
    for (i, answer) in answers.into_iter().enumerate() {
        match answer.unwrap() {
            Claim::Acquired => winners.push(1_000 + i as u128),
            Claim::InFlight => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claim wins");
    let winner = winners[0];
    let owner_store = stores[(winner - 1_000) as usize % stores.len()];
    assert!(
        owner_store
            .complete(&key, winner, response("once"), 60_000)
            .await
            .unwrap()
    );
    for store in stores {
        match store.claim(&key, &FP, 7, 60_000).await.unwrap() {
            Claim::Completed(r) => assert_eq!(r.body, "once"),
            other => panic!("{other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Refresh sessions

pub fn session(subject: &str, now: u64) -> Session {
    Session {
        id: SessionId::random(),
        grant: AccessGrant::new(subject).roles(["user"]).tier("premium"),
        generation: 0,
        token_hash: [0x11; 32],
        credentials_version: 4,
        started_at: now,
        expires_at: now + 600,
        absolute_expires_at: now + 3_600,
    }
}

fn advance_to(subject: &str, hash: u8, expires_at: u64) -> Advance {
    Advance {
        token_hash: [hash; 32],
        grant: AccessGrant::new(subject).roles(["admin"]),
        expires_at,
    }
}

/// Create, get, rotation by compare-and-set, lifetimes, removal.
pub async fn refresh_lifecycle(store: &dyn RefreshStore) {
    let now = unix_now();
    let s = session(&format!("user-{}", fresh()), now);
    let subject = s.grant.subject.clone();
    store.create(s.clone(), now).await.unwrap();
    assert_eq!(store.get(s.id, now).await.unwrap(), Some(s.clone()));
    assert_eq!(store.get(SessionId::random(), now).await.unwrap(), None);

    // Only the current generation and token hash, of the session's subject, advance it.
    let next = advance_to(&subject, 7, now + 700);
    assert!(
        !store
            .advance(s.id, 1, s.token_hash, next.clone(), now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .advance(s.id, 0, [0xee; 32], next.clone(), now)
            .await
            .unwrap()
    );
    let mut other = next.clone();
    other.grant.subject = "mallory".into();
    assert!(
        !store
            .advance(s.id, 0, s.token_hash, other, now)
            .await
            .unwrap()
    );
    assert!(
        store
            .advance(s.id, 0, s.token_hash, next.clone(), now)
            .await
            .unwrap()
    );
    // Spent: the same rotation again fails.
    assert!(
        !store
            .advance(s.id, 0, s.token_hash, next.clone(), now)
            .await
            .unwrap()
    );
    let rotated = store.get(s.id, now).await.unwrap().unwrap();
    assert_eq!(rotated.generation, 1);
    assert_eq!(rotated.token_hash, [7; 32]);
    assert_eq!(rotated.grant.roles, ["admin"]);
    assert_eq!(rotated.expires_at, now + 700);
    assert_eq!(rotated.absolute_expires_at, s.absolute_expires_at);
    assert_eq!(rotated.started_at, s.started_at);
    assert_eq!(rotated.credentials_version, 4);
    // Never past the absolute end.
    assert!(
        store
            .advance(s.id, 1, [7; 32], advance_to(&subject, 8, now + 99_999), now)
            .await
            .unwrap()
    );
    assert_eq!(
        store.get(s.id, now).await.unwrap().unwrap().expires_at,
        s.absolute_expires_at
    );

    assert!(store.remove(s.id).await.unwrap());
    assert!(!store.remove(s.id).await.unwrap());
    assert_eq!(store.get(s.id, now).await.unwrap(), None);
    assert_eq!(store.remove_subject(&subject).await.unwrap(), 0);

    // A session is gone at its idle end: it can be neither read nor rotated. (Last, since
    // a store may drop sessions that ended at the `now` it is given.)
    let s = session(&subject, now);
    store.create(s.clone(), now).await.unwrap();
    assert!(store.get(s.id, now + 599).await.unwrap().is_some());
    assert_eq!(store.get(s.id, now + 600).await.unwrap(), None);
    let next = advance_to(&subject, 7, now + 1_200);
    assert!(
        !store
            .advance(s.id, 0, s.token_hash, next, now + 600)
            .await
            .unwrap()
    );
}

/// Revoke-by-subject ends exactly the subject's sessions; a subject's sessions are bounded
/// (`max` per subject), its oldest going first.
pub async fn refresh_subjects(store: &dyn RefreshStore, max_per_subject: usize) {
    let now = unix_now();
    let (bob, carol) = (format!("bob-{}", fresh()), format!("carol-{}", fresh()));
    let bobs: Vec<Session> = (0..3).map(|i| session(&bob, now + i)).collect();
    for s in &bobs {
        store.create(s.clone(), now).await.unwrap();
    }
    let c = session(&carol, now);
    store.create(c.clone(), now).await.unwrap();
    assert_eq!(store.remove_subject(&bob).await.unwrap(), 3);
    for s in &bobs {
        assert_eq!(store.get(s.id, now).await.unwrap(), None);
    }
    assert!(store.get(c.id, now).await.unwrap().is_some());
    assert_eq!(store.remove_subject(&bob).await.unwrap(), 0);

    let dave = format!("dave-{}", fresh());
    let daves: Vec<Session> = (0..max_per_subject as u64 + 1)
        .map(|i| session(&dave, now + i))
        .collect();
    for s in &daves {
        store.create(s.clone(), now).await.unwrap();
    }
    assert_eq!(
        store.get(daves[0].id, now).await.unwrap(),
        None,
        "the oldest went"
    );
    for s in &daves[1..] {
        assert!(store.get(s.id, now).await.unwrap().is_some());
    }
    assert_eq!(store.remove_subject(&dave).await.unwrap(), max_per_subject);
}

/// Concurrent rotations with one token, spread over `stores`: exactly one succeeds.
pub async fn refresh_one_winner(stores: &[&dyn RefreshStore]) {
    let now = unix_now();
    let s = session(&format!("racer-{}", fresh()), now);
    stores[0].create(s.clone(), now).await.unwrap();
    let next = advance_to(&s.grant.subject, 3, now + 900);
    let answers = join_all(
        (0..16).map(|i| stores[i % stores.len()].advance(s.id, 0, s.token_hash, next.clone(), now)),
    )
    .await;
    let won = answers.into_iter().filter(|a| *a.as_ref().unwrap()).count();
    assert_eq!(won, 1);
}

// ---------------------------------------------------------------------------------------
// Revocation

fn token<'a>(jti: &'a str, subject: &'a str, sid: Option<&'a str>, iat: u64) -> TokenRef<'a> {
    TokenRef {
        token_id: jti,
        subject,
        session_id: sid,
        issued_at: iat,
    }
}

/// Each kind matches until its end and no longer; subjects by issue time; revoking again
/// never shortens an entry; ended entries are not kept.
pub async fn revocation_kinds(store: &dyn Revocation) {
    let base = unix_now();
    let f = fresh();
    let (j1, j2, s1, s2) = (
        format!("j1-{f}"),
        format!("j2-{f}"),
        format!("s1-{f}"),
        format!("s2-{f}"),
    );
    let (alice, carol) = (format!("alice-{f}"), format!("carol-{f}"));
    let revoked = |t: TokenRef<'_>, now: u64| store.is_revoked(t, now);

    let t = token(&j1, &alice, Some(&s1), base);
    assert!(!revoked(t, base).await.unwrap());
    store.revoke_token(&j1, base + 100, base).await.unwrap();
    assert!(
        revoked(t, base + 100).await.unwrap(),
        "kept through its last second"
    );
    assert!(!revoked(t, base + 101).await.unwrap());
    assert!(!revoked(token(&j2, &alice, None, base), base).await.unwrap());

    store.revoke_session(&s1, base + 200, base).await.unwrap();
    assert!(
        revoked(token(&j2, &alice, Some(&s1), base), base + 200)
            .await
            .unwrap()
    );
    assert!(
        !revoked(token(&j2, &alice, Some(&s2), base), base + 150)
            .await
            .unwrap()
    );
    assert!(
        !revoked(token(&j2, &alice, None, base), base + 150)
            .await
            .unwrap()
    );

    store
        .revoke_subject(&carol, base + 50, base + 300, base + 50)
        .await
        .unwrap();
    let c = |iat| token(&j2, &carol, None, iat);
    assert!(
        revoked(c(base + 50), base + 60).await.unwrap(),
        "same second: refused"
    );
    assert!(revoked(c(base + 20), base + 300).await.unwrap());
    assert!(!revoked(c(base + 51), base + 60).await.unwrap());
    assert!(!revoked(c(base + 20), base + 301).await.unwrap());
    // A second revocation moves the moment forward, never back, and never shortens it.
    store
        .revoke_subject(&carol, base + 70, base + 320, base + 70)
        .await
        .unwrap();
    assert!(revoked(c(base + 60), base + 310).await.unwrap());
    store
        .revoke_subject(&carol, base + 10, base + 100, base + 80)
        .await
        .unwrap();
    assert!(revoked(c(base + 60), base + 310).await.unwrap());

    // Re-revoking with an earlier end keeps the later one.
    store.revoke_session(&s2, base + 150, base).await.unwrap();
    store
        .revoke_session(&s2, base + 110, base + 100)
        .await
        .unwrap();
    assert!(
        revoked(token(&j2, &alice, Some(&s2), base), base + 140)
            .await
            .unwrap()
    );

    // An entry that already ended is not stored.
    let j3 = format!("j3-{f}");
    store.revoke_token(&j3, base - 1, base).await.unwrap();
    assert!(
        !revoked(token(&j3, &alice, None, base), base - 1)
            .await
            .unwrap()
    );
}
