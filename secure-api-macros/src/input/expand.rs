//! Expansion: the `SecureInput` impl. Generated code reaches the runtime only through
//! `<crate>::__private`.

use proc_macro2::{Literal as Lit2, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::LitStr;

use super::check::anchored;
use super::confusable;
use super::model::{Bounds, Container, Literal, NumValue, Number, Rule, RuleKind, Rules};
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
    let fields: Vec<TokenStream> = c
        .fields
        .iter()
        .filter_map(|f| {
            let body = value(&p, &f.rules, f.ty, false);
            if body.is_empty() {
                return None;
            }
            let member = f.member;
            let wire = &f.wire;
            Some(quote! {
                {
                    let __loc = #p::Location::Field(__at, #wire);
                    let __v = &mut self.#member;
                    #body
                }
            })
        })
        .collect();
    let (at, errors) = if fields.is_empty() {
        (quote!(_), quote!(_))
    } else {
        (quote!(__at), quote!(__errors))
    };
    let mut out = impl_block(
        c,
        quote! {
            fn secure_at(&mut self, #at: &#p::Location<'_>, #errors: &mut #p::ValidationErrors) {
                #(#fields)*
            }
        },
    );
    out.extend(super::openapi::items(c));
    out
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
    // `nested` on a type that depends on a type parameter bounds it, as serde bounds the
    // parameters of the fields it deserialises: `T: SecureInput` for `#[secure(nested)]
    // payload: T`.
    let generics = bounded_generics(c, &quote!(#p::SecureInput));
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #impl_generics #p::SecureInput for #ident #ty_generics #where_clause {
                #body
            }
        };
    }
}

/// The container's generics, with `leaf: bound` for each distinct `nested` type that
/// mentions a type parameter.
pub(super) fn bounded_generics(c: &Container<'_>, bound: &TokenStream) -> syn::Generics {
    let params: Vec<&syn::Ident> = c.generics.type_params().map(|p| &p.ident).collect();
    let mut generics = c.generics.clone();
    if params.is_empty() {
        return generics;
    }
    let mut leaves = Vec::new();
    for f in &c.fields {
        nested_leaves(&f.rules, f.ty, &mut leaves);
    }
    let mut seen: Vec<String> = Vec::new();
    for leaf in leaves {
        let text = quote!(#leaf).to_string();
        if ty::mentioned_param(leaf, &params).is_some() && !seen.contains(&text) {
            seen.push(text);
            generics
                .make_where_clause()
                .predicates
                .push(syn::parse_quote!(#leaf: #bound));
        }
    }
    generics
}

/// The types an explicit `nested` applies to.
pub(super) fn nested_leaves<'a>(rules: &Rules, ty: &'a syn::Type, out: &mut Vec<&'a syn::Type>) {
    let mut ty = ty;
    while let Some(inner) = ty::option_inner(ty) {
        ty = inner;
    }
    for rule in &rules.list {
        match &rule.kind {
            RuleKind::Nested => out.push(ty),
            RuleKind::Each(inner) => {
                if let Some(item) = ty::seq_item(ty) {
                    nested_leaves(inner, item, out);
                }
            }
            _ => {}
        }
    }
}

/// Code applying `rules` to `__v: &mut ty`, reporting at `__loc`; `skipped` when a `skip`
/// above turned the automatic nested validation off. Empty when there is nothing to do.
fn value(p: &TokenStream, rules: &Rules, ty: &syn::Type, skipped: bool) -> TokenStream {
    if let Some(inner) = ty::option_inner(ty) {
        let body = value(p, rules, inner, skipped);
        if body.is_empty() {
            return body;
        }
        return quote! {
            if let ::core::option::Option::Some(__v) = __v {
                #body
            }
        };
    }
    let kind = ty::kind(ty);
    let skipped = skipped || rules.has("skip");
    // Normalisers run first, in a fixed order, whatever order they were written in. `nfkc`
    // runs before the others too, so that `trim` and the case mapping see compatibility
    // forms already folded (`ℌ` becomes `H` before `lowercase`), and again after them in
    // case the case mapping left a sequence that is not normalised (a no-op check for
    // ASCII).
    let nfkc_first = rules.find("nfkc").map(|r| {
        let f = syn::Ident::new("nfkc", r.key.span());
        quote_spanned!(r.key.span()=> #p::#f(__v);)
    });
    let normalisers = ["trim", "lowercase", "uppercase", "nfc", "nfkc"]
        .into_iter()
        .filter_map(|name| rules.find(name))
        .map(|r| {
            let f = syn::Ident::new(r.name(), r.key.span());
            quote_spanned!(r.key.span()=> #p::#f(__v);)
        });
    let checks = rules
        .list
        .iter()
        .filter(|r| !r.is_normaliser() && !matches!(r.kind, RuleKind::Skip))
        .map(|r| check(p, r, ty, kind, skipped));
    let auto = if skipped || rules.has("nested") || rules.has("each") {
        TokenStream::new()
    } else {
        auto(p, ty)
    };
    quote! {
        #nfkc_first
        #(#normalisers)*
        #(#checks)*
        #auto
    }
}

/// The automatic nested validation of `__v: &mut ty` for a field without `nested`: a type
/// the derive cannot classify is validated if it implements `SecureInput` (autoref
/// specialisation: the trait method on `Nested<T>` is preferred to the fallback on
/// `&Nested<T>` when `T: SecureInput` holds), through `Option`s and sequences. Values it
/// cannot reach (map values, `Rc`, ...) get a probe that fails to compile if they implement
/// `SecureInput`, so that they are never skipped silently.
fn auto(p: &TokenStream, ty: &syn::Type) -> TokenStream {
    if let Some(inner) = ty::option_inner(ty) {
        let body = auto(p, inner);
        if body.is_empty() {
            return body;
        }
        return quote! {
            if let ::core::option::Option::Some(__v) = __v {
                #body
            }
        };
    }
    if let Some(item) = ty::seq_item(ty) {
        let body = auto(p, item);
        if body.is_empty() {
            return body;
        }
        return quote! {
            for (__i, __v) in __v.iter_mut().enumerate() {
                let __loc = #p::Location::Index(&__loc, __i);
                #body
            }
        };
    }
    match ty::nest(ty) {
        ty::Nest::Never => TokenStream::new(),
        ty::Nest::Maybe(leaf) => {
            let span = syn::spanned::Spanned::span(leaf);
            quote_spanned! {span=>
                {
                    #[allow(unused_imports)]
                    use #p::{NestedPlain as _, NestedSecureInput as _};
                    (&#p::Nested::new(__v)).secure_nested(&__loc, __errors);
                }
            }
        }
        ty::Nest::Unreachable(leaves) => {
            let probes = leaves.into_iter().map(|leaf| {
                let span = syn::spanned::Spanned::span(leaf);
                quote_spanned! {span=>
                    (&#p::Probe::<#leaf>::new()).probe().refuse();
                }
            });
            quote! {
                {
                    #[allow(unused_imports)]
                    use #p::{ProbePlain as _, ProbeSecureInput as _};
                    #(#probes)*
                }
            }
        }
    }
}

/// The check of one rule on `__v: &mut ty`, spanned at the rule: one function per rule.
fn check(p: &TokenStream, rule: &Rule, ty: &syn::Type, kind: Kind, skipped: bool) -> TokenStream {
    let span = rule.key.span();
    // The value as `&str`, for the string rules.
    let s = quote_spanned!(span=> #p::as_str(&*__v));
    match &rule.kind {
        RuleKind::Length(b) => length(p, b, span),
        RuleKind::Range(b) => range(p, b, kind, span),
        RuleKind::Pattern(lit) => pattern(p, lit, &s, span),
        RuleKind::Url { public: Some(_) } => public_url(p, &s, span),
        RuleKind::Email | RuleKind::Url { public: None } | RuleKind::Ip | RuleKind::Uuid => {
            predicate(p, rule.name(), &s, span)
        }
        RuleKind::OneOf(items) => one_of(p, items, kind, &s, span),
        RuleKind::Deny(entries) => deny(p, entries, &s, span),
        RuleKind::Custom(path) => custom(p, path, kind, &s, span),
        RuleKind::Nested => nested(p, ty),
        RuleKind::Each(inner) => each(p, inner, ty, skipped, span),
        RuleKind::Trim
        | RuleKind::Lowercase
        | RuleKind::Uppercase
        | RuleKind::Nfc
        | RuleKind::Nfkc
        | RuleKind::Skip => {
            unreachable!("normalisers are emitted before the checks; `skip` emits nothing")
        }
    }
}

fn length(p: &TokenStream, b: &Bounds, span: Span) -> TokenStream {
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

fn range(p: &TokenStream, b: &Bounds, kind: Kind, span: Span) -> TokenStream {
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

fn pattern(p: &TokenStream, lit: &LitStr, s: &TokenStream, span: Span) -> TokenStream {
    let anchored = LitStr::new(&anchored(&lit.value()), lit.span());
    quote_spanned! {span=>
        static __PATTERN: #p::Pattern = #p::Pattern::new(#anchored);
        if !__PATTERN.is_match(#s) {
            __errors.push(&__loc, "pattern");
        }
    }
}

/// `url(public)`: a malformed URL fails as `url`; a well-formed one whose host is not
/// public fails as `url_public`.
fn public_url(p: &TokenStream, s: &TokenStream, span: Span) -> TokenStream {
    quote_spanned! {span=>
        if !#p::is_url(#s) {
            __errors.push(&__loc, "url");
        } else if !#p::has_public_host(#s) {
            __errors.push(&__loc, "url_public");
        }
    }
}

/// `email`, `url`, `ip`, `uuid`: the runtime's `is_<name>`, failing with the code `<name>`.
fn predicate(p: &TokenStream, name: &str, s: &TokenStream, span: Span) -> TokenStream {
    let f = syn::Ident::new(&format!("is_{name}"), span);
    quote_spanned! {span=>
        if !#p::#f(#s) {
            __errors.push(&__loc, #name);
        }
    }
}

fn one_of(
    p: &TokenStream,
    items: &[Literal],
    kind: Kind,
    s: &TokenStream,
    span: Span,
) -> TokenStream {
    if matches!(items.first(), Some(Literal::Str(_))) {
        return quote_spanned! {span=>
            if !#p::one_of(#s, &[#(#items),*]) {
                __errors.push(&__loc, "one_of");
            }
        };
    }
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

/// `deny`: the entries' confusable keys, computed here once; the runtime computes the
/// value's key with the same Unicode data.
fn deny(p: &TokenStream, entries: &[LitStr], s: &TokenStream, span: Span) -> TokenStream {
    let mut keys: Vec<LitStr> = Vec::new();
    for e in entries {
        let key = LitStr::new(&confusable::key(&e.value()), e.span());
        if !keys.iter().any(|k| k.value() == key.value()) {
            keys.push(key);
        }
    }
    quote_spanned! {span=>
        if #p::is_denied_key(#s, &[#(#keys),*]) {
            __errors.push(&__loc, "deny");
        }
    }
}

/// `custom = path`: string fields are passed as `&str`, everything else as `&T`.
fn custom(
    p: &TokenStream,
    path: &syn::Path,
    kind: Kind,
    s: &TokenStream,
    span: Span,
) -> TokenStream {
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

/// `nested`, spanned at the field's type: a type without `SecureInput` is reported there,
/// with the trait's `on_unimplemented` message naming the derive.
fn nested(p: &TokenStream, ty: &syn::Type) -> TokenStream {
    quote_spanned! {syn::spanned::Spanned::span(ty)=>
        <#ty as #p::SecureInput>::secure_at(__v, &__loc, __errors);
    }
}

/// `each(...)`: the inner rules on every item, reported at its index.
fn each(p: &TokenStream, inner: &Rules, ty: &syn::Type, skipped: bool, span: Span) -> TokenStream {
    let item_ty = ty::seq_item(ty).expect("checked: `each` on a sequence");
    let body = value(p, inner, item_ty, skipped);
    quote_spanned! {span=>
        for (__i, __v) in __v.iter_mut().enumerate() {
            let __loc = #p::Location::Index(&__loc, __i);
            #body
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
