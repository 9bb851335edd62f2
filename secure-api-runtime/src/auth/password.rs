//! Password checks for login handlers: argon2id, with the same work for unknown users as
//! for wrong passwords, run off the event loop behind a concurrency limit.
//!
//! A password hash is slow on purpose (tens of milliseconds and 19 MiB with the default
//! parameters). Computed on an actix worker thread, it stops every other connection of that
//! worker for as long, and a few login attempts per second stall a server. The `_async`
//! methods of [`Passwords`] run each hash on the runtime's blocking pool instead, at most
//! [`max_concurrent_hashes`](Passwords::max_concurrent_hashes) at a time (default: one per
//! core), with a bounded queue behind them; when the queue is full a call fails at once
//! with a 503 `service-unavailable` problem and `Retry-After: 1`, so that a flood of logins
//! costs neither unbounded memory (each running hash holds its argon2 memory) nor an
//! unbounded wait.
//!
//! [`login::LoginGuard`](super::login::LoginGuard) adds the per-account failure limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use super::{AuthFailure, unauthorized};
use crate::problem::{ApiError, AuditMark, problems};
use crate::telemetry::audit::AuthFailureClass;

/// The longest password considered; longer ones are refused (after the same work).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// How many hashes may wait for each concurrent hash by default: with one hash per core and
/// the default parameters (about 40 ms a hash on a current core) a caller waits at most a
/// third of a second before its own hash starts.
pub const DEFAULT_QUEUED_PER_HASH: usize = 8;

/// Hashes and checks passwords with argon2id.
///
/// [`Passwords::verify_async`] (and [`Passwords::verify`]) answer one `invalid-credentials`
/// 401 for an unknown user and for a wrong password, and do one hash computation in both
/// cases: for an unknown user the password is checked against a dummy hash made with the
/// same parameters.
///
/// A `Passwords` is a cheap handle: clones share the parameters, the dummy hash, the
/// concurrency limit and the [`hash_operations`](Passwords::hash_operations) counter. Build
/// one per app, configure it, then clone it where it is needed.
///
/// In request handlers use the `_async` methods: they hash on the blocking pool, behind the
/// concurrency limit, and never on the worker's event loop. [`Passwords::hash`] and
/// [`Passwords::verify`] run on the calling thread (start-up code, command-line tools).
///
/// ```
/// use secure_api_runtime::auth::password::Passwords;
///
/// # actix_web::rt::System::new().block_on(async {
/// let passwords = Passwords::with_params(1024, 1, 1) // cheap, for the example
///     .unwrap()
///     .max_concurrent_hashes(2)
///     .max_queued_hashes(16);
/// let stored = passwords.hash_async("correct horse").await.unwrap();
/// assert!(passwords.verify_async(Some(&stored), "correct horse").await.is_ok());
/// let wrong = passwords.verify_async(Some(&stored), "wrong").await.unwrap_err();
/// assert_eq!(wrong.problem().status(), 401);
/// // An unknown user: the same 401, after the same work.
/// let unknown = passwords.verify_async(None, "anything").await.unwrap_err();
/// assert_eq!(unknown.problem(), wrong.problem());
/// assert_eq!(passwords.hash_operations(), 4); // one hash, three checks
/// # });
/// ```
#[derive(Clone)]
pub struct Passwords {
    engine: Arc<Engine>,
    pool: Arc<HashPool>,
}

struct Engine {
    argon: Argon2<'static>,
    dummy: String,
    operations: AtomicU64,
}

/// The concurrency limit: `permits` hashes run, and at most `max_admitted` calls (running
/// or waiting for a permit) are in flight.
struct HashPool {
    permits: Arc<Semaphore>,
    max_running: usize,
    max_queued: usize,
    admitted: AtomicUsize,
}

impl HashPool {
    fn new(max_running: usize, max_queued: usize) -> Arc<HashPool> {
        let max_running = max_running.clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(HashPool {
            permits: Arc::new(Semaphore::new(max_running)),
            max_running,
            max_queued,
            admitted: AtomicUsize::new(0),
        })
    }

    /// A place in the pool (running or queued), or `None` when the queue is full.
    fn admit(self: &Arc<Self>) -> Option<Admission> {
        let limit = self.max_running.saturating_add(self.max_queued);
        self.admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Admission(self.clone()))
    }
}

/// A place in the pool, given back when dropped: by the blocking task once its hash is
/// done, or by a caller that goes away while queued.
struct Admission(Arc<HashPool>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords")
            .field("params", self.engine.argon.params())
            .field("max_concurrent_hashes", &self.pool.max_running)
            .field("max_queued_hashes", &self.pool.max_queued)
            .finish_non_exhaustive()
    }
}

/// The default concurrency limit: the number of cores available to the process.
fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// A password as the hash sees it: at most [`MAX_PASSWORD_BYTES`] bytes, and whether the
/// original was longer (then it can never match).
struct Candidate {
    bytes: Vec<u8>,
    too_long: bool,
}

impl Candidate {
    fn new(password: &str) -> Candidate {
        let bytes = password.as_bytes();
        Candidate {
            bytes: bytes[..bytes.len().min(MAX_PASSWORD_BYTES)].to_vec(),
            too_long: bytes.len() > MAX_PASSWORD_BYTES,
        }
    }
}

impl Engine {
    fn hash(&self, password: &[u8]) -> Result<String, ApiError> {
        self.operations.fetch_add(1, Ordering::Relaxed);
        let salt = SaltString::generate(&mut OsRng);
        self.argon
            .hash_password(password, &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::internal(e.to_string()))
    }

    /// One hash computation: whether `candidate` is the password of `stored` (`false` for
    /// an unknown user, after checking against the dummy hash).
    fn check(&self, stored: Option<&str>, candidate: &Candidate) -> Result<bool, ApiError> {
        let parsed = stored.and_then(|s| PasswordHash::new(s).ok());
        let known = parsed.is_some();
        let hash = match parsed {
            Some(h) => h,
            None => {
                PasswordHash::new(&self.dummy).map_err(|e| ApiError::internal(e.to_string()))?
            }
        };
        self.operations.fetch_add(1, Ordering::Relaxed);
        let matches = self.argon.verify_password(&candidate.bytes, &hash).is_ok();
        Ok(matches && known && !candidate.too_long)
    }
}

/// The 503 of a full hashing queue.
fn hashing_busy() -> ApiError {
    ApiError::new(problems::SERVICE_UNAVAILABLE)
        .with_header(RETRY_AFTER, HeaderValue::from_static("1"))
        .with_cause(
            "password hashing queue full: raise max_queued_hashes or max_concurrent_hashes, or add capacity",
        )
}

/// The 401 of a failed password check, audited as `wrong_password` when a handler
/// answers with it.
fn wrong_password() -> ApiError {
    unauthorized(AuthFailure::Invalid).with_audit(AuditMark::Class(AuthFailureClass::WrongPassword))
}

impl Passwords {
    /// argon2id with the OWASP-recommended parameters (19 MiB, 2 passes, 1 lane), one
    /// concurrent hash per core and [`DEFAULT_QUEUED_PER_HASH`] queued per concurrent hash.
    pub fn new() -> Self {
        Self::with_params(19 * 1024, 2, 1).expect("the default argon2 parameters are valid")
    }

    /// argon2id with `memory_kib` KiB, `passes` iterations and `lanes` lanes, and the
    /// default concurrency limit.
    pub fn with_params(memory_kib: u32, passes: u32, lanes: u32) -> Result<Self, argon2::Error> {
        let params = Params::new(memory_kib, passes, lanes, None)?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let salt = SaltString::generate(&mut OsRng);
        let dummy_password = super::jwt::random_id(24);
        let dummy = argon
            .hash_password(dummy_password.as_bytes(), &salt)
            .map_err(|_| argon2::Error::OutputTooShort)?
            .to_string();
        let concurrency = default_concurrency();
        Ok(Passwords {
            engine: Arc::new(Engine {
                argon,
                dummy,
                operations: AtomicU64::new(0),
            }),
            pool: HashPool::new(
                concurrency,
                concurrency.saturating_mul(DEFAULT_QUEUED_PER_HASH),
            ),
        })
    }

    /// How many hashes the `_async` methods run at once (at least 1; default: the number
    /// of cores, [`std::thread::available_parallelism`]). Each running hash holds its argon2
    /// memory, so this also bounds the memory logins take.
    ///
    /// Configure before cloning: clones made earlier keep the limit they were made with.
    pub fn max_concurrent_hashes(mut self, max: usize) -> Self {
        self.pool = HashPool::new(max, self.pool.max_queued);
        self
    }

    /// How many `_async` calls may wait for a hash slot (default
    /// [`DEFAULT_QUEUED_PER_HASH`] per concurrent hash). A call that finds the queue full
    /// fails at once with a 503 `service-unavailable` problem and `Retry-After: 1`; with 0,
    /// every call that finds all slots busy does.
    ///
    /// Configure before cloning: clones made earlier keep the limit they were made with.
    pub fn max_queued_hashes(mut self, max: usize) -> Self {
        self.pool = HashPool::new(self.pool.max_running, max);
        self
    }

    /// Hashes a password for storage (a PHC string with its own random salt), on the
    /// calling thread. In a request handler, use [`Passwords::hash_async`].
    pub fn hash(&self, password: &str) -> Result<String, ApiError> {
        self.engine.hash(password.as_bytes())
    }

    /// Checks `password` against the user's stored hash, or, for an unknown user
    /// (`None`), against the dummy hash, on the calling thread. Always one hash
    /// computation; always the same 401. In a request handler, use
    /// [`Passwords::verify_async`].
    pub fn verify(&self, stored: Option<&str>, password: &str) -> Result<(), ApiError> {
        if self.engine.check(stored, &Candidate::new(password))? {
            Ok(())
        } else {
            Err(wrong_password())
        }
    }

    /// [`Passwords::hash`] on the blocking pool, behind the concurrency limit: the calling
    /// task waits without blocking its thread. A full queue is a 503 problem with
    /// `Retry-After`.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime (actix-web's is one).
    pub async fn hash_async(&self, password: &str) -> Result<String, ApiError> {
        let password = password.as_bytes().to_vec();
        self.off_thread(move |engine| engine.hash(&password))
            .await?
    }

    /// [`Passwords::verify`] on the blocking pool, behind the concurrency limit: one
    /// `invalid-credentials` 401 for an unknown user (`None`) and a wrong password, after
    /// one hash computation in both cases; a 503 problem with `Retry-After` when the queue
    /// is full (no hash is computed then).
    ///
    /// If the calling task is dropped (the client went away) while the hash runs, the hash
    /// still completes and keeps its slot until then, so the limit holds.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime (actix-web's is one).
    pub async fn verify_async(&self, stored: Option<&str>, password: &str) -> Result<(), ApiError> {
        if self.check_async(stored, password).await? {
            Ok(())
        } else {
            Err(wrong_password())
        }
    }

    /// The check of [`Passwords::verify_async`]: `Ok(true)` for the right password of a
    /// known user, `Ok(false)` after a check that failed, `Err` when no check was made (a
    /// full queue, a failed task).
    pub(crate) async fn check_async(
        &self,
        stored: Option<&str>,
        password: &str,
    ) -> Result<bool, ApiError> {
        let stored = stored.map(str::to_owned);
        let candidate = Candidate::new(password);
        self.off_thread(move |engine| engine.check(stored.as_deref(), &candidate))
            .await?
    }

    /// Runs `job` on the blocking pool once a hash slot is free.
    async fn off_thread<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Engine) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let admission = self.pool.admit().ok_or_else(hashing_busy)?;
        let permit = self
            .pool
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ApiError::internal(format!("password hashing pool: {e}")))?;
        let engine = self.engine.clone();
        actix_web::rt::task::spawn_blocking(move || {
            // Both are held until the hash is done, even if the caller is gone.
            let _slot = (admission, permit);
            job(&engine)
        })
        .await
        .map_err(|e| ApiError::internal(format!("password hashing task failed: {e}")))
    }

    /// How many hash computations were made so far, by this handle and its clones (for
    /// tests that compare the work done for unknown users and wrong passwords, or check
    /// that a refused login cost none).
    pub fn hash_operations(&self) -> u64 {
        self.engine.operations.load(Ordering::Relaxed)
    }

    /// How many `_async` calls are running a hash or queued for one right now (a gauge
    /// for monitoring; at most the two limits added together).
    pub fn hashes_in_flight(&self) -> usize {
        self.pool.admitted.load(Ordering::Acquire)
    }
}

impl Default for Passwords {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Passwords {
        Passwords::with_params(1024, 1, 1).unwrap()
    }

    #[actix_rt::test]
    async fn async_checks_keep_the_equal_work_property() {
        let passwords = cheap();
        let stored = passwords.hash_async("right").await.unwrap();
        let before = passwords.hash_operations();
        assert!(passwords.verify_async(Some(&stored), "right").await.is_ok());
        let wrong = passwords
            .verify_async(Some(&stored), "wrong")
            .await
            .unwrap_err();
        let unknown = passwords.verify_async(None, "right").await.unwrap_err();
        let garbage = passwords
            .verify_async(Some("not a phc string"), "right")
            .await
            .unwrap_err();
        assert_eq!(passwords.hash_operations() - before, 4);
        for err in [&wrong, &unknown, &garbage] {
            assert_eq!(err.problem(), &problems::INVALID_CREDENTIALS);
        }
        let long = "x".repeat(MAX_PASSWORD_BYTES + 1);
        let stored_long = passwords.hash(&long[..MAX_PASSWORD_BYTES]).unwrap();
        assert!(
            passwords
                .verify_async(Some(&stored_long), &long)
                .await
                .is_err(),
            "an over-long password never matches"
        );
        assert_eq!(passwords.hashes_in_flight(), 0);
    }

    #[actix_rt::test]
    async fn a_full_queue_fails_fast_without_hashing() {
        // Slow enough that the first hash is still running when the others arrive.
        let passwords = Passwords::with_params(8 * 1024, 4, 1)
            .unwrap()
            .max_concurrent_hashes(1)
            .max_queued_hashes(1);
        let before = passwords.hash_operations();
        let (a, b, c) = futures_util::future::join3(
            passwords.verify_async(None, "a"),
            passwords.verify_async(None, "b"),
            passwords.verify_async(None, "c"),
        )
        .await;
        let statuses = [a, b, c].map(|r| r.unwrap_err().problem().status());
        assert_eq!(statuses, [401, 401, 503]);
        assert_eq!(
            passwords.hash_operations() - before,
            2,
            "the refused call hashed nothing"
        );
        assert_eq!(passwords.hashes_in_flight(), 0);
        // Room again once the queue drained.
        assert_eq!(
            passwords
                .verify_async(None, "d")
                .await
                .unwrap_err()
                .problem()
                .status(),
            401
        );
    }

    #[actix_rt::test]
    async fn a_dropped_caller_gives_its_queue_place_back() {
        let passwords = Passwords::with_params(8 * 1024, 4, 1)
            .unwrap()
            .max_concurrent_hashes(1)
            .max_queued_hashes(1);
        {
            let running = std::pin::pin!(passwords.verify_async(None, "a"));
            let queued = std::pin::pin!(passwords.verify_async(None, "b"));
            // Poll both once: one runs, one waits; then drop them.
            let mut both = futures_util::future::select(running, queued);
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            assert!(std::pin::Pin::new(&mut both).poll(&mut cx).is_pending());
            assert_eq!(passwords.hashes_in_flight(), 2);
        }
        // The queued caller left at once; the running hash finishes on its own.
        for _ in 0..200 {
            if passwords.hashes_in_flight() == 0 {
                break;
            }
            actix_web::rt::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(passwords.hashes_in_flight(), 0);
    }
}
