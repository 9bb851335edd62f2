//! Security telemetry of the code handlers call: the audit events of the token service
//! (refresh-token reuse, refused refreshes, logout, revoke-by-subject, session-store
//! failures), of the login guard (wrong passwords, the per-account limit, rate-limit store
//! failures) and of `JwtAuth`'s revocations. Each decision is one event, with the error id
//! of the refusal, and no event or log line carries a token, a refresh token, a password
//! or a username.
//!
//! The events are raised here outside any endpoint request, so they go to the app named by
//! `TokenService::audit_to` / `LoginGuard::new`, with no endpoint, client or principal.

mod common;

use common::Capture;

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/users_api.rs"]
mod users_api;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use secure_api_runtime::SecureApi;
use secure_api_runtime::auth::jwt::{AccessGrant, JwtAuth};
use secure_api_runtime::auth::login::LoginGuard;
use secure_api_runtime::auth::password::Passwords;
use secure_api_runtime::auth::refresh::{
    AccountCheck, AccountStatus, Advance, MemoryRefreshStore, RefreshStore, Session, SessionId,
    SessionInfo, TokenPair, TokenService,
};
use secure_api_runtime::auth::revocation::RevokedTokens;
use secure_api_runtime::problem::ApiError;
use secure_api_runtime::store::{StoreError, StoreFuture};
use secure_api_runtime::telemetry::audit::{
    AuditDetail, AuditEvent, AuthFailureClass, LogSink, RevokedScope, StoreKind, StoreOutcome,
};
use secure_api_runtime::throttle::{Decision, LimitKey, Policy, RateLimitStore};

/// An app with a capturing sink and metrics counted by a recorder of its own.
struct App {
    api: SecureApi,
    jwt: JwtAuth,
    sink: Arc<Capture>,
    metrics: Snapshotter,
    totals: Mutex<HashMap<String, u64>>,
}

fn app() -> App {
    app_with(|b| b)
}

fn app_with(
    configure: impl FnOnce(
        secure_api_runtime::api::SecureApiBuilder,
    ) -> secure_api_runtime::api::SecureApiBuilder,
) -> App {
    let jwt = JwtAuth::hs256(vec![7u8; 32])
        .issuer("i")
        .audience("a")
        .revocation(Arc::new(RevokedTokens::new()))
        .build()
        .unwrap();
    let sink = Arc::new(Capture::default());
    let recorder = DebuggingRecorder::new();
    let metrics = recorder.snapshotter();
    // The handles are registered at build with the recorder current then.
    let api = metrics::with_local_recorder(&recorder, || {
        configure(
            SecureApi::builder()
                .jwt(jwt.clone())
                .audit_sink(sink.clone())
                .metrics(true)
                .log_inventory(false),
        )
        .build()
    });
    App {
        api,
        jwt,
        sink,
        metrics,
        totals: Mutex::default(),
    }
}

impl App {
    fn tokens(&self, store: impl RefreshStore) -> TokenService {
        self.tokens_checking(store, everyone)
    }

    fn tokens_checking(
        &self,
        store: impl RefreshStore,
        accounts: impl AccountCheck,
    ) -> TokenService {
        TokenService::new(self.jwt.clone(), Arc::new(store), Arc::new(accounts))
            .refresh_key([5u8; 32])
            .unwrap()
            .telemetry(&self.api)
    }

    /// The value of counter `name` with exactly `labels`. (A snapshot of the debugging
    /// recorder resets its counters: the totals are kept here.)
    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        fn id(name: &str, labels: &mut [(String, String)]) -> String {
            labels.sort_unstable();
            format!("{name}{labels:?}")
        }
        let mut totals = self.totals.lock().unwrap();
        for (key, _, _, value) in self.metrics.snapshot().into_vec() {
            let key = key.key();
            let mut have: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            if let DebugValue::Counter(n) = value {
                *totals.entry(id(key.name(), &mut have)).or_default() += n;
            }
        }
        let mut want: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        totals.get(&id(name, &mut want)).copied().unwrap_or(0)
    }
}

fn everyone(session: &SessionInfo) -> AccountStatus {
    AccountStatus::Active(AccessGrant::new(&session.subject))
}

fn run<T>(f: impl Future<Output = T>) -> T {
    f.now_or_never().expect("in-memory stores answer at once")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The session of an access token, as events name it (32 hex digits).
fn family(jwt: &JwtAuth, pair: &TokenPair) -> String {
    let sid: SessionId = run(jwt.verify(&pair.access_token))
        .unwrap()
        .session_id
        .unwrap()
        .parse()
        .unwrap();
    hex(&sid.0)
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest as _;
    hex(&sha2::Sha256::digest(s.as_bytes()))
}

/// Asserts that no event, as written by `Debug`, contains any of `secrets` (nor, for
/// tokens, their SHA-256).
fn assert_no_secret(events: &[AuditEvent], secrets: &[&str]) {
    let text = format!("{events:?}");
    for secret in secrets {
        assert!(!secret.is_empty());
        assert!(
            !text.contains(secret),
            "an event carries {secret:?}: {text}"
        );
        assert!(
            !text.contains(&sha256_hex(secret)),
            "an event carries a hash of {secret:?}"
        );
    }
}

fn status(err: &ApiError) -> u16 {
    err.problem().status()
}

const FAILED_CLOSED: &str = "failed_closed";

#[test]
fn an_older_refresh_token_presented_again_is_one_refresh_reuse_event() {
    let app = app();
    let tokens = app.tokens(MemoryRefreshStore::new());
    let first = run(tokens.login(AccessGrant::new("alice"))).unwrap();
    let second = run(tokens.refresh(&first.refresh_token)).unwrap();
    assert!(
        app.sink.take().is_empty(),
        "logins and refreshes are not events"
    );
    let family = family(&app.jwt, &second);

    let err = run(tokens.refresh(&first.refresh_token)).unwrap_err();
    assert_eq!(status(&err), 401);
    let event = app.sink.one();
    assert_eq!(
        event.detail,
        AuditDetail::RefreshReuse {
            subject: "alice".into(),
            family: family.clone(),
            concurrent: false,
        }
    );
    assert_eq!(event.error_id, Some(err.id()), "the id of the 401 returned");
    assert_eq!(event.endpoint, None, "outside a request");
    assert_eq!(event.client, None);
    assert_eq!(family.len(), 32);
    let reused = event;

    // The session ended: its newest token is now a refused refresh, not another reuse.
    let err = run(tokens.refresh(&second.refresh_token)).unwrap_err();
    let event = app.sink.one();
    assert_eq!(
        event.detail,
        AuditDetail::AuthFailed {
            class: AuthFailureClass::RefreshInvalid
        }
    );
    assert_eq!(event.error_id, Some(err.id()));

    let reuse = [("event", "refresh_reuse")];
    assert_eq!(app.counter("secure_api_audit_events_total", &reuse), 1);
    let failed = [("event", "auth_failed")];
    assert_eq!(app.counter("secure_api_audit_events_total", &failed), 1);
    assert_no_secret(
        &[reused, event],
        &[
            &first.refresh_token,
            &second.refresh_token,
            &second.access_token,
        ],
    );
}

/// A session store whose `advance` always finds the session spent, as when a concurrent
/// refresh of the same token won the race.
struct Racing(MemoryRefreshStore);

impl RefreshStore for Racing {
    fn create(&self, session: Session, now: u64) -> StoreFuture<'_, Result<(), StoreError>> {
        self.0.create(session, now)
    }
    fn get(&self, id: SessionId, now: u64) -> StoreFuture<'_, Result<Option<Session>, StoreError>> {
        self.0.get(id, now)
    }
    fn advance(
        &self,
        _: SessionId,
        _: u64,
        _: [u8; 32],
        _: Advance,
        _: u64,
    ) -> StoreFuture<'_, Result<bool, StoreError>> {
        StoreFuture::ready(Ok(false))
    }
    fn remove(&self, id: SessionId) -> StoreFuture<'_, Result<bool, StoreError>> {
        self.0.remove(id)
    }
    fn remove_subject(&self, subject: &str) -> StoreFuture<'_, Result<usize, StoreError>> {
        self.0.remove_subject(subject)
    }
}

#[test]
fn a_refresh_token_used_twice_at_once_is_a_concurrent_refresh_reuse() {
    let app = app();
    let tokens = app.tokens(Racing(MemoryRefreshStore::new()));
    let pair = run(tokens.login(AccessGrant::new("bob"))).unwrap();
    let session = family(&app.jwt, &pair);
    let err = run(tokens.refresh(&pair.refresh_token)).unwrap_err();
    assert_eq!(status(&err), 401);
    let events = app.sink.take();
    assert_no_secret(&events, &[&pair.refresh_token, &pair.access_token]);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(
        events[0].detail,
        AuditDetail::RefreshReuse {
            subject: "bob".into(),
            family: session,
            concurrent: true,
        }
    );
    assert_eq!(events[0].error_id, Some(err.id()));
    // The session and its access tokens ended.
    assert!(run(app.jwt.verify(&pair.access_token)).is_err());
}

#[test]
fn every_refused_refresh_token_is_one_auth_failed_event() {
    let app = app();
    let tokens = app.tokens(MemoryRefreshStore::new());
    let pair = run(tokens.login(AccessGrant::new("carol"))).unwrap();
    // Another service's token (another key), garbage, and a token of a session that ended.
    let other = TokenService::new(
        app.jwt.clone(),
        Arc::new(MemoryRefreshStore::new()),
        Arc::new(everyone),
    )
    .telemetry(&app.api);
    let foreign = run(other.login(AccessGrant::new("carol"))).unwrap();
    app.sink.take();
    let ended = run(tokens.login(AccessGrant::new("dave"))).unwrap();
    run(tokens.revoke_subject("dave")).unwrap();
    app.sink.take();

    let presented = [
        foreign.refresh_token.clone(),
        "A".repeat(76),
        "not a token".to_owned(),
        ended.refresh_token.clone(),
    ];
    let mut all = Vec::new();
    for token in &presented {
        let err = run(tokens.refresh(token)).unwrap_err();
        assert_eq!(status(&err), 401);
        let event = app.sink.one();
        assert_eq!(
            event.detail,
            AuditDetail::AuthFailed {
                class: AuthFailureClass::RefreshInvalid
            },
            "{token}"
        );
        assert_eq!(event.error_id, Some(err.id()));
        all.push(event);
    }
    let secrets: Vec<&str> = presented
        .iter()
        .map(String::as_str)
        .chain([pair.refresh_token.as_str(), pair.access_token.as_str()])
        .collect();
    assert_no_secret(&all, &secrets);
    // The live session was not touched.
    assert!(run(tokens.refresh(&pair.refresh_token)).is_ok());
    assert!(app.sink.take().is_empty());

    // An account check that refuses ends the session: a refused refresh too.
    let gone = TokenService::new(
        app.jwt.clone(),
        Arc::new(MemoryRefreshStore::new()),
        Arc::new(|_: &SessionInfo| AccountStatus::Gone),
    )
    .telemetry(&app.api);
    let pair = run(gone.login(AccessGrant::new("erin"))).unwrap();
    let err = run(gone.refresh(&pair.refresh_token)).unwrap_err();
    let event = app.sink.one();
    assert_eq!(
        event.detail,
        AuditDetail::AuthFailed {
            class: AuthFailureClass::RefreshInvalid
        }
    );
    assert_eq!(event.error_id, Some(err.id()));
}

#[test]
fn a_logout_is_one_revoked_session_event_and_revoke_subject_one_revoked_subject() {
    let app = app();
    let tokens = app.tokens(MemoryRefreshStore::new());
    let pair = run(tokens.login(AccessGrant::new("alice"))).unwrap();
    let session = family(&app.jwt, &pair);
    let principal = run(app.jwt.verify(&pair.access_token)).unwrap();
    run(tokens.logout(&principal)).unwrap();
    // One event, although the session store and the revocation store were both written.
    let events = app.sink.take();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(
        events[0].detail,
        AuditDetail::Revoked {
            scope: RevokedScope::Session,
            subject: Some("alice".into()),
            session: Some(session),
        }
    );
    assert_eq!(events[0].error_id, None, "not a refusal");
    assert_no_secret(&events, &[&pair.refresh_token, &pair.access_token]);

    // A token outside any session is revoked by its id: scope token.
    let plain = app.jwt.issue(&AccessGrant::new("bob")).unwrap();
    run(tokens.logout(&run(app.jwt.verify(&plain)).unwrap())).unwrap();
    let event = app.sink.one();
    assert_eq!(
        event.detail,
        AuditDetail::Revoked {
            scope: RevokedScope::Token,
            subject: Some("bob".into()),
            session: None,
        }
    );
    assert_no_secret(&[event], &[&plain]);

    let sessions: Vec<TokenPair> = (0..3)
        .map(|_| run(tokens.login(AccessGrant::new("carol"))).unwrap())
        .collect();
    assert_eq!(run(tokens.revoke_subject("carol")).unwrap(), 3);
    let event = app.sink.one();
    assert_eq!(
        event.detail,
        AuditDetail::Revoked {
            scope: RevokedScope::Subject,
            subject: Some("carol".into()),
            session: None,
        }
    );
    let secrets: Vec<&str> = sessions
        .iter()
        .flat_map(|p| [p.access_token.as_str(), p.refresh_token.as_str()])
        .collect();
    assert_no_secret(&[event], &secrets);
    let revoked = [("event", "revoked")];
    assert_eq!(app.counter("secure_api_audit_events_total", &revoked), 3);
}

/// A session store that cannot answer: full for new sessions, unreachable for reads.
struct Down;

impl RefreshStore for Down {
    fn create(&self, _: Session, _: u64) -> StoreFuture<'_, Result<(), StoreError>> {
        StoreFuture::ready(Err(StoreError::Full))
    }
    fn get(&self, _: SessionId, _: u64) -> StoreFuture<'_, Result<Option<Session>, StoreError>> {
        StoreFuture::ready(Err(StoreError::Backend("connection refused".into())))
    }
    fn advance(
        &self,
        _: SessionId,
        _: u64,
        _: [u8; 32],
        _: Advance,
        _: u64,
    ) -> StoreFuture<'_, Result<bool, StoreError>> {
        StoreFuture::ready(Err(StoreError::Backend("connection refused".into())))
    }
    fn remove(&self, _: SessionId) -> StoreFuture<'_, Result<bool, StoreError>> {
        StoreFuture::ready(Err(StoreError::Backend("connection refused".into())))
    }
    fn remove_subject(&self, _: &str) -> StoreFuture<'_, Result<usize, StoreError>> {
        StoreFuture::ready(Err(StoreError::Backend("connection refused".into())))
    }
}

#[test]
fn a_session_store_that_cannot_answer_is_one_store_failure_event_and_counted() {
    let app = app();
    let down = app.tokens(Down);
    let err = run(down.login(AccessGrant::new("alice"))).unwrap_err();
    assert_eq!(status(&err), 503);
    let event = app.sink.one();
    assert_eq!(
        event.detail,
        AuditDetail::StoreFailure {
            store: StoreKind::Sessions,
            outcome: StoreOutcome::FailedClosed,
            error: "full",
        }
    );
    assert_eq!(event.error_id, Some(err.id()));

    // A genuine token (same key), the store unreachable.
    let up = app.tokens(MemoryRefreshStore::new());
    let pair = run(up.login(AccessGrant::new("alice"))).unwrap();
    let err = run(down.refresh(&pair.refresh_token)).unwrap_err();
    assert_eq!(status(&err), 503);
    let event = app.sink.one();
    assert_eq!(
        event.detail,
        AuditDetail::StoreFailure {
            store: StoreKind::Sessions,
            outcome: StoreOutcome::FailedClosed,
            error: "backend",
        }
    );
    assert_eq!(event.error_id, Some(err.id()));
    assert_no_secret(&[event], &[&pair.refresh_token, &pair.access_token]);

    let err = run(down.revoke_subject("alice")).unwrap_err();
    assert_eq!(app.sink.one().error_id, Some(err.id()), "no revoked event");

    let sessions = [("store", "sessions"), ("outcome", FAILED_CLOSED)];
    assert_eq!(app.counter("secure_api_store_failures_total", &sessions), 3);
    let failures = [("event", "store_failure")];
    assert_eq!(app.counter("secure_api_audit_events_total", &failures), 3);
}

#[test]
fn a_revocation_store_that_cannot_answer_fails_the_logout_as_a_revocation_store_failure() {
    let jwt = JwtAuth::hs256(vec![7u8; 32])
        .issuer("i")
        .audience("a")
        .revocation(Arc::new(RevokedTokens::new().max_entries(1)))
        .build()
        .unwrap();
    let app = app_with(|b| b);
    let tokens = TokenService::new(
        jwt.clone(),
        Arc::new(MemoryRefreshStore::new()),
        Arc::new(everyone),
    )
    .telemetry(&app.api);
    let first = run(tokens.login(AccessGrant::new("alice"))).unwrap();
    let second = run(tokens.login(AccessGrant::new("alice"))).unwrap();
    run(tokens.logout(&run(jwt.verify(&first.access_token)).unwrap())).unwrap();
    assert!(matches!(
        app.sink.one().detail,
        AuditDetail::Revoked {
            scope: RevokedScope::Session,
            ..
        }
    ));
    // Full: the second logout is refused, and it is a store failure, not a revocation.
    let err = run(tokens.logout(&run(jwt.verify(&second.access_token)).unwrap())).unwrap_err();
    assert_eq!(status(&err), 503);
    let event = app.sink.one();
    assert_eq!(
        event.detail,
        AuditDetail::StoreFailure {
            store: StoreKind::Revocation,
            outcome: StoreOutcome::FailedClosed,
            error: "full",
        }
    );
    assert_eq!(event.error_id, Some(err.id()));
    let revocation = [("store", "revocation"), ("outcome", FAILED_CLOSED)];
    assert_eq!(
        app.counter("secure_api_store_failures_total", &revocation),
        1
    );
}

const PASSWORD: &str = "correct horse battery staple";

fn cheap() -> Passwords {
    Passwords::with_params(1024, 1, 1).unwrap()
}

#[actix_rt::test]
async fn login_failures_and_the_account_limit_are_events_without_the_name_or_password() {
    let app = app();
    let guard = LoginGuard::new(&app.api, cheap());
    let stored = guard.passwords().hash(PASSWORD).unwrap();
    let mut events = Vec::new();

    // A right password: no event.
    guard
        .verify("Mallory", Some(&stored), PASSWORD)
        .await
        .unwrap();
    assert!(app.sink.take().is_empty());

    // Ten wrong passwords (one for an unknown spelling of the same account): one
    // `auth_failed` each.
    for i in 0..10 {
        let (name, guess) = if i == 9 {
            (" MALLORY ", "guess-nine")
        } else {
            ("Mallory", "guess")
        };
        let err = guard.verify(name, Some(&stored), guess).await.unwrap_err();
        assert_eq!(status(&err), 401);
        let event = app.sink.one();
        assert_eq!(
            event.detail,
            AuditDetail::AuthFailed {
                class: AuthFailureClass::WrongPassword
            }
        );
        assert_eq!(event.error_id, Some(err.id()));
        events.push(event);
    }
    // The budget is spent: `login_limited`, naming the account by a digest.
    let err = guard
        .verify("mallory", Some(&stored), PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(status(&err), 429);
    let event = app.sink.one();
    let AuditDetail::LoginLimited { account } = &event.detail else {
        panic!("{event:?}");
    };
    assert_eq!(account.len(), 32);
    assert!(
        account
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(event.error_id, Some(err.id()));
    events.push(event.clone());
    // The same account under another spelling: the same digest.
    let err = guard.verify("ＭＡＬＬＯＲＹ", None, "x").await.unwrap_err();
    let again = app.sink.one();
    assert_eq!(again.detail, event.detail);
    assert_eq!(again.error_id, Some(err.id()));
    // Another account: another digest; an unknown user's wrong password is the same class.
    let err = guard.verify("trent", None, "guess").await.unwrap_err();
    assert_eq!(status(&err), 401);
    let trent = app.sink.one();
    assert_eq!(
        trent.detail,
        AuditDetail::AuthFailed {
            class: AuthFailureClass::WrongPassword
        }
    );
    events.push(trent);

    assert_no_secret(
        &events,
        &[
            "mallory", "Mallory", "MALLORY", "trent", PASSWORD, "guess", &stored,
        ],
    );
    let limited = [("event", "login_limited")];
    assert_eq!(app.counter("secure_api_audit_events_total", &limited), 2);
    let failed = [("event", "auth_failed")];
    assert_eq!(app.counter("secure_api_audit_events_total", &failed), 11);
}

/// A rate-limit store that cannot answer.
struct Unreachable(AtomicBool);

impl RateLimitStore for Unreachable {
    fn acquire(
        &self,
        _: LimitKey,
        _: &Policy,
        _: u32,
    ) -> StoreFuture<'_, Result<Decision, StoreError>> {
        self.0.store(true, Ordering::SeqCst);
        StoreFuture::ready(Err(StoreError::Backend("timed out".into())))
    }
    fn refund(&self, _: LimitKey, _: &Policy, _: u32) -> StoreFuture<'_, Result<(), StoreError>> {
        StoreFuture::ready(Err(StoreError::Backend("timed out".into())))
    }
}

#[actix_rt::test]
async fn a_rate_limit_store_that_cannot_answer_fails_the_login_closed_as_one_event() {
    let store = Arc::new(Unreachable(AtomicBool::new(false)));
    let app = app_with(|b| b.rate_limit_store(store.clone()));
    let guard = LoginGuard::new(&app.api, cheap());
    let hashes = guard.passwords().hash_operations();
    let err = guard.verify("alice", None, PASSWORD).await.unwrap_err();
    assert_eq!(status(&err), 503);
    assert!(store.0.load(Ordering::SeqCst));
    assert_eq!(
        guard.passwords().hash_operations(),
        hashes,
        "no hash computed"
    );
    let event = app.sink.one();
    assert_eq!(
        event.detail,
        AuditDetail::StoreFailure {
            store: StoreKind::RateLimit,
            outcome: StoreOutcome::FailedClosed,
            error: "backend",
        }
    );
    assert_eq!(event.error_id, Some(err.id()));
    assert_no_secret(&[event], &["alice", PASSWORD]);
    let labels = [("store", "rate_limit"), ("outcome", FAILED_CLOSED)];
    assert_eq!(app.counter("secure_api_store_failures_total", &labels), 1);
}

/// Outside a request, a `JwtAuth` revocation is audited by the app built with the verifier,
/// while that app lives; the app is not kept alive by it.
#[test]
fn a_revocation_outside_a_request_goes_to_the_app_built_with_the_verifier() {
    let app = app();
    let clone = app.jwt.clone();
    run(clone.revoke_subject("mallory")).unwrap();
    let event = app.sink.one();
    assert_eq!(
        event.detail,
        AuditDetail::Revoked {
            scope: RevokedScope::Subject,
            subject: Some("mallory".to_owned()),
            session: None,
        }
    );
    assert_eq!((event.endpoint, event.client), (None, None));
    let revoked = [("event", "revoked")];
    assert_eq!(app.counter("secure_api_audit_events_total", &revoked), 1);

    // A second app built with the same verifier does not take its events over.
    let other = app_with(|b| b.jwt(clone.clone()));
    run(clone.revoke_token("t-1", 4_000_000_000)).unwrap();
    assert_eq!(app.sink.take().len(), 1);
    assert!(other.sink.take().is_empty());

    // Once the app is gone, revoking still works and its sink hears nothing more.
    let App { api, sink, .. } = app;
    drop(api);
    run(clone.revoke_subject("mallory")).unwrap();
    assert!(sink.take().is_empty());
}

/// A rate-limit store that admits every attempt but cannot take a unit back.
struct NoRefund;

impl RateLimitStore for NoRefund {
    fn acquire(
        &self,
        _: LimitKey,
        _: &Policy,
        _: u32,
    ) -> StoreFuture<'_, Result<Decision, StoreError>> {
        StoreFuture::ready(Ok(Decision::new(true, 5, 1, 0, 0)))
    }
    fn refund(&self, _: LimitKey, _: &Policy, _: u32) -> StoreFuture<'_, Result<(), StoreError>> {
        StoreFuture::ready(Err(StoreError::Backend("timed out".into())))
    }
}

#[actix_rt::test]
async fn a_refund_the_rate_limit_store_cannot_make_is_an_unaffected_store_failure() {
    let app = app_with(|b| b.rate_limit_store(Arc::new(NoRefund)));
    let guard = LoginGuard::new(&app.api, cheap());
    let stored = guard.passwords().hash(PASSWORD).unwrap();
    // The right password: the login goes on, the lost refund is one event without an id.
    guard
        .verify("alice", Some(&stored), PASSWORD)
        .await
        .unwrap();
    let event = app.sink.one();
    assert_eq!(
        event.detail,
        AuditDetail::StoreFailure {
            store: StoreKind::RateLimit,
            outcome: StoreOutcome::Unaffected,
            error: "backend",
        }
    );
    assert_eq!(event.error_id, None);
    assert_eq!(event.level(), log::Level::Warn);
    assert_no_secret(&[event], &["alice", PASSWORD]);
    // A wrong password is charged, not refunded: only its own event.
    let err = guard
        .verify("alice", Some(&stored), "guess")
        .await
        .unwrap_err();
    assert_eq!(status(&err), 401);
    assert!(matches!(
        app.sink.one().detail,
        AuditDetail::AuthFailed {
            class: AuthFailureClass::WrongPassword
        }
    ));
    let labels = [("store", "rate_limit"), ("outcome", "unaffected")];
    assert_eq!(app.counter("secure_api_store_failures_total", &labels), 1);
    let closed = [("store", "rate_limit"), ("outcome", FAILED_CLOSED)];
    assert_eq!(app.counter("secure_api_store_failures_total", &closed), 0);
}

/// An account check whose database is down.
struct AccountsDown;

impl AccountCheck for AccountsDown {
    fn check(&self, _: SessionInfo) -> StoreFuture<'_, Result<AccountStatus, StoreError>> {
        StoreFuture::ready(Err(StoreError::Backend("database down".into())))
    }
}

#[test]
fn an_account_check_that_cannot_answer_is_an_accounts_store_failure() {
    let app = app();
    let tokens = app.tokens_checking(MemoryRefreshStore::new(), AccountsDown);
    let pair = run(tokens.login(AccessGrant::new("alice"))).unwrap();
    assert!(app.sink.take().is_empty());
    let err = run(tokens.refresh(&pair.refresh_token)).unwrap_err();
    assert_eq!(status(&err), 503);
    let event = app.sink.one();
    assert_eq!(
        event.detail,
        AuditDetail::StoreFailure {
            store: StoreKind::Accounts,
            outcome: StoreOutcome::FailedClosed,
            error: "backend",
        }
    );
    assert_eq!(event.error_id, Some(err.id()));
    assert_eq!(event.level(), log::Level::Error);
    assert_no_secret(&[event], &[&pair.refresh_token, &pair.access_token]);
    let labels = [("store", "accounts"), ("outcome", FAILED_CLOSED)];
    assert_eq!(app.counter("secure_api_store_failures_total", &labels), 1);
}

#[actix_rt::test]
async fn the_default_log_sink_writes_the_events_without_secrets() {
    let logs = common::log_capture();
    let api = SecureApi::builder()
        .audit_sink(Arc::new(LogSink::new()))
        .log_inventory(false)
        .build();
    let jwt = JwtAuth::hs256(vec![7u8; 32])
        .issuer("i")
        .audience("a")
        .revocation(Arc::new(RevokedTokens::new()))
        .build()
        .unwrap();
    let tokens = TokenService::new(
        jwt.clone(),
        Arc::new(MemoryRefreshStore::new()),
        Arc::new(everyone),
    )
    .telemetry(&api);
    let first = run(tokens.login(AccessGrant::new("zed-the-user"))).unwrap();
    let second = run(tokens.refresh(&first.refresh_token)).unwrap();
    let session = family(&jwt, &second);
    let reuse = run(tokens.refresh(&first.refresh_token)).unwrap_err();
    let _ = run(tokens.refresh(&second.refresh_token)).unwrap_err();
    let third = run(tokens.login(AccessGrant::new("zed-the-user"))).unwrap();
    run(tokens.logout(&run(jwt.verify(&third.access_token)).unwrap())).unwrap();
    let guard = LoginGuard::new(&api, cheap());
    for _ in 0..11 {
        let _ = guard.verify("Quentin-Login", None, "hunter2-secret").await;
    }

    // Every line of the binary, the audit lines and the others.
    let lines: Vec<String> = logs.lines();
    let reuse_line = format!("error_id={}", reuse.id());
    let reuse_line = lines
        .iter()
        .find(|l| l.contains(&reuse_line))
        .unwrap_or_else(|| panic!("the reuse line: {lines:#?}"));
    assert!(reuse_line.contains("event=refresh_reuse"), "{reuse_line}");
    assert!(reuse_line.contains("subject=zed-the-user"), "{reuse_line}");
    assert!(reuse_line.contains(&format!("family={session}")));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("event=login_limited") && l.contains("account="))
    );
    let text = lines.join("\n");
    for secret in [
        first.refresh_token.as_str(),
        second.refresh_token.as_str(),
        second.access_token.as_str(),
        third.access_token.as_str(),
        third.refresh_token.as_str(),
        "Quentin-Login",
        "quentin-login",
        "hunter2-secret",
    ] {
        assert!(
            !text.contains(secret),
            "a log line carries {secret:?}:\n{text}"
        );
        assert!(!text.contains(&sha256_hex(secret)));
    }
}

/// One request over a fresh connection, off the runtime's thread.
async fn request(
    addr: std::net::SocketAddr,
    method: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: Vec<u8>,
) -> common::RawReply {
    actix_web::rt::task::spawn_blocking(move || {
        common::raw_request(addr, method, path, headers, &body)
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"))
}

#[actix_rt::test]
async fn the_example_serves_prometheus_metrics_on_metrics_bind_and_never_on_the_public_port() {
    // Without METRICS_BIND: no listener, no metrics.
    let plain = users_api::Settings::from_vars(|_| None).unwrap();
    assert_eq!(plain.metrics_bind, None);
    assert!(matches!(
        users_api::Settings::from_vars(|n| (n == "METRICS_BIND").then(|| "localhost".into())),
        Err(users_api::SetupError::Invalid("METRICS_BIND", _))
    ));

    let settings = users_api::Settings::from_vars(|name| {
        (name == "METRICS_BIND").then(|| "127.0.0.1:0".to_owned())
    })
    .unwrap();
    // As `main` does it: the recorder, then the app, then the two listeners.
    let handle = users_api::install_metrics().expect("the only recorder of this binary");
    let (api, state) =
        users_api::build(&settings, &users_api::Stores::Memory, cheap(), PASSWORD).unwrap();
    let listener = std::net::TcpListener::bind(settings.metrics_bind.unwrap()).unwrap();
    let metrics_addr = listener.local_addr().unwrap();
    let metrics = users_api::metrics_server(listener, handle).unwrap();
    let metrics_stop = metrics.handle();
    actix_web::rt::spawn(metrics);
    let (addr, public_stop) = common::serve!("127.0.0.1", 1, move || {
        actix_web::App::new()
            .app_data(state.clone())
            .wrap(api.layer())
            .configure(users_api::routes)
    });

    // One request: a login with a wrong password.
    let login = request(
        addr,
        "POST",
        "/api/login",
        &[("content-type", "application/json")],
        br#"{"username": "alice", "password": "not-the-password"}"#.to_vec(),
    )
    .await;
    assert_eq!(
        login.status,
        401,
        "{}",
        String::from_utf8_lossy(&login.body)
    );

    let scrape = request(metrics_addr, "GET", "/metrics", &[], Vec::new()).await;
    assert_eq!(scrape.status, 200);
    assert_eq!(
        scrape.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    let text = String::from_utf8(scrape.body).unwrap();
    // The endpoint runner counted the request once, as the 401 it was; the login guard
    // raised its event.
    let login_decisions: u64 = text
        .lines()
        .filter_map(|l| l.strip_prefix("secure_api_decisions_total{endpoint=\"login\","))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(login_decisions, 1, "{text}");
    assert!(
        text.lines()
            .any(|l| l
                == "secure_api_decisions_total{endpoint=\"login\",outcome=\"unauthenticated\"} 1"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == "secure_api_audit_events_total{event=\"auth_failed\"} 1"),
        "{text}"
    );
    assert!(!text.contains("alice") && !text.contains("not-the-password"));
    // Nothing else on the metrics listener.
    assert_eq!(
        request(metrics_addr, "GET", "/api/me", &[], Vec::new())
            .await
            .status,
        404
    );

    // The public port does not serve them: the usual 404 problem.
    let public = request(addr, "GET", "/metrics", &[], Vec::new()).await;
    assert_eq!(public.status, 404);
    assert_eq!(
        public.header("content-type"),
        Some("application/problem+json")
    );
    let body: serde_json::Value = serde_json::from_slice(&public.body).unwrap();
    assert_eq!(body["type"], "tag:secure-api.dev,2026:problem:not-found");
    assert!(!String::from_utf8_lossy(&public.body).contains("secure_api_"));

    public_stop.stop(true).await;
    metrics_stop.stop(true).await;
}

/// The example's routes over an app of the test's (its capturing sink), with the example's
/// handlers and state: the events raised in handlers carry their request's context.
#[actix_rt::test]
async fn events_raised_in_handlers_carry_the_endpoint_client_and_principal() {
    use actix_web::test;
    let app = app();
    let passwords = cheap();
    let hash = passwords.hash(PASSWORD).unwrap();
    let users: users_api::Users = Arc::new(std::sync::RwLock::new(
        [("alice", "user"), ("admin", "admin")]
            .into_iter()
            .map(|(name, role)| {
                let account = users_api::Account {
                    password_hash: hash.clone(),
                    roles: vec![role.to_owned()],
                    permissions: vec![],
                    tier: "user".to_owned(),
                    email: format!("{name}@example.com"),
                };
                (name.to_owned(), account)
            })
            .collect(),
    ));
    let accounts = users.clone();
    // Neither names the app: the events find it through the request.
    let tokens = TokenService::new(
        app.jwt.clone(),
        Arc::new(MemoryRefreshStore::new()),
        Arc::new(
            move |s: &SessionInfo| match accounts.read().unwrap().get(&s.subject) {
                Some(a) => {
                    AccountStatus::Active(AccessGrant::new(&s.subject).roles(a.roles.clone()))
                }
                None => AccountStatus::Gone,
            },
        ),
    );
    let other_app = SecureApi::builder().log_inventory(false).build();
    let state = actix_web::web::Data::new(users_api::AppState {
        users,
        login: LoginGuard::new(&other_app, passwords.clone()),
        passwords,
        tokens,
        openapi: String::new(),
    });
    let service = test::init_service(
        actix_web::App::new()
            .app_data(state.clone())
            .wrap(app.api.layer())
            .configure(users_api::routes),
    )
    .await;
    let post = |path: &str, body: serde_json::Value, n: u8| {
        test::TestRequest::post()
            .uri(path)
            .peer_addr(format!("198.51.100.{n}:4000").parse().unwrap())
            .insert_header(("content-type", "application/json"))
            .set_payload(body.to_string())
            .to_request()
    };
    let client = |n: u8| Some(format!("198.51.100.{n}").parse().unwrap());
    let instance = |body: &serde_json::Value| {
        body["instance"]
            .as_str()
            .unwrap()
            .strip_prefix("urn:uuid:")
            .unwrap()
            .parse::<uuid::Uuid>()
            .unwrap()
    };

    // A wrong password: the guard's app is another one, the request's wins.
    let res = test::call_service(
        &service,
        post(
            "/api/login",
            serde_json::json!({"username": "alice", "password": "wrong-one"}),
            1,
        ),
    )
    .await;
    assert_eq!(res.status(), 401);
    let body: serde_json::Value = test::read_body_json(res).await;
    let event = app.sink.one();
    assert_eq!(event.endpoint, Some("login"));
    assert_eq!(event.client, client(1));
    assert_eq!(event.principal, None);
    assert_eq!(
        event.error_id,
        Some(instance(&body)),
        "the problem's instance"
    );
    assert_eq!(
        event.detail,
        AuditDetail::AuthFailed {
            class: AuthFailureClass::WrongPassword
        }
    );

    // Log in, refresh, present the first refresh token again: reuse, at the refresh endpoint.
    let login = |n| {
        post(
            "/api/login",
            serde_json::json!({"username": "alice", "password": PASSWORD}),
            n,
        )
    };
    let first: serde_json::Value = test::call_and_read_body_json(&service, login(2)).await;
    assert!(app.sink.take().is_empty());
    let refresh = |token: &serde_json::Value, n| {
        post(
            "/api/token/refresh",
            serde_json::json!({"refresh_token": token["refresh_token"]}),
            n,
        )
    };
    let second: serde_json::Value =
        test::call_and_read_body_json(&service, refresh(&first, 3)).await;
    let res = test::call_service(&service, refresh(&first, 4)).await;
    assert_eq!(res.status(), 401);
    let body: serde_json::Value = test::read_body_json(res).await;
    let event = app.sink.one();
    assert_eq!(event.endpoint, Some("refresh"));
    assert_eq!(event.client, client(4));
    assert_eq!(event.error_id, Some(instance(&body)));
    assert!(matches!(
        &event.detail,
        AuditDetail::RefreshReuse { subject, concurrent: false, .. } if subject == "alice"
    ));
    let mut events = vec![event];

    // A logout: the principal is the caller.
    let pair: serde_json::Value = test::call_and_read_body_json(&service, login(5)).await;
    let access = pair["access_token"].as_str().unwrap().to_owned();
    let res = test::call_service(
        &service,
        test::TestRequest::post()
            .uri("/api/logout")
            .peer_addr("198.51.100.6:4000".parse().unwrap())
            .insert_header(("authorization", format!("Bearer {access}")))
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), 204);
    let event = app.sink.one();
    assert_eq!(event.endpoint, Some("logout"));
    assert_eq!(event.client, client(6));
    assert_eq!(event.principal.as_deref(), Some("alice"));
    assert!(matches!(
        &event.detail,
        AuditDetail::Revoked { scope: RevokedScope::Session, subject: Some(s), session: Some(_) } if s == "alice"
    ));
    events.push(event);

    // An admin deletes alice: the principal is the admin, the subject alice.
    let admin: serde_json::Value = test::call_and_read_body_json(
        &service,
        post(
            "/api/login",
            serde_json::json!({"username": "admin", "password": PASSWORD}),
            7,
        ),
    )
    .await;
    let res = test::call_service(
        &service,
        test::TestRequest::delete()
            .uri("/api/users/alice")
            .peer_addr("198.51.100.8:4000".parse().unwrap())
            .insert_header((
                "authorization",
                format!("Bearer {}", admin["access_token"].as_str().unwrap()),
            ))
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), 204);
    let event = app.sink.one();
    assert_eq!(event.endpoint, Some("delete_user"));
    assert_eq!(event.principal.as_deref(), Some("admin"));
    assert_eq!(
        event.detail,
        AuditDetail::Revoked {
            scope: RevokedScope::Subject,
            subject: Some("alice".into()),
            session: None,
        }
    );
    events.push(event);

    let secrets: Vec<&str> = [&first, &second, &pair, &admin]
        .iter()
        .flat_map(|p| {
            [
                p["access_token"].as_str().unwrap(),
                p["refresh_token"].as_str().unwrap(),
            ]
        })
        .chain([PASSWORD, "wrong-one"])
        .collect();
    assert_no_secret(&events, &secrets);
}

/// Revokes through `JwtAuth`'s own methods, as an app's admin endpoint would.
#[secure_api_runtime::prelude::secure_endpoint(
    post("/telemetry/revoke"),
    public,
    rate = "unlimited"
)]
async fn revoke_directly(
    jwt: actix_web::web::Data<JwtAuth>,
) -> Result<actix_web::HttpResponse, ApiError> {
    let session = SessionId([0xab; 16]).to_string();
    jwt.revoke_token("a-token-id", 4_000_000_000)
        .await
        .map_err(ApiError::internal)?;
    jwt.revoke_session(&session)
        .await
        .map_err(ApiError::internal)?;
    jwt.revoke_subject("mallory")
        .await
        .map_err(ApiError::internal)?;
    Ok(actix_web::HttpResponse::NoContent().finish())
}

#[actix_rt::test]
async fn jwt_auth_revocations_are_one_revoked_event_each_in_the_request_context() {
    use actix_web::test;
    let app = app();
    let service = test::init_service(
        actix_web::App::new()
            .app_data(actix_web::web::Data::new(app.jwt.clone()))
            .wrap(app.api.layer())
            .service(revoke_directly),
    )
    .await;
    let res = test::call_service(
        &service,
        test::TestRequest::post()
            .uri("/telemetry/revoke")
            .peer_addr("192.0.2.44:5000".parse().unwrap())
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), 204);
    let events = app.sink.take();
    let details: Vec<&AuditDetail> = events.iter().map(|e| &e.detail).collect();
    assert_eq!(
        details,
        [
            &AuditDetail::Revoked {
                scope: RevokedScope::Token,
                subject: None,
                session: None,
            },
            &AuditDetail::Revoked {
                scope: RevokedScope::Session,
                subject: None,
                session: Some("ab".repeat(16)),
            },
            &AuditDetail::Revoked {
                scope: RevokedScope::Subject,
                subject: Some("mallory".into()),
                session: None,
            },
        ]
    );
    for event in &events {
        assert_eq!(event.endpoint, Some("revoke_directly"));
        assert_eq!(event.client, Some("192.0.2.44".parse().unwrap()));
        assert_eq!(event.error_id, None);
    }
    assert_eq!(
        app.counter("secure_api_audit_events_total", &[("event", "revoked")]),
        3
    );
}
