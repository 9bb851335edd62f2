//! Procedural macros of secure-api. Depend on `secure-api-runtime`, which re-exports them
//! and documents them in full.
//!
//! Set `SECURE_API_DEBUG_EXPAND=1` while compiling to print every expansion to stderr.

// One small function per option and per rule: CI's `clippy -D warnings` holds the macros to
// it (the workspace lints apply too).
#![warn(clippy::too_many_lines)]

mod common;
mod ctxt;
#[cfg(test)]
mod doc_keys;
mod endpoint;
mod input;
/// A link to `secure-api-runtime/src/shared/`: the grammar and limits both crates share.
mod shared;
mod ty;

use proc_macro::TokenStream;
use shared::{limits, suggest, units};

/// Derives `SecureInput`: normalisation and validation of a request struct from
/// `#[secure(...)]` field attributes.
///
/// # Grammar
///
/// ```text
/// #[secure(crate = "path")]                     // on the struct, optional
/// #[secure(rule, rule, ...)]                    // on a field, repeatable
///
/// rule := length(min = N, max = N)              // chars of a string, elements of a collection
///       | range(min = X, max = X)               // inclusive, integers and floats
///       | pattern = "regex"                     // must match the whole value
///       | email | ip | uuid
///       | url                                   // absolute http(s) URL, no user-info
///       | url(public)                           // ... whose host is a public internet host
///       | one_of(lit, ...)                      // strings or numbers
///       | deny("value", ...)                    // refuses values that look like an entry
///       | custom = path::to::check              // fn(&T) -> Result<(), &'static str>; &str for strings
///       | nested                                // validate the field's SecureInput type (explicitly)
///       | skip                                  // do not validate nested inputs in this field
///       | each(rule, ...)                       // rules for every item of a Vec / VecDeque / array
///       | trim | lowercase | uppercase           // normalisers, String fields only
///       | nfc | nfkc                            // Unicode normalisation, String fields only
/// ```
///
/// # Checks
///
/// At compile time, each spanned at the offending token: unknown rules and `url` options
/// (with the nearest name suggested), rules on the wrong field type, `min > max`, missing
/// bounds, invalid regexes, duplicate rules, `lowercase` with `uppercase`, `nfc` with
/// `nfkc`, empty or duplicate `one_of` / `deny` lists (`deny` entries that look the same,
/// such as `"admin"` and `"ＡＤＭＩＮ"`, are duplicates), `deny` entries with no visible
/// character, `deny` entries the field's `pattern` (with its `length`) provably rejects in
/// every spelling, `skip` with `nested` or on a field that holds no nested input, fields
/// whose type depends on a type parameter without `nested` or `skip` (the derive cannot
/// tell whether they are validated inputs), `SecureInput` types held where validation
/// cannot reach them (map values, set items, `Rc`, `Arc`, `Cow`, references) without
/// `skip`, tuple structs, enums, and serde attributes the derive cannot honour (`flatten`,
/// `transparent`, `from`, `try_from`, `remote`).
///
/// # Semantics
///
/// Normalisers run first, in place, in a fixed order: `nfkc` (folding compatibility forms
/// such as fullwidth letters before the case mapping sees them), `trim`, the case mapping,
/// then `nfc` or `nfkc` (again). Then every rule runs in the order written, fields in
/// declaration order; every failure is collected. Rules on an `Option<T>` apply when it is
/// `Some`. Violations point at the field's name in the input (serde's `rename` and
/// `rename_all` are followed) and carry a stable code (the rule's name, `url_public` for a
/// well-formed URL whose host is not public, or the code a custom check returns) and, for
/// `length` and `range`, the bounds; they never carry the value.
///
/// `deny` compares the value's and the entries' UTS #39 confusable skeletons,
/// case-insensitively and with default-ignorable code points removed, so `ａｄｍｉｎ`,
/// `adm\u{200B}in` and Cyrillic `аdmin` are refused by `deny("admin")` while `administrator`
/// passes (see `secure_api_runtime::validation::DenyList`).
///
/// `url(public)` refuses loopback, private, link-local, CGNAT, multicast, reserved and
/// cloud-metadata addresses in every numeric disguise, and `localhost`-style and other
/// non-public names, reading the host as WHATWG URL parsers do (see
/// `secure_api_runtime::validation::is_public_url`). A public name can still resolve
/// to a private address: check the connected address too (`validation::is_public_ip`).
///
/// A field whose type implements `SecureInput` is validated even without `nested` (after
/// the field's own rules), also inside `Option`, `Box`, `Vec`, `VecDeque` and arrays, with
/// pointers into the nested input; `nested` says so explicitly (and fails to compile if the
/// type does not implement the trait), `skip` opts out.
#[proc_macro_derive(SecureInput, attributes(secure))]
pub fn derive_secure_input(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    let out = input::derive(&input);
    debug_print("SecureInput", &input.ident, &out);
    out.into()
}

/// Makes an async handler a secure endpoint: authenticated and authorized as it says, rate
/// limited per client, with its body bounded, optionally idempotent, and (with a route)
/// registered like actix's `#[post("/path")]`.
///
/// # Grammar
///
/// ```text
/// #[secure_endpoint(option, ...)]
///
/// option := get("/path") | post("/path") | put("/path") | patch("/path") | delete("/path")
///         | head("/path") | options("/path")      // route: App::new().service(handler)
///         | rate = "N/s" | "N/min" | "N/h" | "N/day" | "unlimited"
///         | burst = N                              // GCRA only; default N of the rate
///         | algorithm = "gcra" | "sliding_window"
///         | tier(name = "N/unit", ...)             // per-tier rates; `anonymous` for no principal
///         | key = "ip" | "principal" | "ip_and_principal"
///         | cost = N                               // units charged per request (default 1)
///         | max_body = "16KiB"                     // B, KB, KiB, MB, MiB, GB, GiB; at most 1GiB
///         | idempotent                             // with the defaults below
///         | idempotent(idempotent_option, ...)
///         | auth                                   // any authenticated caller
///         | auth(condition, ...)                   // ... meeting every condition
///         | public                                 // credentials are never looked at
///         | on_store_error = "fail_closed" | "allow"   // rate limit when its store fails
///         | crate = "path::to::secure_api_runtime"
///
/// idempotent_option := ttl = "24h"                 // replay window: ms, s, min, h, day (default 24h)
///                    | required = true             // a request without a key is a 400 (default)
///                    | required = false            // ... or runs without idempotency
///                    | wait = "2s"                 // wait for an in-flight first request (default 0)
///
/// condition := roles("role", ...)                  // every role listed
///            | permissions("resource:action" | Enum::Variant, ...)   // every permission listed
///            | any(condition, ...)                 // at least one condition
///            | all(condition, ...)                 // every condition
/// ```
///
/// # Checks
///
/// At compile time, each spanned at the offending token: unknown options (named in full,
/// with the nearest name suggested) at every level, options in the wrong form, duplicate
/// options, two routes, malformed route paths; malformed, negative, zero or overflowing
/// rates, whitespace inside a rate, size or duration (`"100 / s"`), unknown algorithms,
/// keys and units, `burst = 0`, `cost = 0`, a cost more than the endpoint's rate or any of its tiers can ever allow, `burst` without `rate` and
/// `algorithm` without `rate` or `tier` (the app's default policy would silently replace
/// them), `burst`/`cost`/`key`/`algorithm` with `rate = "unlimited"`, `unlimited` as a
/// tier's rate, empty `tier()` lists and duplicate tiers, `burst` with a sliding window,
/// sliding windows over 10,000 per window, a body limit of zero; `idempotent` on
/// GET/HEAD/OPTIONS routes, zero or malformed durations, a `ttl` over 30 days, a `wait`
/// over 30 seconds or not shorter than `ttl`; basic auth, empty `roles()`,
/// `permissions()`, `any()` and `all()` lists, invalid or duplicate roles and permissions
/// (a typed permission that does not exist fails to compile at its path), `public` with
/// `auth`; unknown `on_store_error` policies, `on_store_error` on an endpoint without a
/// rate limit (`rate = "unlimited"` without tiers), and `on_store_error` inside
/// `idempotent(...)` or `auth(...)` (those always fail closed); non-async handlers, `self` receivers, generic handlers and `impl Trait`
/// arguments, more than 16 arguments, and handlers taking a raw `web::Json<T>` (use
/// `Valid<T>`).
///
/// On error the handler still expands to its usual shape (the service struct with a route,
/// the handler function without), so code that registers it reports nothing more than the
/// real errors.
///
/// # Semantics
///
/// Without a route the function keeps its name and can be passed to
/// `web::resource(..).route(web::post().to(handler))`; with one, it becomes a unit struct
/// to pass to `App::service` (other methods on the same path fall through to other
/// resources; unmatched methods get a 404 problem). The handler keeps its signature,
/// extractors and return type. Each request runs, in order:
///
/// 1. authentication: a bearer token, when sent, is verified (an invalid one is a 401);
///    with `auth` a verified token is required (401 without one); `public` never looks at
///    credentials;
/// 2. the rate limit, charged to the `key` (by default the principal when there is one,
///    else the client's address) at the principal's `tier` rate, else the endpoint's
///    `rate`, else the app's default rate: a refused request gets a 429 problem with
///    `Retry-After` before any extractor reads the body. Each request costs `cost` units;
///    `burst` is the GCRA bucket's size, and `algorithm = "sliding_window"` allows at most
///    the rate's count in any window;
/// 3. authorization: a principal that does not meet `auth(...)`'s conditions gets a 403;
/// 4. the body limit, on the payload stream itself (`max_body`, else the app's
///    `InputLimits`, 64 KiB by default, for every extractor: a 413 problem past it);
/// 5. with `idempotent`, on unsafe methods: the `Idempotency-Key` is claimed, or the
///    response of the first request with it is replayed for `ttl` (see the runtime's
///    `idempotency` module);
/// 6. the handler's own extractors and body, as written.
///
/// The response gets the `RateLimit` / `RateLimit-Policy` fields. `crate` names the
/// runtime crate for code that re-exports it under another path.
///
/// A rate limit is kept per client under a key derived from the endpoint's method, route,
/// handler (its module path and name) and tier, and the app's key secret, so that every
/// instance of the app sharing a store (Redis) and the secret shares the limit.
///
/// When a check's store cannot answer (Redis down, slow or refusing writes), the request
/// fails closed: a 503 problem with `Retry-After`. `on_store_error` chooses for the rate
/// limit only: `"allow"` lets the request through without a limit (logged at warn level,
/// at most one line per endpoint every 10 seconds, with the count of the others), and
/// `"fail_closed"` keeps the 503; without it, the app's
/// `SecureApiBuilder::on_limiter_error` decides (fail closed by default). Idempotency and
/// authentication (token revocation, sessions) always fail closed, whatever is chosen: an
/// idempotent handler never runs unprotected, and a revoked token is never let in.
///
/// Every endpoint registers itself in the endpoint inventory (`SecureApi::inventory`), and,
/// with the runtime's `openapi` feature, is an operation of `SecureApi::openapi`'s OpenAPI
/// document (with a route): its parameters and body from its validated inputs, its security
/// requirement, rate limit, `Idempotency-Key` and problem responses.
#[proc_macro_attribute]
pub fn secure_endpoint(args: TokenStream, item: TokenStream) -> TokenStream {
    let out = endpoint::secure_endpoint(args.into(), item.clone().into());
    if std::env::var_os("SECURE_API_DEBUG_EXPAND").is_some() {
        eprintln!("// secure_endpoint expansion\n{out}\n");
    }
    out.into()
}

fn debug_print(macro_name: &str, item: &syn::Ident, out: &proc_macro2::TokenStream) {
    if std::env::var_os("SECURE_API_DEBUG_EXPAND").is_some() {
        eprintln!("// {macro_name} expansion for `{item}`\n{out}\n");
    }
}
