//! Syntactic classification of field types, for checks that can be decided at expansion
//! time. Types the macro cannot see through (aliases, user types) are `Kind::Unknown` and are
//! left to trait bounds with `#[diagnostic::on_unimplemented]` messages.

use syn::{GenericArgument, PathArguments, Type};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `String`: string rules and normalisers.
    String,
    /// `&str`, `Cow<str>`, `Box<str>`, `Arc<str>`, `Rc<str>`: string rules only.
    Str,
    /// Integers; `signed` tells whether negative bounds make sense.
    Int {
        signed: bool,
        bits: u32,
    },
    Float,
    Bool,
    Char,
    /// A collection; `seq` when its items can be visited mutably in order (`each`).
    Collection {
        seq: bool,
    },
    Unknown,
}

impl Kind {
    pub fn describe(self) -> &'static str {
        match self {
            Kind::String => "a `String`",
            Kind::Str => "a borrowed or shared string",
            Kind::Int { .. } => "an integer",
            Kind::Float => "a floating-point number",
            Kind::Bool => "a `bool`",
            Kind::Char => "a `char`",
            Kind::Collection { .. } => "a collection",
            Kind::Unknown => "a type the rule cannot be checked against",
        }
    }

    pub fn is_number(self) -> bool {
        matches!(self, Kind::Int { .. } | Kind::Float)
    }

    pub fn is_string(self) -> bool {
        matches!(self, Kind::String | Kind::Str)
    }
}

fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        Type::Group(g) => last_segment(&g.elem),
        Type::Paren(p) => last_segment(&p.elem),
        _ => None,
    }
}

/// The type arguments of the last path segment.
fn type_args(seg: &syn::PathSegment) -> Vec<&Type> {
    match &seg.arguments {
        PathArguments::AngleBracketed(args) => args
            .args
            .iter()
            .filter_map(|a| match a {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// `T` when `ty` is `Option<T>`.
pub fn option_inner(ty: &Type) -> Option<&Type> {
    let seg = last_segment(ty)?;
    let args = type_args(seg);
    (seg.ident == "Option" && args.len() == 1).then(|| args[0])
}

/// The item type of a sequence whose items `each` can visit (`Vec<T>`, `VecDeque<T>`,
/// `[T; N]`, `Box<[T]>`).
pub fn seq_item(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Array(a) => Some(&a.elem),
        Type::Group(g) => seq_item(&g.elem),
        Type::Paren(p) => seq_item(&p.elem),
        _ => {
            let seg = last_segment(ty)?;
            let args = type_args(seg);
            if (seg.ident == "Vec" || seg.ident == "VecDeque") && args.len() == 1 {
                return Some(args[0]);
            }
            if seg.ident == "Box"
                && args.len() == 1
                && let Type::Slice(s) = args[0]
            {
                return Some(&s.elem);
            }
            None
        }
    }
}

/// `PhantomData<T>`: carries no data, never validated.
pub fn is_phantom(ty: &Type) -> bool {
    last_segment(ty).is_some_and(|seg| seg.ident == "PhantomData")
}

/// The first of `params` (the container's type parameters) that `ty` mentions.
pub fn mentioned_param<'a>(ty: &Type, params: &[&'a syn::Ident]) -> Option<&'a syn::Ident> {
    fn walk<'a>(
        tokens: proc_macro2::TokenStream,
        params: &[&'a syn::Ident],
    ) -> Option<&'a syn::Ident> {
        tokens.into_iter().find_map(|t| match t {
            proc_macro2::TokenTree::Ident(i) => params.iter().copied().find(|p| **p == i),
            proc_macro2::TokenTree::Group(g) => walk(g.stream(), params),
            _ => None,
        })
    }
    if is_phantom(ty) {
        return None;
    }
    walk(quote::ToTokens::to_token_stream(ty), params)
}

/// Where a field's contents may hold `SecureInput` values, for the automatic nested
/// validation: `Option`s, sequences and `Box`es are looked through to their items.
pub enum Nest<'a> {
    /// Nothing below can be a validated input (strings, numbers, `PhantomData`, ...).
    Never,
    /// A type the derive cannot classify: validated if it implements `SecureInput`.
    Maybe(&'a Type),
    /// Values the derive cannot reach mutably (map values, set items, `Rc`, `Arc`, `Cow`,
    /// references): refused if they implement `SecureInput`.
    Unreachable(Vec<&'a Type>),
}

/// The items a map, set or shared pointer holds, which validation cannot reach.
fn held_items(ty: &Type) -> Option<Vec<&Type>> {
    match ty {
        Type::Reference(r) => return Some(vec![&r.elem]),
        Type::Slice(s) => return Some(vec![&s.elem]),
        _ => {}
    }
    let seg = last_segment(ty)?;
    let args = type_args(seg);
    let name = seg.ident.to_string();
    match (name.as_str(), args.len()) {
        ("HashMap" | "BTreeMap" | "IndexMap", n) if n >= 2 => Some(vec![args[1]]),
        ("HashSet" | "BTreeSet" | "IndexSet" | "Rc" | "Arc" | "Cow", n) if n >= 1 => {
            Some(vec![args[0]])
        }
        _ => None,
    }
}

/// Classifies a field type (or item type) for the automatic nested validation.
pub fn nest(ty: &Type) -> Nest<'_> {
    if let Some(inner) = option_inner(ty) {
        return nest(inner);
    }
    if let Some(item) = seq_item(ty) {
        return nest(item);
    }
    if matches!(
        kind(ty),
        Kind::String | Kind::Str | Kind::Int { .. } | Kind::Float | Kind::Bool | Kind::Char
    ) {
        return Nest::Never;
    }
    if let Some(held) = held_items(ty) {
        let mut leaves = Vec::new();
        for item in held {
            unreachable_leaves(item, &mut leaves);
        }
        return if leaves.is_empty() {
            Nest::Never
        } else {
            Nest::Unreachable(leaves)
        };
    }
    if kind(ty) == Kind::Unknown && !is_phantom(ty) {
        Nest::Maybe(ty)
    } else {
        Nest::Never
    }
}

/// The types below an unreachable container that could be validated inputs.
fn unreachable_leaves<'a>(ty: &'a Type, out: &mut Vec<&'a Type>) {
    match nest(ty) {
        Nest::Never => {}
        Nest::Maybe(t) => out.push(t),
        Nest::Unreachable(ts) => out.extend(ts),
    }
}

/// Whether `ty` may hold a `SecureInput` value somewhere below it.
pub fn may_nest(ty: &Type) -> bool {
    !matches!(nest(ty), Nest::Never)
}

/// The kind of a (non-`Option`) type.
pub fn kind(ty: &Type) -> Kind {
    match ty {
        Type::Reference(r) => match &*r.elem {
            Type::Path(p) if p.path.is_ident("str") => Kind::Str,
            Type::Slice(_) => Kind::Collection { seq: false },
            other => kind(other),
        },
        Type::Array(_) => Kind::Collection { seq: true },
        Type::Slice(_) => Kind::Collection { seq: false },
        Type::Group(g) => kind(&g.elem),
        Type::Paren(p) => kind(&p.elem),
        Type::Path(_) => {
            let Some(seg) = last_segment(ty) else {
                return Kind::Unknown;
            };
            let name = seg.ident.to_string();
            let args = type_args(seg);
            let str_arg =
                args.len() == 1 && matches!(args[0], Type::Path(p) if p.path.is_ident("str"));
            match name.as_str() {
                "String" if args.is_empty() => Kind::String,
                "Cow" | "Box" | "Arc" | "Rc" if str_arg => Kind::Str,
                "Cow" if args.len() == 1 => Kind::Unknown,
                "Box" if args.len() == 1 && matches!(args[0], Type::Slice(_)) => {
                    Kind::Collection { seq: true }
                }
                "Box" | "Arc" | "Rc" if args.len() == 1 => Kind::Unknown,
                "i8" => Kind::Int {
                    signed: true,
                    bits: 8,
                },
                "i16" => Kind::Int {
                    signed: true,
                    bits: 16,
                },
                "i32" => Kind::Int {
                    signed: true,
                    bits: 32,
                },
                "i64" => Kind::Int {
                    signed: true,
                    bits: 64,
                },
                "i128" => Kind::Int {
                    signed: true,
                    bits: 128,
                },
                "isize" => Kind::Int {
                    signed: true,
                    bits: 64,
                },
                "u8" => Kind::Int {
                    signed: false,
                    bits: 8,
                },
                "u16" => Kind::Int {
                    signed: false,
                    bits: 16,
                },
                "u32" => Kind::Int {
                    signed: false,
                    bits: 32,
                },
                "u64" => Kind::Int {
                    signed: false,
                    bits: 64,
                },
                "u128" => Kind::Int {
                    signed: false,
                    bits: 128,
                },
                "usize" => Kind::Int {
                    signed: false,
                    bits: 64,
                },
                "f32" | "f64" => Kind::Float,
                "bool" => Kind::Bool,
                "char" => Kind::Char,
                "Vec" | "VecDeque" => Kind::Collection { seq: true },
                "HashMap" | "HashSet" | "BTreeMap" | "BTreeSet" | "IndexMap" | "IndexSet" => {
                    Kind::Collection { seq: false }
                }
                _ => Kind::Unknown,
            }
        }
        _ => Kind::Unknown,
    }
}

/// The inclusive range of an integer kind, as `i128` (u128's top half is clamped).
pub fn int_bounds(signed: bool, bits: u32) -> (i128, i128) {
    if bits >= 128 {
        return if signed {
            (i128::MIN, i128::MAX)
        } else {
            (0, i128::MAX)
        };
    }
    if signed {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else {
        (0, (1i128 << bits) - 1)
    }
}

/// The parts of a collection type that its schema describes.
pub enum Collection<'a> {
    /// `Vec<T>`, `VecDeque<T>`, `Box<[T]>`, slices, and `[T; N]` (with `N` when it is a
    /// literal).
    Seq(&'a Type, Option<usize>),
    /// `HashSet<T>`, `BTreeSet<T>`, `IndexSet<T>`.
    Set(&'a Type),
    /// `HashMap<K, V>`, `BTreeMap<K, V>`, `IndexMap<K, V>`: the value type.
    Map(&'a Type),
}

/// The items (or values) of a collection type.
pub fn collection(ty: &Type) -> Option<Collection<'_>> {
    match ty {
        Type::Array(a) => {
            let len = match &a.len {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Int(n),
                    ..
                }) => n.base10_parse::<usize>().ok(),
                _ => None,
            };
            return Some(Collection::Seq(&a.elem, len));
        }
        Type::Slice(s) => return Some(Collection::Seq(&s.elem, None)),
        Type::Reference(r) => return collection(&r.elem),
        Type::Group(g) => return collection(&g.elem),
        Type::Paren(p) => return collection(&p.elem),
        _ => {}
    }
    if let Some(item) = seq_item(ty) {
        return Some(Collection::Seq(item, None));
    }
    let seg = last_segment(ty)?;
    let args = type_args(seg);
    match (seg.ident.to_string().as_str(), args.len()) {
        ("HashSet" | "BTreeSet" | "IndexSet", n) if n >= 1 => Some(Collection::Set(args[0])),
        ("HashMap" | "BTreeMap" | "IndexMap", n) if n >= 2 => Some(Collection::Map(args[1])),
        _ => None,
    }
}

/// `T` of `Box<T>`, `Rc<T>`, `Arc<T>` and `Cow<T>` (serde reads them as `T`), when `T` is
/// neither `str` nor a slice (those are strings and sequences of their own).
pub fn pointee(ty: &Type) -> Option<&Type> {
    let seg = last_segment(ty)?;
    let args = type_args(seg);
    let name = seg.ident.to_string();
    if !matches!(name.as_str(), "Box" | "Rc" | "Arc" | "Cow") || args.len() != 1 {
        return None;
    }
    match args[0] {
        Type::Slice(_) => None,
        Type::Path(p) if p.path.is_ident("str") => None,
        inner => Some(inner),
    }
}

/// The width of a float type: 32 for `f32`, else 64.
pub fn float_bits(ty: &Type) -> u32 {
    match last_segment(ty) {
        Some(seg) if seg.ident == "f32" => 32,
        _ => 64,
    }
}
