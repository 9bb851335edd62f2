//! Parsing helpers shared by both macros.

use syn::Token;
use syn::meta::ParseNestedMeta;

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
