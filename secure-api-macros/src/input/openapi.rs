//! Expansion of the input's OpenAPI schema: the `InputSchema`, `PartialSchema` and
//! `ToSchema` impls, wrapped in the runtime's `openapi_item!`, which keeps them when the
//! runtime's `openapi` feature is on and drops them when it is off (the feature of the
//! runtime cannot be seen from the user's crate, where this code lands).
//!
//! Each field is described as a node: its type's shape, read from the type as written, and
//! its rules as written; the runtime turns nodes into JSON Schema. Types the derive cannot
//! read (nested inputs, other user types) are resolved by the runtime's schema probe.

use proc_macro2::{Literal as Lit2, TokenStream};
use quote::quote;
use syn::LitStr;

use super::ecma;
use super::expand::{bounded_generics, runtime_path};
use super::model::{Bounds, Container, Literal, NumValue, Number, RuleKind, Rules};
use crate::common::path_text;
use crate::ty::{self, Collection, Kind};

/// The schema items of a container that passed every check.
pub fn items(c: &Container<'_>) -> TokenStream {
    let p = runtime_path(c);
    let oa = quote!(#p::openapi);
    let ident = c.ident;
    let name = ident.to_string();
    let docs = &c.docs;
    let fields = c.fields.iter().filter(|f| !f.skipped).map(|f| {
        let wire = &f.wire;
        let required = !f.default && ty::option_inner(f.ty).is_none();
        let doc = &f.docs;
        let aliases = &f.aliases;
        let node = node(&oa, &f.rules, f.ty, false);
        quote!(.field(#wire, #required, #doc, &[#(#aliases),*], #node))
    });

    // A type parameter that a `nested` field mentions must be an input with a schema, as it
    // must be a `SecureInput` for the validation impl.
    let generics = bounded_generics(c, &quote!(#oa::InputSchema));
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    quote! {
        const _: () = {
            #p::openapi_item! {
                #[automatically_derived]
                impl #impl_generics #oa::InputSchema for #ident #ty_generics #where_clause {
                    fn object() -> #oa::Object {
                        #[allow(unused_imports)]
                        use #oa::{
                            ProbeInput as _, ProbeNone as _, ProbePartialSchema as _,
                            ProbeToSchema as _,
                        };
                        #oa::Object::new(#docs) #(#fields)*
                    }
                }

                #[automatically_derived]
                impl #impl_generics #oa::utoipa::PartialSchema for #ident #ty_generics #where_clause {
                    fn schema() -> #oa::utoipa::openapi::RefOr<#oa::utoipa::openapi::schema::Schema> {
                        #oa::schema_of::<Self>()
                    }
                }

                #[automatically_derived]
                impl #impl_generics #oa::utoipa::ToSchema for #ident #ty_generics #where_clause {
                    fn name() -> #oa::Cow<'static, ::core::primitive::str> {
                        #oa::Cow::Borrowed(#name)
                    }

                    fn schemas(schemas: &mut #oa::Schemas) {
                        #oa::schemas_of::<Self>(schemas)
                    }
                }
            }
        };
    }
}

/// The node of a value of type `ty` under `rules`; `skipped` below a `skip`.
fn node(oa: &TokenStream, rules: &Rules, ty: &syn::Type, skipped: bool) -> TokenStream {
    if let Some(inner) = ty::option_inner(ty) {
        let inner = node(oa, rules, inner, skipped);
        return quote!(#oa::Node::nullable(#inner));
    }
    let skipped = skipped || rules.has("skip");
    let kind = ty::kind(ty);
    let base = match kind {
        Kind::String | Kind::Str => quote!(#oa::Node::string()),
        Kind::Char => quote!(#oa::Node::char()),
        Kind::Bool => quote!(#oa::Node::boolean()),
        Kind::Int { signed, bits } => quote!(#oa::Node::integer(#signed, #bits)),
        Kind::Float => {
            let bits = ty::float_bits(ty);
            quote!(#oa::Node::number(#bits))
        }
        Kind::Collection { .. } | Kind::Unknown => match ty::collection(ty) {
            Some(coll) => collection(oa, rules, coll, skipped),
            None => match ty::pointee(ty) {
                // `Box<T>` and the like are read as `T`, with the field's rules.
                Some(inner) => return node(oa, rules, inner, skipped),
                None if skipped => quote!(#oa::Node::unvalidated()),
                None => quote!((&&&#oa::SchemaProbe::<#ty>::new()).node()),
            },
        },
    };
    let constraints = rules.list.iter().filter_map(|r| constraint(oa, &r.kind));
    let normalisers: Vec<&str> = ["trim", "lowercase", "uppercase", "nfc", "nfkc"]
        .into_iter()
        .filter(|n| rules.has(n))
        .collect();
    let normalised = (!normalisers.is_empty()).then(|| quote!(.normalised(&[#(#normalisers),*])));
    quote!(#base #normalised #(#constraints)*)
}

/// The node of a collection: its items with the `each` rules.
fn collection(oa: &TokenStream, rules: &Rules, coll: Collection<'_>, skipped: bool) -> TokenStream {
    let empty = Rules::default();
    let each = rules.list.iter().find_map(|r| match &r.kind {
        RuleKind::Each(inner) => Some(inner),
        _ => None,
    });
    match coll {
        Collection::Seq(item, len) => {
            let items = node(oa, each.unwrap_or(&empty), item, skipped);
            let len = match len {
                Some(n) => quote!(::core::option::Option::Some(#n)),
                None => quote!(::core::option::Option::None),
            };
            quote!(#oa::Node::array(#items, #len))
        }
        Collection::Set(item) => {
            let items = node(oa, &empty, item, skipped);
            quote!(#oa::Node::array(#items, ::core::option::Option::None))
        }
        Collection::Map(value) => {
            let values = node(oa, &empty, value, skipped);
            quote!(#oa::Node::map(#values))
        }
    }
}

/// The node method of one rule; `None` for those that shape the node instead (`each`,
/// `nested`, `skip`) and for the normalisers.
fn constraint(oa: &TokenStream, kind: &RuleKind) -> Option<TokenStream> {
    Some(match kind {
        RuleKind::Length(b) => {
            let (min, max) = length_bounds(b);
            quote!(.length(#min, #max))
        }
        RuleKind::Range(b) => {
            let min = opt_num(oa, b.min.as_ref());
            let max = opt_num(oa, b.max.as_ref());
            quote!(.range(#min, #max))
        }
        RuleKind::Pattern(lit) => {
            let ecma = match ecma::pattern(&lit.value()) {
                Some(ecma) => {
                    let ecma = LitStr::new(&ecma, lit.span());
                    quote!(::core::option::Option::Some(#ecma))
                }
                None => quote!(::core::option::Option::None),
            };
            quote!(.pattern(#ecma, #lit))
        }
        RuleKind::Email => quote!(.email()),
        RuleKind::Url { public } => {
            let public = public.is_some();
            quote!(.url(#public))
        }
        RuleKind::Ip => quote!(.ip()),
        RuleKind::Uuid => quote!(.uuid()),
        RuleKind::OneOf(items) => {
            let items = items.iter().map(|l| match l {
                Literal::Str(s) => quote!(#oa::Lit::Str(#s)),
                Literal::Num(n) => {
                    let n = num(oa, n);
                    quote!(#oa::Lit::Num(#n))
                }
            });
            quote!(.one_of(&[#(#items),*]))
        }
        RuleKind::Deny(entries) => quote!(.deny(&[#(#entries),*])),
        RuleKind::Custom(path) => {
            let text = path_text(path);
            quote!(.custom(#text))
        }
        RuleKind::Nested
        | RuleKind::Skip
        | RuleKind::Each(_)
        | RuleKind::Trim
        | RuleKind::Lowercase
        | RuleKind::Uppercase
        | RuleKind::Nfc
        | RuleKind::Nfkc => return None,
    })
}

fn length_bounds(b: &Bounds) -> (TokenStream, TokenStream) {
    let bound = |n: Option<&Number>| match n.map(|n| n.value) {
        Some(NumValue::Int(v)) => {
            let v = Lit2::u64_suffixed(u64::try_from(v).unwrap_or(0));
            quote!(::core::option::Option::Some(#v))
        }
        _ => quote!(::core::option::Option::None),
    };
    (bound(b.min.as_ref()), bound(b.max.as_ref()))
}

fn opt_num(oa: &TokenStream, n: Option<&Number>) -> TokenStream {
    match n {
        Some(n) => {
            let n = num(oa, n);
            quote!(::core::option::Option::Some(#n))
        }
        None => quote!(::core::option::Option::None),
    }
}

/// A number as the runtime's `Num`: the value as written, sign included.
fn num(oa: &TokenStream, n: &Number) -> TokenStream {
    match n.value {
        NumValue::Int(v) => {
            let abs = Lit2::u128_unsuffixed(v.unsigned_abs());
            if v < 0 {
                quote!(#oa::Num::Int(-#abs))
            } else {
                quote!(#oa::Num::Int(#abs))
            }
        }
        NumValue::Float(v) if v.is_finite() => {
            let abs = Lit2::f64_unsuffixed(v.abs());
            if v < 0.0 {
                quote!(#oa::Num::Float(-#abs))
            } else {
                quote!(#oa::Num::Float(#abs))
            }
        }
        NumValue::Float(v) if v > 0.0 => quote!(#oa::Num::Float(::core::f64::INFINITY)),
        NumValue::Float(_) => quote!(#oa::Num::Float(::core::f64::NEG_INFINITY)),
    }
}
