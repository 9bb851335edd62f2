//! Checking: every misuse of the rules against the field types, reported together.

use std::collections::HashSet;

use quote::ToTokens;

use super::model::{Bounds, Container, Literal, NumValue, Number, Rule, RuleKind, Rules};
use crate::ctxt::Ctxt;
use crate::ty::{self, Kind};

pub fn container(cx: &Ctxt, c: &Container<'_>) {
    for field in &c.fields {
        rules(cx, &field.rules, field.ty);
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

fn one(cx: &Ctxt, rule: &Rule, all: &Rules, ty: &syn::Type, kind: Kind) {
    match &rule.kind {
        RuleKind::Length(bounds) => {
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
        RuleKind::Range(bounds) => {
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
                let (lo, hi) = ty::int_bounds(signed, bits);
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
            for n in [&bounds.min, &bounds.max].into_iter().flatten() {
                if matches!(n.value, NumValue::Float(v) if !v.is_finite()) {
                    cx.error_at(n.span(), "a range bound must be finite");
                }
            }
            min_max(cx, bounds);
        }
        RuleKind::Pattern(lit) => {
            if !string_rule(cx, rule, kind) {
                return;
            }
            if let Err(e) = regex::Regex::new(&anchored(&lit.value())) {
                cx.error_spanned_by(lit, format!("invalid `pattern` regex: {e}"));
            }
        }
        RuleKind::Email | RuleKind::Url | RuleKind::Ip | RuleKind::Uuid => {
            string_rule(cx, rule, kind);
        }
        RuleKind::OneOf(items) => one_of(cx, rule, items, kind),
        RuleKind::Deny(entries) => {
            if !string_rule(cx, rule, kind) {
                return;
            }
            if entries.is_empty() {
                cx.error_spanned_by(
                    &rule.key,
                    "`deny()` is empty; list the blocked values or remove the rule",
                );
            }
            let mut seen = HashSet::new();
            for entry in entries {
                if !seen.insert(entry.value().to_lowercase()) {
                    cx.error_spanned_by(
                        entry,
                        "duplicate `deny` entry (entries are compared case-insensitively)",
                    );
                } else if let Some(why) = dead_deny_entry(&entry.value(), all) {
                    cx.error_spanned_by(
                        entry,
                        format!(
                            "dead `deny` entry: {why}, so it can never be submitted; remove it"
                        ),
                    );
                }
            }
        }
        RuleKind::Custom(_) => {}
        RuleKind::Nested => {
            if kind != Kind::Unknown {
                wrong_type(
                    cx,
                    rule,
                    kind,
                    "`nested` is for fields whose type derives `SecureInput`",
                );
            }
        }
        RuleKind::Each(inner) => match ty::seq_item(ty) {
            Some(item) => rules(cx, inner, item),
            None => wrong_type(
                cx,
                rule,
                kind,
                "`each` applies to `Vec<T>`, `VecDeque<T>`, `[T; N]` and `Box<[T]>`",
            ),
        },
        RuleKind::Trim | RuleKind::Lowercase | RuleKind::Uppercase | RuleKind::Nfc => {
            if !matches!(kind, Kind::String | Kind::Unknown) {
                let hint = if kind == Kind::Str {
                    "normalisers rewrite the value in place and need an owned `String`"
                } else {
                    "normalisers apply to `String` fields"
                };
                wrong_type(cx, rule, kind, hint);
            }
        }
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

/// Why a `deny` entry can never match a value that passed the field's other rules, if it
/// provably cannot. Values are checked after normalisation, and `deny` compares
/// case-insensitively, so every case variant of the entry is considered.
fn dead_deny_entry(entry: &str, rules: &Rules) -> Option<String> {
    if rules.has("trim") && entry.trim() != entry {
        return Some("`trim` removes the surrounding whitespace it needs".to_owned());
    }
    let forms: Vec<String> = if rules.has("lowercase") {
        vec![entry.to_lowercase()]
    } else if rules.has("uppercase") {
        vec![entry.to_uppercase()]
    } else {
        case_variants(entry)?
    };
    if let Some(Rule {
        kind: RuleKind::Length(b),
        ..
    }) = rules.find("length")
    {
        let n = forms[0].chars().count() as f64;
        let below = b.min.as_ref().is_some_and(|m| n < m.value.as_f64());
        let above = b.max.as_ref().is_some_and(|m| n > m.value.as_f64());
        if below || above {
            return Some(format!(
                "it has {n} characters, outside the field's `length`"
            ));
        }
    }
    if let Some(Rule {
        kind: RuleKind::Pattern(p),
        ..
    }) = rules.find("pattern")
    {
        let re = regex::Regex::new(&anchored(&p.value())).ok()?;
        if !forms.iter().any(|f| re.is_match(f)) {
            return Some("the field's `pattern` rejects it".to_owned());
        }
    }
    None
}

/// Every upper/lower-case spelling of `entry`, when there are few enough to enumerate.
fn case_variants(entry: &str) -> Option<Vec<String>> {
    let chars: Vec<char> = entry.chars().collect();
    let flexible: Vec<usize> = chars
        .iter()
        .enumerate()
        .filter(|(_, c)| c.is_ascii_alphabetic())
        .map(|(i, _)| i)
        .collect();
    if !entry.is_ascii() || flexible.len() > 12 {
        return None;
    }
    let mut out = Vec::with_capacity(1 << flexible.len());
    for mask in 0u32..(1 << flexible.len()) {
        let mut v = chars.clone();
        for (bit, &i) in flexible.iter().enumerate() {
            v[i] = if mask & (1 << bit) != 0 {
                v[i].to_ascii_uppercase()
            } else {
                v[i].to_ascii_lowercase()
            };
        }
        out.push(v.into_iter().collect());
    }
    Some(out)
}
