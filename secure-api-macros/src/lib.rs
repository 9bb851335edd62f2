//! Procedural macros of secure-api. Depend on `secure-api-runtime`, which re-exports them
//! and documents them in full.
//!
//! Set `SECURE_API_DEBUG_EXPAND=1` while compiling to print every expansion to stderr.

mod ctxt;
mod input;
mod suggest;
mod ty;

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
///       | email | url | ip | uuid
///       | one_of(lit, ...)                      // strings or numbers
///       | deny("value", ...)                    // case-insensitive blocklist
///       | custom = path::to::check              // fn(&T) -> Result<(), &'static str>; &str for strings
///       | nested                                // the field's type derives SecureInput
///       | each(rule, ...)                       // rules for every item of a Vec / VecDeque / array
///       | trim | lowercase | uppercase | nfc     // normalisers, String fields only
/// ```
///
/// # Checks
///
/// At compile time, each spanned at the offending token: unknown rules (with the nearest
/// name suggested), rules on the wrong field type, `min > max`, missing bounds, invalid
/// regexes, duplicate rules, `lowercase` with `uppercase`, empty or duplicate `one_of` /
/// `deny` lists, `deny` entries the field's `trim`, `length` or `pattern` already rejects,
/// tuple structs, enums, and serde attributes the derive cannot honour (`flatten`,
/// `transparent`, `from`, `try_from`, `remote`).
///
/// # Semantics
///
/// Normalisers run first (`trim`, the case mapping, then `nfc`), in place, then every rule
/// runs in the order written, fields in declaration order; every failure is collected. Rules
/// on an `Option<T>` apply when it is `Some`. Violations point at the field's name in the
/// input (serde's `rename` and `rename_all` are followed) and carry a stable code (the rule's
/// name, or the code a custom check returns) and, for `length` and `range`, the bounds; they
/// never carry the value.
#[proc_macro_derive(SecureInput, attributes(secure))]
pub fn derive_secure_input(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    let out = input::derive(&input);
    debug_print("SecureInput", &input.ident, &out);
    out.into()
}

fn debug_print(macro_name: &str, item: &syn::Ident, out: &proc_macro2::TokenStream) {
    if std::env::var_os("SECURE_API_DEBUG_EXPAND").is_some() {
        eprintln!("// {macro_name} expansion for `{item}`\n{out}\n");
    }
}
