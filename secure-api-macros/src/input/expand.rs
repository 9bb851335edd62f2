//! Expansion: the `SecureInput` impl. Generated code reaches the runtime only through
//! `<crate>::__private`.

use proc_macro2::{Literal as Lit2, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::LitStr;

use super::check::anchored;
use super::model::{Container, Literal, NumValue, Number, Rule, RuleKind, Rules};
use crate::ty::{self, Kind};

pub fn runtime_path(c: &Container<'_>) -> TokenStream {
    match &c.krate {
        Some(path) => quote!(#path::__private),
        None => quote!(::secure_api_runtime::__private),
    }
}

/// The impl for a container that passed every check.
pub fn derive(c: &Container<'_>) -> TokenStream {
    let p = runtime_path(c);
    let fields = c.fields.iter().filter(|f| !f.rules.is_empty()).map(|f| {
        let member = f.member;
        let wire = &f.wire;
        let body = value(&p, &f.rules, f.ty);
        quote! {
            {
                let __loc = #p::Location::Field(__at, #wire);
                let __v = &mut self.#member;
                #body
            }
        }
    });
    let unused = c.fields.iter().all(|f| f.rules.is_empty());
    let (at, errors) = if unused {
        (quote!(_), quote!(_))
    } else {
        (quote!(__at), quote!(__errors))
    };
    impl_block(
        c,
        quote! {
            fn secure_at(&mut self, #at: &#p::Location<'_>, #errors: &mut #p::ValidationErrors) {
                #(#fields)*
            }
        },
    )
}

/// An impl that checks nothing, emitted beside the errors so that uses of the type elsewhere
/// do not add unrelated errors.
pub fn fallback(c: &Container<'_>) -> TokenStream {
    let p = runtime_path(c);
    impl_block(
        c,
        quote! {
            fn secure_at(&mut self, _: &#p::Location<'_>, _: &mut #p::ValidationErrors) {}
        },
    )
}

fn impl_block(c: &Container<'_>, body: TokenStream) -> TokenStream {
    let p = runtime_path(c);
    let ident = c.ident;
    let (impl_generics, ty_generics, where_clause) = c.generics.split_for_impl();
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #impl_generics #p::SecureInput for #ident #ty_generics #where_clause {
                #body
            }
        };
    }
}

/// Code applying `rules` to `__v: &mut ty`, reporting at `__loc`.
fn value(p: &TokenStream, rules: &Rules, ty: &syn::Type) -> TokenStream {
    if let Some(inner) = ty::option_inner(ty) {
        let body = value(p, rules, inner);
        return quote! {
            if let ::core::option::Option::Some(__v) = __v {
                #body
            }
        };
    }
    let kind = ty::kind(ty);
    // Normalisers run first, in a fixed order, whatever order they were written in.
    let normalisers = ["trim", "lowercase", "uppercase", "nfc"]
        .into_iter()
        .filter_map(|name| rules.find(name))
        .map(|r| {
            let f = syn::Ident::new(r.name(), r.key.span());
            quote_spanned!(r.key.span()=> #p::#f(__v);)
        });
    let checks = rules
        .list
        .iter()
        .filter(|r| !r.is_normaliser())
        .map(|r| check(p, r, ty, kind));
    quote! {
        #(#normalisers)*
        #(#checks)*
    }
}

fn check(p: &TokenStream, rule: &Rule, ty: &syn::Type, kind: Kind) -> TokenStream {
    let span = rule.key.span();
    let s = quote_spanned!(span=> #p::as_str(&*__v));
    match &rule.kind {
        RuleKind::Length(b) => {
            let min = b.min.as_ref().map_or(0, int_value);
            let max = b.max.as_ref().map_or(u32::MAX as i128, int_value);
            let (min_lit, max_lit) = (usize_lit(min, span), usize_lit(max, span));
            let min_b = bound(p, b.min.as_ref(), false);
            let max_b = bound(p, b.max.as_ref(), false);
            let max_arg = if b.max.is_some() {
                quote!(#max_lit)
            } else {
                quote!(::core::primitive::usize::MAX)
            };
            quote_spanned! {span=>
                if !#p::length_within(&*__v, #min_lit, #max_arg) {
                    __errors.push_bounds(&__loc, "length", #min_b, #max_b);
                }
            }
        }
        RuleKind::Range(b) => {
            let float = kind == Kind::Float;
            let arg = |n: &Option<Number>| match n {
                Some(n) => {
                    let lit = number(n, float);
                    quote!(::core::option::Option::Some(&#lit))
                }
                None => quote!(::core::option::Option::None),
            };
            let (min, max) = (arg(&b.min), arg(&b.max));
            let min_b = bound(p, b.min.as_ref(), float);
            let max_b = bound(p, b.max.as_ref(), float);
            quote_spanned! {span=>
                if !#p::in_range(&*__v, #min, #max) {
                    __errors.push_bounds(&__loc, "range", #min_b, #max_b);
                }
            }
        }
        RuleKind::Pattern(lit) => {
            let anchored = LitStr::new(&anchored(&lit.value()), lit.span());
            quote_spanned! {span=>
                static __PATTERN: #p::Pattern = #p::Pattern::new(#anchored);
                if !__PATTERN.is_match(#s) {
                    __errors.push(&__loc, "pattern");
                }
            }
        }
        RuleKind::Email | RuleKind::Url | RuleKind::Ip | RuleKind::Uuid => {
            let f = syn::Ident::new(&format!("is_{}", rule.name()), span);
            let code = rule.name();
            quote_spanned! {span=>
                if !#p::#f(#s) {
                    __errors.push(&__loc, #code);
                }
            }
        }
        RuleKind::OneOf(items) => {
            let strings = matches!(items.first(), Some(Literal::Str(_)));
            if strings {
                quote_spanned! {span=>
                    if !#p::one_of(#s, &[#(#items),*]) {
                        __errors.push(&__loc, "one_of");
                    }
                }
            } else {
                let float = kind == Kind::Float;
                let items = items.iter().map(|l| match l {
                    Literal::Num(n) => number(n, float),
                    Literal::Str(s) => quote!(#s),
                });
                quote_spanned! {span=>
                    if !#p::one_of(&*__v, &[#(&#items),*]) {
                        __errors.push(&__loc, "one_of");
                    }
                }
            }
        }
        RuleKind::Deny(entries) => {
            let lowered = entries
                .iter()
                .map(|e| LitStr::new(&e.value().to_lowercase(), e.span()));
            quote_spanned! {span=>
                if #p::is_denied(#s, &[#(#lowered),*]) {
                    __errors.push(&__loc, "deny");
                }
            }
        }
        RuleKind::Custom(path) => {
            // String fields are passed as `&str`, everything else as `&T`.
            let arg = if kind.is_string() {
                s.clone()
            } else {
                quote!(&*__v)
            };
            quote_spanned! {span=>
                if let ::core::result::Result::Err(__code) = #p::custom(#arg, #path) {
                    __errors.push(&__loc, __code);
                }
            }
        }
        RuleKind::Nested => {
            // Spanned at the field's type: a type without `SecureInput` is reported there,
            // with the trait's `on_unimplemented` message naming the derive.
            quote_spanned! {syn::spanned::Spanned::span(ty)=>
                <#ty as #p::SecureInput>::secure_at(__v, &__loc, __errors);
            }
        }
        RuleKind::Each(inner) => {
            let item_ty = ty::seq_item(ty).expect("checked: `each` on a sequence");
            let body = value(p, inner, item_ty);
            quote_spanned! {span=>
                for (__i, __v) in __v.iter_mut().enumerate() {
                    let __loc = #p::Location::Index(&__loc, __i);
                    #body
                }
            }
        }
        RuleKind::Trim | RuleKind::Lowercase | RuleKind::Uppercase | RuleKind::Nfc => {
            unreachable!("normalisers are emitted before the checks")
        }
    }
}

impl quote::ToTokens for Literal {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        match self {
            Literal::Str(s) => s.to_tokens(tokens),
            Literal::Num(n) => n.to_tokens(tokens),
        }
    }
}

fn int_value(n: &Number) -> i128 {
    match n.value {
        NumValue::Int(v) => v,
        NumValue::Float(v) => v as i128,
    }
}

fn usize_lit(v: i128, span: Span) -> TokenStream {
    let mut lit = Lit2::usize_suffixed(v.clamp(0, u32::MAX as i128) as usize);
    lit.set_span(span);
    quote!(#lit)
}

/// A numeric literal for comparing against the field: as written, or as a float literal for
/// float fields (so that `min = 0` works on an `f64`).
fn number(n: &Number, float: bool) -> TokenStream {
    if float {
        let mut lit = Lit2::f64_unsuffixed(n.value.as_f64().abs());
        lit.set_span(n.lit.span());
        let neg = &n.neg;
        quote!(#neg #lit)
    } else {
        quote!(#n)
    }
}

/// The `Bound` reported with a violation.
fn bound(p: &TokenStream, n: Option<&Number>, float: bool) -> TokenStream {
    match n {
        None => quote!(::core::option::Option::None),
        Some(n) => match (n.value, float) {
            (NumValue::Int(v), false) => {
                let lit = Lit2::i128_unsuffixed(v);
                quote!(::core::option::Option::Some(#p::Bound::Int(#lit)))
            }
            (v, _) => {
                let lit = Lit2::f64_unsuffixed(v.as_f64());
                quote!(::core::option::Option::Some(#p::Bound::Float(#lit)))
            }
        },
    }
}
