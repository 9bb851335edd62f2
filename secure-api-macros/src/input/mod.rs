//! `#[derive(SecureInput)]`: parse → check → expand.

mod check;
mod confusable;
mod ecma;
mod expand;
mod model;
mod openapi;
mod parse;
mod serde_attr;

use proc_macro2::TokenStream;

use crate::ctxt::Ctxt;

pub fn derive(input: &syn::DeriveInput) -> TokenStream {
    let cx = Ctxt::new();
    let container = parse::container(&cx, input);
    if let Some(c) = &container {
        check::container(&cx, c);
    }
    match (cx.check(), container) {
        (Ok(()), Some(c)) => expand::derive(&c),
        (Err(errors), Some(c)) => {
            let mut out = errors.to_compile_error();
            out.extend(expand::fallback(&c));
            out
        }
        (Err(errors), None) => errors.to_compile_error(),
        (Ok(()), None) => unreachable!("a container is only missing after an error"),
    }
}
