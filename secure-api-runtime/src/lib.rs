//! Secure-by-construction actix-web APIs.
//!
//! Annotate request types with `#[derive(SecureInput)]`, take them through [`Valid`],
//! [`ValidQuery`] or [`ValidPath`], and install [`SecureLayer`]: handlers then only ever
//! see normalised, validated input, every error response is an RFC 9457 problem that leaks
//! nothing, and every response carries the security headers.
//!
//! ```
//! use actix_web::{web, App, HttpResponse};
//! use secure_api_runtime::prelude::*;
//!
//! #[derive(serde::Deserialize, SecureInput)]
//! struct CreateUserRequest {
//!     #[secure(trim, lowercase, length(min = 3, max = 32), pattern = "[a-z0-9_-]+",
//!              deny("admin", "root"))]
//!     username: String,
//!     #[secure(trim, lowercase, email)]
//!     email: String,
//!     #[secure(range(min = 0, max = 150))]
//!     age: i32,
//! }
//!
//! async fn create_user(input: Valid<CreateUserRequest>) -> Result<HttpResponse, ApiError> {
//!     let user = input.into_inner();
//!     Ok(HttpResponse::Created().json(serde_json::json!({ "user": user.username })))
//! }
//!
//! let app = App::new()
//!     .wrap(SecureLayer::default())
//!     .route("/api/users", web::post().to(create_user));
//! ```
//!
//! The policy code (validation rules, input limits) has no actix types and can be used on
//! its own: see [`validation`] and [`input`].
//!
//! # Features
//!
//! - `redis`: every store on Redis, so that several instances act as one (`redis`).
//! - `openapi`: the OpenAPI 3.1 document of the annotations, `SecureApi::openapi`, as
//!   utoipa's model (`openapi`). Off by default: without it the macros generate no OpenAPI
//!   code and utoipa is not built.
pub mod api;
pub mod auth;
pub mod client;
mod client_key;
pub mod clock;
mod endpoint;
pub mod extract;
pub mod idempotency;
pub mod input;
pub mod inventory;
pub mod layer;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod problem;
#[cfg(feature = "redis")]
pub mod redis;
mod shared;
pub mod store;
pub mod telemetry;
pub mod throttle;
mod tracked;
pub mod validation;

pub use api::SecureApi;
pub use extract::{Valid, ValidPath, ValidQuery};
pub use layer::{SecureLayer, SecurityHeaders};
pub use problem::{ApiError, ProblemType, problems};
pub use secure_api_macros::{SecureInput, secure_endpoint};
pub use validation::{SecureInput, ValidationErrors};

/// Everything a handler module needs: `use secure_api_runtime::prelude::*;`.
pub mod prelude {
    pub use crate::api::SecureApi;
    pub use crate::auth::Principal;
    pub use crate::extract::{Valid, ValidPath, ValidQuery};
    pub use crate::input::InputLimits;
    pub use crate::layer::{SecureLayer, SecurityHeaders};
    pub use crate::problem::{ApiError, ProblemType, problems};
    pub use crate::validation::{SecureInput, ValidationErrors};
    pub use actix_web::HttpResponse;
    pub use secure_api_macros::{SecureInput, secure_endpoint};
}

/// What the macros' generated code calls, and the internals that this repository's own
/// tests and benchmarks measure. Not a public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    pub use crate::validation::nested::{
        Nested, NestedPlain, NestedSecureInput, Probe, ProbePlain, ProbeSecureInput,
    };
    pub use crate::validation::rules::{
        AsStr, HasLength, Pattern, deny_key, has_public_host, in_range, is_denied_key, is_email,
        is_ip, is_url, is_uuid, length_within, lowercase, nfc, nfkc, one_of, trim, uppercase,
    };
    pub use crate::validation::{Bound, Location, SecureInput, ValidationErrors};

    /// The schema function of a handler's validated input `T` for its `InputSpec`: a
    /// function with the feature `openapi`, `()` without it.
    pub use crate::__openapi_input as openapi_input;
    /// `#[derive(SecureInput)]`'s OpenAPI items, kept with the feature `openapi`, dropped
    /// without it (the user's crate cannot see the runtime's features).
    pub use crate::__openapi_item as openapi_item;
    pub use crate::auth::Permission;
    pub use crate::auth::rule::{AuthRequirement, PermissionRef, Rule};
    pub use crate::endpoint::{
        EndpointSpec, IdempotencySpec, InputSource, InputSpec, KeyKind, Limit, Registration,
        RouteSpec, TierPolicy, run, run_idempotent,
    };
    /// The OpenAPI schema model that `#[derive(SecureInput)]` implements under the
    /// `openapi` feature.
    #[cfg(feature = "openapi")]
    pub use crate::openapi::__derive as openapi;
    /// The grammar of rates, durations and sizes that `#[secure_endpoint]` checks, for
    /// fuzzing and property tests.
    pub use crate::shared::units;
    pub use crate::store::OnStoreError;
    pub use crate::throttle::{Algorithm, Policy, Rate};
    /// The distributed registry that `#[secure_endpoint]` submits every endpoint to
    /// (`inventory::submit!`), read by [`crate::inventory`].
    pub use ::inventory;
    pub use actix_web;

    /// The stable identifier of a rate-limit policy, computed in a `const` by the
    /// generated code.
    pub use crate::client_key::policy_id;
    // Benchmarks only: the limiter's keys and the hasher of its map.
    pub use crate::client_key::{Identity, KeyDeriver};
    pub use crate::throttle::memory::pass_through::PassThrough;

    /// The key of an `Idempotency-Key` header value (a structured-field string or a bare
    /// token, 1 to 255 bytes), or `None` when the value is refused: the parser the runners
    /// use, for fuzzing.
    pub fn idempotency_key(value: &[u8]) -> Option<Vec<u8>> {
        crate::idempotency::parse_key(value)
            .ok()
            .map(std::borrow::Cow::into_owned)
    }

    /// The string view of a string-like field.
    #[inline]
    pub fn as_str<T: AsStr + ?Sized>(value: &T) -> &str {
        value.as_str()
    }

    /// The custom-rule signature: `Err(code)` with a fixed, public code.
    #[inline]
    pub fn custom<T: ?Sized>(
        value: &T,
        check: impl FnOnce(&T) -> Result<(), &'static str>,
    ) -> Result<(), &'static str> {
        check(value)
    }
}

/// `#[derive(SecureInput)]` wraps its OpenAPI items (the `PartialSchema`, `ToSchema` and
/// `InputSchema` impls) in this macro: with the feature `openapi` they are kept.
#[cfg(feature = "openapi")]
#[doc(hidden)]
#[macro_export]
macro_rules! __openapi_item {
    ($($item:tt)*) => { $($item)* };
}

/// `#[derive(SecureInput)]` wraps its OpenAPI items in this macro: without the feature
/// `openapi` they are dropped, so that apps without it need neither utoipa nor the code.
#[cfg(not(feature = "openapi"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __openapi_item {
    ($($item:tt)*) => {};
}

/// The schema function of a validated input type, for `InputSpec::schema`: the type's node,
/// found by autoderef specialisation (a derived input, a utoipa type, or unknown).
#[cfg(feature = "openapi")]
#[doc(hidden)]
#[macro_export]
macro_rules! __openapi_input {
    ($ty:ty) => {
        || {
            #[allow(unused_imports)]
            use $crate::openapi::__derive::{
                ProbeInput as _, ProbeNone as _, ProbePartialSchema as _, ProbeToSchema as _,
            };
            (&&&$crate::openapi::__derive::SchemaProbe::<$ty>::new()).node()
        }
    };
}

/// Without the feature `openapi`, `InputSpec::schema` is `()`.
#[cfg(not(feature = "openapi"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __openapi_input {
    ($ty:ty) => {
        ()
    };
}

/// The runtime's internals are not part of its public API: what generated code calls is
/// reachable only through `__private`, and internal helpers not at all. Each path below was
/// public once; each block must fail to compile.
///
/// ```compile_fail
/// use secure_api_runtime::endpoint::run;
/// ```
/// ```compile_fail
/// use secure_api_runtime::endpoint::EndpointSpec;
/// ```
/// ```compile_fail
/// use secure_api_runtime::auth::Rule;
/// ```
/// ```compile_fail
/// use secure_api_runtime::auth::AuthRequirement;
/// ```
/// ```compile_fail
/// use secure_api_runtime::auth::PermissionRef;
/// ```
/// ```compile_fail
/// use secure_api_runtime::idempotency::IdempotencySpec;
/// ```
/// ```compile_fail
/// use secure_api_runtime::idempotency::fingerprint;
/// ```
/// ```compile_fail
/// use secure_api_runtime::input::check_depth;
/// ```
/// ```compile_fail
/// use secure_api_runtime::problem::problem_for_status;
/// ```
/// ```compile_fail
/// use secure_api_runtime::throttle::memory::PassThrough;
/// ```
/// ```compile_fail
/// use secure_api_runtime::validation::rules::trim;
/// ```
/// ```compile_fail
/// use secure_api_runtime::client::KeyDeriver;
/// ```
///
/// The same items through `__private`, and the public homes of what users need:
///
/// ```
/// use secure_api_runtime::__private::{
///     AuthRequirement, EndpointSpec, IdempotencySpec, PassThrough, Rule, run, trim,
/// };
/// use secure_api_runtime::auth::ANONYMOUS_TIER;
/// use secure_api_runtime::idempotency::IDEMPOTENT_REPLAYED;
/// use secure_api_runtime::validation::{DenyList, is_public_ip};
/// ```
#[cfg(doctest)]
pub struct InternalsArePrivate;
