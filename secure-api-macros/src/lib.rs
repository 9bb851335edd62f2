//! Procedural macros of secure-api. Depend on `secure-api-runtime`, which re-exports them
//! and documents them in full.
//!
//! Set `SECURE_API_DEBUG_EXPAND=1` while compiling to print every expansion to stderr.

mod common;
mod ctxt;
mod endpoint;
mod input;
mod suggest;
mod ty;
mod units;

use proc_macro::TokenStream;

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

/// Makes an async handler a secure endpoint: rate limited per client, with its input
/// limits, and (with a route) registered like actix's `#[post("/path")]`.
///
/// # Grammar
///
/// ```text
/// #[secure_endpoint(option, ...)]
///
/// option := get("/path") | post("/path") | put("/path") | patch("/path") | delete("/path")
///         | head("/path") | options("/path")     // route: App::new().service(handler)
///         | rate = "N/s" | "N/min" | "N/h" | "N/day" | "unlimited"
///         | burst = N                              // GCRA only; default N of the rate
///         | algorithm = "gcra" | "sliding_window"
///         | tier(name = "N/unit", ...)             // per-tier rates; `anonymous` for no principal
///         | key = "ip" | "principal" | "ip_and_principal"
///         | cost = N                               // units charged per request (default 1)
///         | max_body = "16KiB"                     // B, KB, KiB, MB, MiB
///         | crate = "path::to::secure_api_runtime"
/// ```
///
/// # Checks
///
/// Unknown options (nearest name suggested), malformed, negative, zero or overflowing rates,
/// unknown algorithms, keys and units, `burst = 0`, `cost = 0`, a cost more than the
/// endpoint's rate or any of its tiers can ever allow, `burst` without `rate` and
/// `algorithm` without `rate` or `tier` (the app's default policy would silently replace
/// them), duplicate options, two routes, `burst`/`cost`/`key`/`algorithm` with
/// `rate = "unlimited"`, `burst` with a sliding window, sliding windows over 10,000 per
/// window, malformed route paths, non-async handlers, `self` receivers, generic handlers,
/// more than 16 arguments, and handlers taking a raw `web::Json<T>` (use `Valid<T>`).
///
/// # Semantics
///
/// Without a route the function keeps its name and can be passed to
/// `web::resource(..).route(web::post().to(handler))`; with one, it becomes a unit struct
/// to pass to `App::service` (other methods on the same path fall through to other
/// resources; unmatched methods get a 404 problem). Each request is first rate limited (the
/// app's default rate when `rate` is not given), then its body is bounded on the payload
/// stream itself (`max_body`, else the app's `InputLimits`, 64 KiB by default, for every
/// extractor: a 413 problem past it), then the handler's own extractors and body run as
/// written, and the response gets the `RateLimit` / `RateLimit-Policy` fields. A
/// refused request gets a 429 problem with `Retry-After` before any extractor reads the body.
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
