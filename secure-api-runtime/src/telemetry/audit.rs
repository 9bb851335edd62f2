//! Audit events: one typed [`AuditEvent`] per security decision, sent to an [`AuditSink`].
//!
//! The default sink, [`LogSink`], writes each event as one line through `log`, target
//! [`AUDIT_TARGET`] (`secure_api::audit`), with the event's fields as structured
//! key-values, at most [`LogSink::DEFAULT_PER_SECOND`] lines per second per kind (a flood of
//! refusals cannot flood the log; the next line written says how many were left out).
//!
//! An event is built only when the sink [wants](AuditSink::wants) its kind: with the log's
//! level for `secure_api::audit` off (or [`SecureApiBuilder::audit_sink`] given
//! [`Discard`]), a refused request pays one check and builds nothing.
//!
//! No event carries a secret or an input value: no token, no password, no header or body
//! value, no account name (a login limit names the account by a keyed digest). Client
//! addresses and subjects are in events, never in metrics.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use secure_api_runtime::SecureApi;
//! use secure_api_runtime::telemetry::audit::{AuditEvent, AuditKind, AuditSink};
//!
//! /// Keeps the events that a SIEM forwarder would ship.
//! #[derive(Default)]
//! struct Forward(Mutex<Vec<AuditEvent>>);
//!
//! impl AuditSink for Forward {
//!     fn wants(&self, kind: AuditKind) -> bool {
//!         kind != AuditKind::ValidationFailed
//!     }
//!     fn record(&self, event: &AuditEvent) {
//!         self.0.lock().unwrap().push(event.clone());
//!     }
//! }
//!
//! let sink = Arc::new(Forward::default());
//! let api = SecureApi::builder().audit_sink(sink.clone()).build();
//! ```
//!
//! [`SecureApiBuilder::audit_sink`]: crate::api::SecureApiBuilder::audit_sink

use std::fmt;
use std::net::IpAddr;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::validation::ValidationErrors;

/// The `log` target of [`LogSink`]'s lines.
pub const AUDIT_TARGET: &str = "secure_api::audit";

/// The kinds of [`AuditEvent`], for [`AuditSink::wants`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuditKind {
    /// Credentials were refused: a 401 (or, for a login, a wrong password).
    AuthFailed,
    /// A refresh token that was already rotated away was presented again: it was stolen or
    /// replayed, and its session (token family) was ended. Revoke and alert.
    RefreshReuse,
    /// A session, every session of a subject, or an access token was revoked.
    Revoked,
    /// An authenticated principal was refused with 403 by the endpoint's rule (or by the
    /// handler's own check).
    AccessDenied,
    /// A request was refused with 429 by an endpoint's rate limit.
    RateLimited,
    /// A login was refused because its account's failure budget is spent.
    LoginLimited,
    /// A request's `Idempotency-Key` is held by a request still in flight (409).
    IdempotencyConflict,
    /// A request's `Idempotency-Key` was used before with a different request (422), or its
    /// first response cannot be replayed.
    IdempotencyMismatch,
    /// The input was refused: 422 with the failing rules, or 400, 413 or 415.
    ValidationFailed,
    /// A store could not answer; [`AuditDetail::StoreFailure`] says what the request got.
    StoreFailure,
}

impl AuditKind {
    /// Every kind.
    pub const ALL: [AuditKind; 10] = [
        AuditKind::AuthFailed,
        AuditKind::RefreshReuse,
        AuditKind::Revoked,
        AuditKind::AccessDenied,
        AuditKind::RateLimited,
        AuditKind::LoginLimited,
        AuditKind::IdempotencyConflict,
        AuditKind::IdempotencyMismatch,
        AuditKind::ValidationFailed,
        AuditKind::StoreFailure,
    ];

    /// The kind's name, the `event` key of its log lines: `auth_failed`, `refresh_reuse`,
    /// `revoked`, `access_denied`, `rate_limited`, `login_limited`, `idempotency_conflict`,
    /// `idempotency_mismatch`, `validation_failed`, `store_failure`.
    pub const fn name(self) -> &'static str {
        match self {
            AuditKind::AuthFailed => "auth_failed",
            AuditKind::RefreshReuse => "refresh_reuse",
            AuditKind::Revoked => "revoked",
            AuditKind::AccessDenied => "access_denied",
            AuditKind::RateLimited => "rate_limited",
            AuditKind::LoginLimited => "login_limited",
            AuditKind::IdempotencyConflict => "idempotency_conflict",
            AuditKind::IdempotencyMismatch => "idempotency_mismatch",
            AuditKind::ValidationFailed => "validation_failed",
            AuditKind::StoreFailure => "store_failure",
        }
    }

    /// The level [`LogSink`] writes the kind at: `warn` for refresh-token reuse, a tripped
    /// login limit and a store failure, `info` for the rest.
    pub const fn level(self) -> log::Level {
        match self {
            AuditKind::RefreshReuse | AuditKind::LoginLimited | AuditKind::StoreFailure => {
                log::Level::Warn
            }
            _ => log::Level::Info,
        }
    }

    /// The kind's position in [`AuditKind::ALL`] (its discriminant), for per-kind arrays.
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why credentials were refused: the class, never the credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthFailureClass {
    /// No `Authorization` header on an endpoint that requires one.
    Missing,
    /// Not a single well-formed bearer token.
    Malformed,
    /// The token did not verify: signature, algorithm, issuer, audience, type, lifetime,
    /// or a key the verifier does not know.
    Invalid,
    /// The token verified, but it, its session or its subject is revoked.
    Revoked,
    /// A refresh token that this service did not issue, or whose session has ended.
    RefreshInvalid,
    /// A login with a wrong password (or an unknown account: the two are not told apart).
    WrongPassword,
    /// A 401 that the handler answered with of its own accord: an `invalid-credentials`
    /// [`ApiError`](crate::problem::ApiError) that secure-api code did not make.
    Handler,
}

impl AuthFailureClass {
    /// `missing`, `malformed`, `invalid`, `revoked`, `refresh_invalid`, `wrong_password`,
    /// `handler`.
    pub const fn name(self) -> &'static str {
        match self {
            AuthFailureClass::Missing => "missing",
            AuthFailureClass::Malformed => "malformed",
            AuthFailureClass::Invalid => "invalid",
            AuthFailureClass::Revoked => "revoked",
            AuthFailureClass::RefreshInvalid => "refresh_invalid",
            AuthFailureClass::WrongPassword => "wrong_password",
            AuthFailureClass::Handler => "handler",
        }
    }
}

/// What a revocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevokedScope {
    /// One session (a refresh-token family and its access tokens): a logout.
    Session,
    /// Every session and access token of a subject.
    Subject,
    /// One access token, by its `jti`.
    Token,
}

impl RevokedScope {
    /// `session`, `subject`, `token`.
    pub const fn name(self) -> &'static str {
        match self {
            RevokedScope::Session => "session",
            RevokedScope::Subject => "subject",
            RevokedScope::Token => "token",
        }
    }
}

/// Which store failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreKind {
    /// The rate-limit store (endpoints' limits and the login guard's failure budget).
    RateLimit,
    /// The idempotency store.
    Idempotency,
    /// The refresh-token session store.
    Sessions,
    /// The revocation store.
    Revocation,
    /// The app's account check ([`AccountCheck`](crate::auth::refresh::AccountCheck)),
    /// asked on every refresh: usually the app's user database.
    Accounts,
}

impl StoreKind {
    /// `rate_limit`, `idempotency`, `sessions`, `revocation`, `accounts`: also the `store`
    /// label of the store metrics.
    pub const fn name(self) -> &'static str {
        match self {
            StoreKind::RateLimit => "rate_limit",
            StoreKind::Idempotency => "idempotency",
            StoreKind::Sessions => "sessions",
            StoreKind::Revocation => "revocation",
            StoreKind::Accounts => "accounts",
        }
    }
}

/// What a request got when its store failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreOutcome {
    /// Refused with 503 (`Retry-After: 1`): the store's check fails closed.
    FailedClosed,
    /// Let through unchecked: the rate limit's `on_store_error = "allow"`.
    FailedOpen,
    /// The request's answer did not depend on the call, which was lost: the login guard's
    /// refund of an attempt that was not a failed guess (the attempt stays charged to the
    /// account's failure budget).
    Unaffected,
}

impl StoreOutcome {
    /// `failed_closed`, `failed_open`, `unaffected`.
    pub const fn name(self) -> &'static str {
        match self {
            StoreOutcome::FailedClosed => "failed_closed",
            StoreOutcome::FailedOpen => "failed_open",
            StoreOutcome::Unaffected => "unaffected",
        }
    }
}

/// The fields of one kind of event.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AuditDetail {
    /// [`AuditKind::AuthFailed`].
    AuthFailed {
        /// Why.
        class: AuthFailureClass,
    },
    /// [`AuditKind::RefreshReuse`].
    RefreshReuse {
        /// The session's subject.
        subject: String,
        /// The session (token family) that was ended, as hex: the `sid` of its access
        /// tokens.
        family: String,
        /// Whether the token was used twice at once (two rotations raced), rather than
        /// presented again after it was rotated.
        concurrent: bool,
    },
    /// [`AuditKind::Revoked`].
    Revoked {
        /// What was ended.
        scope: RevokedScope,
        /// The subject, when known.
        subject: Option<String>,
        /// The session as hex, for [`RevokedScope::Session`].
        session: Option<String>,
    },
    /// [`AuditKind::AccessDenied`]: the principal is in the event; the rule's roles and
    /// permissions are in the endpoint inventory.
    AccessDenied,
    /// [`AuditKind::RateLimited`].
    RateLimited {
        /// The name of the policy that refused: the tier's name for a tier's rate, else
        /// `default`.
        policy: &'static str,
        /// The principal's tier (`anonymous` without one).
        tier: String,
        /// Seconds until a retry can succeed (`Retry-After`).
        retry_after_secs: u64,
    },
    /// [`AuditKind::LoginLimited`].
    LoginLimited {
        /// The account, as a keyed digest of its normalised name (32 hex digits): the same
        /// for every instance that shares the key secret, never the name itself.
        account: String,
    },
    /// [`AuditKind::IdempotencyConflict`].
    IdempotencyConflict,
    /// [`AuditKind::IdempotencyMismatch`].
    IdempotencyMismatch {
        /// `true` when the key's first request completed with a response that cannot be
        /// replayed (422 `idempotency-response-not-replayable`), `false` when the key was
        /// used with a different request (422 `idempotency-key-reused`).
        not_replayable: bool,
    },
    /// [`AuditKind::ValidationFailed`].
    ValidationFailed {
        /// The response's status: 400, 413, 415 or 422.
        status: u16,
        /// The last segment of the problem's `type`: `validation-failed`,
        /// `malformed-request`, `nesting-too-deep`, `payload-too-large`, ...
        problem: &'static str,
        /// For a 422: where and which rule failed (JSON Pointers and codes, never values).
        violations: Option<ValidationErrors>,
    },
    /// [`AuditKind::StoreFailure`].
    StoreFailure {
        /// Which store.
        store: StoreKind,
        /// What the request got.
        outcome: StoreOutcome,
        /// `full` (a bounded in-memory store with no room) or `backend` (the service
        /// failed, timed out or is unreachable). The error itself is in the error log under
        /// the error id.
        error: &'static str,
    },
}

impl AuditDetail {
    /// The event's kind.
    pub const fn kind(&self) -> AuditKind {
        match self {
            AuditDetail::AuthFailed { .. } => AuditKind::AuthFailed,
            AuditDetail::RefreshReuse { .. } => AuditKind::RefreshReuse,
            AuditDetail::Revoked { .. } => AuditKind::Revoked,
            AuditDetail::AccessDenied => AuditKind::AccessDenied,
            AuditDetail::RateLimited { .. } => AuditKind::RateLimited,
            AuditDetail::LoginLimited { .. } => AuditKind::LoginLimited,
            AuditDetail::IdempotencyConflict => AuditKind::IdempotencyConflict,
            AuditDetail::IdempotencyMismatch { .. } => AuditKind::IdempotencyMismatch,
            AuditDetail::ValidationFailed { .. } => AuditKind::ValidationFailed,
            AuditDetail::StoreFailure { .. } => AuditKind::StoreFailure,
        }
    }
}

/// One security decision.
///
/// The context fields are those known where the decision was made: inside a request of a
/// `#[secure_endpoint]` (including code its handler calls, such as
/// [`TokenService::refresh`](crate::auth::refresh::TokenService::refresh)) the endpoint and
/// the client's address are always known, the principal when authenticated, and the error
/// id whenever the decision refused the request.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AuditEvent {
    /// The error id of the refusal: the `instance` of its problem response
    /// (`urn:uuid:<id>`) and the id of its line in the error log.
    pub error_id: Option<uuid::Uuid>,
    /// The endpoint: its handler's name, or `module::path::name` when another endpoint of
    /// the program has a handler of the same name (as the OpenAPI `operationId`). The
    /// `endpoint` label of the metrics is the same.
    pub endpoint: Option<&'static str>,
    /// The client's address, as rate limits see it (behind trusted proxies, IPv6 grouped by
    /// prefix).
    pub client: Option<IpAddr>,
    /// The authenticated principal's subject.
    pub principal: Option<String>,
    /// What happened.
    pub detail: AuditDetail,
}

impl AuditEvent {
    /// An event with no context yet.
    pub fn new(detail: AuditDetail) -> Self {
        AuditEvent {
            error_id: None,
            endpoint: None,
            client: None,
            principal: None,
            detail,
        }
    }

    /// The event's kind.
    pub const fn kind(&self) -> AuditKind {
        self.detail.kind()
    }

    /// The level [`LogSink`] writes it at: [`AuditKind::level`], and `error` for a store
    /// failure that refused the request.
    pub fn level(&self) -> log::Level {
        match self.detail {
            AuditDetail::StoreFailure {
                outcome: StoreOutcome::FailedClosed,
                ..
            } => log::Level::Error,
            _ => self.kind().level(),
        }
    }
}

/// Where audit events go. Set with
/// [`SecureApiBuilder::audit_sink`](crate::api::SecureApiBuilder::audit_sink); the default
/// is [`LogSink`].
///
/// `record` runs on the request's worker thread, inside the request: it must not block.
/// A sink that ships events elsewhere queues them (a bounded channel) and drops what does
/// not fit, counting the drops.
pub trait AuditSink: Send + Sync + 'static {
    /// Whether the sink takes an event of this kind now. Asked before the event is built:
    /// `false` costs the caller nothing more. A sink that rate-limits itself answers
    /// `false` while over its budget. `true` by default.
    fn wants(&self, kind: AuditKind) -> bool {
        let _ = kind;
        true
    }

    /// Takes one event that [`wants`](Self::wants) accepted.
    fn record(&self, event: &AuditEvent);
}

/// The sink that takes nothing: no event is ever built.
#[derive(Debug, Clone, Copy, Default)]
pub struct Discard;

impl AuditSink for Discard {
    fn wants(&self, _: AuditKind) -> bool {
        false
    }

    fn record(&self, _: &AuditEvent) {}
}

/// The default sink: one `log` line per event, target [`AUDIT_TARGET`], at the event's
/// [level](AuditEvent::level), with its fields as structured key-values:
///
/// ```text
/// event=rate_limited error_id=… endpoint=create_user client=203.0.113.9 principal=alice
///     policy=default tier=anonymous retry_after_secs=1
/// ```
///
/// Keys: `event` (the [kind's name](AuditKind::name)), `error_id`, `endpoint`, `client`,
/// `principal` (each when known), then the detail's fields under their names
/// (`violations` as `/pointer:code` pairs separated by spaces), and `suppressed` when
/// events of this kind were left out since its previous line. The message is
/// `audit <event>`.
///
/// At most `per_second` lines per kind per second, with bursts of `burst`
/// ([`LogSink::DEFAULT_PER_SECOND`], [`LogSink::DEFAULT_BURST`]): events over the budget
/// are not built, only counted. Each kind has its own budget, so a flood of 429s does not
/// hide a token theft.
///
/// To see the key-values, the logger must print them: with `env_logger`, its `kv` feature.
#[derive(Debug)]
pub struct LogSink {
    budgets: [Budget; AuditKind::ALL.len()],
    interval_ns: u64,
    burst_ns: u64,
}

impl LogSink {
    /// Lines per second per kind, by default.
    pub const DEFAULT_PER_SECOND: u32 = 20;
    /// The burst per kind, by default.
    pub const DEFAULT_BURST: u32 = 100;

    /// The sink with the default budget.
    pub fn new() -> Self {
        Self::with_budget(Self::DEFAULT_PER_SECOND, Self::DEFAULT_BURST)
    }

    /// The sink with at most `per_second` lines per kind per second (at least 1), in bursts
    /// of up to `burst` (at least 1).
    pub fn with_budget(per_second: u32, burst: u32) -> Self {
        let interval_ns = 1_000_000_000 / u64::from(per_second.max(1));
        LogSink {
            budgets: Default::default(),
            interval_ns,
            burst_ns: interval_ns * u64::from(burst.max(1)),
        }
    }

    /// How many events of `kind` were left out over the budget since its last line.
    pub fn suppressed(&self, kind: AuditKind) -> u64 {
        self.budgets[kind.index()]
            .suppressed
            .load(Ordering::Relaxed)
    }

    fn now_ns() -> u64 {
        static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);
        u64::try_from(EPOCH.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

impl Default for LogSink {
    fn default() -> Self {
        Self::new()
    }
}

impl AuditSink for LogSink {
    fn wants(&self, kind: AuditKind) -> bool {
        // Error for a store failure: it is written at warn or error.
        let level = match kind {
            AuditKind::StoreFailure => log::Level::Error,
            kind => kind.level(),
        };
        log::log_enabled!(target: AUDIT_TARGET, level)
            && self.budgets[kind.index()].take(Self::now_ns(), self.interval_ns, self.burst_ns)
    }

    fn record(&self, event: &AuditEvent) {
        let suppressed = self.budgets[event.kind().index()]
            .suppressed
            .swap(0, Ordering::Relaxed);
        let violations = match &event.detail {
            AuditDetail::ValidationFailed {
                violations: Some(v),
                ..
            } => Some(Violations(v).to_string()),
            _ => None,
        };
        let fields = Fields {
            event,
            suppressed,
            violations,
        };
        log::logger().log(
            &log::Record::builder()
                .target(AUDIT_TARGET)
                .level(event.level())
                .module_path_static(Some(module_path!()))
                .file_static(Some(file!()))
                .line(Some(line!()))
                .key_values(&fields)
                .args(format_args!("audit {}", event.kind().name()))
                .build(),
        );
    }
}

/// One kind's budget: the theoretical arrival time of the next line (GCRA, nanoseconds
/// since the sink's epoch) and the events left out since the last line.
#[derive(Debug, Default)]
struct Budget {
    tat: AtomicU64,
    suppressed: AtomicU64,
}

impl Budget {
    /// Takes one line's room at `now`, or counts one left out.
    fn take(&self, now: u64, interval: u64, burst: u64) -> bool {
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let next = tat.max(now).saturating_add(interval);
            if next - now > burst {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => tat = actual,
            }
        }
    }
}

/// An event's key-values for the log.
struct Fields<'a> {
    event: &'a AuditEvent,
    suppressed: u64,
    /// The violations of a `validation_failed` event, written out.
    violations: Option<String>,
}

impl log::kv::Source for Fields<'_> {
    fn visit<'kvs>(
        &'kvs self,
        visitor: &mut dyn log::kv::VisitSource<'kvs>,
    ) -> Result<(), log::kv::Error> {
        use log::kv::{Key, Value};
        let e = self.event;
        let mut put = |key: &'static str, value: Value<'kvs>| -> Result<(), log::kv::Error> {
            visitor.visit_pair(Key::from_str(key), value)
        };
        put("event", Value::from(e.kind().name()))?;
        if let Some(id) = &e.error_id {
            put("error_id", Value::from_display(id))?;
        }
        if let Some(endpoint) = e.endpoint {
            put("endpoint", Value::from(endpoint))?;
        }
        if let Some(client) = &e.client {
            put("client", Value::from_display(client))?;
        }
        if let Some(principal) = &e.principal {
            put("principal", Value::from(principal.as_str()))?;
        }
        match &e.detail {
            AuditDetail::AuthFailed { class } => put("class", Value::from(class.name()))?,
            AuditDetail::RefreshReuse {
                subject,
                family,
                concurrent,
            } => {
                put("subject", Value::from(subject.as_str()))?;
                put("family", Value::from(family.as_str()))?;
                put("concurrent", Value::from(*concurrent))?;
            }
            AuditDetail::Revoked {
                scope,
                subject,
                session,
            } => {
                put("scope", Value::from(scope.name()))?;
                if let Some(subject) = subject {
                    put("subject", Value::from(subject.as_str()))?;
                }
                if let Some(session) = session {
                    put("session", Value::from(session.as_str()))?;
                }
            }
            AuditDetail::RateLimited {
                policy,
                tier,
                retry_after_secs,
            } => {
                put("policy", Value::from(*policy))?;
                put("tier", Value::from(tier.as_str()))?;
                put("retry_after_secs", Value::from(*retry_after_secs))?;
            }
            AuditDetail::LoginLimited { account } => put("account", Value::from(account.as_str()))?,
            AuditDetail::AccessDenied | AuditDetail::IdempotencyConflict => {}
            AuditDetail::IdempotencyMismatch { not_replayable } => {
                put("not_replayable", Value::from(*not_replayable))?;
            }
            AuditDetail::ValidationFailed {
                status,
                problem,
                violations: _,
            } => {
                put("status", Value::from(*status))?;
                put("problem", Value::from(*problem))?;
                if let Some(violations) = &self.violations {
                    put("violations", Value::from(violations.as_str()))?;
                }
            }
            AuditDetail::StoreFailure {
                store,
                outcome,
                error,
            } => {
                put("store", Value::from(store.name()))?;
                put("outcome", Value::from(outcome.name()))?;
                put("error", Value::from(*error))?;
            }
        }
        if self.suppressed > 0 {
            put("suppressed", Value::from(self.suppressed))?;
        }
        Ok(())
    }
}

/// `/pointer:code` pairs separated by spaces.
struct Violations<'a>(&'a ValidationErrors);

impl fmt::Display for Violations<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{}:{}", v.pointer(), v.code())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn a_budget_lets_a_burst_through_then_its_rate() {
        let b = Budget::default();
        // 10 per second, bursts of 3.
        let (interval, burst) = (SEC / 10, 3 * SEC / 10);
        let now = 5 * SEC;
        assert!((0..3).all(|_| b.take(now, interval, burst)));
        assert!(!b.take(now, interval, burst));
        assert!(!b.take(now + SEC / 20, interval, burst));
        assert_eq!(b.suppressed.load(Ordering::Relaxed), 2);
        // A tenth of a second later, one more.
        assert!(b.take(now + SEC / 10, interval, burst));
        assert!(!b.take(now + SEC / 10, interval, burst));
        // After a quiet second, the whole burst again.
        assert!((0..3).all(|_| b.take(now + 2 * SEC, interval, burst)));
    }

    #[test]
    fn every_kind_has_its_own_name_and_index() {
        for (i, kind) in AuditKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i);
        }
        let names: std::collections::HashSet<_> = AuditKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), AuditKind::ALL.len());
    }
}
