//! Parsing: `#[secure(...)]` attributes into the typed model. Syntax errors are recorded in
//! the context and parsing goes on, so that one typo does not hide the next.

use syn::meta::ParseNestedMeta;
use syn::parse::ParseStream;
use syn::punctuated::Punctuated;
use syn::{Attribute, Lit, LitStr, Token};

use super::model::{
    Bounds, Container, Field, Literal, NumValue, Number, RULE_KEYS, Rule, RuleKind, Rules,
    URL_OPTIONS,
};
use super::serde_attr;
use crate::common::{each_nested_meta, expect_form, key_name, nested, path_text, skip_value};
use crate::ctxt::Ctxt;
use crate::suggest;

const CONTAINER_KEYS: &[&str] = &["crate"];

/// Parses the derive input. Returns `None` (with errors recorded) for shapes the derive does
/// not support.
pub fn container<'a>(cx: &Ctxt, input: &'a syn::DeriveInput) -> Option<Container<'a>> {
    let mut krate = None;
    each_nested_meta(cx, &input.attrs, "secure", |meta| {
        let key = key_name(&meta.path);
        if key == "crate" {
            let lit: LitStr = meta.value()?.parse()?;
            match lit.parse::<syn::Path>() {
                Ok(path) if krate.is_none() => krate = Some(path),
                Ok(_) => cx.error_spanned_by(&meta.path, "duplicate `crate` option; keep one"),
                Err(_) => cx.error_spanned_by(
                    &lit,
                    "`crate` must be a path such as `\"::my_facade::secure_api_runtime\"`",
                ),
            }
            Ok(())
        } else {
            cx.error_spanned_by(
                &meta.path,
                suggest::unknown("container option", &path_text(&meta.path), CONTAINER_KEYS),
            );
            skip_value(&meta)
        }
    });

    let data = match &input.data {
        syn::Data::Struct(data) => data,
        syn::Data::Enum(data) => {
            cx.error_spanned_by(
                data.enum_token,
                "`SecureInput` cannot be derived for enums: validate the fields of a struct \
                 and use an enum field with `custom = ...` for per-variant checks",
            );
            return None;
        }
        syn::Data::Union(data) => {
            cx.error_spanned_by(
                data.union_token,
                "`SecureInput` cannot be derived for unions",
            );
            return None;
        }
    };
    let named = match &data.fields {
        syn::Fields::Named(named) => named,
        syn::Fields::Unnamed(unnamed) => {
            cx.error_spanned_by(
                unnamed,
                "`SecureInput` needs named fields so that errors can point at them; \
                 use `struct Name { field: Type }` instead of a tuple struct",
            );
            return None;
        }
        syn::Fields::Unit => {
            cx.error_spanned_by(
                input.ident.clone(),
                "`SecureInput` on a unit struct validates nothing; add named fields or remove the derive",
            );
            return None;
        }
    };

    let container_serde = serde_attr::container(cx, &input.attrs);
    let fields = named
        .named
        .iter()
        .map(|f| {
            let member = f.ident.as_ref().expect("named field");
            let serde = serde_attr::field(cx, member, &f.attrs, &container_serde);
            Field {
                member,
                ty: &f.ty,
                wire: serde.wire,
                rules: field_rules(cx, &f.attrs),
                default: serde.default,
                skipped: serde.skipped,
                aliases: serde.aliases,
                docs: docs(&f.attrs),
            }
        })
        .collect();
    Some(Container {
        ident: &input.ident,
        generics: &input.generics,
        krate,
        fields,
        docs: docs(&input.attrs),
    })
}

/// The doc comment among `attrs`, as rustdoc reads it: one line per `#[doc]`, each without
/// the space after `///`, the whole trimmed.
fn docs(attrs: &[Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(syn::MetaNameValue {
                value:
                    syn::Expr::Lit(syn::ExprLit {
                        lit: Lit::Str(s), ..
                    }),
                ..
            }) => {
                let line = s.value();
                Some(
                    line.strip_prefix(' ')
                        .unwrap_or(&line)
                        .trim_end()
                        .to_owned(),
                )
            }
            _ => None,
        })
        .collect();
    lines.join("\n").trim().to_owned()
}

fn secure_attrs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|a| a.path().is_ident("secure"))
}

fn field_rules(cx: &Ctxt, attrs: &[Attribute]) -> Rules {
    let mut rules = Rules::default();
    for attr in secure_attrs(attrs) {
        if let syn::Meta::Path(path) = &attr.meta {
            cx.error_spanned_by(
                path,
                "`#[secure]` needs rules, e.g. `#[secure(length(min = 1, max = 64))]`",
            );
            continue;
        }
        let result = attr.parse_nested_meta(|meta| rule(cx, &meta, &mut rules));
        if let Err(e) = result {
            cx.syn_error(e);
        }
    }
    rules
}

/// Parses one rule into `rules`. Unknown keys and malformed rules are recorded and skipped.
fn rule(cx: &Ctxt, meta: &ParseNestedMeta<'_>, rules: &mut Rules) -> syn::Result<()> {
    let Some(key) = meta.path.get_ident().cloned() else {
        cx.error_spanned_by(
            &meta.path,
            suggest::unknown("rule", &path_text(&meta.path), RULE_KEYS),
        );
        return skip_value(meta);
    };
    let name = key.to_string();
    let kind = match name.as_str() {
        "length" => Some(RuleKind::Length(bounds(cx, meta, &key)?)),
        "range" => Some(RuleKind::Range(bounds(cx, meta, &key)?)),
        "pattern" => pattern(cx, meta, &key)?,
        "custom" => custom(cx, meta, &key)?,
        "one_of" => list(cx, meta, &key)?.map(RuleKind::OneOf),
        "deny" => list(cx, meta, &key)?.map(|items| deny(cx, items)),
        "each" => each(cx, meta, &key)?,
        "url" if meta.input.peek(syn::token::Paren) => Some(url(cx, meta, &key)?),
        "email" | "url" | "ip" | "uuid" | "nested" | "skip" | "trim" | "lowercase"
        | "uppercase" | "nfc" | "nfkc" => Some(bare(cx, meta, &key)?),
        _ => {
            cx.error_spanned_by(&key, suggest::unknown("rule", &name, RULE_KEYS));
            return skip_value(meta);
        }
    };
    if let Some(kind) = kind {
        rules.list.push(Rule { key, kind });
    }
    Ok(())
}

const PATTERN_FORM: &str = "`pattern` needs a regex: `pattern = \"^[a-z]+$\"`";

/// `pattern = "regex"`. `None` (error recorded, value skipped) without a value.
fn pattern(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    key: &syn::Ident,
) -> syn::Result<Option<RuleKind>> {
    let form = meta.input.peek(Token![=]);
    if !expect_form(cx, meta, key, form, PATTERN_FORM)? {
        return Ok(None);
    }
    Ok(Some(RuleKind::Pattern(meta.value()?.parse()?)))
}

const CUSTOM_FORM: &str = "`custom` needs a function: `custom = path::to::check`";

/// `custom = path::to::check` or `custom = "path::to::check"`. `None` (error recorded,
/// value skipped) without a value.
fn custom(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    key: &syn::Ident,
) -> syn::Result<Option<RuleKind>> {
    let form = meta.input.peek(Token![=]);
    if !expect_form(cx, meta, key, form, CUSTOM_FORM)? {
        return Ok(None);
    }
    let value = meta.value()?;
    let path = if value.peek(LitStr) {
        value.parse::<LitStr>()?.parse()?
    } else {
        value.parse()?
    };
    Ok(Some(RuleKind::Custom(path)))
}

/// The literals of `one_of(...)` or `deny(...)`. `None` (error recorded, value skipped)
/// without parentheses.
fn list(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    key: &syn::Ident,
) -> syn::Result<Option<Vec<Literal>>> {
    let form = meta.input.peek(syn::token::Paren);
    let message = format!("`{key}` needs a list: `{key}(\"a\", \"b\")`");
    if !expect_form(cx, meta, key, form, message)? {
        return Ok(None);
    }
    let content;
    syn::parenthesized!(content in meta.input);
    let items = Punctuated::<Literal, Token![,]>::parse_terminated_with(&content, literal)?;
    Ok(Some(items.into_iter().collect()))
}

/// `deny(...)` from its literals, which must be strings.
fn deny(cx: &Ctxt, items: Vec<Literal>) -> RuleKind {
    let mut entries = Vec::new();
    for item in items {
        match item {
            Literal::Str(s) => entries.push(s),
            Literal::Num(n) => cx.error_at(
                n.span(),
                "`deny` entries are strings; for numbers use `range` or `one_of`",
            ),
        }
    }
    RuleKind::Deny(entries)
}

const EACH_FORM: &str = "`each` needs the rules for every item: `each(length(max = 32))`";

/// `each(rules...)`: the rules for every item. `None` (error recorded, value skipped)
/// without parentheses.
fn each(cx: &Ctxt, meta: &ParseNestedMeta<'_>, key: &syn::Ident) -> syn::Result<Option<RuleKind>> {
    let form = meta.input.peek(syn::token::Paren);
    if !expect_form(cx, meta, key, form, EACH_FORM)? {
        return Ok(None);
    }
    let mut inner = Rules::default();
    if !nested(meta, |m| rule(cx, &m, &mut inner))? {
        cx.error_spanned_by(
            key,
            "`each()` is empty; give the rules for every item: `each(length(max = 32))`",
        );
    }
    Ok(Some(RuleKind::Each(inner)))
}

/// `url(options...)`, the options of `url` in parentheses.
fn url(cx: &Ctxt, meta: &ParseNestedMeta<'_>, key: &syn::Ident) -> syn::Result<RuleKind> {
    let mut public = None;
    let given = nested(meta, |m| {
        let option = key_name(&m.path);
        if option == "public" {
            if public.is_some() {
                cx.error_spanned_by(&m.path, "duplicate `public` option; keep one");
            } else if !m.input.is_empty() && !m.input.peek(Token![,]) {
                cx.error_spanned_by(&m.path, "`public` takes no value; write `url(public)`");
                skip_value(&m)?;
            }
            public = m.path.get_ident().cloned();
        } else {
            cx.error_spanned_by(
                &m.path,
                suggest::unknown("`url` option", &path_text(&m.path), URL_OPTIONS),
            );
            skip_value(&m)?;
        }
        Ok(())
    })?;
    if !given {
        cx.error_spanned_by(
            key,
            "`url()` is empty; write `url` for any http(s) URL or `url(public)` to refuse \
             private and local hosts",
        );
    }
    Ok(RuleKind::Url { public })
}

/// A rule written alone (`email`, `trim`, ...); a value after it is recorded and skipped.
fn bare(cx: &Ctxt, meta: &ParseNestedMeta<'_>, key: &syn::Ident) -> syn::Result<RuleKind> {
    let name = key.to_string();
    if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
        let fix = if name == "url" {
            "write `url` alone, or `url(public)` to refuse private and local hosts".to_owned()
        } else {
            format!("write `{name}` alone")
        };
        cx.error_spanned_by(key, format!("`{name}` takes no arguments; {fix}"));
        skip_value(meta)?;
    }
    Ok(match name.as_str() {
        "email" => RuleKind::Email,
        "url" => RuleKind::Url { public: None },
        "ip" => RuleKind::Ip,
        "uuid" => RuleKind::Uuid,
        "nested" => RuleKind::Nested,
        "skip" => RuleKind::Skip,
        "trim" => RuleKind::Trim,
        "lowercase" => RuleKind::Lowercase,
        "uppercase" => RuleKind::Uppercase,
        "nfc" => RuleKind::Nfc,
        _ => RuleKind::Nfkc,
    })
}

const BOUND_KEYS: &[&str] = &["min", "max"];

fn bounds(cx: &Ctxt, meta: &ParseNestedMeta<'_>, key: &syn::Ident) -> syn::Result<Bounds> {
    let mut bounds = Bounds::default();
    let mut keys_given = false;
    if meta.input.peek(syn::token::Paren) {
        nested(meta, |m| {
            keys_given = true;
            let name = key_name(&m.path);
            let slot = match name.as_str() {
                "min" => &mut bounds.min,
                "max" => &mut bounds.max,
                _ => {
                    cx.error_spanned_by(
                        &m.path,
                        suggest::unknown("bound", &path_text(&m.path), BOUND_KEYS),
                    );
                    return skip_value(&m);
                }
            };
            if !m.input.peek(Token![=]) {
                cx.error_spanned_by(&m.path, format!("`{name}` needs a value: `{name} = 10`"));
                return skip_value(&m);
            }
            let value = m.value()?;
            if value.is_empty() || value.peek(Token![,]) {
                cx.error_spanned_by(&m.path, format!("`{name}` needs a value: `{name} = 10`"));
                return Ok(());
            }
            let n = number(value)?;
            if slot.is_some() {
                cx.error_spanned_by(&m.path, format!("duplicate `{name}`; give each bound once"));
            } else {
                *slot = Some(n);
            }
            Ok(())
        })?;
    } else if meta.input.peek(Token![=]) {
        cx.error_spanned_by(
            key,
            format!("write `{key}(min = 1, max = 10)`, not `{key} = ...`"),
        );
        skip_value(meta)?;
        return Ok(bounds);
    }
    if !keys_given {
        cx.error_spanned_by(
            key,
            format!("`{key}` needs at least one bound: `{key}(min = 1, max = 64)`"),
        );
    }
    Ok(bounds)
}

fn number(input: ParseStream<'_>) -> syn::Result<Number> {
    let neg: Option<Token![-]> = input.parse()?;
    let lit: Lit = input.parse()?;
    let value = match &lit {
        Lit::Int(i) => NumValue::Int(i.base10_parse::<i128>()?),
        Lit::Float(f) => NumValue::Float(f.base10_parse::<f64>()?),
        other => return Err(syn::Error::new_spanned(other, "expected a number")),
    };
    let value = match (neg.is_some(), value) {
        (true, NumValue::Int(v)) => NumValue::Int(-v),
        (true, NumValue::Float(v)) => NumValue::Float(-v),
        (false, v) => v,
    };
    Ok(Number { neg, lit, value })
}

fn literal(input: ParseStream<'_>) -> syn::Result<Literal> {
    if input.peek(LitStr) {
        Ok(Literal::Str(input.parse()?))
    } else if input.peek(Token![-]) || input.peek(syn::LitInt) || input.peek(syn::LitFloat) {
        Ok(Literal::Num(number(input)?))
    } else {
        Err(input.error("expected a string or number literal"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The messages recorded while parsing `input` as the derive's input.
    fn messages(input: &str) -> Vec<String> {
        let cx = Ctxt::new();
        container(&cx, &syn::parse_str(input).expect("derive input"));
        match cx.check() {
            Ok(()) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    /// A rule written as a path is named as written, leading `::` included, as the
    /// endpoint's options are: never shortened into the rule it merely resembles.
    #[test]
    fn unknown_rules_are_named_in_full() {
        let found = messages("struct S { #[secure(::trim)] a: String }");
        assert!(found[0].starts_with("unknown rule `::trim`;"), "{found:?}");
        let found = messages("struct S { #[secure(text::trim)] a: String }");
        assert!(
            found[0].starts_with("unknown rule `text::trim`;"),
            "{found:?}"
        );
    }
}
