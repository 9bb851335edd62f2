//! Password checks for login handlers: argon2id, with the same work for unknown users as
//! for wrong passwords.

use std::sync::atomic::{AtomicU64, Ordering};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::{AuthFailure, unauthorized};
use crate::problem::ApiError;

/// The longest password considered; longer ones are refused (after the same work).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Hashes and checks passwords with argon2id.
///
/// [`Passwords::verify`] answers one `invalid-credentials` 401 for an unknown user and for
/// a wrong password, and does one hash computation in both cases: for an unknown user it
/// checks the password against a dummy hash made with the same parameters.
///
/// ```
/// use secure_api_runtime::auth::password::Passwords;
///
/// let passwords = Passwords::with_params(1024, 1, 1).unwrap(); // cheap, for the example
/// let stored = passwords.hash("correct horse").unwrap();
/// assert!(passwords.verify(Some(&stored), "correct horse").is_ok());
/// assert!(passwords.verify(Some(&stored), "wrong").is_err());
/// assert!(passwords.verify(None, "anything").is_err()); // unknown user, same work
/// ```
pub struct Passwords {
    argon: Argon2<'static>,
    dummy: String,
    operations: AtomicU64,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords")
            .field("params", self.argon.params())
            .finish_non_exhaustive()
    }
}

impl Passwords {
    /// argon2id with the OWASP-recommended parameters (19 MiB, 2 passes, 1 lane).
    pub fn new() -> Self {
        Self::with_params(19 * 1024, 2, 1).expect("the default argon2 parameters are valid")
    }

    /// argon2id with `memory_kib` KiB, `passes` iterations and `lanes` lanes.
    pub fn with_params(memory_kib: u32, passes: u32, lanes: u32) -> Result<Self, argon2::Error> {
        let params = Params::new(memory_kib, passes, lanes, None)?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let salt = SaltString::generate(&mut OsRng);
        let dummy_password = super::jwt::random_id(24);
        let dummy = argon
            .hash_password(dummy_password.as_bytes(), &salt)
            .map_err(|_| argon2::Error::OutputTooShort)?
            .to_string();
        Ok(Passwords {
            argon,
            dummy,
            operations: AtomicU64::new(0),
        })
    }

    /// Hashes a password for storage (a PHC string with its own random salt).
    pub fn hash(&self, password: &str) -> Result<String, ApiError> {
        self.operations.fetch_add(1, Ordering::Relaxed);
        let salt = SaltString::generate(&mut OsRng);
        self.argon
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::internal(e.to_string()))
    }

    /// Checks `password` against the user's stored hash, or, for an unknown user
    /// (`None`), against the dummy hash. Always one hash computation; always the same 401.
    pub fn verify(&self, stored: Option<&str>, password: &str) -> Result<(), ApiError> {
        let parsed = stored.and_then(|s| PasswordHash::new(s).ok());
        let known = parsed.is_some();
        let hash = match parsed {
            Some(h) => h,
            None => {
                PasswordHash::new(&self.dummy).map_err(|e| ApiError::internal(e.to_string()))?
            }
        };
        let candidate = if password.len() > MAX_PASSWORD_BYTES {
            &password.as_bytes()[..MAX_PASSWORD_BYTES]
        } else {
            password.as_bytes()
        };
        self.operations.fetch_add(1, Ordering::Relaxed);
        let matches = self.argon.verify_password(candidate, &hash).is_ok();
        if matches && known && password.len() <= MAX_PASSWORD_BYTES {
            Ok(())
        } else {
            Err(unauthorized(AuthFailure::Invalid))
        }
    }

    /// How many hash computations were made so far (for tests that compare the work done
    /// for unknown users and wrong passwords).
    pub fn hash_operations(&self) -> u64 {
        self.operations.load(Ordering::Relaxed)
    }
}

impl Default for Passwords {
    fn default() -> Self {
        Self::new()
    }
}
