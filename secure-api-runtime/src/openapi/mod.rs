//! The OpenAPI 3.1 document of the annotations (feature `openapi`).
//!
//! The annotations are the one source of truth: `#[derive(SecureInput)]` gives each input
//! type its JSON Schema, with the rules as constraints, and `#[secure_endpoint]` gives each
//! endpoint its operation, with its security requirement, rate limit, `Idempotency-Key`
//! parameter and every problem response it can give. [`SecureApi::openapi`] builds the
//! document from the [endpoint inventory](crate::inventory): nothing to re-type, nothing to
//! drift.
//!
//! The document is [utoipa]'s model (utoipa 6, re-exported here), so it serialises with
//! serde and merges with the documents written with utoipa's macros:
//!
//! ```
//! use secure_api_runtime::openapi::utoipa::openapi::{Info, OpenApi};
//! use secure_api_runtime::prelude::*;
//!
//! /// A note to keep.
//! #[derive(serde::Deserialize, SecureInput)]
//! struct NewNote {
//!     /// The note's text.
//!     #[secure(trim, length(min = 1, max = 280))]
//!     text: String,
//! }
//!
//! #[secure_endpoint(post("/doc/openapi/notes"), auth(roles("editor")), rate = "10/s", idempotent)]
//! async fn create_note(note: Valid<NewNote>) -> HttpResponse {
//!     HttpResponse::Created().finish()
//! }
//!
//! let api = SecureApi::builder().build();
//! let mut doc: OpenApi = api.openapi();
//! doc.info = Info::new("Notes", "1.0.0");
//! let json = serde_json::to_value(&doc).unwrap();
//!
//! let text = &json["components"]["schemas"]["NewNote"]["properties"]["text"];
//! assert_eq!((text["minLength"].as_u64(), text["maxLength"].as_u64()), (Some(1), Some(280)));
//! let op = &json["paths"]["/doc/openapi/notes"]["post"];
//! assert_eq!(op["security"][0]["bearerAuth"], serde_json::json!([]));
//! assert_eq!(op["x-secure-api-auth"]["rule"]["roles"][0], "editor");
//! assert!(op["responses"]["429"]["headers"]["Retry-After"].is_object());
//! ```
//!
//! # Schemas
//!
//! A derived input is an object with `additionalProperties: false` (unknown fields are
//! refused), whose properties are named as the input names them (serde's `rename`,
//! `rename_all` and `alias` followed) and described by their doc comments; fields that are
//! not `Option`s and have no `#[serde(default)]` are `required`; `Option`s also accept
//! `null`. Each rule becomes the JSON Schema keyword that says the same: `length` is
//! `minLength`/`maxLength` for strings (counting characters, as the rule does),
//! `minItems`/`maxItems` for sequences and sets and `minProperties`/`maxProperties` for
//! maps; `range` is `minimum`/`maximum`; `pattern` is the rule's regex in ECMA-262 syntax,
//! anchored as the rule anchors it (`^(?:...)$`); `email`, `url` and `uuid` are `format`s,
//! and `ip` is `anyOf` the `ipv4` and `ipv6` formats; `one_of` is `enum`; `deny` is
//! `not: {enum: [...]}`. Nested inputs are `$ref`s to their own schemas, which are
//! collected into `components/schemas` under their type's name (an input whose name another
//! input of the document already has is under its path instead, `my_app.v2.User`, and the
//! clash is logged at warn level).
//!
//! JSON Schema cannot say everything a rule does; the schema's `description` says the rest
//! in fixed sentences: the normalisers (`trim`, `lowercase`, ... run first, so the
//! constraints apply to the normalised value), the look-alikes that `deny` also refuses,
//! `custom` rules, the stricter parts of `email` and `url`, and a `pattern` whose regex has
//! no exact ECMA-262 form (a Unicode word boundary, for one), which is given in Rust syntax
//! instead of as `pattern`.
//!
//! A derived input also implements utoipa's `PartialSchema` and `ToSchema` (the name is the
//! type's), so your own utoipa documents can refer to it: `#[derive(utoipa::ToSchema)]`
//! fields of its type, `components(schemas(...))`, `request_body = ...`. A field whose type
//! is not an input but implements `ToSchema` is described by that schema; a type with
//! neither is described as unknown.
//!
//! # Operations
//!
//! Every endpoint with a route (`post("/path")` in its attribute) is an operation of the
//! document, under its path (actix's `{id:\d+}` and `{tail}*` written `{id}` and `{tail}`)
//! and method, with the handler's name as `operationId`:
//!
//! - path parameters from its `ValidPath<T>` (every `{name}` of the path is one; a name that
//!   `T` does not describe is a string), query parameters from its `ValidQuery<T>`, the JSON
//!   request body from its `Valid<T>`, with the body limit in its description;
//! - `security`: none (`[]`) for `public`; the bearer JWT scheme [`BEARER_SCHEME`] for `auth`
//!   (the rule, with its roles and permissions, in the description and in
//!   `x-secure-api-auth`); either (`[{}, {"bearerAuth": []}]`) for an endpoint with neither;
//! - the `Idempotency-Key` header parameter of an `idempotent` endpoint, required or not as
//!   the endpoint says;
//! - the rate limit (rate, algorithm, burst, tiers, key, cost, store-failure policy) in the
//!   description and in `x-secure-api-rate-limit`; the `RateLimit` and `RateLimit-Policy`
//!   headers of its responses, and `Retry-After` on 429, 409 and 503;
//! - a `2XX` response for the handler's own answer (its body is the handler's business),
//!   and every problem response the endpoint's configuration can give: 400, 401, 403, 404,
//!   409, 413, 415, 422, 429, 500 and 503 as they apply, each `application/problem+json`
//!   with the RFC 9457 schema [`PROBLEM_SCHEMA`] and the `type` URIs it can carry, from
//!   [`problems`](crate::problem::problems);
//! - `x-secure-api-idempotency` and `x-secure-api-body-limit`, as in the
//!   [inventory](crate::inventory)'s JSON.
//!
//! Values the endpoint leaves to the app (its default rate, its store-failure policy) are
//! the [`SecureApi`]'s, as in the inventory; the body limit of an endpoint without
//! `max_body` is the app's [`InputLimits`](crate::input::InputLimits): build the document
//! with [`Inventory::with_input_limits`](crate::inventory::Inventory::with_input_limits) and
//! [`Inventory::openapi`] when they are not the defaults.
//!
//! An endpoint without a route has no path the document could give it, and is left out.
//!
//! # Merging with your document
//!
//! The `info` of the generated document is a placeholder (`"API"`, version `"0.0.0"`): set
//! it, or merge the document into yours with utoipa's `OpenApi::merge`, which keeps your
//! `info`, adds the paths and components yours does not have, and keeps yours where both
//! have the same path and method or the same component name:
//!
//! ```
//! use secure_api_runtime::openapi::utoipa::openapi::{Info, OpenApi, Paths};
//!
//! let api = secure_api_runtime::SecureApi::builder().build();
//! let mut mine = OpenApi::new(Info::new("My API", "2.1.0"), Paths::new());
//! mine.merge(api.openapi());
//! assert_eq!(mine.info.title, "My API");
//! ```
//!
//! The document is built when asked for, from the registry: nothing of it runs on a
//! request. Serve it from a value built once at start-up.

mod derive;
mod document;

pub use utoipa;

use crate::api::SecureApi;
use crate::inventory::Inventory;

/// The name of the bearer JWT security scheme in `components/securitySchemes`.
pub const BEARER_SCHEME: &str = "bearerAuth";

/// The name of the RFC 9457 problem schema in `components/schemas`.
pub const PROBLEM_SCHEMA: &str = "ProblemDetails";

/// The name of the schema of one failed rule (the `errors` of a 422) in
/// `components/schemas`.
pub const VIOLATION_SCHEMA: &str = "Violation";

/// What `#[derive(SecureInput)]` and `#[secure_endpoint]` generate calls (through
/// `__private::openapi`). Not a public API.
#[doc(hidden)]
pub mod __derive {
    pub use super::derive::*;
}

impl SecureApi {
    /// The OpenAPI 3.1 document of every endpoint with a route in the program's
    /// [inventory](crate::inventory), with this app's defaults: see the
    /// [module](crate::openapi). Feature `openapi`.
    ///
    /// ```
    /// use secure_api_runtime::prelude::*;
    ///
    /// #[secure_endpoint(get("/doc/openapi/health"), public, rate = "unlimited")]
    /// async fn openapi_health() -> HttpResponse {
    ///     HttpResponse::Ok().finish()
    /// }
    ///
    /// let doc = SecureApi::builder().build().openapi();
    /// let json = serde_json::to_value(&doc).unwrap();
    /// assert_eq!(json["openapi"], "3.1.0");
    /// let op = &json["paths"]["/doc/openapi/health"]["get"];
    /// assert_eq!(op["operationId"], "openapi_health");
    /// assert_eq!(op["security"], serde_json::json!([]));
    /// assert!(op["responses"]["429"].is_null()); // unlimited: never a 429
    /// ```
    pub fn openapi(&self) -> utoipa::openapi::OpenApi {
        self.inventory().openapi()
    }
}

impl Inventory {
    /// The OpenAPI 3.1 document of this inventory's endpoints that have a route: see the
    /// [module](crate::openapi). Feature `openapi`.
    ///
    /// Build it from an inventory narrowed with [`retain`](Inventory::retain) to document
    /// one app of a program that links several, and after
    /// [`with_input_limits`](Inventory::with_input_limits) when the app installs its own
    /// [`InputLimits`](crate::input::InputLimits).
    ///
    /// ```
    /// # let api = secure_api_runtime::SecureApi::builder().build();
    /// let doc = api
    ///     .inventory()
    ///     .retain(|e| e.module.starts_with("my_app::"))
    ///     .openapi();
    /// assert!(doc.paths.paths.is_empty());
    /// ```
    pub fn openapi(&self) -> utoipa::openapi::OpenApi {
        document::build(self.endpoints())
    }
}
