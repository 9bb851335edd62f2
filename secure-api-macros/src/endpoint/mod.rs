//! `#[secure_endpoint]`: parse → check → expand.

mod check;
mod expand;
pub(crate) mod model;
mod parse;

use proc_macro2::TokenStream;

use crate::ctxt::Ctxt;

pub fn secure_endpoint(args: TokenStream, item: TokenStream) -> TokenStream {
    let func: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let mut out = syn::Error::new_spanned(
                &item,
                "`#[secure_endpoint]` goes on an `async fn` handler",
            )
            .to_compile_error();
            out.extend(item);
            return out;
        }
    };
    let routed = parse::names_a_route(&args);
    let cx = Ctxt::new();
    let parsed = parse::args(&cx, args);
    let endpoint = check::endpoint(&cx, parsed, &func);
    match cx.check() {
        Ok(()) => expand::endpoint(&endpoint),
        Err(errors) => {
            let mut out = errors.to_compile_error();
            out.extend(expand::fallback(&endpoint, routed));
            out
        }
    }
}
