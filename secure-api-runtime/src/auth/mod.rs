//! Authentication and authorization: bearer JWTs only, short-lived access tokens, sessions
//! of rotating refresh tokens that can always be ended, and per-endpoint role and permission
//! rules decided from the verified token on every request.
//!
//! - [`jwt::JwtAuth`]: verifies (and issues) access tokens: an allow-list of one algorithm
//!   per app, `exp`, `iat`, `iss`, `aud`, `sub` and `jti` required, `nbf` and `typ` checked,
//!   lifetimes over 15 minutes refused at issuance and at verification, and a
//!   [`revocation::Revocation`] store consulted on every request (revoked tokens, sessions
//!   and subjects are refused at once).
//! - [`refresh::TokenService`]: sessions. A login starts a session (a refresh family, its id
//!   in the access tokens' `sid` claim and in [`Principal::session_id`]); a refresh spends
//!   the presented refresh token, asks the app's [`refresh::AccountCheck`] for the
//!   account's current grant (or a refusal: gone, disabled, credentials changed) and issues
//!   the next pair. Presenting an older token of a family revokes it. Sessions end at an
//!   idle lifetime (14 days) and an absolute one (30 days), on
//!   [`logout`](refresh::TokenService::logout), and for a whole subject on
//!   [`revoke_subject`](refresh::TokenService::revoke_subject), which also refuses the
//!   subject's outstanding access tokens at once.
//! - [`password::Passwords`]: argon2 password checks that do the same work for unknown
//!   users as for wrong passwords, on the blocking pool behind a concurrency limit.
//! - [`login::LoginGuard`]: login protection, a per-account failure limit in the app's
//!   rate-limit store beside the endpoint's per-address limit.
//! - [`Principal`]: the verified caller, as an extractor.

pub mod jwt;
pub mod login;
#[cfg(feature = "oidc")]
pub mod oidc;
pub mod password;
pub mod refresh;
pub mod revocation;
pub(crate) mod rule;

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use actix_web::{FromRequest, HttpMessage, HttpRequest};

use crate::problem::{ApiError, AuditMark, problems};
use crate::telemetry::audit::AuthFailureClass;

pub(crate) use rule::AuthRequirement;

/// The verified caller of a request: subject, roles, permissions and rate-limit tier, all
/// from a verified token (never from the URL or the body).
///
/// As an extractor it is present on authenticated requests; on other requests it is a 401
/// (take `Option<Principal>` on endpoints where authentication is optional).
///
/// A middleware of your own may authenticate requests by other means and insert a
/// `Principal` into the request extensions; endpoints then treat the request as
/// authenticated (and leave revocation checks to that middleware: only tokens verified by
/// the app's [`JwtAuth`](jwt::JwtAuth) are checked against its revocation store).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Principal {
    /// The verified subject (`sub`).
    pub subject: String,
    /// Roles (`roles` claim).
    pub roles: Vec<String>,
    /// Permissions (`permissions` claim).
    pub permissions: Vec<String>,
    /// The rate-limit tier (`tier` claim; `user` when absent).
    pub tier: String,
    /// The token's id (`jti`), if it has one.
    #[serde(skip)]
    pub token_id: Option<String>,
    /// The session the token belongs to (`sid`): set on tokens issued by a
    /// [`TokenService`](refresh::TokenService), whose
    /// [`logout`](refresh::TokenService::logout) ends it.
    #[serde(skip)]
    pub session_id: Option<String>,
}

/// The tier of authenticated principals whose token names none.
pub const DEFAULT_TIER: &str = "user";

/// The tier of requests without a principal: `tier(anonymous = "10/s")` on
/// `#[secure_endpoint]` limits them.
pub const ANONYMOUS_TIER: &str = "anonymous";

impl Principal {
    /// A principal with no roles or permissions in the default tier.
    pub fn new(subject: impl Into<String>) -> Self {
        Principal {
            subject: subject.into(),
            roles: Vec::new(),
            permissions: Vec::new(),
            tier: DEFAULT_TIER.to_owned(),
            token_id: None,
            session_id: None,
        }
    }

    /// Whether the principal has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the principal has `permission`.
    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }

    /// `Ok` when the principal is `owner` (typically an id from the URL) or has `role`;
    /// else a 403. The URL names the resource; the token decides who may touch it.
    ///
    /// ```
    /// use secure_api_runtime::auth::Principal;
    /// let alice = Principal::new("alice");
    /// assert!(alice.require_owner_or_role("alice", "admin").is_ok());
    /// assert_eq!(alice.require_owner_or_role("bob", "admin").unwrap_err().problem().status(), 403);
    /// ```
    pub fn require_owner_or_role(&self, owner: &str, role: &str) -> Result<(), ApiError> {
        if self.subject == owner || self.has_role(role) {
            Ok(())
        } else {
            Err(forbidden())
        }
    }
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<Principal>()
                .cloned()
                .ok_or_else(|| unauthorized(AuthFailure::Missing)),
        )
    }
}

/// A permission named by a typed enum: `auth(permissions(Perm::UsersDelete))` checks
/// `Perm::UsersDelete.name()`, and a variant that does not exist fails to compile.
///
/// ```
/// use secure_api_runtime::auth::Permission;
/// enum Perm { UsersDelete }
/// impl Permission for Perm {
///     fn name(&self) -> &'static str {
///         match self { Perm::UsersDelete => "users:delete" }
///     }
/// }
/// assert_eq!(Perm::UsersDelete.name(), "users:delete");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot name permissions",
    note = "implement `secure_api_runtime::auth::Permission` for `{Self}`, mapping each variant to its permission string"
)]
pub trait Permission {
    /// The permission string the token must carry.
    fn name(&self) -> &'static str;
}

/// Why a request has no principal. Never told to the client: every case is the same 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthFailure {
    /// No `Authorization` header.
    Missing,
    /// Not a bearer token (for example basic auth), or several headers.
    Malformed,
    /// The token did not verify (signature, algorithm, claims, expiry, revocation, ...).
    Invalid,
    /// The token verified, but it, its session or its subject was revoked (the same 401 as
    /// [`Invalid`](Self::Invalid); told apart in the audit event only).
    Revoked,
    /// The revocation store could not answer: the token can be neither accepted nor
    /// refused now. A 503, not a 401, so that clients retry rather than log out.
    Unavailable,
}

impl From<AuthFailure> for ApiError {
    fn from(failure: AuthFailure) -> Self {
        unauthorized(failure)
    }
}

/// The response for a failure: one `invalid-credentials` 401 for every failure, with the
/// RFC 6750 challenge (`error="invalid_token"` when a token was presented); for
/// [`AuthFailure::Unavailable`] a `service-unavailable` 503 with `Retry-After: 1`.
pub(crate) fn unauthorized(failure: AuthFailure) -> ApiError {
    let challenge = match failure {
        AuthFailure::Unavailable => {
            return ApiError::new(problems::SERVICE_UNAVAILABLE)
                .with_header(RETRY_AFTER, HeaderValue::from_static("1"))
                .with_cause("the revocation store could not answer");
        }
        AuthFailure::Missing => "Bearer realm=\"api\"",
        AuthFailure::Malformed => "Bearer realm=\"api\", error=\"invalid_request\"",
        AuthFailure::Invalid | AuthFailure::Revoked => {
            "Bearer realm=\"api\", error=\"invalid_token\""
        }
    };
    let class = match failure {
        AuthFailure::Missing => AuthFailureClass::Missing,
        AuthFailure::Malformed => AuthFailureClass::Malformed,
        AuthFailure::Revoked => AuthFailureClass::Revoked,
        AuthFailure::Invalid | AuthFailure::Unavailable => AuthFailureClass::Invalid,
    };
    ApiError::new(problems::INVALID_CREDENTIALS)
        .with_header(WWW_AUTHENTICATE, HeaderValue::from_static(challenge))
        .with_cause(match failure {
            AuthFailure::Missing => "no credentials",
            AuthFailure::Malformed => "malformed Authorization header",
            AuthFailure::Invalid | AuthFailure::Revoked | AuthFailure::Unavailable => {
                "token failed verification"
            }
        })
        .with_audit(AuditMark::Class(class))
}

/// The challenge of a 403 that names no scope.
const INSUFFICIENT_SCOPE: &str = "Bearer realm=\"api\", error=\"insufficient_scope\"";

/// The 403 for an authenticated principal that is not allowed.
pub(crate) fn forbidden() -> ApiError {
    ApiError::new(problems::FORBIDDEN).with_header(
        WWW_AUTHENTICATE,
        HeaderValue::from_static(INSUFFICIENT_SCOPE),
    )
}

/// The 403 for an authenticated principal that `rule` does not allow. When granting
/// permissions (OAuth scopes) would satisfy the rule, the challenge names them, as RFC 6750
/// §3 describes: `Bearer realm="api", error="insufficient_scope", scope="items:delete"`.
/// Roles are never named (a scope cannot grant one), nor is anything of the token.
#[cold]
pub(crate) fn forbidden_by(rule: &rule::Rule, principal: &Principal) -> ApiError {
    let mut missing = Vec::new();
    rule.missing_scopes(principal, &mut missing);
    // RFC 6750 §3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ); any other is left out.
    let token_char = |c: u8| c == 0x21 || (0x23..=0x5B).contains(&c) || (0x5D..=0x7E).contains(&c);
    missing.retain(|s| !s.is_empty() && s.bytes().all(token_char));
    if missing.is_empty() {
        return forbidden();
    }
    let challenge = format!("{INSUFFICIENT_SCOPE}, scope=\"{}\"", missing.join(" "));
    match HeaderValue::try_from(challenge) {
        Ok(value) => ApiError::new(problems::FORBIDDEN).with_header(WWW_AUTHENTICATE, value),
        Err(_) => forbidden(),
    }
}

/// The bearer token of a request: `Ok(None)` without an `Authorization` header.
pub(crate) fn bearer_token(req: &HttpRequest) -> Result<Option<&str>, AuthFailure> {
    let mut values = req
        .headers()
        .get_all(actix_web::http::header::AUTHORIZATION);
    let value = match (values.next(), values.next()) {
        (None, _) => return Ok(None),
        (Some(_), Some(_)) => return Err(AuthFailure::Malformed),
        (Some(v), None) => v.to_str().map_err(|_| AuthFailure::Malformed)?,
    };
    let (scheme, token) = value.split_once(' ').ok_or(AuthFailure::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthFailure::Malformed);
    }
    let token = token.trim();
    let b64url = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.';
    if token.is_empty() || !token.bytes().all(b64url) {
        return Err(AuthFailure::Malformed);
    }
    Ok(Some(token))
}
