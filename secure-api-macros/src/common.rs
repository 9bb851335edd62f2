//! Parsing helpers shared by both macros.

use std::fmt::Display;

use syn::meta::ParseNestedMeta;
use syn::{Attribute, Token};

use crate::ctxt::Ctxt;

/// Whether what follows `key` has the expected form (`form`, e.g. `meta.input.peek(Token![=])`).
/// When not, records `message` at `key` and skips the value, so that parsing goes on.
pub fn expect_form(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    key: &syn::Ident,
    form: bool,
    message: impl Display,
) -> syn::Result<bool> {
    if !form {
        cx.error_spanned_by(key, message);
        skip_value(meta)?;
    }
    Ok(form)
}

/// Parses the arguments of every `#[name(...)]` among `attrs` with `each`, as
/// `parse_nested_meta` does. A syntax error is recorded and parsing goes on with the next
/// attribute.
pub fn each_nested_meta(
    cx: &Ctxt,
    attrs: &[Attribute],
    name: &str,
    mut each: impl FnMut(ParseNestedMeta<'_>) -> syn::Result<()>,
) {
    for attr in attrs.iter().filter(|a| a.path().is_ident(name)) {
        if let Err(e) = attr.parse_nested_meta(&mut each) {
            cx.syn_error(e);
        }
    }
}

/// A key's name when it is one identifier; empty (matching no key) for a longer path.
pub fn key_name(path: &syn::Path) -> String {
    path.get_ident()
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// Consumes whatever follows a key (`= value` or `(...)`), so parsing can continue after an
/// error.
pub fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.input.parse::<Token![=]>()?;
        meta.input.parse::<syn::Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        content.parse::<proc_macro2::TokenStream>()?;
    }
    Ok(())
}

/// Parses `(a, b = 1, c(...))` after a key with `each`, like `parse_nested_meta`, but
/// accepts empty parentheses: returns whether there was anything inside.
pub fn nested(
    meta: &ParseNestedMeta<'_>,
    each: impl FnMut(ParseNestedMeta<'_>) -> syn::Result<()>,
) -> syn::Result<bool> {
    use syn::parse::Parser;
    let content;
    syn::parenthesized!(content in meta.input);
    let tokens: proc_macro2::TokenStream = content.parse()?;
    if tokens.is_empty() {
        return Ok(false);
    }
    syn::meta::parser(each).parse2(tokens)?;
    Ok(true)
}

/// A path as written, `a::b`, for messages about it.
pub fn path_text(path: &syn::Path) -> String {
    let segments = path.segments.iter().map(|s| s.ident.to_string());
    let text = segments.collect::<Vec<_>>().join("::");
    match path.leading_colon {
        Some(_) => format!("::{text}"),
        None => text,
    }
}
