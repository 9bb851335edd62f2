//! Checking: every misuse of the rules against the field types, reported together.

use std::collections::HashSet;

use quote::ToTokens;

use super::confusable;
use super::model::{Bounds, Container, Literal, NumValue, Number, Rule, RuleKind, Rules};
use crate::ctxt::Ctxt;
use crate::ty::{self, Kind};

pub fn container(cx: &Ctxt, c: &Container<'_>) {
    let params: Vec<&syn::Ident> = c.generics.type_params().map(|p| &p.ident).collect();
    for field in &c.fields {
        rules(cx, &field.rules, field.ty);
        unvisited(cx, &field.rules, field.ty, false, &params);
    }
}

/// Fields whose contents may be `SecureInput` types are validated automatically (see
/// `expand::auto`), except where the derive cannot tell or cannot reach them: a type that
/// depends on a type parameter (autoref specialisation cannot see the parameter's bounds)
/// must say `nested` or `skip`. Unreachable concrete types (map values, `Rc`, `Arc`) are
/// refused at type-check time by the generated probe.
fn unvisited(cx: &Ctxt, rules: &Rules, ty: &syn::Type, skipped: bool, params: &[&syn::Ident]) {
    let ty = strip_options(ty);
    let skipped = skipped || rules.has("skip");
    if skipped || rules.has("nested") || params.is_empty() {
        return;
    }
    if let Some(Rule {
        kind: RuleKind::Each(inner),
        ..
    }) = rules.find("each")
    {
        if let Some(item) = ty::seq_item(ty) {
            unvisited(cx, inner, item, skipped, params);
        }
        return;
    }
    let (leaves, fix) = match ty::nest(ty) {
        ty::Nest::Never => return,
        ty::Nest::Maybe(leaf) if ty::seq_item(ty).is_some() => (
            vec![leaf],
            "add `each(nested)` to validate its items (their type must implement \
             `SecureInput`) or `skip` to accept them unvalidated",
        ),
        ty::Nest::Maybe(leaf) => (
            vec![leaf],
            "add `nested` to validate it (the type must implement `SecureInput`) or `skip` \
             to accept it unvalidated",
        ),
        ty::Nest::Unreachable(leaves) => (
            leaves,
            "the derive cannot validate values held here; add `skip` to accept them \
             unvalidated",
        ),
    };
    for leaf in leaves {
        if let Some(param) = ty::mentioned_param(leaf, params) {
            cx.error_spanned_by(
                leaf,
                format!(
                    "this type depends on the type parameter `{param}`, so the derive cannot \
                     tell whether it is a validated input type; {fix}"
                ),
            );
        }
    }
}

/// Checks `rules` as applied to values of type `ty` (an `Option` applies them to its
/// content).
fn rules(cx: &Ctxt, rules: &Rules, ty: &syn::Type) {
    let ty = strip_options(ty);
    let kind = ty::kind(ty);
    duplicates(cx, rules);
    for rule in &rules.list {
        one(cx, rule, rules, ty, kind);
    }
}

fn strip_options(mut ty: &syn::Type) -> &syn::Type {
    while let Some(inner) = ty::option_inner(ty) {
        ty = inner;
    }
    ty
}

fn duplicates(cx: &Ctxt, rules: &Rules) {
    let mut seen = HashSet::new();
    for rule in &rules.list {
        if !seen.insert(rule.name()) {
            cx.error_spanned_by(
                &rule.key,
                format!(
                    "duplicate `{}` rule on this field; merge them into one",
                    rule.name()
                ),
            );
        }
    }
    if let (Some(_), Some(upper)) = (rules.find("lowercase"), rules.find("uppercase")) {
        cx.error_spanned_by(
            &upper.key,
            "`uppercase` conflicts with `lowercase`; keep one",
        );
    }
    if let (Some(nfc), Some(_)) = (rules.find("nfc"), rules.find("nfkc")) {
        cx.error_spanned_by(
            &nfc.key,
            "`nfc` is implied by `nfkc` (NFKC output is already in NFC); remove `nfc`",
        );
    }
    if rules.has("skip")
        && let Some(nested) = find_nested(rules)
    {
        cx.error_spanned_by(
            &nested.key,
            "`nested` contradicts `skip` on this field; keep `nested` to validate the nested \
             input, or `skip` to accept it unvalidated",
        );
    }
}

/// The first `nested` rule in `rules` or in its `each(...)` rules.
fn find_nested(rules: &Rules) -> Option<&Rule> {
    rules.list.iter().find_map(|r| match &r.kind {
        RuleKind::Nested => Some(r),
        RuleKind::Each(inner) => find_nested(inner),
        _ => None,
    })
}

fn wrong_type(cx: &Ctxt, rule: &Rule, kind: Kind, hint: &str) {
    cx.error_spanned_by(
        &rule.key,
        format!(
            "`{}` does not apply to {}; {hint}",
            rule.name(),
            kind.describe()
        ),
    );
}

/// Checks one rule against the field's type: one function per rule.
fn one(cx: &Ctxt, rule: &Rule, all: &Rules, ty: &syn::Type, kind: Kind) {
    match &rule.kind {
        RuleKind::Length(bounds) => length(cx, rule, bounds, kind),
        RuleKind::Range(bounds) => range(cx, rule, bounds, ty, kind),
        RuleKind::Pattern(lit) => pattern(cx, rule, lit, kind),
        RuleKind::Email | RuleKind::Url { .. } | RuleKind::Ip | RuleKind::Uuid => {
            string_rule(cx, rule, kind);
        }
        RuleKind::OneOf(items) => one_of(cx, rule, items, kind),
        RuleKind::Deny(entries) => deny(cx, rule, entries, all, kind),
        RuleKind::Custom(_) => {}
        RuleKind::Skip => skip(cx, rule, ty, kind),
        RuleKind::Nested => nested(cx, rule, kind),
        RuleKind::Each(inner) => each(cx, rule, inner, ty, kind),
        RuleKind::Trim
        | RuleKind::Lowercase
        | RuleKind::Uppercase
        | RuleKind::Nfc
        | RuleKind::Nfkc => normaliser(cx, rule, kind),
    }
}

/// `length(min, max)`: on strings and collections, with bounds that count characters or
/// elements.
fn length(cx: &Ctxt, rule: &Rule, bounds: &Bounds, kind: Kind) {
    if kind.is_number() || matches!(kind, Kind::Bool | Kind::Char) {
        wrong_type(cx, rule, kind, "use `range(min, max)` for numbers");
        return;
    }
    for n in [&bounds.min, &bounds.max].into_iter().flatten() {
        if !matches!(n.value, NumValue::Int(v) if v >= 0 && v <= u32::MAX as i128) {
            cx.error_at(
                n.span(),
                "a length bound is a non-negative whole number of characters or elements",
            );
        }
    }
    min_max(cx, bounds);
}

/// `range(min, max)`: on numbers, with finite bounds that fit the field's type.
fn range(cx: &Ctxt, rule: &Rule, bounds: &Bounds, ty: &syn::Type, kind: Kind) {
    if !(kind.is_number() || kind == Kind::Unknown) {
        let hint = if kind.is_string() {
            "use `length(min, max)` to bound a string's length"
        } else {
            "`range` compares numbers"
        };
        wrong_type(cx, rule, kind, hint);
        return;
    }
    if let Kind::Int { signed, bits } = kind {
        int_bounds(cx, bounds, ty, ty::int_bounds(signed, bits));
    }
    for n in [&bounds.min, &bounds.max].into_iter().flatten() {
        if matches!(n.value, NumValue::Float(v) if !v.is_finite()) {
            cx.error_at(n.span(), "a range bound must be finite");
        }
    }
    min_max(cx, bounds);
}

/// The bounds of a `range` on an integer field of type `ty`, whose values are `lo..=hi`:
/// whole numbers within that range.
fn int_bounds(cx: &Ctxt, bounds: &Bounds, ty: &syn::Type, (lo, hi): (i128, i128)) {
    for n in [&bounds.min, &bounds.max].into_iter().flatten() {
        match n.value {
            NumValue::Float(_) => cx.error_at(
                n.span(),
                format!(
                    "`{}` is an integer field; write the bound as a whole number",
                    ty.to_token_stream()
                ),
            ),
            NumValue::Int(v) if v < lo || v > hi => cx.error_at(
                n.span(),
                format!(
                    "bound {v} is outside the range of `{}` ({lo}..={hi})",
                    ty.to_token_stream()
                ),
            ),
            NumValue::Int(_) => {}
        }
    }
}

/// `pattern = "..."`: on strings, a regex that compiles.
fn pattern(cx: &Ctxt, rule: &Rule, lit: &syn::LitStr, kind: Kind) {
    if !string_rule(cx, rule, kind) {
        return;
    }
    if let Err(e) = regex::Regex::new(&anchored(&lit.value())) {
        cx.error_spanned_by(lit, format!("invalid `pattern` regex: {e}"));
    }
}

/// `deny(...)`: on strings, a non-empty list of visible entries that differ from each other
/// and that a value passing the field's other rules could match.
fn deny(cx: &Ctxt, rule: &Rule, entries: &[syn::LitStr], all: &Rules, kind: Kind) {
    if !string_rule(cx, rule, kind) {
        return;
    }
    if entries.is_empty() {
        cx.error_spanned_by(
            &rule.key,
            "`deny()` is empty; list the blocked values or remove the rule",
        );
    }
    let alphabet = alphabet_of(all);
    let mut seen: Vec<(String, String)> = Vec::new();
    for entry in entries {
        let value = entry.value();
        let key = confusable::key(&value);
        deny_entry(cx, entry, &key, &seen, all, alphabet.as_ref());
        seen.push((key, value));
    }
}

/// One `deny` entry whose confusable key is `key`, after the entries `seen` (key, value).
fn deny_entry(
    cx: &Ctxt,
    entry: &syn::LitStr,
    key: &str,
    seen: &[(String, String)],
    all: &Rules,
    alphabet: Option<&confusable::KeyAlphabet>,
) {
    if key.is_empty() {
        cx.error_spanned_by(
            entry,
            "this `deny` entry has no visible characters, so it would only match empty or \
             invisible values; use `length(min = 1)` to refuse empty values",
        );
    } else if let Some((_, first)) = seen.iter().find(|(k, _)| k == key) {
        cx.error_spanned_by(
            entry,
            format!(
                "duplicate `deny` entry: it looks the same as {first:?} (entries are compared \
                 case-insensitively by their confusable skeletons); remove one"
            ),
        );
    } else if let Some(why) = dead_deny_entry(key, all, alphabet) {
        cx.error_spanned_by(
            entry,
            format!("dead `deny` entry: {why}, so it can never be submitted; remove it"),
        );
    }
}

/// `skip`: on a field that would otherwise be validated as a nested input.
fn skip(cx: &Ctxt, rule: &Rule, ty: &syn::Type, kind: Kind) {
    if !ty::may_nest(ty) {
        cx.error_spanned_by(
            &rule.key,
            format!(
                "`skip` has nothing to skip: {} is never validated as a nested input; remove it",
                kind.describe()
            ),
        );
    }
}

/// `nested`: on a field whose type may derive `SecureInput`.
fn nested(cx: &Ctxt, rule: &Rule, kind: Kind) {
    if kind != Kind::Unknown {
        wrong_type(
            cx,
            rule,
            kind,
            "`nested` is for fields whose type derives `SecureInput`",
        );
    }
}

/// `each(...)`: on a sequence, its rules checked against the item type.
fn each(cx: &Ctxt, rule: &Rule, inner: &Rules, ty: &syn::Type, kind: Kind) {
    match ty::seq_item(ty) {
        Some(item) => rules(cx, inner, item),
        None => wrong_type(
            cx,
            rule,
            kind,
            "`each` applies to `Vec<T>`, `VecDeque<T>`, `[T; N]` and `Box<[T]>`",
        ),
    }
}

/// `trim`, `lowercase`, `uppercase`, `nfc`, `nfkc`: on owned strings, which they rewrite.
fn normaliser(cx: &Ctxt, rule: &Rule, kind: Kind) {
    if !matches!(kind, Kind::String | Kind::Unknown) {
        let hint = if kind == Kind::Str {
            "normalisers rewrite the value in place and need an owned `String`"
        } else {
            "normalisers apply to `String` fields"
        };
        wrong_type(cx, rule, kind, hint);
    }
}

/// Whether a string rule fits `kind`; records the error if not.
fn string_rule(cx: &Ctxt, rule: &Rule, kind: Kind) -> bool {
    let ok = kind.is_string() || kind == Kind::Unknown;
    if !ok {
        wrong_type(cx, rule, kind, "it checks strings");
    }
    ok
}

fn min_max(cx: &Ctxt, bounds: &Bounds) {
    if let (Some(min), Some(max)) = (&bounds.min, &bounds.max)
        && min.value.as_f64() > max.value.as_f64()
    {
        cx.error_at(
            max.span(),
            format!(
                "`max` ({}) is less than `min` ({}); nothing could pass",
                show(max),
                show(min)
            ),
        );
    }
}

fn show(n: &Number) -> String {
    n.to_token_stream().to_string().replace(' ', "")
}

fn one_of(cx: &Ctxt, rule: &Rule, items: &[Literal], kind: Kind) {
    if items.is_empty() {
        cx.error_spanned_by(&rule.key, "`one_of()` is empty; list the allowed values");
        return;
    }
    let strings = items
        .iter()
        .filter(|l| matches!(l, Literal::Str(_)))
        .count();
    if strings != 0 && strings != items.len() {
        cx.error_spanned_by(
            &rule.key,
            "`one_of` mixes strings and numbers; use one kind",
        );
        return;
    }
    let is_str = strings != 0;
    let fits = kind == Kind::Unknown
        || if is_str {
            kind.is_string()
        } else {
            kind.is_number()
        };
    if !fits {
        let what = if is_str { "strings" } else { "numbers" };
        wrong_type(cx, rule, kind, &format!("its values are {what}"));
        return;
    }
    let mut seen = HashSet::new();
    for item in items {
        let key = match item {
            Literal::Str(s) => s.value(),
            Literal::Num(n) => format!("{:?}", n.value),
        };
        if !seen.insert(key) {
            cx.error_at(item.span(), "duplicate `one_of` value");
        }
        if let (Literal::Num(n), Kind::Int { .. }) = (item, kind)
            && matches!(n.value, NumValue::Float(_))
        {
            cx.error_at(n.span(), "the field is an integer; write whole numbers");
        }
    }
}

/// The pattern as it is matched: against the whole value.
pub fn anchored(pattern: &str) -> String {
    format!(r"\A(?:{pattern})\z")
}

/// The characters the field's `pattern` admits, with their keys, when the pattern is
/// small enough to analyse.
fn alphabet_of(rules: &Rules) -> Option<confusable::KeyAlphabet> {
    let Some(Rule {
        kind: RuleKind::Pattern(p),
        ..
    }) = rules.find("pattern")
    else {
        return None;
    };
    let chars = confusable::pattern_alphabet(&anchored(&p.value()))?;
    Some(confusable::KeyAlphabet::new(&chars))
}

/// Why no value that passes the field's other rules can have the key `key` of a `deny`
/// entry, when that can be proved.
///
/// `deny` matches every value that looks like the entry, including spellings with
/// invisible characters and look-alike letters, so the checks reason about keys: a value
/// made of the characters the field's `pattern` admits has a key made of those
/// characters' keys, and (when none of them is invisible) at most as many characters as
/// its key. Without a pattern, any spelling is possible and nothing is reported.
fn dead_deny_entry(
    key: &str,
    rules: &Rules,
    alphabet: Option<&confusable::KeyAlphabet>,
) -> Option<String> {
    let alphabet = alphabet?;
    if let Some(c) = alphabet.unproducible(key) {
        return Some(format!(
            "the field's `pattern` admits no character that looks like {c:?}"
        ));
    }
    if let Some(Rule {
        kind: RuleKind::Length(b),
        ..
    }) = rules.find("length")
    {
        let (fewest, most) = alphabet.value_lengths(key);
        if let (Some(most), Some(min)) = (most, &b.min)
            && (most as f64) < min.value.as_f64()
        {
            return Some(format!(
                "every value the field's `pattern` admits that looks like it has at most \
                 {most} characters, fewer than the field's `length` allows"
            ));
        }
        if let Some(max) = &b.max
            && (fewest as f64) > max.value.as_f64()
        {
            return Some(format!(
                "every value that looks like it has at least {fewest} characters, more than \
                 the field's `length` allows"
            ));
        }
    }
    None
}
