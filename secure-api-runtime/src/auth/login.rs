//! Login protection: password checks off the event loop and a failure limit per account,
//! beside the per-address limit of the login endpoint.
//!
//! A per-address limit alone does not protect an account: an attacker with a /48 of IPv6
//! has 65,536 /64 client buckets, and a botnet has more. [`LoginGuard`] therefore also
//! counts failed logins per account:
//!
//! - The account is keyed by a keyed 128-bit hash of its normalised username
//!   ([`normalize_username`]) through the app's key deriver (random per-process hash keys),
//!   so the username never reaches the store in clear text and nobody can choose names
//!   whose keys collide.
//! - The state lives in the app's [`RateLimitStore`](crate::throttle::RateLimitStore) (the
//!   one of [`SecureApi`]), so every worker and, with a shared store, every instance sees
//!   the same count. One record per account name, bounded like every other limiter key.
//! - Only failures count. Each attempt reserves one unit of the account's budget before its
//!   password is checked (so that concurrent guesses cannot overrun it) and gives it back
//!   ([`RateLimitStore::refund`](crate::throttle::RateLimitStore::refund)) when the password
//!   was right or no check could be made. A success does **not** reset the count: an
//!   account that logs in often (a script, a busy user) would otherwise hand a guesser a
//!   fresh budget after each of its own logins.
//! - Once the budget is spent, attempts are refused before any hashing, with a 429
//!   `rate-limited` problem and `Retry-After`, so a throttled account costs no CPU. Unknown
//!   usernames are counted exactly like existing ones and get the same answers, so the
//!   limit does not tell which accounts exist.
//! - The password check itself is [`Passwords::verify_async`]: on the blocking pool,
//!   behind the concurrency limit, with the same work for unknown users and wrong
//!   passwords.
//!
//! The price of any per-account limit is that others can spend an account's budget: at
//! most [`DEFAULT_ACCOUNT_POLICY`]'s 10 failed attempts per 15 minutes keep its owner out
//! for the rest of the window. Recovery paths (password reset links, support) should not
//! depend on this counter.

use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use unicode_normalization::UnicodeNormalization;

use super::password::Passwords;
use super::{AuthFailure, unauthorized};
use crate::api::SecureApi;
use crate::client_key::Identity;
use crate::problem::{ApiError, AuditMark, problems};
use crate::telemetry::audit::{AuditDetail, AuditKind, AuthFailureClass, StoreKind, StoreOutcome};
use crate::throttle::{Algorithm, Decision, LimitKey, NANOS_PER_SEC, Policy, Rate, StoreError};

/// 10 failed logins per account in any 15 minutes.
pub const DEFAULT_ACCOUNT_RATE: Rate = match Rate::new(10, 15 * 60 * NANOS_PER_SEC) {
    Some(rate) => rate,
    None => panic!("a zero rate"),
};

/// The default per-account failure limit: [`DEFAULT_ACCOUNT_RATE`] as a strict sliding
/// window (never more than 10 failures in any 15 minutes), named `login-account`.
pub const DEFAULT_ACCOUNT_POLICY: Policy =
    Policy::new("login-account", DEFAULT_ACCOUNT_RATE).with_algorithm(Algorithm::SlidingWindow);

/// The form of a username that its failure count is kept under: surrounding whitespace
/// trimmed, Unicode compatibility forms folded (NFKC: fullwidth `ａｌｉｃｅ` is `alice`,
/// ligatures and superscripts are spelled out), then lowercased (`char::to_lowercase`) and
/// folded again (lowercasing can leave a string that NFKC would change).
///
/// The count must be kept at least as coarsely as the app looks accounts up, or a guesser
/// gets a fresh budget for each spelling the lookup treats as the same account. Spellings
/// that this folds together but the app keeps apart merely share a budget.
///
/// ```
/// use secure_api_runtime::auth::login::normalize_username;
/// assert_eq!(normalize_username("  Alice "), "alice");
/// assert_eq!(normalize_username("ＡＬＩＣＥ"), "alice");
/// assert_eq!(normalize_username("Ame\u{301}lie"), "amélie"); // composed: one code point
/// assert_ne!(normalize_username("alice"), normalize_username("alice2"));
/// ```
pub fn normalize_username(username: &str) -> String {
    username
        .trim()
        .nfkc()
        .flat_map(char::to_lowercase)
        .nfkc()
        .collect()
}

/// A policy identifier for account keys, stable across processes (derived from the
/// policy's name only), so that instances sharing a store and a key secret share the counts.
const fn account_policy_id(name: &str) -> u64 {
    crate::client_key::policy_id(&["secure-api/login/account", name])
}

/// Checks login attempts: a per-account failure limit in the app's rate-limit store, and
/// the password check on the blocking pool (see the [module documentation](self)).
///
/// Build one per app from its [`SecureApi`] (so that it uses the app's store and key
/// secret) and a configured [`Passwords`]; clones share everything. Put the endpoint's
/// per-address limit on the route (`rate = "5/min", key = "ip"`): the two together bound
/// what one address and what many addresses can try.
///
/// ```
/// use actix_web::web;
/// use secure_api_runtime::auth::login::LoginGuard;
/// use secure_api_runtime::auth::password::Passwords;
/// use secure_api_runtime::prelude::*;
///
/// #[derive(serde::Deserialize, SecureInput)]
/// struct Login {
///     #[secure(trim, lowercase, length(min = 1, max = 64))]
///     username: String,
///     #[secure(length(min = 1, max = 1024))]
///     password: String,
/// }
///
/// fn stored_hash(username: &str) -> Option<String> {
///     None // look the account up
/// }
///
/// #[secure_endpoint(post("/login"), public, rate = "5/min", algorithm = "sliding_window", key = "ip")]
/// async fn login(guard: web::Data<LoginGuard>, input: Valid<Login>) -> Result<HttpResponse, ApiError> {
///     let Login { username, password } = input.into_inner();
///     let stored = stored_hash(&username);
///     // 429 before any hashing when the account is throttled; else one hash off the
///     // event loop; the same 401 for unknown users and wrong passwords.
///     guard.verify(&username, stored.as_deref(), &password).await?;
///     Ok(HttpResponse::NoContent().finish())
/// }
///
/// # actix_web::rt::System::new().block_on(async {
/// let api = SecureApi::builder().build();
/// let guard = LoginGuard::new(&api, Passwords::with_params(1024, 1, 1).unwrap());
/// // Ten failures, from wherever they come, throttle the account...
/// for _ in 0..10 {
///     let err = guard.verify("Mallory", None, "guess").await.unwrap_err();
///     assert_eq!(err.problem().status(), 401);
/// }
/// // ...and the eleventh attempt is refused without computing a hash.
/// let hashes = guard.passwords().hash_operations();
/// let err = guard.verify(" MALLORY ", None, "guess").await.unwrap_err();
/// assert_eq!(err.problem().status(), 429);
/// assert_eq!(guard.passwords().hash_operations(), hashes);
/// // Other accounts are unaffected.
/// assert_eq!(guard.verify("trent", None, "guess").await.unwrap_err().problem().status(), 401);
/// # let _ = actix_web::App::new().app_data(web::Data::new(guard)).wrap(api.layer()).service(login);
/// # });
/// ```
#[derive(Clone)]
pub struct LoginGuard {
    api: SecureApi,
    passwords: Passwords,
    policy: Policy,
    policy_id: u64,
}

impl std::fmt::Debug for LoginGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginGuard")
            .field("passwords", &self.passwords)
            .field("account_policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl LoginGuard {
    /// A guard over `api`'s rate-limit store and key secret, checking passwords with
    /// `passwords`, with the [`DEFAULT_ACCOUNT_POLICY`] (10 failures per 15 minutes).
    pub fn new(api: &SecureApi, passwords: Passwords) -> Self {
        LoginGuard {
            api: api.clone(),
            passwords,
            policy: DEFAULT_ACCOUNT_POLICY,
            policy_id: account_policy_id(DEFAULT_ACCOUNT_POLICY.name()),
        }
    }

    /// Sets the per-account failure limit: `rate` failures per period (a strict sliding
    /// window with [`Algorithm::SlidingWindow`], or GCRA: a burst of failures, then one per
    /// emission interval). Accounts are counted under the policy's name: two guards with
    /// the same name share counts.
    ///
    /// ```
    /// use secure_api_runtime::auth::login::LoginGuard;
    /// use secure_api_runtime::auth::password::Passwords;
    /// use secure_api_runtime::throttle::{Algorithm, Policy, Rate};
    /// use secure_api_runtime::SecureApi;
    ///
    /// let guard = LoginGuard::new(&SecureApi::builder().build(), Passwords::new())
    ///     .account_policy(Policy::new("admin-login", Rate::per_hour(5))
    ///         .with_algorithm(Algorithm::SlidingWindow));
    /// assert_eq!(guard.policy().rate(), Rate::per_hour(5));
    /// ```
    pub fn account_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self.policy_id = account_policy_id(policy.name());
        self
    }

    /// The password hasher (for hashing at sign-up or password change with
    /// [`Passwords::hash_async`], and for its counters).
    pub fn passwords(&self) -> &Passwords {
        &self.passwords
    }

    /// The per-account failure limit.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Checks a login attempt for `username`, whose stored password hash is `stored`
    /// (`None` for an unknown user):
    ///
    /// 1. one unit of the account's failure budget is reserved; when none is left, a 429
    ///    `rate-limited` problem with `Retry-After` (whole seconds until the oldest counted
    ///    failure leaves the window), before any hashing;
    /// 2. the password is checked with [`Passwords::verify_async`] (a 503 with
    ///    `Retry-After` when the hashing queue is full);
    /// 3. a right password gives the unit back and returns `Ok(())`; a wrong password or an
    ///    unknown user keeps it charged and is the `invalid-credentials` 401; when no check
    ///    could be made (503, 500) the unit is given back too.
    ///
    /// Unknown and existing usernames are treated alike at every step. A store that cannot
    /// answer is a 503 (fail closed). An attempt whose caller goes away during the check
    /// stays counted.
    ///
    /// Each refusal is an [audit event](crate::telemetry::audit), through the app of the
    /// endpoint request being handled (else this guard's app), with the error id of the
    /// refusal: `auth_failed` with class `wrong_password` (for unknown users too),
    /// `login_limited` naming the account by a keyed digest (32 hex digits, never the
    /// name), and `store_failure` (store `rate_limit`, `failed_closed`).
    pub async fn verify(
        &self,
        username: &str,
        stored: Option<&str>,
        password: &str,
    ) -> Result<(), ApiError> {
        let key = self.key(username);
        let limiter = &self.api.shared().limiter;
        match limiter.acquire(key, &self.policy, 1).await {
            Ok(decision) if decision.allowed => {}
            Ok(decision) => {
                let err = throttled(&decision);
                self.emit(AuditKind::LoginLimited, Some(err.id()), || {
                    AuditDetail::LoginLimited {
                        account: account_digest(key),
                    }
                });
                return Err(err);
            }
            Err(e) => {
                let class = crate::telemetry::store_error_class(&e);
                let err = store_unavailable(e);
                crate::telemetry::store_failure_from_handler(
                    Some(&self.api),
                    StoreKind::RateLimit,
                    StoreOutcome::FailedClosed,
                    Some(err.id()),
                    class,
                );
                return Err(err);
            }
        }
        let outcome = self.passwords.check_async(stored, password).await;
        if !matches!(outcome, Ok(false)) {
            // Not a failed guess: a success, or no check made.
            if let Err(e) = limiter.refund(key, &self.policy, 1).await {
                log::warn!(
                    target: "secure_api::login",
                    "could not refund a login attempt to the failure budget: {e}"
                );
                crate::telemetry::store_failure_from_handler(
                    Some(&self.api),
                    StoreKind::RateLimit,
                    StoreOutcome::Unaffected,
                    None,
                    crate::telemetry::store_error_class(&e),
                );
            }
        }
        match outcome {
            Ok(true) => Ok(()),
            Ok(false) => {
                let err = unauthorized(AuthFailure::Invalid).with_audit(AuditMark::Emitted);
                self.emit(AuditKind::AuthFailed, Some(err.id()), || {
                    AuditDetail::AuthFailed {
                        class: AuthFailureClass::WrongPassword,
                    }
                });
                Err(err)
            }
            Err(e) => Err(e),
        }
    }

    /// Emits one event of this guard: through the app of the endpoint request being
    /// handled, else this guard's app.
    fn emit(
        &self,
        kind: AuditKind,
        error_id: Option<uuid::Uuid>,
        detail: impl FnOnce() -> AuditDetail,
    ) {
        crate::telemetry::emit_from_handler(Some(&self.api), kind, error_id, detail);
    }

    /// The store key of an account name.
    fn key(&self, username: &str) -> LimitKey {
        let name = normalize_username(username);
        self.api
            .shared()
            .keys
            .key(self.policy_id, &Identity::Account(&name))
    }
}

/// How a `login_limited` event names the account: the 32 hex digits of its store key, a
/// keyed hash of the normalised name (the same on every instance sharing the key secret),
/// never the name.
fn account_digest(key: LimitKey) -> String {
    format!("{:016x}{:016x}", key.0[0], key.0[1])
}

/// The 429 of a throttled account: the same for every account name, known or not.
fn throttled(decision: &Decision) -> ApiError {
    ApiError::new(problems::RATE_LIMITED)
        .with_header(RETRY_AFTER, HeaderValue::from(decision.retry_after_secs()))
        .with_cause("login failures for this account name over the limit")
}

/// The 503 of a store that cannot decide.
fn store_unavailable(e: StoreError) -> ApiError {
    let err = ApiError::new(problems::SERVICE_UNAVAILABLE)
        .with_header(RETRY_AFTER, HeaderValue::from_static("1"));
    match e {
        StoreError::Full => err.with_cause(
            "rate-limit store full (login failures): raise max_tracked_clients or shed load",
        ),
        e => err.with_cause(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use std::sync::Arc;
    use std::time::Duration;

    fn guard(clock: &FakeClock) -> LoginGuard {
        let api = SecureApi::builder().clock(Arc::new(clock.clone())).build();
        LoginGuard::new(&api, Passwords::with_params(1024, 1, 1).unwrap())
    }

    #[test]
    fn usernames_fold_case_width_and_composition() {
        assert_eq!(normalize_username("\t Bob\n"), "bob");
        assert_eq!(normalize_username("ＢＯＢ"), "bob");
        assert_eq!(
            normalize_username("e\u{301}ve"),
            normalize_username("\u{c9}VE")
        );
        assert_eq!(normalize_username("ﬁle"), "file");
        assert_ne!(normalize_username("bob"), normalize_username("b ob"));
    }

    #[test]
    fn policy_ids_are_stable_and_distinct() {
        assert_eq!(
            account_policy_id("login-account"),
            account_policy_id("login-account")
        );
        assert_ne!(
            account_policy_id("login-account"),
            account_policy_id("other")
        );
    }

    #[actix_rt::test]
    async fn failures_throttle_the_account_until_they_leave_the_window() {
        let clock = FakeClock::new();
        let guard = guard(&clock);
        let stored = guard.passwords().hash("right").unwrap();
        for _ in 0..10 {
            clock.advance(Duration::from_secs(1));
            let err = guard
                .verify("carol", Some(&stored), "wrong")
                .await
                .unwrap_err();
            assert_eq!(err.problem().status(), 401);
        }
        let hashes = guard.passwords().hash_operations();
        let err = guard
            .verify("Carol", Some(&stored), "right")
            .await
            .unwrap_err();
        assert_eq!(err.problem(), &problems::RATE_LIMITED);
        let retry: u64 = err
            .headers()
            .find(|(n, _)| *n == RETRY_AFTER)
            .map(|(_, v)| v.to_str().unwrap().parse().unwrap())
            .unwrap();
        // The first failure (at 1 s) leaves the window at 901 s; it is now 10 s.
        assert_eq!(retry, 891);
        assert_eq!(
            guard.passwords().hash_operations(),
            hashes,
            "no hash when throttled"
        );
        // Once the oldest failure left the window, one more attempt is allowed.
        clock.advance(Duration::from_secs(891));
        assert!(guard.verify("carol", Some(&stored), "right").await.is_ok());
    }

    #[actix_rt::test]
    async fn successes_and_refused_checks_do_not_count() {
        let clock = FakeClock::new();
        let guard = guard(&clock);
        let stored = guard.passwords().hash("right").unwrap();
        for _ in 0..9 {
            let _ = guard.verify("dave", Some(&stored), "wrong").await;
        }
        for _ in 0..5 {
            assert!(guard.verify("dave", Some(&stored), "right").await.is_ok());
        }
        assert_eq!(
            guard
                .verify("dave", Some(&stored), "wrong")
                .await
                .unwrap_err()
                .problem()
                .status(),
            401,
            "the tenth failure is still checked"
        );
        assert_eq!(
            guard
                .verify("dave", Some(&stored), "right")
                .await
                .unwrap_err()
                .problem()
                .status(),
            429
        );
    }

    #[actix_rt::test]
    async fn a_full_hashing_queue_gives_the_unit_back() {
        let clock = FakeClock::new();
        let api = SecureApi::builder().clock(Arc::new(clock.clone())).build();
        let passwords = Passwords::with_params(8 * 1024, 4, 1)
            .unwrap()
            .max_concurrent_hashes(1)
            .max_queued_hashes(0);
        let guard = LoginGuard::new(&api, passwords).account_policy(
            Policy::new("tiny", Rate::per_hour(2)).with_algorithm(Algorithm::SlidingWindow),
        );
        // The first attempt hashes (a failure, charged); the second finds no slot (503,
        // refunded), so a third still has a unit left.
        let (a, b) = futures_util::future::join(
            guard.verify("erin", None, "x"),
            guard.verify("erin", None, "y"),
        )
        .await;
        assert_eq!(a.unwrap_err().problem().status(), 401);
        let busy = b.unwrap_err();
        assert_eq!(busy.problem(), &problems::SERVICE_UNAVAILABLE);
        assert!(busy.headers().any(|(n, v)| *n == RETRY_AFTER && v == "1"));
        assert_eq!(
            guard
                .verify("erin", None, "z")
                .await
                .unwrap_err()
                .problem()
                .status(),
            401
        );
        assert_eq!(
            guard
                .verify("erin", None, "z")
                .await
                .unwrap_err()
                .problem()
                .status(),
            429
        );
    }
}
